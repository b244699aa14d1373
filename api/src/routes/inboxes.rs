//! What lands on a landlord's and a department's desk: a landlord's units and orders, a department's referrals.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use anju_engine::domain::{CaseId, DepartmentId, PartyId};
use anju_engine::model::CaseFilter;
use anju_engine::time;

use crate::http::extract::{Caller, Id, Params};
use crate::http::problem::ApiResult;
use crate::state::AppState;

use super::dto::ReferralOut;
use super::*;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    state: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

/// A rectification order: its case, number, deadline and the latest notice's text.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Order<'a> {
    case: CaseSummary<'a>,
    order_no: i32,
    deadline_at: Option<chrono::DateTime<chrono::Utc>>,
    deadline_local: Option<String>,
    subject: Option<String>,
    body: Option<String>,
}

/// A page of a landlord's orders; `next_before` asks for the next page.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct OrderPage<'a> {
    orders: Vec<Order<'a>>,
    next_before: Option<CaseId>,
}

/// A case referred to the department, with the department's referrals of it.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Referred<'a> {
    case: CaseSummary<'a>,
    referrals: Vec<ReferralOut<'a>>,
}

/// A page of a department's referred cases; `next_before` asks for the next page.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ReferralPage<'a> {
    referrals: Vec<Referred<'a>>,
    next_before: Option<CaseId>,
}

#[utoipa::path(get, path = "/landlords/{id}/units", tag = "inboxes", params(("id" = i64, Path)), responses((status = 200, description = "the landlord's units with their grades and open orders", body = LandlordUnits)))]
pub(super) async fn landlord_units(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let units = app.runtime.party_units(&caller, PartyId(id)).await?;
    let units: Vec<LandlordUnitOut> = units
        .iter()
        .map(|p| {
            let u = &p.unit;
            LandlordUnitOut {
                id: u.id,
                address: &u.address,
                address_code: &u.address_code,
                floor_area: u.floor_area,
                occupants: u.occupants,
                stars: u.stars,
                score: u.score,
                last_inspected_at: u.last_inspected_at,
                open_orders: p.open_orders,
                next_deadline: p.next_deadline,
                public_code: &u.public_code,
            }
        })
        .collect();
    Ok(Json(json!(LandlordUnits {
        party_id: id,
        count: units.len(),
        units
    })))
}

/// A landlord's unit: its grade, open orders and nearest deadline.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LandlordUnitOut<'a> {
    id: anju_engine::domain::UnitId,
    address: &'a str,
    address_code: &'a str,
    floor_area: f64,
    occupants: i64,
    stars: Option<u8>,
    score: Option<f64>,
    last_inspected_at: Option<chrono::DateTime<chrono::Utc>>,
    open_orders: i64,
    next_deadline: Option<chrono::DateTime<chrono::Utc>>,
    /// The placard's code (`/u/{code}`).
    public_code: &'a str,
}

/// A landlord's units.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct LandlordUnits<'a> {
    party_id: i64,
    count: usize,
    units: Vec<LandlordUnitOut<'a>>,
}

impl ListQuery {
    /// The case filter of a page: a state, and the cases before an id (keyset), at most
    /// `limit` (100 by default, up to 1,000).
    fn filter(self) -> CaseFilter {
        CaseFilter {
            state: self.state,
            before: self.before.map(CaseId),
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
            ..CaseFilter::default()
        }
    }
}

/// Where the next page starts: the last case's id, if the page is full.
fn next_before<T>(cases: &[(anju_engine::model::CaseRecord, T)], limit: u32) -> Option<CaseId> {
    (cases.len() as u32 == limit)
        .then(|| cases.last().map(|(c, _)| c.snapshot.id))
        .flatten()
}

#[utoipa::path(get, path = "/landlords/{id}/orders", tag = "inboxes", params(("id" = i64, Path), ListQuery), responses((status = 200, description = "the landlord\'s rectification orders, newest first", body = OrderPage)))]
pub(super) async fn landlord_orders(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Value>> {
    let filter = q.filter();
    let cases = app
        .runtime
        .party_orders(&caller, PartyId(id), &filter)
        .await?;
    let next = next_before(&cases, filter.limit);
    let orders: Vec<Order> = cases
        .iter()
        .filter(|(c, _)| c.snapshot.order_no > 0)
        .map(|(c, latest)| Order {
            case: case_summary(&app, c),
            order_no: c.snapshot.order_no,
            deadline_at: c.snapshot.deadline_at,
            deadline_local: c.snapshot.deadline_at.map(time::local_time),
            subject: latest.as_ref().map(|m| m.subject.clone()),
            body: latest.as_ref().map(|m| m.body.clone()),
        })
        .collect();
    Ok(Json(json!(OrderPage {
        orders,
        next_before: next
    })))
}

#[utoipa::path(get, path = "/departments/{id}/referrals", tag = "inboxes", params(("id" = i64, Path), ListQuery), responses((status = 200, description = "the cases referred to the department, newest first", body = ReferralPage)))]
pub(super) async fn department_referrals(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    Params(q): Params<ListQuery>,
) -> ApiResult<Json<Value>> {
    let filter = q.filter();
    let cases = app
        .runtime
        .department_referrals(&caller, DepartmentId(id), &filter)
        .await?;
    let next = next_before(&cases, filter.limit);
    let referrals: Vec<Referred> = cases
        .iter()
        .map(|(c, mine)| Referred {
            case: case_summary(&app, c),
            referrals: mine.iter().map(ReferralOut::of).collect(),
        })
        .collect();
    Ok(Json(json!(ReferralPage {
        referrals,
        next_before: next
    })))
}
