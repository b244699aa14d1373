//! A person's desk pages: my messages (what was addressed to me, newest first, unread marked, each markable as read), a landlord's units with their stars and open orders, an inspector's plan for today in walking order, a unit with its grade, history and cases, and a landlord's blacklist entries with the appeal form.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use anju_engine::auth::Scope;
use anju_engine::time::{china_time, local_time};

use super::cases::countdown;
use super::{Visitor, error_page, page};
use crate::state::AppState;

/// What was addressed to the visitor, newest first.
pub(super) async fn messages(State(app): State<AppState>, visitor: Visitor) -> Response {
    let items = match app
        .runtime
        .my_messages(&visitor.principal, false, None, 100)
        .await
    {
        Ok(items) => items,
        Err(e) => return error_page(e.into()),
    };
    let csrf = visitor.csrf();
    page(
        StatusCode::OK,
        "我的消息 / My messages",
        Some(&visitor),
        html! {
            @if items.is_empty() { p { "暂无消息。 / No messages." } }
            @for m in &items {
                article class=[m.read_at.is_none().then_some("unread")] {
                    h2 {
                        @if m.read_at.is_none() { "● " }
                        a href={ "/cases/" (m.case_id.0) } { (m.subject) }
                    }
                    p { small { (local_time(m.created_at)) } }
                    p style="white-space:pre-wrap" { (m.body) }
                    @if m.read_at.is_none() {
                        form method="post" action={ "/messages/" (m.id) "/read" } {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "标为已读 / Mark read" }
                        }
                    }
                }
            }
        },
    )
}

/// Marks one of the visitor's messages read.
pub(super) async fn mark_read(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(refused) = visitor.posted(&body) {
        return *refused;
    }
    let Ok(id) = raw.parse::<i64>() else {
        return error_page(anju_engine::Error::not_found("message", &raw).into());
    };
    match app.runtime.mark_read(&visitor.principal, id).await {
        Ok(_) => Redirect::to("/messages").into_response(),
        Err(e) => error_page(e.into()),
    }
}

/// A landlord's units: their stars, open orders and the nearest deadline.
pub(super) async fn units(State(app): State<AppState>, visitor: Visitor) -> Response {
    let Scope::Party(party) = visitor.principal.scope else {
        return error_page(anju_engine::Error::not_found("page", "units").into());
    };
    let units = match app.runtime.party_units(&visitor.principal, party).await {
        Ok(units) => units,
        Err(e) => return error_page(e.into()),
    };
    let now = app.runtime.now();
    page(
        StatusCode::OK,
        "我的出租屋 / My rental units",
        Some(&visitor),
        html! {
            table {
                thead { tr { th { "地址 / Address" } th { "星级 / Stars" } th { "未结整改 / Open orders" } th { "最近期限 / Next deadline" } } }
                tbody {
                    @for u in &units {
                        tr {
                            td { a href={ "/units/" (u.unit.id.0) } { (u.unit.address) } }
                            td { (stars(u.unit.stars)) }
                            td { (u.open_orders) }
                            td {
                                @if let Some(d) = u.next_deadline {
                                    @let (late, text) = countdown(d, now);
                                    (local_time(d)) br; span class=[late.then_some("late")] { (text) }
                                } @else { "—" }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn stars(stars: Option<u8>) -> String {
    match stars {
        Some(n) => format!(
            "{}{}",
            "★".repeat(n.into()),
            "☆".repeat(5 - usize::from(n.min(5)))
        ),
        None => "未评级 / not graded".into(),
    }
}

/// An inspector's plan for today (China time), in walking order.
pub(super) async fn plan(State(app): State<AppState>, visitor: Visitor) -> Response {
    let Scope::Grids(grids) = &visitor.principal.scope else {
        return error_page(anju_engine::Error::not_found("page", "plan").into());
    };
    // The outlines of the inspector's grids, drawn under the route.
    let mut outlines = Vec::new();
    for id in grids {
        match app.runtime.grid(&visitor.principal, *id).await {
            Ok(g) => outlines.extend(
                g.geometry
                    .as_ref()
                    .map(|geo| rings(geo, &app.map))
                    .unwrap_or_default(),
            ),
            Err(e) => return error_page(e.into()),
        }
    }
    let today = app.runtime.now().with_timezone(&china_time()).date_naive();
    let inspector = anju_engine::domain::InspectorId(visitor.principal.subject);
    let plan = match app
        .runtime
        .inspector_plan(&visitor.principal, inspector, today)
        .await
    {
        Ok(plan) => plan,
        Err(e) => return error_page(e.into()),
    };
    let stops = &plan.route.stops;
    let visited = stops.iter().filter(|s| s.visited_at.is_some()).count();
    page(
        StatusCode::OK,
        &format!("今日巡查 {today} / Today's plan"),
        Some(&visitor),
        html! {
            p { "共 " (stops.len()) " 处，已到 " (visited) " 处，步行约 " (format!("{:.1}", plan.route.length_m / 1000.0)) " 公里 / "
                (stops.len()) " stops, " (visited) " visited, about " (format!("{:.1}", plan.route.length_m / 1000.0)) " km on foot" }
            (route_map(&app, stops, &outlines))
            ol {
                @for s in stops {
                    li {
                        a href={ "/units/" (s.unit_id.0) } { (s.address) } " · " (stars(s.stars)) " · " (reason_label(s.reason))
                        @if s.overdue_days > 0 { " · " span.late { "逾期 " (s.overdue_days) " 天 / " (s.overdue_days) " d overdue" } }
                        @if let Some(outcome) = &s.outcome { " · ✓ " (outcome) }
                    }
                }
            }
        },
    )
}

/// Why a unit is on the day's plan, Chinese first.
fn reason_label(reason: anju_engine::planning::Reason) -> &'static str {
    use anju_engine::planning::Reason;
    match reason {
        Reason::Never => "未评级 / never graded",
        Reason::Campaign => "专项行动 / campaign",
        Reason::Due => "巡查到期 / due",
        Reason::Tip => "群众举报（优先）/ reported (priority)",
    }
}

/// A unit: its grade and the grade's history, when it is next due, and its cases, as the
/// visitor may see them.
pub(super) async fn unit_page(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
) -> Response {
    let Some(id) = raw.parse::<i64>().ok().map(anju_engine::domain::UnitId) else {
        return error_page(anju_engine::Error::not_found("unit", &raw).into());
    };
    let p = &visitor.principal;
    let (unit, grades, duty, declarations) = match tokio::try_join!(
        app.runtime.unit(p, id),
        app.runtime.unit_grades(p, id),
        app.runtime.unit_responsibility(p, id),
        app.runtime.declarations(p, id)
    ) {
        Ok(found) => found,
        Err(e) => return error_page(e.into()),
    };
    let filter = anju_engine::model::CaseFilter {
        unit_id: Some(id),
        limit: 50,
        ..Default::default()
    };
    let cases = match app.runtime.list_cases(p, &filter).await {
        Ok(cases) => cases,
        Err(e) => return error_page(e.into()),
    };
    page(
        StatusCode::OK,
        &unit.address,
        Some(&visitor),
        html! {
            @if let Scope::Grids(_) = visitor.principal.scope {
                p { a href={ "/units/" (unit.id.0) "/inspect" } { "记录巡查 / Record an inspection" } }
            }
            dl {
                dt { "星级 / Grade" } dd { (stars(unit.stars)) }
                dt { "上次巡查 / Last inspected" } dd { (unit.last_inspected_at.map(local_time).unwrap_or_else(|| "—".into())) }
                dt { "下次到期 / Next due" } dd { (unit.next_due_at.map(local_time).unwrap_or_else(|| "—".into())) }
            }
            h2 { "责任 / Responsibility" }
            dl {
                dt { "责任人 / Responsible party" }
                dd { (duty.party_id.map(|p| format!("#{}", p.0)).unwrap_or_else(|| "未登记 / none registered".into())) }
                dt { "治安消防安全责任书 / Safety responsibility agreement" }
                dd {
                    @if duty.agreement_valid { "有效 / In force" }
                    @else { span.late { "未签订或已过期 / None in force" } }
                    @for a in duty.agreements.iter().rev().take(1) {
                        " (" (a.signer) ", " (a.signed_on) " – " (a.expires_on) ")"
                    }
                }
                dt { "出租屋综合保险 / Rental insurance" }
                dd { @if duty.insured { "在保 / Insured" } @else { "无 / None" } }
            }
            h2 { "案件 / Cases" }
            @if cases.is_empty() { p { "暂无。 / None." } } @else { (super::cases::rows(&app, &cases)) }
            (super::declare::section(&app, &visitor, unit.id, &declarations))
            h2 { "评级经过 / Grade history" }
            ol {
                @for g in &grades {
                    li { (local_time(g.at)) " · " (stars(g.stars)) " · " (g.cause) @if !g.reasons.is_empty() { " · " (g.reasons.join("；")) } }
                }
            }
        },
    )
}

/// The visitor's blacklist entries as the API lists them for them (a landlord's own),
/// with an appeal form on an entry in force.
pub(super) async fn blacklist(State(app): State<AppState>, visitor: Visitor) -> Response {
    let entries = match app.runtime.blacklist(&visitor.principal, None).await {
        Ok(entries) => entries,
        Err(e) => return error_page(e.into()),
    };
    let csrf = visitor.csrf();
    page(
        StatusCode::OK,
        "黑名单 / Blacklist",
        Some(&visitor),
        html! {
            @if entries.is_empty() { p { "无记录。 / No entries." } }
            @for e in &entries {
                article {
                    h2 { (e.party_name) " · " (e.status) }
                    p { "事由 / Reason: " (e.reason) }
                    p { small { "提出 / Proposed: " (local_time(e.proposed_at)) } }
                    @if let Some(note) = &e.decision_note { p { "决定 / Decision: " (note) } }
                    @if e.status == "active" {
                        form method="post" action={ "/blacklist/" (e.id) "/appeal" } {
                            input type="hidden" name="csrf" value=(csrf);
                            label { "申诉理由 / Grounds of appeal" textarea name="appeal" required maxlength="2000" {} }
                            button type="submit" { "提出申诉 / Appeal" }
                        }
                    }
                }
            }
        },
    )
}

/// Appeals a blacklist entry from the page.
pub(super) async fn appeal(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let form = match visitor.posted(&body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let Ok(id) = raw.parse::<i64>() else {
        return error_page(anju_engine::Error::not_found("blacklist entry", &raw).into());
    };
    match app
        .runtime
        .appeal_blacklist(&visitor.principal, id, form.get("appeal").unwrap_or(""))
        .await
    {
        Ok(_) => Redirect::to("/blacklist").into_response(),
        Err(e) => error_page(e.into()),
    }
}

/// The day's route on a map (Leaflet, served from the binary): the stops in order, a
/// line between them, on the configured tiles or a plain background, in the tiles'
/// datum.
/// The rings of a GeoJSON Polygon or MultiPolygon (WGS-84), as the tiles draw them
/// (`[lat, lon]`).
fn rings(geometry: &serde_json::Value, map: &crate::web::MapSettings) -> Vec<Vec<[f64; 2]>> {
    let ring = |r: &serde_json::Value| -> Vec<[f64; 2]> {
        r.as_array()
            .map(|points| {
                points
                    .iter()
                    .filter_map(|p| Some(map.place(p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let polygons: Vec<&serde_json::Value> = match geometry["type"].as_str() {
        Some("Polygon") => vec![&geometry["coordinates"]],
        Some("MultiPolygon") => geometry["coordinates"]
            .as_array()
            .map(|ps| ps.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    polygons
        .into_iter()
        .filter_map(|p| p.as_array().and_then(|rs| rs.first()).map(ring))
        .filter(|r| r.len() >= 3)
        .collect()
}

fn route_map(
    app: &AppState,
    stops: &[anju_engine::model::StoredStop],
    outlines: &[Vec<[f64; 2]>],
) -> maud::Markup {
    let map = &app.map;
    let points: Vec<[f64; 2]> = stops.iter().map(|s| map.place(s.lon, s.lat)).collect();
    let labels: Vec<&str> = stops.iter().map(|s| s.address.as_str()).collect();
    let data = serde_json::json!({
        "points": points,
        "labels": labels,
        "grids": outlines,
        "tiles": map.tile_url,
        "attribution": map.attribution,
    });
    html! {
        link rel="stylesheet" href="/assets/leaflet/leaflet.css";
        div #map style="height:45vh;background:#f2efe9;margin:.5rem 0" {}
        (super::script_data("route-data", &data))
        script src="/assets/leaflet/leaflet.js" {}
        script src="/assets/plan.js" {}
    }
}
