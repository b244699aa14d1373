//! Case pages: the visitor's home (the cases of their scope — a landlord's own, a department's referrals — with deadlines counted down in China time), a case with its timeline, its next time limit, and a form for each command the visitor may issue now, built from the fields the workflow defines for it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::html;
use serde_json::{Map, Value};

use anju_engine::domain::CaseId;
use anju_engine::machine::Command;
use anju_engine::model::CaseRecord;
use anju_engine::time::local_time;
use anju_engine::workflow::{CommandDef, FieldKind, FieldSpec};

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

pub(super) fn rows(app: &AppState, cases: &[CaseRecord]) -> maud::Markup {
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
pub(super) async fn home(
    State(app): State<AppState>,
    visitor: Visitor,
    query: Result<
        axum::extract::Query<crate::routes::cases::CaseQuery>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Response {
    // The list takes the API's filters (a street's open cases, from the dashboard).
    let Ok(axum::extract::Query(query)) = query else {
        return error_page(crate::http::problem::ApiError::Unprocessable {
            field: "query".into(),
            detail: "state, category, district, street_id, open, overdue, review, unit_id, before, limit".into(),
        });
    };
    let filter = match crate::routes::cases::filter_from(&app, query) {
        Ok(f) => f,
        Err(e) => return error_page(e),
    };
    // The scope decides what is listed: a landlord's own cases, a department's
    // referrals, an inspector's grids, a supervisor's area.
    let title = "我的案件 / My cases";
    // Orders waiting to be served in person, first: nobody else will tell their
    // landlords (the inspector's and their supervisors' to do; empty for others).
    let unserved = anju_engine::model::CaseFilter {
        state: Some("awaiting_service".into()),
        limit: 100,
        ..Default::default()
    };
    let unserved = match app.runtime.list_cases(&visitor.principal, &unserved).await {
        Ok(list) => list,
        Err(e) => return error_page(e.into()),
    };
    let cases = app.runtime.list_cases(&visitor.principal, &filter).await;
    match cases {
        Ok(cases) => page(
            StatusCode::OK,
            title,
            Some(&visitor),
            html! {
                @if !unserved.is_empty() {
                    h2 { "待现场送达的整改通知书 / Orders to serve in person (" (unserved.len()) ")" }
                    p { "这些出租屋没有登记的责任人，整改通知书须打印后现场送达并记录。 / These units have no responsible party on record: print each order, serve it and record the service." }
                    (rows(&app, &unserved))
                    h2 { "全部案件 / All cases" }
                }
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
    let def = app.runtime.definition(view.case.definition_id);
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
            @if s.state == "awaiting_service" {
                p.err role="alert" {
                    "整改通知书待现场送达：本出租屋没有登记的责任人，系统无法通知任何人。请打印整改通知书，现场送达后在下方“记录送达”；整改期限自送达之日起 " (s.order_hours) " 小时。"
                    " / The order must be served in person: no responsible party is on record, so nobody could be notified. Print it, serve it, then record the service below; the deadline runs " (s.order_hours) " hours from the service."
                }
            }
            @if s.review_required {
                p.err role="alert" { "待督导复核：复核完成前案件不能结案。 / Waiting for a supervisor's review: the case cannot be closed until it is done." }
            }
            @if s.order_no > 0 {
                p { a href={ "/cases/" (s.id.0) "/order" } { "整改通知书（可打印） / The rectification order, to print" } }
            }
            @if let Some(t) = &view.case.timer {
                @let (late, text) = countdown(t.due_at, now);
                p {
                    "下一时限 / Next time limit (" (t.kind) "): " (local_time(t.due_at)) " — " span class=[late.then_some("late")] { (text) }
                    @if t.provisional {
                        " " span.late { "（暂定：该年法定节假日尚未公布，公布后将重新计算 / provisional: that year's public holidays are not yet published; it will be re-dated）" }
                    }
                }
            }
            @if !view.commands.is_empty() {
                h2 { "可执行的操作 / What you can do" }
                @for c in &view.commands {
                    @let spec = def.as_ref().and_then(|d| d.commands.get(c));
                    form method="post" action={ "/cases/" (s.id.0) "/commands" } class="command" enctype="multipart/form-data" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="command" value=(c);
                        input type="hidden" name="expected_version" value=(s.version);
                        @if c == "notify" && s.party_id.is_none() {
                            p.err { "本出租屋没有登记的责任人：整改通知书将不会发给任何人，须打印后现场送达；送达并记录后整改期限才开始计算。 / No responsible party is on record: the order goes to nobody and must be printed and served in person; its deadline starts when the service is recorded." }
                        }
                        @if let Some(spec) = spec {
                            @for (name, field) in &spec.fields {
                                (field_input(name, field))
                            }
                            @if spec.reason_required {
                                label { "理由 / Reason" textarea name="reason" required maxlength="2000" {} }
                            }
                        }
                        button type="submit" {
                            (spec.map(|d| format!("{} / {}", d.zh, d.en)).unwrap_or_else(|| c.clone()))
                        }
                    }
                }
            }
            @if !view.evidence.is_empty() {
                h2 { "证据 / Evidence" }
                ul class="evidence" {
                    @for e in &view.evidence {
                        li { (evidence_item(e)) }
                    }
                }
            }
            h2 { "经过 / Timeline" }
            ol {
                @for e in &view.history {
                    li {
                        (local_time(e.at)) " · " (e.actor.role.as_str()) " · " (e.command)
                        @if let Some(from) = &e.from_state { " (" (from) " → " (e.to_state) ")" }
                        (unsent_trace(&e.data))
                    }
                }
            }
        },
    )
}

/// What an event says of messages that reached nobody: the office sees that the
/// landlord (say) was never notified, and an order waiting to be served in person.
fn unsent_trace(data: &Value) -> maud::Markup {
    let nobody: Vec<&str> = data
        .get("undelivered")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|u| u.get("to").and_then(Value::as_str))
                .map(|to| match to {
                    "landlord" => "责任人 / responsible party",
                    "inspector" => "出租屋管理员 / inspector",
                    "department" => "职能部门 / department",
                    _ => "督导 / supervisor",
                })
                .collect()
        })
        .unwrap_or_default();
    html! {
        @if !nobody.is_empty() {
            " " span.late { "未通知（无登记）/ nobody notified (none on record): " (nobody.join("、")) }
        }
        @if data.get("service").and_then(Value::as_str) == Some("in_person") {
            " " span.late { "须现场送达 / to be served in person" }
        }
        @if let Some(method) = data.get("method").and_then(Value::as_str) {
            @if data.get("served_at").is_some() {
                " " span { "已送达 / served: "
                    (if method == "left" { "留置送达 / left with a witness" } else { "直接送达 / in person" })
                    @if let Some(r) = data.get("recipient").and_then(Value::as_str) { "，受送达人 / to " (r) }
                    @if let Some(w) = data.get("witness").and_then(Value::as_str) { "，见证人 / witness " (w) }
                }
            }
        }
    }
}

/// One piece of evidence on a case page: the upload's thumbnail (or name) linked to the
/// file, and whether the photo was taken on site; a string stored before uploads
/// existed is shown as unverified.
fn evidence_item(e: &anju_engine::runtime::EvidenceView) -> maud::Markup {
    use anju_engine::evidence::PhotoCheck;
    html! {
        @match &e.record {
            Some(r) => {
                a href={ "/evidence/" (r.id) } {
                    @if r.has_thumbnail {
                        img src={ "/evidence/" (r.id) "/thumbnail" } alt=(r.file_name) width="160";
                    } @else {
                        (r.file_name)
                    }
                }
                " "
                @match e.check {
                    Some(PhotoCheck::OffSite { distance_m, other_day }) => span class="late flag" {
                        "⚠ 非现场拍摄 / Not taken on site"
                        @if let Some(d) = distance_m { "（距单元 " (d.round()) " 米 / " (d.round()) " m from the unit）" }
                        @if other_day { "（非检查当日 / not on the day of the visit）" }
                    },
                    Some(PhotoCheck::OnSite) => span class="flag" { "现场拍摄 / Taken on site" },
                    Some(PhotoCheck::Unknown) => span class="flag" { "拍摄地点时间未知 / Where and when unknown" },
                    None => {},
                }
            },
            None => { (e.reference) " — " span class="flag" { "未核实 / Unverified" } },
        }
    }
}

/// What a form calls a command's field: Chinese first, then English; the field's own
/// name for one this page does not know.
fn field_label(name: &str) -> String {
    let known = match name {
        "requirements" => "整改要求 / Requirements",
        "deadline_hours" => "整改期限（小时） / Deadline (hours)",
        "evidence" => "证据（照片、文书） / Evidence (photos, documents)",
        "note" => "说明 / Note",
        "passed" => "复查合格 / Passed",
        "outcome" => "结果 / Outcome",
        "duplicate_of" => "重复的案件编号 / Duplicate of case",
        "department_id" => "部门编号 / Department",
        "reason_code" => "原因 / Reason",
        "result" => "查处结果 / Result",
        "fine_amount" => "罚款金额（元） / Fine (yuan)",
        "decision_no" => "决定书文号 / Decision number",
        "method" => "送达方式 / How it was served",
        "recipient" => "受送达人（签收人姓名） / Served on (who signed)",
        "witness" => "见证人（留置送达时必填） / Witness (when left at the premises)",
        _ => return name.to_string(),
    };
    known.to_string()
}

/// The input of one of a command's fields, as the workflow defines it (`f.<name>`).
fn field_input(name: &str, field: &FieldSpec) -> maud::Markup {
    let input = format!("f.{name}");
    html! {
        label {
            (field_label(name)) @if field.required { " *" }
            @match field.kind {
                FieldKind::Enum => select name=(input) required[field.required] {
                    @if !field.required { option value="" { "—" } }
                    @for v in &field.values {
                        option value=(v) { (field.labels.get(v).unwrap_or(v)) }
                    }
                },
                FieldKind::Bool => select name=(input) {
                    option value="" { "—" }
                    option value="true" { "是 / yes" }
                    option value="false" { "否 / no" }
                },
                FieldKind::Money => input type="number" name=(input) step="0.01" min="0" required[field.required];,
                FieldKind::Integer | FieldKind::Department | FieldKind::Case => input type="number" name=(input) step="1" required[field.required];,
                FieldKind::Evidence => input type="file" name=(input) multiple required[field.required]
                    accept="image/jpeg,image/png,image/heic,image/heif,.heic,.heif,application/pdf";,
                FieldKind::Text => textarea name=(input) maxlength=[field.max_len] required[field.required] {},
            }
        }
    }
}

/// A form's fields as a command's data, read by the kinds the workflow gives them; a
/// value that does not read as its kind is passed as text, for the engine to refuse
/// naming the field.
fn command_data(
    fields: &[(String, String)],
    uploads: &[(String, String)],
    spec: Option<&CommandDef>,
) -> Map<String, Value> {
    let mut data = Map::new();
    for (key, id) in uploads {
        if let Some(name) = key.strip_prefix("f.") {
            let list = data
                .entry(name.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(Value::from(id.as_str()));
            }
        }
    }
    for (key, raw) in fields {
        let Some(name) = key.strip_prefix("f.") else {
            continue;
        };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let kind = spec.and_then(|s| s.fields.get(name)).map(|f| f.kind);
        let value = match kind {
            Some(FieldKind::Money) => raw.parse::<f64>().map(Value::from).ok(),
            Some(FieldKind::Integer | FieldKind::Department | FieldKind::Case) => {
                raw.parse::<i64>().map(Value::from).ok()
            }
            Some(FieldKind::Bool) => raw.parse::<bool>().map(Value::from).ok(),
            // Evidence comes as files (above); text in its place is refused by name.
            Some(FieldKind::Evidence) if data.contains_key(name) => continue,
            _ => None,
        };
        data.insert(name.to_string(), value.unwrap_or_else(|| Value::from(raw)));
    }
    data
}

/// Issues a command from a case page: refused without this session's CSRF token; the
/// case page again on success, or with what went wrong.
pub(super) async fn command(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    crate::http::extract::FormData(multipart): crate::http::extract::FormData,
) -> Response {
    let (form, files) = match visitor.posted_multipart(multipart).await {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let Some(id) = case_id(&raw) else {
        return error_page(anju_engine::Error::not_found("case", &raw).into());
    };
    let name = form.get("command").unwrap_or("").to_string();
    let Some(version) = form
        .get("expected_version")
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return error_page(
            anju_engine::Error::invalid("expected_version", "the version of the case you saw")
                .into(),
        );
    };
    let definition = match app.runtime.visible_case(&visitor.principal, id).await {
        Ok(case) => app.runtime.definition(case.definition_id),
        Err(e) => return error_page(e.into()),
    };
    let spec = definition.as_ref().and_then(|d| d.commands.get(&name));
    // The files are uploaded once the case proved visible.
    let uploads = match visitor.upload(&app, files).await {
        Ok(ids) => ids,
        Err(refused) => return *refused,
    };
    let command = Command {
        data: command_data(form.fields(), &uploads, spec),
        name,
        reason: form.get("reason").map(str::to_string),
    };
    match app
        .runtime
        .execute(&visitor.principal, id, command, Some(version))
        .await
    {
        Ok(_) => Redirect::to(&format!("/cases/{}", id.0)).into_response(),
        Err(e) => {
            // A refused command leaves none of its files behind.
            visitor.discard(&app, &uploads).await;
            let detail = e.to_string();
            let status = crate::http::problem::ApiError::from(e)
                .into_response()
                .status();
            if status == StatusCode::NOT_FOUND {
                return error_page(anju_engine::Error::not_found("case", id.0).into());
            }
            // The engine's own faults are logged, not shown.
            if status.is_server_error() {
                return error_page(crate::http::problem::ApiError::Engine(
                    anju_engine::Error::Internal(detail),
                ));
            }
            let notice = format!("未能完成 / Not done: {detail}");
            case_response(&app, &visitor, &raw, status, Some(&notice)).await
        }
    }
}
