//! Units over HTTP: registration, a unit and its grades, its responsible parties, point corrections, the units outside every grid, the rubric.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use anju_engine::domain::{CommunityId, GridId, InspectionId, PartyId, StreetId, UnitId};
use anju_engine::model::{GradeRecord, LocationCorrection, UnitPartyRecord};
use anju_engine::registry::Unit;
use anju_engine::runtime::UnitInput;
use anju_engine::spatial::crs::Crs;

use crate::http::extract::{Body, Caller, Id, IdemHeader, Params};
use crate::http::problem::ApiResult;
use crate::state::AppState;

use super::dto::UnitOut;
use super::*;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UnitBody {
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
    #[schema(value_type = String)]
    crs: Crs,
}

pub(super) fn unit_json(u: &Unit) -> Value {
    json!(UnitOut::of(u))
}

#[utoipa::path(post, path = "/units", tag = "units", request_body = UnitBody, responses((status = 201, description = "the unit registered (or, with the same Idempotency-Key, as registered before)", body = UnitOut)))]
pub(super) async fn create_unit(
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct PageQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

/// Units whose point lies in no grid (supervisors: their district's, or the city's).
#[utoipa::path(get, path = "/units/ungridded", tag = "units", params(PageQuery), responses((status = 200, description = "units outside every grid, by id", body = UnitPage)))]
pub(super) async fn ungridded_units(
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
    let units: Vec<UnitOut> = units.iter().map(UnitOut::of).collect();
    Ok(Json(json!(UnitPage {
        units,
        next_after: next
    })))
}

/// A page of units by id; `next_after` asks for the next page.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct UnitPage<'a> {
    units: Vec<UnitOut<'a>>,
    next_after: Option<UnitId>,
}

/// A unit with its point corrections, newest last.
#[derive(Serialize, utoipa::ToSchema)]
struct CorrectedUnit<'a> {
    unit: UnitOut<'a>,
    corrections: Vec<CorrectionOut<'a>>,
}

/// A unit's responsible parties, from the first on record.
#[derive(Serialize, utoipa::ToSchema)]
struct UnitParties<'a> {
    unit_id: i64,
    parties: Vec<UnitPartyOut<'a>>,
}

/// A unit handed to another party, with the parties on record.
#[derive(Serialize, utoipa::ToSchema)]
struct UnitWithParties<'a> {
    unit: UnitOut<'a>,
    parties: Vec<UnitPartyOut<'a>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LocationBody {
    point: PointBody,
    reason: String,
}

/// Corrects a unit's point (audited; the unit and its open cases take the grid the
/// point lies in).
#[utoipa::path(post, path = "/units/{id}/location", tag = "units", params(("id" = i64, Path)), request_body = LocationBody, responses((status = 200, description = "the unit at its corrected point, with its corrections", body = CorrectedUnit)))]
pub(super) async fn correct_unit_point(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<Value>,
) -> ApiResult<Json<Value>> {
    app.runtime.unit(&caller, UnitId(id)).await?;
    let b: LocationBody = crate::http::extract::from_value(body.value)?;
    let point = b.point.crs.to_wgs84(b.point.lon, b.point.lat, "point")?;
    let unit = app
        .runtime
        .correct_unit_point(&caller, UnitId(id), point, &b.reason)
        .await?;
    let corrections = app.runtime.unit_corrections(&caller, UnitId(id)).await?;
    let corrections: Vec<CorrectionOut> = corrections.iter().map(CorrectionOut::of).collect();
    Ok(Json(json!(CorrectedUnit {
        unit: UnitOut::of(&unit),
        corrections
    })))
}

/// Corrects a building's point (audited; the building takes the grid the point lies
/// in).
#[utoipa::path(post, path = "/buildings/{id}/location", tag = "units", params(("id" = i64, Path)), request_body = LocationBody, responses((status = 200, description = "the building at its corrected point", body = BuildingOut)))]
pub(super) async fn correct_building_point(
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
    Ok(Json(json!(BuildingOut {
        building_id: building.building_id,
        grid_id: building.grid_id,
        district_code: &building.district_code,
        lon: building.lon,
        lat: building.lat,
    })))
}

/// A building at its corrected point, and the grid and district it lies in.
#[derive(Serialize, utoipa::ToSchema)]
struct BuildingOut<'a> {
    building_id: anju_engine::domain::BuildingId,
    grid_id: GridId,
    district_code: &'a str,
    lon: f64,
    lat: f64,
}

#[utoipa::path(get, path = "/units/{id}", tag = "units", params(("id" = i64, Path)), responses((status = 200, description = "the unit", body = UnitOut)))]
pub(super) async fn get_unit(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let unit = app.runtime.unit(&caller, UnitId(id)).await?;
    Ok(Json(unit_json(&unit)))
}

#[utoipa::path(get, path = "/units/{id}/grades", tag = "units", params(("id" = i64, Path)), responses((status = 200, description = "the unit's grade and its history", body = GradesOut)))]
pub(super) async fn unit_grades(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let unit = app.runtime.unit(&caller, UnitId(id)).await?;
    let history = app.runtime.unit_grades(&caller, UnitId(id)).await?;
    Ok(Json(json!(GradesOut {
        unit_id: id,
        stars: unit.stars,
        score: unit.score,
        checklist: unit.checklist.as_ref().map(|c| json!(c)),
        last_inspected_at: unit.last_inspected_at,
        next_due_at: unit.next_due_at,
        history: history.iter().map(GradeChangeOut::of).collect(),
    })))
}

/// A unit's grade now and its history.
#[derive(Serialize, utoipa::ToSchema)]
struct GradesOut<'a> {
    unit_id: i64,
    stars: Option<u8>,
    score: Option<f64>,
    /// The grading checklist behind the stars: item → passed.
    #[schema(value_type = Option<Object>)]
    checklist: Option<Value>,
    last_inspected_at: Option<DateTime<Utc>>,
    next_due_at: Option<DateTime<Utc>>,
    history: Vec<GradeChangeOut<'a>>,
}

#[utoipa::path(get, path = "/grading/rubric", tag = "units", responses((status = 200, description = "the grading rubric as loaded: stars, patrol intervals, caps, dimensions and their items", body = anju_engine::grading::Rubric)))]
pub(super) async fn rubric(State(app): State<AppState>, Caller(_): Caller) -> Json<Value> {
    Json(json!(app.runtime.rubric()))
}

#[utoipa::path(get, path = "/units/{id}/parties", tag = "units", params(("id" = i64, Path)), responses((status = 200, description = "the unit's responsible parties on record", body = UnitParties)))]
pub(super) async fn unit_parties(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let history = app.runtime.unit_parties(&caller, UnitId(id)).await?;
    let history: Vec<UnitPartyOut> = history.iter().map(UnitPartyOut::of).collect();
    Ok(Json(json!(UnitParties {
        unit_id: id,
        parties: history
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UnitPartyBody {
    /// The new responsible party; `null` leaves the unit with nobody on record.
    party_id: Option<i64>,
    #[serde(default)]
    role: Option<String>,
}

#[utoipa::path(post, path = "/units/{id}/parties", tag = "units", params(("id" = i64, Path)), request_body = UnitPartyBody, responses((status = 200, description = "the unit with its new party, and the parties on record", body = UnitWithParties)))]
pub(super) async fn change_unit_party(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<UnitPartyBody>,
) -> ApiResult<Json<Value>> {
    let b = body.value;
    let unit = app
        .runtime
        .change_unit_party(&caller, UnitId(id), b.party_id.map(PartyId), b.role)
        .await?;
    let history = app.runtime.unit_parties(&caller, UnitId(id)).await?;
    let history: Vec<UnitPartyOut> = history.iter().map(UnitPartyOut::of).collect();
    Ok(Json(json!(UnitWithParties {
        unit: UnitOut::of(&unit),
        parties: history
    })))
}

/// An audited correction of a unit's or a building's point.
#[derive(Serialize, utoipa::ToSchema)]
struct CorrectionOut<'a> {
    kind: &'a str,
    id: i64,
    from: (f64, f64),
    to: (f64, f64),
    grid_before: Option<GridId>,
    place: PlaceOut<'a>,
    actor: &'a str,
    reason: &'a str,
    at: DateTime<Utc>,
}

/// Where a point lies: grid, community, street, district.
#[derive(Serialize, utoipa::ToSchema)]
struct PlaceOut<'a> {
    grid_id: Option<GridId>,
    community_id: Option<CommunityId>,
    street_id: Option<StreetId>,
    district_code: &'a str,
}

impl<'a> CorrectionOut<'a> {
    fn of(c: &'a LocationCorrection) -> CorrectionOut<'a> {
        CorrectionOut {
            kind: &c.kind,
            id: c.id,
            from: c.from,
            to: c.to,
            grid_before: c.grid_before,
            place: PlaceOut {
                grid_id: c.place.grid_id,
                community_id: c.place.community_id,
                street_id: c.place.street_id,
                district_code: &c.place.district_code,
            },
            actor: &c.actor,
            reason: &c.reason,
            at: c.at,
        }
    }
}

/// A change of a unit's grade, and why.
#[derive(Serialize, utoipa::ToSchema)]
struct GradeChangeOut<'a> {
    stars: Option<u8>,
    score: Option<f64>,
    reasons: &'a [String],
    cause: &'a str,
    inspection_id: Option<InspectionId>,
    at: DateTime<Utc>,
}

impl<'a> GradeChangeOut<'a> {
    fn of(g: &'a GradeRecord) -> GradeChangeOut<'a> {
        GradeChangeOut {
            stars: g.stars,
            score: g.score,
            reasons: &g.reasons,
            cause: &g.cause,
            inspection_id: g.inspection_id,
            at: g.at,
        }
    }
}

/// Who answered for a unit, in which role, from when to when.
#[derive(Serialize, utoipa::ToSchema)]
struct UnitPartyOut<'a> {
    party_id: PartyId,
    role: &'a str,
    from_at: DateTime<Utc>,
    to_at: Option<DateTime<Utc>>,
}

impl<'a> UnitPartyOut<'a> {
    fn of(p: &'a UnitPartyRecord) -> UnitPartyOut<'a> {
        UnitPartyOut {
            party_id: p.party_id,
            role: &p.role,
            from_at: p.from_at,
            to_at: p.to_at,
        }
    }
}
