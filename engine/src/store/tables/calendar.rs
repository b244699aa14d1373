//! The working-day calendar's versions (each kept with when it took effect and who imported it), the once-only warnings that it nears its end, and the running timers a new version may re-date.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::CaseId;
use crate::model::*;
use crate::store::Error;

/// The working-day calendar's versions, its end-of-calendar warnings, and the timers
/// that count working days.
#[async_trait]
pub trait CalendarStore: Send + Sync + 'static {
    /// The version in force (the highest), if any was stored.
    async fn latest_calendar(&self) -> Result<Option<CalendarVersion>, Error>;

    /// Every stored version, oldest first (a later replay of history needs each).
    async fn calendar_versions(&self) -> Result<Vec<CalendarVersion>, Error>;

    /// Stores a version, in force from now; refused (a conflict) unless its version is
    /// above every stored one. Counted under a lock, in every process.
    async fn import_calendar(&self, version: &CalendarVersion) -> crate::Result<()>;

    /// Claims the warning of `days` left for calendar `version`, and queues `notice`
    /// to the city's supervisors with it, in one transaction; `false` if some process
    /// claimed it before (each warning goes out once).
    async fn claim_calendar_warning(
        &self,
        version: i64,
        days: i64,
        notice: &crate::machine::MessageDraft,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Open cases after `after` running a timer of one of `kinds` (those counted in
    /// working days), by id, at most `limit`: each with its workflow definition and
    /// its timer.
    async fn working_day_timers(
        &self,
        kinds: &[String],
        after: CaseId,
        limit: u32,
    ) -> Result<Vec<(CaseId, i64, TimerRecord)>, Error>;
}
