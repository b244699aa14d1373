//! Messages and deliveries over HTTP: the caller's inbox (what was addressed to them, read or not), the dead letters of a supervisor's area (messages given up after their last attempt, or to people with no address on record) and sending one again.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::extract::{Caller, Id, Params};
use crate::http::problem::ApiResult;
use crate::state::AppState;

use chrono::{DateTime, Utc};
use serde::Serialize;

use anju_engine::domain::CaseId;
use anju_engine::model::InboxItem;

use super::dto::DeliveryOut;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct InboxQuery {
    /// Only messages not read yet.
    #[serde(default)]
    unread: bool,
    before: Option<i64>,
    limit: Option<u32>,
}

/// A message of the caller's inbox.
#[derive(Serialize, utoipa::ToSchema)]
struct InboxOut<'a> {
    id: i64,
    case_id: CaseId,
    template: &'a str,
    subject: &'a str,
    body: &'a str,
    created_at: DateTime<Utc>,
    read: bool,
    read_at: Option<DateTime<Utc>>,
}

/// What was addressed to the caller, newest first (every role).
#[utoipa::path(get, path = "/me/messages", tag = "messages", params(InboxQuery), responses((status = 200, description = "the messages addressed to the caller, newest first", body = InboxPage)))]
pub(super) async fn my_messages(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<InboxQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let items: Vec<InboxItem> = app
        .runtime
        .my_messages(&caller, q.unread, q.before, limit)
        .await?;
    let next = (items.len() as u32 == limit)
        .then(|| items.last().map(|m| m.id))
        .flatten();
    let messages: Vec<InboxOut> = items
        .iter()
        .map(|m| InboxOut {
            id: m.id,
            case_id: m.case_id,
            template: &m.template,
            subject: &m.subject,
            body: &m.body,
            created_at: m.created_at,
            read: m.read_at.is_some(),
            read_at: m.read_at,
        })
        .collect();
    Ok(Json(json!(InboxPage {
        messages,
        next_before: next
    })))
}

/// Marks a message of the caller's inbox read.
#[utoipa::path(post, path = "/me/messages/{id}/read", tag = "messages", params(("id" = i64, Path)), responses((status = 200, description = "the message, now read", body = ReadOut)))]
pub(super) async fn mark_read(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    app.runtime.mark_read(&caller, id).await?;
    Ok(Json(json!(ReadOut { id, read: true })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct DeadQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

/// Dead letters of the caller's area, newest first (supervisors).
#[utoipa::path(get, path = "/deliveries/dead", tag = "messages", params(DeadQuery), responses((status = 200, description = "the dead letters of the caller's area, newest first", body = DeadPage)))]
pub(super) async fn dead_letters(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<DeadQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let list = app.runtime.dead_letters(&caller, q.before, limit).await?;
    let next = (list.len() as u32 == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    let list: Vec<DeliveryOut> = list.iter().map(DeliveryOut::of).collect();
    Ok(Json(json!(DeadPage {
        deliveries: list,
        next_before: next
    })))
}

/// Queues a dead letter again; the outbox worker sends it with its Message-ID.
#[utoipa::path(post, path = "/deliveries/{id}/resend", tag = "messages", params(("id" = i64, Path)), responses((status = 200, description = "the delivery, queued again", body = DeliveryOut)))]
pub(super) async fn resend(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let d = app.runtime.resend(&caller, id).await?;
    Ok(Json(json!(DeliveryOut::of(&d))))
}

/// A page of the caller's messages, newest first; `next_before` asks for the next page.
#[derive(Serialize, utoipa::ToSchema)]
struct InboxPage<'a> {
    messages: Vec<InboxOut<'a>>,
    next_before: Option<i64>,
}

/// A page of dead letters, newest first; `next_before` asks for the next page.
#[derive(Serialize, utoipa::ToSchema)]
struct DeadPage<'a> {
    deliveries: Vec<DeliveryOut<'a>>,
    next_before: Option<i64>,
}

/// A message marked read.
#[derive(Serialize, utoipa::ToSchema)]
struct ReadOut {
    id: i64,
    read: bool,
}
