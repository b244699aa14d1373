//! Objections and extensions (workflow version 5) on both backends, by the manual clock: while a landlord's request waits the order cannot go overdue; granted, the deadline timer moves (overdue at the new time, not the old); refused, the old deadline stands; an order is objected to once; only the supervisor of the case's street decides; an undecided request is escalated after its working days; all of it in the case's history and the statistics.

use anju_engine::domain::{CaseId, Role};
use anju_engine::time::Clock as _;
use anju_tests::{Backend, TestApp, backend_tests, spawn_app};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

/// An ordered case of landlord 1's `k`th unit (wiring: 72 hours) and its deadline.
async fn ordered_on(app: &TestApp, k: usize) -> (i64, DateTime<Utc>) {
    let id = app.ordered(app.units_of(1)[k], "wiring", "重新布线").await;
    let deadline = app
        .store()
        .case(CaseId(id))
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .deadline_at
        .expect("a deadline");
    assert_eq!(deadline, app.clock.now() + TimeDelta::hours(72));
    (id, deadline)
}

async fn object(app: &TestApp, id: i64, data: serde_json::Value) -> anju_tests::Reply {
    app.command_with_reason(
        id,
        &app.tokens.landlord,
        "object",
        data,
        Some("需要采购新电线"),
    )
    .await
}

/// The token of the supervisor of a case's street (every street of the test city has
/// one), and of another street's.
async fn street_supervisors(app: &TestApp, id: i64) -> (String, String) {
    let street = app
        .store()
        .case(CaseId(id))
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .street_id
        .unwrap();
    let all = app.store().supervisors().await.unwrap();
    let of = |mine: bool| {
        all.iter()
            .find(|s| s.level == "street" && (s.street_id == Some(street)) == mine)
            .unwrap()
            .id
            .0
    };
    (
        app.token(Role::Supervisor, of(true)).await,
        app.token(Role::Supervisor, of(false)).await,
    )
}

async fn decide(app: &TestApp, id: i64, data: serde_json::Value) -> serde_json::Value {
    let (street, _) = street_supervisors(app, id).await;
    app.command_with_reason(id, &street, "decide_objection", data, Some("经核实"))
        .await
        .expect(200)
}

async fn deadline_of(app: &TestApp, id: i64) -> DateTime<Utc> {
    app.store()
        .case(CaseId(id))
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .deadline_at
        .unwrap()
}

async fn a_granted_extension_moves_the_deadline_timer(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, old) = ordered_on(&app, 0).await;
    let r = object(
        &app,
        id,
        json!({ "kind": "extension", "extension_hours": 48 }),
    )
    .await
    .expect(200);
    assert_eq!(r["case"]["state"], "objection_pending");
    assert_eq!(r["timers"][0]["kind"], "objection_decision");
    // The old deadline passes while the request waits: nothing happens to the order.
    app.clock.set(old + TimeDelta::hours(1));
    app.tick().await;
    assert_eq!(app.state(id).await, "objection_pending");
    let r = decide(&app, id, json!({ "granted": true, "hours": 48 })).await;
    assert_eq!(r["case"]["state"], "acknowledged");
    let new = old + TimeDelta::hours(48);
    assert_eq!(deadline_of(&app, id).await, new);
    assert_eq!(r["timers"][0]["kind"], "order_deadline");
    // Not overdue just before the new deadline; overdue just after it.
    app.clock.set(new - TimeDelta::minutes(1));
    assert_eq!(app.tick().await, 0);
    assert_eq!(app.state(id).await, "acknowledged");
    app.clock.set(new + TimeDelta::minutes(1));
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.state(id).await, "overdue");
    // The history tells it; the landlord was told the decision.
    let view = app.case(id, &app.tokens.landlord).await;
    let commands: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    assert!(
        commands.ends_with(&["object", "decide_objection", "deadline_passed"]),
        "{commands:?}"
    );
}

async fn a_refused_objection_keeps_the_old_deadline(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, old) = ordered_on(&app, 0).await;
    object(&app, id, json!({ "kind": "objection" }))
        .await
        .expect(200);
    // Decided after the old deadline passed: refused, the order is overdue at once,
    // in the decision's own commit (issue 22, 7): no timer already due is left behind.
    app.clock.set(old + TimeDelta::hours(2));
    assert_eq!(app.tick().await, 0);
    let r = decide(&app, id, json!({ "granted": false })).await;
    assert_eq!(r["case"]["state"], "overdue", "{r}");
    assert!(r["timers"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(deadline_of(&app, id).await, old, "the old deadline stands");
    assert_eq!(app.tick().await, 0);
    assert_eq!(app.state(id).await, "overdue");
    let messages = app
        .get(&format!("/api/v1/cases/{id}/messages"), &app.tokens.city)
        .await
        .expect(200);
    let templates: Vec<&str> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["template"].as_str().unwrap())
        .collect();
    assert!(
        templates.ends_with(&["objection_refused_overdue", "order_overdue_inspector"]),
        "{templates:?}"
    );
    // The rules hear of it as of any order overdue.
    let jobs = app
        .get(&format!("/api/v1/cases/{id}/rule-jobs"), &app.tokens.city)
        .await
        .expect(200);
    assert!(jobs.to_string().contains("order_overdue"), "{jobs}");

    // Granted, but too little to reach past now: overdue at once too.
    let (late, old) = ordered_on(&app, 2).await;
    object(
        &app,
        late,
        json!({ "kind": "extension", "extension_hours": 1 }),
    )
    .await
    .expect(200);
    app.clock.set(old + TimeDelta::hours(5));
    let r = decide(&app, late, json!({ "granted": true, "hours": 1 })).await;
    assert_eq!(r["case"]["state"], "overdue", "{r}");
    assert_eq!(deadline_of(&app, late).await, old + TimeDelta::hours(1));
    assert_eq!(app.tick().await, 0);

    // Refused before the deadline: the order goes overdue at the old time.
    let (id, old) = ordered_on(&app, 1).await;
    object(&app, id, json!({ "kind": "objection" }))
        .await
        .expect(200);
    decide(&app, id, json!({ "granted": false })).await;
    app.clock.set(old - TimeDelta::minutes(1));
    assert_eq!(app.tick().await, 0);
    app.clock.set(old + TimeDelta::minutes(1));
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.state(id).await, "overdue");
}

async fn an_order_is_objected_to_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = ordered_on(&app, 0).await;
    object(&app, id, json!({ "kind": "objection" }))
        .await
        .expect(200);
    decide(&app, id, json!({ "granted": false })).await;
    let before = app.fingerprint().await;
    let r = object(
        &app,
        id,
        json!({ "kind": "extension", "extension_hours": 24 }),
    )
    .await;
    let problem = r.problem(409, None);
    assert!(
        problem["detail"].as_str().unwrap().contains("once"),
        "{problem}"
    );
    assert_eq!(app.fingerprint().await, before, "nothing changed");
    // Bad requests are refused by field, and change nothing either.
    let (other, _) = ordered_on(&app, 1).await;
    let before = app.fingerprint().await;
    object(&app, other, json!({ "kind": "extension" }))
        .await
        .problem(422, Some("data.extension_hours"));
    object(&app, other, json!({ "kind": "later" }))
        .await
        .problem(422, Some("data.kind"));
    app.command(
        other,
        &app.tokens.landlord,
        "object",
        json!({ "kind": "objection" }),
    )
    .await
    .problem(422, Some("reason"));
    // Another landlord's case is not theirs to object to; an inspector cannot decide.
    app.command_with_reason(
        other,
        &app.tokens.other_landlord,
        "object",
        json!({ "kind": "objection" }),
        Some("x"),
    )
    .await
    .problem(404, None);
    assert_eq!(app.fingerprint().await, before);
    object(&app, other, json!({ "kind": "objection" }))
        .await
        .expect(200);
    app.command_with_reason(
        other,
        &app.tokens.inspector,
        "decide_objection",
        json!({ "granted": true, "hours": 5 }),
        Some("x"),
    )
    .await
    .problem(403, None);
    // The street has a supervisor of its own: the district's and the city's
    // supervisors do not decide (nor is the command offered to them); another street's
    // supervisor does not see the case. Nothing changes.
    let (street, another) = street_supervisors(&app, other).await;
    let before = app.fingerprint().await;
    for token in [&app.tokens.district, &app.tokens.city] {
        app.command_with_reason(
            other,
            token,
            "decide_objection",
            json!({ "granted": true, "hours": 5 }),
            Some("x"),
        )
        .await
        .problem(403, None);
        let commands = app.case(other, token).await["commands"].clone();
        assert!(
            !commands
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == "decide_objection"),
            "{commands}"
        );
    }
    app.command_with_reason(
        other,
        &another,
        "decide_objection",
        json!({ "granted": true, "hours": 5 }),
        Some("x"),
    )
    .await
    .problem(404, None);
    assert_eq!(app.fingerprint().await, before);
    let commands = app.case(other, &street).await["commands"].clone();
    assert!(
        commands
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "decide_objection"),
        "{commands}"
    );
}

async fn an_undecided_request_is_escalated(backend: Backend) {
    let app = spawn_app(backend).await;
    let (id, _) = ordered_on(&app, 0).await;
    object(&app, id, json!({ "kind": "objection" }))
        .await
        .expect(200);
    // Three working days after Monday's (Tuesday to Thursday): due at Friday's start.
    let china = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    app.clock.set(china("2026-03-05T23:59:00+08:00"));
    assert_eq!(app.tick().await, 0);
    app.clock.set(china("2026-03-06T00:01:00+08:00"));
    assert_eq!(app.tick().await, 1);
    let view = app.case(id, &app.tokens.city).await;
    assert_eq!(view["case"]["state"], "objection_pending");
    assert_eq!(view["case"]["escalation"], 1);
    let last = view["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["command"], "objection_overdue");
}

async fn objections_count_in_the_statistics(backend: Backend) {
    let app = spawn_app(backend).await;
    let (a, _) = ordered_on(&app, 0).await;
    let (b, _) = ordered_on(&app, 1).await;
    object(
        &app,
        a,
        json!({ "kind": "extension", "extension_hours": 24 }),
    )
    .await
    .expect(200);
    object(&app, b, json!({ "kind": "objection" }))
        .await
        .expect(200);
    decide(&app, a, json!({ "granted": true, "hours": 24 })).await;
    decide(&app, b, json!({ "granted": false })).await;
    let s = app
        .get(
            "/api/v1/statistics?area=city&from=2026-03-01&to=2026-03-31",
            &app.tokens.city,
        )
        .await
        .expect(200);
    assert_eq!(
        (
            s["cases"]["objections"].as_i64(),
            s["cases"]["objections_granted"].as_i64(),
            s["cases"]["objections_refused"].as_i64(),
            s["cases"]["orders_issued"].as_i64(),
        ),
        (Some(2), Some(1), Some(1), Some(2)),
        "an objection is not an order"
    );
}

backend_tests!(
    a_granted_extension_moves_the_deadline_timer,
    a_refused_objection_keeps_the_old_deadline,
    an_order_is_objected_to_once,
    an_undecided_request_is_escalated,
    objections_count_in_the_statistics,
);
