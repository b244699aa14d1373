//! Open311 GeoReport v2 (for the 12345 hotline and other reporters) under `/open311/v2`: discovery, services (the hazard categories with their attributes), a service's definition, posting a request (a tip: API key per integration, location as lat/long or a unit's address code, the reporter's contact optional), and reading requests back with their status, the inspector's public note and the department responsible. Each in JSON or XML by the path's extension; errors in the same format. A key reads its own requests whole; without one, only ids and statuses.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use anju_engine::model::{TipFilter, TipRecord};
use anju_engine::runtime::tips::{TipInput, TipSource, latest};

use crate::http::serve::ClientAddr;
use crate::routes::client_of;
use crate::routes::public::esc;
use crate::state::AppState;

/// Requests listed at most by one read.
const LIST_LIMIT: u32 = 200;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(resource, post_request))
        .routes(routes!(service_definition))
        .routes(routes!(request))
}

/// The formats of Open311.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Xml,
}

/// `name.json` or `name.xml`: the name and its format.
fn split(file: &str) -> Option<(&str, Format)> {
    let (name, ext) = file.rsplit_once('.')?;
    match ext {
        "json" => Some((name, Format::Json)),
        "xml" => Some((name, Format::Xml)),
        _ => None,
    }
}

/// An Open311 error (`[{"code", "description"}]`) in the request's format.
fn error(format: Format, status: StatusCode, description: &str) -> Response {
    let body = json!([{ "code": status.as_u16(), "description": description }]);
    let mut r = render(format, "errors", "error", &body);
    *r.status_mut() = status;
    r
}

/// An engine error as an Open311 error.
fn engine_error(format: Format, e: anju_engine::Error) -> Response {
    use anju_engine::Error as E;
    let (status, text) = match &e {
        E::Invalid(fields) => (
            StatusCode::BAD_REQUEST,
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        E::NotFound { .. } => (StatusCode::NOT_FOUND, e.to_string()),
        E::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        E::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        E::Forbidden(_) => (StatusCode::FORBIDDEN, e.to_string()),
        _ => {
            tracing::error!(error = %e, "open311");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
        }
    };
    error(format, status, &text)
}

/// A JSON value as the answer: JSON as it is, or XML with `root` around a list of
/// `item` elements (Open311's convention).
fn render(format: Format, root: &str, item: &str, body: &Value) -> Response {
    let (text, kind) = match format {
        Format::Json => (body.to_string(), "application/json; charset=utf-8"),
        Format::Xml => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
            xml_element(
                &mut out,
                root,
                &match body {
                    Value::Array(items) => {
                        Value::Array(items.iter().map(|v| json!({ item: v })).collect())
                    }
                    other => other.clone(),
                },
            );
            (out, "text/xml; charset=utf-8")
        }
    };
    let mut r = text.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// Writes `value` as the element `name`: objects as child elements, arrays as repeated
/// children, null as an empty element, the rest as escaped text.
fn xml_element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Array(items) => {
            out.push_str(&format!("<{name}>"));
            for v in items {
                if let Value::Object(m) = v
                    && m.len() == 1
                {
                    let (k, v) = m.iter().next().expect("one");
                    xml_element(out, k, v);
                } else {
                    xml_element(out, "value", v);
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Object(m) => {
            out.push_str(&format!("<{name}>"));
            for (k, v) in m {
                match v {
                    // A list inside a record repeats its element (`<keywords>` …).
                    Value::Array(items)
                        if k == "endpoints"
                            || k == "values"
                            || k == "attributes"
                            || k == "formats" =>
                    {
                        out.push_str(&format!("<{k}>"));
                        let child = match k.as_str() {
                            "endpoints" => "endpoint",
                            "values" => "value",
                            "attributes" => "attribute",
                            _ => "format",
                        };
                        for v in items {
                            xml_element(out, child, v);
                        }
                        out.push_str(&format!("</{k}>"));
                    }
                    v => xml_element(out, k, v),
                }
            }
            out.push_str(&format!("</{name}>"));
        }
        Value::Null => out.push_str(&format!("<{name}/>")),
        Value::String(s) => out.push_str(&format!("<{name}>{}</{name}>", esc(s))),
        other => out.push_str(&format!("<{name}>{other}</{name}>")),
    }
}

/// Open311 times: RFC 3339 with the China offset.
fn w3(t: DateTime<Utc>) -> String {
    t.with_timezone(&anju_engine::time::china_time())
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// The services: each hazard category.
fn services(app: &AppState) -> Value {
    let taxonomy = app.runtime.taxonomy();
    Value::Array(
        taxonomy
            .categories
            .iter()
            .map(|c| {
                json!({
                    "service_code": c.code,
                    "service_name": format!("{} / {}", c.zh, c.en),
                    "description": format!("{}；{}", c.zh, c.legal_basis),
                    "metadata": true,
                    "type": "realtime",
                    "keywords": c.code,
                    "group": c.department,
                })
            })
            .collect(),
    )
}

/// GET `discovery`, `services` and `requests`, each `.json` or `.xml`.
#[utoipa::path(get, path = "/open311/v2/{file}", tag = "open311",
    params(("file" = String, Path, description = "`discovery`, `services` or `requests`, with `.json` or `.xml`"),
        ("api_key" = Option<String>, Query, description = "an integration's key: its own requests whole"),
        ("service_request_id" = Option<String>, Query, description = "ids, comma-separated"),
        ("service_code" = Option<String>, Query), ("start_date" = Option<String>, Query),
        ("end_date" = Option<String>, Query), ("status" = Option<String>, Query)),
    responses((status = 200, description = "the resource", content((Object = "application/json"), (String = "text/xml")))))]
async fn resource(
    State(app): State<AppState>,
    Path(file): Path<String>,
    Query(params): Query<Map<String, Value>>,
) -> Response {
    let Some((name, format)) = split(&file) else {
        return error(Format::Json, StatusCode::NOT_FOUND, "no such resource");
    };
    match name {
        "discovery" => {
            let base = app.runtime.config().public_url.clone().unwrap_or_default();
            let body = json!({
                "changeset": "2026-12-01T00:00:00+08:00",
                "contact": "广州市出租屋管理 / Guangzhou rental housing office",
                "key_service": "API keys are issued per integration (`anju integration create`).",
                "endpoints": [{
                    "specification": "http://wiki.open311.org/GeoReport_v2",
                    "url": format!("{base}/open311/v2"),
                    "changeset": "2026-12-01T00:00:00+08:00",
                    "type": "production",
                    "formats": ["application/json", "text/xml"],
                }],
            });
            render(format, "discovery", "endpoint", &body)
        }
        "services" => render(format, "services", "service", &services(&app)),
        "requests" => list_requests(&app, format, &params).await,
        _ => error(format, StatusCode::NOT_FOUND, "no such resource"),
    }
}

/// GET `services/{code}.json|xml`: a category's attributes.
#[utoipa::path(get, path = "/open311/v2/services/{file}", tag = "open311",
    params(("file" = String, Path, description = "a service code with `.json` or `.xml`")),
    responses((status = 200, description = "the service's definition", content((Object = "application/json"), (String = "text/xml")))))]
async fn service_definition(State(app): State<AppState>, Path(file): Path<String>) -> Response {
    let Some((code, format)) = split(&file) else {
        return error(Format::Json, StatusCode::NOT_FOUND, "no such service");
    };
    let taxonomy = app.runtime.taxonomy();
    let Some(c) = taxonomy.category(code) else {
        return error(format, StatusCode::NOT_FOUND, "no such service");
    };
    let body = json!({
        "service_code": c.code,
        "attributes": [
            {
                "variable": false, "code": "legal_basis", "datatype": "text", "required": false,
                "datatype_description": "", "order": 1, "description": c.legal_basis,
            },
            {
                "variable": true, "code": "room", "datatype": "string", "required": false,
                "datatype_description": "房间号 / room number", "order": 2,
                "description": "房间号（可选）/ Room (optional)",
            },
        ],
    });
    render(format, "service_definition", "attribute", &body)
}

/// The fields of a posted request (GeoReport v2), form-encoded.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct RequestForm {
    /// The integration's key (or in the query).
    api_key: Option<String>,
    /// A hazard category's code (see `services`).
    service_code: String,
    lat: Option<f64>,
    long: Option<f64>,
    address_string: Option<String>,
    /// A unit's address code (地址编码): the request lies on that unit.
    address_id: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    description: Option<String>,
    #[schema(rename = "attribute[room]")]
    room: Option<String>,
}

/// POST `requests.json|xml`: a request from an integration (its key required),
/// form-encoded as GeoReport v2 sends it.
#[utoipa::path(post, path = "/open311/v2/{file}", tag = "open311",
    params(("file" = String, Path, description = "`requests.json` or `requests.xml`"),
        ("api_key" = Option<String>, Query, description = "the integration's key (or as a form field)")),
    request_body(content = RequestForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 201, description = "the request's id", content((Object = "application/json"), (String = "text/xml")))))]
async fn post_request(
    State(app): State<AppState>,
    Path(file): Path<String>,
    Query(query): Query<Map<String, Value>>,
    client: Option<axum::Extension<ClientAddr>>,
    body: Bytes,
) -> Response {
    let Some(("requests", format)) = split(&file) else {
        return error(Format::Json, StatusCode::NOT_FOUND, "no such resource");
    };
    let form: Map<String, Value> = form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let field = |k: &str| -> Option<String> {
        form.get(k)
            .or_else(|| query.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
            .filter(|s| !s.trim().is_empty())
    };
    let Some(key) = field("api_key") else {
        return error(
            format,
            StatusCode::UNAUTHORIZED,
            "api_key: required to post a request",
        );
    };
    let integration = match app.runtime.integration(&key).await {
        Ok(Some(i)) => i,
        Ok(None) => return error(format, StatusCode::UNAUTHORIZED, "api_key: unknown key"),
        Err(e) => return engine_error(format, e),
    };
    let number = |k: &str| -> Result<Option<f64>, String> {
        field(k)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{k}: a number"))
            })
            .transpose()
    };
    let (lat, lon) = match (number("lat"), number("long")) {
        (Ok(lat), Ok(lon)) => (lat, lon),
        (Err(m), _) | (_, Err(m)) => return error(format, StatusCode::BAD_REQUEST, &m),
    };
    let Some(category) = field("service_code") else {
        return error(format, StatusCode::BAD_REQUEST, "service_code: required");
    };
    let mut description = field("description").unwrap_or_default();
    if let Some(room) = field("attribute[room]") {
        description = format!("{description}（房间 room {room}）");
    }
    let name = match (field("first_name"), field("last_name")) {
        (None, None) => None,
        (f, l) => Some(format!(
            "{}{}",
            l.unwrap_or_default(),
            f.unwrap_or_default()
        )),
    };
    let input = TipInput {
        category,
        description,
        lon,
        lat,
        address_code: field("address_id"),
        address: field("address_string"),
        reporter_name: name,
        reporter_email: field("email"),
        reporter_phone: field("phone"),
    };
    match app
        .runtime
        .submit_tip(
            TipSource::Open311,
            Some(&integration),
            &client_of(client),
            input,
        )
        .await
    {
        Ok(tip) => {
            let mut r = render(
                format,
                "service_requests",
                "request",
                &json!([{
                    "service_request_id": tip.id.to_string(),
                    "service_notice": notice(&tip),
                    "account_id": null,
                }]),
            );
            *r.status_mut() = StatusCode::CREATED;
            r
        }
        Err(e) => engine_error(format, e),
    }
}

/// What the reporter is told a tip will get.
fn notice(t: &TipRecord) -> String {
    match t.placed_by.as_str() {
        "grid" => "已转网格员核查 / Passed to the grid's inspector to check".into(),
        _ => "已列入网格员今日巡查 / Added to the inspector's visits".into(),
    }
}

/// GET `requests/{id}.json|xml`.
#[utoipa::path(get, path = "/open311/v2/requests/{file}", tag = "open311",
    params(("file" = String, Path, description = "a request's id with `.json` or `.xml`"),
        ("api_key" = Option<String>, Query, description = "its integration's key: the request whole")),
    responses((status = 200, description = "the request (a list of one)", content((Object = "application/json"), (String = "text/xml")))))]
async fn request(
    State(app): State<AppState>,
    Path(file): Path<String>,
    Query(params): Query<Map<String, Value>>,
) -> Response {
    let Some((id, format)) = split(&file) else {
        return error(Format::Json, StatusCode::NOT_FOUND, "no such request");
    };
    let Some(id) = id.parse::<i64>().ok().filter(|i| *i > 0) else {
        return error(format, StatusCode::NOT_FOUND, "no such request");
    };
    let mut p = params;
    p.insert("service_request_id".into(), Value::String(id.to_string()));
    list_requests(&app, format, &p).await
}

/// The requests asked for: a key's own, whole; without a key, ids and statuses only.
async fn list_requests(app: &AppState, format: Format, params: &Map<String, Value>) -> Response {
    let text = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let integration = match text("api_key") {
        Some(key) => match app.runtime.integration(key).await {
            Ok(Some(i)) => Some(i),
            Ok(None) => return error(format, StatusCode::UNAUTHORIZED, "api_key: unknown key"),
            Err(e) => return engine_error(format, e),
        },
        None => None,
    };
    let ids = match text("service_request_id") {
        Some(list) => {
            let parsed: Option<Vec<i64>> = list.split(',').map(|s| s.trim().parse().ok()).collect();
            match parsed {
                Some(ids) if ids.len() <= 100 => Some(ids),
                _ => {
                    return error(
                        format,
                        StatusCode::BAD_REQUEST,
                        "service_request_id: at most 100 ids, comma-separated",
                    );
                }
            }
        }
        None => None,
    };
    let day = |k: &str| -> Result<Option<DateTime<Utc>>, String> {
        text(k)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.to_utc())
                    .map_err(|_| format!("{k}: a w3 date-time"))
            })
            .transpose()
    };
    let (from, to) = match (day("start_date"), day("end_date")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(m), _) | (_, Err(m)) => return error(format, StatusCode::BAD_REQUEST, &m),
    };
    if ids.is_none() && integration.is_none() {
        // Without a key, only named requests are read.
        return error(
            format,
            StatusCode::BAD_REQUEST,
            "service_request_id: required without an api_key",
        );
    }
    let filter = TipFilter {
        integration_id: integration.as_ref().map(|i| i.id),
        ids: ids.clone(),
        from,
        to,
        categories: text("service_code").map(|s| s.split(',').map(str::to_string).collect()),
        limit: LIST_LIMIT,
    };
    let tips = match app.runtime.tips_for_integration(&filter).await {
        Ok(t) => t,
        Err(e) => return engine_error(format, e),
    };
    let wanted_status = text("status");
    let taxonomy = app.runtime.taxonomy();
    let mut out = Vec::new();
    for t in &tips {
        let (status, notes, agency) = app.runtime.tip_state(t);
        if wanted_status.is_some_and(|w| !w.split(',').any(|s| s == status)) {
            continue;
        }
        if integration.is_none() {
            out.push(json!({ "service_request_id": t.id.to_string(), "status": status }));
            continue;
        }
        let name = taxonomy
            .category(&t.category)
            .map(|c| format!("{} / {}", c.zh, c.en));
        out.push(json!({
            "service_request_id": t.id.to_string(),
            "status": status,
            "status_notes": notes,
            "service_name": name,
            "service_code": t.category,
            "description": t.description,
            "agency_responsible": agency,
            "service_notice": notice(t),
            "requested_datetime": w3(t.created_at),
            "updated_datetime": w3(latest(t.updated_at, t.case_updated_at)),
            "expected_datetime": null,
            "address": t.address,
            "address_id": null,
            "zipcode": null,
            "lat": t.lat,
            "long": t.lon,
            "media_url": null,
        }));
    }
    if ids.as_ref().is_some_and(|i| i.len() == 1) && out.is_empty() {
        return error(format, StatusCode::NOT_FOUND, "no such request");
    }
    render(format, "service_requests", "request", &Value::Array(out))
}
