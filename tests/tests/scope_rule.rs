//! One rule for objects outside the caller's scope (issue 9, items 9 and 11): after authentication, a case, unit or grid the caller may not see answers exactly as one that does not exist, whatever the request says (a wrong or right version, good or bad data), for every role and every route that names it.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use anju_engine::domain::Role;
use anju_tests::{Backend, Reply, TestApp, backend_tests, spawn_app};

/// An id no object has.
const NOWHERE: i64 = 987_654_321;

/// The parts of an answer a caller can tell apart, with the id masked.
fn shape(r: Reply, id: i64) -> (u16, String, Value) {
    let mut body = r.body;
    if let Some(detail) = body.get("detail").and_then(Value::as_str) {
        let masked = detail.replace(&id.to_string(), "#");
        body["detail"] = json!(masked);
    }
    (r.status.as_u16(), r.content_type, body)
}

/// Every request naming the object `id` of `kind`, as `token` sends it.
async fn answers(app: &TestApp, token: &str, kind: &str, id: i64) -> Vec<(u16, String, Value)> {
    let mut out = Vec::new();
    let get = |path: String| async move { shape(app.get(&path, token).await, id) };
    let post =
        |path: String, body: Value| async move { shape(app.post(&path, token, &body).await, id) };
    match kind {
        "case" => {
            out.push(get(format!("/api/v1/cases/{id}")).await);
            out.push(get(format!("/api/v1/cases/{id}/messages")).await);
            out.push(get(format!("/api/v1/cases/{id}/rule-jobs")).await);
            for body in [
                json!({"command": "acknowledge", "expected_version": 1}),
                json!({"command": "acknowledge", "expected_version": 2}),
                json!({"command": "notify", "expected_version": 999}),
                json!({"command": "refer", "expected_version": 1, "data": {"department_id": 1}}),
                json!({"command": "no_such_command", "expected_version": 1}),
                json!({"command": "notify", "expected_version": 0}),
                json!({"command": "notify", "expected_version": 1, "data": {"bogus": true}}),
                json!({"command": "close", "expected_version": 1, "data": {"outcome": "maybe"}}),
            ] {
                out.push(post(format!("/api/v1/cases/{id}/commands"), body).await);
            }
        }
        "unit" => {
            for path in ["", "/grades", "/parties", "/responsibility"] {
                out.push(get(format!("/api/v1/units/{id}{path}")).await);
            }
            out.push(
                post(
                    format!("/api/v1/units/{id}/agreements"),
                    json!({"signer": "", "signed_on": "2026-01-01", "expires_on": "2025-01-01"}),
                )
                .await,
            );
            out.push(
                post(
                    format!("/api/v1/units/{id}/policies"),
                    json!({"insurer": "", "policy_no": "", "coverage_yuan": -1.0, "starts_on": "2026-01-01", "ends_on": "2027-01-01"}),
                )
                .await,
            );
            out.push(
                post(
                    format!("/api/v1/units/{id}/parties"),
                    json!({"party_id": 999999}),
                )
                .await,
            );
        }
        "grid" => {
            out.push(get(format!("/api/v1/grids/{id}")).await);
            out.push(get(format!("/api/v1/grids/{id}/units")).await);
        }
        _ => unreachable!(),
    }
    out
}

async fn out_of_scope_answers_as_not_existing(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    // Cases on several parties' units, in the first district and far away, some
    // referred to the first district's fire brigade.
    let mut cases = Vec::new();
    for party in [1, 2, 3, 7, 40] {
        let unit = app.unit_of(party);
        cases.extend(
            app.inspect(&t.city, unit, &["wiring", "ebike_indoor"])
                .await,
        );
    }
    let far_unit = anju_tests::TEST_UNITS as i64;
    cases.extend(app.inspect(&t.city, far_unit, &["wiring"]).await);
    app.command(cases[1], &t.city, "refer", json!({}))
        .await
        .expect(200);
    let units: Vec<i64> = [1, 2, 3, 7, 40]
        .iter()
        .map(|p| app.unit_of(*p))
        .chain([far_unit])
        .collect();
    let grids: Vec<i64> = {
        let mut g = Vec::new();
        for u in &units {
            let unit = app
                .store()
                .unit(anju_engine::domain::UnitId(*u))
                .await
                .unwrap()
                .unwrap();
            g.push(unit.grid_id.unwrap().0);
        }
        g
    };
    let callers = [
        ("inspector 1", t.inspector.clone()),
        ("inspector 2", t.other_inspector.clone()),
        ("landlord 1", t.landlord.clone()),
        ("landlord 2", t.other_landlord.clone()),
        ("fire 1", t.fire.clone()),
        ("fire 2", t.other_fire.clone()),
        ("district supervisor", t.district.clone()),
        ("street supervisor", app.token(Role::Supervisor, 13).await),
    ];
    let before = app.fingerprint().await;
    let mut rng = ChaCha8Rng::seed_from_u64(20261130);
    let mut compared = 0;
    for _ in 0..40 {
        let (who, token) = &callers[rng.random_range(0..callers.len())];
        let (kind, id) = match rng.random_range(0..3) {
            0 => ("case", cases[rng.random_range(0..cases.len())]),
            1 => ("unit", units[rng.random_range(0..units.len())]),
            _ => ("grid", grids[rng.random_range(0..grids.len())]),
        };
        let first = match kind {
            "case" => app.get(&format!("/api/v1/cases/{id}"), token).await,
            "unit" => app.get(&format!("/api/v1/units/{id}"), token).await,
            _ => app.get(&format!("/api/v1/grids/{id}"), token).await,
        };
        if first.status.as_u16() != 404 {
            continue;
        }
        let theirs = answers(&app, token, kind, id).await;
        let nowhere = answers(&app, token, kind, NOWHERE).await;
        for (i, (a, b)) in theirs.iter().zip(&nowhere).enumerate() {
            assert_eq!(a, b, "{who}, {kind} {id}, request {i}");
        }
        compared += 1;
    }
    assert!(compared >= 15, "only {compared} out-of-scope pairs");
    assert_eq!(app.fingerprint().await, before, "nothing changed");
    // The pairs that must be out of scope are.
    for (token, id) in [
        (&t.landlord, cases[2]),
        (&t.other_landlord, cases[0]),
        (&t.fire, cases[0]),
        (&t.other_fire, cases[1]),
        (&t.inspector, *cases.last().unwrap()),
        (&t.district, *cases.last().unwrap()),
    ] {
        app.get(&format!("/api/v1/cases/{id}"), token)
            .await
            .problem(404, None);
    }
    // A route a role can never use is forbidden, on objects it may see.
    app.get(
        &format!("/api/v1/cases/{}/rule-jobs", cases[0]),
        &t.landlord,
    )
    .await
    .problem(403, None);
}

backend_tests!(out_of_scope_answers_as_not_existing);
