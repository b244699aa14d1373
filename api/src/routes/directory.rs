//! The directories and the rule book: departments, inspectors, supervisors, the workflow and taxonomy, the rules in force.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::http::extract::Caller;
use crate::http::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// The units a landlord answers for: grade, last inspection, open orders and the
/// nearest deadline (not the inspectors' patrol dates).
/// The escalation rules in force, with their versions and script hashes, and how many
/// evaluations ran and failed since the service started (supervisors).
pub(super) async fn rules(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let set = app.runtime.rules_for(&caller)?;
    let (evaluations, failures) = set.counts();
    let rules: Vec<Value> = set
        .specs()
        .into_iter()
        .map(|r| {
            json!({
                "name": r.name,
                "version": r.version,
                "on": r.on,
                "zh": r.zh,
                "en": r.en,
                "script_sha256": set.script_hash(&r.name),
            })
        })
        .collect();
    Ok(Json(json!({
        "rules": rules,
        "evaluations": evaluations,
        "failures": failures,
    })))
}

/// The departments the caller may work with: those of the caller's districts and the
/// city-wide ones.
pub(super) async fn departments(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.department_directory(&caller).await?;
    Ok(Json(json!({ "departments": list })))
}

/// The inspectors of the caller's area (supervisors), or sharing a grid (inspectors).
pub(super) async fn inspectors(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.inspector_directory(&caller).await?;
    Ok(Json(json!({ "inspectors": list })))
}

/// The supervisors over the caller's area.
pub(super) async fn supervisors(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.supervisor_directory(&caller).await?;
    Ok(Json(json!({ "supervisors": list })))
}

pub(super) async fn workflows(
    State(app): State<AppState>,
    Caller(_): Caller,
) -> ApiResult<Response> {
    let (id, def) = app
        .runtime
        .latest_definition(anju_engine::workflow::HAZARD_CASE)
        .ok_or_else(|| ApiError::NotFound("no hazard case workflow".into()))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    Ok((
        headers,
        Json(json!({ "id": id, "definition": *def, "taxonomy": app.runtime.taxonomy() })),
    )
        .into_response())
}
