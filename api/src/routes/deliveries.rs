//! Deliveries over HTTP: the dead letters of a supervisor's area (messages given up after their last attempt, or to people with no address on record) and sending one again.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::extract::{Caller, Id, Params};
use crate::http::problem::ApiResult;
use crate::state::AppState;

use super::dto::DeliveryOut;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeadQuery {
    before: Option<i64>,
    limit: Option<u32>,
}

/// Dead letters of the caller's area, newest first (supervisors).
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
    Ok(Json(json!({ "deliveries": list, "next_before": next })))
}

/// Queues a dead letter again; the outbox worker sends it with its Message-ID.
pub(super) async fn resend(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let d = app.runtime.resend(&caller, id).await?;
    Ok(Json(json!(DeliveryOut::of(&d))))
}
