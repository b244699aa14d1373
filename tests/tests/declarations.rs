//! Landlords' own declarations over the real HTTP server, on both backends: a landlord declares the occupancy of their unit and self-inspects it (over the API and from the unit page with its CSRF token); the declarations are recorded as such, shown to the inspector and marked as not official; the unit's stars and grade history do not change; another landlord's unit is one that does not exist, an inspector cannot declare, and bad declarations are refused by field and change nothing.

use serde_json::{Value, json};

use anju_tests::{Backend, backend_tests, spawn_app};

mod page_support;
use page_support::*;

async fn a_landlords_declarations_never_grade_the_unit(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let path = format!("/api/v1/units/{unit}/declarations");
    let stars = |u: &Value| u["stars"].clone();
    let before_unit = app
        .get(&format!("/api/v1/units/{unit}"), &t.landlord)
        .await
        .expect(200);
    let before_grades = app
        .get(&format!("/api/v1/units/{unit}/grades"), &t.inspector)
        .await
        .expect(200);

    // Bad declarations: refused by field, nothing recorded.
    let before = app.fingerprint().await;
    for (body, status, field) in [
        (
            json!({ "kind": "occupancy", "rooms": 0, "occupants": 2 }),
            422,
            Some("rooms"),
        ),
        (
            json!({ "kind": "occupancy", "rooms": 3, "occupants": -1 }),
            422,
            Some("occupants"),
        ),
        (
            json!({ "kind": "self_inspection", "checklist": {} }),
            422,
            Some("checklist"),
        ),
        (
            json!({ "kind": "self_inspection", "checklist": { "no_such": true } }),
            422,
            Some("checklist.no_such"),
        ),
        (
            json!({ "kind": "occupancy", "rooms": 3, "occupants": 2, "tenants": ["张三"] }),
            400,
            None,
        ),
        (json!({ "kind": "grade", "stars": 5 }), 422, Some("kind")),
    ] {
        app.post(&path, &t.landlord, &body)
            .await
            .problem(status, field);
    }
    app.post(
        &path,
        &t.inspector,
        &json!({ "kind": "occupancy", "rooms": 3, "occupants": 2 }),
    )
    .await
    .problem(403, None);
    app.post(
        &format!("/api/v1/units/{}/declarations", app.unit_of(2)),
        &t.landlord,
        &json!({ "kind": "occupancy", "rooms": 3, "occupants": 2 }),
    )
    .await
    .problem(404, None);
    assert_eq!(app.fingerprint().await, before);

    // The occupancy, and a self-inspection with every item passed (as a landlord
    // might wish the grade to be).
    let occupancy = app
        .post(
            &path,
            &t.landlord,
            &json!({ "kind": "occupancy", "rooms": 4, "occupants": 7, "note": "四房" }),
        )
        .await
        .expect(201);
    assert_eq!(
        (occupancy["rooms"].as_i64(), occupancy["occupants"].as_i64()),
        (Some(4), Some(7))
    );
    assert_eq!(occupancy["official"], false);
    let rubric = app
        .get("/api/v1/grading/rubric", &t.landlord)
        .await
        .expect(200);
    let mut all_passed = serde_json::Map::new();
    for d in rubric["dimensions"].as_array().unwrap() {
        for i in d["items"].as_array().unwrap() {
            all_passed.insert(i["code"].as_str().unwrap().to_string(), json!(true));
        }
    }
    let items = all_passed.len();
    app.post(
        &path,
        &t.landlord,
        &json!({ "kind": "self_inspection", "checklist": all_passed }),
    )
    .await
    .expect(201);

    // Shown to the inspector as the landlord's own; the grade does not move.
    let seen = app.get(&path, &t.inspector).await.expect(200);
    let seen = seen["declarations"].as_array().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["kind"], "self_inspection");
    assert_eq!(seen[0]["checklist"].as_object().unwrap().len(), items);
    assert!(
        seen.iter()
            .all(|d| d["official"] == false && d["party_id"] == 1)
    );
    app.get(&path, &t.other_landlord).await.problem(404, None);
    let after_unit = app
        .get(&format!("/api/v1/units/{unit}"), &t.landlord)
        .await
        .expect(200);
    assert_eq!(stars(&after_unit), stars(&before_unit));
    assert_eq!(after_unit["next_due_at"], before_unit["next_due_at"]);
    assert_eq!(
        app.get(&format!("/api/v1/units/{unit}/grades"), &t.inspector)
            .await
            .expect(200),
        before_grades
    );

    // From the unit page: the landlord's forms (CSRF), the inspector's reading.
    let client = browser();
    let landlord = format!("anju_session={}", t.landlord);
    let (status, html, _) = get(&client, &app, &format!("/units/{unit}"), Some(&landlord)).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(html.contains("id=\"self-inspection\"") && html.contains("id=\"occupancy\""));
    let csrf = field(&html, "csrf");
    let refused = form_post(
        &client,
        format!("{}/units/{unit}/declarations", app.base),
        Some(&landlord),
        "kind=occupancy&rooms=2&occupants=3".into(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::FORBIDDEN);
    let posted = form_post(
        &client,
        format!("{}/units/{unit}/declarations", app.base),
        Some(&landlord),
        format!("csrf={csrf}&kind=self_inspection&item=escape_route&note=%E8%87%AA%E6%9F%A5"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(posted.status(), reqwest::StatusCode::SEE_OTHER);
    let seen = app.get(&path, &t.inspector).await.expect(200);
    let latest = &seen["declarations"][0];
    assert_eq!(latest["checklist"]["escape_route"], true);
    assert_eq!(latest["checklist"]["structure_sound"], false);
    assert_eq!(latest["note"], "自查");
    let inspector = format!("anju_session={}", t.inspector);
    let (_, html, _) = get(&client, &app, &format!("/units/{unit}"), Some(&inspector)).await;
    assert!(html.contains("非官方评级") && html.contains("未合格 / not passed"));
    assert!(
        !html.contains("id=\"self-inspection\""),
        "no form for the inspector"
    );
    let after_unit = app
        .get(&format!("/api/v1/units/{unit}"), &t.landlord)
        .await
        .expect(200);
    assert_eq!(stars(&after_unit), stars(&before_unit));
}

backend_tests!(a_landlords_declarations_never_grade_the_unit);
