//! Escalation rules over real data, on both backends: the daily sweep reads every open case with its unit and party record, and reports what the starter rules would do without changing anything.

use chrono::TimeDelta;
use serde_json::json;

use anju_engine::rules::Trigger;
use anju_tests::{Backend, backend_tests, spawn_app};

async fn the_daily_sweep_reports_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    // Three indoor e-bike cases with orders, on three units; one wiring case.
    let units = app.units_of(1);
    let mut ebike = Vec::new();
    for unit in &units[..3] {
        let id = app.inspect(&t.inspector, *unit, &["ebike_indoor"]).await[0];
        app.command(id, &t.inspector, "notify", json!({}))
            .await
            .expect(200);
        ebike.push(id);
    }
    let wiring = app.inspect(&t.inspector, units[3], &["wiring"]).await[0];
    app.command(wiring, &t.inspector, "notify", json!({}))
        .await
        .expect(200);

    // Nothing is overdue yet: the e-bike rule holds back.
    let report = app.runtime().sweep_rules(Trigger::Daily).await.unwrap();
    assert_eq!(report.cases, 4);
    assert_eq!(report.failures, 0);
    assert!(report.actions.is_empty(), "{:?}", report.actions);

    // Past the 24-hour deadline, the e-bike orders go overdue (the wiring order has
    // longer); 24 hours later still, the rule would refer each e-bike case to the fire
    // brigade, and nothing else.
    app.clock.advance(TimeDelta::hours(25));
    assert_eq!(app.tick().await, 3);
    assert_eq!(app.state(wiring).await, "notified");
    app.clock.advance(TimeDelta::hours(24));
    let before = app.fingerprint().await;
    let report = app.runtime().sweep_rules(Trigger::Daily).await.unwrap();
    assert_eq!(report.cases, 4);
    assert_eq!(report.evaluations, 4, "one daily rule per case");
    assert_eq!(report.actions["ebike_overdue_to_fire"]["refer"], 3);
    assert_eq!(report.actions.len(), 1);
    assert_eq!(app.fingerprint().await, before, "a dry run changes nothing");
    for id in ebike {
        assert_eq!(app.state(id).await, "overdue");
    }

    // The party's record counts its overdue orders.
    let records = app
        .store()
        .party_records(
            app.runtime().now(),
            app.runtime().now() - TimeDelta::days(365),
            None,
        )
        .await
        .unwrap();
    let mine = records.iter().find(|r| r.party_id.0 == 1).unwrap();
    assert_eq!(mine.overdue_since, 3);
    assert_eq!(mine.cases_by_severity.values().sum::<i64>(), 4);
    let kind = app
        .city
        .chunks(10_000)
        .flatten()
        .find_map(|r| match r {
            anju_engine::registry::Record::Party { id, kind, .. } if id.0 == 1 => Some(kind),
            _ => None,
        })
        .unwrap();
    assert_eq!(mine.kind, kind);
}

async fn supervisors_see_the_rules_and_their_counts(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let listed = app.get("/api/v1/rules", &t.district).await.expect(200);
    let rules = listed["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 6);
    assert_eq!(rules[0]["name"], "ebike_overdue_to_fire");
    assert_eq!(rules[0]["version"], 1);
    assert_eq!(rules[0]["script_sha256"].as_str().unwrap().len(), 64);
    let before = listed["evaluations"].as_u64().unwrap();
    let id = app.inspect(&t.inspector, app.unit_of(1), &["wiring"]).await[0];
    app.command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    app.runtime().sweep_rules(Trigger::Daily).await.unwrap();
    let after = app.get("/api/v1/rules", &t.city).await.expect(200);
    assert_eq!(after["evaluations"].as_u64().unwrap(), before + 1);
    assert_eq!(after["failures"], 0);
    for token in [&t.inspector, &t.landlord, &t.fire] {
        app.get("/api/v1/rules", token).await.problem(403, None);
    }
}

backend_tests!(
    the_daily_sweep_reports_and_changes_nothing,
    supervisors_see_the_rules_and_their_counts,
);
