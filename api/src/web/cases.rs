//! Case pages: the visitor's home (the cases of their scope — a landlord's own, a department's referrals — with deadlines counted down in China time), a case with its timeline and a form for each command the visitor may issue now.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;
use serde_json::Map;

use anju_engine::domain::CaseId;
use anju_engine::machine::Command;
use anju_engine::model::{CaseFilter, CaseRecord};
use anju_engine::time::local_time;

use super::{Visitor, error_page, page};
use crate::state::AppState;

/// How long until a deadline, or how long past it, in days and hours.
pub(crate) fn countdown(deadline: DateTime<Utc>, now: DateTime<Utc>) -> (bool, String) {
    let late = deadline <= now;
    let left = if late { now - deadline } else { deadline - now };
    let (days, hours) = (left.num_days(), left.num_hours() % 24);
    let text = if late {
        format!("已逾期 {days} 天 {hours} 小时 / {days} d {hours} h overdue")
    } else {
        format!("剩余 {days} 天 {hours} 小时 / {days} d {hours} h left")
    };
    (late, text)
}

/// A case id from the path; a path that is not one is a page that does not exist.
fn case_id(raw: &str) -> Option<CaseId> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).map(CaseId)
}

fn rows(app: &AppState, cases: &[CaseRecord]) -> maud::Markup {
    let now = app.runtime.now();
    html! {
        table {
            thead { tr { th { "案件 / Case" } th { "地址 / Address" } th { "状态 / State" } th { "整改期限 / Deadline" } } }
            tbody {
                @for c in cases {
                    @let s = &c.snapshot;
                    @let state = app.runtime.definition(c.definition_id)
                        .and_then(|d| d.states.get(&s.state).map(|n| format!("{} / {}", n.zh, n.en)))
                        .unwrap_or_else(|| s.state.clone());
                    tr {
                        td { a href={ "/cases/" (s.id.0) } { (s.id.0) } }
                        td { (s.address) }
                        td { (state) }
                        td {
                            @if let Some(d) = s.deadline_at {
                                @let (late, text) = countdown(d, now);
                                (local_time(d)) br;
                                span class=[late.then_some("late")] { (text) }
                            } @else { "—" }
                        }
                    }
                }
            }
        }
    }
}

/// The visitor's home: a landlord's orders, or the cases of the visitor's scope.
pub(super) async fn home(State(app): State<AppState>, visitor: Visitor) -> Response {
    let filter = CaseFilter {
        limit: 100,
        ..CaseFilter::default()
    };
    // The scope decides what is listed: a landlord's own cases, a department's
    // referrals, an inspector's grids, a supervisor's area.
    let title = "我的案件 / My cases";
    let cases = app.runtime.list_cases(&visitor.principal, &filter).await;
    match cases {
        Ok(cases) => page(
            StatusCode::OK,
            title,
            Some(&visitor),
            html! {
                @if cases.is_empty() { p { "暂无。 / Nothing here." } } @else { (rows(&app, &cases)) }
            },
        ),
        Err(e) => error_page(e.into()),
    }
}

/// A case: what it is, its deadline counted down, its timeline as the visitor may see
/// it, and a form for each command they may issue now.
pub(super) async fn case_page(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
) -> Response {
    case_response(&app, &visitor, &raw, StatusCode::OK, None).await
}

async fn case_response(
    app: &AppState,
    visitor: &Visitor,
    raw: &str,
    status: StatusCode,
    notice: Option<&str>,
) -> Response {
    let Some(id) = case_id(raw) else {
        return error_page(anju_engine::Error::not_found("case", raw).into());
    };
    let view = match app.runtime.case_view(&visitor.principal, id).await {
        Ok(v) => v,
        Err(e) => return error_page(e.into()),
    };
    let s = &view.case.snapshot;
    let now = app.runtime.now();
    let csrf = visitor.csrf();
    page(
        status,
        &format!("案件 {} / Case {}", s.id.0, s.id.0),
        Some(visitor),
        html! {
            @if let Some(n) = notice { p.err role="alert" { (n) } }
            dl {
                dt { "地址 / Address" } dd { (s.address) }
                dt { "隐患 / Hazard" } dd { (s.category) " (" (s.severity) ")" }
                dt { "状态 / State" } dd { (view.names.state_zh) " / " (view.names.state_en) }
                @if let Some(d) = s.deadline_at {
                    @let (late, text) = countdown(d, now);
                    dt { "整改期限 / Deadline" }
                    dd { (local_time(d)) " — " span class=[late.then_some("late")] { (text) } }
                }
            }
            @if s.order_no > 0 {
                p { a href={ "/cases/" (s.id.0) "/order" } { "整改通知书（可打印） / The rectification order, to print" } }
            }
            @if !view.commands.is_empty() {
                h2 { "可执行的操作 / What you can do" }
                @for c in &view.commands {
                    form method="post" action={ "/cases/" (s.id.0) "/commands" } {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="command" value=(c);
                        input type="hidden" name="expected_version" value=(s.version);
                        button type="submit" name="go" value="1" { (command_label(c)) }
                    }
                }
            }
            h2 { "经过 / Timeline" }
            ol {
                @for e in &view.history {
                    li {
                        (local_time(e.at)) " · " (e.actor.role.as_str()) " · " (e.command)
                        @if let Some(from) = &e.from_state { " (" (from) " → " (e.to_state) ")" }
                    }
                }
            }
        },
    )
}

/// A command's name for people.
fn command_label(command: &str) -> String {
    let zh = match command {
        "acknowledge" => "签收整改通知书",
        "report_fix" => "报告已整改",
        "accept" => "受理移交",
        "close" => "销案",
        "refer" => "移交执法部门",
        "notify" => "下达整改通知书",
        _ => "",
    };
    if zh.is_empty() {
        command.to_string()
    } else {
        format!("{zh} / {command}")
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct CommandForm {
    csrf: Option<String>,
    command: String,
    expected_version: i64,
}

/// Issues a command from a case page: refused without this session's CSRF token; the
/// case page again on success, or with what went wrong.
pub(super) async fn command(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let f: Option<CommandForm> = super::form(&body);
    if let Some(refused) = visitor.forged(f.as_ref().and_then(|f| f.csrf.as_deref())) {
        return refused;
    }
    let (Some(f), Some(id)) = (f, case_id(&raw)) else {
        return error_page(anju_engine::Error::not_found("case", &raw).into());
    };
    let command = Command {
        name: f.command,
        data: Map::new(),
        reason: None,
    };
    match app
        .runtime
        .execute(&visitor.principal, id, command, Some(f.expected_version))
        .await
    {
        Ok(_) => Redirect::to(&format!("/cases/{}", id.0)).into_response(),
        Err(e) => {
            let status = crate::http::problem::ApiError::from(e)
                .into_response()
                .status();
            if status == StatusCode::NOT_FOUND {
                return error_page(anju_engine::Error::not_found("case", id.0).into());
            }
            case_response(
                &app,
                &visitor,
                &raw,
                status,
                Some("未能完成：案件已变化或需要更多信息。 / Not done: the case has changed or needs more."),
            )
            .await
        }
    }
}
