//! Recording an inspection from the inspector's phone: one form with the phone's position (from the browser; the page asks for it), how the visit ended, the findings by hazard category with a note, and an Idempotency-Key made when the form was shown, so that a form sent twice records one inspection.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use sha2::{Digest, Sha256};

use anju_engine::domain::UnitId;
use anju_engine::model::{IdempotencyKey, Idempotent};
use anju_engine::planning::VisitOutcome;
use anju_engine::runtime::{Finding, InspectionInput};
use anju_engine::spatial::crs::Crs;

use super::{Visitor, error_page, page};
use crate::state::AppState;

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
    let mut severities: Vec<_> = app.runtime.taxonomy().severities.iter().collect();
    severities.sort_by_key(|(_, s)| s.rank);
    let rubric = app.runtime.rubric();
    page(
        StatusCode::OK,
        &format!("巡查记录 / Record an inspection: {}", unit.address),
        Some(&visitor),
        html! {
            form #inspection method="post" action={ "/units/" (id.0) "/inspect" } enctype="multipart/form-data" data-offline {
                input type="hidden" name="csrf" value=(visitor.csrf());
                input type="hidden" name="idempotency_key" value=(key[..32]);
                input type="hidden" id="lon" name="lon";
                input type="hidden" id="lat" name="lat";
                input type="hidden" name="observed_at";
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
                        div class="finding" {
                            label { input type="checkbox" name="finding" value=(c.code); " " (c.zh) " / " (c.en) }
                            select name={ "severity." (c.code) } aria-label="严重程度 / Severity" {
                                @for (code, sev) in severities.iter().rev() {
                                    option value=(code) selected[**code == c.severity] { (sev.zh) " / " (sev.en) }
                                }
                            }
                        }
                    }
                }
                label { "现场照片 / Photos"
                    input type="file" name="photos" multiple accept="image/jpeg,image/png,image/heic,image/heif,.heic,.heif" capture="environment";
                }
                details {
                    summary { "星级评定检查表 / Grading checklist" }
                    label { input type="checkbox" name="grade" value="on"; " 本次评定星级 / Grade the unit on this visit" }
                    @for d in &rubric.dimensions {
                        fieldset {
                            legend { (d.zh) " / " (d.en) }
                            @for item in &d.items {
                                label { input type="checkbox" name={ "check." (item.code) } value="on"; " " (item.zh) " / " (item.en) }
                            }
                        }
                    }
                }
                label { "说明 / Note" textarea name="note" maxlength="2000" {} }
                button type="submit" { "提交 / Submit" }
            }
        },
    )
}

/// Records the inspection; on to the first case it opened, or back to the unit.
pub(super) async fn submit(
    State(app): State<AppState>,
    visitor: Visitor,
    Path(raw): Path<String>,
    crate::http::extract::FormData(multipart): crate::http::extract::FormData,
) -> Response {
    let (form, files) = match visitor.posted_multipart(multipart).await {
        Ok(posted) => posted,
        Err(refused) => return *refused,
    };
    let Some(id) = raw.parse::<i64>().ok().map(UnitId) else {
        return error_page(anju_engine::Error::not_found("unit", &raw).into());
    };
    let position = form
        .get("lon")
        .zip(form.get("lat"))
        .and_then(|(lon, lat)| Some((lon.parse::<f64>().ok()?, lat.parse::<f64>().ok()?)));
    // Without a position (the phone gave none, or the page was not allowed to ask),
    // the inspection is recorded at the unit's point, flagged as not located.
    let point = match position.map(|(lon, lat)| Crs::Wgs84.to_wgs84(lon, lat, "point")) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => return error_page(anju_engine::Error::from(e).into()),
        None => None,
    };
    let observed_at = match form.get("observed_at") {
        Some(at) => match chrono::DateTime::parse_from_rfc3339(at) {
            Ok(t) => Some(t.to_utc()),
            Err(_) => {
                return error_page(
                    anju_engine::Error::invalid(
                        "observed_at",
                        "a time such as 2026-03-02T09:30:00Z",
                    )
                    .into(),
                );
            }
        },
        None => None,
    };
    let outcome = match form.get("outcome") {
        Some("no_one_home") => VisitOutcome::NoOneHome,
        Some("entry_refused") => VisitOutcome::EntryRefused,
        _ => VisitOutcome::Inspected,
    };
    let note = form.get("note").map(str::to_string);
    // The photos' contents, not their new ids, go into the form's key: a form sent
    // again uploads them again, and must still be the same request.
    let contents: Vec<String> = files
        .iter()
        .map(|f| hex::encode(Sha256::digest(&f.bytes)))
        .collect();
    let uploads = match visitor.upload(&app, files).await {
        Ok(ids) => ids,
        Err(refused) => return *refused,
    };
    let photos: Vec<String> = uploads.iter().map(|(_, id)| id.clone()).collect();
    let findings = form
        .fields()
        .iter()
        .filter(|(k, _)| k == "finding")
        .map(|(_, category)| Finding {
            category: category.clone(),
            severity: form
                .get(&format!("severity.{category}"))
                .map(str::to_string),
            note: note.clone(),
            evidence: photos.clone(),
        })
        .collect();
    let checklist = form.get("grade").map(|_| {
        app.runtime
            .rubric()
            .dimensions
            .iter()
            .flat_map(|d| &d.items)
            .map(|item| {
                (
                    item.code.clone(),
                    form.get(&format!("check.{}", item.code)).is_some(),
                )
            })
            .collect()
    });
    let input = InspectionInput {
        unit_id: id,
        point,
        observed_at,
        crs: Crs::Wgs84,
        checklist,
        campaign_checks: None,
        note,
        findings,
        outcome,
    };
    // The form's key: sent twice (a double tap, a retry), it records one inspection.
    let mut hashed: Vec<&(String, String)> =
        form.fields().iter().filter(|(k, _)| k != "csrf").collect();
    hashed.sort();
    let hashed = (hashed, contents);
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
        Ok(Idempotent::Replayed(answer)) => {
            // Answered from the form's first sending: this sending's files are not
            // referenced by anything, and go.
            visitor.discard(&app, &uploads).await;
            match answer["cases"][0]["id"].as_i64() {
                Some(case) => Redirect::to(&format!("/cases/{case}")).into_response(),
                None => Redirect::to(&format!("/units/{}", id.0)).into_response(),
            }
        }
        Err(e) => {
            visitor.discard(&app, &uploads).await;
            error_page(e.into())
        }
    }
}
