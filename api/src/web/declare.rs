//! A landlord's own declarations on the unit page (自主申报, 自查自改): the occupancy form and the self-inspection checklist for the unit's landlord, the declarations shown to everyone who sees the unit as the landlord's own (never a grade), and the placard's link that leads a signed-in landlord to them.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use anju_engine::auth::Scope;
use anju_engine::domain::UnitId;
use anju_engine::model::Declaration;
use anju_engine::runtime::declarations::DeclarationInput;
use anju_engine::time::local_time;

use super::{Visitor, error_page};
use crate::state::AppState;

/// The declarations of a unit, and, for its landlord, the forms to make them.
pub(super) fn section(
    app: &AppState,
    visitor: &Visitor,
    unit: UnitId,
    declarations: &[Declaration],
) -> Markup {
    let rubric = app.runtime.rubric();
    let landlord = matches!(visitor.principal.scope, Scope::Party(_));
    let csrf = visitor.csrf();
    html! {
        h2 #declare { "房东自主申报 / The landlord's own declarations" }
        p { small { "房东自报，非官方评级，不改变星级。 / The landlord's own; not an official grade, and the stars do not change." } }
        @if declarations.is_empty() { p { "暂无。 / None." } }
        ul.declarations {
            @for d in declarations {
                li {
                    (local_time(d.at)) " · "
                    @if d.kind == "occupancy" {
                        "出租情况 / Occupancy: " (d.rooms.unwrap_or(0)) " 间 rooms, " (d.occupants.unwrap_or(0)) " 人 occupants"
                    } @else {
                        @let failed: Vec<&String> = d.checklist.iter().flatten().filter(|(_, ok)| !**ok).map(|(k, _)| k).collect();
                        "自查 / Self-inspection: "
                        (d.checklist.as_ref().map_or(0, |c| c.len())) " 项 items, "
                        @if failed.is_empty() { "全部合格 / all passed" } @else { "未合格 / not passed: " (failed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                    }
                    @if let Some(n) = &d.note { " · " (n) }
                }
            }
        }
        @if landlord {
            form method="post" action={ "/units/" (unit.0) "/declarations" } #occupancy {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="kind" value="occupancy";
                h3 { "申报出租情况 / Declare the occupancy" }
                label { "房间数 / Rooms " input type="number" name="rooms" min="1" max="500" required; }
                label { "居住人数 / Occupants " input type="number" name="occupants" min="0" max="5000" required; }
                label { "备注 / Note " input type="text" name="note" maxlength="500"; }
                button type="submit" { "申报 / Declare" }
            }
            form method="post" action={ "/units/" (unit.0) "/declarations" } #self-inspection {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="kind" value="self_inspection";
                h3 { "自查自改 / Self-inspection" }
                p { small { "勾选已做到的项目。 / Tick what holds." } }
                @for dim in &rubric.dimensions {
                    fieldset {
                        legend { (dim.zh) " / " (dim.en) }
                        @for item in &dim.items {
                            label { input type="checkbox" name="item" value=(item.code); " " (item.zh) " / " (item.en) }
                        }
                    }
                }
                label { "备注 / Note " input type="text" name="note" maxlength="500"; }
                button type="submit" { "提交自查 / Record the self-inspection" }
            }
        }
    }
}

/// Records a declaration from the unit page: refused without this session's CSRF token.
pub(super) async fn submit(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let form = match visitor.posted(&body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let Some(id) = raw.parse::<i64>().ok().map(UnitId) else {
        return error_page(anju_engine::Error::not_found("unit", &raw).into());
    };
    let note = form.get("note").map(str::to_string);
    let number = |field: &'static str| {
        form.get(field)
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| anju_engine::Error::invalid(field, "a whole number"))
    };
    let input = match form.get("kind") {
        Some("occupancy") => match (number("rooms"), number("occupants")) {
            (Ok(rooms), Ok(occupants)) => DeclarationInput::Occupancy {
                rooms,
                occupants,
                note,
            },
            (Err(e), _) | (_, Err(e)) => return error_page(e.into()),
        },
        Some("self_inspection") => {
            let ticked = form.all("item");
            let checklist = app
                .runtime
                .rubric()
                .dimensions
                .iter()
                .flat_map(|d| d.items.iter())
                .map(|i| (i.code.clone(), ticked.contains(&i.code.as_str())))
                .collect();
            DeclarationInput::SelfInspection { checklist, note }
        }
        _ => {
            return error_page(
                anju_engine::Error::invalid("kind", "occupancy or self_inspection").into(),
            );
        }
    };
    match app.runtime.declare(&visitor.principal, id, input).await {
        Ok(_) => Redirect::to(&format!("/units/{}#declare", id.0)).into_response(),
        Err(e) => error_page(e.into()),
    }
}

/// The placard's link for landlords: once signed in, on to the unit's page.
pub(super) async fn from_placard(
    State(app): State<AppState>,
    _visitor: Visitor,
    Path(code): Path<String>,
) -> Response {
    match app.runtime.placard(&code).await {
        Ok(p) => Redirect::to(&format!("/units/{}#declare", p.unit_id.0)).into_response(),
        Err(e) => error_page(e.into()),
    }
}
