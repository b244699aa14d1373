//! The SQL both backends share, compiled once per backend and split by table family: `super` names the database (`Db`), the store type (`This`) and the dialect's few differences, all imported here by name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Executor, QueryBuilder, Row as _};

use super::{
    BACKEND, Db, MAX_PARAMS, SKIP_LOCKED, TABLE_NAMES, This, after_import, apply_batch,
    begin_write, forget_cases, lock_cases_for_rule_jobs, lock_named, migrator, refresh_statistics,
    stale_retries,
};
use crate::auth::Scope;
use crate::domain::{
    Actor, BuildingId, CaseId, CommunityId, DepartmentId, GridId, InspectionId, InspectorId,
    PartyId, Role, StreetId, SupervisorId, UnitId,
};
use crate::machine::{CaseSnapshot, ReferralChange};
use crate::planning::{Backlog, Candidate, DayPlan, Planner, Reason};
use crate::registry::{BuildingPlace, NewAccount, Record, Unit, UnitRow};
use crate::routing::DepartmentInfo;
use crate::spatial::crs::Crs;
use crate::spatial::grids::{GridPlace, Move};
use crate::spatial::index::Located;
use crate::store::batch::{
    CASE_OPENS, CASE_UPDATES, CaseWrite, Cell, Opening, UnitBefore, Writes, case_columns,
    grade_units,
};
use crate::store::{AccountRecord, CodeRequest, OrderSheet, Preference, SigninCode};
use crate::store::{Addressee, DeliveryJob, DeliveryRecord, InboxItem, NewDelivery, Settled};
use crate::store::{
    AdminStore, CalendarStore, CampaignStore, CaseStore, EvidenceStore, GridStore, ImportStore,
    InspectionStore, PartyStore, PlanStore, QueueStore, RuleStore, StatsStore, TipStore,
    TokenStore, UnitStore,
};
use crate::store::{
    Agreement, Applied, Attachment, Backend, BlacklistChange, BlacklistEntry, CampaignArea,
    CampaignProgress, CampaignRecord, CaseFilter, CaseRecord, CheckItem, Decider, Declaration,
    Error, EventRecord, GradeRecord, GradeUpdate, GridRecord, IdempotencyKey, Idempotent,
    ImportCounts, InspectionFilter, InspectionRecord, InspectorListing, InsurancePolicy,
    Integration, LocationCorrection, NewCampaign, NewCase, NewInspection, NewTip, OpenCase,
    OutboxMessage, PartyListing, PartyRecord, PartyUnit, Placard, PlanSave, RecordedInspection,
    ReferralRecord, Respond, RuleJob, RuleVersion, StoredRoute, StoredStop, StreetRecord,
    SupervisorRecord, TimerBacklog, TimerRecord, TipFilter, TipRecord, TipRefusal, TokenListing,
    TokenRecord, TransitionRequest, UnitPartyRecord,
};
use crate::time::{from_millis, to_millis};

mod admin;
mod calendar;
mod campaigns;
mod cases;
mod evidence;
mod grids;
mod import;
mod inspections;
mod parties;
mod plans;
mod queues;
mod rules;
mod stats;
mod tips;
mod tokens;
mod units;

pub(super) type Row = <Db as sqlx::Database>::Row;
pub(super) type Tx<'c> = sqlx::Transaction<'c, Db>;
pub(super) type Conn = <Db as sqlx::Database>::Connection;
/// Every column a case is read with (`batch::case_columns`), for `format!`.
pub(super) const CASE_COLUMNS: CaseColumns = CaseColumns;
pub(super) struct CaseColumns;
impl std::fmt::Display for CaseColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(case_columns())
    }
}
/// Binds a case column's value in a row of values.
pub(super) fn push_cell(b: &mut sqlx::query_builder::Separated<'_, Db, &'static str>, cell: Cell) {
    match cell {
        Cell::Int(v) => b.push_bind(v),
        Cell::MaybeInt(v) => b.push_bind(v),
        Cell::Text(v) => b.push_bind(v),
        Cell::MaybeText(v) => b.push_bind(v),
        Cell::Real(v) => b.push_bind(v),
        Cell::Json(v) => b.push_bind(Json(v)),
    };
}
const UNIT_COLUMNS: &str = "id, address_code, building_id, address, lon, lat, floor_area, \
    occupants, grid_id, community_id, street_id, district_code, party_id, created_at, stars, \
    score, checklist, last_inspected_at, last_closed_at, next_due_at, evening_only, public_code";
const OUTBOX_COLUMNS: &str = "id, case_id, event_seq, recipient_kind, recipient_id, template, \
    subject, body, created_at, attempts, delivered_at, channel, last_error";
/// Builds a query text once, with the dialect's suffixes, for the life of the process.
fn leak(sql: String) -> &'static str {
    sql.leak()
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
            objected_order: i32::try_from(row.try_get::<i64, _>("objected_order")?)
                .map_err(corrupt)?,
            order_hours: i32::try_from(row.try_get::<i64, _>("order_hours")?).map_err(corrupt)?,
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
/// An event of a case's history, from a row with its columns.
pub(super) fn event_from_row(r: &Row) -> Result<EventRecord, Error> {
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
        from_at: row
            .try_get::<Option<i64>, _>("timer_from_at")?
            .map(from_millis),
        provisional: false,
    }))
}
/// A grade (1 to 5 stars) read from a nullable integer column.
fn stars_at<I: sqlx::ColumnIndex<Row>>(row: &Row, column: I) -> Result<Option<u8>, Error> {
    row.try_get::<Option<i64>, _>(column)?
        .map(|s| u8::try_from(s).map_err(corrupt))
        .transpose()
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
/// The grades of the units whose cases a batch closed or reopened, written in the
/// batch's transaction (`conn` is inside it): the units and their open cases are read
/// as stored, and `grade_units` corrects them by the batch's cases.
pub(super) async fn write_regrades(
    conn: &mut Conn,
    regrades: &[(i64, i64, crate::machine::Regrade)],
    cases: &BTreeMap<i64, CaseRecord>,
    rubric: &crate::grading::Rubric,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ids: BTreeSet<i64> = regrades.iter().map(|r| r.0).collect();
    let ids: Vec<i64> = ids.into_iter().collect();
    let mut q = QueryBuilder::<Db>::new(format!("SELECT {UNIT_COLUMNS} FROM units WHERE id IN ("));
    push_ids(&mut q, &ids);
    let mut units = Vec::with_capacity(ids.len());
    for row in q.build().fetch_all(&mut *conn).await? {
        units.push(UnitBefore {
            unit: unit_from_row(&row)?,
            open: BTreeMap::new(),
        });
    }
    let mut q = QueryBuilder::<Db>::new(
        "SELECT id, unit_id, category, severity FROM cases WHERE closed_at IS NULL AND unit_id IN (",
    );
    push_ids(&mut q, &ids);
    for row in q.build().fetch_all(&mut *conn).await? {
        let unit: i64 = row.try_get("unit_id")?;
        if let Some(u) = units.iter_mut().find(|u| u.unit.id.0 == unit) {
            u.open.insert(
                row.try_get("id")?,
                crate::grading::OpenHazard {
                    category: row.try_get("category")?,
                    severity: row.try_get("severity")?,
                },
            );
        }
    }
    for g in grade_units(regrades, cases, units, rubric, now) {
        write_grade(&mut *conn, &g, None).await?;
    }
    Ok(())
}
/// Appends `ids` as bound values and closes the parenthesis of an `IN (` list.
fn push_ids(q: &mut QueryBuilder<Db>, ids: &[i64]) {
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    q.push(")");
}
/// Writes a unit's grade and patrol dates, and a history row if the stars changed (first,
/// so that it keeps the stars the unit had before).
async fn write_grade(
    conn: &mut Conn,
    g: &GradeUpdate,
    inspection: Option<i64>,
) -> Result<(), Error> {
    if g.changed {
        sqlx::query(
            "INSERT INTO unit_grades (unit_id, stars, score, reasons, cause, inspection_id, at, \
             stars_before) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             (SELECT stars FROM units WHERE id = $1))",
        )
        .bind(g.unit_id.0)
        .bind(g.stars.map(i64::from))
        .bind(g.score)
        .bind(serde_json::to_string(&g.reasons).expect("reasons serialize"))
        .bind(&g.cause)
        .bind(inspection)
        .bind(ms(g.at))
        .execute(&mut *conn)
        .await?;
    }
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
    .execute(&mut *conn)
    .await?;
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
/// ` column IN (…)` of these values (` 1 = 0` for none).
pub(super) fn push_in(q: &mut QueryBuilder<Db>, column: &str, values: &[String]) {
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
