//! The HTTP API of escalation rules (publish, dry run, what rules did on a case), the referral routing table, and landlords' responsibility: party records, the blacklist and its appeals, agreements and insurance.

use anju_engine::text::Day;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use anju_engine::domain::{CaseId, PartyId, UnitId};
use anju_engine::escalation::DryRun;
use anju_engine::model::{Agreement, BlacklistEntry, InsurancePolicy, PartyListing, RuleJob};
use anju_engine::responsibility::{Decision, PartyView, UnitResponsibility};
use anju_engine::routing::Route;
use anju_engine::rules::{RuleSpec, Trigger};

use crate::http::extract::{Body, Caller, Id, Params};
use crate::http::problem::ApiResult;
use crate::state::AppState;

use super::directory::DepartmentOut;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_rule))
        .routes(routes!(dry_run))
        .routes(routes!(case_rule_jobs))
        .routes(routes!(routing))
        .routes(routes!(parties, register_party))
        .routes(routes!(party))
        .routes(routes!(blacklist, propose))
        .routes(routes!(decide))
        .routes(routes!(appeal))
        .routes(routes!(decide_appeal))
        .routes(routes!(lift))
        .routes(routes!(unit_responsibility))
        .routes(routes!(add_agreement))
        .routes(routes!(add_policy))
}

/// A rule as a supervisor writes it: its manifest entry and its script.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DraftRule {
    name: String,
    version: u32,
    #[schema(value_type = Vec<String>)]
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
#[utoipa::path(post, path = "/rules/versions", tag = "responsibility", request_body = DraftRule, responses((status = 201, description = "the rule version published: name, version, triggers, script digest, when and by whom", body = Object)))]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct DryRunBody {
    rule: DraftRule,
    #[serde(default)]
    case_id: Option<i64>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    event: Option<Trigger>,
    #[serde(default)]
    days: Option<u32>,
}

/// Evaluates a draft rule against one case or backtests it; changes nothing.
#[utoipa::path(post, path = "/rules/dry-run", tag = "responsibility", request_body = DryRunBody, responses((status = 200, description = "what the rule would do", body = DryRunOut)))]
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
    Ok(Json(json!(DryRunOut::of(&run))))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RoutingQuery {
    #[serde(default)]
    district: Option<String>,
}

/// The routing table (转办路由): where a referral of each hazard category goes in each
/// district, or in one (`?district=`). It is the city's directory, not case data:
/// every supervisor and inspector may read all of it.
#[utoipa::path(get, path = "/routing", tag = "responsibility", params(RoutingQuery), responses((status = 200, description = "the routing table", body = RouteList)))]
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
    let routes: Vec<RouteOut> = table.iter().map(RouteOut::of).collect();
    Ok(Json(json!(RouteList {
        count: routes.len(),
        routes
    })))
}

/// What the rules did on a case: each event they ran on and each action's result.
#[utoipa::path(get, path = "/cases/{id}/rule-jobs", tag = "responsibility", params(("id" = i64, Path)), responses((status = 200, description = "the rule events of the case and what each rule did", body = RuleJobList)))]
async fn case_rule_jobs(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let jobs = app.runtime.case_rule_jobs(&caller, CaseId(id)).await?;
    let jobs: Vec<RuleJobOut> = jobs.iter().map(RuleJobOut::of).collect();
    Ok(Json(json!(RuleJobList { case_id: id, jobs })))
}

#[utoipa::path(get, path = "/parties/{id}", tag = "responsibility", params(("id" = i64, Path)), responses((status = 200, description = "the party with its units and record", body = PartyViewOut)))]
async fn party(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let view = app.runtime.party_view(&caller, PartyId(id)).await?;
    Ok(Json(json!(PartyViewOut::of(&view))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
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
#[utoipa::path(post, path = "/parties", tag = "responsibility", request_body = PartyBody, responses((status = 201, description = "the party registered", body = PartyOut)))]
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
    Ok((StatusCode::CREATED, Json(json!(PartyOut::of(&party)))).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
#[utoipa::path(get, path = "/parties", tag = "responsibility", params(PartiesQuery), responses((status = 200, description = "the parties with units in the caller's jurisdiction, by id", body = PartyPage)))]
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
    let list: Vec<PartyOut> = list.iter().map(PartyOut::of).collect();
    Ok(Json(json!(PartyPage {
        count: list.len(),
        parties: list,
        next_after: next
    })))
}

/// A page of the party register; `next_after` asks for the next page.
#[derive(Serialize, utoipa::ToSchema)]
struct PartyPage<'a> {
    count: usize,
    parties: Vec<PartyOut<'a>>,
    next_after: Option<PartyId>,
}

/// Blacklist entries.
#[derive(Serialize, utoipa::ToSchema)]
struct EntryList<'a> {
    count: usize,
    entries: Vec<EntryOut<'a>>,
}

/// The routing table: which department takes which category in which district.
#[derive(Serialize, utoipa::ToSchema)]
struct RouteList<'a> {
    count: usize,
    routes: Vec<RouteOut<'a>>,
}

/// What the rules did on a case.
#[derive(Serialize, utoipa::ToSchema)]
struct RuleJobList<'a> {
    case_id: i64,
    jobs: Vec<RuleJobOut<'a>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    #[serde(default)]
    status: Option<String>,
}

#[utoipa::path(get, path = "/blacklist", tag = "responsibility", params(StatusQuery), responses((status = 200, description = "the blacklist entries the caller sees", body = EntryList)))]
async fn blacklist(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<StatusQuery>,
) -> ApiResult<Json<Value>> {
    let entries = app.runtime.blacklist(&caller, q.status.as_deref()).await?;
    let entries: Vec<EntryOut> = entries.iter().map(EntryOut::of).collect();
    Ok(Json(json!(EntryList {
        count: entries.len(),
        entries
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProposeBody {
    party_id: i64,
    reason: String,
}

#[utoipa::path(post, path = "/blacklist", tag = "responsibility", request_body = ProposeBody, responses((status = 201, description = "the proposed entry", body = EntryOut)))]
async fn propose(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Body { value: body, .. }: Body<ProposeBody>,
) -> ApiResult<Response> {
    let entry = app
        .runtime
        .propose_blacklist(&caller, PartyId(body.party_id), &body.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(EntryOut::of(&entry)))).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
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

#[utoipa::path(post, path = "/blacklist/{id}/decision", tag = "responsibility", params(("id" = i64, Path)), request_body = DecisionBody, responses((status = 200, description = "the entry as decided", body = EntryOut)))]
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
    let entry = app.runtime.decide_blacklist(&caller, id, decision).await?;
    Ok(Json(json!(EntryOut::of(&entry))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AppealBody {
    appeal: String,
}

#[utoipa::path(post, path = "/blacklist/{id}/appeal", tag = "responsibility", params(("id" = i64, Path)), request_body = AppealBody, responses((status = 200, description = "the entry with the appeal", body = EntryOut)))]
async fn appeal(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<AppealBody>,
) -> ApiResult<Json<Value>> {
    let entry = app
        .runtime
        .appeal_blacklist(&caller, id, &body.appeal)
        .await?;
    Ok(Json(json!(EntryOut::of(&entry))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AppealDecisionBody {
    upheld: bool,
    note: String,
}

#[utoipa::path(post, path = "/blacklist/{id}/appeal-decision", tag = "responsibility", params(("id" = i64, Path)), request_body = AppealDecisionBody, responses((status = 200, description = "the entry as the appeal was decided", body = EntryOut)))]
async fn decide_appeal(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<AppealDecisionBody>,
) -> ApiResult<Json<Value>> {
    let entry = app
        .runtime
        .decide_appeal(&caller, id, body.upheld, &body.note)
        .await?;
    Ok(Json(json!(EntryOut::of(&entry))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    note: String,
}

#[utoipa::path(post, path = "/blacklist/{id}/lift", tag = "responsibility", params(("id" = i64, Path)), request_body = NoteBody, responses((status = 200, description = "the entry lifted", body = EntryOut)))]
async fn lift(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Body { value: body, .. }: Body<NoteBody>,
) -> ApiResult<Json<Value>> {
    let entry = app.runtime.lift_blacklist(&caller, id, &body.note).await?;
    Ok(Json(json!(EntryOut::of(&entry))))
}

#[utoipa::path(get, path = "/units/{id}/responsibility", tag = "responsibility", params(("id" = i64, Path)), responses((status = 200, description = "the unit's responsibility: party, agreements, insurance", body = ResponsibilityOut)))]
async fn unit_responsibility(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let r = app.runtime.unit_responsibility(&caller, UnitId(id)).await?;
    Ok(Json(json!(ResponsibilityOut::of(&r))))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AgreementBody {
    signer: String,
    #[schema(value_type = String, format = Date)]
    signed_on: Day,
    #[schema(value_type = String, format = Date)]
    expires_on: Day,
    #[serde(default)]
    document: Option<String>,
}

#[utoipa::path(post, path = "/units/{id}/agreements", tag = "responsibility", params(("id" = i64, Path)), request_body = AgreementBody, responses((status = 201, description = "the agreement recorded", body = AgreementOut)))]
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
    Ok((StatusCode::CREATED, Json(json!(AgreementOut::of(&a)))).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    insurer: String,
    policy_no: String,
    coverage_yuan: f64,
    #[schema(value_type = String, format = Date)]
    starts_on: Day,
    #[schema(value_type = String, format = Date)]
    ends_on: Day,
}

#[utoipa::path(post, path = "/units/{id}/policies", tag = "responsibility", params(("id" = i64, Path)), request_body = PolicyBody, responses((status = 201, description = "the policy recorded", body = PolicyOut)))]
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
    Ok((StatusCode::CREATED, Json(json!(PolicyOut::of(&p)))).into_response())
}

/// What a draft rule would have done.
#[derive(Serialize, utoipa::ToSchema)]
struct DryRunOut<'a> {
    rule: &'a str,
    version: u32,
    evaluations: u64,
    failures: u64,
    actions: &'a std::collections::BTreeMap<String, u64>,
    samples: &'a [Value],
}

impl<'a> DryRunOut<'a> {
    fn of(d: &'a DryRun) -> DryRunOut<'a> {
        DryRunOut {
            rule: &d.rule,
            version: d.version,
            evaluations: d.evaluations,
            failures: d.failures,
            actions: &d.actions,
            samples: &d.samples,
        }
    }
}

/// A row of the routing table.
#[derive(Serialize, utoipa::ToSchema)]
struct RouteOut<'a> {
    category: &'a str,
    district_code: &'a str,
    department_kind: &'a str,
    department: Option<DepartmentOut<'a>>,
}

impl<'a> RouteOut<'a> {
    fn of(r: &'a Route) -> RouteOut<'a> {
        RouteOut {
            category: &r.category,
            district_code: &r.district_code,
            department_kind: &r.department_kind,
            department: r.department.as_ref().map(DepartmentOut::of),
        }
    }
}

/// An event the rules ran on, and what they did.
#[derive(Serialize, utoipa::ToSchema)]
struct RuleJobOut<'a> {
    id: i64,
    case_id: CaseId,
    event_seq: Option<i64>,
    trigger: &'a str,
    detail: Option<&'a Value>,
    created_at: DateTime<Utc>,
    done_at: Option<DateTime<Utc>>,
    outcome: Option<&'a Value>,
}

impl<'a> RuleJobOut<'a> {
    fn of(j: &'a RuleJob) -> RuleJobOut<'a> {
        RuleJobOut {
            id: j.id,
            case_id: j.case_id,
            event_seq: j.event_seq,
            trigger: &j.trigger,
            detail: j.detail.as_ref(),
            created_at: j.created_at,
            done_at: j.done_at,
            outcome: j.outcome.as_ref(),
        }
    }
}

/// A registered party and how many units it answers for.
#[derive(Serialize, utoipa::ToSchema)]
struct PartyOut<'a> {
    id: PartyId,
    kind: &'a str,
    name: &'a str,
    phone: Option<&'a str>,
    units: i64,
}

impl<'a> PartyOut<'a> {
    fn of(p: &'a PartyListing) -> PartyOut<'a> {
        PartyOut {
            id: p.id,
            kind: &p.kind,
            name: &p.name,
            phone: p.phone.as_deref(),
            units: p.units,
        }
    }
}

/// A party's record: cases, overdue orders, referrals and results over twelve months,
/// its score and its blacklist entries.
#[derive(Serialize, utoipa::ToSchema)]
struct PartyViewOut<'a> {
    party_id: PartyId,
    kind: &'a str,
    cases_by_severity: &'a std::collections::BTreeMap<String, i64>,
    overdue_12m: i64,
    referrals_12m: i64,
    results_12m: i64,
    blacklisted: bool,
    score: u32,
    blacklist: Vec<EntryOut<'a>>,
}

impl<'a> PartyViewOut<'a> {
    fn of(v: &'a PartyView) -> PartyViewOut<'a> {
        PartyViewOut {
            party_id: v.party_id,
            kind: &v.kind,
            cases_by_severity: &v.cases_by_severity,
            overdue_12m: v.overdue_12m,
            referrals_12m: v.referrals_12m,
            results_12m: v.results_12m,
            blacklisted: v.blacklisted,
            score: v.score,
            blacklist: v.blacklist.iter().map(EntryOut::of).collect(),
        }
    }
}

/// A blacklist entry with its party, decision and appeal.
#[derive(Serialize, utoipa::ToSchema)]
struct EntryOut<'a> {
    id: i64,
    party_id: PartyId,
    party_name: &'a str,
    party_kind: &'a str,
    status: &'a str,
    reason: &'a str,
    source: &'a str,
    case_id: Option<CaseId>,
    district_code: &'a str,
    proposed_at: DateTime<Utc>,
    decided_by: Option<&'a str>,
    decided_at: Option<DateTime<Utc>>,
    decision_note: Option<&'a str>,
    expires_at: Option<DateTime<Utc>>,
    appeal: Option<&'a str>,
    appealed_at: Option<DateTime<Utc>>,
    appeal_decided_by: Option<&'a str>,
    appeal_decided_at: Option<DateTime<Utc>>,
    appeal_note: Option<&'a str>,
    published: bool,
}

impl<'a> EntryOut<'a> {
    fn of(e: &'a BlacklistEntry) -> EntryOut<'a> {
        EntryOut {
            id: e.id,
            party_id: e.party_id,
            party_name: &e.party_name,
            party_kind: &e.party_kind,
            status: &e.status,
            reason: &e.reason,
            source: &e.source,
            case_id: e.case_id,
            district_code: &e.district_code,
            proposed_at: e.proposed_at,
            decided_by: e.decided_by.as_deref(),
            decided_at: e.decided_at,
            decision_note: e.decision_note.as_deref(),
            expires_at: e.expires_at,
            appeal: e.appeal.as_deref(),
            appealed_at: e.appealed_at,
            appeal_decided_by: e.appeal_decided_by.as_deref(),
            appeal_decided_at: e.appeal_decided_at,
            appeal_note: e.appeal_note.as_deref(),
            published: e.published,
        }
    }
}

/// A safety responsibility agreement (安全管理责任书).
#[derive(Serialize, utoipa::ToSchema)]
struct AgreementOut<'a> {
    id: i64,
    unit_id: UnitId,
    party_id: PartyId,
    signer: &'a str,
    signed_on: NaiveDate,
    expires_on: NaiveDate,
    document: Option<&'a str>,
    recorded_by: &'a str,
    recorded_at: DateTime<Utc>,
}

impl<'a> AgreementOut<'a> {
    fn of(a: &'a Agreement) -> AgreementOut<'a> {
        AgreementOut {
            id: a.id,
            unit_id: a.unit_id,
            party_id: a.party_id,
            signer: &a.signer,
            signed_on: a.signed_on,
            expires_on: a.expires_on,
            document: a.document.as_deref(),
            recorded_by: &a.recorded_by,
            recorded_at: a.recorded_at,
        }
    }
}

/// A rental-insurance policy (出租屋综合保险).
#[derive(Serialize, utoipa::ToSchema)]
struct PolicyOut<'a> {
    id: i64,
    unit_id: UnitId,
    insurer: &'a str,
    policy_no: &'a str,
    coverage_yuan: f64,
    starts_on: NaiveDate,
    ends_on: NaiveDate,
    recorded_by: &'a str,
    recorded_at: DateTime<Utc>,
}

impl<'a> PolicyOut<'a> {
    fn of(p: &'a InsurancePolicy) -> PolicyOut<'a> {
        PolicyOut {
            id: p.id,
            unit_id: p.unit_id,
            insurer: &p.insurer,
            policy_no: &p.policy_no,
            coverage_yuan: p.coverage_yuan,
            starts_on: p.starts_on,
            ends_on: p.ends_on,
            recorded_by: &p.recorded_by,
            recorded_at: p.recorded_at,
        }
    }
}

/// A unit's agreements and insurance, and whether each covers today.
#[derive(Serialize, utoipa::ToSchema)]
struct ResponsibilityOut<'a> {
    unit_id: UnitId,
    party_id: Option<PartyId>,
    agreement_valid: bool,
    insured: bool,
    agreements: Vec<AgreementOut<'a>>,
    policies: Vec<PolicyOut<'a>>,
}

impl<'a> ResponsibilityOut<'a> {
    fn of(r: &'a UnitResponsibility) -> ResponsibilityOut<'a> {
        ResponsibilityOut {
            unit_id: r.unit_id,
            party_id: r.party_id,
            agreement_valid: r.agreement_valid,
            insured: r.insured,
            agreements: r.agreements.iter().map(AgreementOut::of).collect(),
            policies: r.policies.iter().map(PolicyOut::of).collect(),
        }
    }
}
