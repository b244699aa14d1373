//! Public pages without login (挂牌公示): a unit's placard reached by its QR code, the QR code itself as SVG, a community's low-grade units, and the parties named after a supervisor approved (通报曝光). They show no personal data beyond a named party's name.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use anju_engine::model::Placard;
use anju_engine::time::china_time;

use crate::http::problem::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(placard))
        .routes(routes!(qr_svg))
        .routes(routes!(placard_tip))
        .routes(routes!(community))
        .routes(routes!(named))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// Escapes text for HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn stars_text(stars: Option<u8>) -> String {
    match stars {
        Some(n) => format!("{}{}", "★".repeat(n.into()), "☆".repeat(5 - usize::from(n))),
        None => "未评级 Not graded".to_string(),
    }
}

fn placard_json(p: &Placard) -> Value {
    json!({
        "public_code": p.public_code,
        "address": p.address,
        "district_code": p.district_code,
        "community": p.community_name,
        "stars": p.stars,
        "last_inspected_on": p.last_inspected_at.map(|t| t.with_timezone(&china_time()).date_naive()),
        "open_orders": p.open_orders,
    })
}

fn page(title: &str, body: &str) -> Response {
    let mut r = Html(format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>body{{font-family:sans-serif;max-width:40em;margin:1em auto;\
         padding:0 1em;line-height:1.5}}.stars{{font-size:2em;color:#c80}}\
         table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;\
         padding:.3em;text-align:left}}.en{{color:#666}}</style></head><body>{body}</body></html>",
        esc(title)
    ))
    .into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

#[utoipa::path(get, path = "/u/{code}", tag = "public", params(("code" = String, Path)), responses((status = 200, description = "a page, or JSON with `Accept: application/json`", content((String = "text/html"), (Object = "application/json")))))]
pub async fn placard(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let p = app.runtime.placard(&code).await?;
    if wants_json(&headers) {
        return Ok(Json(placard_json(&p)).into_response());
    }
    let last = p
        .last_inspected_at
        .map(|t| t.with_timezone(&china_time()).date_naive().to_string())
        .unwrap_or_else(|| "暂无 None yet".into());
    let body = format!(
        "<h1>出租屋安全公示 <span class=\"en\">Rental safety placard</span></h1>\
         <p><b>{address}</b><br>{community}</p>\
         <p class=\"stars\" aria-label=\"{label}\">{stars}</p>\
         <table>\
         <tr><th>星级 <span class=\"en\">Grade</span></th><td>{grade}</td></tr>\
         <tr><th>最近检查 <span class=\"en\">Last inspection</span></th><td>{last}</td></tr>\
         <tr><th>未完成整改通知 <span class=\"en\">Open rectification orders</span></th><td>{orders}</td></tr>\
         </table>\
         {tip_form}\
         <p><a href=\"/u/{code}/declare\">房东登录申报出租情况、自查自改 \
         <span class=\"en\">Landlords: sign in to declare the occupancy or self-inspect</span></a></p>",
        address = esc(&p.address),
        community = esc(&p.community_name),
        label = p
            .stars
            .map_or_else(|| "未评级 not graded".to_string(), |n| format!("{n} stars")),
        stars = esc(&stars_text(p.stars)),
        grade = p
            .stars
            .map(|s| format!("{s} 星 ({s} stars)"))
            .unwrap_or_else(|| "未评级 Not graded".into()),
        orders = p.open_orders,
        tip_form = tip_form(&app, &p.public_code),
        code = esc(&p.public_code),
    );
    Ok(page(&format!("{} 安全公示", p.address), &body))
}

/// The tenant's report form of a placard: a hazard category and what was seen; no
/// sign-in, no personal data asked or shown back.
fn tip_form(app: &AppState, code: &str) -> String {
    let options: String = app
        .runtime
        .taxonomy()
        .categories
        .iter()
        .map(|c| {
            format!(
                "<option value=\"{}\">{} / {}</option>",
                esc(&c.code),
                esc(&c.zh),
                esc(&c.en)
            )
        })
        .collect();
    format!(
        "<h2>举报安全隐患 <span class=\"en\">Report a hazard</span></h2>\
         <form method=\"post\" action=\"/u/{code}/tip\" id=\"tip\">\
         <p><label>隐患类别 <span class=\"en\">Hazard</span><br>\
         <select name=\"category\" required>{options}</select></label></p>\
         <p><label>情况说明 <span class=\"en\">What you saw</span><br>\
         <textarea name=\"description\" rows=\"4\" maxlength=\"2000\" style=\"width:100%\"></textarea></label></p>\
         <p><button type=\"submit\">提交 / Send</button></p>\
         <p class=\"en\">无需登录，不收集个人信息；网格员将上门核查。\
         No sign-in and no personal data; an inspector will visit.</p></form>",
        code = esc(code),
    )
}

/// A tenant's report: a hazard category and what was seen.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct TipForm {
    /// A hazard category's code.
    #[serde(default)]
    category: String,
    #[serde(default)]
    description: String,
}

/// A tenant's report from the placard: a tip on the placard's unit, in the covering
/// inspector's plan; at most a few an hour from one address.
#[utoipa::path(post, path = "/u/{code}/tip", tag = "public", params(("code" = String, Path)),
    request_body(content = TipForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "the page saying it was received", content((String = "text/html"))),
        (status = 422, description = "a page saying what to correct", content((String = "text/html"))),
        (status = 429, description = "a page saying to try later", content((String = "text/html")))))]
pub async fn placard_tip(
    State(app): State<AppState>,
    Path(code): Path<String>,
    client: Option<axum::Extension<crate::http::serve::ClientAddr>>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let p = app.runtime.placard(&code).await?;
    let form: TipForm = serde_urlencoded::from_bytes(&body).map_err(|e| ApiError::Malformed {
        field: None,
        detail: format!("the form: {e}"),
    })?;
    let input = anju_engine::runtime::tips::TipInput {
        category: form.category,
        description: form.description,
        ..Default::default()
    };
    let submitted = app
        .runtime
        .submit_tip(
            anju_engine::runtime::tips::TipSource::Placard(p.unit_id),
            None,
            &crate::routes::client_of(client),
            input,
        )
        .await;
    if let Err(e) = submitted {
        return Ok(tip_refused(&p.public_code, e));
    }
    let body = format!(
        "<h1>已收到，谢谢 <span class=\"en\">Received, thank you</span></h1>\
         <p>网格员将上门核查。<span class=\"en\">An inspector will visit.</span></p>\
         <p><a href=\"/u/{code}\">返回 / Back</a></p>",
        code = esc(&p.public_code)
    );
    let mut r = page("已收到 / Received", &body);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// A tenant's report that was not taken, as a page the tenant can read (the same
/// status as the API would give), with the way back to the form.
fn tip_refused(code: &str, e: anju_engine::Error) -> Response {
    use anju_engine::Error as E;
    let (status, zh, en) = match &e {
        E::TooManyRequests { .. } => (
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "提交过于频繁，请稍后再试。".to_string(),
            "Too many reports from here; please try again later.".to_string(),
        ),
        E::Invalid(fields) => (
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "请检查填写的内容。".to_string(),
            fields
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => return ApiError::from(e).into_response(),
    };
    let body = format!(
        "<h1>未能提交 <span class=\"en\">Not sent</span></h1><p>{zh} \
         <span class=\"en\">{en}</span></p><p><a href=\"/u/{code}\">返回 / Back</a></p>",
        zh = esc(&zh),
        en = esc(&en),
        code = esc(code),
    );
    let mut r = page("未能提交 / Not sent", &body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The QR code for a placard: an SVG of the page's address.
#[utoipa::path(get, path = "/u/{code}/qr.svg", tag = "public", params(("code" = String, Path)), responses((status = 200, description = "the placard's QR code", content((String = "image/svg+xml")))))]
pub async fn qr_svg(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let p = app.runtime.placard(&code).await?;
    let base = match &app.runtime.config().public_url {
        Some(url) => url.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                })
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    let url = format!("{base}/u/{}", p.public_code);
    let qr = qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::NotFound(format!("cannot encode the address: {e}")))?;
    let svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    let mut r = svg.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    );
    Ok(r)
}

/// A community's units graded 2 stars or lower (低星级出租屋公示).
#[utoipa::path(get, path = "/c/{code}", tag = "public", params(("code" = String, Path)), responses((status = 200, description = "a page, or JSON with `Accept: application/json`", content((String = "text/html"), (Object = "application/json")))))]
pub async fn community(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    let (name, units) = app.runtime.low_grade_units(&code).await?;
    if wants_json(&headers) {
        return Ok(Json(json!({
            "community_code": code,
            "community": name,
            "units": units.iter().map(placard_json).collect::<Vec<_>>(),
        }))
        .into_response());
    }
    let rows: String = units
        .iter()
        .map(|p| {
            format!(
                "<tr><td><a href=\"/u/{code}\">{address}</a></td><td>{stars}</td><td>{orders}</td></tr>",
                code = esc(&p.public_code),
                address = esc(&p.address),
                stars = p.stars.unwrap_or(0),
                orders = p.open_orders,
            )
        })
        .collect();
    let body = format!(
        "<h1>{name} 低星级出租屋公示 <span class=\"en\">Low-grade rental units</span></h1>\
         <p>{count} 套 <span class=\"en\">units graded 2 stars or lower</span></p>\
         <table><tr><th>地址 <span class=\"en\">Address</span></th>\
         <th>星级 <span class=\"en\">Stars</span></th>\
         <th>未完成整改 <span class=\"en\">Open orders</span></th></tr>{rows}</table>",
        name = esc(&name),
        count = units.len(),
    );
    Ok(page(&format!("{name} 低星级出租屋公示"), &body))
}

/// Parties named publicly (通报曝光): blacklistings a supervisor approved for
/// publication, while in force. Name, kind, reason and dates only.
#[utoipa::path(get, path = "/named", tag = "public", responses((status = 200, description = "a page, or JSON with `Accept: application/json`", content((String = "text/html"), (Object = "application/json")))))]
pub async fn named(State(app): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let entries = app.runtime.named_parties().await?;
    let day = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.with_timezone(&china_time()).date_naive().to_string())
            .unwrap_or_default()
    };
    if wants_json(&headers) {
        let list: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "name": e.party_name,
                    "kind": e.party_kind,
                    "reason": e.reason,
                    "district_code": e.district_code,
                    "since": day(e.decided_at),
                    "until": day(e.expires_at),
                })
            })
            .collect();
        return Ok(Json(json!({ "count": list.len(), "named": list })).into_response());
    }
    let rows: String = entries
        .iter()
        .map(|e| {
            format!(
                "<tr><td>{name}</td><td>{reason}</td><td>{since} – {until}</td></tr>",
                name = esc(&e.party_name),
                reason = esc(&e.reason),
                since = day(e.decided_at),
                until = day(e.expires_at),
            )
        })
        .collect();
    let body = format!(
        "<h1>出租屋安全责任通报 <span class=\"en\">Parties named for rental safety failures</span></h1>\
         <p>{count} 名 <span class=\"en\">named, each after a supervisor's approval</span></p>\
         <table><tr><th>名称 <span class=\"en\">Name</span></th>\
         <th>事由 <span class=\"en\">Reason</span></th>\
         <th>期限 <span class=\"en\">Period</span></th></tr>{rows}</table>",
        count = entries.len(),
    );
    // A lifted or expired entry must leave the page at once, not after a cache's
    // five minutes.
    let mut r = page("出租屋安全责任通报", &body);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}
