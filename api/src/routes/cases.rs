//! Cases over HTTP: lists, a case, its commands, its history by pages, its messages.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use anju_engine::domain::{CaseId, UnitId};
use anju_engine::machine::Command;
use anju_engine::model::{CaseFilter, CaseRecord, DeliveryRecord, OutboxMessage};

use crate::http::extract::{Body, Caller, Id, Params};
use crate::http::problem::{ApiError, ApiResult};
use crate::state::AppState;

use super::dto::{AnswerOut, CaseOut, CaseViewOut, DeliveryOut, EventOut};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct CaseQuery {
    state: Option<String>,
    category: Option<String>,
    district: Option<String>,
    street_id: Option<i64>,
    /// Only cases not closed (`true`) or closed (`false`).
    open: Option<bool>,
    overdue: Option<bool>,
    /// Only cases waiting for a supervisor's review.
    review: Option<bool>,
    unit_id: Option<i64>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// A case in a list: the case and its state's names.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct CaseSummary<'a> {
    #[serde(flatten)]
    case: CaseOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_zh: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_en: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminal: Option<bool>,
}

/// A case in a list: the case and its state's names.
pub(super) fn case_summary<'a>(app: &AppState, c: &'a CaseRecord) -> CaseSummary<'a> {
    let def = app.runtime.definition(c.definition_id);
    let state = def.as_ref().and_then(|d| d.states.get(&c.snapshot.state));
    CaseSummary {
        case: CaseOut::of(c),
        state_zh: state.map(|s| s.zh.clone()),
        state_en: state.map(|s| s.en.clone()),
        terminal: state.map(|s| s.terminal),
    }
}

/// A page of cases, newest first; `next_before` asks for the next page.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct CasePage<'a> {
    cases: Vec<CaseSummary<'a>>,
    next_before: Option<CaseId>,
}

/// A page of a case's history; `next_after` asks for the next page.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct EventPage<'a> {
    events: Vec<EventOut<'a>>,
    next_after: Option<i64>,
}

/// A case's outbox, as the caller may see it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct MessageList<'a> {
    messages: Vec<MessageOut<'a>>,
}

pub(crate) fn filter_from(app: &AppState, q: CaseQuery) -> ApiResult<CaseFilter> {
    let taxonomy = app.runtime.taxonomy();
    if let Some(c) = &q.category {
        taxonomy.parse_category(c, "category")?;
    }
    if let Some(d) = &q.district
        && (d.len() != 6 || !d.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::Unprocessable {
            field: "district".into(),
            detail: "a district is its six-digit GB/T 2260 code".into(),
        });
    }
    Ok(CaseFilter {
        state: q.state,
        category: q.category,
        district: q.district,
        street_id: q.street_id.map(anju_engine::domain::StreetId),
        unit_id: q.unit_id.map(UnitId),
        party_id: None,
        open: q.open,
        department_id: None,
        overdue: q.overdue.map(|wanted| app.runtime.overdue(wanted)),
        review_required: q.review,
        before: q.before.map(CaseId),
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    })
}

#[utoipa::path(get, path = "/cases", tag = "cases", params(CaseQuery), responses((status = 200, description = "cases in the caller's scope, newest first", body = CasePage)))]
pub(super) async fn list_cases(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<CaseQuery>,
) -> ApiResult<Json<Value>> {
    let filter = filter_from(&app, q)?;
    let cases = app.runtime.list_cases(&caller, &filter).await?;
    Ok(Json(json!(page(&app, &cases, filter.limit))))
}

pub(super) fn page<'a>(app: &AppState, cases: &'a [CaseRecord], limit: u32) -> CasePage<'a> {
    let next = (cases.len() as u32 == limit)
        .then(|| cases.last().map(|c| c.snapshot.id))
        .flatten();
    CasePage {
        cases: cases.iter().map(|c| case_summary(app, c)).collect(),
        next_before: next,
    }
}

#[utoipa::path(get, path = "/cases/{id}", tag = "cases", params(("id" = i64, Path)), responses((status = 200, description = "the case as the caller may see it", body = CaseViewOut)))]
pub(super) async fn get_case(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let view = app.runtime.case_view(&caller, CaseId(id)).await?;
    Ok(Json(json!(CaseViewOut::of(&view))))
}

/// A command on a case: its name, the version of the case the caller saw, the data its
/// fields take and a reason.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandBody {
    command: String,
    #[schema(minimum = 1)]
    expected_version: i64,
    #[serde(default)]
    #[schema(value_type = Object)]
    data: Map<String, Value>,
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(post, path = "/cases/{id}/commands", tag = "cases", params(("id" = i64, Path)), request_body = CommandBody, responses((status = 200, description = "the case as the command left it, with the event it added", body = AnswerOut)))]
pub(super) async fn issue_command(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<Value>,
) -> ApiResult<Json<Value>> {
    // A case outside the caller's scope answers as one that does not exist, before
    // anything in the body is looked at: a body at fault is answered only once the case
    // proved visible. A valid command goes straight to the writer, which checks the
    // scope under the case's lock, so that nothing is read twice.
    let parsed = crate::http::extract::from_value::<CommandBody>(body.value).and_then(|b| {
        if b.expected_version < 1 {
            Err(ApiError::Unprocessable {
                field: "expected_version".into(),
                detail: "the version of the case you saw, from 1".into(),
            })
        } else {
            Ok(b)
        }
    });
    let b = match parsed {
        Ok(b) => b,
        Err(e) => {
            app.runtime.visible_case(&caller, CaseId(id)).await?;
            return Err(e);
        }
    };
    let command = Command {
        name: b.command,
        data: b.data,
        reason: b.reason,
    };
    let committed = app
        .runtime
        .execute(&caller, CaseId(id), command, Some(b.expected_version))
        .await?;
    let answer = app.runtime.command_answer(&caller, committed)?;
    Ok(Json(json!(AnswerOut::of(&answer))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    #[serde(default)]
    after: i64,
    limit: Option<u32>,
}

/// A page of a case's history: the events after `after` (a sequence number), at most
/// `limit` (100 by default, up to 1,000), as the caller may see them.
#[utoipa::path(get, path = "/cases/{id}/events", tag = "cases", params(("id" = i64, Path), EventsQuery), responses((status = 200, description = "the case's history after `after`", body = EventPage)))]
pub(super) async fn case_events(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Params(q): Params<EventsQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = app
        .runtime
        .case_events_after(&caller, CaseId(id), q.after, limit)
        .await?;
    let next = (events.len() as u32 == limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let events: Vec<EventOut> = events.iter().map(EventOut::of).collect();
    Ok(Json(json!(EventPage {
        events,
        next_after: next
    })))
}

#[utoipa::path(get, path = "/cases/{id}/messages", tag = "cases", params(("id" = i64, Path)), responses((status = 200, description = "the case's messages with their deliveries", body = MessageList)))]
pub(super) async fn case_messages(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    // The engine keeps to each caller the messages they may see.
    let messages = app.runtime.case_outbox(&caller, CaseId(id)).await?;
    let messages: Vec<MessageOut> = messages
        .iter()
        .map(|(m, deliveries)| MessageOut::of(m, deliveries))
        .collect();
    Ok(Json(json!(MessageList { messages })))
}

/// A message of a case's outbox: to whom, what, and how its delivery went.
#[derive(Serialize, utoipa::ToSchema)]
struct MessageOut<'a> {
    id: i64,
    case_id: CaseId,
    event_seq: i64,
    recipient_kind: &'a str,
    recipient_id: Option<i64>,
    template: &'a str,
    subject: &'a str,
    body: &'a str,
    created_at: DateTime<Utc>,
    attempts: i64,
    delivered_at: Option<DateTime<Utc>>,
    channel: Option<&'a str>,
    last_error: Option<&'a str>,
    /// The message to each person on each channel, and how it went.
    deliveries: Vec<DeliveryOut<'a>>,
}

impl<'a> MessageOut<'a> {
    fn of(m: &'a OutboxMessage, deliveries: &'a [DeliveryRecord]) -> MessageOut<'a> {
        MessageOut {
            id: m.id,
            case_id: m.case_id,
            event_seq: m.event_seq,
            recipient_kind: &m.recipient_kind,
            recipient_id: m.recipient_id,
            template: &m.template,
            subject: &m.subject,
            body: &m.body,
            created_at: m.created_at,
            attempts: m.attempts,
            delivered_at: m.delivered_at,
            channel: m.channel.as_deref(),
            last_error: m.last_error.as_deref(),
            deliveries: deliveries.iter().map(DeliveryOut::of).collect(),
        }
    }
}
