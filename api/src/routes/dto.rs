//! What a case, a unit and an inspection look like over HTTP: the API's own answers, converted from the engine's records field by field, so that renaming or adding a field in the engine never changes the public API by itself (tests hold the shapes).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use anju_engine::domain::{
    BuildingId, CaseId, CommunityId, DepartmentId, GridId, InspectionId, InspectorId, PartyId,
    StreetId, UnitId,
};
use anju_engine::grading::Checklist;
use anju_engine::machine::CaseSnapshot;
use anju_engine::model::{CaseRecord, DeliveryRecord, EventRecord, ReferralRecord, TimerRecord};
use anju_engine::registry::Unit;
use anju_engine::runtime::{CaseView, CommandAnswer, InspectionOutcome, StateNames};
use anju_engine::time;

/// A case: as a decision left it, with its record's own fields.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CaseOut<'a> {
    #[serde(flatten)]
    snapshot: SnapshotOut<'a>,
    /// The deadline in China time, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    deadline_local: Option<String>,
    definition_id: i64,
    unit_id: UnitId,
    inspection_id: Option<InspectionId>,
    note: Option<&'a str>,
    evidence: &'a [String],
    lon: f64,
    lat: f64,
    opened_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    timer: Option<TimerOut<'a>>,
}

impl<'a> CaseOut<'a> {
    pub(super) fn of(c: &'a CaseRecord) -> CaseOut<'a> {
        CaseOut {
            snapshot: SnapshotOut::of(&c.snapshot),
            deadline_local: c.snapshot.deadline_at.map(time::local_time),
            definition_id: c.definition_id,
            unit_id: c.unit_id,
            inspection_id: c.inspection_id,
            note: c.note.as_deref(),
            evidence: &c.evidence,
            lon: c.lon,
            lat: c.lat,
            opened_at: c.opened_at,
            updated_at: c.updated_at,
            timer: c.timer.as_ref().map(TimerOut::of),
        }
    }
}

/// A case's running timer.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TimerOut<'a> {
    case_id: CaseId,
    seq: i64,
    kind: &'a str,
    fire_command: &'a str,
    due_at: DateTime<Utc>,
    /// Counted in working days past the last year whose public holidays are published:
    /// it may move when that year is (and is then re-dated by an event of its own).
    provisional: bool,
}

impl<'a> TimerOut<'a> {
    fn of(t: &'a TimerRecord) -> TimerOut<'a> {
        TimerOut {
            case_id: t.case_id,
            seq: t.seq,
            kind: &t.kind,
            fire_command: &t.fire_command,
            due_at: t.due_at,
            provisional: t.provisional,
        }
    }
}

/// Who acted.
#[derive(Serialize, utoipa::ToSchema)]
struct ActorOut<'a> {
    role: &'static str,
    id: &'a str,
}

/// An event of a case's history.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct EventOut<'a> {
    seq: i64,
    at: DateTime<Utc>,
    actor: ActorOut<'a>,
    command: &'a str,
    from_state: Option<&'a str>,
    to_state: &'a str,
    reason: Option<&'a str>,
    data: &'a Value,
}

impl<'a> EventOut<'a> {
    pub(super) fn of(e: &'a EventRecord) -> EventOut<'a> {
        EventOut {
            seq: e.seq,
            at: e.at,
            actor: ActorOut {
                role: e.actor.role.as_str(),
                id: &e.actor.id,
            },
            command: &e.command,
            from_state: e.from_state.as_deref(),
            to_state: &e.to_state,
            reason: e.reason.as_deref(),
            data: &e.data,
        }
    }
}

/// A referral of a case to a department.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReferralOut<'a> {
    id: i64,
    case_id: CaseId,
    department_id: DepartmentId,
    status: &'a str,
    referred_at: DateTime<Utc>,
    responded_at: Option<DateTime<Utc>>,
    reason_code: Option<&'a str>,
    result: Option<&'a Value>,
}

impl<'a> ReferralOut<'a> {
    pub(super) fn of(r: &'a ReferralRecord) -> ReferralOut<'a> {
        ReferralOut {
            id: r.id,
            case_id: r.case_id,
            department_id: r.department_id,
            status: &r.status,
            referred_at: r.referred_at,
            responded_at: r.responded_at,
            reason_code: r.reason_code.as_deref(),
            result: r.result.as_ref(),
        }
    }
}

/// A case's workflow and its state's names.
#[derive(Serialize, utoipa::ToSchema)]
struct NamesOut<'a> {
    workflow: &'a str,
    workflow_version: u32,
    state_zh: &'a str,
    state_en: &'a str,
    terminal: bool,
}

impl<'a> NamesOut<'a> {
    fn of(n: &'a StateNames) -> NamesOut<'a> {
        NamesOut {
            workflow: &n.workflow,
            workflow_version: n.workflow_version,
            state_zh: &n.state_zh,
            state_en: &n.state_en,
            terminal: n.terminal,
        }
    }
}

/// A case with its history, timers, referrals and the commands the caller may issue.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CaseViewOut<'a> {
    case: CaseOut<'a>,
    #[serde(flatten)]
    names: NamesOut<'a>,
    history: Vec<EventOut<'a>>,
    timers: Vec<TimerOut<'a>>,
    referrals: Vec<ReferralOut<'a>>,
    commands: &'a [String],
    evidence: Vec<Value>,
}

impl<'a> CaseViewOut<'a> {
    pub(super) fn of(v: &'a CaseView) -> CaseViewOut<'a> {
        CaseViewOut {
            case: CaseOut::of(&v.case),
            names: NamesOut::of(&v.names),
            history: v.history.iter().map(EventOut::of).collect(),
            timers: v.timers.iter().map(TimerOut::of).collect(),
            referrals: v.referrals.iter().map(ReferralOut::of).collect(),
            commands: &v.commands,
            evidence: v.evidence.iter().map(evidence_out).collect(),
        }
    }
}

/// An evidence reference of a case: an upload (verified) with how its photo was
/// judged, or a string stored before uploads existed (unverified).
pub(crate) fn evidence_out(e: &anju_engine::runtime::EvidenceView) -> Value {
    use anju_engine::evidence::PhotoCheck;
    let (distance_m, other_day) = match e.check {
        Some(PhotoCheck::OffSite {
            distance_m,
            other_day,
        }) => (distance_m.map(|d| d.round()), Some(other_day)),
        _ => (None, None),
    };
    match &e.record {
        Some(r) => serde_json::json!({
            "reference": e.reference,
            "verified": true,
            "event_seq": e.event_seq,
            "kind": r.kind.as_str(),
            "media_type": r.media_type.as_str(),
            "file_name": r.file_name,
            "url": format!("/api/v1/evidence/{}/file", r.id),
            "thumbnail_url": r.has_thumbnail.then(|| format!("/api/v1/evidence/{}/thumbnail", r.id)),
            "photo_check": e.check.map(|c| c.as_str()),
            "distance_m": distance_m,
            "other_day": other_day,
            "taken_at": r.facts.taken.map(|t| t.stored()),
        }),
        None => serde_json::json!({
            "reference": e.reference,
            "verified": false,
            "event_seq": e.event_seq,
        }),
    }
}

/// The answer to a command: the case as committed, the events it added, its timer and
/// the commands the caller may issue next.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct AnswerOut<'a> {
    case: CaseOut<'a>,
    #[serde(flatten)]
    names: NamesOut<'a>,
    events: Vec<EventOut<'a>>,
    timers: Vec<TimerOut<'a>>,
    commands: &'a [String],
}

impl<'a> AnswerOut<'a> {
    pub(super) fn of(a: &'a CommandAnswer) -> AnswerOut<'a> {
        AnswerOut {
            case: CaseOut::of(&a.case),
            names: NamesOut::of(&a.names),
            events: a.events.iter().map(EventOut::of).collect(),
            timers: a.timers.iter().map(TimerOut::of).collect(),
            commands: &a.commands,
        }
    }
}

/// A unit of the registry.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct UnitOut<'a> {
    id: UnitId,
    address_code: &'a str,
    building_id: BuildingId,
    address: &'a str,
    lon: f64,
    lat: f64,
    floor_area: f64,
    occupants: i64,
    grid_id: Option<GridId>,
    community_id: Option<CommunityId>,
    street_id: Option<StreetId>,
    district_code: &'a str,
    party_id: Option<PartyId>,
    created_at: DateTime<Utc>,
    stars: Option<u8>,
    score: Option<f64>,
    checklist: Option<&'a Checklist>,
    last_inspected_at: Option<DateTime<Utc>>,
    last_closed_at: Option<DateTime<Utc>>,
    next_due_at: Option<DateTime<Utc>>,
    evening_only: bool,
    public_code: &'a str,
}

impl<'a> UnitOut<'a> {
    pub(super) fn of(u: &'a Unit) -> UnitOut<'a> {
        UnitOut {
            id: u.id,
            address_code: &u.address_code,
            building_id: u.building_id,
            address: &u.address,
            lon: u.lon,
            lat: u.lat,
            floor_area: u.floor_area,
            occupants: u.occupants,
            grid_id: u.grid_id,
            community_id: u.community_id,
            street_id: u.street_id,
            district_code: &u.district_code,
            party_id: u.party_id,
            created_at: u.created_at,
            stars: u.stars,
            score: u.score,
            checklist: u.checklist.as_ref(),
            last_inspected_at: u.last_inspected_at,
            last_closed_at: u.last_closed_at,
            next_due_at: u.next_due_at,
            evening_only: u.evening_only,
            public_code: &u.public_code,
        }
    }
}

impl UnitOut<'_> {
    /// The unit with its point in another datum (`lon`, `lat` as the caller asked).
    pub(super) fn at(mut self, lon: f64, lat: f64) -> Self {
        self.lon = lon;
        self.lat = lat;
        self
    }
}

/// A case as a decision left it (the cases an inspection opened).
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct SnapshotOut<'a> {
    id: CaseId,
    state: &'a str,
    version: i64,
    category: &'a str,
    severity: &'a str,
    address: &'a str,
    district_code: &'a str,
    street_id: Option<StreetId>,
    grid_id: Option<GridId>,
    party_id: Option<PartyId>,
    inspector_id: Option<InspectorId>,
    department_id: Option<DepartmentId>,
    deadline_at: Option<DateTime<Utc>>,
    order_no: i32,
    escalation: i32,
    reopen_count: i32,
    closed_at: Option<DateTime<Utc>>,
    priority: i32,
    review_required: bool,
}

impl<'a> SnapshotOut<'a> {
    fn of(s: &'a CaseSnapshot) -> SnapshotOut<'a> {
        SnapshotOut {
            id: s.id,
            state: &s.state,
            version: s.version,
            category: &s.category,
            severity: &s.severity,
            address: &s.address,
            district_code: &s.district_code,
            street_id: s.street_id,
            grid_id: s.grid_id,
            party_id: s.party_id,
            inspector_id: s.inspector_id,
            department_id: s.department_id,
            deadline_at: s.deadline_at,
            order_no: s.order_no,
            escalation: s.escalation,
            reopen_count: s.reopen_count,
            closed_at: s.closed_at,
            priority: s.priority,
            review_required: s.review_required,
        }
    }
}

/// A finding attached to an open case.
#[derive(Serialize, utoipa::ToSchema)]
struct AttachedOut {
    finding: usize,
    case_id: CaseId,
}

/// An open case a finding may duplicate.
#[derive(Serialize, utoipa::ToSchema)]
struct DuplicateOut {
    finding: usize,
    case_id: CaseId,
    unit_id: UnitId,
    distance_m: f64,
}

/// A unit's grade after an inspection.
#[derive(Serialize, utoipa::ToSchema)]
struct GradeOut<'a> {
    stars: Option<u8>,
    score: Option<f64>,
    reasons: &'a [String],
    changed: bool,
    next_due_at: Option<DateTime<Utc>>,
}

/// What an inspection recorded.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct InspectionOut<'a> {
    inspection_id: InspectionId,
    unit_id: UnitId,
    /// To the decimetre.
    distance_m: f64,
    off_site: bool,
    /// The phone gave a position (else the visit is placed at the unit).
    located: bool,
    cases: Vec<SnapshotOut<'a>>,
    findings_of_cases: &'a [Vec<usize>],
    attached: Vec<AttachedOut>,
    possible_duplicates: Vec<DuplicateOut>,
    grade: GradeOut<'a>,
}

impl<'a> InspectionOut<'a> {
    pub(super) fn of(o: &'a InspectionOutcome) -> InspectionOut<'a> {
        InspectionOut {
            inspection_id: o.inspection_id,
            unit_id: o.unit_id,
            distance_m: (o.distance_m * 10.0).round() / 10.0,
            off_site: o.off_site,
            located: o.located,
            cases: o.cases.iter().map(SnapshotOut::of).collect(),
            findings_of_cases: &o.findings_of_cases,
            attached: o
                .attached
                .iter()
                .map(|a| AttachedOut {
                    finding: a.finding,
                    case_id: a.case_id,
                })
                .collect(),
            possible_duplicates: o
                .possible_duplicates
                .iter()
                .map(|d| DuplicateOut {
                    finding: d.finding,
                    case_id: d.case_id,
                    unit_id: d.unit_id,
                    distance_m: d.distance_m,
                })
                .collect(),
            grade: GradeOut {
                stars: o.grade.stars,
                score: o.grade.score,
                reasons: &o.grade.reasons,
                changed: o.grade.changed,
                next_due_at: o.grade.next_due_at,
            },
        }
    }
}

/// A message to one person on one channel: where it went and how it went.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeliveryOut<'a> {
    id: i64,
    message_id: &'a str,
    outbox_id: i64,
    case_id: CaseId,
    recipient: &'a str,
    channel: &'a str,
    address: &'a str,
    state: &'a str,
    attempts: i64,
    answer: Option<&'a str>,
    sent_at: Option<DateTime<Utc>>,
}

impl<'a> DeliveryOut<'a> {
    pub(super) fn of(d: &'a DeliveryRecord) -> DeliveryOut<'a> {
        DeliveryOut {
            id: d.id,
            message_id: &d.message_id,
            outbox_id: d.outbox_id,
            case_id: d.case_id,
            recipient: &d.recipient,
            channel: &d.channel,
            address: &d.address,
            state: &d.state,
            attempts: d.attempts,
            answer: d.answer.as_deref(),
            sent_at: d.sent_at,
        }
    }
}
