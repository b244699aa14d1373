//! Spatial queries over HTTP: units near a point, the nearest units, units in a box or a GeoJSON polygon (as JSON or as GeoJSON for map clients), and the inspections list with its off-site flag.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use anju_engine::domain::{GridId, InspectionId, InspectorId, Point, UnitId};
use anju_engine::registry::Unit;
use anju_engine::spatial::crs::{Crs, gcj02_from_wgs84};
use anju_engine::store::InspectionFilter;

use crate::app::AppState;
use crate::extract::{Body, Caller, Id, Params};
use crate::problem::{ApiError, ApiResult};

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

/// Units as JSON, or as a GeoJSON FeatureCollection of points (RFC 7946, WGS-84; in
/// GCJ-02 if the caller gave `crs=gcj02`, so that they line up on the caller's map).
fn units_response(headers: &HeaderMap, units: Vec<(Unit, Option<f64>)>, crs: Crs) -> Response {
    let round = |d: Option<f64>| d.map(|d| (d * 10.0).round() / 10.0);
    if wants_geojson(headers) {
        let features: Vec<Value> = units
            .iter()
            .map(|(u, d)| {
                let (lon, lat) = match crs {
                    Crs::Wgs84 => (u.lon, u.lat),
                    Crs::Gcj02 => gcj02_from_wgs84(u.lon, u.lat),
                };
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
        return geojson_response(json!({ "type": "FeatureCollection", "features": features }));
    }
    let units: Vec<Value> = units
        .into_iter()
        .map(|(u, d)| {
            let mut v = json!(u);
            v["distance_m"] = json!(round(d));
            v
        })
        .collect();
    Json(json!({ "count": units.len(), "units": units })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearQuery {
    lon: f64,
    lat: f64,
    radius_m: f64,
    #[serde(default)]
    crs: Crs,
    limit: Option<usize>,
}

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
    let units = app
        .runtime
        .units_near(&caller, center, q.radius_m, limit(q.limit)?)
        .await?;
    Ok(units_response(&headers, units, q.crs))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NearestQuery {
    lon: f64,
    lat: f64,
    k: usize,
    #[serde(default)]
    crs: Crs,
}

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
    Ok(units_response(&headers, units, q.crs))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BboxQuery {
    /// `min_lon,min_lat,max_lon,max_lat`
    bbox: String,
    #[serde(default)]
    crs: Crs,
    limit: Option<usize>,
}

/// Parses `min_lon,min_lat,max_lon,max_lat`.
fn parse_bbox(s: &str, crs: Crs) -> ApiResult<(Point, Point)> {
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
    if lon0 > lon1 || lat0 > lat1 {
        return Err(unprocessable("bbox", "the minimum corner comes first"));
    }
    let a = crs.to_wgs84(lon0, lat0, "bbox")?;
    let b = crs.to_wgs84(lon1, lat1, "bbox")?;
    // A box shifts as a whole between datums; keep it a box around both corners.
    let lo = Point::parse(a.lon().min(b.lon()), a.lat().min(b.lat()), "bbox")?;
    let hi = Point::parse(a.lon().max(b.lon()), a.lat().max(b.lat()), "bbox")?;
    Ok((lo, hi))
}

pub async fn within_bbox(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Params(q): Params<BboxQuery>,
) -> ApiResult<Response> {
    let bbox = parse_bbox(&q.bbox, q.crs)?;
    let units = app
        .runtime
        .units_in_bbox(&caller, bbox, limit(q.limit)?)
        .await?;
    Ok(units_response(&headers, units, q.crs))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapeQuery {
    #[serde(default)]
    crs: Crs,
    limit: Option<usize>,
}

/// Reads a GeoJSON Polygon or MultiPolygon (bare, or as a Feature's geometry) into
/// WGS-84 polygons.
pub fn parse_shape(value: Value, crs: Crs, field: &str) -> ApiResult<geo::MultiPolygon<f64>> {
    let gj: geojson::GeoJson = serde_json::from_value(value)
        .map_err(|e| unprocessable(field, format!("not GeoJSON: {e}")))?;
    let geometry = match gj {
        geojson::GeoJson::Geometry(g) => g,
        geojson::GeoJson::Feature(f) => f
            .geometry
            .ok_or_else(|| unprocessable(field, "the feature has no geometry"))?,
        geojson::GeoJson::FeatureCollection(_) => {
            return Err(unprocessable(
                field,
                "send one Polygon or MultiPolygon, not a collection",
            ));
        }
    };
    let shape: geo::Geometry<f64> = geometry
        .try_into()
        .map_err(|e| unprocessable(field, format!("not a valid geometry: {e}")))?;
    let mut shape = match shape {
        geo::Geometry::Polygon(p) => geo::MultiPolygon::new(vec![p]),
        geo::Geometry::MultiPolygon(m) => m,
        _ => return Err(unprocessable(field, "must be a Polygon or MultiPolygon")),
    };
    use geo::{CoordsIter, MapCoordsInPlace};
    for c in shape.coords_iter() {
        Point::parse(c.x, c.y, field)?;
    }
    if crs == Crs::Gcj02 {
        shape.map_coords_in_place(|c| {
            let (x, y) = anju_engine::spatial::crs::wgs84_from_gcj02(c.x, c.y);
            geo::Coord { x, y }
        });
    }
    if shape.0.is_empty() || shape.0.iter().any(|p| p.exterior().0.len() < 4) {
        return Err(unprocessable(
            field,
            "a polygon needs a closed ring of at least 4 positions",
        ));
    }
    Ok(shape)
}

pub async fn within_polygon(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Params(q): Params<ShapeQuery>,
    body: Body<Value>,
) -> ApiResult<Response> {
    let shape = parse_shape(body.value, q.crs, "body")?;
    let units = app
        .runtime
        .units_in_polygon(&caller, &shape, limit(q.limit)?)
        .await?;
    Ok(units_response(&headers, units, q.crs))
}

pub async fn grid(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let grid = app.runtime.grid(&caller, GridId(id)).await?;
    Ok(Json(json!(grid)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridUnitsQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

pub async fn grid_units(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Id(id): Id,
    Params(q): Params<GridUnitsQuery>,
) -> ApiResult<Response> {
    let units = app
        .runtime
        .grid_units(
            &caller,
            GridId(id),
            q.after.map(UnitId),
            q.limit.unwrap_or(1000),
        )
        .await?;
    Ok(units_response(
        &headers,
        units.into_iter().map(|u| (u, None)).collect(),
        Crs::Wgs84,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectionQuery {
    inspector_id: Option<i64>,
    unit_id: Option<i64>,
    off_site: Option<bool>,
    before: Option<i64>,
    limit: Option<u32>,
}

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
    Ok(Json(json!({ "inspections": list, "next_before": next })))
}
