//! Cases changed by people, the engine and the writer at once, over HTTP on SQLite and PostgreSQL: versions that conflict between people only, open cases moved to the newest workflow once, inspections and commands through one writer.

use serde_json::{Value, json};

use anju_tests::{Backend, backend_tests, spawn_app};

/// Optimistic concurrency is over people's acts (issue 9, item 20): events the system
/// added since the version a person saw do not make their command stale unless they
/// made it illegal; another person's act does.
async fn versions_conflict_between_people_not_with_the_engine(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let ids = app
        .inspect(
            &t.inspector,
            app.unit_of(1),
            &["wiring", "gas_heater", "sanitation"],
        )
        .await;
    let send = |id: i64, token: &str, body: Value| {
        let app = &app;
        let token = token.to_string();
        async move {
            app.post(&format!("/api/v1/cases/{id}/commands"), &token, &body)
                .await
        }
    };
    // Case 0: notified at version 2; the system adds a notice (a rule's event) at 3.
    app.command(ids[0], &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    let notice = anju_engine::store::TransitionRequest {
        case_id: anju_engine::domain::CaseId(ids[0]),
        expected_version: None,
        timer_seq: None,
        actor: anju_engine::domain::Actor::system("rule:test@v1"),
        command: "rule_notice".into(),
        reason: None,
        rule: None,
    };
    let mut data = serde_json::Map::new();
    data.insert("to".into(), json!("supervisor"));
    data.insert("zh".into(), json!("请关注"));
    data.insert("en".into(), json!("Please look"));
    app.runtime().execute_as_system(notice, data).await.unwrap();
    assert_eq!(app.case(ids[0], &t.city).await["case"]["version"], 3);
    // The landlord saw version 2: still legal, applied.
    send(
        ids[0],
        &t.landlord,
        json!({"command": "acknowledge", "expected_version": 2}),
    )
    .await
    .expect(200);
    // Case 1: two people. The inspector acts at 2; the landlord, who saw 2, conflicts.
    app.command(ids[1], &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    app.command(ids[1], &t.landlord, "acknowledge", json!({}))
        .await
        .expect(200);
    let stale = send(
        ids[1],
        &t.inspector,
        json!({"command": "cancel", "expected_version": 2, "reason": "x"}),
    )
    .await
    .problem(409, Some("expected_version"));
    assert_eq!(stale["current_version"], 3);
    // Case 2: the system made the command illegal (the deadline passed: overdue), so
    // the landlord's acknowledgement of the version they saw is stale.
    app.command(ids[2], &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    app.clock.advance(chrono::TimeDelta::days(16));
    assert!(app.tick().await >= 1);
    assert_eq!(app.state(ids[2]).await, "overdue");
    send(
        ids[2],
        &t.landlord,
        json!({"command": "acknowledge", "expected_version": 2}),
    )
    .await
    .problem(409, Some("expected_version"));
    // A version from the future is stale too.
    send(
        ids[2],
        &t.landlord,
        json!({"command": "report_fix", "expected_version": 9, "data": {"evidence": ["p"]}}),
    )
    .await
    .problem(409, Some("expected_version"));
}

/// Workflow definitions stay immutable: open cases of an older version move to the
/// newest by an audited system event of their own, once each; closed cases stay
/// (issue 9, "changing running cases").
async fn open_cases_move_to_the_newest_workflow_once(backend: Backend) {
    let old = anju_engine::runtime::Config {
        workflows: Some(
            anju_engine::workflow::builtin()
                .into_iter()
                .filter(|d| d.version <= 3)
                .collect(),
        ),
        ..Default::default()
    };
    let mut app = anju_tests::spawn_app_with(backend, old).await;
    let t = app.tokens.clone();
    let ids = app
        .inspect(&t.city, app.unit_of(1), &["wiring", "gas_heater"])
        .await;
    app.command(ids[0], &t.city, "notify", json!({}))
        .await
        .expect(200);
    app.command_with_reason(ids[1], &t.city, "cancel", json!({}), Some("重复登记"))
        .await
        .expect(200);
    assert_eq!(app.case(ids[0], &t.city).await["workflow_version"], 3);
    app.restart_with(Default::default()).await;
    // The new version is registered; the cases are still on theirs until moved.
    assert_eq!(app.case(ids[0], &t.city).await["workflow_version"], 3);
    assert_eq!(app.runtime().upgrade_open_cases(100).await.unwrap(), 1);
    assert_eq!(
        app.runtime().upgrade_open_cases(100).await.unwrap(),
        0,
        "once"
    );
    let view = app.case(ids[0], &t.city).await;
    assert_eq!(view["workflow_version"], 6);
    assert_eq!(view["case"]["state"], "notified");
    let last = view["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["command"], "upgrade");
    assert_eq!(last["actor"]["role"], "system");
    assert_eq!(
        (
            last["data"]["from_version"].as_i64(),
            last["data"]["to_version"].as_i64()
        ),
        (Some(3), Some(6))
    );
    // Its running timer runs on, and its commands are the new version's: the landlord
    // may now object to the order (version 5).
    assert_eq!(view["timers"].as_array().unwrap().len(), 1);
    let landlord = app.case(ids[0], &t.landlord).await;
    assert!(
        landlord["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "object"),
        "{}",
        landlord["commands"]
    );
    assert!(
        view["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "cancel")
    );
    // The closed case stays on the version it ended on.
    assert_eq!(app.case(ids[1], &t.city).await["workflow_version"], 3);
    // A person's command right after works at the version they saw before the upgrade.
    app.post(
        &format!("/api/v1/cases/{}/commands", ids[0]),
        &t.landlord,
        &json!({"command": "acknowledge", "expected_version": 2}),
    )
    .await
    .expect(200);
}

/// Every change to an existing case goes through the writer (issue 9, item 8):
/// inspections that attach findings to open cases, under load together with commands
/// on the same cases, never leave the writer's cached cases stale, and none fails.
async fn inspections_and_commands_share_the_writer(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = app.tokens.clone();
    let units: Vec<i64> = app.units_of(1).into_iter().take(6).collect();
    let mut cases = Vec::new();
    for u in &units {
        cases.extend(
            app.inspect(&t.inspector, *u, &["wiring", "sanitation"])
                .await,
        );
    }
    let mut set = tokio::task::JoinSet::new();
    for round in 0..8 {
        for (k, u) in units.iter().enumerate() {
            let unit = app
                .store()
                .unit(anju_engine::domain::UnitId(*u))
                .await
                .unwrap()
                .unwrap();
            let (client, base, token) = (app.client.clone(), app.base.clone(), t.inspector.clone());
            set.spawn(async move {
                let body = json!({ "unit_id": unit.id, "point": { "lon": unit.lon, "lat": unit.lat },
                                   "findings": [{ "category": "wiring", "note": format!("第{round}次") }] });
                let r = client.post(format!("{base}/api/v1/inspections")).bearer_auth(token).json(&body).send().await.unwrap();
                r.status().as_u16()
            });
            let case = cases[2 * k + 1];
            let (client, base, token) = (app.client.clone(), app.base.clone(), t.inspector.clone());
            let command = if round % 2 == 0 { "notify" } else { "cancel" };
            set.spawn(async move {
                // A client acting at the version it last saw.
                let v: serde_json::Value = client.get(format!("{base}/api/v1/cases/{case}")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
                let body = json!({ "command": command, "expected_version": v["case"]["version"], "reason": "测试" });
                let r = client.post(format!("{base}/api/v1/cases/{case}/commands")).bearer_auth(&token).json(&body).send().await.unwrap();
                r.status().as_u16()
            });
        }
    }
    let statuses = set.join_all().await;
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 201 | 403 | 409)),
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        8 * units.len()
    );
    assert_eq!(app.store().stale_retries(), 0);
    // Each wiring case holds its eight attached findings, one event each.
    for k in 0..units.len() {
        let view = app.case(cases[2 * k], &t.city).await;
        let attached = view["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["command"] == "attach_finding")
            .count();
        assert_eq!(attached, 8);
    }
}

backend_tests!(
    versions_conflict_between_people_not_with_the_engine,
    open_cases_move_to_the_newest_workflow_once,
    inspections_and_commands_share_the_writer,
);
