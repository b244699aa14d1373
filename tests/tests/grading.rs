//! Star grading over HTTP: the grade from a checklist, caps from open hazards, the grade history with its reasons, and the next patrol after each change.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use anju_tests::{Backend, TestApp, backend_tests, spawn_app, t0};

async fn all_items(app: &TestApp, pass: bool) -> Value {
    let rubric = app
        .get("/api/v1/grading/rubric", &app.tokens.inspector)
        .await
        .expect(200);
    let mut list = serde_json::Map::new();
    for d in rubric["dimensions"].as_array().unwrap() {
        for i in d["items"].as_array().unwrap() {
            list.insert(i["code"].as_str().unwrap().to_string(), json!(pass));
        }
    }
    Value::Object(list)
}

fn at(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("a time"))
        .unwrap()
        .to_utc()
}

async fn grades_follow_checklists_and_open_hazards(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit))
        .await
        .unwrap()
        .unwrap();
    let inspect = |body: Value| {
        let app = &app;
        async move { app.post("/api/v1/inspections", &t.inspector, &body).await }
    };
    let point = json!({ "lon": u.lon, "lat": u.lat });

    // A clean checklist: five stars, the next patrol in 90 days.
    let perfect = all_items(&app, true).await;
    let r = inspect(json!({ "unit_id": unit, "point": point, "checklist": perfect }))
        .await
        .expect(201);
    assert_eq!(r["grade"]["stars"], 5);
    assert_eq!(r["grade"]["score"], 100.0);
    assert_eq!(at(&r["grade"]["next_due_at"]), t0() + TimeDelta::days(90));

    // A critical hazard found: capped at one star, patrolled weekly.
    app.clock.advance(TimeDelta::days(1));
    let r = inspect(
        json!({ "unit_id": unit, "point": point, "findings": [{ "category": "ebike_indoor" }] }),
    )
    .await
    .expect(201);
    assert_eq!(r["grade"]["stars"], 1);
    assert_eq!(r["grade"]["changed"], true);
    assert!(
        r["grade"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().contains("最高1星"))
    );
    assert_eq!(
        at(&r["grade"]["next_due_at"]),
        t0() + TimeDelta::days(1 + 7)
    );
    let case = r["cases"][0]["id"].as_i64().unwrap();

    // Fixed and closed: the cap lifts, and a return visit is due within 30 days.
    app.command(case, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    app.clock.advance(TimeDelta::days(2));
    app.command(case, &t.inspector, "reinspect", json!({ "passed": true }))
        .await
        .expect(200);
    let grades = app
        .get(&format!("/api/v1/units/{unit}/grades"), &t.inspector)
        .await
        .expect(200);
    assert_eq!(grades["stars"], 5);
    assert_eq!(
        at(&grades["next_due_at"]),
        t0() + TimeDelta::days(3 + 30),
        "the return visit comes before the 90-day cycle"
    );
    let history = grades["history"].as_array().unwrap();
    let causes: Vec<&str> = history
        .iter()
        .map(|h| h["cause"].as_str().unwrap())
        .collect();
    assert_eq!(
        causes.last().copied(),
        Some(format!("case {case} closed").as_str())
    );
    let stars: Vec<i64> = history.iter().filter_map(|h| h["stars"].as_i64()).collect();
    assert!(stars.ends_with(&[5, 1, 5]), "{stars:?}");

    // Reopened: the cap is back.
    app.command_with_reason(case, &t.district, "reopen", json!({}), Some("复发"))
        .await
        .expect(200);
    let grades = app
        .get(&format!("/api/v1/units/{unit}/grades"), &t.inspector)
        .await
        .expect(200);
    assert_eq!(grades["stars"], 1);

    // A failing checklist, with the case still open: the lower of the two.
    let mut list = all_items(&app, true).await;
    list["extinguishers"] = json!(false);
    list["ebike_area"] = json!(false);
    list["smoke_alarms"] = json!(false);
    let r = inspect(json!({ "unit_id": unit, "point": point, "checklist": list }))
        .await
        .expect(201);
    assert_eq!(r["grade"]["stars"], 1);
    assert!((r["grade"]["score"].as_f64().unwrap() - 78.57).abs() < 0.01);
}

async fn checklists_must_answer_every_item(backend: Backend) {
    let app = spawn_app(backend).await;
    let unit = app.unit_of(1);
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit))
        .await
        .unwrap()
        .unwrap();
    let before = app.fingerprint().await;
    let mut list = all_items(&app, true).await;
    list.as_object_mut().unwrap().remove("cctv");
    app.post(
        "/api/v1/inspections",
        &app.tokens.inspector,
        &json!({ "unit_id": unit, "point": { "lon": u.lon, "lat": u.lat }, "checklist": list }),
    )
    .await
    .problem(422, Some("checklist.cctv"));
    let mut list = all_items(&app, true).await;
    list["unicorn"] = json!(true);
    app.post(
        "/api/v1/inspections",
        &app.tokens.inspector,
        &json!({ "unit_id": unit, "point": { "lon": u.lon, "lat": u.lat }, "checklist": list }),
    )
    .await
    .problem(422, Some("checklist.unicorn"));
    assert_eq!(app.fingerprint().await, before);
    // Landlords see their unit's grade, not others'.
    app.get(
        &format!("/api/v1/units/{unit}/grades"),
        &app.tokens.landlord,
    )
    .await
    .expect(200);
    let other = app.units_of(2)[0];
    app.get(
        &format!("/api/v1/units/{other}/grades"),
        &app.tokens.landlord,
    )
    .await
    .problem(404, None);
}

backend_tests!(
    grades_follow_checklists_and_open_hazards,
    checklists_must_answer_every_item
);
