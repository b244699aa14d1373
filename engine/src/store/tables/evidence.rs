//! Uploaded evidence: one row per upload (the bytes live in the blob store), and the units whose cases reference it.

use async_trait::async_trait;

use crate::domain::UnitId;
use crate::model::*;
use crate::store::Error;

/// Uploaded evidence: one row per upload, and the units whose cases reference it.
#[async_trait]
pub trait EvidenceStore: Send + Sync + 'static {
    async fn insert_evidence(&self, record: &EvidenceRecord) -> Result<(), Error>;

    /// The uploads with these ids (those that exist), in no particular order.
    async fn evidence(&self, ids: &[String]) -> Result<Vec<EvidenceRecord>, Error>;

    /// The uploads with these ids (those that exist), each with whether the cases or
    /// inspections of `unit` already reference it: one read for a command's evidence.
    async fn evidence_on_unit(
        &self,
        ids: &[String],
        unit: UnitId,
    ) -> Result<Vec<(EvidenceRecord, bool)>, Error>;

    /// Removes the uploads with these ids that `owner` (role, subject) made and that no
    /// unit's cases reference (a refused form's files); returns the digests of the
    /// contents no upload has any more (whose bytes may go).
    async fn discard_evidence(
        &self,
        ids: &[String],
        owner: (crate::domain::Role, i64),
    ) -> Result<Vec<String>, Error>;

    /// The units whose cases or inspections reference the upload.
    async fn evidence_units(&self, id: &str) -> Result<Vec<UnitId>, Error>;
}
