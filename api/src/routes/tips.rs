//! Tips for staff over HTTP: the tips an inspector or supervisor may see (with the reporter's contact, which only they see), one tip, and resolving it after the visit (confirmed as the case the visit opened, or dismissed, with the note the reporter reads).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use anju_engine::domain::{CaseId, GridId, StreetId, UnitId};
use anju_engine::model::{TipFilter, TipRecord};

use crate::http::extract::{Body, Caller, Id, Params};
use crate::http::problem::ApiResult;
use crate::state::AppState;

/// A tip as staff see it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TipOut<'a> {
    id: i64,
    /// `open311` or `placard`.
    source: &'a str,
    integration_id: Option<i64>,
    category: &'a str,
    description: &'a str,
    lon: Option<f64>,
    lat: Option<f64>,
    address: Option<&'a str>,
    /// `address_code`, `nearest_building` or `grid`.
    placed_by: &'a str,
    unit_id: Option<UnitId>,
    grid_id: Option<GridId>,
    street_id: Option<StreetId>,
    district_code: &'a str,
    reporter_name: Option<&'a str>,
    reporter_email: Option<&'a str>,
    reporter_phone: Option<&'a str>,
    /// `open`, `confirmed` or `dismissed`.
    status: &'a str,
    /// The Open311 status the reporter reads: `open` or `closed`.
    open311_status: &'static str,
    case_id: Option<CaseId>,
    public_note: Option<&'a str>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<'a> TipOut<'a> {
    fn of(app: &AppState, t: &'a TipRecord) -> TipOut<'a> {
        TipOut {
            id: t.id,
            source: &t.source,
            integration_id: t.integration_id,
            category: &t.category,
            description: &t.description,
            lon: t.lon,
            lat: t.lat,
            address: t.address.as_deref(),
            placed_by: &t.placed_by,
            unit_id: t.unit_id,
            grid_id: t.grid_id,
            street_id: t.street_id,
            district_code: &t.district_code,
            reporter_name: t.reporter_name.as_deref(),
            reporter_email: t.reporter_email.as_deref(),
            reporter_phone: t.reporter_phone.as_deref(),
            status: &t.status,
            open311_status: app.runtime.tip_state(t).0,
            case_id: t.case_id,
            public_note: t.public_note.as_deref(),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// The tips the caller may see, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TipList<'a> {
    tips: Vec<TipOut<'a>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct TipQuery {
    /// At most this many (100 by default, up to 1,000).
    limit: Option<u32>,
}

/// Resolving a tip after the visit.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResolveBody {
    /// The case the visit opened for it (of the tip's unit, or of its grid); leave it
    /// out to dismiss the tip (nothing found).
    case_id: Option<i64>,
    /// What the reporter reads (Open311 `status_notes`).
    note: String,
}

#[utoipa::path(get, path = "/tips", tag = "tips", params(TipQuery), responses((status = 200, description = "the tips of the caller's grids or area, newest first", body = TipList)))]
pub(super) async fn tips(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Params(q): Params<TipQuery>,
) -> ApiResult<Json<Value>> {
    let filter = TipFilter {
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        ..TipFilter::default()
    };
    let tips = app.runtime.tips_for_staff(&caller, &filter).await?;
    Ok(Json(json!(TipList {
        tips: tips.iter().map(|t| TipOut::of(&app, t)).collect()
    })))
}

#[utoipa::path(get, path = "/tips/{id}", tag = "tips", params(("id" = i64, Path)), responses((status = 200, description = "the tip", body = TipOut)))]
pub(super) async fn tip(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let t = app.runtime.tip_for_staff(&caller, id).await?;
    Ok(Json(json!(TipOut::of(&app, &t))))
}

#[utoipa::path(post, path = "/tips/{id}/resolve", tag = "tips", params(("id" = i64, Path)), request_body = ResolveBody, responses((status = 200, description = "the tip, confirmed or dismissed", body = TipOut)))]
pub(super) async fn resolve(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<ResolveBody>,
) -> ApiResult<Json<Value>> {
    let b = body.value;
    let t = app
        .runtime
        .resolve_tip(&caller, id, b.case_id.map(CaseId), &b.note)
        .await?;
    Ok(Json(json!(TipOut::of(&app, &t))))
}
