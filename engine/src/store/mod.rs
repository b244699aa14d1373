//! The one `Store` trait and its records; `sqlite` and `postgres` implement it from one shared body of SQL (`sql.rs`).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::Scope;
use crate::domain::{
    Actor, BuildingId, CaseId, CommunityId, DepartmentId, GridId, InspectionId, InspectorId,
    PartyId, Role, StreetId, SupervisorId, UnitId,
};
use crate::machine::{CaseSnapshot, Decision, TimerDraft};
use crate::registry::{BuildingPlace, Record, Unit, UnitRow};
use crate::routing::DepartmentInfo;
use crate::spatial::crs::Crs;
use crate::spatial::grids::GridPlace;
use crate::spatial::grids::Move;
use crate::spatial::index::Located;

mod batch;
pub mod postgres;
pub mod sqlite;

/// A failure of the database itself, as opposed to a refused request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not as expected: {0}")]
    Corrupt(String),
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A case with everything stored about it besides its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseRecord {
    #[serde(flatten)]
    pub snapshot: CaseSnapshot,
    pub definition_id: i64,
    pub unit_id: UnitId,
    pub inspection_id: Option<InspectionId>,
    pub note: Option<String>,
    pub evidence: Vec<String>,
    pub lon: f64,
    pub lat: f64,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The running timer, if any (a case runs at most one).
    pub timer: Option<TimerRecord>,
    /// The number of the last timer scheduled for the case.
    #[serde(skip)]
    pub timer_seq: i64,
}

impl CaseRecord {
    /// Applies a decision's timer changes: cancel the running timer if its kind is
    /// cancelled, then schedule the new one (at most one) with the next number.
    pub fn apply_timers(&mut self, cancel: &[String], schedule: &[TimerDraft]) {
        if self
            .timer
            .as_ref()
            .is_some_and(|t| cancel.contains(&t.kind))
        {
            self.timer = None;
        }
        if let Some(t) = schedule.first() {
            self.timer_seq += 1;
            self.timer = Some(TimerRecord {
                case_id: self.snapshot.id,
                seq: self.timer_seq,
                kind: t.kind.clone(),
                fire_command: t.fire.clone(),
                due_at: t.due_at,
            });
        }
    }
}

/// One entry of a case's history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub command: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: Option<String>,
    pub data: Value,
}

/// A case's running timer. `seq` numbers the timers a case has had, so that a claim
/// on a timer that was since cancelled or replaced can tell.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimerRecord {
    pub case_id: CaseId,
    pub seq: i64,
    pub kind: String,
    pub fire_command: String,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub case_id: CaseId,
    pub event_seq: i64,
    pub recipient_kind: String,
    pub recipient_id: Option<i64>,
    pub template: String,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
    pub delivered_at: Option<DateTime<Utc>>,
    pub channel: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferralRecord {
    pub id: i64,
    pub case_id: CaseId,
    pub department_id: DepartmentId,
    pub status: String,
    pub referred_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    pub reason_code: Option<String>,
    pub result: Option<Value>,
}

/// A command to apply to one case, as the store sees it: the decision itself is made by
/// the caller's decider once the store has loaded the case inside the transaction.
#[derive(Debug, Clone)]
pub struct TransitionRequest {
    pub case_id: CaseId,
    /// The version the caller saw; `None` for the engine's own commands.
    pub expected_version: Option<i64>,
    /// Set when a timer fires (its number): the timer is consumed in the same
    /// transaction, and the command is skipped if the case no longer runs that timer
    /// (it fired elsewhere, was cancelled or replaced).
    pub timer_seq: Option<i64>,
    pub actor: Actor,
    pub command: String,
    pub reason: Option<String>,
    /// Set when a rule's action is applied: the command is skipped if the case has had
    /// this step (or a later one) already.
    pub rule: Option<RuleStep>,
}

/// A rule's action applied as a command: its step (job * 1024 + action, increasing per
/// case) and the attribution written into the event (rule, version, trigger).
#[derive(Debug, Clone)]
pub struct RuleStep {
    pub mark: i64,
    pub attribution: Value,
}

/// What happened to one request of a batch.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Committed: `decision.next` is the case after it.
    Done {
        decision: Box<Decision>,
        at: DateTime<Utc>,
    },
    /// The timer had already fired or been cancelled: nothing was done.
    TimerGone,
    /// The rule step had been applied before (a retried job): nothing was done.
    AlreadyApplied,
}

/// Decides a request of a batch (by index) given the case as loaded in the transaction.
/// The decision is pure: its refusals are the core's.
pub type Decider<'a> = dyn Fn(usize, &CaseRecord) -> anju_core::Result<Decision> + Send + Sync + 'a;

/// A request's claim to idempotency: who sent it, their key, and a digest of the request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub subject: String,
    pub key: String,
    pub request_hash: String,
}

/// The result of an idempotent create.
#[derive(Debug, Clone)]
pub enum Idempotent<T> {
    Created(T),
    /// The same request was made before: here is the response it got.
    Replayed(Value),
}

/// Renders the response stored with an idempotency key.
pub type Respond<'a, T> = dyn Fn(&T) -> Value + Send + Sync + 'a;

#[derive(Debug, Clone)]
pub struct NewInspection {
    pub unit_id: UnitId,
    pub inspector_id: Option<InspectorId>,
    pub at: DateTime<Utc>,
    pub lon: f64,
    pub lat: f64,
    pub distance_m: f64,
    /// Farther from the unit than the service's on-site distance.
    pub off_site: bool,
    /// The unit's grade and next patrol after this inspection.
    pub grade: GradeUpdate,
    /// The datum the inspector's device reported in (the point is stored in WGS-84).
    pub crs: Crs,
    pub note: Option<String>,
    /// Findings of the inspection (opened or attached), for campaign progress.
    pub findings: u32,
    /// Answers to the checklist of the campaign the visit counts for.
    pub campaign_checks: Option<std::collections::BTreeMap<String, bool>>,
    /// The rule event the new grade raises (`grading::grade_event`), written as a rule
    /// job on the inspection's first case.
    pub rule_event: Option<crate::rules::RuleEvent>,
    /// How the visit ended: `inspected`, or an attempt (`no_one_home`,
    /// `entry_refused`) that records no findings and counts for no campaign.
    pub outcome: crate::planning::VisitOutcome,
}

/// A unit's grade and patrol dates, to write.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeUpdate {
    pub unit_id: UnitId,
    pub stars: Option<u8>,
    pub score: Option<f64>,
    /// A new checklist, or `None` to keep the last one.
    pub checklist: Option<crate::grading::Checklist>,
    pub reasons: Vec<String>,
    /// The stars changed: the change goes into the grade history.
    pub changed: bool,
    /// What caused the regrade (`inspection`, `case 12 closed`, …).
    pub cause: String,
    pub last_inspected_at: Option<DateTime<Utc>>,
    pub last_closed_at: Option<DateTime<Utc>>,
    pub next_due_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// A stored route of a planned day, with the units' addresses and whether each was
/// visited that day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRoute {
    pub inspector_id: InspectorId,
    pub shift: String,
    pub capacity: u32,
    pub length_m: f64,
    pub nn_length_m: f64,
    pub planned_at: DateTime<Utc>,
    pub stops: Vec<StoredStop>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredStop {
    pub seq: u32,
    pub unit_id: UnitId,
    pub address: String,
    pub grid_id: GridId,
    pub lon: f64,
    pub lat: f64,
    pub reason: crate::planning::Reason,
    pub overdue_days: i64,
    pub stars: Option<u8>,
    pub evening_only: bool,
    pub leg_m: f64,
    /// The first visit of the unit that day.
    pub visited_at: Option<DateTime<Utc>>,
    /// How that visit ended: `inspected`, `no_one_home` or `entry_refused`.
    pub outcome: Option<String>,
    /// Added during the day, after the route was planned.
    pub extra: bool,
}

/// An item of a campaign's checklist (e.g. one of the eight checks, 八查).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckItem {
    pub code: String,
    pub zh: String,
    pub en: String,
}

/// The units a campaign covers.
#[derive(Debug, Clone, PartialEq)]
pub enum CampaignArea {
    District(String),
    Street(StreetId),
    Grid(GridId),
    /// Units found in a polygon.
    Units(Vec<UnitId>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewCampaign {
    pub name: String,
    pub area: CampaignArea,
    /// The area as the caller gave it.
    pub area_json: Value,
    pub starts_on: chrono::NaiveDate,
    pub ends_on: chrono::NaiveDate,
    pub checklist: Vec<CheckItem>,
    pub created_by: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRecord {
    pub id: i64,
    pub name: String,
    pub area: Value,
    pub starts_on: chrono::NaiveDate,
    pub ends_on: chrono::NaiveDate,
    pub checklist: Vec<CheckItem>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub units: i64,
}

/// How far a campaign has got in one area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignProgress {
    /// The district code, or the street, community or grid id.
    pub area: String,
    pub total: i64,
    pub visited: i64,
    pub hazards: i64,
}

/// An open case as escalation rules see it, with what they need of its unit.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenCase {
    pub id: CaseId,
    pub unit_id: UnitId,
    pub category: String,
    pub severity: String,
    pub state: String,
    pub order_no: i64,
    pub escalation: i64,
    pub reopen_count: i64,
    pub deadline_at: Option<DateTime<Utc>>,
    pub department_id: Option<DepartmentId>,
    pub party_id: Option<PartyId>,
    pub address: String,
    pub district_code: String,
    pub street_id: Option<crate::domain::StreetId>,
    pub grid_id: Option<crate::domain::GridId>,
    pub unit_stars: Option<u8>,
    /// Cases of the unit opened before this one.
    pub past_cases: i64,
}

impl OpenCase {
    pub fn place(&self) -> crate::auth::Place<'_> {
        crate::auth::Place {
            district_code: &self.district_code,
            street_id: self.street_id,
            grid_id: self.grid_id,
            party_id: self.party_id,
            department_id: self.department_id,
        }
    }
}

/// A party's record for escalation rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartyRecord {
    pub party_id: PartyId,
    pub kind: String,
    pub cases_by_severity: std::collections::BTreeMap<String, i64>,
    pub overdue_since: i64,
    pub referrals_since: i64,
    /// Enforcement results recorded on the party's cases since `since`.
    pub results_since: i64,
    /// Whether a blacklisting is in force (approved, or appealed and not yet decided,
    /// and not expired).
    pub blacklisted: bool,
    /// Whether a proposal to blacklist the party waits for a supervisor.
    pub proposed: bool,
}

impl PartyRecord {
    /// The record of a party with nothing on it.
    pub fn empty(party_id: PartyId, kind: String) -> PartyRecord {
        PartyRecord {
            party_id,
            kind,
            cases_by_severity: std::collections::BTreeMap::new(),
            overdue_since: 0,
            referrals_since: 0,
            results_since: 0,
            blacklisted: false,
            proposed: false,
        }
    }
}

/// A registered party (登记的房东、中介、二房东) with how many units it answers for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartyListing {
    pub id: PartyId,
    pub kind: String,
    pub name: String,
    pub phone: Option<String>,
    pub units: i64,
}

/// A rule version published at run time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleVersion {
    pub spec: crate::rules::RuleSpec,
    pub source: String,
    pub sha256: String,
    pub published_at: DateTime<Utc>,
    pub published_by: String,
}

/// An event escalation rules listen to, waiting for the rule worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleJob {
    pub id: i64,
    pub case_id: CaseId,
    /// The event that raised it; `None` for the daily sweep.
    pub event_seq: Option<i64>,
    pub trigger: String,
    pub detail: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    /// What the rules did: per rule, its version and outcome, and per action its result.
    pub outcome: Option<Value>,
}

/// A blacklist entry (黑名单) with its party.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlacklistEntry {
    pub id: i64,
    pub party_id: PartyId,
    pub party_name: String,
    pub party_kind: String,
    /// proposed, active, appealed, rejected or lifted as stored; an active entry past
    /// its expiry reads as `expired`.
    pub status: String,
    pub reason: String,
    /// `rule:<name>@v<version>` or `supervisor:<id>`.
    pub source: String,
    pub case_id: Option<CaseId>,
    pub district_code: String,
    pub proposed_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub appeal: Option<String>,
    pub appealed_at: Option<DateTime<Utc>>,
    pub appeal_decided_by: Option<String>,
    pub appeal_decided_at: Option<DateTime<Utc>>,
    pub appeal_note: Option<String>,
    /// Named on the public list (通报曝光), which only an approval can do.
    pub published: bool,
}

/// A change to a blacklist entry; each applies only from the statuses it names.
#[derive(Debug, Clone, PartialEq)]
pub enum BlacklistChange {
    /// proposed → active, by a supervisor, until `expires_at`, named publicly or not.
    Approve {
        by: String,
        note: String,
        expires_at: DateTime<Utc>,
        publish: bool,
    },
    /// proposed → rejected.
    Reject { by: String, note: String },
    /// active → appealed, by the party.
    Appeal { text: String },
    /// appealed → active (upheld) or lifted (granted), by a supervisor.
    DecideAppeal {
        by: String,
        upheld: bool,
        note: String,
    },
    /// active or appealed → lifted, by a supervisor.
    Lift { by: String, note: String },
}

/// A safety responsibility agreement (安全管理责任书) of a unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub id: i64,
    pub unit_id: UnitId,
    pub party_id: PartyId,
    pub signer: String,
    pub signed_on: chrono::NaiveDate,
    pub expires_on: chrono::NaiveDate,
    pub document: Option<String>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// A rental-insurance policy (出租屋综合保险) of a unit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InsurancePolicy {
    pub id: i64,
    pub unit_id: UnitId,
    pub insurer: String,
    pub policy_no: String,
    pub coverage_yuan: f64,
    pub starts_on: chrono::NaiveDate,
    pub ends_on: chrono::NaiveDate,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

/// A unit a party answers for, with its open orders.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartyUnit {
    pub unit: Unit,
    /// Open cases with a rectification order.
    pub open_orders: i64,
    /// The earliest deadline among them.
    pub next_deadline: Option<DateTime<Utc>>,
}

/// What a unit's public placard shows: no personal data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placard {
    pub public_code: String,
    pub address: String,
    pub district_code: String,
    pub community_id: CommunityId,
    pub community_name: String,
    pub stars: Option<u8>,
    pub last_inspected_at: Option<DateTime<Utc>>,
    pub open_orders: i64,
}

/// One change of a unit's grade.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradeRecord {
    pub stars: Option<u8>,
    pub score: Option<f64>,
    pub reasons: Vec<String>,
    pub cause: String,
    pub inspection_id: Option<InspectionId>,
    pub at: DateTime<Utc>,
}

/// An inspection as stored, with the unit's address.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectionRecord {
    pub id: InspectionId,
    pub unit_id: UnitId,
    pub address: String,
    pub inspector_id: Option<InspectorId>,
    pub at: DateTime<Utc>,
    pub lon: f64,
    pub lat: f64,
    pub distance_m: f64,
    pub off_site: bool,
    pub crs: Crs,
    pub note: Option<String>,
}

/// Filters of the inspection list; it is also bounded by the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct InspectionFilter {
    pub inspector_id: Option<InspectorId>,
    pub unit_id: Option<UnitId>,
    pub off_site: Option<bool>,
    /// Keyset pagination: only inspections with a smaller id.
    pub before: Option<InspectionId>,
    pub limit: u32,
}

/// A case to open: its initial snapshot (the id is assigned by the store), what opened
/// it, and its first timer.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub definition_id: i64,
    pub snapshot: CaseSnapshot,
    pub note: Option<String>,
    pub evidence: Vec<String>,
    pub lon: f64,
    pub lat: f64,
    pub actor: Actor,
    pub data: Value,
    pub timer: Option<TimerDraft>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedInspection {
    pub inspection_id: InspectionId,
    pub case_ids: Vec<CaseId>,
    /// Open cases the inspection's findings were attached to.
    pub attached: Vec<CaseId>,
}

/// A finding attached to an open case of the same category on the same unit, instead
/// of opening a second case: an event in that case's history.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub case_id: CaseId,
    /// The version the case was seen at.
    pub version: i64,
    pub state: String,
    pub actor: Actor,
    pub data: Value,
}

/// Filters of the case list. Every list is also bounded by the caller's scope.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub state: Option<String>,
    pub category: Option<String>,
    pub district: Option<String>,
    pub unit_id: Option<UnitId>,
    pub party_id: Option<PartyId>,
    pub department_id: Option<DepartmentId>,
    /// Only cases past their deadline (`true`) or not (`false`).
    pub overdue: Option<Overdue>,
    /// Only cases waiting for a supervisor's review (`true`) or not (`false`).
    pub review_required: Option<bool>,
    /// Keyset pagination: only cases with a smaller id.
    pub before: Option<CaseId>,
    pub limit: u32,
}

/// What "overdue" means, derived from the workflow: in one of `states`, or in one of
/// `deadline_states` with the deadline before `now`.
#[derive(Debug, Clone)]
pub struct Overdue {
    pub wanted: bool,
    pub states: Vec<String>,
    pub deadline_states: Vec<String>,
    pub now: DateTime<Utc>,
}

/// What the database knows about a token's subject.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub role: Role,
    pub subject: i64,
}

/// A grid and where it sits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridRecord {
    pub id: GridId,
    pub code: String,
    pub name: String,
    pub community_id: CommunityId,
    pub street_id: StreetId,
    pub district_code: String,
    /// GeoJSON, WGS-84.
    pub geometry: Option<Value>,
    /// How many units the grid holds.
    pub units: i64,
}

impl GridRecord {
    pub fn place(&self) -> crate::auth::Place<'_> {
        crate::auth::Place {
            district_code: &self.district_code,
            street_id: Some(self.street_id),
            grid_id: Some(self.id),
            party_id: None,
            department_id: None,
        }
    }
}

/// A correction of a unit's or a building's point, audited: who, why, from where to
/// where, and the grid before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocationCorrection {
    /// `unit` or `building`.
    pub kind: String,
    pub id: i64,
    pub from: (f64, f64),
    pub to: (f64, f64),
    pub grid_before: Option<GridId>,
    /// The new place (a unit's; a building keeps its grid by its point too).
    pub place: crate::spatial::grids::PointPlace,
    pub actor: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// One entry of a unit's responsibility history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitPartyRecord {
    pub party_id: PartyId,
    pub role: String,
    pub from_at: DateTime<Utc>,
    pub to_at: Option<DateTime<Utc>>,
}

/// A supervisor's level and area.
#[derive(Debug, Clone, Serialize)]
pub struct SupervisorRecord {
    pub id: SupervisorId,
    pub name: String,
    pub level: String,
    pub district_code: Option<String>,
    pub street_id: Option<StreetId>,
}

/// How a plan is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanSave {
    /// A group of inspectors planned when one of them first looked at the day.
    Group,
    /// The whole city's day, keeping the routes stored already.
    City,
    /// The whole city's day, replacing every route of it (`anju plan --replace`).
    ReplaceCity,
}

/// An inspector in the directory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectorListing {
    pub id: InspectorId,
    pub name: String,
    pub shift: String,
    pub grids: Vec<GridId>,
}

/// Counts of what an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    pub districts: u64,
    pub streets: u64,
    pub communities: u64,
    pub grids: u64,
    pub buildings: u64,
    pub parties: u64,
    pub units: u64,
    pub inspectors: u64,
    pub departments: u64,
    pub supervisors: u64,
}

impl ImportCounts {
    pub fn add(&mut self, other: &ImportCounts) {
        self.districts += other.districts;
        self.streets += other.streets;
        self.communities += other.communities;
        self.grids += other.grids;
        self.buildings += other.buildings;
        self.parties += other.parties;
        self.units += other.units;
        self.inspectors += other.inspectors;
        self.departments += other.departments;
        self.supervisors += other.supervisors;
    }

    pub fn total(&self) -> u64 {
        self.districts
            + self.streets
            + self.communities
            + self.grids
            + self.buildings
            + self.parties
            + self.units
            + self.inspectors
            + self.departments
            + self.supervisors
    }
}

/// Timer backlog figures for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TimerBacklog {
    pub pending: i64,
    pub due: i64,
    pub oldest_due_at: Option<DateTime<Utc>>,
}

/// Everything Anju keeps. Implemented by [`sqlite::SqliteStore`] and
/// [`postgres::PostgresStore`] from the same SQL, and proven by one conformance suite
/// run against both.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Refreshes the planner's statistics of tables that changed much since; returns
    /// the tables refreshed.
    async fn refresh_statistics(&self) -> Result<Vec<String>, Error>;

    /// How many batches of transitions may be applied at once: one on SQLite, which has
    /// a single writer; several on PostgreSQL.
    fn writers(&self) -> usize;
    /// How many batches the store decided again because cases it held in memory had
    /// changed behind it (SQLite; always 0 where nothing is cached).
    fn stale_retries(&self) -> u64;

    async fn migrate(&self) -> Result<(), Error>;

    /// Stores a workflow definition version once; returns its id. Registering the same
    /// name and version with other content is refused.
    async fn register_definition(
        &self,
        name: &str,
        version: u32,
        hash: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> crate::Result<i64>;

    /// Every stored definition: (id, body).
    async fn definitions(&self) -> Result<Vec<(i64, Value)>, Error>;

    // ----- registry -------------------------------------------------------------------

    /// Writes registry records in bulk, in one transaction, in dependency order.
    async fn import(&self, records: &[Record], now: DateTime<Utc>) -> crate::Result<ImportCounts>;

    /// Brings the database up to date after a bulk import (statistics, id sequences).
    async fn finish_import(&self) -> Result<(), Error>;

    async fn create_unit(
        &self,
        unit: &UnitRow,
        idem: Option<&IdempotencyKey>,
        respond: &Respond<'_, Unit>,
        now: DateTime<Utc>,
    ) -> crate::Result<Idempotent<Unit>>;

    async fn unit(&self, id: UnitId) -> Result<Option<Unit>, Error>;
    /// The units with these ids (those that exist), in no particular order.
    async fn units_by_ids(&self, ids: &[UnitId]) -> Result<Vec<Unit>, Error>;
    /// Every unit's position, for building the spatial index.
    async fn unit_points(&self) -> Result<Vec<Located>, Error>;
    /// Every unit's position, current grid and district.
    async fn unit_grids(&self) -> Result<Vec<(Located, Option<GridId>, String)>, Error>;
    /// Units outside every grid, in the caller's scope, by id after `after`.
    async fn ungridded_units(
        &self,
        scope: &Scope,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>, Error>;
    /// Corrects a unit's or building's point (and a unit's place), with its audit row,
    /// in one transaction.
    async fn correct_location(&self, c: &LocationCorrection) -> crate::Result<()>;
    /// A unit's or building's point corrections, oldest first.
    async fn location_corrections(
        &self,
        kind: &str,
        id: i64,
    ) -> Result<Vec<LocationCorrection>, Error>;

    // ----- grids ----------------------------------------------------------------------

    /// The grids with these codes: (code, id).
    async fn grids_by_code(&self, codes: &[String]) -> Result<Vec<(String, GridId)>, Error>;
    async fn community_by_code(&self, code: &str) -> Result<Option<CommunityId>, Error>;
    /// Writes grid shapes in one transaction: `updates` give existing grids a new
    /// geometry (and name, if one is given); `creates` are (code, name, community,
    /// geometry). Returns the ids of the created grids, in order.
    async fn save_grids(
        &self,
        updates: &[(GridId, Option<String>, String)],
        creates: &[(String, String, CommunityId, String)],
    ) -> crate::Result<Vec<GridId>>;
    async fn grid(&self, id: GridId) -> Result<Option<GridRecord>, Error>;
    /// The units of a grid, by id, after `after`.
    async fn grid_units(
        &self,
        id: GridId,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>, Error>;
    /// Every grid that has a shape: (id, GeoJSON geometry).
    async fn grid_shapes(&self) -> Result<Vec<(GridId, String)>, Error>;
    /// Every grid's community, street and district.
    async fn grid_places(&self) -> Result<Vec<(GridId, GridPlace)>, Error>;
    /// How many grids have shapes, and when a shape last changed: a process whose grid
    /// index was built at another stamp reloads it.
    async fn grid_stamp(&self) -> Result<(i64, i64), Error>;
    /// Moves units to other places (grid, community, street, district) in one
    /// transaction. Their open cases are moved by the runtime, as events.
    async fn move_units(&self, moves: &[Move]) -> Result<u64, Error>;
    /// Open cases of these units.
    async fn open_cases_of_units(&self, units: &[UnitId]) -> Result<Vec<CaseRecord>, Error>;
    /// Open cases on one of these workflow definitions, by id, at most `limit`.
    async fn open_cases_on(&self, definitions: &[i64], limit: u32) -> Result<Vec<CaseId>, Error>;
    async fn building_place(&self, id: i64) -> Result<Option<BuildingPlace>, Error>;
    async fn departments(&self) -> Result<Vec<DepartmentInfo>, Error>;
    async fn inspector_grids(&self, id: InspectorId) -> Result<Option<BTreeSet<GridId>>, Error>;
    /// The inspectors covering a grid, lowest id first.
    async fn grid_inspectors(&self, grid: GridId) -> Result<Vec<InspectorId>, Error>;
    async fn supervisor(&self, id: SupervisorId) -> Result<Option<SupervisorRecord>, Error>;
    /// Every supervisor, by id.
    async fn supervisors(&self) -> Result<Vec<SupervisorRecord>, Error>;
    /// Every inspector with name, shift and grids, by id.
    async fn inspectors(&self) -> Result<Vec<InspectorListing>, Error>;
    async fn party_exists(&self, id: PartyId) -> Result<bool, Error>;
    /// The kind of a party (`landlord`, `agent`, `sublandlord`), if it exists.
    async fn party_kind(&self, id: PartyId) -> Result<Option<String>, Error>;
    /// Registers a party (a landlord, an agent or a sub-landlord).
    async fn add_party(
        &self,
        kind: &str,
        name: &str,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> crate::Result<PartyId>;
    /// Registered parties with units in `scope` (all, city-wide), by id after `after`.
    async fn parties(
        &self,
        kind: Option<&str>,
        scope: &Scope,
        after: PartyId,
        limit: u32,
    ) -> Result<Vec<PartyListing>, Error>;

    /// Hands a unit to another responsible party (or to nobody): the current entry of
    /// its responsibility history is closed and a new one opened, in one transaction.
    /// Cases already opened stay attributed to the party responsible when they were
    /// found.
    async fn set_unit_party(
        &self,
        unit: UnitId,
        party: Option<(PartyId, String)>,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// Who answered for a unit, and when, oldest first.
    async fn unit_parties(&self, unit: UnitId) -> Result<Vec<UnitPartyRecord>, Error>;
    async fn department_exists(&self, id: DepartmentId) -> Result<bool, Error>;

    // ----- tokens ---------------------------------------------------------------------

    async fn insert_token(
        &self,
        digest: &str,
        role: Role,
        subject: i64,
        label: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, Error>;

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

    /// Writes a unit's new grade and patrol dates (outside an inspection: after a case
    /// was closed, say).
    async fn regrade(&self, update: &GradeUpdate) -> Result<(), Error>;
    /// A unit's grade history, oldest first.
    async fn unit_grades(&self, unit: UnitId) -> Result<Vec<GradeRecord>, Error>;

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

    /// Creates a campaign over the units of its area that lie in `scope`.
    async fn create_campaign(
        &self,
        campaign: &NewCampaign,
        scope: &Scope,
    ) -> crate::Result<CampaignRecord>;
    /// A campaign, if `scope` oversees one of its units.
    async fn campaign(&self, id: i64, scope: &Scope) -> Result<Option<CampaignRecord>, Error>;
    /// The newest 500 campaigns `scope` oversees a unit of.
    async fn campaigns(&self, scope: &Scope) -> Result<Vec<CampaignRecord>, Error>;
    /// A campaign's progress per area (`district`, `street`, `community` or `grid`),
    /// over the units in `scope`.
    async fn campaign_progress(
        &self,
        id: i64,
        level: &str,
        scope: &Scope,
    ) -> Result<Vec<CampaignProgress>, Error>;
    /// The checklists of the campaigns running at `at` that have not visited the unit.
    async fn open_campaign_checklists(
        &self,
        unit: UnitId,
        at: DateTime<Utc>,
    ) -> Result<Vec<CheckItem>, Error>;

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
    /// Every party with cases (or only `only`): cases by severity, and the orders that
    /// went overdue, the referrals and the enforcement results since `since`; whether a
    /// blacklisting is in force at `now`.
    async fn party_records(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        only: Option<PartyId>,
    ) -> Result<Vec<PartyRecord>, Error>;

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

    /// Proposes a party for the blacklist (by a person); a conflict if an entry is open.
    async fn propose_blacklist(
        &self,
        party: PartyId,
        reason: &str,
        source: &str,
        district_code: &str,
        at: DateTime<Utc>,
    ) -> crate::Result<i64>;
    /// Blacklist entries, newest first: of one party, or within `scope` (by district),
    /// in a status as it reads at `now` (`active` is in force, `expired` is an active
    /// entry past its end).
    async fn blacklist(
        &self,
        party: Option<PartyId>,
        scope: &Scope,
        status: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<BlacklistEntry>, Error>;
    async fn blacklist_entry(&self, id: i64) -> Result<Option<BlacklistEntry>, Error>;
    /// Applies a change if the entry is in a status it applies from; `false` otherwise.
    async fn change_blacklist(
        &self,
        id: i64,
        change: &BlacklistChange,
        at: DateTime<Utc>,
    ) -> Result<bool, Error>;
    /// Approved, published entries in force at `now` (the public list).
    async fn published_blacklist(&self, now: DateTime<Utc>) -> Result<Vec<BlacklistEntry>, Error>;

    async fn add_agreement(&self, a: &Agreement) -> crate::Result<i64>;
    /// Signs a demo agreement (this year and next) for every unit with a party except
    /// every `gap`-th; returns how many.
    async fn seed_agreements(&self, gap: i64, at: DateTime<Utc>) -> Result<u64, Error>;
    async fn agreements(&self, unit: UnitId) -> Result<Vec<Agreement>, Error>;
    async fn add_policy(&self, p: &InsurancePolicy) -> crate::Result<i64>;
    async fn policies(&self, unit: UnitId) -> Result<Vec<InsurancePolicy>, Error>;

    /// The units a party currently answers for (at most 5,000), by id.
    async fn party_units(&self, party: PartyId) -> Result<Vec<PartyUnit>, Error>;

    /// A unit's public placard.
    async fn placard(&self, public_code: &str) -> Result<Option<Placard>, Error>;
    /// The units of a community graded `max_stars` or lower, lowest first.
    async fn low_grade_placards(
        &self,
        community_code: &str,
        max_stars: u8,
    ) -> Result<Option<(String, Vec<Placard>)>, Error>;

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
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::Result<Applied>>, Error>;

    async fn list_inspections(
        &self,
        filter: &InspectionFilter,
        scope: &Scope,
    ) -> Result<Vec<InspectionRecord>, Error>;

    async fn case(&self, id: CaseId) -> Result<Option<CaseRecord>, Error>;
    async fn case_events(&self, id: CaseId) -> Result<Vec<EventRecord>, Error>;
    async fn case_timers(&self, id: CaseId) -> Result<Vec<TimerRecord>, Error>;
    async fn case_referrals(&self, id: CaseId) -> Result<Vec<ReferralRecord>, Error>;
    async fn case_outbox(&self, id: CaseId) -> Result<Vec<OutboxMessage>, Error>;
    async fn list_cases(
        &self,
        filter: &CaseFilter,
        scope: &Scope,
    ) -> Result<Vec<CaseRecord>, Error>;

    // ----- timers and outbox ----------------------------------------------------------

    /// Claims up to `limit` due timers until `lease_until`, oldest first, skipping those
    /// claimed by a live worker.
    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<TimerRecord>, Error>;

    async fn timer_backlog(&self, now: DateTime<Utc>) -> Result<TimerBacklog, Error>;

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<OutboxMessage>, Error>;

    async fn outbox_delivered(
        &self,
        id: i64,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), Error>;

    // ----- idempotency and inspection -------------------------------------------------

    /// Counts of every table and the sum of case versions: two equal fingerprints mean
    /// nothing was written in between.
    async fn fingerprint(&self) -> Result<Vec<(String, i64)>, Error>;
}

pub type SharedStore = Arc<dyn Store>;

/// The migrations of one backend, from `migrations/<backend>/` (compiled in); both
/// folders hold the same numbered steps, proven equivalent by the conformance suite.
macro_rules! migrator {
    ($backend:literal) => {{
        let step = |version, description: &'static str, sql: &'static str| {
            sqlx::migrate::Migration::new(
                version,
                description.into(),
                sqlx::migrate::MigrationType::Simple,
                sqlx::SqlStr::from_static(sql),
                false,
            )
        };
        macro_rules! file {
            ($name:literal) => {
                include_str!(concat!("../../../migrations/", $backend, "/", $name))
            };
        }
        sqlx::migrate::Migrator::with_migrations(vec![
            step(1, "foundation", file!("0001_foundation.sql")),
            step(2, "geography", file!("0002_geography.sql")),
            step(3, "grading", file!("0003_grading.sql")),
            step(4, "planning", file!("0004_planning.sql")),
            step(5, "unit points", file!("0005_unit_points.sql")),
            step(
                6,
                "rules and responsibility",
                file!("0006_rules_and_responsibility.sql"),
            ),
            step(7, "corrections", file!("0007_corrections.sql")),
        ])
    }};
}
pub(crate) use migrator;

/// Opens the store named by a database URL: `postgres://…` for PostgreSQL, a path or
/// `sqlite://…` for SQLite.
pub async fn open(url: &str) -> Result<SharedStore, Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url).await?))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Ok(Arc::new(sqlite::SqliteStore::open(path).await?))
    }
}
