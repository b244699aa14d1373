//! The HTTP API under `/api/v1`, one file per resource: the router, and what every resource shares (the caller's own record, created resources). Handlers parse, call the runtime and shape the answer: no role checks, no filtering, no store.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use anju_engine::auth::Scope;
use anju_engine::domain::{DepartmentId, GridId, PartyId, StreetId};
use anju_engine::model::Idempotent;

use crate::http::extract::Caller;
use crate::state::AppState;

mod auth;
pub mod cases;
mod declarations;
mod deliveries;
mod directory;
mod dto;
pub mod evidence;
mod inboxes;
mod inspections;
pub mod open311;
pub mod patrol;
pub mod places;
pub mod public;
pub mod responsibility;
pub mod stats;
mod tips;
mod units;

pub(crate) use auth::client_of;
use cases::*;
use directory::*;
use inboxes::*;
pub(crate) use inspections::inspection_json;
use inspections::*;
use units::*;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(auth::my_account))
        .routes(routes!(auth::set_preferences))
        .routes(routes!(auth::request_code))
        .routes(routes!(auth::create_session, auth::delete_session))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(evidence::upload))
                .layer(axum::extract::DefaultBodyLimit::max(
                    anju_engine::evidence::MAX_UPLOAD_BYTES,
                )),
        )
        .routes(routes!(evidence::describe))
        .routes(routes!(evidence::file))
        .routes(routes!(evidence::thumbnail))
        .routes(routes!(deliveries::my_messages))
        .routes(routes!(deliveries::mark_read))
        .routes(routes!(create_unit))
        .routes(routes!(places::near))
        .routes(routes!(places::nearest))
        .routes(routes!(places::within_bbox, places::within_polygon))
        .routes(routes!(ungridded_units))
        .routes(routes!(get_unit))
        .routes(routes!(correct_unit_point))
        .routes(routes!(correct_building_point))
        .routes(routes!(unit_grades))
        .routes(routes!(rubric))
        .routes(routes!(places::grid))
        .routes(routes!(places::grid_units))
        .routes(routes!(unit_parties, change_unit_party))
        .routes(routes!(record_inspection, places::list_inspections))
        .routes(routes!(list_cases))
        .routes(routes!(get_case))
        .routes(routes!(issue_command))
        .routes(routes!(case_events))
        .routes(routes!(case_messages))
        .routes(routes!(deliveries::dead_letters))
        .routes(routes!(deliveries::resend))
        .routes(routes!(landlord_orders))
        .routes(routes!(landlord_units))
        .routes(routes!(department_referrals))
        .routes(routes!(workflows))
        .routes(routes!(departments))
        .routes(routes!(inspectors))
        .routes(routes!(supervisors))
        .routes(routes!(rules))
        .routes(routes!(stats::statistics))
        .routes(routes!(stats::hazard_map))
        .routes(routes!(patrol::inspector_plan))
        .routes(routes!(patrol::plan_backlog))
        .routes(routes!(patrol::campaigns, patrol::create_campaign))
        .routes(routes!(patrol::campaign))
        .routes(routes!(patrol::campaign_progress))
        .routes(routes!(declarations::declare, declarations::declarations))
        .routes(routes!(tips::tips))
        .routes(routes!(tips::tip))
        .routes(routes!(tips::resolve))
        .merge(responsibility::router())
}

/// A caller's scope, as `{"kind": …, "id": …}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
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

/// Who the caller is.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct MeOut<'a> {
    /// `inspector`, `landlord`, `department`, `supervisor` or `system`.
    role: &'static str,
    subject: i64,
    scope: ScopeOut<'a>,
    account_id: Option<i64>,
}

/// Who the caller is: role, subject and the part of the registry they see.
#[utoipa::path(get, path = "/me", tag = "me", responses((status = 200, description = "the caller: role, subject and the part of the registry they see", body = MeOut)))]
async fn me(Caller(p): Caller) -> Json<Value> {
    let scope = match &p.scope {
        Scope::City => ScopeOut::City,
        Scope::District(code) => ScopeOut::District(code),
        Scope::Street(id) => ScopeOut::Street(*id),
        Scope::Grids(grids) => ScopeOut::Grids(grids),
        Scope::Party(id) => ScopeOut::Party(*id),
        Scope::Department(id) => ScopeOut::Department(*id),
        Scope::System => ScopeOut::System,
    };
    Json(json!(MeOut {
        role: p.role.as_str(),
        subject: p.subject,
        scope,
        account_id: p.account,
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
