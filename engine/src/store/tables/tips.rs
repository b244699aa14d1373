//! Reports from outside: integrations and their keys, tips stored within their rate limits, read back with their case, resolved by an inspector, and their status changes pushed; landlords' own declarations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::Scope;
use crate::domain::CaseId;
use crate::model::*;
use crate::store::Error;

/// Tips from outside and the integrations that send them.
#[async_trait]
pub trait TipStore: Send + Sync + 'static {
    /// Registers an integration with the digest of its key.
    async fn create_integration(
        &self,
        name: &str,
        key_digest: &str,
        webhook_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> crate::Result<Integration>;

    /// The integration whose key has this digest.
    async fn integration_by_key(&self, key_digest: &str) -> Result<Option<Integration>, Error>;

    /// Stores a tip unless its key or client sent their limit since `since` (counted in
    /// the same transaction): the new tip's id, or why it was refused.
    async fn insert_tip(
        &self,
        tip: &NewTip,
        limits: (i64, i64),
        since: DateTime<Utc>,
    ) -> Result<Result<i64, TipRefusal>, Error>;

    /// The unit with this address code (地址编码).
    async fn unit_by_address_code(
        &self,
        code: &str,
    ) -> Result<Option<crate::domain::UnitId>, Error>;

    /// Which of these units have an open tip that no visit answered since it came in.
    async fn units_with_open_tips(
        &self,
        units: &[crate::domain::UnitId],
    ) -> Result<std::collections::BTreeSet<crate::domain::UnitId>, Error>;

    async fn tip(&self, id: i64) -> Result<Option<TipRecord>, Error>;

    /// Tips matching `filter` within `scope` (supervisors' areas, inspectors' grids;
    /// `System` for an integration's own), newest first.
    async fn tips(&self, filter: &TipFilter, scope: &Scope) -> Result<Vec<TipRecord>, Error>;

    /// Confirms an open tip as a case, or dismisses it, with the note for the reporter.
    /// False if the tip was no longer open.
    async fn resolve_tip(
        &self,
        id: i64,
        case: Option<CaseId>,
        note: &str,
        by: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Tips of integrations with a webhook that changed (or whose case changed) since
    /// their last push, oldest first: (tip, integration).
    async fn tips_to_push(&self, limit: u32) -> Result<Vec<(TipRecord, Integration)>, Error>;

    /// Claims a tip's push: true if its `pushed_at` was still `seen` (so that two
    /// processes do not push the same change).
    async fn claim_tip_push(
        &self,
        id: i64,
        seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Gives up a claimed push that failed, to be tried again.
    async fn release_tip_push(&self, id: i64) -> Result<(), Error>;

    /// Records a landlord's declaration (its `id` is ignored); answers its id.
    async fn add_declaration(&self, d: &Declaration) -> Result<i64, Error>;

    /// A unit's declarations, newest first, at most `limit`.
    async fn declarations(
        &self,
        unit: crate::domain::UnitId,
        limit: u32,
    ) -> Result<Vec<Declaration>, Error>;

    /// Records what was pushed for a tip (or that nothing needed pushing), and when.
    async fn mark_pushed(&self, id: i64, state: &str, at: DateTime<Utc>) -> Result<(), Error>;
}
