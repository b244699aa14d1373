//! The SQL both backends share, compiled once per backend: `super` names the database (`Db`), the store type (`This`) and the dialect's few differences.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Executor, QueryBuilder, Row as _};

use super::{Db, MAX_PARAMS, SKIP_LOCKED, This};
use crate::auth::Scope;
use crate::domain::{
    Actor, BuildingId, CaseId, CommunityId, DepartmentId, GridId, InspectionId, InspectorId,
    PartyId, Role, StreetId, SupervisorId, UnitId,
};
use crate::machine::{CaseSnapshot, ReferralChange};
use crate::planning::{Backlog, Candidate, DayPlan, Planner, Reason};
use crate::registry::{BuildingPlace, Record, Unit, UnitRow};
use crate::routing::DepartmentInfo;
use crate::spatial::crs::Crs;
use crate::spatial::grids::{GridPlace, Move};
use crate::spatial::index::Located;
use crate::store::batch::{CaseWrite, Writes};
use crate::store::{
    Agreement, Applied, Attachment, Backend, BlacklistChange, BlacklistEntry, CampaignArea,
    CampaignProgress, CampaignRecord, CaseFilter, CaseRecord, CheckItem, Decider, Error,
    EventRecord, GradeRecord, GradeUpdate, GridRecord, IdempotencyKey, Idempotent, ImportCounts,
    InspectionFilter, InspectionRecord, InspectorListing, InsurancePolicy, LocationCorrection,
    NewCampaign, NewCase, NewInspection, OpenCase, OutboxMessage, PartyListing, PartyRecord,
    PartyUnit, Placard, PlanSave, RecordedInspection, ReferralRecord, Respond, RuleJob,
    RuleVersion, Store, StoredRoute, StoredStop, SupervisorRecord, TimerBacklog, TimerRecord,
    TokenRecord, TransitionRequest, UnitPartyRecord,
};
use crate::time::{from_millis, to_millis};

pub(super) type Row = <Db as sqlx::Database>::Row;
pub(super) type Tx<'c> = sqlx::Transaction<'c, Db>;

pub(super) const CASE_COLUMNS: &str = "id, definition_id, unit_id, inspection_id, category, severity, \
    state, version, address, district_code, street_id, grid_id, party_id, inspector_id, \
    department_id, deadline_at, order_no, escalation, reopen_count, note, evidence, lon, lat, \
    opened_at, updated_at, closed_at, timer_seq, timer_kind, timer_fire, timer_due_at, priority, \
    review_required, rule_mark, acted_version";

const UNIT_COLUMNS: &str = "id, address_code, building_id, address, lon, lat, floor_area, \
    occupants, grid_id, community_id, street_id, district_code, party_id, created_at, stars, \
    score, checklist, last_inspected_at, last_closed_at, next_due_at, evening_only, public_code";

const OUTBOX_COLUMNS: &str = "id, case_id, event_seq, recipient_kind, recipient_id, template, \
    subject, body, created_at, attempts, delivered_at, channel, last_error";

/// Builds a query text once, with the dialect's suffixes, for the life of the process.
fn leak(sql: String) -> &'static str {
    sql.leak()
}

static SELECT_CASE: LazyLock<&'static str> =
    LazyLock::new(|| leak(format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1")));

static SELECT_UNIT: LazyLock<&'static str> =
    LazyLock::new(|| leak(format!("SELECT {UNIT_COLUMNS} FROM units WHERE id = $1")));

static SELECT_OPEN_CASES_IN_BUILDING: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "SELECT {CASE_COLUMNS} FROM cases WHERE closed_at IS NULL \
         AND unit_id IN (SELECT id FROM units WHERE building_id = $1) ORDER BY id"
    ))
});

static SELECT_GRID_UNITS: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "SELECT {UNIT_COLUMNS} FROM units WHERE grid_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
});

static CLAIM_TIMERS: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "UPDATE cases SET timer_claimed_until = $1, timer_claimed_by = $2 \
         WHERE id IN (SELECT id FROM cases \
                      WHERE timer_due_at <= $3 \
                        AND (timer_claimed_until IS NULL OR timer_claimed_until <= $3) \
                      ORDER BY timer_due_at, id LIMIT $4{SKIP_LOCKED}) \
         RETURNING id, timer_seq, timer_kind, timer_fire, timer_due_at"
    ))
});

static CLAIM_OUTBOX: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "UPDATE outbox SET claimed_until = $1, claimed_by = $2 \
         WHERE id IN (SELECT id FROM outbox \
                      WHERE delivered_at IS NULL AND next_attempt_at <= $3 \
                        AND (claimed_until IS NULL OR claimed_until <= $3) \
                      ORDER BY next_attempt_at, id LIMIT $4{SKIP_LOCKED}) \
         RETURNING {OUTBOX_COLUMNS}"
    ))
});

const RULE_JOB_COLUMNS: &str =
    "id, case_id, event_seq, on_event, detail, created_at, done_at, outcome";

static CLAIM_RULE_JOBS: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "UPDATE rule_jobs SET claimed_until = $1, claimed_by = $2 \
         WHERE id IN (SELECT id FROM rule_jobs \
                      WHERE head = 1 AND done_at IS NULL \
                        AND (claimed_until IS NULL OR claimed_until <= $3) \
                      ORDER BY id LIMIT $4{SKIP_LOCKED}) \
         RETURNING {RULE_JOB_COLUMNS}"
    ))
});

const BLACKLIST_COLUMNS: &str = "b.id, b.party_id, p.name AS party_name, p.kind AS party_kind, \
    b.status, b.reason, b.source, b.case_id, b.district_code, b.proposed_at, b.decided_by, \
    b.decided_at, b.decision_note, b.expires_at, b.appeal, b.appealed_at, b.appeal_decided_by, \
    b.appeal_decided_at, b.appeal_note, b.published";

fn rule_job_from_row(r: &Row) -> Result<RuleJob, Error> {
    Ok(RuleJob {
        id: r.try_get("id")?,
        case_id: CaseId(r.try_get("case_id")?),
        event_seq: r.try_get("event_seq")?,
        trigger: r.try_get("on_event")?,
        detail: r.try_get::<Option<Json<Value>>, _>("detail")?.map(|j| j.0),
        created_at: from_millis(r.try_get("created_at")?),
        done_at: r.try_get::<Option<i64>, _>("done_at")?.map(from_millis),
        outcome: r.try_get::<Option<Json<Value>>, _>("outcome")?.map(|j| j.0),
    })
}

fn blacklist_from_row(r: &Row) -> Result<BlacklistEntry, Error> {
    let at = |name: &str| -> Result<Option<DateTime<Utc>>, Error> {
        Ok(r.try_get::<Option<i64>, _>(name)?.map(from_millis))
    };
    Ok(BlacklistEntry {
        id: r.try_get("id")?,
        party_id: PartyId(r.try_get("party_id")?),
        party_name: r.try_get("party_name")?,
        party_kind: r.try_get("party_kind")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        source: r.try_get("source")?,
        case_id: r.try_get::<Option<i64>, _>("case_id")?.map(CaseId),
        district_code: r.try_get("district_code")?,
        proposed_at: from_millis(r.try_get("proposed_at")?),
        decided_by: r.try_get("decided_by")?,
        decided_at: at("decided_at")?,
        decision_note: r.try_get("decision_note")?,
        expires_at: at("expires_at")?,
        appeal: r.try_get("appeal")?,
        appealed_at: at("appealed_at")?,
        appeal_decided_by: r.try_get("appeal_decided_by")?,
        appeal_decided_at: at("appeal_decided_at")?,
        appeal_note: r.try_get("appeal_note")?,
        published: r.try_get::<i64, _>("published")? != 0,
    })
}

/// Open cases with only the columns rules see (reading is most of a sweep's time);
/// callers add conditions after `WHERE closed_at IS NULL`.
const OPEN_CASE_SELECT: &str = "SELECT id, unit_id, category, severity, state, order_no, \
    escalation, reopen_count, deadline_at, department_id, party_id, address, district_code, \
    (SELECT stars FROM units u WHERE u.id = cases.unit_id) AS unit_stars, \
    (SELECT COUNT(*) FROM cases k WHERE k.unit_id = cases.unit_id AND k.id < cases.id) \
    AS past_cases, street_id, grid_id FROM cases WHERE closed_at IS NULL";

fn open_case_from_row(r: &Row) -> Result<OpenCase, Error> {
    Ok(OpenCase {
        id: CaseId(r.try_get(0)?),
        unit_id: UnitId(r.try_get(1)?),
        category: r.try_get(2)?,
        severity: r.try_get(3)?,
        state: r.try_get(4)?,
        order_no: r.try_get(5)?,
        escalation: r.try_get(6)?,
        reopen_count: r.try_get(7)?,
        deadline_at: r.try_get::<Option<i64>, _>(8)?.map(from_millis),
        department_id: r.try_get::<Option<i64>, _>(9)?.map(DepartmentId),
        party_id: r.try_get::<Option<i64>, _>(10)?.map(PartyId),
        address: r.try_get(11)?,
        district_code: r.try_get(12)?,
        unit_stars: stars_at(r, 13)?,
        past_cases: r.try_get(14)?,
        street_id: some_id(r, "street_id")?.map(StreetId),
        grid_id: some_id(r, "grid_id")?.map(GridId),
    })
}

fn date_at(r: &Row, i: usize) -> Result<NaiveDate, Error> {
    r.try_get::<String, _>(i)?.parse().map_err(corrupt)
}

static SELECT_CASE_OUTBOX: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE case_id = $1 ORDER BY id"
    ))
});

fn crs_name(crs: Crs) -> &'static str {
    match crs {
        Crs::Wgs84 => "wgs84",
        Crs::Gcj02 => "gcj02",
    }
}

pub(super) fn ms(t: DateTime<Utc>) -> i64 {
    to_millis(t)
}

pub(super) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Corrupt(what.to_string())
}

/// Every inspector's grids, by inspector id, in grid order.
async fn inspector_grid_lists(
    reader: &sqlx::Pool<Db>,
) -> Result<BTreeMap<i64, Vec<GridId>>, Error> {
    let mut grids: BTreeMap<i64, Vec<GridId>> = BTreeMap::new();
    for r in sqlx::query("SELECT inspector_id, grid_id FROM inspector_grids ORDER BY grid_id")
        .fetch_all(reader)
        .await?
    {
        grids
            .entry(r.try_get("inspector_id")?)
            .or_default()
            .push(GridId(r.try_get("grid_id")?));
    }
    Ok(grids)
}

/// An id column where 0 stands for none: a unit (and its cases) outside every grid has
/// grid, community and street 0, as the columns are NOT NULL (SQLite cannot relax that
/// without rebuilding the table, and both backends keep one schema).
pub(super) fn some_id(row: &Row, column: &str) -> Result<Option<i64>, Error> {
    let id: i64 = row.try_get(column)?;
    Ok((id != 0).then_some(id))
}

pub(super) fn case_from_row(row: &Row) -> Result<CaseRecord, Error> {
    let evidence: Json<Vec<String>> = row.try_get("evidence")?;
    let order_no: i64 = row.try_get("order_no")?;
    let escalation: i64 = row.try_get("escalation")?;
    let reopen_count: i64 = row.try_get("reopen_count")?;
    Ok(CaseRecord {
        snapshot: CaseSnapshot {
            id: CaseId(row.try_get("id")?),
            state: row.try_get("state")?,
            version: row.try_get("version")?,
            category: row.try_get("category")?,
            severity: row.try_get("severity")?,
            address: row.try_get("address")?,
            district_code: row.try_get("district_code")?,
            street_id: some_id(row, "street_id")?.map(StreetId),
            grid_id: some_id(row, "grid_id")?.map(GridId),
            party_id: row.try_get::<Option<i64>, _>("party_id")?.map(PartyId),
            inspector_id: row
                .try_get::<Option<i64>, _>("inspector_id")?
                .map(InspectorId),
            department_id: row
                .try_get::<Option<i64>, _>("department_id")?
                .map(DepartmentId),
            deadline_at: row
                .try_get::<Option<i64>, _>("deadline_at")?
                .map(from_millis),
            order_no: i32::try_from(order_no).map_err(corrupt)?,
            escalation: i32::try_from(escalation).map_err(corrupt)?,
            reopen_count: i32::try_from(reopen_count).map_err(corrupt)?,
            closed_at: row.try_get::<Option<i64>, _>("closed_at")?.map(from_millis),
            priority: i32::try_from(row.try_get::<i64, _>("priority")?).map_err(corrupt)?,
            review_required: row.try_get::<i64, _>("review_required")? != 0,
            rule_mark: row.try_get("rule_mark")?,
            acted_version: row.try_get("acted_version")?,
        },
        definition_id: row.try_get("definition_id")?,
        unit_id: UnitId(row.try_get("unit_id")?),
        inspection_id: row
            .try_get::<Option<i64>, _>("inspection_id")?
            .map(InspectionId),
        note: row.try_get("note")?,
        evidence: evidence.0,
        lon: row.try_get("lon")?,
        lat: row.try_get("lat")?,
        opened_at: from_millis(row.try_get("opened_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
        timer: timer_from_case_row(row)?,
        timer_seq: row.try_get("timer_seq")?,
    })
}

/// The running timer stored on a case row (`id` is the case's).
fn timer_from_case_row(row: &Row) -> Result<Option<TimerRecord>, Error> {
    let due: Option<i64> = row.try_get("timer_due_at")?;
    let Some(due) = due else {
        return Ok(None);
    };
    Ok(Some(TimerRecord {
        case_id: CaseId(row.try_get("id")?),
        seq: row.try_get("timer_seq")?,
        kind: row
            .try_get::<Option<String>, _>("timer_kind")?
            .unwrap_or_default(),
        fire_command: row
            .try_get::<Option<String>, _>("timer_fire")?
            .unwrap_or_default(),
        due_at: from_millis(due),
    }))
}

/// A grade (1 to 5 stars) read from a nullable integer column.
fn stars_at<I: sqlx::ColumnIndex<Row>>(row: &Row, column: I) -> Result<Option<u8>, Error> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|s| u8::try_from(s).map_err(corrupt))
        .transpose()
}

/// An inspector's daily visits: their own, or the planner's default.
fn capacity_at(row: &Row) -> Result<u32, Error> {
    Ok(row
        .try_get::<Option<i64>, _>("capacity")?
        .map(|c| u32::try_from(c).map_err(corrupt))
        .transpose()?
        .unwrap_or(crate::planning::DEFAULT_CAPACITY))
}

/// Open cases of the unit `u` that carry a rectification order.
const OPEN_ORDERS_OF_U: &str = "(SELECT COUNT(*) FROM cases k WHERE k.unit_id = u.id \
    AND k.closed_at IS NULL AND k.order_no > 0)";

fn unit_from_row(row: &Row) -> Result<Unit, Error> {
    let millis = |name: &str| -> Result<Option<DateTime<Utc>>, Error> {
        Ok(row.try_get::<Option<i64>, _>(name)?.map(from_millis))
    };
    let checklist: Option<String> = row.try_get("checklist")?;
    Ok(Unit {
        id: UnitId(row.try_get("id")?),
        address_code: row.try_get("address_code")?,
        building_id: BuildingId(row.try_get("building_id")?),
        address: row.try_get("address")?,
        lon: row.try_get("lon")?,
        lat: row.try_get("lat")?,
        floor_area: row.try_get("floor_area")?,
        occupants: row.try_get("occupants")?,
        grid_id: some_id(row, "grid_id")?.map(GridId),
        community_id: some_id(row, "community_id")?.map(CommunityId),
        street_id: some_id(row, "street_id")?.map(StreetId),
        district_code: row.try_get("district_code")?,
        party_id: row.try_get::<Option<i64>, _>("party_id")?.map(PartyId),
        created_at: from_millis(row.try_get("created_at")?),
        stars: stars_at(row, "stars")?,
        score: row.try_get("score")?,
        checklist: checklist
            .map(|c| serde_json::from_str(&c).map_err(corrupt))
            .transpose()?,
        last_inspected_at: millis("last_inspected_at")?,
        last_closed_at: millis("last_closed_at")?,
        next_due_at: millis("next_due_at")?,
        evening_only: row.try_get("evening_only")?,
        public_code: row.try_get("public_code")?,
    })
}

fn outbox_from_row(row: &Row) -> Result<OutboxMessage, Error> {
    Ok(OutboxMessage {
        id: row.try_get("id")?,
        case_id: CaseId(row.try_get("case_id")?),
        event_seq: row.try_get("event_seq")?,
        recipient_kind: row.try_get("recipient_kind")?,
        recipient_id: row.try_get("recipient_id")?,
        template: row.try_get("template")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        created_at: from_millis(row.try_get("created_at")?),
        attempts: row.try_get("attempts")?,
        delivered_at: row
            .try_get::<Option<i64>, _>("delivered_at")?
            .map(from_millis),
        channel: row.try_get("channel")?,
        last_error: row.try_get("last_error")?,
    })
}

/// Maps a constraint violation caused by the caller's data to a refusal; anything else
/// is the store's own failure.
fn refusal(e: sqlx::Error, what: &str) -> crate::Error {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            crate::Error::Conflict(format!("{what} already exists"))
        }
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => crate::Error::invalid(
            "records",
            format!("{what} refers to something that does not exist"),
        ),
        sqlx::Error::Database(db) if db.is_check_violation() => {
            crate::Error::invalid("records", format!("{what} has a value out of range"))
        }
        _ => crate::Error::Store(Error::Database(e)),
    }
}

/// Claims an idempotency key inside `tx`. `None` means the key is fresh and now taken;
/// `Some` is the earlier request's stored response (or a refusal if the earlier request
/// was a different one).
async fn claim_idempotency_key(
    tx: &mut Tx<'_>,
    idem: &IdempotencyKey,
    now: DateTime<Utc>,
) -> crate::Result<Option<Value>> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (subject, key, request_hash, response, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subject, key) DO NOTHING",
    )
    .bind(&idem.subject)
    .bind(&idem.key)
    .bind(&idem.request_hash)
    .bind(Json(Value::Null))
    .bind(ms(now))
    .execute(&mut **tx)
    .await
    .map_err(Error::from)?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT request_hash, response FROM idempotency_keys WHERE subject = $1 AND key = $2",
    )
    .bind(&idem.subject)
    .bind(&idem.key)
    .fetch_one(&mut **tx)
    .await
    .map_err(Error::from)?;
    let hash: String = row.try_get("request_hash").map_err(Error::from)?;
    if hash != idem.request_hash {
        return Err(crate::Error::IdempotencyKeyReused);
    }
    let response: Json<Value> = row.try_get("response").map_err(Error::from)?;
    Ok(Some(response.0))
}

async fn store_idempotent_response(
    tx: &mut Tx<'_>,
    idem: &IdempotencyKey,
    response: Value,
) -> Result<(), Error> {
    sqlx::query("UPDATE idempotency_keys SET response = $1 WHERE subject = $2 AND key = $3")
        .bind(Json(response))
        .bind(&idem.subject)
        .bind(&idem.key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes a unit's grade and patrol dates, and a history row if the stars changed.
async fn write_grade(
    tx: &mut Tx<'_>,
    g: &GradeUpdate,
    inspection: Option<i64>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE units SET stars = $2, score = $3, checklist = COALESCE($4, checklist), \
         last_inspected_at = COALESCE($5, last_inspected_at), \
         last_closed_at = COALESCE($6, last_closed_at), next_due_at = $7 WHERE id = $1",
    )
    .bind(g.unit_id.0)
    .bind(g.stars.map(i64::from))
    .bind(g.score)
    .bind(
        g.checklist
            .as_ref()
            .map(|c| serde_json::to_string(c).expect("checklists serialize")),
    )
    .bind(g.last_inspected_at.map(ms))
    .bind(g.last_closed_at.map(ms))
    .bind(g.next_due_at.map(ms))
    .execute(&mut **tx)
    .await?;
    if g.changed {
        sqlx::query(
            "INSERT INTO unit_grades (unit_id, stars, score, reasons, cause, inspection_id, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(g.unit_id.0)
        .bind(g.stars.map(i64::from))
        .bind(g.score)
        .bind(serde_json::to_string(&g.reasons).expect("reasons serialize"))
        .bind(&g.cause)
        .bind(inspection)
        .bind(ms(g.at))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Appends the statement for one referral change; shared by both backends.
pub(super) fn push_referral(
    q: &mut QueryBuilder<Db>,
    case: i64,
    seq: i64,
    change: &ReferralChange,
    at: i64,
) {
    match change {
        ReferralChange::Open { department_id } => {
            q.push("INSERT INTO referrals (case_id, department_id, event_seq, status, referred_at) VALUES (")
                .push_bind(case)
                .push(", ")
                .push_bind(department_id.0)
                .push(", ")
                .push_bind(seq)
                .push(", 'pending', ")
                .push_bind(at)
                .push(")");
        }
        ReferralChange::Accept => {
            q.push("UPDATE referrals SET status = 'accepted', responded_at = ")
                .push_bind(at)
                .push(" WHERE status = 'pending' AND case_id = ")
                .push_bind(case);
        }
        ReferralChange::Return { reason_code } => {
            q.push("UPDATE referrals SET status = 'returned', responded_at = ")
                .push_bind(at)
                .push(", reason_code = ")
                .push_bind(reason_code.clone())
                .push(" WHERE status IN ('pending', 'accepted') AND case_id = ")
                .push_bind(case);
        }
        ReferralChange::Complete { result } => {
            q.push("UPDATE referrals SET status = 'completed', result = ")
                .push_bind(Json(result.clone()))
                .push(" WHERE status = 'accepted' AND case_id = ")
                .push_bind(case);
        }
        ReferralChange::Withdraw => {
            q.push("UPDATE referrals SET status = 'withdrawn', responded_at = ")
                .push_bind(at)
                .push(" WHERE status IN ('pending', 'accepted') AND case_id = ")
                .push_bind(case);
        }
    }
}

/// Appends the `i`-th statement of a batch's rule jobs and blacklist proposals (few per
/// batch); shared by both backends. A proposal for a party with an open entry is dropped.
pub(super) fn push_rule_write(q: &mut QueryBuilder<Db>, writes: &Writes, i: usize, at: i64) {
    if let Some((case, seq, trigger)) = writes.rule_jobs.get(i) {
        q.push("INSERT INTO rule_jobs (case_id, event_seq, on_event, created_at, head) VALUES (")
            .push_bind(*case)
            .push(", ")
            .push_bind(*seq)
            .push(", ")
            .push_bind(trigger.as_str())
            .push(", ")
            .push_bind(at)
            .push(", ");
        push_head(q, *case);
        q.push(")");
        return;
    }
    let p = &writes.blacklist[i - writes.rule_jobs.len()];
    q.push(
        "INSERT INTO blacklist (party_id, status, reason, source, case_id, district_code, \
         proposed_at) VALUES (",
    )
    .push_bind(p.party)
    .push(", 'proposed', ")
    .push_bind(p.reason.clone())
    .push(", ")
    .push_bind(p.source.clone())
    .push(", ")
    .push_bind(p.case)
    .push(", ")
    .push_bind(p.district.clone())
    .push(", ")
    .push_bind(at)
    .push(") ON CONFLICT DO NOTHING");
}

/// The `head` of a new rule job of `case`: 1 if the case has no pending job (the new
/// job is next in its case's queue), else 0. The case's row is locked by the caller's
/// transaction (or, on SQLite, the writer is alone), so that a job finished at the
/// same time promotes this one if it has to.
pub(super) fn push_head(q: &mut QueryBuilder<Db>, case: i64) {
    q.push("CASE WHEN EXISTS (SELECT 1 FROM rule_jobs WHERE case_id = ")
        .push_bind(case)
        .push(" AND done_at IS NULL) THEN 0 ELSE 1 END");
}

/// Appends the statement that writes a moved case's place and workflow version.
pub(super) fn push_move(q: &mut QueryBuilder<Db>, id: i64, w: &CaseWrite) {
    q.push("UPDATE cases SET grid_id = ")
        .push_bind(w.after.grid_id.map_or(0, |g| g.0))
        .push(", street_id = ")
        .push_bind(w.after.street_id.map_or(0, |g| g.0))
        .push(", district_code = ")
        .push_bind(w.after.district_code.clone())
        .push(", definition_id = ")
        .push_bind(w.definition_id)
        .push(" WHERE id = ")
        .push_bind(id);
}

/// Rows per multi-row INSERT for a table of `columns` columns.
pub(super) fn rows_per_statement(columns: usize) -> usize {
    (MAX_PARAMS / columns).max(1)
}

async fn import_kind(
    tx: &mut Tx<'_>,
    records: &[&Record],
    now: DateTime<Utc>,
    counts: &mut ImportCounts,
) -> crate::Result<()> {
    let Some(first) = records.first() else {
        return Ok(());
    };
    macro_rules! insert {
        ($head:expr, $cols:expr, $what:expr, |$b:ident, $r:ident| $push:block) => {{
            for chunk in records.chunks(rows_per_statement($cols)) {
                let mut q = QueryBuilder::<Db>::new($head);
                q.push_values(chunk.iter(), |mut $b, $r| $push);
                q.build()
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| refusal(e, $what))?;
            }
            records.len() as u64
        }};
    }
    match first {
        Record::District { .. } => {
            counts.districts += insert!(
                "INSERT INTO districts (code, name_zh, name_en) ",
                3,
                "a district",
                |b, r| {
                    if let Record::District {
                        code,
                        name_zh,
                        name_en,
                    } = r
                    {
                        b.push_bind(code).push_bind(name_zh).push_bind(name_en);
                    }
                }
            )
        }
        Record::Street { .. } => {
            counts.streets += insert!(
                "INSERT INTO streets (id, code, district_code, name) ",
                4,
                "a street",
                |b, r| {
                    if let Record::Street {
                        id,
                        code,
                        district_code,
                        name,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(code)
                            .push_bind(district_code)
                            .push_bind(name);
                    }
                }
            )
        }
        Record::Community { .. } => {
            counts.communities += insert!(
                "INSERT INTO communities (id, code, street_id, name) ",
                4,
                "a community",
                |b, r| {
                    if let Record::Community {
                        id,
                        code,
                        street_id,
                        name,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(code)
                            .push_bind(street_id.0)
                            .push_bind(name);
                    }
                }
            )
        }
        Record::Grid { .. } => {
            counts.grids += insert!(
                "INSERT INTO grids (id, code, community_id, name, geometry) ",
                5,
                "a grid",
                |b, r| {
                    if let Record::Grid {
                        id,
                        code,
                        community_id,
                        name,
                        geometry,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(code)
                            .push_bind(community_id.0)
                            .push_bind(name)
                            .push_bind(geometry.as_ref().map(|g| g.to_string()));
                    }
                }
            )
        }
        Record::Building { .. } => {
            counts.buildings += insert!(
                "INSERT INTO buildings (id, grid_id, address, lon, lat) ",
                5,
                "a building",
                |b, r| {
                    if let Record::Building {
                        id,
                        grid_id,
                        address,
                        lon,
                        lat,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(grid_id.0)
                            .push_bind(address)
                            .push_bind(*lon)
                            .push_bind(*lat);
                    }
                }
            )
        }
        Record::Party { .. } => {
            counts.parties += insert!(
                "INSERT INTO parties (id, kind, name, phone, email) ",
                5,
                "a party",
                |b, r| {
                    if let Record::Party {
                        id,
                        kind,
                        name,
                        phone,
                        email,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(kind)
                            .push_bind(name)
                            .push_bind(phone)
                            .push_bind(email);
                    }
                }
            )
        }
        Record::Unit { .. } => {
            // A unit's place is copied from its building in the same statement; a unit
            // whose building does not exist would drop out of the join, so the count of
            // rows written is checked.
            let mut codes = crate::registry::PublicCodes::new();
            for chunk in records.chunks(rows_per_statement(16)) {
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO units (id, address_code, building_id, address, lon, lat, \
                     floor_area, occupants, party_id, created_at, evening_only, stars, \
                     last_inspected_at, next_due_at, public_code, checklist, grid_id, \
                     community_id, street_id, district_code) \
                     SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, \
                     v.column7, v.column8, v.column9, v.column10, v.column11, v.column12, \
                     v.column13, v.column14, v.column15, v.column16, b.grid_id, g.community_id, \
                     c.street_id, s.district_code FROM (",
                );
                q.push_values(chunk.iter(), |mut b, r| {
                    if let Record::Unit {
                        id,
                        address_code,
                        building_id,
                        address,
                        lon,
                        lat,
                        floor_area,
                        occupants,
                        party_id,
                        evening_only,
                        stars,
                        checklist,
                        last_inspected_at,
                        next_due_at,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(address_code)
                            .push_bind(building_id.0)
                            .push_bind(address)
                            .push_bind(*lon)
                            .push_bind(*lat)
                            .push_bind(*floor_area)
                            .push_bind(*occupants)
                            .push_bind(party_id.map(|p| p.0))
                            .push_bind(ms(now))
                            .push_bind(*evening_only)
                            .push_bind(stars.map(i64::from))
                            .push_bind(last_inspected_at.map(ms))
                            .push_bind(next_due_at.map(ms))
                            .push_bind(codes.code_for(*id))
                            .push_bind(
                                checklist.as_ref().map(|c| {
                                    serde_json::to_string(c).expect("checklists serialize")
                                }),
                            );
                    }
                });
                q.push(
                    ") AS v JOIN buildings b ON b.id = v.column3 \
                     JOIN grids g ON g.id = b.grid_id \
                     JOIN communities c ON c.id = g.community_id \
                     JOIN streets s ON s.id = c.street_id",
                );
                let written = q
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| refusal(e, "a unit"))?
                    .rows_affected();
                if written != chunk.len() as u64 {
                    return Err(crate::Error::invalid(
                        "records",
                        format!(
                            "{} units refer to a building that does not exist",
                            chunk.len() as u64 - written
                        ),
                    ));
                }
                let with_party: Vec<(i64, i64)> = chunk
                    .iter()
                    .filter_map(|r| match r {
                        Record::Unit {
                            id,
                            party_id: Some(p),
                            ..
                        } => Some((id.0, p.0)),
                        _ => None,
                    })
                    .collect();
                for part in with_party.chunks(rows_per_statement(3)) {
                    let mut q = QueryBuilder::<Db>::new(
                        "INSERT INTO unit_parties (unit_id, party_id, role, from_at) \
                         SELECT v.column1, v.column2, p.kind, v.column3 FROM (",
                    );
                    q.push_values(part.iter(), |mut b, (unit, party)| {
                        b.push_bind(*unit).push_bind(*party).push_bind(ms(now));
                    });
                    q.push(") AS v JOIN parties p ON p.id = v.column2");
                    q.build()
                        .execute(&mut **tx)
                        .await
                        .map_err(|e| refusal(e, "a unit's responsible party"))?;
                }
            }
            counts.units += records.len() as u64;
        }
        Record::Inspector { .. } => {
            counts.inspectors += insert!(
                "INSERT INTO inspectors (id, name, phone, email, shift, capacity) ",
                6,
                "an inspector",
                |b, r| {
                    if let Record::Inspector {
                        id,
                        name,
                        phone,
                        email,
                        shift,
                        capacity,
                        ..
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(name)
                            .push_bind(phone)
                            .push_bind(email)
                            .push_bind(shift)
                            .push_bind(capacity.map(i64::from));
                    }
                }
            );
            let pairs: Vec<(i64, i64)> = records
                .iter()
                .flat_map(|r| match r {
                    Record::Inspector { id, grids, .. } => {
                        grids.iter().map(|g| (id.0, g.0)).collect::<Vec<_>>()
                    }
                    _ => Vec::new(),
                })
                .collect();
            for part in pairs.chunks(rows_per_statement(2)) {
                let mut q =
                    QueryBuilder::<Db>::new("INSERT INTO inspector_grids (inspector_id, grid_id) ");
                q.push_values(part.iter(), |mut b, (i, g)| {
                    b.push_bind(*i).push_bind(*g);
                });
                q.build()
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| refusal(e, "an inspector's grid"))?;
            }
        }
        Record::Department { .. } => {
            counts.departments += insert!(
                "INSERT INTO departments (id, name, kind, district_code, email) ",
                5,
                "a department",
                |b, r| {
                    if let Record::Department {
                        id,
                        name,
                        kind,
                        district_code,
                        email,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(name)
                            .push_bind(kind)
                            .push_bind(district_code)
                            .push_bind(email);
                    }
                }
            )
        }
        Record::Supervisor { .. } => {
            counts.supervisors += insert!(
                "INSERT INTO supervisors (id, name, level, district_code, street_id, email) ",
                6,
                "a supervisor",
                |b, r| {
                    if let Record::Supervisor {
                        id,
                        name,
                        level,
                        district_code,
                        street_id,
                        email,
                    } = r
                    {
                        b.push_bind(id.0)
                            .push_bind(name)
                            .push_bind(level)
                            .push_bind(district_code)
                            .push_bind(street_id.map(|s| s.0))
                            .push_bind(email);
                    }
                }
            )
        }
    }
    Ok(())
}

fn push_scope(q: &mut QueryBuilder<Db>, scope: &Scope) {
    match scope {
        Scope::City | Scope::System => {}
        Scope::District(code) => {
            q.push(" AND district_code = ").push_bind(code.clone());
        }
        Scope::Street(id) => {
            q.push(" AND street_id = ").push_bind(id.0);
        }
        Scope::Grids(grids) => {
            if grids.is_empty() {
                q.push(" AND 1 = 0");
            } else {
                q.push(" AND grid_id IN (");
                let mut list = q.separated(", ");
                for g in grids {
                    list.push_bind(g.0);
                }
                q.push(")");
            }
        }
        Scope::Party(id) => {
            q.push(" AND party_id = ").push_bind(id.0);
        }
        Scope::Department(id) => {
            q.push(" AND id IN (SELECT case_id FROM referrals WHERE department_id = ")
                .push_bind(id.0)
                .push(")");
        }
    }
}

fn push_in(q: &mut QueryBuilder<Db>, column: &str, values: &[String]) {
    if values.is_empty() {
        q.push(" 1 = 0");
        return;
    }
    q.push(format_args!(" {column} IN ("));
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    q.push(")");
}

const CAMPAIGN_SELECT: &str = "SELECT c.id, c.name, c.area, c.starts_on, c.ends_on, c.checklist, \
    c.created_by, c.created_at, (SELECT COUNT(*) FROM campaign_units cu \
    WHERE cu.campaign_id = c.id) AS units FROM campaigns c";

/// A campaign is visible to those who oversee at least one of its units.
fn push_campaign_scope(q: &mut QueryBuilder<Db>, scope: &Scope) {
    if matches!(scope, Scope::City | Scope::System) {
        return;
    }
    q.push(
        " AND EXISTS (SELECT 1 FROM campaign_units cu JOIN units u ON u.id = cu.unit_id \
         WHERE cu.campaign_id = c.id",
    );
    match scope {
        Scope::Department(_) => {
            q.push(" AND 1 = 0");
        }
        other => push_scope(q, other),
    }
    q.push(")");
}

fn campaign_from_row(r: &Row) -> Result<CampaignRecord, Error> {
    let text = |name: &str| -> Result<String, Error> { Ok(r.try_get::<String, _>(name)?) };
    let date = |name: &str| -> Result<NaiveDate, Error> { text(name)?.parse().map_err(corrupt) };
    Ok(CampaignRecord {
        id: r.try_get("id")?,
        name: text("name")?,
        area: serde_json::from_str(&text("area")?).map_err(corrupt)?,
        starts_on: date("starts_on")?,
        ends_on: date("ends_on")?,
        checklist: serde_json::from_str(&text("checklist")?).map_err(corrupt)?,
        created_by: text("created_by")?,
        created_at: from_millis(r.try_get("created_at")?),
        units: r.try_get("units")?,
    })
}

static PLACARD_SELECT: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "SELECT u.public_code, u.address, u.district_code, u.community_id, \
         c.name AS community_name, u.stars, u.last_inspected_at, \
         {OPEN_ORDERS_OF_U} AS open_orders FROM units u \
         JOIN communities c ON c.id = u.community_id"
    ))
});

fn placard_from_row(r: &Row) -> Result<Placard, Error> {
    Ok(Placard {
        public_code: r.try_get("public_code")?,
        address: r.try_get("address")?,
        district_code: r.try_get("district_code")?,
        community_id: CommunityId(r.try_get("community_id")?),
        community_name: r.try_get("community_name")?,
        stars: stars_at(r, "stars")?,
        last_inspected_at: r
            .try_get::<Option<i64>, _>("last_inspected_at")?
            .map(from_millis),
        open_orders: r.try_get("open_orders")?,
    })
}

#[async_trait]
impl Store for This {
    fn backend(&self) -> Backend {
        super::BACKEND
    }

    fn writers(&self) -> usize {
        self.writer_count()
    }

    fn stale_retries(&self) -> u64 {
        super::stale_retries(self)
    }

    async fn refresh_statistics(&self) -> Result<Vec<String>, Error> {
        super::refresh_statistics(self.writer()).await
    }

    async fn migrate(&self) -> Result<(), Error> {
        super::migrator().run(self.writer()).await?;
        Ok(())
    }

    async fn register_definition(
        &self,
        name: &str,
        version: u32,
        hash: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> crate::Result<i64> {
        let text = serde_json::to_string(body).map_err(corrupt)?;
        sqlx::query(
            "INSERT INTO workflow_definitions (name, version, hash, body, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version) DO NOTHING",
        )
        .bind(name)
        .bind(i64::from(version))
        .bind(hash)
        .bind(text)
        .bind(ms(now))
        .execute(self.writer())
        .await
        .map_err(Error::from)?;
        let row = sqlx::query(
            "SELECT id, hash FROM workflow_definitions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(i64::from(version))
        .fetch_one(self.writer())
        .await
        .map_err(Error::from)?;
        let stored: String = row.try_get("hash").map_err(Error::from)?;
        if stored != hash {
            return Err(crate::Error::Conflict(format!(
                "workflow {name} v{version} is already stored with other content; \
                 running cases depend on it, so publish the change as a new version"
            )));
        }
        Ok(row.try_get("id").map_err(Error::from)?)
    }

    async fn definitions(&self) -> Result<Vec<(i64, Value)>, Error> {
        let rows = sqlx::query("SELECT id, body FROM workflow_definitions ORDER BY id")
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let body: String = r.try_get("body")?;
                Ok((
                    r.try_get("id")?,
                    serde_json::from_str(&body).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    async fn import(&self, records: &[Record], now: DateTime<Utc>) -> crate::Result<ImportCounts> {
        let mut sorted: Vec<&Record> = records.iter().collect();
        sorted.sort_by_key(|r| r.rank());
        let mut counts = ImportCounts::default();
        let mut tx = super::begin_write(self.writer())
            .await
            .map_err(Error::from)?;
        for group in sorted.chunk_by(|a, b| a.rank() == b.rank()) {
            import_kind(&mut tx, group, now, &mut counts).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(counts)
    }

    async fn finish_import(&self) -> Result<(), Error> {
        super::after_import(self.writer()).await
    }

    async fn create_unit(
        &self,
        unit: &UnitRow,
        idem: Option<&IdempotencyKey>,
        respond: &Respond<'_, Unit>,
        now: DateTime<Utc>,
    ) -> crate::Result<Idempotent<Unit>> {
        let mut tx = super::begin_write(self.writer())
            .await
            .map_err(Error::from)?;
        if let Some(idem) = idem
            && let Some(previous) = claim_idempotency_key(&mut tx, idem, now).await?
        {
            return Ok(Idempotent::Replayed(previous));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO units (address_code, building_id, address, lon, lat, floor_area, \
             occupants, grid_id, community_id, street_id, district_code, party_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(&unit.address_code)
        .bind(unit.building_id.0)
        .bind(&unit.address)
        .bind(unit.point.lon())
        .bind(unit.point.lat())
        .bind(unit.floor_area)
        .bind(unit.occupants)
        .bind(unit.place.grid_id.map_or(0, |g| g.0))
        .bind(unit.place.community_id.map_or(0, |c| c.0))
        .bind(unit.place.street_id.map_or(0, |s| s.0))
        .bind(&unit.place.district_code)
        .bind(unit.party_id.map(|p| p.0))
        .bind(ms(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| refusal(e, "a unit with this address code"))?;
        sqlx::query("UPDATE units SET public_code = $2 WHERE id = $1")
            .bind(id)
            .bind(crate::registry::PublicCodes::new().code_for(UnitId(id)))
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        if let Some(party) = unit.party_id {
            sqlx::query(
                "INSERT INTO unit_parties (unit_id, party_id, role, from_at) \
                 SELECT $1, id, kind, $3 FROM parties WHERE id = $2",
            )
            .bind(id)
            .bind(party.0)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        }
        let row = sqlx::query(*SELECT_UNIT)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::from)?;
        let created = unit_from_row(&row)?;
        if let Some(idem) = idem {
            store_idempotent_response(&mut tx, idem, respond(&created)).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Idempotent::Created(created))
    }

    async fn unit(&self, id: UnitId) -> Result<Option<Unit>, Error> {
        let row = sqlx::query(*SELECT_UNIT)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(unit_from_row).transpose()
    }

    async fn units_by_ids(&self, ids: &[UnitId]) -> Result<Vec<Unit>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_statement(1)) {
            let mut q =
                QueryBuilder::<Db>::new(format!("SELECT {UNIT_COLUMNS} FROM units WHERE id IN ("));
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            q.push(")");
            for row in q.build().fetch_all(self.reader()).await? {
                out.push(unit_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn unit_points(&self) -> Result<Vec<Located>, Error> {
        // Read in parts over several connections at once: decoding rows, not the disk,
        // is what takes the time.
        let (low, high): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(id), MAX(id) FROM units")
                .fetch_one(self.reader())
                .await?;
        let (Some(low), Some(high)) = (low, high) else {
            return Ok(Vec::new());
        };
        let parts = 4i64;
        let step = (high - low) / parts + 1;
        let tasks: Vec<_> = (0..parts)
            .map(|k| {
                let pool = self.reader().clone();
                let (from, to) = (low + k * step, low + (k + 1) * step);
                tokio::spawn(async move {
                    use futures_util::TryStreamExt;
                    let mut out = Vec::new();
                    let mut rows =
                        sqlx::query("SELECT id, lon, lat FROM units WHERE id >= $1 AND id < $2")
                            .bind(from)
                            .bind(to)
                            .fetch(&pool);
                    while let Some(row) = rows.try_next().await? {
                        out.push(Located::new(
                            UnitId(row.try_get(0)?),
                            row.try_get(1)?,
                            row.try_get(2)?,
                        ));
                    }
                    Ok::<_, Error>(out)
                })
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            out.extend(
                task.await
                    .map_err(|e| corrupt(format!("reading units: {e}")))??,
            );
        }
        Ok(out)
    }

    async fn unit_grids(&self) -> Result<Vec<(Located, Option<GridId>, String)>, Error> {
        use futures_util::TryStreamExt;
        let mut out = Vec::new();
        let mut rows =
            sqlx::query("SELECT id, lon, lat, grid_id, district_code FROM units ORDER BY id")
                .fetch(self.reader());
        while let Some(row) = rows.try_next().await? {
            out.push((
                Located::new(
                    UnitId(row.try_get("id")?),
                    row.try_get("lon")?,
                    row.try_get("lat")?,
                ),
                some_id(&row, "grid_id")?.map(GridId),
                row.try_get("district_code")?,
            ));
        }
        Ok(out)
    }

    async fn ungridded_units(
        &self,
        scope: &Scope,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {UNIT_COLUMNS} FROM units WHERE grid_id = 0 AND id > "
        ));
        q.push_bind(after.map_or(0, |a| a.0));
        match scope {
            Scope::City | Scope::System => {}
            Scope::District(code) => {
                q.push(" AND district_code = ").push_bind(code.clone());
            }
            // Streets, grids, parties and departments hold no unit outside every grid.
            _ => {
                q.push(" AND 1 = 0");
            }
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(unit_from_row)
            .collect()
    }

    async fn correct_location(&self, c: &LocationCorrection) -> crate::Result<()> {
        let mut tx = super::begin_write(self.writer())
            .await
            .map_err(Error::from)?;
        let p = &c.place;
        let updated = if c.kind == "unit" {
            sqlx::query(
                "UPDATE units SET lon = $2, lat = $3, grid_id = $4, community_id = $5, \
                 street_id = $6, district_code = $7 WHERE id = $1",
            )
            .bind(c.id)
            .bind(c.to.0)
            .bind(c.to.1)
            .bind(p.grid_id.map_or(0, |g| g.0))
            .bind(p.community_id.map_or(0, |g| g.0))
            .bind(p.street_id.map_or(0, |g| g.0))
            .bind(&p.district_code)
            .execute(&mut *tx)
            .await
        } else {
            // A building keeps a grid of the registry; outside every grid, its own.
            sqlx::query(
                "UPDATE buildings SET lon = $2, lat = $3, grid_id = COALESCE($4, grid_id) \
                 WHERE id = $1",
            )
            .bind(c.id)
            .bind(c.to.0)
            .bind(c.to.1)
            .bind(p.grid_id.map(|g| g.0))
            .execute(&mut *tx)
            .await
        }
        .map_err(Error::from)?
        .rows_affected();
        if updated != 1 {
            return Err(crate::Error::not_found(
                if c.kind == "unit" { "unit" } else { "building" },
                c.id,
            ));
        }
        sqlx::query(
            "INSERT INTO location_corrections (kind, object_id, from_lon, from_lat, to_lon, \
             to_lat, grid_before, grid_after, actor, reason, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&c.kind)
        .bind(c.id)
        .bind(c.from.0)
        .bind(c.from.1)
        .bind(c.to.0)
        .bind(c.to.1)
        .bind(c.grid_before.map_or(0, |g| g.0))
        .bind(p.grid_id.map_or(0, |g| g.0))
        .bind(&c.actor)
        .bind(&c.reason)
        .bind(ms(c.at))
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(())
    }

    async fn location_corrections(
        &self,
        kind: &str,
        id: i64,
    ) -> Result<Vec<LocationCorrection>, Error> {
        sqlx::query(
            "SELECT from_lon, from_lat, to_lon, to_lat, grid_before, grid_after, actor, reason, \
             at FROM location_corrections WHERE kind = $1 AND object_id = $2 ORDER BY id",
        )
        .bind(kind)
        .bind(id)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            Ok(LocationCorrection {
                kind: kind.to_string(),
                id,
                from: (r.try_get("from_lon")?, r.try_get("from_lat")?),
                to: (r.try_get("to_lon")?, r.try_get("to_lat")?),
                grid_before: some_id(r, "grid_before")?.map(GridId),
                place: crate::spatial::grids::PointPlace {
                    grid_id: some_id(r, "grid_after")?.map(GridId),
                    community_id: None,
                    street_id: None,
                    district_code: String::new(),
                },
                actor: r.try_get("actor")?,
                reason: r.try_get("reason")?,
                at: from_millis(r.try_get("at")?),
            })
        })
        .collect()
    }

    async fn grids_by_code(&self, codes: &[String]) -> Result<Vec<(String, GridId)>, Error> {
        let mut out = Vec::new();
        for chunk in codes.chunks(rows_per_statement(1)) {
            let mut q = QueryBuilder::<Db>::new("SELECT code, id FROM grids WHERE code IN (");
            let mut list = q.separated(", ");
            for c in chunk {
                list.push_bind(c.clone());
            }
            q.push(")");
            for row in q.build().fetch_all(self.reader()).await? {
                out.push((row.try_get("code")?, GridId(row.try_get("id")?)));
            }
        }
        Ok(out)
    }

    async fn community_by_code(&self, code: &str) -> Result<Option<CommunityId>, Error> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM communities WHERE code = $1")
            .bind(code)
            .fetch_optional(self.reader())
            .await?;
        Ok(id.map(CommunityId))
    }

    async fn save_grids(
        &self,
        updates: &[(GridId, Option<String>, String)],
        creates: &[(String, String, CommunityId, String)],
    ) -> crate::Result<Vec<GridId>> {
        let mut tx = super::begin_write(self.writer())
            .await
            .map_err(Error::from)?;
        for (id, name, geometry) in updates {
            sqlx::query(
                "UPDATE grids SET geometry = $2, name = COALESCE($3, name), \
                 shape_at = (SELECT COALESCE(MAX(shape_at), 0) + 1 FROM grids) WHERE id = $1",
            )
            .bind(id.0)
            .bind(geometry)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        }
        let mut ids = Vec::with_capacity(creates.len());
        for (code, name, community, geometry) in creates {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO grids (code, community_id, name, geometry, shape_at) \
                 VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(shape_at), 0) + 1 FROM grids)) \
                 RETURNING id",
            )
            .bind(code)
            .bind(community.0)
            .bind(name)
            .bind(geometry)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| refusal(e, "a grid"))?;
            ids.push(GridId(id));
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(ids)
    }

    async fn grid(&self, id: GridId) -> Result<Option<GridRecord>, Error> {
        let row = sqlx::query(
            "SELECT g.id, g.code, g.name, g.community_id, c.street_id, s.district_code, g.geometry, \
             (SELECT COUNT(*) FROM units u WHERE u.grid_id = g.id) AS units \
             FROM grids g JOIN communities c ON c.id = g.community_id \
             JOIN streets s ON s.id = c.street_id WHERE g.id = $1",
        )
        .bind(id.0)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            let geometry: Option<String> = r.try_get("geometry")?;
            Ok(GridRecord {
                id: GridId(r.try_get("id")?),
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                community_id: CommunityId(r.try_get("community_id")?),
                street_id: StreetId(r.try_get("street_id")?),
                district_code: r.try_get("district_code")?,
                geometry: geometry
                    .map(|g| serde_json::from_str(&g).map_err(corrupt))
                    .transpose()?,
                units: r.try_get("units")?,
            })
        })
        .transpose()
    }

    async fn grid_units(
        &self,
        id: GridId,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>, Error> {
        let rows = sqlx::query(*SELECT_GRID_UNITS)
            .bind(id.0)
            .bind(after.map_or(0, |u| u.0))
            .bind(i64::from(limit.clamp(1, 5000)))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(unit_from_row).collect()
    }

    async fn grid_shapes(&self) -> Result<Vec<(GridId, String)>, Error> {
        let rows =
            sqlx::query("SELECT id, geometry FROM grids WHERE geometry IS NOT NULL ORDER BY id")
                .fetch_all(self.reader())
                .await?;
        rows.iter()
            .map(|r| Ok((GridId(r.try_get("id")?), r.try_get("geometry")?)))
            .collect()
    }

    async fn move_units(&self, moves: &[Move]) -> Result<u64, Error> {
        let mut tx = super::begin_write(self.writer()).await?;
        let mut moved = 0;
        for chunk in moves.chunks(rows_per_statement(5)) {
            let mut q = QueryBuilder::<Db>::new(
                "UPDATE units SET grid_id = v.column2, community_id = v.column3, \
                 street_id = v.column4, district_code = v.column5 FROM (",
            );
            q.push_values(chunk, |mut b, m| {
                b.push_bind(m.unit.0)
                    .push_bind(m.place.grid_id.map_or(0, |g| g.0))
                    .push_bind(m.place.community_id.map_or(0, |g| g.0))
                    .push_bind(m.place.street_id.map_or(0, |g| g.0))
                    .push_bind(m.place.district_code.clone());
            });
            q.push(") AS v WHERE units.id = v.column1");
            moved += q.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn open_cases_of_units(&self, units: &[UnitId]) -> Result<Vec<CaseRecord>, Error> {
        let mut out = Vec::new();
        for chunk in units.chunks(MAX_PARAMS) {
            let mut q = QueryBuilder::<Db>::new(format!(
                "SELECT {CASE_COLUMNS} FROM cases WHERE closed_at IS NULL AND unit_id IN ("
            ));
            let mut list = q.separated(", ");
            for u in chunk {
                list.push_bind(u.0);
            }
            q.push(") ORDER BY id");
            for row in q.build().fetch_all(self.reader()).await? {
                out.push(case_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn open_cases_on(&self, definitions: &[i64], limit: u32) -> Result<Vec<CaseId>, Error> {
        if definitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT id FROM cases WHERE closed_at IS NULL AND definition_id IN (",
        );
        let mut list = q.separated(", ");
        for d in definitions {
            list.push_bind(*d);
        }
        q.push(") ORDER BY id LIMIT ").push_bind(i64::from(limit));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| Ok(CaseId(r.try_get(0)?)))
            .collect()
    }

    async fn grid_places(&self) -> Result<Vec<(GridId, GridPlace)>, Error> {
        sqlx::query(
            "SELECT g.id, g.community_id, c.street_id, s.district_code FROM grids g \
             JOIN communities c ON c.id = g.community_id JOIN streets s ON s.id = c.street_id",
        )
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            Ok((
                GridId(r.try_get("id")?),
                GridPlace {
                    community_id: CommunityId(r.try_get("community_id")?),
                    street_id: StreetId(r.try_get("street_id")?),
                    district_code: r.try_get("district_code")?,
                },
            ))
        })
        .collect()
    }

    async fn grid_stamp(&self) -> Result<(i64, i64), Error> {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(MAX(shape_at), 0) FROM grids WHERE geometry IS NOT NULL",
        )
        .fetch_one(self.reader())
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    async fn building_place(&self, id: i64) -> Result<Option<BuildingPlace>, Error> {
        let row = sqlx::query(
            "SELECT b.id, b.grid_id, g.community_id, c.street_id, s.district_code, b.lon, b.lat \
             FROM buildings b JOIN grids g ON g.id = b.grid_id \
             JOIN communities c ON c.id = g.community_id JOIN streets s ON s.id = c.street_id \
             WHERE b.id = $1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(BuildingPlace {
                building_id: BuildingId(r.try_get("id")?),
                grid_id: GridId(r.try_get("grid_id")?),
                community_id: CommunityId(r.try_get("community_id")?),
                street_id: StreetId(r.try_get("street_id")?),
                district_code: r.try_get("district_code")?,
                lon: r.try_get("lon")?,
                lat: r.try_get("lat")?,
            })
        })
        .transpose()
    }

    async fn departments(&self) -> Result<Vec<DepartmentInfo>, Error> {
        let rows = sqlx::query("SELECT id, name, kind, district_code FROM departments ORDER BY id")
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DepartmentInfo {
                    id: DepartmentId(r.try_get("id")?),
                    name: r.try_get("name")?,
                    kind: r.try_get("kind")?,
                    district_code: r.try_get("district_code")?,
                })
            })
            .collect()
    }

    async fn inspector_grids(&self, id: InspectorId) -> Result<Option<BTreeSet<GridId>>, Error> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM inspectors WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let grids: Vec<i64> =
            sqlx::query_scalar("SELECT grid_id FROM inspector_grids WHERE inspector_id = $1")
                .bind(id.0)
                .fetch_all(self.reader())
                .await?;
        Ok(Some(grids.into_iter().map(GridId).collect()))
    }

    async fn grid_inspectors(&self, grid: GridId) -> Result<Vec<InspectorId>, Error> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT inspector_id FROM inspector_grids WHERE grid_id = $1 ORDER BY inspector_id",
        )
        .bind(grid.0)
        .fetch_all(self.reader())
        .await?;
        Ok(ids.into_iter().map(InspectorId).collect())
    }

    async fn supervisors(&self) -> Result<Vec<SupervisorRecord>, Error> {
        sqlx::query("SELECT id, name, level, district_code, street_id FROM supervisors ORDER BY id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(SupervisorRecord {
                    id: SupervisorId(r.try_get("id")?),
                    name: r.try_get("name")?,
                    level: r.try_get("level")?,
                    district_code: r.try_get("district_code")?,
                    street_id: r.try_get::<Option<i64>, _>("street_id")?.map(StreetId),
                })
            })
            .collect()
    }

    async fn inspectors(&self) -> Result<Vec<InspectorListing>, Error> {
        let mut grids = inspector_grid_lists(self.reader()).await?;
        sqlx::query("SELECT id, name, shift FROM inspectors ORDER BY id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                Ok(InspectorListing {
                    id: InspectorId(id),
                    name: r.try_get("name")?,
                    shift: r.try_get("shift")?,
                    grids: grids.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn supervisor(&self, id: SupervisorId) -> Result<Option<SupervisorRecord>, Error> {
        let row = sqlx::query(
            "SELECT id, name, level, district_code, street_id FROM supervisors WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(SupervisorRecord {
                id: SupervisorId(r.try_get("id")?),
                name: r.try_get("name")?,
                level: r.try_get("level")?,
                district_code: r.try_get("district_code")?,
                street_id: r.try_get::<Option<i64>, _>("street_id")?.map(StreetId),
            })
        })
        .transpose()
    }

    async fn party_exists(&self, id: PartyId) -> Result<bool, Error> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM parties WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(found.is_some())
    }

    async fn party_kind(&self, id: PartyId) -> Result<Option<String>, Error> {
        Ok(sqlx::query_scalar("SELECT kind FROM parties WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?)
    }

    async fn add_party(
        &self,
        kind: &str,
        name: &str,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> crate::Result<PartyId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO parties (kind, name, phone, email) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(kind)
        .bind(name)
        .bind(phone)
        .bind(email)
        .fetch_one(self.writer())
        .await
        .map_err(|e| refusal(e, "a party"))?;
        Ok(PartyId(id))
    }

    async fn parties(
        &self,
        kind: Option<&str>,
        scope: &Scope,
        after: PartyId,
        limit: u32,
    ) -> Result<Vec<PartyListing>, Error> {
        // Parties with units in the scope; a city-wide scope also lists parties that
        // manage no unit yet.
        let mut q = QueryBuilder::<Db>::new(
            "SELECT p.id, p.kind, p.name, p.phone, \
             (SELECT COUNT(*) FROM units u WHERE u.party_id = p.id) AS units \
             FROM parties p WHERE p.id > ",
        );
        q.push_bind(after.0);
        if let Some(kind) = kind {
            q.push(" AND p.kind = ").push_bind(kind.to_string());
        }
        if !matches!(scope, Scope::City | Scope::System) {
            q.push(" AND p.id IN (SELECT party_id FROM units WHERE party_id IS NOT NULL");
            push_scope(&mut q, scope);
            q.push(")");
        }
        q.push(" ORDER BY p.id LIMIT ").push_bind(i64::from(limit));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(PartyListing {
                    id: PartyId(r.try_get(0)?),
                    kind: r.try_get(1)?,
                    name: r.try_get(2)?,
                    phone: r.try_get(3)?,
                    units: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn set_unit_party(
        &self,
        unit: UnitId,
        party: Option<(PartyId, String)>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = super::begin_write(self.writer()).await?;
        sqlx::query("UPDATE unit_parties SET to_at = $2 WHERE unit_id = $1 AND to_at IS NULL")
            .bind(unit.0)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        if let Some((party, role)) = &party {
            sqlx::query(
                "INSERT INTO unit_parties (unit_id, party_id, role, from_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(unit.0)
            .bind(party.0)
            .bind(role)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE units SET party_id = $2 WHERE id = $1")
            .bind(unit.0)
            .bind(party.map(|(p, _)| p.0))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unit_parties(&self, unit: UnitId) -> Result<Vec<UnitPartyRecord>, Error> {
        let rows = sqlx::query(
            "SELECT party_id, role, from_at, to_at FROM unit_parties WHERE unit_id = $1 \
             ORDER BY from_at, id",
        )
        .bind(unit.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnitPartyRecord {
                    party_id: PartyId(r.try_get("party_id")?),
                    role: r.try_get("role")?,
                    from_at: from_millis(r.try_get("from_at")?),
                    to_at: r.try_get::<Option<i64>, _>("to_at")?.map(from_millis),
                })
            })
            .collect()
    }

    async fn department_exists(&self, id: DepartmentId) -> Result<bool, Error> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM departments WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(found.is_some())
    }

    async fn insert_token(
        &self,
        digest: &str,
        role: Role,
        subject: i64,
        label: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO api_tokens (digest, role, subject_id, label, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest)
        .bind(role.as_str())
        .bind(subject)
        .bind(label)
        .bind(ms(now))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, Error> {
        let row = sqlx::query(
            "SELECT role, subject_id FROM api_tokens WHERE digest = $1 AND revoked_at IS NULL",
        )
        .bind(digest)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            let role: String = r.try_get("role")?;
            Ok(TokenRecord {
                role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
                subject: r.try_get("subject_id")?,
            })
        })
        .transpose()
    }

    async fn record_inspection(
        &self,
        inspection: &NewInspection,
        cases: &[NewCase],
        attachments: &[Attachment],
        idem: Option<&IdempotencyKey>,
        respond: &Respond<'_, RecordedInspection>,
    ) -> crate::Result<Idempotent<RecordedInspection>> {
        let now = inspection.at;
        let mut tx = super::begin_write(self.writer())
            .await
            .map_err(Error::from)?;
        if let Some(idem) = idem
            && let Some(previous) = claim_idempotency_key(&mut tx, idem, now).await?
        {
            return Ok(Idempotent::Replayed(previous));
        }
        let inspection_id: i64 = sqlx::query_scalar(
            "INSERT INTO inspections (unit_id, inspector_id, at, lon, lat, distance_m, note, \
             created_at, off_site, crs, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $3, $8, $9, $10) RETURNING id",
        )
        .bind(inspection.unit_id.0)
        .bind(inspection.inspector_id.map(|i| i.0))
        .bind(ms(now))
        .bind(inspection.lon)
        .bind(inspection.lat)
        .bind(inspection.distance_m)
        .bind(&inspection.note)
        .bind(inspection.off_site)
        .bind(crs_name(inspection.crs))
        .bind(inspection.outcome.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| refusal(e, "an inspection"))?;
        let mut case_ids = Vec::with_capacity(cases.len());
        for c in cases {
            let s = &c.snapshot;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO cases (definition_id, unit_id, inspection_id, category, severity, \
                 state, version, address, district_code, street_id, grid_id, party_id, \
                 inspector_id, department_id, deadline_at, order_no, escalation, reopen_count, \
                 note, evidence, lon, lat, opened_at, updated_at, closed_at, timer_seq, \
                 timer_kind, timer_fire, timer_due_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20, $21, $22, $23, $23, NULL, $24, $25, $26, $27) RETURNING id",
            )
            .bind(c.definition_id)
            .bind(inspection.unit_id.0)
            .bind(inspection_id)
            .bind(&s.category)
            .bind(&s.severity)
            .bind(&s.state)
            .bind(s.version)
            .bind(&s.address)
            .bind(&s.district_code)
            .bind(s.street_id.map_or(0, |i| i.0))
            .bind(s.grid_id.map_or(0, |i| i.0))
            .bind(s.party_id.map(|p| p.0))
            .bind(s.inspector_id.map(|i| i.0))
            .bind(s.department_id.map(|d| d.0))
            .bind(s.deadline_at.map(ms))
            .bind(i64::from(s.order_no))
            .bind(i64::from(s.escalation))
            .bind(i64::from(s.reopen_count))
            .bind(&c.note)
            .bind(Json(&c.evidence))
            .bind(c.lon)
            .bind(c.lat)
            .bind(ms(now))
            .bind(i64::from(c.timer.is_some()))
            .bind(c.timer.as_ref().map(|t| t.kind.clone()))
            .bind(c.timer.as_ref().map(|t| t.fire.clone()))
            .bind(c.timer.as_ref().map(|t| ms(t.due_at)))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| refusal(e, "a case"))?;
            sqlx::query(
                "INSERT INTO case_events (case_id, seq, at, actor_role, actor_id, command, \
                 from_state, to_state, reason, data) \
                 VALUES ($1, $2, $3, $4, $5, 'open', NULL, $6, NULL, $7)",
            )
            .bind(id)
            .bind(s.version)
            .bind(ms(now))
            .bind(c.actor.role.as_str())
            .bind(&c.actor.id)
            .bind(&s.state)
            .bind(Json(&c.data))
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
            case_ids.push(CaseId(id));
        }
        // Findings attached to open cases: each case gets an event at its next
        // version, whatever it is now (a finding does not depend on the case's state;
        // only a case closed in the meantime sends the inspection back).
        let mut attached_ids: Vec<&Attachment> = attachments.iter().collect();
        attached_ids.sort_by_key(|a| a.case_id);
        for a in attached_ids {
            let bumped = sqlx::query(
                "UPDATE cases SET version = version + 1, updated_at = $2 \
                 WHERE id = $1 AND closed_at IS NULL RETURNING version, state",
            )
            .bind(a.case_id.0)
            .bind(ms(now))
            .fetch_optional(&mut *tx)
            .await
            .map_err(Error::from)?;
            let Some(row) = bumped else {
                return Err(crate::Error::Conflict(format!(
                    "case {} was closed while the inspection was recorded; send it again",
                    a.case_id
                )));
            };
            let version: i64 = row.try_get(0).map_err(Error::from)?;
            let state: String = row.try_get(1).map_err(Error::from)?;
            let mut data = a.data.clone();
            data["inspection_id"] = serde_json::json!(inspection_id);
            sqlx::query(
                "INSERT INTO case_events (case_id, seq, at, actor_role, actor_id, command, \
                 from_state, to_state, reason, data) \
                 VALUES ($1, $2, $3, $4, $5, 'attach_finding', $6, $6, NULL, $7)",
            )
            .bind(a.case_id.0)
            .bind(version)
            .bind(ms(now))
            .bind(a.actor.role.as_str())
            .bind(&a.actor.id)
            .bind(&state)
            .bind(Json(&data))
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        }
        write_grade(&mut tx, &inspection.grade, Some(inspection_id)).await?;
        // A grade that drops is an event for the rules, on the inspection's first case.
        if let Some(event) = &inspection.rule_event
            && let Some(case) = case_ids
                .first()
                .copied()
                .or_else(|| attachments.first().map(|a| a.case_id))
        {
            sqlx::query(
                "INSERT INTO rule_jobs (case_id, event_seq, on_event, detail, created_at, head) \
                 VALUES ($1, NULL, $2, $3, $4, CASE WHEN EXISTS (SELECT 1 FROM \
                 rule_jobs WHERE case_id = $1 AND done_at IS NULL) THEN 0 ELSE 1 END)",
            )
            .bind(case.0)
            .bind(event.trigger.as_str())
            .bind(Json(&event.detail))
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        }
        // The visit counts for every running campaign of the unit that has not visited it
        // (an attempt, no one home or entry refused, does not).
        if inspection.outcome == crate::planning::VisitOutcome::Inspected {
            sqlx::query(
                "UPDATE campaign_units SET visited_at = $2, inspection_id = $3, hazards = $4, \
             checks = $5 WHERE unit_id = $1 AND visited_at IS NULL AND campaign_id IN \
             (SELECT id FROM campaigns WHERE starts_at <= $2 AND ends_at > $2)",
            )
            .bind(inspection.unit_id.0)
            .bind(ms(now))
            .bind(inspection_id)
            .bind(i64::from(inspection.findings))
            .bind(
                inspection
                    .campaign_checks
                    .as_ref()
                    .map(|c| serde_json::to_string(c).map_err(corrupt))
                    .transpose()?,
            )
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        }
        let recorded = RecordedInspection {
            inspection_id: InspectionId(inspection_id),
            case_ids,
            attached: attachments.iter().map(|a| a.case_id).collect(),
        };
        if let Some(idem) = idem {
            store_idempotent_response(&mut tx, idem, respond(&recorded)).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        super::forget_cases(self, &recorded.attached);
        Ok(Idempotent::Created(recorded))
    }

    async fn regrade(&self, update: &GradeUpdate) -> Result<(), Error> {
        let mut tx = super::begin_write(self.writer()).await?;
        write_grade(&mut tx, update, None).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unit_grades(&self, unit: UnitId) -> Result<Vec<GradeRecord>, Error> {
        let rows = sqlx::query(
            "SELECT stars, score, reasons, cause, inspection_id, at FROM unit_grades \
             WHERE unit_id = $1 ORDER BY id",
        )
        .bind(unit.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let reasons: String = r.try_get("reasons")?;
                Ok(GradeRecord {
                    stars: stars_at(r, "stars")?,
                    score: r.try_get("score")?,
                    reasons: serde_json::from_str(&reasons).map_err(corrupt)?,
                    cause: r.try_get("cause")?,
                    inspection_id: r
                        .try_get::<Option<i64>, _>("inspection_id")?
                        .map(InspectionId),
                    at: from_millis(r.try_get("at")?),
                })
            })
            .collect()
    }

    async fn plan_candidates(
        &self,
        grids: Option<&[GridId]>,
        day_start: DateTime<Utc>,
        day_end: DateTime<Utc>,
    ) -> Result<Vec<Candidate>, Error> {
        use futures_util::TryStreamExt;
        let query = |grids: Option<&[GridId]>| {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT u.id, u.grid_id, u.lon, u.lat, u.next_due_at, u.stars, u.evening_only, \
                 cu.starts_at AS campaign_from FROM units u LEFT JOIN (SELECT cu.unit_id, \
                 MIN(c.starts_at) AS starts_at FROM campaign_units cu \
                 JOIN campaigns c ON c.id = cu.campaign_id WHERE c.starts_at < ",
            );
            q.push_bind(ms(day_end))
                .push(" AND c.ends_at > ")
                .push_bind(ms(day_start))
                .push(
                    " AND cu.visited_at IS NULL GROUP BY cu.unit_id) cu ON cu.unit_id = u.id \
                     WHERE (u.next_due_at IS NULL OR u.next_due_at < ",
                )
                .push_bind(ms(day_end))
                .push(" OR cu.unit_id IS NOT NULL) AND u.grid_id <> 0");
            if let Some(grids) = grids {
                q.push(" AND u.grid_id IN (");
                let mut list = q.separated(", ");
                for g in grids {
                    list.push_bind(g.0);
                }
                q.push(")");
            }
            q
        };
        let chunks: Vec<Option<&[GridId]>> = match grids {
            None => vec![None],
            Some([]) => vec![],
            Some(grids) => grids.chunks(rows_per_statement(1) - 3).map(Some).collect(),
        };
        let mut out = Vec::new();
        for chunk in chunks {
            let mut q = query(chunk);
            let mut rows = q.build().fetch(self.reader());
            while let Some(r) = rows.try_next().await? {
                out.push(Candidate {
                    id: UnitId(r.try_get("id")?),
                    grid_id: GridId(r.try_get("grid_id")?),
                    lon: r.try_get("lon")?,
                    lat: r.try_get("lat")?,
                    next_due_at: r.try_get::<Option<i64>, _>("next_due_at")?.map(from_millis),
                    stars: stars_at(&r, "stars")?,
                    evening_only: r.try_get("evening_only")?,
                    campaign_from: r
                        .try_get::<Option<i64>, _>("campaign_from")?
                        .map(from_millis),
                });
            }
        }
        Ok(out)
    }

    async fn planners(&self) -> Result<Vec<Planner>, Error> {
        let mut grids = inspector_grid_lists(self.reader()).await?;
        sqlx::query("SELECT id, shift, capacity FROM inspectors ORDER BY id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                Ok(Planner {
                    id: InspectorId(id),
                    shift: r.try_get("shift")?,
                    capacity: capacity_at(r)?,
                    grids: grids.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn save_plan(
        &self,
        plan: &DayPlan,
        at: DateTime<Utc>,
        mode: PlanSave,
    ) -> Result<usize, Error> {
        let date = plan.date.to_string();
        let mut tx = super::begin_write(self.writer()).await?;
        super::lock_plan_day(&mut tx, &date).await?;
        if mode == PlanSave::ReplaceCity {
            for table in ["plan_stops", "plan_routes", "plan_backlog", "plan_days"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE plan_date = $1"
                )))
                .bind(&date)
                .execute(&mut *tx)
                .await?;
            }
        }
        // Routes stored already (by a group planned when one of its inspectors first
        // looked, or an earlier run) stay as they are, with their visits.
        let stored: BTreeSet<i64> =
            sqlx::query("SELECT inspector_id FROM plan_routes WHERE plan_date = $1")
                .bind(&date)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?;
        let routes: Vec<&crate::planning::Route> = plan
            .routes
            .iter()
            .filter(|r| !stored.contains(&r.inspector_id.0))
            .collect();
        if mode != PlanSave::Group {
            sqlx::query(
                "INSERT INTO plan_days (plan_date, planned_at, due, planned, routes, length_m, \
                 nn_length_m) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(&date)
            .bind(ms(at))
            .bind(plan.due() as i64)
            .bind(plan.planned() as i64)
            .bind(plan.routes.len() as i64)
            .bind(plan.routes.iter().map(|r| r.length_m).sum::<f64>())
            .bind(plan.routes.iter().map(|r| r.nn_length_m).sum::<f64>())
            .execute(&mut *tx)
            .await?;
        }
        for chunk in routes.chunks(rows_per_statement(7)) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO plan_routes (plan_date, inspector_id, shift, capacity, length_m, \
                 nn_length_m, planned_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&date)
                    .push_bind(r.inspector_id.0)
                    .push_bind(&r.shift)
                    .push_bind(i64::from(r.capacity))
                    .push_bind(r.length_m)
                    .push_bind(r.nn_length_m)
                    .push_bind(ms(at));
            });
            q.build().execute(&mut *tx).await?;
        }
        let stops: Vec<(InspectorId, usize, &crate::planning::Stop)> = routes
            .iter()
            .flat_map(|r| {
                r.stops
                    .iter()
                    .enumerate()
                    .map(move |(k, s)| (r.inspector_id, k + 1, s))
            })
            .collect();
        for chunk in stops.chunks(rows_per_statement(7)) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO plan_stops (plan_date, inspector_id, seq, unit_id, reason, \
                 overdue_days, leg_m) ",
            );
            q.push_values(chunk, |mut b, (inspector, seq, s)| {
                b.push_bind(&date)
                    .push_bind(inspector.0)
                    .push_bind(*seq as i64)
                    .push_bind(s.unit_id.0)
                    .push_bind(s.reason.as_str())
                    .push_bind(s.overdue_days)
                    .push_bind(s.leg_m);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        for g in &plan.backlog {
            sqlx::query("DELETE FROM plan_backlog WHERE plan_date = $1 AND grid_id = $2")
                .bind(&date)
                .bind(g.grid_id.0)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in plan.backlog.chunks(rows_per_statement(5)) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO plan_backlog (plan_date, grid_id, due, planned, left_over) ",
            );
            q.push_values(chunk, |mut b, g| {
                b.push_bind(&date)
                    .push_bind(g.grid_id.0)
                    .push_bind(i64::from(g.due))
                    .push_bind(i64::from(g.planned))
                    .push_bind(i64::from(g.left));
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(routes.len())
    }

    async fn stored_route(
        &self,
        date: NaiveDate,
        inspector: InspectorId,
    ) -> Result<Option<StoredRoute>, Error> {
        let key = date.to_string();
        let route = sqlx::query(
            "SELECT shift, capacity, length_m, nn_length_m, planned_at FROM plan_routes \
             WHERE plan_date = $1 AND inspector_id = $2",
        )
        .bind(&key)
        .bind(inspector.0)
        .fetch_optional(self.reader())
        .await?;
        let day = sqlx::query("SELECT planned_at FROM plan_days WHERE plan_date = $1")
            .bind(&key)
            .fetch_optional(self.reader())
            .await?;
        if route.is_none() && day.is_none() {
            return Ok(None);
        }
        let (start, end) = crate::time::day_bounds(date);
        let stops = sqlx::query(
            "SELECT s.seq, s.unit_id, u.address, u.grid_id, u.lon, u.lat, s.reason, \
             s.overdue_days, u.stars, u.evening_only, s.leg_m, s.extra, \
             (SELECT MIN(i.at) FROM inspections i WHERE i.unit_id = s.unit_id \
              AND i.at >= $3 AND i.at < $4) AS visited_at, \
             (SELECT i.outcome FROM inspections i WHERE i.unit_id = s.unit_id \
              AND i.at >= $3 AND i.at < $4 ORDER BY i.at, i.id LIMIT 1) AS outcome \
             FROM plan_stops s JOIN units u ON u.id = s.unit_id \
             WHERE s.plan_date = $1 AND s.inspector_id = $2 ORDER BY s.seq",
        )
        .bind(&key)
        .bind(inspector.0)
        .bind(ms(start))
        .bind(ms(end))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            let reason: String = r.try_get("reason")?;
            Ok(StoredStop {
                seq: u32::try_from(r.try_get::<i64, _>("seq")?).map_err(corrupt)?,
                unit_id: UnitId(r.try_get("unit_id")?),
                address: r.try_get("address")?,
                grid_id: GridId(r.try_get("grid_id")?),
                lon: r.try_get("lon")?,
                lat: r.try_get("lat")?,
                reason: Reason::parse(&reason).ok_or_else(|| corrupt(reason))?,
                overdue_days: r.try_get("overdue_days")?,
                stars: stars_at(r, "stars")?,
                evening_only: r.try_get("evening_only")?,
                leg_m: r.try_get("leg_m")?,
                visited_at: r.try_get::<Option<i64>, _>("visited_at")?.map(from_millis),
                outcome: r.try_get("outcome")?,
                extra: r.try_get::<i64, _>("extra")? != 0,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
        let (shift, capacity, length_m, nn_length_m, planned_at) = match route {
            Some(r) => (
                r.try_get("shift")?,
                u32::try_from(r.try_get::<i64, _>("capacity")?).map_err(corrupt)?,
                r.try_get("length_m")?,
                r.try_get("nn_length_m")?,
                from_millis(r.try_get("planned_at")?),
            ),
            None => {
                let r = sqlx::query("SELECT shift, capacity FROM inspectors WHERE id = $1")
                    .bind(inspector.0)
                    .fetch_one(self.reader())
                    .await?;
                let day = day.expect("a planned day");
                (
                    r.try_get("shift")?,
                    capacity_at(&r)?,
                    0.0,
                    0.0,
                    from_millis(day.try_get("planned_at")?),
                )
            }
        };
        Ok(Some(StoredRoute {
            inspector_id: inspector,
            shift,
            capacity,
            length_m,
            nn_length_m,
            planned_at,
            stops,
        }))
    }

    async fn append_stops(
        &self,
        date: NaiveDate,
        inspector: InspectorId,
        stops: &[crate::planning::Stop],
    ) -> Result<(), Error> {
        if stops.is_empty() {
            return Ok(());
        }
        let key = date.to_string();
        let mut tx = super::begin_write(self.writer()).await?;
        super::lock_plan_day(&mut tx, &key).await?;
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) FROM plan_stops WHERE plan_date = $1 AND inspector_id = $2",
        )
        .bind(&key)
        .bind(inspector.0)
        .fetch_one(&mut *tx)
        .await?;
        for (k, s) in stops.iter().enumerate() {
            sqlx::query(
                "INSERT INTO plan_stops (plan_date, inspector_id, seq, unit_id, reason, \
                 overdue_days, leg_m, extra) VALUES ($1, $2, $3, $4, $5, $6, $7, 1) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&key)
            .bind(inspector.0)
            .bind(last + 1 + k as i64)
            .bind(s.unit_id.0)
            .bind(s.reason.as_str())
            .bind(s.overdue_days)
            .bind(s.leg_m)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn new_candidates(
        &self,
        date: NaiveDate,
        grids: &[GridId],
        since: DateTime<Utc>,
    ) -> Result<Vec<Candidate>, Error> {
        if grids.is_empty() {
            return Ok(Vec::new());
        }
        let (start, end) = crate::time::day_bounds(date);
        let mut q = QueryBuilder::<Db>::new(
            "SELECT u.id, u.grid_id, u.lon, u.lat, u.next_due_at, u.stars, u.evening_only, \
             (SELECT MIN(c.starts_at) FROM campaign_units cu JOIN campaigns c \
              ON c.id = cu.campaign_id WHERE cu.unit_id = u.id AND cu.visited_at IS NULL \
              AND c.created_at > ",
        );
        q.push_bind(ms(since))
            .push(" AND c.starts_at < ")
            .push_bind(ms(end))
            .push(" AND c.ends_at > ")
            .push_bind(ms(start))
            .push(") AS campaign_from FROM units u WHERE u.grid_id IN (");
        let mut list = q.separated(", ");
        for g in grids {
            list.push_bind(g.0);
        }
        q.push(") AND NOT EXISTS (SELECT 1 FROM plan_stops p WHERE p.plan_date = ")
            .push_bind(date.to_string())
            .push(" AND p.unit_id = u.id) AND NOT EXISTS (SELECT 1 FROM inspections i WHERE i.unit_id = u.id AND i.at >= ")
            .push_bind(ms(start))
            .push(") AND ((u.created_at > ")
            .push_bind(ms(since))
            .push(" AND (u.next_due_at IS NULL OR u.next_due_at < ")
            .push_bind(ms(end))
            .push(")) OR EXISTS (SELECT 1 FROM campaign_units cu JOIN campaigns c \
                   ON c.id = cu.campaign_id WHERE cu.unit_id = u.id AND cu.visited_at IS NULL \
                   AND c.created_at > ")
            .push_bind(ms(since))
            .push(" AND c.starts_at < ")
            .push_bind(ms(end))
            .push(" AND c.ends_at > ")
            .push_bind(ms(start))
            .push(")) ORDER BY u.id");
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(Candidate {
                    id: UnitId(r.try_get("id")?),
                    grid_id: GridId(r.try_get("grid_id")?),
                    lon: r.try_get("lon")?,
                    lat: r.try_get("lat")?,
                    next_due_at: r.try_get::<Option<i64>, _>("next_due_at")?.map(from_millis),
                    stars: stars_at(r, "stars")?,
                    evening_only: r.try_get("evening_only")?,
                    campaign_from: r
                        .try_get::<Option<i64>, _>("campaign_from")?
                        .map(from_millis),
                })
            })
            .collect()
    }

    async fn claim_plan_run(&self, date: NaiveDate, at: DateTime<Utc>) -> Result<bool, Error> {
        Ok(sqlx::query(
            "INSERT INTO plan_runs (plan_date, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(date.to_string())
        .bind(ms(at))
        .execute(self.writer())
        .await?
        .rows_affected()
            == 1)
    }

    async fn stored_backlog(
        &self,
        date: NaiveDate,
        scope: &Scope,
    ) -> Result<Option<Vec<Backlog>>, Error> {
        let key = date.to_string();
        let planned = sqlx::query("SELECT plan_date FROM plan_days WHERE plan_date = $1")
            .bind(&key)
            .fetch_optional(self.reader())
            .await?
            .is_some();
        if !planned {
            return Ok(None);
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT grid_id, due, planned, left_over FROM plan_backlog WHERE plan_date = ",
        );
        q.push_bind(key).push(
            " AND grid_id IN (SELECT grid_id FROM (SELECT g.id AS grid_id, c.street_id, \
             s.district_code FROM grids g JOIN communities c ON c.id = g.community_id \
             JOIN streets s ON s.id = c.street_id) places WHERE 1 = 1",
        );
        push_scope(&mut q, scope);
        q.push(") ORDER BY left_over DESC, grid_id");
        let rows = q.build().fetch_all(self.reader()).await?;
        let count = |r: &Row, name: &str| -> Result<u32, Error> {
            u32::try_from(r.try_get::<i64, _>(name)?).map_err(corrupt)
        };
        rows.iter()
            .map(|r| {
                Ok(Backlog {
                    grid_id: GridId(r.try_get("grid_id")?),
                    due: count(r, "due")?,
                    planned: count(r, "planned")?,
                    left: count(r, "left_over")?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()
            .map(Some)
    }

    async fn create_campaign(
        &self,
        c: &NewCampaign,
        scope: &Scope,
    ) -> crate::Result<CampaignRecord> {
        let (starts_at, _) = crate::time::day_bounds(c.starts_on);
        let (_, ends_at) = crate::time::day_bounds(c.ends_on);
        let mut tx = super::begin_write(self.writer())
            .await
            .map_err(Error::from)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (name, area, starts_on, ends_on, starts_at, ends_at, \
             checklist, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id",
        )
        .bind(&c.name)
        .bind(c.area_json.to_string())
        .bind(c.starts_on.to_string())
        .bind(c.ends_on.to_string())
        .bind(ms(starts_at))
        .bind(ms(ends_at))
        .bind(serde_json::to_string(&c.checklist).map_err(corrupt)?)
        .bind(&c.created_by)
        .bind(ms(c.at))
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::from)?;
        let insert = |q: &mut QueryBuilder<Db>| {
            q.push("INSERT INTO campaign_units (campaign_id, unit_id) SELECT ")
                .push_bind(id)
                .push(", id FROM units WHERE 1 = 1");
            push_scope(q, scope);
        };
        let mut units = 0;
        let mut run = async |mut q: QueryBuilder<Db>| -> Result<u64, Error> {
            Ok(q.build().execute(&mut *tx).await?.rows_affected())
        };
        match &c.area {
            CampaignArea::District(code) => {
                let mut q = QueryBuilder::new("");
                insert(&mut q);
                q.push(" AND district_code = ").push_bind(code.clone());
                units += run(q).await?;
            }
            CampaignArea::Street(street) => {
                let mut q = QueryBuilder::new("");
                insert(&mut q);
                q.push(" AND street_id = ").push_bind(street.0);
                units += run(q).await?;
            }
            CampaignArea::Grid(grid) => {
                let mut q = QueryBuilder::new("");
                insert(&mut q);
                q.push(" AND grid_id = ").push_bind(grid.0);
                units += run(q).await?;
            }
            CampaignArea::Units(ids) => {
                for chunk in ids.chunks(rows_per_statement(1) - 40) {
                    let mut q = QueryBuilder::new("");
                    insert(&mut q);
                    q.push(" AND id IN (");
                    let mut list = q.separated(", ");
                    for u in chunk {
                        list.push_bind(u.0);
                    }
                    q.push(")");
                    units += run(q).await?;
                }
            }
        }
        if units == 0 {
            return Err(crate::Error::invalid(
                "area",
                "the area holds no units in your jurisdiction",
            ));
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(self
            .campaign(id, scope)
            .await?
            .ok_or_else(|| corrupt("a campaign just created is missing"))?)
    }

    async fn campaign(&self, id: i64, scope: &Scope) -> Result<Option<CampaignRecord>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!("{CAMPAIGN_SELECT} WHERE c.id = "));
        q.push_bind(id);
        push_campaign_scope(&mut q, scope);
        let row = q.build().fetch_optional(self.reader()).await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    async fn campaigns(&self, scope: &Scope) -> Result<Vec<CampaignRecord>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!("{CAMPAIGN_SELECT} WHERE 1 = 1"));
        push_campaign_scope(&mut q, scope);
        q.push(" ORDER BY c.id DESC LIMIT 500");
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(campaign_from_row)
            .collect()
    }

    async fn campaign_progress(
        &self,
        id: i64,
        level: &str,
        scope: &Scope,
    ) -> Result<Vec<CampaignProgress>, Error> {
        let column = match level {
            "district" => "u.district_code",
            "street" => "CAST(u.street_id AS TEXT)",
            "community" => "CAST(u.community_id AS TEXT)",
            _ => "CAST(u.grid_id AS TEXT)",
        };
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {column} AS area, COUNT(*) AS total, COUNT(cu.visited_at) AS visited, \
             CAST(COALESCE(SUM(cu.hazards), 0) AS BIGINT) AS hazards \
             FROM campaign_units cu JOIN units u ON u.id = cu.unit_id WHERE cu.campaign_id = "
        ));
        q.push_bind(id)
            .push(" AND u.id IN (SELECT id FROM units WHERE 1 = 1");
        push_scope(&mut q, scope);
        q.push(format!(") GROUP BY {column} ORDER BY {column}"));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(CampaignProgress {
                    area: r.try_get("area")?,
                    total: r.try_get("total")?,
                    visited: r.try_get("visited")?,
                    hazards: r.try_get("hazards")?,
                })
            })
            .collect()
    }

    async fn open_campaign_checklists(
        &self,
        unit: UnitId,
        at: DateTime<Utc>,
    ) -> Result<Vec<CheckItem>, Error> {
        let lists: Vec<String> = sqlx::query_scalar(
            "SELECT c.checklist FROM campaigns c JOIN campaign_units cu \
             ON cu.campaign_id = c.id WHERE cu.unit_id = $1 AND cu.visited_at IS NULL \
             AND c.starts_at <= $2 AND c.ends_at > $2 ORDER BY c.id",
        )
        .bind(unit.0)
        .bind(ms(at))
        .fetch_all(self.reader())
        .await?;
        let mut items: Vec<CheckItem> = Vec::new();
        for list in lists {
            for item in serde_json::from_str::<Vec<CheckItem>>(&list).map_err(corrupt)? {
                if !items.iter().any(|i| i.code == item.code) {
                    items.push(item);
                }
            }
        }
        Ok(items)
    }

    async fn max_case_id(&self) -> Result<CaseId, Error> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM cases")
            .fetch_one(self.reader())
            .await?;
        Ok(CaseId(id.unwrap_or(0)))
    }

    async fn open_cases_page(
        &self,
        after: CaseId,
        before: CaseId,
        limit: u32,
    ) -> Result<Vec<OpenCase>, Error> {
        let mut q = QueryBuilder::<Db>::new(OPEN_CASE_SELECT);
        q.push(" AND id > ")
            .push_bind(after.0)
            .push(" AND id < ")
            .push_bind(before.0)
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(limit));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(open_case_from_row)
            .collect()
    }

    async fn open_cases_by_id(&self, ids: &[CaseId]) -> Result<Vec<OpenCase>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_statement(1)) {
            let mut q = QueryBuilder::<Db>::new(OPEN_CASE_SELECT);
            q.push(" AND id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            q.push(") ORDER BY id");
            for r in &q.build().fetch_all(self.reader()).await? {
                out.push(open_case_from_row(r)?);
            }
        }
        Ok(out)
    }

    async fn party_records(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        only: Option<PartyId>,
    ) -> Result<Vec<PartyRecord>, Error> {
        let mut records: BTreeMap<i64, PartyRecord> = BTreeMap::new();
        let only_party = |q: &mut QueryBuilder<Db>, column: &str| {
            if let Some(p) = only {
                q.push(format_args!(" AND {column} = ")).push_bind(p.0);
            }
        };
        let mut q = QueryBuilder::<Db>::new(
            "SELECT c.party_id, p.kind, c.severity, COUNT(*) AS n FROM cases c \
             JOIN parties p ON p.id = c.party_id WHERE 1 = 1",
        );
        only_party(&mut q, "c.party_id");
        q.push(" GROUP BY c.party_id, p.kind, c.severity");
        for r in &q.build().fetch_all(self.reader()).await? {
            let id: i64 = r.try_get("party_id")?;
            let record = records
                .entry(id)
                .or_insert_with(|| PartyRecord::empty(PartyId(id), String::new()));
            record.kind = r.try_get("kind")?;
            record
                .cases_by_severity
                .insert(r.try_get("severity")?, r.try_get("n")?);
        }
        // A party asked for by id has a record even without cases.
        if let Some(p) = only
            && !records.contains_key(&p.0)
            && let Some(kind) = self.party_kind(p).await?
        {
            records.insert(p.0, PartyRecord::empty(p, kind));
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT c.party_id, e.command, COUNT(*) AS n FROM case_events e \
             JOIN cases c ON c.id = e.case_id WHERE c.party_id IS NOT NULL \
             AND e.command IN ('deadline_passed', 'refer', 'rule_refer', 'record_result') \
             AND e.at >= ",
        );
        q.push_bind(ms(since));
        only_party(&mut q, "c.party_id");
        q.push(" GROUP BY c.party_id, e.command");
        for r in &q.build().fetch_all(self.reader()).await? {
            let id: i64 = r.try_get("party_id")?;
            let n: i64 = r.try_get("n")?;
            if let Some(record) = records.get_mut(&id) {
                match r.try_get::<String, _>("command")?.as_str() {
                    "deadline_passed" => record.overdue_since += n,
                    "record_result" => record.results_since += n,
                    _ => record.referrals_since += n,
                }
            }
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT party_id, status FROM blacklist WHERE (status = 'proposed' \
             OR (status IN ('active', 'appealed') AND (expires_at IS NULL OR expires_at > ",
        );
        q.push_bind(ms(now)).push(")))");
        only_party(&mut q, "party_id");
        for r in &q.build().fetch_all(self.reader()).await? {
            if let Some(record) = records.get_mut(&r.try_get::<i64, _>(0)?) {
                if r.try_get::<String, _>(1)? == "proposed" {
                    record.proposed = true;
                } else {
                    record.blacklisted = true;
                }
            }
        }
        Ok(records.into_values().collect())
    }

    async fn claim_rule_jobs(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<RuleJob>, Error> {
        let mut rows = sqlx::query(*CLAIM_RULE_JOBS)
            .bind(ms(until))
            .bind(worker)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(self.writer())
            .await?
            .iter()
            .map(rule_job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // With room left, the jobs queued behind the claimed heads, oldest first: a
        // case with a long queue is worked off many jobs a step, in order. No other
        // worker claims them, as they are no heads; whoever holds a case's head holds
        // its queue.
        let room = i64::from(limit) - rows.len() as i64;
        if room > 0 && !rows.is_empty() {
            let mut cases: Vec<i64> = rows.iter().map(|j| j.case_id.0).collect();
            cases.sort_unstable();
            cases.dedup();
            let mut q = QueryBuilder::<Db>::new("UPDATE rule_jobs SET claimed_until = ");
            q.push_bind(ms(until))
                .push(", claimed_by = ")
                .push_bind(worker)
                .push(
                    " WHERE id IN (SELECT id FROM rule_jobs WHERE done_at IS NULL AND head = 0 \
                     AND (claimed_until IS NULL OR claimed_until <= ",
                )
                .push_bind(ms(now))
                .push(") AND case_id IN (");
            let mut list = q.separated(", ");
            for c in &cases {
                list.push_bind(*c);
            }
            q.push(") ORDER BY id LIMIT ")
                .push_bind(room)
                .push(format!("{SKIP_LOCKED}) RETURNING {RULE_JOB_COLUMNS}"));
            for row in q.build().fetch_all(self.writer()).await? {
                rows.push(rule_job_from_row(&row)?);
            }
        }
        rows.sort_by_key(|j| j.id);
        Ok(rows)
    }

    async fn finish_rule_jobs(
        &self,
        done: &[(i64, Value)],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = super::begin_write(self.writer()).await?;
        // The jobs' cases are locked (in id order, as batches lock them), so that a job
        // added to a case at the same time sees this one done, or is promoted below.
        let ids: Vec<i64> = done.iter().map(|(id, _)| *id).collect();
        let mut cases: Vec<i64> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PARAMS) {
            let mut q =
                QueryBuilder::<Db>::new("SELECT DISTINCT case_id FROM rule_jobs WHERE id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            for r in q.build().fetch_all(&mut *tx).await? {
                cases.push(r.try_get(0)?);
            }
        }
        cases.sort_unstable();
        cases.dedup();
        super::lock_cases_for_rule_jobs(&mut tx, &cases).await?;
        for (id, outcome) in done {
            sqlx::query(
                "UPDATE rule_jobs SET done_at = $2, outcome = $3, claimed_until = NULL, head = 0 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(ms(at))
            .bind(Json(outcome))
            .execute(&mut *tx)
            .await?;
        }
        // The next job of each case, if any, is now the head of its queue.
        for chunk in cases.chunks(MAX_PARAMS) {
            let mut q = QueryBuilder::<Db>::new(
                "UPDATE rule_jobs SET head = 1 WHERE id IN (SELECT MIN(id) FROM rule_jobs \
                 WHERE done_at IS NULL AND case_id IN (",
            );
            let mut list = q.separated(", ");
            for c in chunk {
                list.push_bind(*c);
            }
            q.push(") GROUP BY case_id)");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_rule_jobs(&self) -> Result<i64, Error> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM rule_jobs WHERE done_at IS NULL")
                .fetch_one(self.reader())
                .await?,
        )
    }

    async fn case_rule_jobs(&self, case: CaseId) -> Result<Vec<RuleJob>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_JOB_COLUMNS} FROM rule_jobs WHERE case_id = $1 ORDER BY id"
        )))
        .bind(case.0)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(rule_job_from_row)
        .collect()
    }

    async fn rule_jobs_since(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RuleJob>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_JOB_COLUMNS} FROM rule_jobs WHERE created_at >= $1 ORDER BY id LIMIT $2"
        )))
        .bind(ms(since))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(rule_job_from_row)
        .collect()
    }

    async fn publish_rule_version(&self, v: &RuleVersion) -> crate::Result<()> {
        sqlx::query(
            "INSERT INTO rule_versions (name, version, spec, source, sha256, published_at, \
             published_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&v.spec.name)
        .bind(i64::from(v.spec.version))
        .bind(Json(&v.spec))
        .bind(&v.source)
        .bind(&v.sha256)
        .bind(ms(v.published_at))
        .bind(&v.published_by)
        .execute(self.writer())
        .await
        .map_err(|e| refusal(e, "this version of the rule"))?;
        Ok(())
    }

    async fn rule_versions(&self) -> Result<Vec<RuleVersion>, Error> {
        let rows = sqlx::query(
            "SELECT spec, source, sha256, published_at, published_by FROM rule_versions \
             ORDER BY name, version",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RuleVersion {
                    spec: r.try_get::<Json<crate::rules::RuleSpec>, _>(0)?.0,
                    source: r.try_get(1)?,
                    sha256: r.try_get(2)?,
                    published_at: from_millis(r.try_get(3)?),
                    published_by: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn rule_version_count(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM rule_versions")
            .fetch_one(self.reader())
            .await?)
    }

    async fn add_sweep_jobs(
        &self,
        day: &str,
        cases: &[CaseId],
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let mut tx = super::begin_write(self.writer()).await?;
        let claimed = sqlx::query(
            "INSERT INTO rule_sweeps (day, at, jobs) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(day)
        .bind(ms(at))
        .bind(cases.len() as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut ids: Vec<i64> = cases.iter().map(|c| c.0).collect();
        ids.sort_unstable();
        ids.dedup();
        super::lock_cases_for_rule_jobs(&mut tx, &ids).await?;
        for chunk in ids.chunks(MAX_PARAMS / 2) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO rule_jobs (case_id, on_event, created_at, head) SELECT c.id, ",
            );
            q.push_bind(crate::rules::Trigger::Daily.as_str())
                .push(", ")
                .push_bind(ms(at))
                .push(
                    ", CASE WHEN EXISTS (SELECT 1 FROM rule_jobs k WHERE k.case_id = c.id \
                 AND k.done_at IS NULL) THEN 0 ELSE 1 END FROM cases c WHERE c.id IN (",
                );
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(") ORDER BY c.id");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn propose_blacklist(
        &self,
        party: PartyId,
        reason: &str,
        source: &str,
        district_code: &str,
        at: DateTime<Utc>,
    ) -> crate::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO blacklist (party_id, status, reason, source, district_code, proposed_at) \
             VALUES ($1, 'proposed', $2, $3, $4, $5) RETURNING id",
        )
        .bind(party.0)
        .bind(reason)
        .bind(source)
        .bind(district_code)
        .bind(ms(at))
        .fetch_one(self.writer())
        .await
        .map_err(|e| refusal(e, "an open blacklist entry of this party"))
    }

    async fn blacklist(
        &self,
        party: Option<PartyId>,
        scope: &Scope,
        status: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<BlacklistEntry>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {BLACKLIST_COLUMNS} FROM blacklist b JOIN parties p ON p.id = b.party_id \
             WHERE 1 = 1"
        ));
        if let Some(p) = party {
            q.push(" AND b.party_id = ").push_bind(p.0);
        }
        match status {
            // `expired` is not stored: it is an active entry past its end.
            Some("expired") => {
                q.push(" AND b.status = 'active' AND b.expires_at <= ")
                    .push_bind(ms(now));
            }
            Some("active") => {
                q.push(" AND b.status = 'active' AND (b.expires_at IS NULL OR b.expires_at > ")
                    .push_bind(ms(now))
                    .push(")");
            }
            Some(status) => {
                q.push(" AND b.status = ").push_bind(status.to_string());
            }
            None => {}
        }
        match scope {
            Scope::City | Scope::System => {}
            Scope::District(code) => {
                q.push(" AND b.district_code = ").push_bind(code.clone());
            }
            Scope::Party(id) => {
                q.push(" AND b.party_id = ").push_bind(id.0);
            }
            _ => {
                q.push(" AND 1 = 0");
            }
        }
        q.push(" ORDER BY b.id DESC LIMIT 1000");
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(blacklist_from_row)
            .collect()
    }

    async fn blacklist_entry(&self, id: i64) -> Result<Option<BlacklistEntry>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BLACKLIST_COLUMNS} FROM blacklist b JOIN parties p ON p.id = b.party_id \
             WHERE b.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.reader())
        .await?
        .as_ref()
        .map(blacklist_from_row)
        .transpose()
    }

    async fn change_blacklist(
        &self,
        id: i64,
        change: &BlacklistChange,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let at = ms(at);
        let q = match change {
            BlacklistChange::Approve {
                by,
                note,
                expires_at,
                publish,
            } => sqlx::query(
                "UPDATE blacklist SET status = 'active', decided_by = $2, decided_at = $3, \
                 decision_note = $4, expires_at = $5, published = $6 \
                 WHERE id = $1 AND status = 'proposed'",
            )
            .bind(id)
            .bind(by.clone())
            .bind(at)
            .bind(note.clone())
            .bind(ms(*expires_at))
            .bind(i64::from(*publish)),
            BlacklistChange::Reject { by, note } => sqlx::query(
                "UPDATE blacklist SET status = 'rejected', decided_by = $2, decided_at = $3, \
                 decision_note = $4 WHERE id = $1 AND status = 'proposed'",
            )
            .bind(id)
            .bind(by.clone())
            .bind(at)
            .bind(note.clone()),
            BlacklistChange::Appeal { text } => sqlx::query(
                "UPDATE blacklist SET status = 'appealed', appeal = $2, appealed_at = $3 \
                 WHERE id = $1 AND status = 'active' AND appeal IS NULL \
                 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(id)
            .bind(text.clone())
            .bind(at),
            BlacklistChange::DecideAppeal { by, upheld, note } => sqlx::query(
                "UPDATE blacklist SET status = $2, appeal_decided_by = $3, \
                 appeal_decided_at = $4, appeal_note = $5, \
                 published = CASE WHEN $2 = 'lifted' THEN 0 ELSE published END \
                 WHERE id = $1 AND status = 'appealed'",
            )
            .bind(id)
            .bind(if *upheld { "active" } else { "lifted" })
            .bind(by.clone())
            .bind(at)
            .bind(note.clone()),
            BlacklistChange::Lift { by, note } => sqlx::query(
                "UPDATE blacklist SET status = 'lifted', published = 0, \
                 appeal_decided_by = $2, appeal_decided_at = $3, appeal_note = $4 \
                 WHERE id = $1 AND status IN ('active', 'appealed')",
            )
            .bind(id)
            .bind(by.clone())
            .bind(at)
            .bind(note.clone()),
        };
        Ok(q.execute(self.writer()).await?.rows_affected() == 1)
    }

    async fn published_blacklist(&self, now: DateTime<Utc>) -> Result<Vec<BlacklistEntry>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BLACKLIST_COLUMNS} FROM blacklist b JOIN parties p ON p.id = b.party_id \
             WHERE b.published = 1 AND b.status IN ('active', 'appealed') \
             AND (b.expires_at IS NULL OR b.expires_at > $1) ORDER BY b.decided_at DESC, b.id \
             LIMIT 1000"
        )))
        .bind(ms(now))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(blacklist_from_row)
        .collect()
    }

    async fn add_agreement(&self, a: &Agreement) -> crate::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO agreements (unit_id, party_id, signer, signed_on, expires_on, document, \
             recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(a.unit_id.0)
        .bind(a.party_id.0)
        .bind(&a.signer)
        .bind(a.signed_on.to_string())
        .bind(a.expires_on.to_string())
        .bind(&a.document)
        .bind(&a.recorded_by)
        .bind(ms(a.recorded_at))
        .fetch_one(self.writer())
        .await
        .map_err(|e| refusal(e, "an agreement"))
    }

    async fn seed_agreements(&self, gap: i64, at: DateTime<Utc>) -> Result<u64, Error> {
        let year = at.with_timezone(&crate::time::china_time()).year();
        let written = sqlx::query(
            "INSERT INTO agreements (unit_id, party_id, signer, signed_on, expires_on, \
             recorded_by, recorded_at) \
             SELECT u.id, u.party_id, p.name, $1, $2, 'seed', $3 FROM units u \
             JOIN parties p ON p.id = u.party_id WHERE u.id % $4 <> 0",
        )
        .bind(format!("{year}-01-01"))
        .bind(format!("{}-12-31", year + 1))
        .bind(ms(at))
        .bind(gap)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(written)
    }

    async fn agreements(&self, unit: UnitId) -> Result<Vec<Agreement>, Error> {
        let rows = sqlx::query(
            "SELECT id, unit_id, party_id, signer, signed_on, expires_on, document, recorded_by, \
             recorded_at FROM agreements WHERE unit_id = $1 ORDER BY id",
        )
        .bind(unit.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Agreement {
                    id: r.try_get(0)?,
                    unit_id: UnitId(r.try_get(1)?),
                    party_id: PartyId(r.try_get(2)?),
                    signer: r.try_get(3)?,
                    signed_on: date_at(r, 4)?,
                    expires_on: date_at(r, 5)?,
                    document: r.try_get(6)?,
                    recorded_by: r.try_get(7)?,
                    recorded_at: from_millis(r.try_get(8)?),
                })
            })
            .collect()
    }

    async fn add_policy(&self, p: &InsurancePolicy) -> crate::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO insurance_policies (unit_id, insurer, policy_no, coverage_yuan, \
             starts_on, ends_on, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(p.unit_id.0)
        .bind(&p.insurer)
        .bind(&p.policy_no)
        .bind(p.coverage_yuan)
        .bind(p.starts_on.to_string())
        .bind(p.ends_on.to_string())
        .bind(&p.recorded_by)
        .bind(ms(p.recorded_at))
        .fetch_one(self.writer())
        .await
        .map_err(|e| refusal(e, "a policy with this insurer and number"))
    }

    async fn policies(&self, unit: UnitId) -> Result<Vec<InsurancePolicy>, Error> {
        let rows = sqlx::query(
            "SELECT id, unit_id, insurer, policy_no, coverage_yuan, starts_on, ends_on, \
             recorded_by, recorded_at FROM insurance_policies WHERE unit_id = $1 ORDER BY id",
        )
        .bind(unit.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InsurancePolicy {
                    id: r.try_get(0)?,
                    unit_id: UnitId(r.try_get(1)?),
                    insurer: r.try_get(2)?,
                    policy_no: r.try_get(3)?,
                    coverage_yuan: r.try_get(4)?,
                    starts_on: date_at(r, 5)?,
                    ends_on: date_at(r, 6)?,
                    recorded_by: r.try_get(7)?,
                    recorded_at: from_millis(r.try_get(8)?),
                })
            })
            .collect()
    }

    async fn party_units(&self, party: PartyId) -> Result<Vec<PartyUnit>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UNIT_COLUMNS}, {OPEN_ORDERS_OF_U} AS open_orders, \
             (SELECT MIN(k.deadline_at) FROM cases k WHERE k.unit_id = u.id \
             AND k.closed_at IS NULL AND k.order_no > 0) AS next_deadline \
             FROM units u WHERE party_id = $1 ORDER BY id LIMIT 5000"
        )))
        .bind(party.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PartyUnit {
                    unit: unit_from_row(r)?,
                    open_orders: r.try_get("open_orders")?,
                    next_deadline: r
                        .try_get::<Option<i64>, _>("next_deadline")?
                        .map(from_millis),
                })
            })
            .collect()
    }

    async fn placard(&self, public_code: &str) -> Result<Option<Placard>, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE u.public_code = $1",
            *PLACARD_SELECT
        )))
        .bind(public_code)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(placard_from_row).transpose()
    }

    async fn low_grade_placards(
        &self,
        community_code: &str,
        max_stars: u8,
    ) -> Result<Option<(String, Vec<Placard>)>, Error> {
        let Some(community) = sqlx::query("SELECT id, name FROM communities WHERE code = $1")
            .bind(community_code)
            .fetch_optional(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE u.community_id = $1 AND u.stars <= $2 \
             ORDER BY u.stars, u.id LIMIT 2000",
            *PLACARD_SELECT
        )))
        .bind(community.try_get::<i64, _>("id")?)
        .bind(i64::from(max_stars))
        .fetch_all(self.reader())
        .await?;
        let placards = rows
            .iter()
            .map(placard_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some((community.try_get("name")?, placards)))
    }

    async fn open_cases_in_building(&self, building: BuildingId) -> Result<Vec<CaseRecord>, Error> {
        let rows = sqlx::query(*SELECT_OPEN_CASES_IN_BUILDING)
            .bind(building.0)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(case_from_row).collect()
    }

    async fn apply(
        &self,
        batch: &[TransitionRequest],
        decide: &Decider<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::Result<Applied>>, Error> {
        let error = match super::apply_batch(self, batch, decide, now).await {
            Ok(results) => return Ok(results),
            Err(e) if batch.len() > 1 => e,
            Err(e) => return Err(e),
        };
        // The database refused the batch as a whole (one command's values broke a
        // constraint, say). Each command is applied again in a transaction of its own,
        // in order, so that the one at fault fails alone and the others commit.
        tracing::warn!(error = %error, commands = batch.len(), "batch refused by the database; applying its commands one by one");
        let mut results = Vec::with_capacity(batch.len());
        for (i, request) in batch.iter().enumerate() {
            let one = |_: usize, case: &CaseRecord| decide(i, case);
            results.push(
                match super::apply_batch(self, std::slice::from_ref(request), &one, now).await {
                    Ok(mut r) => r.pop().unwrap_or_else(|| {
                        Err(crate::Error::Store(corrupt(
                            "a batch of one gave no result",
                        )))
                    }),
                    Err(e) => Err(crate::Error::Store(e)),
                },
            );
        }
        Ok(results)
    }

    async fn list_inspections(
        &self,
        filter: &InspectionFilter,
        scope: &Scope,
    ) -> Result<Vec<InspectionRecord>, Error> {
        // The scope applies to the unit's place; the columns of `units` have the same
        // names as those of `cases`, so the case scope's SQL serves, on a subquery.
        let mut q = QueryBuilder::<Db>::new(
            "SELECT i.id, i.unit_id, u.address, i.inspector_id, i.at, i.lon, i.lat, \
             i.distance_m, i.off_site, i.crs, i.note FROM inspections i \
             JOIN units u ON u.id = i.unit_id WHERE i.unit_id IN (SELECT id FROM units WHERE 1 = 1",
        );
        match scope {
            Scope::Department(_) | Scope::Party(_) => {
                q.push(" AND 1 = 0");
            }
            other => push_scope(&mut q, other),
        }
        q.push(")");
        if let Some(inspector) = filter.inspector_id {
            q.push(" AND i.inspector_id = ").push_bind(inspector.0);
        }
        if let Some(unit) = filter.unit_id {
            q.push(" AND i.unit_id = ").push_bind(unit.0);
        }
        if let Some(off_site) = filter.off_site {
            q.push(" AND i.off_site = ").push_bind(off_site);
        }
        if let Some(before) = filter.before {
            q.push(" AND i.id < ").push_bind(before.0);
        }
        q.push(" ORDER BY i.id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 1000)));
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                let crs: String = r.try_get("crs")?;
                Ok(InspectionRecord {
                    id: InspectionId(r.try_get("id")?),
                    unit_id: UnitId(r.try_get("unit_id")?),
                    address: r.try_get("address")?,
                    inspector_id: r
                        .try_get::<Option<i64>, _>("inspector_id")?
                        .map(InspectorId),
                    at: from_millis(r.try_get("at")?),
                    lon: r.try_get("lon")?,
                    lat: r.try_get("lat")?,
                    distance_m: r.try_get("distance_m")?,
                    off_site: r.try_get("off_site")?,
                    crs: Crs::parse(&crs, "crs").map_err(|e| corrupt(e.message))?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }

    async fn case(&self, id: CaseId) -> Result<Option<CaseRecord>, Error> {
        let row = sqlx::query(*SELECT_CASE)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(case_from_row).transpose()
    }

    async fn case_events(&self, id: CaseId) -> Result<Vec<EventRecord>, Error> {
        let rows = sqlx::query(
            "SELECT seq, at, actor_role, actor_id, command, from_state, to_state, reason, data \
             FROM case_events WHERE case_id = $1 ORDER BY seq",
        )
        .bind(id.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("actor_role")?;
                let data: Json<Value> = r.try_get("data")?;
                Ok(EventRecord {
                    seq: r.try_get("seq")?,
                    at: from_millis(r.try_get("at")?),
                    actor: Actor {
                        role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
                        id: r.try_get("actor_id")?,
                    },
                    command: r.try_get("command")?,
                    from_state: r.try_get("from_state")?,
                    to_state: r.try_get("to_state")?,
                    reason: r.try_get("reason")?,
                    data: data.0,
                })
            })
            .collect()
    }

    async fn case_timers(&self, id: CaseId) -> Result<Vec<TimerRecord>, Error> {
        Ok(self
            .case(id)
            .await?
            .and_then(|c| c.timer)
            .into_iter()
            .collect())
    }

    async fn case_referrals(&self, id: CaseId) -> Result<Vec<ReferralRecord>, Error> {
        let rows = sqlx::query(
            "SELECT id, case_id, department_id, status, referred_at, responded_at, reason_code, \
             result FROM referrals WHERE case_id = $1 ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let result: Option<Json<Value>> = r.try_get("result")?;
                Ok(ReferralRecord {
                    id: r.try_get("id")?,
                    case_id: CaseId(r.try_get("case_id")?),
                    department_id: DepartmentId(r.try_get("department_id")?),
                    status: r.try_get("status")?,
                    referred_at: from_millis(r.try_get("referred_at")?),
                    responded_at: r
                        .try_get::<Option<i64>, _>("responded_at")?
                        .map(from_millis),
                    reason_code: r.try_get("reason_code")?,
                    result: result.map(|j| j.0),
                })
            })
            .collect()
    }

    async fn case_outbox(&self, id: CaseId) -> Result<Vec<OutboxMessage>, Error> {
        let rows = sqlx::query(*SELECT_CASE_OUTBOX)
            .bind(id.0)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    async fn list_cases(
        &self,
        filter: &CaseFilter,
        scope: &Scope,
    ) -> Result<Vec<CaseRecord>, Error> {
        let mut q =
            QueryBuilder::<Db>::new(format!("SELECT {CASE_COLUMNS} FROM cases WHERE 1 = 1"));
        push_scope(&mut q, scope);
        if let Some(state) = &filter.state {
            q.push(" AND state = ").push_bind(state.clone());
        }
        if let Some(category) = &filter.category {
            q.push(" AND category = ").push_bind(category.clone());
        }
        if let Some(district) = &filter.district {
            q.push(" AND district_code = ").push_bind(district.clone());
        }
        if let Some(unit) = filter.unit_id {
            q.push(" AND unit_id = ").push_bind(unit.0);
        }
        if let Some(party) = filter.party_id {
            q.push(" AND party_id = ").push_bind(party.0);
        }
        if let Some(review) = filter.review_required {
            q.push(" AND review_required = ")
                .push_bind(i64::from(review));
        }
        if let Some(dept) = filter.department_id {
            q.push(" AND id IN (SELECT case_id FROM referrals WHERE department_id = ")
                .push_bind(dept.0)
                .push(")");
        }
        if let Some(overdue) = &filter.overdue {
            q.push(if overdue.wanted {
                " AND ("
            } else {
                " AND NOT ("
            });
            push_in(&mut q, "state", &overdue.states);
            q.push(" OR (deadline_at <= ")
                .push_bind(ms(overdue.now))
                .push(" AND");
            push_in(&mut q, "state", &overdue.deadline_states);
            q.push("))");
        }
        if let Some(before) = filter.before {
            q.push(" AND id < ").push_bind(before.0);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 1000)));
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter().map(case_from_row).collect()
    }

    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<TimerRecord>, Error> {
        let rows = sqlx::query(*CLAIM_TIMERS)
            .bind(ms(lease_until))
            .bind(worker)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(self.writer())
            .await?;
        let mut timers: Vec<TimerRecord> = rows
            .iter()
            .filter_map(|r| timer_from_case_row(r).transpose())
            .collect::<Result<_, _>>()?;
        timers.sort_by_key(|t| (t.due_at, t.case_id));
        Ok(timers)
    }

    async fn timer_backlog(&self, now: DateTime<Utc>) -> Result<TimerBacklog, Error> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM cases WHERE timer_due_at IS NOT NULL) AS pending, \
             (SELECT COUNT(*) FROM cases WHERE timer_due_at <= $1) AS due, \
             (SELECT MIN(timer_due_at) FROM cases WHERE timer_due_at IS NOT NULL) AS oldest",
        )
        .bind(ms(now))
        .fetch_one(self.reader())
        .await?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok(TimerBacklog {
            pending: row.try_get("pending")?,
            due: row.try_get("due")?,
            oldest_due_at: oldest.map(from_millis).filter(|t| *t <= now),
        })
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<OutboxMessage>, Error> {
        let rows = sqlx::query(*CLAIM_OUTBOX)
            .bind(ms(lease_until))
            .bind(worker)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(self.writer())
            .await?;
        let mut messages: Vec<OutboxMessage> =
            rows.iter().map(outbox_from_row).collect::<Result<_, _>>()?;
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    async fn outbox_delivered(
        &self,
        id: i64,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE outbox SET delivered_at = $2, channel = $3, attempts = attempts + 1, \
             claimed_until = NULL, last_error = NULL WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(ms(now))
        .bind(channel)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, \
             claimed_until = NULL WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(error)
        .bind(ms(retry_at))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn fingerprint(&self) -> Result<Vec<(String, i64)>, Error> {
        let mut out = Vec::new();
        for (name, sql) in [
            ("cases", "SELECT COUNT(*) FROM cases"),
            (
                "case_versions",
                "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM cases",
            ),
            ("case_events", "SELECT COUNT(*) FROM case_events"),
            (
                "timers",
                "SELECT COUNT(*) FROM cases WHERE timer_due_at IS NOT NULL",
            ),
            (
                "timer_seqs",
                "SELECT CAST(COALESCE(SUM(timer_seq), 0) AS BIGINT) FROM cases",
            ),
            ("outbox", "SELECT COUNT(*) FROM outbox"),
            ("referrals", "SELECT COUNT(*) FROM referrals"),
            ("inspections", "SELECT COUNT(*) FROM inspections"),
            ("units", "SELECT COUNT(*) FROM units"),
            ("unit_parties", "SELECT COUNT(*) FROM unit_parties"),
            ("parties", "SELECT COUNT(*) FROM parties"),
            ("idempotency_keys", "SELECT COUNT(*) FROM idempotency_keys"),
            ("api_tokens", "SELECT COUNT(*) FROM api_tokens"),
            (
                "workflow_definitions",
                "SELECT COUNT(*) FROM workflow_definitions",
            ),
        ] {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(self.reader()).await?;
            out.push((name.to_string(), n));
        }
        Ok(out)
    }
}

/// Runs a statement on the writer; for the backends' own maintenance.
pub(super) async fn execute_all(
    pool: &sqlx::Pool<Db>,
    statements: &[&'static str],
) -> Result<(), Error> {
    for s in statements {
        pool.execute(*s).await?;
    }
    Ok(())
}
