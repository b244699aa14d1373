//! Patrol over HTTP: an inspector's plan of a day (JSON, or GeoJSON for the map), the backlog of a planned day, and campaigns with their progress.

use anju_engine::text::Day;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use anju_engine::domain::{GridId, InspectorId, UnitId};
use anju_engine::model::{CampaignProgress, CampaignRecord, CheckItem, StoredStop};
use anju_engine::patrol::{CampaignAreaInput, CampaignInput, InspectorPlan, eight_checks};
use anju_engine::planning::{Backlog, Reason};
use anju_engine::spatial::crs::Crs;
use anju_engine::time::china_time;

use crate::http::extract::{Body, Caller, Id, Params};
use crate::http::problem::ApiResult;
use crate::routes::places::{geojson_response, parse_shape, wants_geojson};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PlanQuery {
    /// The day, in China time; today if left out.
    #[param(value_type = Option<String>, format = Date)]
    date: Option<Day>,
}

/// The plan as GeoJSON: the walking route as a LineString, then each stop as a Point.
fn plan_geojson(plan: &InspectorPlan) -> Value {
    let r = &plan.route;
    let mut features = Vec::new();
    if r.stops.len() >= 2 {
        features.push(json!({
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": r.stops.iter().map(|s| [s.lon, s.lat]).collect::<Vec<_>>(),
            },
            "properties": {
                "kind": "route",
                "inspector_id": r.inspector_id,
                "date": plan.date,
                "length_m": r.length_m.round(),
                "nn_length_m": r.nn_length_m.round(),
            },
        }));
    }
    for s in &r.stops {
        features.push(json!({
            "type": "Feature",
            "id": s.unit_id,
            "geometry": { "type": "Point", "coordinates": [s.lon, s.lat] },
            "properties": {
                "kind": "stop",
                "seq": s.seq,
                "address": s.address,
                "reason": s.reason,
                "overdue_days": s.overdue_days,
                "stars": s.stars,
                "evening_only": s.evening_only,
                "visited": s.visited_at.is_some(),
            },
        }));
    }
    json!({ "type": "FeatureCollection", "features": features })
}

#[utoipa::path(get, path = "/inspectors/{id}/plan", tag = "patrol", params(("id" = i64, Path), PlanQuery), responses((status = 200, description = "JSON, or GeoJSON with `Accept: application/geo+json`", content((Object = "application/json"), (Object = "application/geo+json")))))]
pub async fn inspector_plan(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Id(id): Id,
    Params(q): Params<PlanQuery>,
) -> ApiResult<Response> {
    let date = q
        .date
        .map(|d| d.0)
        .unwrap_or_else(|| app.runtime.now().with_timezone(&china_time()).date_naive());
    let plan = app
        .runtime
        .inspector_plan(&caller, InspectorId(id), date)
        .await?;
    if wants_geojson(&headers) {
        return Ok(geojson_response(plan_geojson(&plan)));
    }
    let r = &plan.route;
    Ok(Json(json!({
        "date": plan.date,
        "stored": plan.stored,
        "planned_at": plan.planned_at,
        "inspector_id": r.inspector_id,
        "shift": r.shift,
        "capacity": r.capacity,
        "visits": r.stops.len(),
        "visited": r.stops.iter().filter(|s| s.visited_at.is_some()).count(),
        "length_m": r.length_m.round(),
        "nn_length_m": r.nn_length_m.round(),
        "stops": r.stops.iter().map(StopOut::of).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[utoipa::path(get, path = "/plans/{date}/backlog", tag = "patrol", params(("date" = String, Path)), responses((status = 200, description = "the day's backlog by grid", body = BacklogPage)))]
pub async fn plan_backlog(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Path(date): Path<String>,
) -> ApiResult<Json<Value>> {
    let date = anju_engine::text::parse_day("date", &date)?;
    let backlog = app.runtime.plan_backlog(&caller, date).await?;
    let left: u64 = backlog.iter().map(|b| u64::from(b.left)).sum();
    let grids: Vec<BacklogOut> = backlog.iter().map(BacklogOut::of).collect();
    Ok(Json(json!(BacklogPage { date, left, grids })))
}

/// A stored day's backlog: what could not be planned, by grid.
#[derive(Serialize, utoipa::ToSchema)]
struct BacklogPage {
    date: chrono::NaiveDate,
    left: u64,
    grids: Vec<BacklogOut>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum AreaBody {
    District(String),
    Street(i64),
    Grid(i64),
    /// A GeoJSON Polygon or MultiPolygon.
    Polygon(Value),
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignBody {
    name: String,
    area: AreaBody,
    /// The datum of a polygon area.
    #[serde(default)]
    #[schema(value_type = String)]
    crs: Crs,
    #[schema(value_type = String, format = Date)]
    starts_on: Day,
    #[schema(value_type = String, format = Date)]
    ends_on: Day,
    /// The campaign's own checklist; the eight checks (八查) if left out.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    checklist: Option<Vec<CheckItem>>,
}

#[utoipa::path(post, path = "/campaigns", tag = "patrol", request_body = CampaignBody, responses((status = 201, description = "the campaign created", body = CampaignOut)))]
pub async fn create_campaign(
    State(app): State<AppState>,
    Caller(caller): Caller,
    body: Body<CampaignBody>,
) -> ApiResult<Response> {
    let b = body.value;
    let (area, area_json) = match b.area {
        AreaBody::District(code) => (
            CampaignAreaInput::District(code.clone()),
            json!({ "district": code }),
        ),
        AreaBody::Street(id) => (CampaignAreaInput::Street(id), json!({ "street": id })),
        AreaBody::Grid(id) => (CampaignAreaInput::Grid(GridId(id)), json!({ "grid": id })),
        AreaBody::Polygon(shape) => {
            let polygon = parse_shape(shape.clone(), b.crs, "area.polygon")?;
            (
                CampaignAreaInput::Polygon(polygon),
                json!({ "polygon": shape, "crs": b.crs }),
            )
        }
    };
    let campaign = app
        .runtime
        .create_campaign(
            &caller,
            CampaignInput {
                name: b.name,
                area,
                area_json,
                starts_on: b.starts_on.0,
                ends_on: b.ends_on.0,
                checklist: b.checklist.unwrap_or_else(eight_checks),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(CampaignOut::of(&campaign)))).into_response())
}

#[utoipa::path(get, path = "/campaigns", tag = "patrol", responses((status = 200, description = "the campaigns of the caller's area", body = CampaignList)))]
pub async fn campaigns(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.campaigns(&caller).await?;
    let list: Vec<CampaignOut> = list.iter().map(CampaignOut::of).collect();
    Ok(Json(json!(CampaignList { campaigns: list })))
}

/// The campaigns the caller sees.
#[derive(Serialize, utoipa::ToSchema)]
struct CampaignList<'a> {
    campaigns: Vec<CampaignOut<'a>>,
}

#[utoipa::path(get, path = "/campaigns/{id}", tag = "patrol", params(("id" = i64, Path)), responses((status = 200, description = "the campaign", body = CampaignOut)))]
pub async fn campaign(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let campaign = app.runtime.campaign(&caller, id).await?;
    Ok(Json(json!(CampaignOut::of(&campaign))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProgressQuery {
    /// `district`, `street`, `community` or `grid` (the default).
    by: Option<String>,
}

#[utoipa::path(get, path = "/campaigns/{id}/progress", tag = "patrol", params(("id" = i64, Path), ProgressQuery), responses((status = 200, description = "the campaign's progress, in all and by area", body = ProgressPage)))]
pub async fn campaign_progress(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Params(q): Params<ProgressQuery>,
) -> ApiResult<Json<Value>> {
    let by = q.by.unwrap_or_else(|| "grid".into());
    let rows = app.runtime.campaign_progress(&caller, id, &by).await?;
    let sum =
        |f: fn(&anju_engine::model::CampaignProgress) -> i64| -> i64 { rows.iter().map(f).sum() };
    Ok(Json(json!(ProgressPage {
        campaign_id: id,
        by: &by,
        total: sum(|r| r.total),
        visited: sum(|r| r.visited),
        hazards: sum(|r| r.hazards),
        areas: rows.iter().map(ProgressOut::of).collect(),
    })))
}

/// A campaign's progress, in all and by area.
#[derive(Serialize, utoipa::ToSchema)]
struct ProgressPage<'a> {
    campaign_id: i64,
    /// `grid`, `street` or `district`.
    by: &'a str,
    total: i64,
    visited: i64,
    hazards: i64,
    areas: Vec<ProgressOut<'a>>,
}

/// A stop of a plan, in walking order.
#[derive(Serialize, utoipa::ToSchema)]
struct StopOut<'a> {
    seq: u32,
    unit_id: UnitId,
    address: &'a str,
    grid_id: GridId,
    lon: f64,
    lat: f64,
    #[schema(value_type = String)]
    reason: Reason,
    overdue_days: i64,
    stars: Option<u8>,
    evening_only: bool,
    leg_m: f64,
    visited_at: Option<DateTime<Utc>>,
    outcome: Option<&'a str>,
    extra: bool,
}

impl<'a> StopOut<'a> {
    fn of(s: &'a StoredStop) -> StopOut<'a> {
        StopOut {
            seq: s.seq,
            unit_id: s.unit_id,
            address: &s.address,
            grid_id: s.grid_id,
            lon: s.lon,
            lat: s.lat,
            reason: s.reason,
            overdue_days: s.overdue_days,
            stars: s.stars,
            evening_only: s.evening_only,
            leg_m: s.leg_m,
            visited_at: s.visited_at,
            outcome: s.outcome.as_deref(),
            extra: s.extra,
        }
    }
}

/// A grid's part of a planned day: due, planned, left.
#[derive(Serialize, utoipa::ToSchema)]
struct BacklogOut {
    grid_id: GridId,
    due: u32,
    planned: u32,
    left: u32,
}

impl BacklogOut {
    fn of(b: &Backlog) -> BacklogOut {
        BacklogOut {
            grid_id: b.grid_id,
            due: b.due,
            planned: b.planned,
            left: b.left,
        }
    }
}

/// An item of a campaign's checklist.
#[derive(Serialize, utoipa::ToSchema)]
struct CheckItemOut<'a> {
    code: &'a str,
    zh: &'a str,
    en: &'a str,
}

/// A campaign (专项行动): its area as it was given, its days and checklist.
#[derive(Serialize, utoipa::ToSchema)]
struct CampaignOut<'a> {
    id: i64,
    name: &'a str,
    area: &'a Value,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    checklist: Vec<CheckItemOut<'a>>,
    created_by: &'a str,
    created_at: DateTime<Utc>,
    units: i64,
}

impl<'a> CampaignOut<'a> {
    fn of(c: &'a CampaignRecord) -> CampaignOut<'a> {
        CampaignOut {
            id: c.id,
            name: &c.name,
            area: &c.area,
            starts_on: c.starts_on,
            ends_on: c.ends_on,
            checklist: c
                .checklist
                .iter()
                .map(|i| CheckItemOut {
                    code: &i.code,
                    zh: &i.zh,
                    en: &i.en,
                })
                .collect(),
            created_by: &c.created_by,
            created_at: c.created_at,
            units: c.units,
        }
    }
}

/// How far a campaign has got in one area.
#[derive(Serialize, utoipa::ToSchema)]
struct ProgressOut<'a> {
    area: &'a str,
    total: i64,
    visited: i64,
    hazards: i64,
}

impl<'a> ProgressOut<'a> {
    fn of(p: &'a CampaignProgress) -> ProgressOut<'a> {
        ProgressOut {
            area: &p.area,
            total: p.total,
            visited: p.visited,
            hazards: p.hazards,
        }
    }
}
