//! Spatial queries over HTTP: units near a point, the nearest units, units in a box or a GeoJSON polygon (as JSON or as GeoJSON for map clients), and the inspections list with its off-site flag.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use anju_engine::domain::{
    CommunityId, GridId, InspectionId, InspectorId, Point, StreetId, UnitId,
};
use anju_engine::model::{GridRecord, InspectionFilter, InspectionRecord};
use anju_engine::registry::Unit;
use anju_engine::spatial::crs::{Crs, gcj02_from_wgs84};
use anju_engine::spatial::shape::{Area, parse_area};

use crate::http::extract::{Body, Caller, Id, Params};
use crate::http::problem::{ApiError, ApiResult};
use crate::state::AppState;

use super::dto::UnitOut;

/// Most units one query returns.
pub const MAX_UNITS: usize = 5000;
/// The widest radius a query may ask for, in metres.
pub const MAX_RADIUS_M: f64 = 50_000.0;

pub fn unprocessable(field: &str, detail: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        field: field.into(),
        detail: detail.into(),
    }
}

fn limit(limit: Option<usize>) -> ApiResult<usize> {
    match limit {
        None => Ok(1000),
        Some(n) if (1..=MAX_UNITS).contains(&n) => Ok(n),
        Some(_) => Err(unprocessable("limit", format!("from 1 to {MAX_UNITS}"))),
    }
}

/// Whether the client asked for GeoJSON.
pub fn wants_geojson(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/geo+json"))
}

/// A GeoJSON document, with its media type.
pub fn geojson_response(value: Value) -> Response {
    let mut r = Json(value).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/geo+json"),
    );
    r
}

/// How many units an answer holds in all, and where its next page starts.
#[derive(Debug, Clone, Copy, Default)]
struct Paging {
    total: usize,
    next_after: Option<UnitId>,
}

/// Units as JSON, or as a GeoJSON FeatureCollection of points (RFC 7946), in the datum
/// the caller asked in (`crs`, said in the answer), with the total and the next page.
fn units_response(
    headers: &HeaderMap,
    units: Vec<(Unit, Option<f64>)>,
    crs: Crs,
    paging: Paging,
) -> Response {
    let round = |d: Option<f64>| d.map(|d| (d * 10.0).round() / 10.0);
    let in_crs = |u: &Unit| match crs {
        Crs::Wgs84 => (u.lon, u.lat),
        Crs::Gcj02 => gcj02_from_wgs84(u.lon, u.lat),
    };
    if wants_geojson(headers) {
        let features: Vec<Value> = units
            .iter()
            .map(|(u, d)| {
                let (lon, lat) = in_crs(u);
                json!({
                    "type": "Feature",
                    "id": u.id,
                    "geometry": { "type": "Point", "coordinates": [lon, lat] },
                    "properties": {
                        "address": u.address,
                        "address_code": u.address_code,
                        "grid_id": u.grid_id,
                        "occupants": u.occupants,
                        "distance_m": round(*d),
                    },
                })
            })
            .collect();
        return geojson_response(json!({
            "type": "FeatureCollection",
            "crs_name": crs,
            "total": paging.total,
            "next_after": paging.next_after,
            "features": features,
        }));
    }
    /// A unit of a list, in the caller's datum, with its distance from the point asked.
    #[derive(Serialize, utoipa::ToSchema)]
    struct Listed<'a> {
        #[serde(flatten)]
        unit: UnitOut<'a>,
        distance_m: Option<f64>,
    }
    let units: Vec<Listed> = units
        .iter()
        .map(|(u, d)| {
            let (lon, lat) = in_crs(u);
            Listed {
                unit: UnitOut::of(u).at(lon, lat),
                distance_m: round(*d),
            }
        })
        .collect();
    Json(json!({
        "crs": crs,
        "count": units.len(),
        "total": paging.total,
        "next_after": paging.next_after,
        "units": units,
    }))
    .into_response()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NearQuery {
    lon: f64,
    lat: f64,
    radius_m: f64,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    crs: Crs,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/units/near", tag = "places", params(NearQuery), responses((status = 200, description = "JSON, or GeoJSON with `Accept: application/geo+json`", content((Object = "application/json"), (Object = "application/geo+json")))))]
pub async fn near(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Params(q): Params<NearQuery>,
) -> ApiResult<Response> {
    let center = q.crs.to_wgs84(q.lon, q.lat, "point")?;
    if !(q.radius_m > 0.0 && q.radius_m <= MAX_RADIUS_M) {
        return Err(unprocessable(
            "radius_m",
            format!("more than 0 and at most {MAX_RADIUS_M} metres"),
        ));
    }
    let (units, total) = app
        .runtime
        .units_near(&caller, center, q.radius_m, limit(q.limit)?)
        .await?;
    let paging = Paging {
        total,
        next_after: None,
    };
    Ok(units_response(&headers, units, q.crs, paging))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NearestQuery {
    lon: f64,
    lat: f64,
    k: usize,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    crs: Crs,
}

#[utoipa::path(get, path = "/units/nearest", tag = "places", params(NearestQuery), responses((status = 200, description = "JSON, or GeoJSON with `Accept: application/geo+json`", content((Object = "application/json"), (Object = "application/geo+json")))))]
pub async fn nearest(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Params(q): Params<NearestQuery>,
) -> ApiResult<Response> {
    let center = q.crs.to_wgs84(q.lon, q.lat, "point")?;
    if !(1..=1000).contains(&q.k) {
        return Err(unprocessable("k", "from 1 to 1000"));
    }
    let units = app.runtime.units_nearest(&caller, center, q.k).await?;
    let paging = Paging {
        total: units.len(),
        next_after: None,
    };
    Ok(units_response(&headers, units, q.crs, paging))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BboxQuery {
    /// `min_lon,min_lat,max_lon,max_lat`
    bbox: String,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    crs: Crs,
    limit: Option<usize>,
    after: Option<i64>,
}

/// Parses `min_lon,min_lat,max_lon,max_lat` (in the caller's datum).
fn parse_bbox(s: &str) -> ApiResult<Area> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| unprocessable("bbox", "four numbers: min_lon,min_lat,max_lon,max_lat"))?;
    let [lon0, lat0, lon1, lat1] = v[..] else {
        return Err(unprocessable(
            "bbox",
            "four numbers: min_lon,min_lat,max_lon,max_lat",
        ));
    };
    Point::parse(lon0, lat0, "bbox")?;
    Point::parse(lon1, lat1, "bbox")?;
    if lon0 > lon1 || lat0 > lat1 {
        return Err(unprocessable("bbox", "the minimum corner comes first"));
    }
    Ok(Area::Box {
        min: (lon0, lat0),
        max: (lon1, lat1),
    })
}

#[utoipa::path(get, path = "/units/within", tag = "places", params(BboxQuery), responses((status = 200, description = "JSON, or GeoJSON with `Accept: application/geo+json`", content((Object = "application/json"), (Object = "application/geo+json")))))]
pub async fn within_bbox(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Params(q): Params<BboxQuery>,
) -> ApiResult<Response> {
    let area = parse_bbox(&q.bbox)?;
    within(&app, &caller, &headers, &area, q.crs, q.after, q.limit).await
}

/// A page of the units in an area, as JSON or GeoJSON.
async fn within(
    app: &AppState,
    caller: &anju_engine::auth::Principal,
    headers: &HeaderMap,
    area: &Area,
    crs: Crs,
    after: Option<i64>,
    limit_: Option<usize>,
) -> ApiResult<Response> {
    let page = app
        .runtime
        .units_in_area(caller, area, crs, after.map(UnitId), limit(limit_)?)
        .await?;
    let paging = Paging {
        total: page.total,
        next_after: page.next_after,
    };
    Ok(units_response(headers, page.units, crs, paging))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ShapeQuery {
    #[serde(default)]
    #[param(value_type = Option<String>)]
    crs: Crs,
    limit: Option<usize>,
    after: Option<i64>,
}

/// Reads a GeoJSON Polygon or MultiPolygon (bare, or as a Feature's geometry) in the
/// caller's datum, and converts it to WGS-84 (edges densified first, so that the
/// converted shape stays within a millimetre of the true one).
pub fn parse_shape(value: Value, crs: Crs, field: &str) -> ApiResult<geo::MultiPolygon<f64>> {
    let shape = parse_area(&value, field)?;
    Ok(match crs {
        Crs::Wgs84 => shape,
        Crs::Gcj02 => anju_engine::spatial::crs::shape_to_wgs84(&shape),
    })
}

#[utoipa::path(post, path = "/units/within", tag = "places", params(ShapeQuery), request_body = Value, responses((status = 200, description = "JSON, or GeoJSON with `Accept: application/geo+json`", content((Object = "application/json"), (Object = "application/geo+json")))))]
pub async fn within_polygon(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Params(q): Params<ShapeQuery>,
    body: Body<Value>,
) -> ApiResult<Response> {
    let area = Area::Shape(parse_area(&body.value, "body")?);
    within(&app, &caller, &headers, &area, q.crs, q.after, q.limit).await
}

#[utoipa::path(get, path = "/grids/{id}", tag = "places", params(("id" = i64, Path)), responses((status = 200, description = "the grid with its shape and place", body = GridOut)))]
pub async fn grid(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let grid = app.runtime.grid(&caller, GridId(id)).await?;
    Ok(Json(json!(GridOut::of(&grid))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GridUnitsQuery {
    after: Option<i64>,
    limit: Option<u32>,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    crs: Crs,
}

#[utoipa::path(get, path = "/grids/{id}/units", tag = "places", params(("id" = i64, Path), GridUnitsQuery), responses((status = 200, description = "JSON, or GeoJSON with `Accept: application/geo+json`", content((Object = "application/json"), (Object = "application/geo+json")))))]
pub async fn grid_units(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Id(id): Id,
    Params(q): Params<GridUnitsQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(1000).clamp(1, MAX_UNITS as u32);
    let grid = app.runtime.grid(&caller, GridId(id)).await?;
    let units = app
        .runtime
        .grid_units(&caller, GridId(id), q.after.map(UnitId), limit)
        .await?;
    let limit = limit as usize;
    let paging = Paging {
        total: usize::try_from(grid.units).unwrap_or(0),
        next_after: (units.len() == limit)
            .then(|| units.last().map(|u| u.id))
            .flatten(),
    };
    Ok(units_response(
        &headers,
        units.into_iter().map(|u| (u, None)).collect(),
        q.crs,
        paging,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InspectionQuery {
    inspector_id: Option<i64>,
    unit_id: Option<i64>,
    off_site: Option<bool>,
    before: Option<i64>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/inspections", tag = "places", params(InspectionQuery), responses((status = 200, description = "the inspections of the caller's scope, newest first", body = InspectionPage)))]
pub async fn list_inspections(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<InspectionQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = InspectionFilter {
        inspector_id: q.inspector_id.map(InspectorId),
        unit_id: q.unit_id.map(UnitId),
        off_site: q.off_site,
        before: q.before.map(InspectionId),
        limit,
    };
    let list = app.runtime.list_inspections(&caller, filter).await?;
    let next = (list.len() as u32 == limit)
        .then(|| list.last().map(|i| i.id))
        .flatten();
    let list: Vec<InspectionRowOut> = list.iter().map(InspectionRowOut::of).collect();
    Ok(Json(json!(InspectionPage {
        inspections: list,
        next_before: next
    })))
}

/// A page of inspections, newest first; `next_before` asks for the next page.
#[derive(Serialize, utoipa::ToSchema)]
struct InspectionPage<'a> {
    inspections: Vec<InspectionRowOut<'a>>,
    next_before: Option<InspectionId>,
}

/// A grid and where it sits, with its outline (GeoJSON, WGS-84).
#[derive(Serialize, utoipa::ToSchema)]
struct GridOut<'a> {
    id: GridId,
    code: &'a str,
    name: &'a str,
    community_id: CommunityId,
    street_id: StreetId,
    district_code: &'a str,
    geometry: Option<&'a Value>,
    units: i64,
}

impl<'a> GridOut<'a> {
    fn of(g: &'a GridRecord) -> GridOut<'a> {
        GridOut {
            id: g.id,
            code: &g.code,
            name: &g.name,
            community_id: g.community_id,
            street_id: g.street_id,
            district_code: &g.district_code,
            geometry: g.geometry.as_ref(),
            units: g.units,
        }
    }
}

/// An inspection of the list: where and when, and how far from the unit.
#[derive(Serialize, utoipa::ToSchema)]
struct InspectionRowOut<'a> {
    id: InspectionId,
    unit_id: UnitId,
    address: &'a str,
    inspector_id: Option<InspectorId>,
    at: DateTime<Utc>,
    lon: f64,
    lat: f64,
    distance_m: f64,
    off_site: bool,
    located: bool,
    #[schema(value_type = String)]
    crs: Crs,
    note: Option<&'a str>,
}

impl<'a> InspectionRowOut<'a> {
    fn of(i: &'a InspectionRecord) -> InspectionRowOut<'a> {
        InspectionRowOut {
            id: i.id,
            unit_id: i.unit_id,
            address: &i.address,
            inspector_id: i.inspector_id,
            at: i.at,
            lon: i.lon,
            lat: i.lat,
            distance_m: i.distance_m,
            off_site: i.off_site,
            located: i.located,
            crs: i.crs,
            note: i.note.as_deref(),
        }
    }
}
