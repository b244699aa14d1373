//! The directories and the rule book: departments, inspectors, supervisors, the workflow and taxonomy, the rules in force.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use anju_engine::domain::{DepartmentId, GridId, InspectorId, StreetId, SupervisorId};
use anju_engine::model::{InspectorListing, SupervisorRecord};
use anju_engine::routing::DepartmentInfo;

use crate::http::extract::Caller;
use crate::http::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// The escalation rules in force, with their versions and script hashes, and how many
/// evaluations ran and failed since the service started (supervisors).
#[utoipa::path(get, path = "/rules", tag = "directory", responses((status = 200, description = "the rules in force and their counters", body = RulesOut)))]
pub(super) async fn rules(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let set = app.runtime.rules_for(&caller)?;
    let (evaluations, failures) = set.counts();
    let specs = set.specs();
    let rules: Vec<RuleOut> = specs
        .iter()
        .map(|r| RuleOut {
            name: &r.name,
            version: r.version,
            on: &r.on,
            zh: &r.zh,
            en: &r.en,
            script_sha256: set.script_hash(&r.name),
        })
        .collect();
    Ok(Json(json!(RulesOut {
        rules,
        evaluations,
        failures,
    })))
}

/// A rule in force.
#[derive(Serialize, utoipa::ToSchema)]
struct RuleOut<'a> {
    name: &'a str,
    version: u32,
    on: &'a [anju_engine::rules::Trigger],
    zh: &'a str,
    en: &'a str,
    script_sha256: Option<&'a str>,
}

/// The rules in force, and the evaluations run and failed since the service started.
#[derive(Serialize, utoipa::ToSchema)]
struct RulesOut<'a> {
    rules: Vec<RuleOut<'a>>,
    evaluations: u64,
    failures: u64,
}

/// The newest hazard-case workflow and the hazard taxonomy, as loaded.
#[derive(Serialize, utoipa::ToSchema)]
struct WorkflowOut<'a> {
    id: i64,
    definition: &'a anju_engine::workflow::Definition,
    taxonomy: &'a anju_engine::taxonomy::Taxonomy,
}

/// The departments the caller may work with: those of the caller's districts and the
/// city-wide ones.
#[utoipa::path(get, path = "/departments", tag = "directory", responses((status = 200, description = "the departments of the caller's districts and the city-wide ones", body = DepartmentList)))]
pub(super) async fn departments(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.department_directory(&caller).await?;
    let list: Vec<DepartmentOut> = list.iter().map(DepartmentOut::of).collect();
    Ok(Json(json!(DepartmentList { departments: list })))
}

/// The departments the caller may work with.
#[derive(Serialize, utoipa::ToSchema)]
struct DepartmentList<'a> {
    departments: Vec<DepartmentOut<'a>>,
}

/// The inspectors the caller may see.
#[derive(Serialize, utoipa::ToSchema)]
struct InspectorList<'a> {
    inspectors: Vec<InspectorOut<'a>>,
}

/// The supervisors over the caller's area.
#[derive(Serialize, utoipa::ToSchema)]
struct SupervisorList<'a> {
    supervisors: Vec<SupervisorOut<'a>>,
}

/// The inspectors of the caller's area (supervisors), or sharing a grid (inspectors).
#[utoipa::path(get, path = "/inspectors", tag = "directory", responses((status = 200, description = "the inspectors of the caller's area, or sharing a grid", body = InspectorList)))]
pub(super) async fn inspectors(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.inspector_directory(&caller).await?;
    let list: Vec<InspectorOut> = list.iter().map(InspectorOut::of).collect();
    Ok(Json(json!(InspectorList { inspectors: list })))
}

/// The supervisors over the caller's area.
#[utoipa::path(get, path = "/supervisors", tag = "directory", responses((status = 200, description = "the supervisors over the caller's area", body = SupervisorList)))]
pub(super) async fn supervisors(
    State(app): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.supervisor_directory(&caller).await?;
    let list: Vec<SupervisorOut> = list.iter().map(SupervisorOut::of).collect();
    Ok(Json(json!(SupervisorList { supervisors: list })))
}

#[utoipa::path(get, path = "/workflows", tag = "directory", responses((status = 200, description = "the newest hazard-case workflow definition and the taxonomy, as loaded", body = WorkflowOut)))]
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
        Json(json!(WorkflowOut {
            id,
            definition: &def,
            taxonomy: app.runtime.taxonomy()
        })),
    )
        .into_response())
}

/// A department of the directory.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DepartmentOut<'a> {
    id: DepartmentId,
    name: &'a str,
    kind: &'a str,
    district_code: Option<&'a str>,
}

impl<'a> DepartmentOut<'a> {
    pub(super) fn of(d: &'a DepartmentInfo) -> DepartmentOut<'a> {
        DepartmentOut {
            id: d.id,
            name: &d.name,
            kind: &d.kind,
            district_code: d.district_code.as_deref(),
        }
    }
}

/// An inspector of the directory, with the grids they cover.
#[derive(Serialize, utoipa::ToSchema)]
struct InspectorOut<'a> {
    id: InspectorId,
    name: &'a str,
    shift: &'a str,
    grids: &'a [GridId],
}

impl<'a> InspectorOut<'a> {
    fn of(i: &'a InspectorListing) -> InspectorOut<'a> {
        InspectorOut {
            id: i.id,
            name: &i.name,
            shift: &i.shift,
            grids: &i.grids,
        }
    }
}

/// A supervisor of the directory: level and area.
#[derive(Serialize, utoipa::ToSchema)]
struct SupervisorOut<'a> {
    id: SupervisorId,
    name: &'a str,
    level: &'a str,
    district_code: Option<&'a str>,
    street_id: Option<StreetId>,
}

impl<'a> SupervisorOut<'a> {
    fn of(s: &'a SupervisorRecord) -> SupervisorOut<'a> {
        SupervisorOut {
            id: s.id,
            name: &s.name,
            level: &s.level,
            district_code: s.district_code.as_deref(),
            street_id: s.street_id,
        }
    }
}
