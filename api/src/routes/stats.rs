//! Statistics over HTTP: the figures of an area the caller oversees over a period, as JSON, CSV or an Excel workbook (by `format`, or by the Accept header).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use anju_engine::error::FieldError;
use anju_engine::runtime::{Statistics, StatisticsRequest};
use anju_engine::stats::Area;
use anju_engine::text::Day;
use anju_engine::time::china_time;

use crate::http::extract::{Caller, Params};
use crate::http::problem::{ApiError, ApiResult};
use crate::report::{statistics_csv, statistics_json, statistics_xlsx};
use crate::state::AppState;

pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatisticsQuery {
    /// `city`, `district:<code>`, `street:<id>`, `community:<id>` or `grid:<id>`; the
    /// caller's own area if left out.
    area: Option<String>,
    /// First China day; the first of `to`'s month if left out.
    #[param(value_type = Option<String>, format = Date)]
    from: Option<Day>,
    /// Last China day (included); today if left out.
    #[param(value_type = Option<String>, format = Date)]
    to: Option<Day>,
    /// `json`, `csv` or `xlsx`; otherwise the Accept header decides (JSON by default).
    format: Option<String>,
}

/// The formats statistics are given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Xlsx,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }
}

/// The request a query string makes, with today (China time) for what it leaves out.
pub fn statistics_request(
    area: Option<&str>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<StatisticsRequest, FieldError> {
    let area = area.map(Area::parse).transpose()?;
    let to = to.unwrap_or(today);
    let from = from.unwrap_or_else(|| to.with_day(1).unwrap_or(to));
    Ok(StatisticsRequest { area, from, to })
}

fn chosen_format(asked: Option<&str>, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(f) = asked {
        return Format::parse(f).ok_or_else(|| ApiError::Unprocessable {
            field: "format".into(),
            detail: "json, csv or xlsx".into(),
        });
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("text/csv") {
        Format::Csv
    } else if accept.contains(XLSX) {
        Format::Xlsx
    } else {
        Format::Json
    })
}

/// The answer in a format, with a file name for the downloads.
pub fn statistics_response(app: &AppState, s: &Statistics, format: Format) -> ApiResult<Response> {
    let taxonomy = app.runtime.taxonomy();
    let name = format!(
        "anju-statistics-{}-{}-{}",
        s.area.label().replace(':', "-"),
        s.from,
        s.to
    );
    let (body, kind, ext) = match format {
        Format::Json => return Ok(Json(statistics_json(s, taxonomy)).into_response()),
        Format::Csv => (
            statistics_csv(s, taxonomy).into_bytes(),
            "text/csv; charset=utf-8",
            "csv",
        ),
        Format::Xlsx => (
            statistics_xlsx(s, taxonomy).map_err(|e| {
                ApiError::Engine(anju_engine::Error::Internal(format!("workbook: {e}")))
            })?,
            XLSX,
            "xlsx",
        ),
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

#[utoipa::path(get, path = "/statistics", tag = "statistics", params(StatisticsQuery), responses((status = 200, description = "JSON, CSV (UTF-8 with a byte-order mark) or an Excel workbook, by `format` or `Accept`", content((crate::report::StatisticsOut = "application/json"), (String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")))))]
pub async fn statistics(
    State(app): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Params(q): Params<StatisticsQuery>,
) -> ApiResult<Response> {
    let format = chosen_format(q.format.as_deref(), &headers)?;
    let today = app.runtime.now().with_timezone(&china_time()).date_naive();
    let request = statistics_request(
        q.area.as_deref(),
        q.from.map(|d| d.0),
        q.to.map(|d| d.0),
        today,
    )?;
    let s = app.runtime.statistics(&caller, request).await?;
    statistics_response(&app, &s, format)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MapQuery {
    /// As for the statistics; the caller's own area if left out.
    area: Option<String>,
}

/// The open hazards of an area by street, as a GeoJSON FeatureCollection of the
/// streets' outlines.
#[utoipa::path(get, path = "/statistics/map", tag = "statistics", params(MapQuery), responses((status = 200, description = "a GeoJSON FeatureCollection: a feature per street (outline, id, name, district, open cases in all and by severity)", body = Object)))]
pub async fn hazard_map(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<MapQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let area = q.area.as_deref().map(Area::parse).transpose()?;
    let map = app.runtime.hazard_map(&caller, area).await?;
    Ok(Json(crate::report::hazard_map_geojson(&map)))
}
