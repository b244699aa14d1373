//! The stored records: what the store reads and writes (cases, events, timers, messages, referrals, units, grids, parties, rules, plans, campaigns), as plain data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{
    Actor, CaseId, CommunityId, DepartmentId, GridId, InspectionId, InspectorId, PartyId, Role,
    StreetId, SupervisorId, UnitId,
};
use crate::machine::{CaseSnapshot, Decision, TimerDraft};
use crate::registry::Unit;
use crate::spatial::crs::Crs;

mod calendar;
mod deliveries;
mod tips;
pub use calendar::*;
pub use deliveries::*;
pub use tips::*;

pub use anju_core::records::{EventRecord, OutboxMessage, ReferralRecord};

/// A case with everything stored about it besides its history.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
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
                from_at: Some(t.from),
                provisional: false,
            });
        }
    }
}

/// A case's running timer. `seq` numbers the timers a case has had, so that a claim
/// on a timer that was since cancelled or replaced can tell.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRecord {
    pub case_id: CaseId,
    pub seq: i64,
    pub kind: String,
    pub fire_command: String,
    pub due_at: DateTime<Utc>,
    /// When it started counting (`None` for a timer scheduled before this was kept):
    /// a timer in working days is dated again from here under a newer calendar.
    pub from_at: Option<DateTime<Utc>>,
    /// It counts working days and reached past the last year the calendar in force
    /// knows the holidays of: it may move when that year is published. Judged by the
    /// runtime when it answers (`false` as stored).
    pub provisional: bool,
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
    /// Committed: `decision.next` is the case after it; `case` is the whole case as
    /// committed (its timer included) and `event` the event the command added, as
    /// stored, so that nothing needs to be read back to answer.
    Done {
        decision: Box<Decision>,
        at: DateTime<Utc>,
        case: Box<CaseRecord>,
        event: Box<EventRecord>,
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
    /// When the visit was observed on site.
    pub at: DateTime<Utc>,
    /// When it was recorded (`at` or later).
    pub recorded_at: DateTime<Utc>,
    /// The phone's position; the unit's point when it gave none (`located` false).
    pub lon: f64,
    pub lat: f64,
    pub distance_m: f64,
    /// Farther from the unit than the service's on-site distance.
    pub off_site: bool,
    /// The phone gave a position.
    pub located: bool,
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
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRoute {
    pub inspector_id: InspectorId,
    pub shift: String,
    pub capacity: u32,
    pub length_m: f64,
    pub nn_length_m: f64,
    pub planned_at: DateTime<Utc>,
    pub stops: Vec<StoredStop>,
}

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct PartyListing {
    pub id: PartyId,
    pub kind: String,
    pub name: String,
    pub phone: Option<String>,
    pub units: i64,
}

/// A rule version published at run time.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleVersion {
    pub spec: crate::rules::RuleSpec,
    pub source: String,
    pub sha256: String,
    pub published_at: DateTime<Utc>,
    pub published_by: String,
}

/// An event escalation rules listen to, waiting for the rule worker.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct PartyUnit {
    pub unit: Unit,
    /// Open cases with a rectification order.
    pub open_orders: i64,
    /// The earliest deadline among them.
    pub next_deadline: Option<DateTime<Utc>>,
}

/// What a unit's public placard shows: no personal data.
#[derive(Debug, Clone, PartialEq)]
pub struct Placard {
    /// The unit (not shown on the public page).
    pub unit_id: UnitId,
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
#[derive(Debug, Clone, PartialEq)]
pub struct GradeRecord {
    pub stars: Option<u8>,
    pub score: Option<f64>,
    pub reasons: Vec<String>,
    pub cause: String,
    pub inspection_id: Option<InspectionId>,
    pub at: DateTime<Utc>,
}

/// An inspection as stored, with the unit's address.
#[derive(Debug, Clone, PartialEq)]
pub struct InspectionRecord {
    pub id: InspectionId,
    pub unit_id: UnitId,
    pub address: String,
    pub inspector_id: Option<InspectorId>,
    /// When the visit was observed on site.
    pub at: DateTime<Utc>,
    pub lon: f64,
    pub lat: f64,
    pub distance_m: f64,
    pub off_site: bool,
    /// The phone gave a position (else the point is the unit's).
    pub located: bool,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    pub street_id: Option<StreetId>,
    pub unit_id: Option<UnitId>,
    pub party_id: Option<PartyId>,
    /// Only cases not closed (`true`) or closed (`false`).
    pub open: Option<bool>,
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
    /// The directory's generation when the token was read: a caller's scope resolved
    /// at another generation is resolved again.
    pub directory_generation: i64,
    /// When it stops working; `None` never.
    pub expires_at: Option<DateTime<Utc>>,
    /// The person behind a session token.
    pub account: Option<i64>,
}

/// A person's account: who they act as, their addresses and their preferences.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub subject: i64,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The channels they want messages on; `None`: every channel they have an address on.
    pub channels: Option<Vec<String>>,
    /// One daily digest instead of single messages.
    pub digest: bool,
}

/// What a printed rectification order names besides the case: its document number and
/// when it was issued (none for orders issued before numbering), the responsible
/// party, the inspector, the unit's placard code and the district.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSheet {
    pub document_no: Option<String>,
    pub issued_at: Option<DateTime<Utc>>,
    pub party: Option<String>,
    pub inspector: Option<String>,
    pub public_code: String,
    pub district: Option<String>,
}

/// How a person wants to be told (their account's preferences).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preference {
    /// The channels they chose; `None`: every channel they have an address on.
    pub channels: Option<Vec<String>>,
    /// A daily digest instead of single messages.
    pub digest: bool,
}

/// The newest sign-in code of an address that is neither used nor expired.
#[derive(Debug, Clone, PartialEq)]
pub struct SigninCode {
    pub id: i64,
    pub digest: String,
    pub failures: i64,
}

/// What became of a request for a sign-in code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRequest {
    /// A code was written, with this id.
    Issued(i64),
    /// Too many codes for this address from this requester in the window.
    RequesterLimited,
    /// Too many codes for this address from everyone in the window.
    AddressLimited,
    /// Too many codes asked for by this client in the window.
    ClientLimited,
}

/// A token as `anju token list` shows it: never its secret, only the start of its
/// digest, which `anju token revoke` takes.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenListing {
    pub id: String,
    pub role: Role,
    pub subject: i64,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A street (街道) with its outline, the union of its grids' shapes, if it has any.
#[derive(Debug, Clone, PartialEq)]
pub struct StreetRecord {
    pub id: StreetId,
    pub code: String,
    pub name: String,
    pub district_code: String,
    /// GeoJSON MultiPolygon text, WGS-84.
    pub outline: Option<String>,
}

/// A grid and where it sits.
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct UnitPartyRecord {
    pub party_id: PartyId,
    pub role: String,
    pub from_at: DateTime<Utc>,
    pub to_at: Option<DateTime<Utc>>,
}

/// A supervisor's level and area.
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Departments' officers (people, written as accounts).
    pub officers: u64,
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
        self.officers += other.officers;
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
#[derive(Debug, Clone, Copy, Default)]
pub struct TimerBacklog {
    pub pending: i64,
    pub due: i64,
    pub oldest_due_at: Option<DateTime<Utc>>,
}

/// An uploaded file as stored: its own random id, the blob it shares with identical
/// files (by SHA-256), what it is, who uploaded it, and what its EXIF says.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceRecord {
    pub id: String,
    pub sha256: String,
    pub kind: crate::evidence::EvidenceKind,
    pub media_type: crate::evidence::MediaType,
    pub bytes: i64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub file_name: String,
    pub owner_role: Role,
    pub owner_subject: i64,
    /// The history's actor id of who uploaded it.
    pub uploaded_by: String,
    pub uploaded_at: DateTime<Utc>,
    /// What the photo's EXIF says.
    pub facts: crate::evidence::PhotoFacts,
    pub has_thumbnail: bool,
}
