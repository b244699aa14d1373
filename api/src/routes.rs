//! The HTTP API under `/api/v1`: units, inspections, cases and their commands, landlords' orders and departments' referrals.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use anju_engine::domain::{CaseId, DepartmentId, PartyId, UnitId};
use anju_engine::machine::Command;
use anju_engine::model::{CaseFilter, CaseRecord, Idempotent};
use anju_engine::registry::Unit;
use anju_engine::runtime::{CaseView, Finding, InspectionInput, InspectionOutcome, UnitInput};
use anju_engine::spatial::crs::Crs;
use anju_engine::time;

use crate::app::AppState;
use crate::extract::{Body, Caller, Id, IdemHeader, Params};
use crate::problem::{ApiError, ApiResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/units", post(create_unit))
        .route("/units/near", get(crate::places::near))
        .route("/units/nearest", get(crate::places::nearest))
        .route(
            "/units/within",
            get(crate::places::within_bbox).post(crate::places::within_polygon),
        )
        .route("/units/ungridded", get(ungridded_units))
        .route("/units/{id}", get(get_unit))
        .route("/units/{id}/location", post(correct_unit_point))
        .route("/buildings/{id}/location", post(correct_building_point))
        .route("/units/{id}/grades", get(unit_grades))
        .route("/grading/rubric", get(rubric))
        .route("/grids/{id}", get(crate::places::grid))
        .route("/grids/{id}/units", get(crate::places::grid_units))
        .route(
            "/units/{id}/parties",
            get(unit_parties).post(change_unit_party),
        )
        .route(
            "/inspections",
            post(record_inspection).get(crate::places::list_inspections),
        )
        .route("/cases", get(list_cases))
        .route("/cases/{id}", get(get_case))
        .route("/cases/{id}/commands", post(issue_command))
        .route("/cases/{id}/events", get(case_events))
        .route("/cases/{id}/messages", get(case_messages))
        .route("/landlords/{id}/orders", get(landlord_orders))
        .route("/landlords/{id}/units", get(landlord_units))
        .route("/departments/{id}/referrals", get(department_referrals))
        .route("/workflows", get(workflows))
        .route("/departments", get(departments))
        .route("/inspectors", get(inspectors))
        .route("/supervisors", get(supervisors))
        .route("/rules", get(rules))
        .route("/inspectors/{id}/plan", get(crate::patrol::inspector_plan))
        .route("/plans/{date}/backlog", get(crate::patrol::plan_backlog))
        .route(
            "/campaigns",
            get(crate::patrol::campaigns).post(crate::patrol::create_campaign),
        )
        .route("/campaigns/{id}", get(crate::patrol::campaign))
        .merge(crate::responsibility::router())
        .route(
            "/campaigns/{id}/progress",
            get(crate::patrol::campaign_progress),
        )
}

async fn me(Caller(p): Caller) -> Json<Value> {
    Json(json!({ "role": p.role, "subject": p.subject, "scope": p.scope }))
}

/// A created resource, or the stored response of the same request made before.
fn created<T>(result: Idempotent<T>, render: impl Fn(&T) -> Value) -> Response {
    match result {
        Idempotent::Created(v) => (StatusCode::CREATED, Json(render(&v))).into_response(),
        Idempotent::Replayed(body) => {
            let mut r = (StatusCode::CREATED, Json(body)).into_response();
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            r
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitBody {
    building_id: i64,
    address_code: String,
    address: String,
    lon: f64,
    lat: f64,
    floor_area: f64,
    occupants: i64,
    #[serde(default)]
    party_id: Option<i64>,
    /// The datum of `lon` and `lat`: `wgs84` (default) or `gcj02`.
    #[serde(default)]
    crs: Crs,
}

fn unit_json(u: &Unit) -> Value {
    json!(u)
}

async fn create_unit(
    State(app): State<AppState>,
    Caller(caller): Caller,
    idem: IdemHeader,
    body: Body<UnitBody>,
) -> ApiResult<Response> {
    let b = body.value;
    let key = idem.for_request(&caller, &body.digest);
    let point = b.crs.to_wgs84(b.lon, b.lat, "point")?;
    let input = UnitInput {
        building_id: b.building_id,
        address_code: b.address_code,
        address: b.address,
        lon: point.lon(),
        lat: point.lat(),
        floor_area: b.floor_area,
        occupants: b.occupants,
        party_id: b.party_id.map(PartyId),
    };
    let result = app
        .runtime
        .register_unit(&caller, input, key.as_ref(), &unit_json)
        .await?;
    Ok(created(result, unit_json))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

/// Units whose point lies in no grid (supervisors: their district's, or the city's).
async fn ungridded_units(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let units = app
        .runtime
        .ungridded_units(&caller, q.after.map(UnitId), limit)
        .await?;
    let next = (units.len() as u32 == limit)
        .then(|| units.last().map(|u| u.id))
        .flatten();
    Ok(Json(json!({ "units": units, "next_after": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationBody {
    point: PointBody,
    reason: String,
}

/// Corrects a unit's point (audited; the unit and its open cases take the grid the
/// point lies in).
async fn correct_unit_point(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<Value>,
) -> ApiResult<Json<Value>> {
    app.runtime.unit(&caller, UnitId(id)).await?;
    let b: LocationBody = crate::extract::from_value(body.value)?;
    let point = b.point.crs.to_wgs84(b.point.lon, b.point.lat, "point")?;
    let unit = app
        .runtime
        .correct_unit_point(&caller, UnitId(id), point, &b.reason)
        .await?;
    let corrections = app.runtime.unit_corrections(&caller, UnitId(id)).await?;
    Ok(Json(json!({ "unit": unit, "corrections": corrections })))
}

/// Corrects a building's point (audited; the building takes the grid the point lies
/// in).
async fn correct_building_point(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<LocationBody>,
) -> ApiResult<Json<Value>> {
    let b = body.value;
    let point = b.point.crs.to_wgs84(b.point.lon, b.point.lat, "point")?;
    let building = app
        .runtime
        .correct_building_point(&caller, id, point, &b.reason)
        .await?;
    Ok(Json(json!({
        "building_id": building.building_id,
        "grid_id": building.grid_id,
        "district_code": building.district_code,
        "lon": building.lon,
        "lat": building.lat,
    })))
}

async fn get_unit(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let unit = app.runtime.unit(&caller, UnitId(id)).await?;
    Ok(Json(unit_json(&unit)))
}

async fn unit_grades(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let unit = app.runtime.unit(&caller, UnitId(id)).await?;
    let history = app.runtime.unit_grades(&caller, UnitId(id)).await?;
    Ok(Json(json!({
        "unit_id": id,
        "stars": unit.stars,
        "score": unit.score,
        "checklist": unit.checklist,
        "last_inspected_at": unit.last_inspected_at,
        "next_due_at": unit.next_due_at,
        "history": history,
    })))
}

async fn rubric(State(app): State<AppState>, Caller(_): Caller) -> Json<Value> {
    Json(json!(app.runtime.rubric()))
}

async fn unit_parties(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let history = app.runtime.unit_parties(&caller, UnitId(id)).await?;
    Ok(Json(json!({ "unit_id": id, "parties": history })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyBody {
    /// The new responsible party; `null` leaves the unit with nobody on record.
    party_id: Option<i64>,
    #[serde(default)]
    role: Option<String>,
}

async fn change_unit_party(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<PartyBody>,
) -> ApiResult<Json<Value>> {
    let b = body.value;
    let unit = app
        .runtime
        .change_unit_party(&caller, UnitId(id), b.party_id.map(PartyId), b.role)
        .await?;
    let history = app.runtime.unit_parties(&caller, UnitId(id)).await?;
    Ok(Json(json!({ "unit": unit, "parties": history })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PointBody {
    lon: f64,
    lat: f64,
    /// `wgs84` (GPS; the default) or `gcj02` (maps published in China).
    #[serde(default)]
    crs: Crs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingBody {
    category: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    evidence: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InspectionBody {
    unit_id: i64,
    point: PointBody,
    #[serde(default)]
    note: Option<String>,
    /// A grading checklist: every item of the rubric, passed (true) or not.
    #[serde(default)]
    checklist: Option<anju_engine::grading::Checklist>,
    /// Answers to the checklist of a running campaign that covers the unit.
    #[serde(default)]
    campaign_checks: Option<std::collections::BTreeMap<String, bool>>,
    #[serde(default)]
    findings: Vec<FindingBody>,
    /// `inspected` (the default), or an attempt: `no_one_home`, `entry_refused`.
    #[serde(default)]
    outcome: anju_engine::planning::VisitOutcome,
}

fn inspection_json(o: &InspectionOutcome) -> Value {
    json!({
        "inspection_id": o.inspection_id,
        "unit_id": o.unit_id,
        "distance_m": (o.distance_m * 10.0).round() / 10.0,
        "off_site": o.off_site,
        "cases": o.cases,
        "findings_of_cases": o.findings_of_cases,
        "attached": o.attached,
        "possible_duplicates": o.possible_duplicates,
        "grade": o.grade,
    })
}

async fn record_inspection(
    State(app): State<AppState>,
    Caller(caller): Caller,
    idem: IdemHeader,
    body: Body<InspectionBody>,
) -> ApiResult<Response> {
    let b = body.value;
    let key = idem.for_request(&caller, &body.digest);
    let point = b.point.crs.to_wgs84(b.point.lon, b.point.lat, "point")?;
    let input = InspectionInput {
        unit_id: UnitId(b.unit_id),
        point,
        crs: b.point.crs,
        checklist: b.checklist,
        campaign_checks: b.campaign_checks,
        note: b.note,
        findings: b
            .findings
            .into_iter()
            .map(|f| Finding {
                category: f.category,
                severity: f.severity,
                note: f.note,
                evidence: f.evidence,
            })
            .collect(),
        outcome: b.outcome,
    };
    let result = app
        .runtime
        .record_inspection(&caller, input, key.as_ref(), inspection_json)
        .await?;
    Ok(created(result, inspection_json))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseQuery {
    state: Option<String>,
    category: Option<String>,
    district: Option<String>,
    overdue: Option<bool>,
    /// Only cases waiting for a supervisor's review.
    review: Option<bool>,
    unit_id: Option<i64>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// A case in a list: its record and its state's names.
fn case_summary(app: &AppState, c: &CaseRecord) -> Value {
    let mut v = json!(c);
    if let Some(def) = app.runtime.definition(c.definition_id)
        && let Some(state) = def.states.get(&c.snapshot.state)
    {
        v["state_zh"] = json!(state.zh);
        v["state_en"] = json!(state.en);
        v["terminal"] = json!(state.terminal);
    }
    if let Some(deadline) = c.snapshot.deadline_at {
        v["deadline_local"] = json!(time::local_time(deadline));
    }
    v
}

fn filter_from(app: &AppState, q: CaseQuery) -> ApiResult<CaseFilter> {
    let taxonomy = app.runtime.taxonomy();
    if let Some(c) = &q.category {
        taxonomy.parse_category(c, "category")?;
    }
    if let Some(d) = &q.district
        && (d.len() != 6 || !d.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::Unprocessable {
            field: "district".into(),
            detail: "a district is its six-digit GB/T 2260 code".into(),
        });
    }
    Ok(CaseFilter {
        state: q.state,
        category: q.category,
        district: q.district,
        unit_id: q.unit_id.map(UnitId),
        party_id: None,
        department_id: None,
        overdue: q.overdue.map(|wanted| app.runtime.overdue(wanted)),
        review_required: q.review,
        before: q.before.map(CaseId),
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    })
}

async fn list_cases(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<CaseQuery>,
) -> ApiResult<Json<Value>> {
    let filter = filter_from(&app, q)?;
    let cases = app.runtime.list_cases(&caller, &filter).await?;
    Ok(Json(page(&app, &cases, filter.limit)))
}

fn page(app: &AppState, cases: &[CaseRecord], limit: u32) -> Value {
    let next = (cases.len() as u32 == limit)
        .then(|| cases.last().map(|c| c.snapshot.id))
        .flatten();
    json!({
        "cases": cases.iter().map(|c| case_summary(app, c)).collect::<Vec<_>>(),
        "next_before": next,
    })
}

fn view_json(v: &CaseView) -> Value {
    let mut out = json!(v);
    if let Some(deadline) = v.case.snapshot.deadline_at {
        out["case"]["deadline_local"] = json!(time::local_time(deadline));
    }
    out
}

async fn get_case(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let view = app.runtime.case_view(&caller, CaseId(id)).await?;
    Ok(Json(view_json(&view)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandBody {
    command: String,
    expected_version: i64,
    #[serde(default)]
    data: Map<String, Value>,
    #[serde(default)]
    reason: Option<String>,
}

async fn issue_command(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<Value>,
) -> ApiResult<Json<Value>> {
    // A case outside the caller's scope answers as one that does not exist, before
    // anything in the body is looked at: a body at fault is answered only once the case
    // proved visible. A valid command goes straight to the writer, which checks the
    // scope under the case's lock, so that nothing is read twice.
    let parsed = crate::extract::from_value::<CommandBody>(body.value).and_then(|b| {
        if b.expected_version < 1 {
            Err(ApiError::Unprocessable {
                field: "expected_version".into(),
                detail: "the version of the case you saw, from 1".into(),
            })
        } else {
            Ok(b)
        }
    });
    let b = match parsed {
        Ok(b) => b,
        Err(e) => {
            app.runtime.visible_case(&caller, CaseId(id)).await?;
            return Err(e);
        }
    };
    let command = Command {
        name: b.command,
        data: b.data,
        reason: b.reason,
    };
    let committed = app
        .runtime
        .execute(&caller, CaseId(id), command, Some(b.expected_version))
        .await?;
    let answer = app.runtime.command_answer(&caller, committed)?;
    let mut out = json!(answer);
    if let Some(deadline) = answer.case.snapshot.deadline_at {
        out["case"]["deadline_local"] = json!(time::local_time(deadline));
    }
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: i64,
    limit: Option<u32>,
}

/// A page of a case's history: the events after `after` (a sequence number), at most
/// `limit` (100 by default, up to 1,000), as the caller may see them.
async fn case_events(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Params(q): Params<EventsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = app
        .runtime
        .case_events_after(&caller, CaseId(id), q.after, limit)
        .await?;
    let next = (events.len() as u32 == limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(Json(json!({ "events": events, "next_after": next })))
}

async fn case_messages(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    // The engine keeps to each caller the messages they may see.
    let messages = app.runtime.case_outbox(&caller, CaseId(id)).await?;
    Ok(Json(json!({ "messages": messages })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Order {
    case: Value,
    order_no: i32,
    deadline_at: Option<chrono::DateTime<chrono::Utc>>,
    deadline_local: Option<String>,
    subject: Option<String>,
    body: Option<String>,
}

/// The units a landlord answers for: grade, last inspection, open orders and the
/// nearest deadline (not the inspectors' patrol dates).
/// The escalation rules in force, with their versions and script hashes, and how many
/// evaluations ran and failed since the service started (supervisors).
async fn rules(State(app): State<AppState>, Caller(caller): Caller) -> ApiResult<Json<Value>> {
    let set = app.runtime.rules_for(&caller)?;
    let (evaluations, failures) = set.counts();
    let rules: Vec<Value> = set
        .specs()
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name,
                "version": r.version,
                "on": r.on,
                "zh": r.zh,
                "en": r.en,
                "script_sha256": set.script_hash(&r.name),
            })
        })
        .collect();
    Ok(Json(json!({
        "rules": rules,
        "evaluations": evaluations,
        "failures": failures,
    })))
}

async fn landlord_units(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let units = app.runtime.party_units(&caller, PartyId(id)).await?;
    let units: Vec<Value> = units
        .iter()
        .map(|p| {
            let u = &p.unit;
            json!({
                "id": u.id,
                "address": u.address,
                "address_code": u.address_code,
                "floor_area": u.floor_area,
                "occupants": u.occupants,
                "stars": u.stars,
                "score": u.score,
                "last_inspected_at": u.last_inspected_at,
                "open_orders": p.open_orders,
                "next_deadline": p.next_deadline,
                "public_code": u.public_code,
            })
        })
        .collect();
    Ok(Json(
        json!({ "party_id": id, "count": units.len(), "units": units }),
    ))
}

async fn landlord_orders(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = CaseFilter {
        state: q.state,
        before: q.before.map(CaseId),
        limit,
        ..CaseFilter::default()
    };
    let cases = app
        .runtime
        .party_orders(&caller, PartyId(id), &filter)
        .await?;
    let next = (cases.len() as u32 == limit)
        .then(|| cases.last().map(|(c, _)| c.snapshot.id))
        .flatten();
    let orders: Vec<Order> = cases
        .iter()
        .filter(|(c, _)| c.snapshot.order_no > 0)
        .map(|(c, latest)| Order {
            case: case_summary(&app, c),
            order_no: c.snapshot.order_no,
            deadline_at: c.snapshot.deadline_at,
            deadline_local: c.snapshot.deadline_at.map(time::local_time),
            subject: latest.as_ref().map(|m| m.subject.clone()),
            body: latest.as_ref().map(|m| m.body.clone()),
        })
        .collect();
    Ok(Json(json!({ "orders": orders, "next_before": next })))
}

async fn department_referrals(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = CaseFilter {
        state: q.state,
        before: q.before.map(CaseId),
        limit,
        ..CaseFilter::default()
    };
    let cases = app
        .runtime
        .department_referrals(&caller, DepartmentId(id), &filter)
        .await?;
    let next = (cases.len() as u32 == limit)
        .then(|| cases.last().map(|(c, _)| c.snapshot.id))
        .flatten();
    let out: Vec<Value> = cases
        .iter()
        .map(|(c, mine)| json!({ "case": case_summary(&app, c), "referrals": mine }))
        .collect();
    Ok(Json(json!({ "referrals": out, "next_before": next })))
}

/// The departments the caller may work with: those of the caller's districts and the
/// city-wide ones.
async fn departments(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.department_directory(&caller).await?;
    Ok(Json(json!({ "departments": list })))
}

/// The inspectors of the caller's area (supervisors), or sharing a grid (inspectors).
async fn inspectors(State(app): State<AppState>, Caller(caller): Caller) -> ApiResult<Json<Value>> {
    let list = app.runtime.inspector_directory(&caller).await?;
    Ok(Json(json!({ "inspectors": list })))
}

/// The supervisors over the caller's area.
async fn supervisors(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.supervisor_directory(&caller).await?;
    Ok(Json(json!({ "supervisors": list })))
}

async fn workflows(State(app): State<AppState>, Caller(_): Caller) -> ApiResult<Response> {
    let (id, def) = app
        .runtime
        .latest_definition(anju_engine::workflow::HAZARD_CASE)
        .ok_or_else(|| ApiError::NotFound("no hazard case workflow".into()))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    Ok((
        headers,
        Json(json!({ "id": id, "definition": *def, "taxonomy": app.runtime.taxonomy() })),
    )
        .into_response())
}
