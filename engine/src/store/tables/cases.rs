//! Cases and the batch writer: applying a batch of commands with their effects, a case with its history, timers, referrals and messages, and scoped case lists.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::Scope;
use crate::domain::{BuildingId, CaseId, DepartmentId, StreetId, UnitId};
use crate::model::*;
use crate::store::Error;

/// Cases and the batch writer: applying a batch of commands with their effects, a case with
/// its history, timers, referrals and messages, and scoped case lists.
#[async_trait]
pub trait CaseStore: Send + Sync + 'static {
    /// Open cases of these units.
    async fn open_cases_of_units(&self, units: &[UnitId]) -> Result<Vec<CaseRecord>, Error>;

    /// Open cases on one of these workflow definitions, by id, at most `limit`.
    async fn open_cases_on(&self, definitions: &[i64], limit: u32) -> Result<Vec<CaseId>, Error>;

    /// The open cases of the units of a building.
    async fn open_cases_in_building(&self, building: BuildingId) -> Result<Vec<CaseRecord>, Error>;

    /// Applies a batch of commands in one durable transaction: for each, load the case,
    /// check the expected version, decide, and write the new state, the event, the
    /// timers, the outbox messages and the referral change. A refused command writes
    /// nothing; results come back in request order.
    async fn apply(
        &self,
        batch: &[TransitionRequest],
        decide: &Decider<'_>,
        rubric: &crate::grading::Rubric,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::Result<Applied>>, Error>;

    async fn case(&self, id: CaseId) -> Result<Option<CaseRecord>, Error>;

    async fn case_events(&self, id: CaseId) -> Result<Vec<EventRecord>, Error>;

    async fn case_timers(&self, id: CaseId) -> Result<Vec<TimerRecord>, Error>;

    async fn case_referrals(&self, id: CaseId) -> Result<Vec<ReferralRecord>, Error>;

    /// The referrals of several cases in one query, in case and id order; only those to
    /// `department` when one is named.
    async fn referrals_of_cases(
        &self,
        ids: &[CaseId],
        department: Option<DepartmentId>,
    ) -> Result<Vec<ReferralRecord>, Error>;

    /// The messages of several cases to `recipient_kind` made from `template`, in one
    /// query, in case and id order.
    async fn messages_of_cases(
        &self,
        ids: &[CaseId],
        recipient_kind: &str,
        template: &str,
    ) -> Result<Vec<OutboxMessage>, Error>;

    async fn case_outbox(&self, id: CaseId) -> Result<Vec<OutboxMessage>, Error>;

    /// What the printed order `order_no` of a case names besides the case; `None` if
    /// there is no such case.
    async fn order_sheet(&self, id: CaseId, order_no: i32) -> Result<Option<OrderSheet>, Error>;

    async fn list_cases(
        &self,
        filter: &CaseFilter,
        scope: &Scope,
    ) -> Result<Vec<CaseRecord>, Error>;

    /// Open cases within `scope` (and the district, if one is given) counted by street
    /// and severity: (street, severity, count).
    async fn open_by_street(
        &self,
        scope: &Scope,
        district: Option<&str>,
    ) -> Result<Vec<(StreetId, String, i64)>, Error>;
}
