//! The HTTP API of escalation rules (publish, dry run, what rules did on a case), the referral routing table, and landlords' responsibility: party records, the blacklist and its appeals, agreements and insurance.

use anju_engine::text::Day;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use anju_engine::domain::{CaseId, PartyId, UnitId};
use anju_engine::responsibility::Decision;
use anju_engine::rules::{RuleSpec, Trigger};

use crate::http::extract::{Body, Caller, Id, Params};
use crate::http::problem::ApiResult;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rules/versions", post(publish_rule))
        .route("/rules/dry-run", post(dry_run))
        .route("/cases/{id}/rule-jobs", get(case_rule_jobs))
        .route("/routing", get(routing))
        .route("/parties", get(parties).post(register_party))
        .route("/parties/{id}", get(party))
        .route("/blacklist", get(blacklist).post(propose))
        .route("/blacklist/{id}/decision", post(decide))
        .route("/blacklist/{id}/appeal", post(appeal))
        .route("/blacklist/{id}/appeal-decision", post(decide_appeal))
        .route("/blacklist/{id}/lift", post(lift))
        .route("/units/{id}/responsibility", get(unit_responsibility))
        .route("/units/{id}/agreements", post(add_agreement))
        .route("/units/{id}/policies", post(add_policy))
}

/// A rule as a supervisor writes it: its manifest entry and its script.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftRule {
    name: String,
    version: u32,
    on: Vec<Trigger>,
    zh: String,
    en: String,
    source: String,
}

impl DraftRule {
    fn split(self) -> (RuleSpec, String) {
        (
            RuleSpec {
                file: format!("{}.rhai", self.name),
                name: self.name,
                version: self.version,
                on: self.on,
                zh: self.zh,
                en: self.en,
            },
            self.source,
        )
    }
}

/// Publishes a rule version (city supervisors); in force at once.
async fn publish_rule(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body { value: draft, .. }: Body<DraftRule>,
) -> ApiResult<Response> {
    let (spec, source) = draft.split();
    let v = app.runtime.publish_rule(&caller, spec, source).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": v.spec.name,
            "version": v.spec.version,
            "on": v.spec.on,
            "script_sha256": v.sha256,
            "published_at": v.published_at,
            "published_by": v.published_by,
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRunBody {
    rule: DraftRule,
    #[serde(default)]
    case_id: Option<i64>,
    #[serde(default)]
    event: Option<Trigger>,
    #[serde(default)]
    days: Option<u32>,
}

/// Evaluates a draft rule against one case or backtests it; changes nothing.
async fn dry_run(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body { value: body, .. }: Body<DryRunBody>,
) -> ApiResult<Json<Value>> {
    let (spec, source) = body.rule.split();
    let run = app
        .runtime
        .dry_run_rule(
            &caller,
            spec,
            source,
            body.case_id.map(CaseId),
            body.event,
            body.days,
        )
        .await?;
    Ok(Json(json!(run)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingQuery {
    #[serde(default)]
    district: Option<String>,
}

/// The routing table (转办路由): where a referral of each hazard category goes in each
/// district, or in one (`?district=`). It is the city's directory, not case data:
/// every supervisor and inspector may read all of it.
async fn routing(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<RoutingQuery>,
) -> ApiResult<Json<Value>> {
    let routing = app.runtime.routing_for(&caller)?;
    let mut districts = routing.districts();
    if let Some(d) = q.district {
        if !districts.contains(&d) {
            return Err(anju_engine::Error::invalid(
                "district",
                format!("no department serves district `{d}`"),
            )
            .into());
        }
        districts = vec![d];
    }
    let table = routing.table(app.runtime.taxonomy(), &districts);
    Ok(Json(json!({ "count": table.len(), "routes": table })))
}

/// What the rules did on a case: each event they ran on and each action's result.
async fn case_rule_jobs(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let jobs = app.runtime.case_rule_jobs(&caller, CaseId(id)).await?;
    Ok(Json(json!({ "case_id": id, "jobs": jobs })))
}

async fn party(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        app.runtime.party_view(&caller, PartyId(id)).await?
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyBody {
    kind: String,
    name: String,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// Registers a landlord, agent or sub-landlord.
async fn register_party(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body { value: body, .. }: Body<PartyBody>,
) -> ApiResult<Response> {
    let party = app
        .runtime
        .register_party(
            &caller,
            &body.kind,
            &body.name,
            body.phone.as_deref(),
            body.email.as_deref(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(party))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartiesQuery {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    after: Option<i64>,
    #[serde(default)]
    limit: Option<u32>,
}

/// The register of parties with units in the caller's jurisdiction.
async fn parties(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<PartiesQuery>,
) -> ApiResult<Json<Value>> {
    let list = app
        .runtime
        .parties(
            &caller,
            q.kind.as_deref(),
            PartyId(q.after.unwrap_or(0)),
            q.limit.unwrap_or(100),
        )
        .await?;
    let next = (list.len() as u32 == q.limit.unwrap_or(100).clamp(1, 1000))
        .then(|| list.last().map(|p| p.id))
        .flatten();
    Ok(Json(
        json!({ "count": list.len(), "parties": list, "next_after": next }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    #[serde(default)]
    status: Option<String>,
}

async fn blacklist(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<StatusQuery>,
) -> ApiResult<Json<Value>> {
    let entries = app.runtime.blacklist(&caller, q.status.as_deref()).await?;
    Ok(Json(json!({ "count": entries.len(), "entries": entries })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProposeBody {
    party_id: i64,
    reason: String,
}

async fn propose(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body { value: body, .. }: Body<ProposeBody>,
) -> ApiResult<Response> {
    let entry = app
        .runtime
        .propose_blacklist(&caller, PartyId(body.party_id), &body.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(entry))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    approve: bool,
    #[serde(default)]
    note: String,
    /// How long an approved entry stays in force (default 12 months).
    #[serde(default)]
    months: Option<u32>,
    /// Name the party on the public list (通报曝光).
    #[serde(default)]
    publish: bool,
}

async fn decide(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<DecisionBody>,
) -> ApiResult<Json<Value>> {
    let decision = if body.approve {
        Decision::Approve {
            note: body.note,
            months: body.months.unwrap_or(12),
            publish: body.publish,
        }
    } else {
        Decision::Reject { note: body.note }
    };
    Ok(Json(json!(
        app.runtime.decide_blacklist(&caller, id, decision).await?
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppealBody {
    appeal: String,
}

async fn appeal(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<AppealBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        app.runtime
            .appeal_blacklist(&caller, id, &body.appeal)
            .await?
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppealDecisionBody {
    upheld: bool,
    note: String,
}

async fn decide_appeal(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<AppealDecisionBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        app.runtime
            .decide_appeal(&caller, id, body.upheld, &body.note)
            .await?
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    note: String,
}

async fn lift(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<NoteBody>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        app.runtime.lift_blacklist(&caller, id, &body.note).await?
    )))
}

async fn unit_responsibility(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        app.runtime.unit_responsibility(&caller, UnitId(id)).await?
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgreementBody {
    signer: String,
    signed_on: Day,
    expires_on: Day,
    #[serde(default)]
    document: Option<String>,
}

async fn add_agreement(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<AgreementBody>,
) -> ApiResult<Response> {
    let a = app
        .runtime
        .record_agreement(
            &caller,
            UnitId(id),
            &body.signer,
            body.signed_on.0,
            body.expires_on.0,
            body.document,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(a))).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    insurer: String,
    policy_no: String,
    coverage_yuan: f64,
    starts_on: Day,
    ends_on: Day,
}

async fn add_policy(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<PolicyBody>,
) -> ApiResult<Response> {
    let p = app
        .runtime
        .record_policy(
            &caller,
            UnitId(id),
            &body.insurer,
            &body.policy_no,
            body.coverage_yuan,
            body.starts_on.0,
            body.ends_on.0,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(p))).into_response())
}
