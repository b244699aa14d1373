//! Landlords' own declarations over HTTP: a unit's occupancy and a self-inspection against the grading checklist (by the unit's landlord), and the unit's declarations (for the landlord and the staff who see the unit). Never a grade.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use anju_engine::domain::{PartyId, UnitId};
use anju_engine::model::Declaration;
use anju_engine::runtime::declarations::DeclarationInput;

use crate::http::extract::{Body, Caller, Id};
use crate::http::problem::ApiResult;
use crate::state::AppState;

/// A declaration as the landlord makes it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub(super) enum DeclarationBody {
    /// How the unit is let: rooms and how many live there (no tenant's personal data).
    Occupancy {
        rooms: i64,
        occupants: i64,
        note: Option<String>,
    },
    /// The landlord's own check against the grading checklist: item code → passed.
    SelfInspection {
        checklist: BTreeMap<String, bool>,
        note: Option<String>,
    },
}

/// A declaration as recorded: never a grade.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeclarationOut<'a> {
    id: i64,
    unit_id: UnitId,
    party_id: PartyId,
    /// `occupancy` or `self_inspection`.
    kind: &'a str,
    rooms: Option<i64>,
    occupants: Option<i64>,
    checklist: Option<&'a BTreeMap<String, bool>>,
    note: Option<&'a str>,
    at: DateTime<Utc>,
    /// Always false: a landlord's own declaration is not an official grade.
    official: bool,
}

impl<'a> DeclarationOut<'a> {
    pub(super) fn of(d: &'a Declaration) -> DeclarationOut<'a> {
        DeclarationOut {
            id: d.id,
            unit_id: d.unit_id,
            party_id: d.party_id,
            kind: &d.kind,
            rooms: d.rooms,
            occupants: d.occupants,
            checklist: d.checklist.as_ref(),
            note: d.note.as_deref(),
            at: d.at,
            official: false,
        }
    }
}

/// A unit's declarations, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct DeclarationList<'a> {
    declarations: Vec<DeclarationOut<'a>>,
}

#[utoipa::path(post, path = "/units/{id}/declarations", tag = "units", params(("id" = i64, Path)), request_body = DeclarationBody, responses((status = 201, description = "the declaration, recorded as the landlord's own (never a grade)", body = DeclarationOut)))]
pub(super) async fn declare(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
    body: Body<DeclarationBody>,
) -> ApiResult<Response> {
    let input = match body.value {
        DeclarationBody::Occupancy {
            rooms,
            occupants,
            note,
        } => DeclarationInput::Occupancy {
            rooms,
            occupants,
            note,
        },
        DeclarationBody::SelfInspection { checklist, note } => {
            DeclarationInput::SelfInspection { checklist, note }
        }
    };
    let d = app.runtime.declare(&caller, UnitId(id), input).await?;
    Ok((StatusCode::CREATED, Json(json!(DeclarationOut::of(&d)))).into_response())
}

#[utoipa::path(get, path = "/units/{id}/declarations", tag = "units", params(("id" = i64, Path)), responses((status = 200, description = "the unit's declarations, newest first", body = DeclarationList)))]
pub(super) async fn declarations(
    State(app): State<AppState>,
    Caller(caller): Caller,
    Id(id): Id,
) -> ApiResult<Json<Value>> {
    let list = app.runtime.declarations(&caller, UnitId(id)).await?;
    Ok(Json(json!(DeclarationList {
        declarations: list.iter().map(DeclarationOut::of).collect()
    })))
}
