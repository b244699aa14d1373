//! Escalation rules at work, on both backends: each starter rule's actions applied to real cases as audited commands of the rule and its version, the daily sweep run once per day, hostile rules failing alone, hot publishing, dry runs and backtests that change nothing.

use chrono::{DateTime, TimeDelta};
use serde_json::{Value, json};

use anju_tests::{Backend, TestApp, acceptance_due, backend_tests, spawn_app};

/// The events of a case's history issued by a rule (any version).
fn rule_events(case: &Value, rule: &str) -> Vec<Value> {
    let prefix = format!("rule:{rule}@");
    case["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["id"].as_str().unwrap_or("").starts_with(&prefix))
        .cloned()
        .collect()
}

/// An inspected case with an order issued.
async fn ordered(app: &TestApp, unit: i64, category: &str) -> i64 {
    let id = app.inspect(&app.tokens.inspector, unit, &[category]).await[0];
    app.command(id, &app.tokens.inspector, "notify", json!({}))
        .await
        .expect(200);
    id
}

async fn overdue_ebike_charging_goes_to_the_fire_brigade_by_the_daily_sweep(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = ordered(&app, app.unit_of(1), "ebike_indoor").await;
    let wiring = ordered(&app, app.units_of(1)[1], "wiring").await;
    // The order goes overdue: the rules run on the event, but one hour late is not
    // yet the fire brigade's business. The metrics show the events waiting for the
    // rules, then none.
    app.clock.advance(TimeDelta::hours(25));
    assert_eq!(app.tick().await, 1);
    let pending = |text: String| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("anju_rule_jobs_pending "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("anju_rule_jobs_pending") as u64
    };
    let metrics = || async {
        app.client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert!(pending(metrics().await) >= 3);
    app.rules_tick().await;
    assert_eq!(pending(metrics().await), 0);
    assert_eq!(app.state(id).await, "overdue");
    assert!(rule_events(&app.case(id, &t.city).await, "ebike_overdue_to_fire").is_empty());
    // (The critical hazard took the unit down to one star: that rule told the landlord
    // and asked for a review.)
    let dropped = rule_events(&app.case(id, &t.city).await, "grade_drop_to_one_star");
    assert_eq!(dropped.len(), 2);
    assert_eq!(dropped[0]["data"]["rule"]["trigger"], "grade_drop");

    // A day later, the daily sweep finds it; it runs once per day however often asked.
    app.clock.advance(TimeDelta::hours(24));
    let day = app.runtime().today().to_string();
    let (report, queued) = app
        .runtime()
        .sweep_and_queue(&day)
        .await
        .unwrap()
        .expect("the first sweep of the day");
    assert_eq!(report.cases, 2);
    assert_eq!(queued, 1, "only the e-bike case is acted on");
    assert!(app.runtime().sweep_and_queue(&day).await.unwrap().is_none());
    let done = app.rules_tick().await;
    assert_eq!((done.jobs, done.applied, done.refused), (1, 1, 0));

    let case = app.case(id, &t.city).await;
    assert_eq!(case["case"]["state"], "referred");
    let events = rule_events(&case, "ebike_overdue_to_fire");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["command"], "rule_refer");
    assert_eq!(e["actor"]["role"], "system");
    assert_eq!(e["actor"]["id"], "rule:ebike_overdue_to_fire@v1");
    assert_eq!(e["data"]["rule"]["name"], "ebike_overdue_to_fire");
    assert_eq!(e["data"]["rule"]["version"], 1);
    assert_eq!(e["data"]["rule"]["trigger"], "daily");
    assert!(e["reason"].as_str().unwrap().contains("电动自行车"));
    // It went to the fire brigade of the unit's district, which now sees it.
    let referrals = app
        .get("/api/v1/departments/1/referrals", &t.fire)
        .await
        .expect(200);
    assert!(
        referrals.to_string().contains(&format!("\"case_id\":{id}")),
        "{referrals}"
    );
    assert_eq!(app.state(wiring).await, "notified");
    // What the rules did is visible on the case.
    let jobs = app
        .get(&format!("/api/v1/cases/{id}/rule-jobs"), &t.inspector)
        .await
        .expect(200);
    let triggers: Vec<&str> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(
        triggers,
        ["grade_drop", "new_hazard", "order_overdue", "daily"]
    );
    app.get(&format!("/api/v1/cases/{id}/rule-jobs"), &t.landlord)
        .await
        .problem(403, None);
    // Nothing is left to do: working off the jobs again does nothing.
    let before = app.fingerprint().await;
    assert_eq!(app.rules_tick().await.jobs, 0);
    assert_eq!(app.fingerprint().await, before);
}

async fn a_third_overdue_order_proposes_the_landlord_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let units = app.units_of(1);
    // Two orders go overdue: no proposal.
    let mut ids = Vec::new();
    for unit in &units[..2] {
        ids.push(ordered(&app, *unit, "ebike_indoor").await);
    }
    app.clock.advance(TimeDelta::hours(25));
    assert_eq!(app.tick().await, 2);
    app.rules_tick().await;
    let none = app
        .get("/api/v1/blacklist?status=proposed", &t.district)
        .await
        .expect(200);
    assert_eq!(none["count"], 0);
    // The third overdue order in 12 months proposes the landlord; the others, seen
    // again, do not propose twice.
    ids.push(ordered(&app, units[2], "ebike_indoor").await);
    app.clock.advance(TimeDelta::hours(25));
    assert_eq!(app.tick().await, 1);
    app.rules_tick().await;
    let proposed = app
        .get("/api/v1/blacklist?status=proposed", &t.district)
        .await
        .expect(200);
    assert_eq!(proposed["count"], 1);
    let entry = &proposed["entries"][0];
    assert_eq!(entry["party_id"], 1);
    assert_eq!(entry["source"], "rule:third_overdue_blacklist@v1");
    assert!(
        entry["reason"].as_str().unwrap().contains("第 3 次"),
        "{entry}"
    );
    let proposing: Vec<i64> = {
        let mut with = Vec::new();
        for id in &ids {
            if !rule_events(&app.case(*id, &t.city).await, "third_overdue_blacklist").is_empty() {
                with.push(*id);
            }
        }
        with
    };
    assert_eq!(proposing, [ids[2]], "the third case carries the proposal");
    assert_eq!(entry["case_id"], ids[2]);
    // The supervisor was told, by the outbox in the same transaction.
    let messages = app
        .get(
            &format!("/api/v1/cases/{}/messages", proposing[0]),
            &t.district,
        )
        .await
        .expect(200);
    assert!(
        messages.to_string().contains("blacklist_proposed"),
        "{messages}"
    );
}

/// Four of a landlord's orders go overdue at the same moment: the rules run on the
/// four events in one step, and the landlord is proposed once, on one case.
async fn overdue_orders_at_once_propose_the_landlord_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let mut ids = Vec::new();
    for unit in &app.units_of(1)[..4] {
        ids.push(ordered(&app, *unit, "ebike_indoor").await);
    }
    app.clock.advance(TimeDelta::hours(25));
    assert_eq!(app.tick().await, 4);
    app.rules_tick().await;
    let mut proposing = 0;
    for id in &ids {
        proposing += rule_events(&app.case(*id, &t.city).await, "third_overdue_blacklist").len();
    }
    assert_eq!(proposing, 1);
    let proposed = app
        .get("/api/v1/blacklist?status=proposed", &t.district)
        .await
        .expect(200);
    assert_eq!(proposed["count"], 1);
}

async fn a_stalled_referral_goes_up_to_the_district(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = app.inspect(&t.inspector, app.unit_of(1), &["wiring"]).await[0];
    app.command(id, &t.inspector, "refer", json!({}))
        .await
        .expect(200);
    // Three working days pass without acceptance: the workflow escalates once, and the
    // rule takes it to the district.
    app.clock.advance(TimeDelta::days(7));
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.case(id, &t.city).await["case"]["escalation"], 1);
    app.rules_tick().await;
    let case = app.case(id, &t.city).await;
    assert_eq!(case["case"]["escalation"], 2);
    assert_eq!(case["case"]["state"], "referred");
    let events = rule_events(&case, "referral_stalled_to_district");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["command"], "rule_escalate");
    assert_eq!(events[0]["data"]["level"], "district");
    assert_eq!(
        events[0]["data"]["rule"]["trigger"],
        "referral_not_accepted"
    );
    assert_eq!(
        events[0]["actor"]["id"],
        "rule:referral_stalled_to_district@v1"
    );
    let messages = app
        .get(&format!("/api/v1/cases/{id}/messages"), &t.district)
        .await
        .expect(200);
    assert!(
        messages.to_string().contains("rule_escalation"),
        "{messages}"
    );
}

async fn a_critical_hazard_at_a_unit_with_history_gets_half_the_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let units = app.units_of(1);
    // A unit without history: the usual 24 hours.
    let fresh = ordered(&app, units[0], "ebike_indoor").await;
    // A unit with an earlier case.
    let known = units[1];
    let earlier = ordered(&app, known, "wiring").await;
    app.command_with_reason(
        earlier,
        &t.inspector,
        "reinspect",
        json!({ "passed": true }),
        None,
    )
    .await
    .expect(200);
    let id = ordered(&app, known, "ebike_indoor").await;
    app.rules_tick().await;
    let case = app.case(id, &t.city).await;
    let deadline = |c: &Value| {
        chrono::DateTime::parse_from_rfc3339(c["case"]["deadline_at"].as_str().unwrap())
            .unwrap()
            .to_utc()
    };
    let now = app.runtime().now();
    assert_eq!(deadline(&case), now + TimeDelta::hours(12));
    assert_eq!(
        deadline(&app.case(fresh, &t.city).await),
        now + TimeDelta::hours(24)
    );
    let events = rule_events(&case, "critical_at_known_unit");
    assert_eq!(events.len(), 2);
    assert!(rule_events(&app.case(fresh, &t.city).await, "critical_at_known_unit").is_empty());
    assert_eq!(events[0]["command"], "rule_move_deadline");
    assert_eq!(events[0]["data"]["hours"], -12);
    assert_eq!(events[1]["command"], "rule_notice");
    // The order's timer moved with the deadline.
    app.clock
        .advance(TimeDelta::hours(12) + TimeDelta::seconds(1));
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.state(id).await, "overdue");
    assert_eq!(app.state(fresh).await, "notified");
    // The landlord was told of the new deadline.
    let messages = app
        .get(&format!("/api/v1/cases/{id}/messages"), &t.landlord)
        .await
        .expect(200);
    assert!(
        messages.to_string().contains("deadline_moved"),
        "{messages}"
    );
}

async fn two_failed_reinspections_raise_priority_and_call_for_review(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = ordered(&app, app.unit_of(1), "wiring").await;
    for round in 1..=2 {
        app.command(
            id,
            &t.landlord,
            "report_fix",
            json!({ "evidence": [app.photo(&t.landlord).await] }),
        )
        .await
        .expect(200);
        app.command(id, &t.inspector, "reinspect", json!({ "passed": false }))
            .await
            .expect(200);
        app.rules_tick().await;
        let acted = rule_events(&app.case(id, &t.city).await, "repeated_failed_reinspection");
        assert_eq!(acted.len(), if round == 1 { 0 } else { 2 }, "round {round}");
    }
    let case = app.case(id, &t.city).await;
    assert_eq!(case["case"]["priority"], 1);
    assert_eq!(case["case"]["review_required"], true);
    let commands: Vec<&str> = rule_events(&case, "repeated_failed_reinspection")
        .iter()
        .map(|e| e["command"].as_str().unwrap().to_string().leak() as &str)
        .collect();
    assert_eq!(commands, ["rule_raise_priority", "rule_require_review"]);
    // The case is on the supervisor's review list.
    let waiting = app
        .get("/api/v1/cases?review=true", &t.district)
        .await
        .expect(200);
    let listed: Vec<i64> = waiting["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert!(listed.contains(&id), "{waiting}");
    assert!(
        waiting["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["review_required"] == true)
    );
    // Issue 22, 6: while the review waits, the case cannot be closed (a fix found on
    // re-inspection, a cancellation), the refusal names the review and writes
    // nothing, and closing is not offered.
    let before = app.fingerprint().await;
    let refused = app
        .command(id, &t.inspector, "reinspect", json!({ "passed": true }))
        .await
        .problem(409, Some("command"));
    assert!(
        refused["detail"].as_str().unwrap().contains("督导复核"),
        "{refused}"
    );
    app.command_with_reason(id, &t.district, "cancel", json!({}), Some("撤销"))
        .await
        .problem(409, Some("command"));
    assert_eq!(app.fingerprint().await, before);
    let offered = app.case(id, &t.inspector).await;
    assert!(
        !offered["commands"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "reinspect"),
        "{offered}"
    );
    // Only a supervisor clears the review, with a reason.
    app.command_with_reason(id, &t.inspector, "complete_review", json!({}), Some("ok"))
        .await
        .problem(403, None);
    app.command(id, &t.district, "complete_review", json!({}))
        .await
        .problem(422, Some("reason"));
    let after = app
        .command_with_reason(
            id,
            &t.district,
            "complete_review",
            json!({}),
            Some("已督办"),
        )
        .await
        .expect(200);
    assert_eq!(after["case"]["review_required"], false);
    assert_eq!(after["case"]["state"], "notified");
    let waiting = app
        .get("/api/v1/cases?review=true", &t.district)
        .await
        .expect(200);
    assert!(
        waiting["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != id),
        "reviewed cases leave the supervisor's review list"
    );
    // Reviewed, the case closes.
    let closed = app
        .command(id, &t.inspector, "reinspect", json!({ "passed": true }))
        .await
        .expect(200);
    assert_eq!(closed["case"]["state"], "fixed");
}

async fn a_hostile_rule_fails_alone_while_the_transition_commits(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    for (name, source) in [
        ("endless_loop", "loop { }"),
        ("exploding_string", "let s = \"x\"; loop { s += s; }"),
        ("deep_recursion", "fn f(n) { f(n + 1) } f(0)"),
    ] {
        app.post(
            "/api/v1/rules/versions",
            &t.city,
            &json!({ "name": name, "version": 1, "on": ["order_overdue"],
                     "zh": "恶意规则", "en": "hostile", "source": source }),
        )
        .await
        .expect(201);
    }
    // The same version of the e-bike rule, but acting at once.
    app.post(
        "/api/v1/rules/versions",
        &t.city,
        &json!({ "name": "ebike_overdue_to_fire", "version": 2, "on": ["order_overdue"],
                 "zh": "电动自行车逾期即移交消防", "en": "E-bike overdue goes to the fire brigade at once",
                 "source": "if hazard.category == \"ebike_indoor\" { [#{ action: \"refer\", department: \"fire\", reason: \"逾期\" }] } else { [] }" }),
    )
    .await
    .expect(201);
    let id = ordered(&app, app.unit_of(1), "ebike_indoor").await;
    app.clock.advance(TimeDelta::hours(25));
    assert_eq!(app.tick().await, 1, "the deadline's transition commits");
    assert_eq!(app.state(id).await, "overdue");
    let done = app.rules_tick().await;
    assert_eq!(done.failures, 3);
    let case = app.case(id, &t.city).await;
    assert_eq!(
        case["case"]["state"], "referred",
        "the good rule beside them still acts"
    );
    assert_eq!(
        rule_events(&case, "ebike_overdue_to_fire")[0]["actor"]["id"],
        "rule:ebike_overdue_to_fire@v2"
    );
    let jobs = app
        .get(&format!("/api/v1/cases/{id}/rule-jobs"), &t.inspector)
        .await
        .expect(200);
    let overdue = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["trigger"] == "order_overdue")
        .unwrap();
    let failed: Vec<&Value> = overdue["outcome"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("failed").is_some())
        .collect();
    assert_eq!(failed.len(), 3, "{overdue}");
    assert!(
        failed.iter().all(|r| r["failed"]["kind"] == "limit"),
        "{overdue}"
    );
    let rules = app.get("/api/v1/rules", &t.city).await.expect(200);
    assert!(rules["failures"].as_u64().unwrap() >= 3);
}

async fn publishing_a_rule_version_takes_effect_without_a_restart(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let t = app.tokens.clone();
    let draft = |version: u32, source: &str| {
        json!({ "name": "ebike_overdue_to_fire", "version": version, "on": ["order_overdue", "daily"],
                "zh": "电动自行车逾期即移交消防", "en": "E-bike overdue goes to the fire brigade at once",
                "source": source })
    };
    let at_once = "if hazard.category == \"ebike_indoor\" && hazard.state == \"overdue\" { [#{ action: \"refer\", department: \"fire\", reason: \"逾期\" }] } else { [] }";
    // Refused, changing nothing: not a city supervisor, an old version, a broken
    // script, an unknown event.
    let before = app.fingerprint().await;
    app.post("/api/v1/rules/versions", &t.district, &draft(2, at_once))
        .await
        .problem(403, None);
    app.post("/api/v1/rules/versions", &t.city, &draft(1, at_once))
        .await
        .problem(422, Some("version"));
    app.post("/api/v1/rules/versions", &t.city, &draft(2, "if ("))
        .await
        .problem(422, Some("source"));
    let mut bad = draft(2, at_once);
    bad["on"] = json!([]);
    app.post("/api/v1/rules/versions", &t.city, &bad)
        .await
        .problem(422, Some("on"));
    bad["on"] = json!(["daily"]);
    bad["name"] = json!("Bad Name");
    app.post("/api/v1/rules/versions", &t.city, &bad)
        .await
        .problem(422, Some("name"));
    bad["name"] = json!("ebike_overdue_to_fire");
    bad["zh"] = json!(" ");
    app.post("/api/v1/rules/versions", &t.city, &bad)
        .await
        .problem(422, Some("zh"));
    bad["on"] = json!(["whenever"]);
    app.post("/api/v1/rules/versions", &t.city, &bad)
        .await
        .problem(422, Some("on[0]"));
    assert_eq!(app.fingerprint().await, before);

    // A second process on the same database, running version 1.
    let other = anju_engine::runtime::Runtime::start(
        app.db.store().await,
        std::sync::Arc::new(app.clock.clone()),
        anju_engine::runtime::Config::default(),
    )
    .await
    .unwrap();
    let version_in = |rt: &anju_engine::runtime::Runtime| {
        rt.rules().rule("ebike_overdue_to_fire").unwrap().0.version
    };
    assert_eq!(version_in(&other), 1);

    let published = app
        .post("/api/v1/rules/versions", &t.city, &draft(2, at_once))
        .await
        .expect(201);
    assert_eq!(published["version"], 2);
    assert_eq!(version_in(app.runtime()), 2, "in force here at once");
    // The other process takes it up at its rule worker's next step.
    assert_eq!(other.run_rule_jobs().await.unwrap().jobs, 0);
    assert_eq!(version_in(&other), 2);
    other.shutdown().await;
    assert_eq!(published["published_by"], "supervisor:1");
    let rules = app.get("/api/v1/rules", &t.district).await.expect(200);
    let ebike = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ebike_overdue_to_fire")
        .unwrap();
    assert_eq!(ebike["version"], 2);
    assert_eq!(ebike["script_sha256"], published["script_sha256"]);

    let id = ordered(&app, app.unit_of(1), "ebike_indoor").await;
    app.clock.advance(TimeDelta::hours(25));
    app.tick().await;
    app.rules_tick().await;
    assert_eq!(app.state(id).await, "referred", "version 2 acts at once");
    // A restarted service (or a second process) runs the published version too.
    app.restart().await;
    let rules = app.get("/api/v1/rules", &t.city).await.expect(200);
    assert!(rules.to_string().contains("\"version\":2"));
}

async fn dry_runs_and_backtests_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let units = app.units_of(1);
    let a = ordered(&app, units[0], "ebike_indoor").await;
    let b = ordered(&app, units[1], "ebike_indoor").await;
    ordered(&app, units[2], "wiring").await;
    app.clock.advance(TimeDelta::hours(25));
    assert_eq!(app.tick().await, 2);
    app.rules_tick().await;
    let draft = json!({ "name": "ebike_at_once", "version": 1, "on": ["order_overdue"],
        "zh": "电动自行车逾期即移交消防", "en": "E-bike overdue goes to the fire brigade at once",
        "source": "if hazard.category == \"ebike_indoor\" { [#{ action: \"refer\", department: \"fire\", reason: \"逾期\" }] } else { [] }" });
    let before = app.fingerprint().await;
    let one = app
        .post(
            "/api/v1/rules/dry-run",
            &t.district,
            &json!({ "rule": draft, "case_id": a }),
        )
        .await
        .expect(200);
    assert_eq!(one["evaluations"], 1);
    assert_eq!(one["actions"]["refer"], 1);
    assert_eq!(one["samples"][0]["actions"][0]["department"], "fire");
    // Over the last 7 days: the two overdue events.
    let back = app
        .post(
            "/api/v1/rules/dry-run",
            &t.district,
            &json!({ "rule": draft, "days": 7 }),
        )
        .await
        .expect(200);
    assert_eq!(back["evaluations"], 2);
    assert_eq!(back["actions"]["refer"], 2);
    let mut cases: Vec<i64> = back["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["case_id"].as_i64().unwrap())
        .collect();
    cases.sort_unstable();
    assert_eq!(cases, [a, b]);
    // A hostile draft fails in its own evaluation.
    let mut hostile = draft.clone();
    hostile["source"] = json!("loop { }");
    let failed = app
        .post(
            "/api/v1/rules/dry-run",
            &t.district,
            &json!({ "rule": hostile, "case_id": a }),
        )
        .await
        .expect(200);
    assert_eq!(failed["failures"], 1);
    // Bad requests.
    app.post(
        "/api/v1/rules/dry-run",
        &t.district,
        &json!({ "rule": draft }),
    )
    .await
    .problem(422, Some("case_id"));
    app.post(
        "/api/v1/rules/dry-run",
        &t.district,
        &json!({ "rule": draft, "days": 0 }),
    )
    .await
    .problem(422, Some("days"));
    app.post(
        "/api/v1/rules/dry-run",
        &t.landlord,
        &json!({ "rule": draft, "case_id": a }),
    )
    .await
    .problem(403, None);
    assert_eq!(app.fingerprint().await, before, "dry runs change nothing");
    assert_eq!(app.state(a).await, "overdue");
}

/// The routing table is data: category (its department kind, from the taxonomy) ×
/// district (the department directory) → department; a referral goes where it says.
async fn referrals_go_where_the_routing_table_says(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let all = app.get("/api/v1/routing", &t.district).await.expect(200);
    let routes = all["routes"].as_array().unwrap();
    assert!(!routes.is_empty());
    // The case's district, as the table lists it.
    let id = app
        .inspect(&t.inspector, app.unit_of(1), &["gas_heater"])
        .await[0];
    let district = app.case(id, &t.city).await["case"]["district_code"].clone();
    let here = app
        .get(
            &format!("/api/v1/routing?district={}", district.as_str().unwrap()),
            &t.inspector,
        )
        .await
        .expect(200);
    let rows = here["routes"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["district_code"] == district));
    let gas = rows.iter().find(|r| r["category"] == "gas_heater").unwrap();
    assert_eq!(gas["department_kind"], "gas");
    let case = app
        .command(id, &t.inspector, "refer", json!({}))
        .await
        .expect(200);
    assert_eq!(case["case"]["department_id"], gas["department"]["id"]);
    let ebike = rows
        .iter()
        .find(|r| r["category"] == "ebike_indoor")
        .unwrap();
    assert_eq!(ebike["department"]["id"], 1, "the district's fire brigade");
    app.get("/api/v1/routing?district=999999", &t.inspector)
        .await
        .problem(422, Some("district"));
    app.get("/api/v1/routing", &t.landlord)
        .await
        .problem(403, None);
}

/// The next year's calendar, made for the tests (holding New Year's Day 2027 only).
const CALENDAR_2027_TEST: &str = include_str!("../fixtures/calendar-2027-test.toml");

/// Issue 22, 4: the calendar as data. A referral made on 30 December counts into 2027,
/// a year not yet published: its deadline is provisional, said so. The city's
/// supervisors are warned from 60 days before the calendar's end (not at 61), once. A
/// fixture marked as test data is refused unless asked for; imported, it is in force at
/// once, the referral's timer is re-dated by one audited system event (once for the
/// version, however often the worker runs), no longer provisional, and both versions
/// are kept with when they took effect.
async fn a_new_calendar_redates_an_open_referral_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let china = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    // 61 days before the end: no warning; 60: the warning, once.
    app.clock.set(china("2026-10-31T12:00:00+08:00"));
    assert!(!app.runtime().calendar_step().await.unwrap().warned);
    app.clock.set(china("2026-11-01T12:00:00+08:00"));
    assert!(app.runtime().calendar_step().await.unwrap().warned);
    assert!(!app.runtime().calendar_step().await.unwrap().warned);
    let tick = app
        .runtime()
        .deliver_outbox(&[std::sync::Arc::new(anju_engine::outbox::LogChannel)])
        .await
        .unwrap();
    assert!(tick.delivered >= 1, "{tick:?}");
    let inbox = app.get("/api/v1/me/messages", &t.city).await.expect(200);
    let warning = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["template"] == "calendar_ending")
        .cloned()
        .unwrap_or_else(|| panic!("{inbox}"));
    assert!(
        warning["subject"].as_str().unwrap().contains("2026-12-31"),
        "{warning}"
    );
    // Not a district supervisor's.
    let district = app
        .get("/api/v1/me/messages", &t.district)
        .await
        .expect(200);
    assert!(
        !district.to_string().contains("calendar_ending"),
        "{district}"
    );
    let metrics = app
        .send(app.client.get(format!("{}/metrics", app.base)))
        .await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("anju_calendar_days_left 60"),
        "{:?}",
        metrics.body
    );

    // A referral on Wednesday 30 December: three working days reach into 2027.
    app.clock.set(china("2026-12-30T10:00:00+08:00"));
    let id = app.inspect(&t.inspector, app.unit_of(1), &["wiring"]).await[0];
    let referred = app
        .command(id, &t.inspector, "refer", json!({ "note": "需执法" }))
        .await
        .expect(200);
    assert_eq!(
        acceptance_due(&referred),
        china("2027-01-05T00:00:00+08:00")
    );
    assert_eq!(referred["timers"][0]["provisional"], true, "{referred}");
    let page = app
        .client
        .get(format!("{}/cases/{id}", app.base))
        .header("cookie", format!("anju_session={}", t.inspector))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("暂定"), "provisional on the page");

    // Test data is refused unless asked for, and changes nothing.
    let system = anju_engine::auth::Principal::system();
    let before = app.fingerprint().await;
    let refused = app
        .runtime()
        .import_calendar(&system, CALENDAR_2027_TEST, "test", false)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("test data"), "{refused}");
    assert_eq!(app.fingerprint().await, before);
    // Only those who keep the calendar import it.
    let inspector = app
        .runtime()
        .authenticate(&t.inspector)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        app.runtime()
            .import_calendar(&inspector, CALENDAR_2027_TEST, "test", true)
            .await,
        Err(anju_engine::Error::Forbidden(_))
    ));
    let status = app
        .runtime()
        .import_calendar(&system, CALENDAR_2027_TEST, "test", true)
        .await
        .unwrap();
    assert_eq!(status.version, 2);
    assert_eq!(status.years, [2026, 2027]);
    // The same version again is refused.
    assert!(matches!(
        app.runtime()
            .import_calendar(&system, CALENDAR_2027_TEST, "test", true)
            .await,
        Err(anju_engine::Error::Conflict(_))
    ));
    let first = app.runtime().calendar_step().await.unwrap();
    assert_eq!(first.redated, 1, "{first:?}");
    assert_eq!(
        app.runtime().redate_timers().await.unwrap(),
        0,
        "once per version"
    );
    let case = app.case(id, &t.city).await;
    assert_eq!(acceptance_due(&case), china("2027-01-06T00:00:00+08:00"));
    assert_eq!(case["timers"][0]["provisional"], false);
    let redated: Vec<&Value> = case["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["command"] == "redate")
        .collect();
    assert_eq!(redated.len(), 1, "{case}");
    assert_eq!(redated[0]["actor"]["role"], "system");
    assert_eq!(redated[0]["data"]["calendar_version"], 2);
    assert_eq!(redated[0]["data"]["due_before"], "2027-01-04T16:00:00Z");
    // The timer fires at its new time, not the old.
    app.clock.set(china("2027-01-05T12:00:00+08:00"));
    assert_eq!(app.tick().await, 0);
    app.clock.set(china("2027-01-06T00:00:01+08:00"));
    assert_eq!(app.tick().await, 1);
    let versions = app.runtime().calendar_versions(&system).await.unwrap();
    let kept: Vec<(i64, &str)> = versions
        .iter()
        .map(|v| (v.version, v.imported_by.as_str()))
        .collect();
    assert_eq!(kept, [(1, "seed"), (2, "test")]);
    assert!(versions[1].test_data && !versions[0].test_data);
}

backend_tests!(
    a_new_calendar_redates_an_open_referral_once,
    referrals_go_where_the_routing_table_says,
    overdue_ebike_charging_goes_to_the_fire_brigade_by_the_daily_sweep,
    a_third_overdue_order_proposes_the_landlord_once,
    a_stalled_referral_goes_up_to_the_district,
    overdue_orders_at_once_propose_the_landlord_once,
    a_critical_hazard_at_a_unit_with_history_gets_half_the_time,
    two_failed_reinspections_raise_priority_and_call_for_review,
    a_hostile_rule_fails_alone_while_the_transition_commits,
    publishing_a_rule_version_takes_effect_without_a_restart,
    dry_runs_and_backtests_change_nothing,
);
