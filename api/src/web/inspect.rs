//! Recording an inspection from the inspector's phone: one form with the phone's position (from the browser; the page asks for it), how the visit ended, the findings by hazard category with a note, and an Idempotency-Key made when the form was shown, so that a form sent twice records one inspection.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{PreEscaped, html};
use sha2::{Digest, Sha256};

use anju_engine::domain::UnitId;
use anju_engine::model::{IdempotencyKey, Idempotent};
use anju_engine::planning::VisitOutcome;
use anju_engine::runtime::{Finding, InspectionInput};
use anju_engine::spatial::crs::Crs;

use super::{Visitor, error_page, page};
use crate::state::AppState;

/// Fills the position fields from the phone, and says when there is none.
const POSITION_SCRIPT: &str = r#"(function(){var s=document.getElementById('pos');
if(!navigator.geolocation){s.textContent='此设备无法定位 / This device gives no position';return;}
navigator.geolocation.getCurrentPosition(function(p){document.getElementById('lon').value=p.coords.longitude;document.getElementById('lat').value=p.coords.latitude;
s.textContent='已定位 / Position: '+p.coords.latitude.toFixed(6)+', '+p.coords.longitude.toFixed(6)+' (±'+Math.round(p.coords.accuracy)+' m)';},
function(e){s.textContent='无法定位 / No position: '+e.message;},{enableHighAccuracy:true,timeout:15000});})();"#;

/// The inspection form of a unit the visitor may see.
pub(super) async fn form_page(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
) -> Response {
    let Some(id) = raw.parse::<i64>().ok().map(UnitId) else {
        return error_page(anju_engine::Error::not_found("unit", &raw).into());
    };
    let unit = match app.runtime.unit(&visitor.principal, id).await {
        Ok(u) => u,
        Err(e) => return error_page(e.into()),
    };
    let key = anju_engine::auth::new_token().digest;
    let categories = &app.runtime.taxonomy().categories;
    page(
        StatusCode::OK,
        &format!("巡查记录 / Record an inspection: {}", unit.address),
        Some(&visitor),
        html! {
            form method="post" action={ "/units/" (id.0) "/inspect" } {
                input type="hidden" name="csrf" value=(visitor.csrf());
                input type="hidden" name="idempotency_key" value=(key[..32]);
                input type="hidden" id="lon" name="lon";
                input type="hidden" id="lat" name="lat";
                p #pos { "正在定位… / Finding your position…" }
                label { "结果 / Outcome"
                    select name="outcome" {
                        option value="inspected" { "已检查 / inspected" }
                        option value="no_one_home" { "无人在家 / no one home" }
                        option value="entry_refused" { "拒绝入户 / entry refused" }
                    }
                }
                fieldset {
                    legend { "发现的隐患 / Hazards found" }
                    @for c in categories {
                        label { input type="checkbox" name="finding" value=(c.code); " " (c.zh) " / " (c.en) }
                    }
                }
                label { "说明 / Note" textarea name="note" maxlength="2000" {} }
                button type="submit" { "提交 / Submit" }
            }
            script { (PreEscaped(POSITION_SCRIPT)) }
        },
    )
}

/// Records the inspection; on to the first case it opened, or back to the unit.
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
    let position = form
        .get("lon")
        .zip(form.get("lat"))
        .and_then(|(lon, lat)| Some((lon.parse::<f64>().ok()?, lat.parse::<f64>().ok()?)));
    let Some((lon, lat)) = position else {
        return error_page(
            anju_engine::Error::invalid(
                "point",
                "the phone gave no position: allow the page to use it, then send the form again",
            )
            .into(),
        );
    };
    let point = match Crs::Wgs84.to_wgs84(lon, lat, "point") {
        Ok(p) => p,
        Err(e) => return error_page(anju_engine::Error::from(e).into()),
    };
    let outcome = match form.get("outcome") {
        Some("no_one_home") => VisitOutcome::NoOneHome,
        Some("entry_refused") => VisitOutcome::EntryRefused,
        _ => VisitOutcome::Inspected,
    };
    let note = form.get("note").map(str::to_string);
    let findings = form
        .fields()
        .iter()
        .filter(|(k, _)| k == "finding")
        .map(|(_, category)| Finding {
            category: category.clone(),
            severity: None,
            note: note.clone(),
            evidence: Vec::new(),
        })
        .collect();
    let input = InspectionInput {
        unit_id: id,
        point,
        crs: Crs::Wgs84,
        checklist: None,
        campaign_checks: None,
        note,
        findings,
        outcome,
    };
    // The form's key: sent twice (a double tap, a retry), it records one inspection.
    let mut hashed: Vec<&(String, String)> =
        form.fields().iter().filter(|(k, _)| k != "csrf").collect();
    hashed.sort();
    let key = form.get("idempotency_key").map(|k| IdempotencyKey {
        subject: format!("{}:{}", visitor.principal.role, visitor.principal.subject),
        key: k.to_string(),
        request_hash: hex::encode(Sha256::digest(format!("{hashed:?}").as_bytes())),
    });
    match app
        .runtime
        .record_inspection(
            &visitor.principal,
            input,
            key.as_ref(),
            crate::routes::inspection_json,
        )
        .await
    {
        Ok(Idempotent::Created(o)) => match o.cases.first() {
            Some(case) => Redirect::to(&format!("/cases/{}", case.id.0)).into_response(),
            None => Redirect::to(&format!("/units/{}", id.0)).into_response(),
        },
        Ok(Idempotent::Replayed(answer)) => match answer["cases"][0]["id"].as_i64() {
            Some(case) => Redirect::to(&format!("/cases/{case}")).into_response(),
            None => Redirect::to(&format!("/units/{}", id.0)).into_response(),
        },
        Err(e) => error_page(e.into()),
    }
}
