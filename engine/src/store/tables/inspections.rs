//! Inspections: a whole inspection written in one transaction (its row, new cases, findings attached, the grade, rule jobs, campaign visits) and their listing.

use async_trait::async_trait;

use crate::auth::Scope;
use crate::model::*;
use crate::store::Error;

/// Inspections: a whole inspection written in one transaction (its row, new cases, findings
/// attached, the grade, rule jobs, campaign visits) and their listing.
#[async_trait]
pub trait InspectionStore: Send + Sync + 'static {
    // ----- cases ----------------------------------------------------------------------

    /// Records an inspection and opens its cases, with their first events and timers,
    /// in one transaction.
    /// Records an inspection, opens its new cases and attaches findings to open cases,
    /// all in one transaction. An attachment whose case is no longer at the version
    /// seen (or no longer open) refuses the whole inspection.
    async fn record_inspection(
        &self,
        inspection: &NewInspection,
        cases: &[NewCase],
        attachments: &[Attachment],
        idem: Option<&IdempotencyKey>,
        respond: &Respond<'_, RecordedInspection>,
    ) -> crate::Result<Idempotent<RecordedInspection>>;

    async fn list_inspections(
        &self,
        filter: &InspectionFilter,
        scope: &Scope,
    ) -> Result<Vec<InspectionRecord>, Error>;
}
