//! Escalation rules: versions of the rule set, rule jobs (claimed per case in order, finished once) and the pages of open cases the daily sweep reads.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::CaseId;
use crate::model::*;
use crate::store::Error;

/// Escalation rules: versions of the rule set, rule jobs (claimed per case in order,
/// finished once) and the pages of open cases the daily sweep reads.
#[async_trait]
pub trait RuleStore: Send + Sync + 'static {
    /// Open cases with ids after `after` and below `before`, by id, at most `limit`.
    async fn open_cases_page(
        &self,
        after: CaseId,
        before: CaseId,
        limit: u32,
    ) -> Result<Vec<OpenCase>, Error>;

    /// These cases, those of them that are open, by id.
    async fn open_cases_by_id(&self, ids: &[CaseId]) -> Result<Vec<OpenCase>, Error>;

    /// The highest case id (0 if there is none).
    async fn max_case_id(&self) -> Result<CaseId, Error>;

    /// Claims up to `limit` pending rule jobs until `until`: for each case only its
    /// oldest pending job, so a case's events are worked off in order.
    async fn claim_rule_jobs(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<RuleJob>, Error>;

    /// Marks rule jobs done with what the rules did, in one transaction.
    async fn finish_rule_jobs(&self, done: &[(i64, Value)], at: DateTime<Utc>)
    -> Result<(), Error>;

    /// Rule jobs not yet done.
    async fn pending_rule_jobs(&self) -> Result<i64, Error>;

    /// A case's rule jobs, oldest first.
    async fn case_rule_jobs(&self, case: CaseId) -> Result<Vec<RuleJob>, Error>;

    /// Rule jobs created since `since`, oldest first, at most `limit` (for backtests).
    async fn rule_jobs_since(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RuleJob>, Error>;

    /// Stores a published rule version; a conflict if that version exists.
    async fn publish_rule_version(&self, v: &RuleVersion) -> crate::Result<()>;

    /// Every published rule version, by name and version.
    async fn rule_versions(&self) -> Result<Vec<RuleVersion>, Error>;

    /// How many rule versions were published (a cheap check for a change).
    async fn rule_version_count(&self) -> Result<i64, Error>;

    /// Records the daily sweep of `day` with its jobs, in one transaction; `false` (and
    /// nothing written) if that day was swept already.
    async fn add_sweep_jobs(
        &self,
        day: &str,
        cases: &[CaseId],
        at: DateTime<Utc>,
    ) -> Result<bool, Error>;
}
