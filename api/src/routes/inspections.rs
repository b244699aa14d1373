//! Inspections over HTTP: the body of an inspection, its answer.

use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use anju_engine::domain::UnitId;
use anju_engine::runtime::{Finding, InspectionInput, InspectionOutcome};
use anju_engine::spatial::crs::Crs;

use crate::http::extract::{Body, Caller, IdemHeader};
use crate::http::problem::ApiResult;
use crate::state::AppState;

use super::dto::InspectionOut;
use super::*;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PointBody {
    pub(super) lon: f64,
    pub(super) lat: f64,
    /// `wgs84` (GPS; the default) or `gcj02` (maps published in China).
    #[serde(default)]
    #[schema(value_type = String)]
    pub(super) crs: Crs,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FindingBody {
    category: String,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    evidence: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct InspectionBody {
    unit_id: i64,
    /// The phone's position; `null` when it gave none (the inspection is recorded at
    /// the unit's point, flagged as not located). The field itself is required.
    #[serde(deserialize_with = "nullable")]
    point: Option<PointBody>,
    /// When the visit was observed on site (RFC 3339), for a form sent later than it
    /// was filled in: not after now, at most 72 hours before.
    #[serde(default)]
    observed_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    note: Option<String>,
    /// A grading checklist: every item of the rubric, passed (true) or not.
    #[serde(default)]
    checklist: Option<anju_engine::grading::Checklist>,
    /// Answers to the checklist of a running campaign that covers the unit.
    #[serde(default)]
    campaign_checks: Option<std::collections::BTreeMap<String, bool>>,
    #[serde(default)]
    findings: Vec<FindingBody>,
    /// `inspected` (the default), or an attempt: `no_one_home`, `entry_refused`.
    #[serde(default)]
    #[schema(value_type = String)]
    outcome: anju_engine::planning::VisitOutcome,
}

/// A field that must be present but may be `null`.
fn nullable<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d)
}

pub(crate) fn inspection_json(o: &InspectionOutcome) -> Value {
    json!(InspectionOut::of(o))
}

#[utoipa::path(post, path = "/inspections", tag = "inspections", request_body = InspectionBody, responses((status = 201, description = "the inspection recorded, with the cases it opened and the grade", body = InspectionOut)))]
pub(super) async fn record_inspection(
    State(app): State<AppState>,
    Caller(caller): Caller,
    idem: IdemHeader,
    body: Body<InspectionBody>,
) -> ApiResult<Response> {
    let b = body.value;
    let key = idem.for_request(&caller, &body.digest);
    let point = match &b.point {
        Some(p) => Some(p.crs.to_wgs84(p.lon, p.lat, "point")?),
        None => None,
    };
    let input = InspectionInput {
        unit_id: UnitId(b.unit_id),
        point,
        observed_at: b.observed_at,
        crs: b.point.as_ref().map(|p| p.crs).unwrap_or_default(),
        checklist: b.checklist,
        campaign_checks: b.campaign_checks,
        note: b.note,
        findings: b
            .findings
            .into_iter()
            .map(|f| Finding {
                category: f.category,
                severity: f.severity,
                note: f.note,
                evidence: f.evidence,
            })
            .collect(),
        outcome: b.outcome,
    };
    let result = app
        .runtime
        .record_inspection(&caller, input, key.as_ref(), inspection_json)
        .await?;
    Ok(created(result, inspection_json))
}
