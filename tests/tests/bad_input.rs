//! Every kind of bad input gets a clear 4xx problem naming the field at fault, and changes nothing in the database.

use serde_json::{Value, json};

use anju_tests::{Backend, Reply, TestApp, backend_tests, spawn_app};

/// Runs `request`, checks it is refused as `status` naming `field`, and that the
/// database did not change.
async fn refused(
    app: &TestApp,
    status: u16,
    field: Option<&str>,
    request: impl std::future::Future<Output = Reply>,
) -> Value {
    // The request future does nothing until it is awaited, after the first fingerprint.
    let before = app.fingerprint().await;
    let body = request.await.problem(status, field);
    assert_eq!(
        app.fingerprint().await,
        before,
        "a refused request changed the database: {body}"
    );
    body
}

async fn inspection_body(app: &TestApp) -> Value {
    let unit = app.unit_of(1);
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit))
        .await
        .unwrap()
        .unwrap();
    json!({ "unit_id": unit, "point": { "lon": u.lon, "lat": u.lat }, "findings": [{ "category": "wiring" }] })
}

async fn malformed_and_mistyped_bodies(backend: Backend) {
    let app = spawn_app(backend).await;
    let tok = app.tokens.inspector.clone();
    let body = refused(
        &app,
        400,
        None,
        app.post_raw(
            "/api/v1/inspections",
            &tok,
            "application/json",
            "{\"unit_id\": 1, ",
        ),
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("not valid JSON"));
    refused(
        &app,
        400,
        None,
        app.post_raw(
            "/api/v1/inspections",
            &tok,
            "application/json",
            "{} trailing",
        ),
    )
    .await;
    let mut good = inspection_body(&app).await;
    good["colour"] = json!("red");
    refused(
        &app,
        400,
        Some("colour"),
        app.post("/api/v1/inspections", &tok, &good),
    )
    .await;
    let mut good = inspection_body(&app).await;
    good["findings"][0]["colour"] = json!("red");
    refused(
        &app,
        400,
        Some("findings[0].colour"),
        app.post("/api/v1/inspections", &tok, &good),
    )
    .await;
    let mut good = inspection_body(&app).await;
    good["unit_id"] = json!("one");
    refused(
        &app,
        400,
        Some("unit_id"),
        app.post("/api/v1/inspections", &tok, &good),
    )
    .await;
    let mut good = inspection_body(&app).await;
    good.as_object_mut().unwrap().remove("point");
    refused(
        &app,
        400,
        Some("point"),
        app.post("/api/v1/inspections", &tok, &good),
    )
    .await;
    let good = inspection_body(&app).await;
    refused(
        &app,
        415,
        None,
        app.post_raw("/api/v1/inspections", &tok, "text/plain", &good.to_string()),
    )
    .await;
    let huge = format!("{{\"unit_id\": 1, \"note\": \"{}\"}}", "x".repeat(2 << 20));
    refused(
        &app,
        413,
        None,
        app.post_raw("/api/v1/inspections", &tok, "application/json", &huge),
    )
    .await;
}

async fn bad_values_name_their_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let tok = app.tokens.inspector.clone();
    let mut b = inspection_body(&app).await;
    b["point"]["lat"] = json!(95.0);
    refused(
        &app,
        422,
        Some("point.lat"),
        app.post("/api/v1/inspections", &tok, &b),
    )
    .await;
    let mut b = inspection_body(&app).await;
    b["point"]["lon"] = json!(-181.0);
    refused(
        &app,
        422,
        Some("point.lon"),
        app.post("/api/v1/inspections", &tok, &b),
    )
    .await;
    let mut b = inspection_body(&app).await;
    b["unit_id"] = json!(9_999_999);
    refused(
        &app,
        422,
        Some("unit_id"),
        app.post("/api/v1/inspections", &tok, &b),
    )
    .await;
    let mut b = inspection_body(&app).await;
    b["findings"] = json!([{ "category": "wiring" }, { "category": "ufo" }]);
    let body = refused(
        &app,
        422,
        Some("findings[1].category"),
        app.post("/api/v1/inspections", &tok, &b),
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("ebike_indoor"),
        "lists the known categories"
    );
    let mut b = inspection_body(&app).await;
    b["findings"][0]["severity"] = json!("apocalyptic");
    refused(
        &app,
        422,
        Some("findings[0].severity"),
        app.post("/api/v1/inspections", &tok, &b),
    )
    .await;
    let mut b = inspection_body(&app).await;
    b["findings"][0]["evidence"] = json!([""]);
    refused(
        &app,
        422,
        Some("findings[0].evidence[0]"),
        app.post("/api/v1/inspections", &tok, &b),
    )
    .await;
    // A unit in another inspector's grids is, to this inspector, no unit at all.
    let far = app.units_of(40);
    let mut b = inspection_body(&app).await;
    b["unit_id"] = json!(far[0]);
    refused(
        &app,
        422,
        Some("unit_id"),
        app.post("/api/v1/inspections", &tok, &b),
    )
    .await;
    // Unit registration: a building that does not exist, a duplicate address code.
    let site = app.store().building_place(1).await.unwrap().unwrap();
    let unit = json!({ "building_id": 1, "address_code": "NEW-0001", "address": "新登记 1 号", "lon": site.lon, "lat": site.lat, "floor_area": 30.0, "occupants": 2 });
    let mut b = unit.clone();
    b["building_id"] = json!(987_654);
    refused(
        &app,
        422,
        Some("building_id"),
        app.post("/api/v1/units", &tok, &b),
    )
    .await;
    let mut b = unit.clone();
    b["floor_area"] = json!(-3);
    refused(
        &app,
        422,
        Some("floor_area"),
        app.post("/api/v1/units", &tok, &b),
    )
    .await;
    app.post("/api/v1/units", &tok, &unit).await.expect(201);
    refused(&app, 409, None, app.post("/api/v1/units", &tok, &unit)).await;
}

async fn commands_refused_for_state_version_role_and_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = app.tokens.clone();
    let id = app.inspect(&t.inspector, app.unit_of(1), &["wiring"]).await[0];
    let path = format!("/api/v1/cases/{id}/commands");
    let body = refused(
        &app,
        409,
        Some("command"),
        app.post(
            &path,
            &t.inspector,
            &json!({ "command": "close", "expected_version": 1, "data": { "outcome": "fixed" } }),
        ),
    )
    .await;
    assert_eq!(body["type"], "/problems/illegal-transition");
    refused(
        &app,
        403,
        None,
        app.post(
            &path,
            &t.inspector,
            &json!({ "command": "acknowledge", "expected_version": 1 }),
        ),
    )
    .await;
    refused(
        &app,
        422,
        Some("command"),
        app.post(
            &path,
            &t.inspector,
            &json!({ "command": "teleport", "expected_version": 1 }),
        ),
    )
    .await;
    refused(&app, 422, Some("data.deadline_hours"), 
        app.post(&path, &t.inspector, &json!({ "command": "notify", "expected_version": 1, "data": { "deadline_hours": "soon" } }))
    )
    .await;
    refused(&app, 422, Some("data.duplicate_of"), 
        app.post(&path, &t.inspector, &json!({ "command": "mark_duplicate", "expected_version": 1, "data": { "duplicate_of": 424242 } }))
    )
    .await;
    refused(
        &app,
        422,
        Some("expected_version"),
        app.post(
            &path,
            &t.inspector,
            &json!({ "command": "notify", "expected_version": 0 }),
        ),
    )
    .await;
    refused(
        &app,
        400,
        Some("expected_version"),
        app.post(&path, &t.inspector, &json!({ "command": "notify" })),
    )
    .await;
    // A stale version: someone else moved the case first.
    app.post(
        &path,
        &t.inspector,
        &json!({ "command": "notify", "expected_version": 1 }),
    )
    .await
    .expect(200);
    let body = refused(&app, 409, Some("expected_version"), 
        app.post(&path, &t.inspector, &json!({ "command": "mark_duplicate", "expected_version": 1, "data": { "duplicate_of": 1 } }))
    )
    .await;
    assert_eq!(body["current_version"], 2);
    // Unknown and non-numeric case ids.
    refused(
        &app,
        404,
        None,
        app.post(
            "/api/v1/cases/777777/commands",
            &t.inspector,
            &json!({ "command": "notify", "expected_version": 1 }),
        ),
    )
    .await;
    refused(&app, 404, None, app.get("/api/v1/cases/abc", &t.inspector)).await;
    refused(&app, 404, None, app.get("/api/v1/cases/777777", &t.city)).await;
    refused(&app, 404, None, app.get("/api/v1/nowhere", &t.city)).await;
}

async fn callers_must_authenticate(backend: Backend) {
    let app = spawn_app(backend).await;
    let b = inspection_body(&app).await;
    refused(
        &app,
        401,
        None,
        app.send(
            app.client
                .post(format!("{}/api/v1/inspections", app.base))
                .json(&b),
        ),
    )
    .await;
    refused(
        &app,
        401,
        None,
        app.post("/api/v1/inspections", "anju_not-a-real-token", &b),
    )
    .await;
    refused(
        &app,
        401,
        None,
        app.send(
            app.client
                .get(format!("{}/api/v1/cases", app.base))
                .header("authorization", "Basic dXNlcjpwYXNz"),
        ),
    )
    .await;
    refused(
        &app,
        422,
        Some("overdue"),
        app.get("/api/v1/cases?overdue=maybe", &app.tokens.city),
    )
    .await;
    refused(
        &app,
        422,
        Some("colour"),
        app.get("/api/v1/cases?colour=red", &app.tokens.city),
    )
    .await;
    refused(
        &app,
        422,
        Some("district"),
        app.get("/api/v1/cases?district=tianhe", &app.tokens.city),
    )
    .await;
}

async fn idempotency_keys_replay_and_refuse_reuse(backend: Backend) {
    let app = spawn_app(backend).await;
    let tok = app.tokens.inspector.clone();
    let b = inspection_body(&app).await;
    let post = |body: Value, key: &'static str| {
        let req = app
            .client
            .post(format!("{}/api/v1/inspections", app.base))
            .bearer_auth(&tok)
            .header("idempotency-key", key)
            .json(&body);
        app.send(req)
    };
    let first = post(b.clone(), "visit-7f3a").await.expect(201);
    let after_first = app.fingerprint().await;
    let again = post(b.clone(), "visit-7f3a").await;
    assert_eq!(again.status.as_u16(), 201);
    assert_eq!(again.body, first, "the retry returns the first result");
    assert_eq!(app.fingerprint().await, after_first, "and creates nothing");
    let mut other = b.clone();
    other["findings"] = json!([{ "category": "sanitation" }]);
    refused(
        &app,
        422,
        Some("Idempotency-Key"),
        post(other.clone(), "visit-7f3a"),
    )
    .await;
    // Another key is another request.
    let second = post(b.clone(), "visit-8e4b").await.expect(201);
    assert_ne!(second["inspection_id"], first["inspection_id"]);
    // Keys belong to their caller: the same key from another inspector is theirs alone.
    let other_tok = app.tokens.other_inspector.clone();
    let mine = app
        .send(
            app.client
                .post(format!("{}/api/v1/inspections", app.base))
                .bearer_auth(&other_tok)
                .header("idempotency-key", "visit-7f3a")
                .json(&b),
        )
        .await;
    assert_eq!(
        mine.status.as_u16(),
        422,
        "inspector 2 does not cover unit 1: {}",
        mine.body
    );
}

backend_tests!(
    malformed_and_mistyped_bodies,
    bad_values_name_their_field,
    commands_refused_for_state_version_role_and_data,
    callers_must_authenticate,
    idempotency_keys_replay_and_refuse_reuse,
);
