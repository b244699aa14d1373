//! The HTTP API under `/api/v1`, one file per resource: the router, and what every resource shares (the caller's own record, created resources). Handlers parse, call the runtime and shape the answer: no role checks, no filtering, no store.

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use anju_engine::auth::Scope;
use anju_engine::domain::{DepartmentId, GridId, PartyId, StreetId};
use anju_engine::model::Idempotent;

use crate::http::extract::Caller;
use crate::state::AppState;

mod auth;
pub mod cases;
mod deliveries;
mod directory;
mod dto;
pub mod evidence;
mod inboxes;
mod inspections;
pub mod patrol;
pub mod places;
pub mod public;
pub mod responsibility;
pub mod stats;
mod units;

pub(crate) use auth::client_of;
use cases::*;
use directory::*;
use inboxes::*;
pub(crate) use inspections::inspection_json;
use inspections::*;
use units::*;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/me/account", get(auth::my_account))
        .route("/me/preferences", axum::routing::put(auth::set_preferences))
        .route("/auth/code", post(auth::request_code))
        .route(
            "/auth/session",
            post(auth::create_session).delete(auth::delete_session),
        )
        .route(
            "/evidence",
            post(evidence::upload).layer(axum::extract::DefaultBodyLimit::max(
                anju_engine::evidence::MAX_UPLOAD_BYTES,
            )),
        )
        .route("/evidence/{id}", get(evidence::describe))
        .route("/evidence/{id}/file", get(evidence::file))
        .route("/evidence/{id}/thumbnail", get(evidence::thumbnail))
        .route("/me/messages", get(deliveries::my_messages))
        .route("/me/messages/{id}/read", post(deliveries::mark_read))
        .route("/units", post(create_unit))
        .route("/units/near", get(places::near))
        .route("/units/nearest", get(places::nearest))
        .route(
            "/units/within",
            get(places::within_bbox).post(places::within_polygon),
        )
        .route("/units/ungridded", get(ungridded_units))
        .route("/units/{id}", get(get_unit))
        .route("/units/{id}/location", post(correct_unit_point))
        .route("/buildings/{id}/location", post(correct_building_point))
        .route("/units/{id}/grades", get(unit_grades))
        .route("/grading/rubric", get(rubric))
        .route("/grids/{id}", get(places::grid))
        .route("/grids/{id}/units", get(places::grid_units))
        .route(
            "/units/{id}/parties",
            get(unit_parties).post(change_unit_party),
        )
        .route(
            "/inspections",
            post(record_inspection).get(places::list_inspections),
        )
        .route("/cases", get(list_cases))
        .route("/cases/{id}", get(get_case))
        .route("/cases/{id}/commands", post(issue_command))
        .route("/cases/{id}/events", get(case_events))
        .route("/cases/{id}/messages", get(case_messages))
        .route("/deliveries/dead", get(deliveries::dead_letters))
        .route("/deliveries/{id}/resend", post(deliveries::resend))
        .route("/landlords/{id}/orders", get(landlord_orders))
        .route("/landlords/{id}/units", get(landlord_units))
        .route("/departments/{id}/referrals", get(department_referrals))
        .route("/workflows", get(workflows))
        .route("/departments", get(departments))
        .route("/inspectors", get(inspectors))
        .route("/supervisors", get(supervisors))
        .route("/rules", get(rules))
        .route("/statistics", get(stats::statistics))
        .route("/statistics/map", get(stats::hazard_map))
        .route("/inspectors/{id}/plan", get(patrol::inspector_plan))
        .route("/plans/{date}/backlog", get(patrol::plan_backlog))
        .route(
            "/campaigns",
            get(patrol::campaigns).post(patrol::create_campaign),
        )
        .route("/campaigns/{id}", get(patrol::campaign))
        .merge(responsibility::router())
        .route("/campaigns/{id}/progress", get(patrol::campaign_progress))
}

/// Who the caller is: role, subject and the part of the registry they see.
async fn me(Caller(p): Caller) -> Json<Value> {
    /// A caller's scope, as `{"kind": …, "id": …}`.
    #[derive(serde::Serialize)]
    #[serde(tag = "kind", content = "id", rename_all = "snake_case")]
    enum ScopeOut<'a> {
        City,
        District(&'a str),
        Street(StreetId),
        Grids(&'a std::collections::BTreeSet<GridId>),
        Party(PartyId),
        Department(DepartmentId),
        System,
    }
    let scope = match &p.scope {
        Scope::City => ScopeOut::City,
        Scope::District(code) => ScopeOut::District(code),
        Scope::Street(id) => ScopeOut::Street(*id),
        Scope::Grids(grids) => ScopeOut::Grids(grids),
        Scope::Party(id) => ScopeOut::Party(*id),
        Scope::Department(id) => ScopeOut::Department(*id),
        Scope::System => ScopeOut::System,
    };
    Json(json!({
        "role": p.role.as_str(),
        "subject": p.subject,
        "scope": scope,
        "account_id": p.account,
    }))
}

/// A created resource, or the stored response of the same request made before.
pub(super) fn created<T>(result: Idempotent<T>, render: impl Fn(&T) -> Value) -> Response {
    match result {
        Idempotent::Created(v) => (StatusCode::CREATED, Json(render(&v))).into_response(),
        Idempotent::Replayed(body) => {
            let mut r = (StatusCode::CREATED, Json(body)).into_response();
            r.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            r
        }
    }
}
