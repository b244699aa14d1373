//! Patrol plans: due units and planners, plans stored when first shown, extra stops, the daily planning run and the backlog.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::Scope;
use crate::domain::{GridId, InspectorId};
use crate::model::*;
use crate::store::Error;

/// Patrol plans: due units and planners, plans stored when first shown, extra stops, the
/// daily planning run and the backlog.
#[async_trait]
pub trait PlanStore: Send + Sync + 'static {
    /// Units due by `day_end` (or never graded), or in a campaign running on the day that
    /// has not visited them, in `grids` (every grid when `None`).
    async fn plan_candidates(
        &self,
        grids: Option<&[GridId]>,
        day_start: DateTime<Utc>,
        day_end: DateTime<Utc>,
    ) -> Result<Vec<crate::planning::Candidate>, Error>;

    /// Every inspector with their shift, capacity (the default where unset) and grids.
    async fn planners(&self) -> Result<Vec<crate::planning::Planner>, Error>;

    /// Stores a day's plan in one transaction, under a lock of the day: the routes of
    /// inspectors who have none yet that day (or, with `PlanSave::ReplaceCity`, all of
    /// them, the day's earlier plan dropped). Returns how many routes were stored.
    async fn save_plan(
        &self,
        plan: &crate::planning::DayPlan,
        at: DateTime<Utc>,
        mode: PlanSave,
    ) -> Result<usize, Error>;

    /// An inspector's stored route of a day; `None` if neither the inspector's group
    /// nor the city was planned that day, an empty route if the city was but the
    /// inspector got no visits.
    async fn stored_route(
        &self,
        date: chrono::NaiveDate,
        inspector: InspectorId,
    ) -> Result<Option<StoredRoute>, Error>;

    /// Appends stops to an inspector's stored route (units added during the day), after
    /// its last; a unit already planned that day is left out.
    async fn append_stops(
        &self,
        date: chrono::NaiveDate,
        inspector: InspectorId,
        stops: &[crate::planning::Stop],
    ) -> Result<(), Error>;

    /// Units of `grids` due on the day that came after `since`: registered since, or
    /// brought in by a campaign created since (and not planned that day yet).
    async fn new_candidates(
        &self,
        date: chrono::NaiveDate,
        grids: &[GridId],
        since: DateTime<Utc>,
    ) -> Result<Vec<crate::planning::Candidate>, Error>;

    /// Claims the planning of a day (once across processes); false if it was claimed.
    async fn claim_plan_run(
        &self,
        date: chrono::NaiveDate,
        at: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// The backlog of a stored day, for the grids in `scope`.
    async fn stored_backlog(
        &self,
        date: chrono::NaiveDate,
        scope: &Scope,
    ) -> Result<Option<Vec<crate::planning::Backlog>>, Error>;
}
