//! One hazard case over HTTP through every path of the loop, on SQLite and PostgreSQL, with the manual clock moving past deadlines.

use chrono::{DateTime, TimeDelta};
use serde_json::{Value, json};

use anju_engine::calendar::Calendar;
use anju_engine::domain::Role;
use anju_engine::time::Clock;
use anju_tests::{
    Backend, TestApp, acceptance_due, backend_tests, history_commands as commands, spawn_app,
};

fn timer_kinds(case: &Value) -> Vec<String> {
    case["timers"]
        .as_array()
        .expect("timers")
        .iter()
        .map(|t| t["kind"].as_str().expect("kind").to_string())
        .collect()
}

/// The case as the issuer of a command sees it afterwards (`GET /cases/{id}`), once the
/// command's answer proved to hold the case as committed and the event it added, and
/// not the whole history.
async fn viewed(app: &TestApp, id: i64, token: &str, answer: Value) -> Value {
    let view = app.case(id, token).await;
    assert_eq!(answer["case"], view["case"]);
    let added = answer["events"].as_array().expect("events");
    assert_eq!(added.len(), 1, "{answer}");
    assert_eq!(Some(&added[0]), view["history"].as_array().unwrap().last());
    assert!(answer.get("history").is_none() && answer.get("referrals").is_none());
    view
}

/// A department has 3 working days to accept a referral: counted on the calendar, so a
/// make-up Sunday counts and the Mid-Autumn holiday does not.
async fn acceptance_sla_counts_working_days(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let china = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    for (k, (referred_at, due)) in [
        // Friday 18 Sep → Sunday 20 (worked), Monday 21, Tuesday 22.
        ("2026-09-18T10:00:00+08:00", "2026-09-23T00:00:00+08:00"),
        // Thursday 24 Sep, before Mid-Autumn (25–27) → Monday 28 to Wednesday 30.
        ("2026-09-24T16:00:00+08:00", "2026-10-01T00:00:00+08:00"),
        // Wednesday 30 Sep, before National Day (1–7 Oct) → 8, 9 and Saturday 10 Oct.
        ("2026-09-30T09:00:00+08:00", "2026-10-11T00:00:00+08:00"),
    ]
    .into_iter()
    .enumerate()
    {
        app.clock.set(china(referred_at));
        // A unit of its own each time (a second finding on one unit would join its case).
        let unit = app.units_of(1)[k];
        let id = app.inspect(&t.inspector, unit, &["wiring"]).await[0];
        let case = app
            .command(id, &t.inspector, "refer", json!({ "note": "需执法" }))
            .await
            .expect(200);
        assert_eq!(case["workflow_version"], 6);
        assert_eq!(acceptance_due(&case), china(due), "referred {referred_at}");
        app.clock.set(china(due) - TimeDelta::seconds(1));
        assert_eq!(app.tick().await, 0, "not yet due ({referred_at})");
        assert_eq!(app.case(id, &t.fire).await["case"]["escalation"], 0);
        app.clock.set(china(due) + TimeDelta::seconds(1));
        assert_eq!(app.tick().await, 1, "due ({referred_at})");
        assert_eq!(app.case(id, &t.fire).await["case"]["escalation"], 1);
    }
}

async fn open_case(app: &TestApp, category: &str) -> i64 {
    let unit = app.unit_of(1);
    let ids = app.inspect(&app.tokens.inspector, unit, &[category]).await;
    assert_eq!(ids.len(), 1);
    ids[0]
}

async fn fixed_on_first_reinspection(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = open_case(&app, "ebike_indoor").await;
    let case = app.case(id, &t.inspector).await;
    assert_eq!(case["case"]["state"], "discovered");
    assert_eq!(
        case["case"]["party_id"], 1,
        "attributed to the unit's landlord"
    );
    assert_eq!(
        case["commands"],
        json!(["dismiss", "mark_duplicate", "notify", "refer"])
    );

    let case = app
        .command(
            id,
            &t.inspector,
            "notify",
            json!({ "requirements": "电动车移出室内，停放至集中充电点" }),
        )
        .await
        .expect(200);
    assert_eq!(case["case"]["state"], "notified");
    assert_eq!(case["case"]["version"], 2);
    // A critical e-bike hazard has 24 hours.
    assert_eq!(case["case"]["deadline_at"], "2026-03-03T01:00:00Z");
    assert_eq!(case["case"]["deadline_local"], "2026-03-03 09:00 (UTC+8)");
    assert_eq!(timer_kinds(&case), ["order_deadline"]);
    assert_eq!(case["timers"][0]["due_at"], "2026-03-03T01:00:00Z");

    // The landlord sees the order, in Chinese first.
    let orders = app
        .get("/api/v1/landlords/1/orders", &t.landlord)
        .await
        .expect(200);
    let order = &orders["orders"][0];
    assert_eq!(order["case"]["id"], id);
    assert!(order["subject"].as_str().unwrap().starts_with("整改通知书"));
    assert!(order["body"].as_str().unwrap().contains("电动车移出室内"));

    app.clock.advance(TimeDelta::hours(2));
    app.command(id, &t.landlord, "acknowledge", json!({}))
        .await
        .expect(200);
    let case = app
        .command(
            id,
            &t.landlord,
            "report_fix",
            json!({ "evidence": [app.photo(&t.landlord).await] }),
        )
        .await
        .expect(200);
    assert_eq!(
        timer_kinds(&case),
        ["reinspection_due"],
        "the deadline stops when the fix is reported"
    );
    let case = app
        .command(
            id,
            &t.inspector,
            "reinspect",
            json!({ "passed": true, "note": "已整改" }),
        )
        .await
        .expect(200);
    let case = viewed(&app, id, &t.inspector, case).await;
    assert_eq!(case["case"]["state"], "fixed");
    assert_eq!(case["terminal"], true);
    assert!(case["timers"].as_array().unwrap().is_empty());
    assert_eq!(case["case"]["closed_at"], "2026-03-02T03:00:00Z");
    assert_eq!(
        commands(&case),
        ["open", "notify", "acknowledge", "report_fix", "reinspect"]
    );
    let roles: Vec<&str> = case["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "inspector",
            "inspector",
            "landlord",
            "landlord",
            "inspector"
        ]
    );
    assert_eq!(case["history"][4]["data"]["passed"], true);

    // Nothing left to fire, however long we wait.
    app.clock.advance(TimeDelta::days(30));
    assert_eq!(app.tick().await, 0);
    assert_eq!(app.state(id).await, "fixed");

    let messages = app
        .get(&format!("/api/v1/cases/{id}/messages"), &t.inspector)
        .await
        .expect(200);
    let templates: Vec<&str> = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["template"].as_str().unwrap())
        .collect();
    assert_eq!(
        templates,
        [
            "rectification_order",
            "order_acknowledged",
            "fix_reported",
            "case_fixed"
        ]
    );
    // The landlord sees only what was addressed to them.
    let theirs = app
        .get(&format!("/api/v1/cases/{id}/messages"), &t.landlord)
        .await
        .expect(200);
    let templates: Vec<&str> = theirs["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["template"].as_str().unwrap())
        .collect();
    assert_eq!(templates, ["rectification_order", "case_fixed"]);
}

async fn failed_reinspection_issues_a_new_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = open_case(&app, "gas_heater").await;
    let case = app
        .command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    assert_eq!(
        case["case"]["deadline_at"], "2026-03-05T01:00:00Z",
        "a major gas hazard has 3 days"
    );
    app.clock.advance(TimeDelta::hours(30));
    app.command(
        id,
        &t.landlord,
        "report_fix",
        json!({ "evidence": [app.photo(&t.landlord).await] }),
    )
    .await
    .expect(200);
    app.clock.advance(TimeDelta::hours(10));
    let case = app
        .command(
            id,
            &t.inspector,
            "reinspect",
            json!({ "passed": false, "deadline_hours": 48 }),
        )
        .await
        .expect(200);
    assert_eq!(case["case"]["state"], "notified");
    assert_eq!(case["case"]["order_no"], 2);
    assert_eq!(
        case["case"]["deadline_at"], "2026-03-05T17:00:00Z",
        "48 hours from the re-inspection"
    );
    assert_eq!(timer_kinds(&case), ["order_deadline"]);
    let orders = app
        .get("/api/v1/landlords/1/orders", &t.landlord)
        .await
        .expect(200);
    assert!(
        orders["orders"][0]["subject"]
            .as_str()
            .unwrap()
            .contains(&format!("{id}-2"))
    );
    app.command(
        id,
        &t.landlord,
        "report_fix",
        json!({ "evidence": [app.photo(&t.landlord).await] }),
    )
    .await
    .expect(200);
    let case = app
        .command(id, &t.inspector, "reinspect", json!({ "passed": true }))
        .await
        .expect(200);
    let case = viewed(&app, id, &t.inspector, case).await;
    assert_eq!(case["case"]["state"], "fixed");
    assert_eq!(
        commands(&case),
        [
            "open",
            "notify",
            "report_fix",
            "reinspect",
            "report_fix",
            "reinspect"
        ]
    );
    // The first order's deadline never fires: it was cancelled with the fix report.
    app.clock.advance(TimeDelta::days(10));
    assert_eq!(app.tick().await, 0);
}

async fn overdue_referral_enforcement_feedback_closed(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = open_case(&app, "ebike_indoor").await;
    app.command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    // One minute before the deadline nothing fires; one minute after, it fires once.
    app.clock
        .advance(TimeDelta::hours(24) - TimeDelta::minutes(1));
    assert_eq!(app.tick().await, 0);
    assert_eq!(app.state(id).await, "notified");
    app.clock.advance(TimeDelta::minutes(2));
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.tick().await, 0);
    let case = app.case(id, &t.inspector).await;
    assert_eq!(case["case"]["state"], "overdue");
    let last = case["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["command"], "deadline_passed");
    assert_eq!(
        last["actor"],
        json!({ "role": "system", "id": "timer:order_deadline" })
    );
    let overdue = app
        .get("/api/v1/cases?overdue=true", &t.district)
        .await
        .expect(200);
    assert_eq!(overdue["cases"].as_array().unwrap().len(), 1);
    assert_eq!(overdue["cases"][0]["id"], id);

    // Referred by category and district: the first district's fire brigade.
    let case = app
        .command(id, &t.inspector, "refer", json!({ "note": "逾期未改" }))
        .await
        .expect(200);
    let case = viewed(&app, id, &t.inspector, case).await;
    assert_eq!(case["case"]["state"], "referred");
    assert_eq!(case["case"]["department_id"], 1);
    assert_eq!(case["referrals"][0]["status"], "pending");
    assert_eq!(timer_kinds(&case), ["acceptance_sla"]);
    let referrals = app
        .get("/api/v1/departments/1/referrals", &t.fire)
        .await
        .expect(200);
    assert_eq!(referrals["referrals"][0]["case"]["id"], id);
    let other = app
        .get("/api/v1/departments/2/referrals", &t.other_fire)
        .await
        .expect(200);
    assert!(other["referrals"].as_array().unwrap().is_empty());
    app.get(&format!("/api/v1/cases/{id}"), &t.other_fire)
        .await
        .problem(404, None);

    // Not accepted within 3 working days: escalated, still waiting for the department.
    let due = acceptance_due(&case);
    assert_eq!(
        due,
        Calendar::builtin().add_working_days(app.clock.now(), 3),
        "the end of the third working day"
    );
    app.clock.set(due - TimeDelta::minutes(1));
    assert_eq!(app.tick().await, 0);
    app.clock.set(due + TimeDelta::minutes(1));
    assert_eq!(app.tick().await, 1);
    let case = app.case(id, &t.fire).await;
    assert_eq!(case["case"]["state"], "referred");
    assert_eq!(case["case"]["escalation"], 1);

    app.command(id, &t.fire, "accept", json!({}))
        .await
        .expect(200);
    let case = app
        .command(id, &t.fire, "record_result", json!({ "result": "fine", "fine_amount": 5000, "decision_no": "穗消罚决字〔2026〕001号", "evidence": [app.document(&t.fire, "处罚决定书").await] }))
        .await
        .expect(200);
    let case = viewed(&app, id, &t.fire, case).await;
    assert_eq!(case["case"]["state"], "enforced");
    assert_eq!(case["referrals"][0]["status"], "completed");
    assert_eq!(case["referrals"][0]["result"]["fine_amount"], 5000.0);
    let messages = app
        .get(&format!("/api/v1/cases/{id}/messages"), &t.inspector)
        .await
        .expect(200);
    let feedback = messages["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(feedback["template"], "enforcement_feedback");
    assert_eq!(feedback["recipient_kind"], "inspector");
    assert!(
        feedback["body"]
            .as_str()
            .unwrap()
            .contains("罚款 fine ¥5000.00")
    );

    let case = app
        .command(id, &t.inspector, "close", json!({ "outcome": "fixed" }))
        .await
        .expect(200);
    let case = viewed(&app, id, &t.inspector, case).await;
    assert_eq!(case["case"]["state"], "fixed");
    assert_eq!(
        commands(&case),
        [
            "open",
            "notify",
            "deadline_passed",
            "refer",
            "acceptance_overdue",
            "accept",
            "record_result",
            "close"
        ]
    );
}

async fn returned_referral_is_rerouted(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = open_case(&app, "three_in_one").await;
    app.command(id, &t.inspector, "refer", json!({}))
        .await
        .expect(200);
    let case = app
        .command_with_reason(
            id,
            &t.fire,
            "return_referral",
            json!({ "reason_code": "wrong_department" }),
            Some("属公安管辖"),
        )
        .await
        .expect(200);
    let case = viewed(&app, id, &t.fire, case).await;
    assert_eq!(case["case"]["state"], "returned");
    assert_eq!(case["case"]["department_id"], Value::Null);
    assert_eq!(case["referrals"][0]["status"], "returned");
    assert_eq!(case["referrals"][0]["reason_code"], "wrong_department");
    let messages = app
        .get(&format!("/api/v1/cases/{id}/messages"), &t.inspector)
        .await
        .expect(200);
    let back = messages["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(back["template"], "referral_returned");
    assert!(back["body"].as_str().unwrap().contains("属公安管辖"));

    // The fire brigade still sees the case it returned, but may no longer act on it.
    app.command(id, &t.fire, "accept", json!({}))
        .await
        .problem(403, None);

    // Re-routed to the district's police (department 12), with the reason; a plain
    // `refer` or a re-route without a reason is refused.
    let police = app.token(Role::Department, 12).await;
    app.command(id, &t.inspector, "refer", json!({ "department_id": 12 }))
        .await
        .problem(409, None);
    app.command(id, &t.inspector, "reroute", json!({ "department_id": 12 }))
        .await
        .problem(422, Some("reason"));
    let case = app
        .command_with_reason(
            id,
            &t.inspector,
            "reroute",
            json!({ "department_id": 12 }),
            Some("属公安管辖，改派派出所"),
        )
        .await
        .expect(200);
    let case = viewed(&app, id, &t.inspector, case).await;
    assert_eq!(case["case"]["department_id"], 12);
    assert_eq!(case["referrals"].as_array().unwrap().len(), 2);
    app.command(id, &police, "accept", json!({}))
        .await
        .expect(200);
    app.command(
        id,
        &police,
        "record_result",
        json!({ "result": "no_violation", "evidence": [app.photo(&police).await] }),
    )
    .await
    .expect(200);
    let case = app
        .command(id, &t.inspector, "close", json!({ "outcome": "not_fixed" }))
        .await
        .expect(200);
    let case = viewed(&app, id, &t.inspector, case).await;
    assert_eq!(case["case"]["state"], "closed_not_fixed");
    assert_eq!(
        commands(&case),
        [
            "open",
            "refer",
            "return_referral",
            "reroute",
            "accept",
            "record_result",
            "close"
        ]
    );
    assert_eq!(case["history"][2]["reason"], "属公安管辖");
}

async fn closed_cases_can_be_reopened(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = open_case(&app, "sanitation").await;
    app.command(id, &t.inspector, "dismiss", json!({}))
        .await
        .problem(422, Some("reason"));
    app.command_with_reason(
        id,
        &t.inspector,
        "dismiss",
        json!({}),
        Some("临时堆放，已清理"),
    )
    .await
    .expect(200);
    assert_eq!(app.state(id).await, "not_a_hazard");
    app.command(id, &t.inspector, "notify", json!({}))
        .await
        .problem(409, Some("command"));
    let case = app
        .command_with_reason(id, &t.district, "reopen", json!({}), Some("居民再次投诉"))
        .await
        .expect(200);
    assert_eq!(case["case"]["state"], "discovered");
    assert_eq!(case["case"]["reopen_count"], 1);
    assert_eq!(case["case"]["closed_at"], Value::Null);
    let case = app
        .command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    assert_eq!(
        case["case"]["deadline_at"], "2026-03-17T01:00:00Z",
        "minor: 15 days"
    );
    let case = app
        .command_with_reason(id, &t.district, "cancel", json!({}), Some("重复录入"))
        .await
        .expect(200);
    assert_eq!(case["case"]["state"], "cancelled");
    assert!(
        case["timers"].as_array().unwrap().is_empty(),
        "closing cancels the deadline"
    );
}

async fn a_timer_survives_a_restart_and_fires_once(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let t = app.tokens.clone();
    let id = open_case(&app, "wiring").await;
    app.command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    app.clock.advance(TimeDelta::hours(12));
    app.restart().await;
    assert_eq!(app.tick().await, 0, "not due yet");
    app.clock.advance(TimeDelta::hours(61));
    app.restart().await;
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.tick().await, 0);
    let case = app.case(id, &t.inspector).await;
    assert_eq!(case["case"]["state"], "overdue");
    let fired = commands(&case)
        .iter()
        .filter(|c| *c == "deadline_passed")
        .count();
    assert_eq!(fired, 1);
}

async fn two_findings_open_two_cases_in_one_inspection(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let ids = app
        .inspect(&t.inspector, unit, &["wiring", "fire_equipment"])
        .await;
    assert_eq!(ids.len(), 2);
    let a = app.case(ids[0], &t.inspector).await;
    let b = app.case(ids[1], &t.inspector).await;
    assert_eq!(a["case"]["inspection_id"], b["case"]["inspection_id"]);
    assert_eq!(a["case"]["severity"], "major");
    assert_eq!(b["case"]["severity"], "general");
    let listed = app
        .get(&format!("/api/v1/cases?unit_id={unit}"), &t.inspector)
        .await
        .expect(200);
    let listed: Vec<i64> = listed["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [ids[1], ids[0]], "newest first");
    let by_category = app
        .get("/api/v1/cases?category=wiring", &t.district)
        .await
        .expect(200);
    assert_eq!(by_category["cases"].as_array().unwrap().len(), 1);
}

async fn responsibility_stays_with_the_party_at_discovery(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let before = app.inspect(&t.inspector, unit, &["wiring"]).await[0];
    // The unit changes hands: party 2 now answers for it.
    let changed = app
        .post(
            &format!("/api/v1/units/{unit}/parties"),
            &t.inspector,
            &json!({ "party_id": 2 }),
        )
        .await
        .expect(200);
    assert_eq!(changed["unit"]["party_id"], 2);
    let history = changed["parties"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["party_id"], 1);
    assert!(history[0]["to_at"].is_string(), "the old entry is closed");
    assert_eq!(history[1]["party_id"], 2);
    assert!(history[1]["to_at"].is_null());
    let after = app.inspect(&t.inspector, unit, &["sanitation"]).await[0];
    assert_eq!(
        app.case(before, &t.city).await["case"]["party_id"],
        1,
        "traced to who answered then"
    );
    assert_eq!(app.case(after, &t.city).await["case"]["party_id"], 2);
    // Each landlord sees their own case only.
    app.case(before, &t.landlord).await;
    app.get(&format!("/api/v1/cases/{after}"), &t.landlord)
        .await
        .problem(404, None);
    app.case(after, &t.other_landlord).await;
    app.get(&format!("/api/v1/cases/{before}"), &t.other_landlord)
        .await
        .problem(404, None);
    // Bad changes are refused and change nothing.
    let fp = app.fingerprint().await;
    app.post(
        &format!("/api/v1/units/{unit}/parties"),
        &t.inspector,
        &json!({ "party_id": 999999 }),
    )
    .await
    .problem(422, Some("party_id"));
    app.post(
        &format!("/api/v1/units/{unit}/parties"),
        &t.inspector,
        &json!({ "party_id": 2 }),
    )
    .await
    .problem(409, None);
    app.post(
        &format!("/api/v1/units/{unit}/parties"),
        &t.landlord,
        &json!({ "party_id": 1 }),
    )
    .await
    .problem(403, None);
    app.post(
        &format!("/api/v1/units/{unit}/parties"),
        &t.inspector,
        &json!({ "party_id": 1, "role": "owner" }),
    )
    .await
    .problem(422, Some("role"));
    assert_eq!(app.fingerprint().await, fp);
}

/// Every typed enforcement result is recorded with its evidence, feeds back to the
/// inspector, and closes the loop: fixed where the hazard is gone, not fixed otherwise.
async fn each_enforcement_result_closes_the_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let results = [
        ("warning", json!({}), "not_fixed", "closed_not_fixed"),
        (
            "fine",
            json!({ "fine_amount": 3000, "decision_no": "穗消罚决字〔2026〕007号" }),
            "not_fixed",
            "closed_not_fixed",
        ),
        (
            "sealing",
            json!({ "decision_no": "穗消封字〔2026〕002号" }),
            "not_fixed",
            "closed_not_fixed",
        ),
        ("order_stop_use", json!({}), "not_fixed", "closed_not_fixed"),
        (
            "prosecution",
            json!({ "decision_no": "穗公立〔2026〕015号" }),
            "not_fixed",
            "closed_not_fixed",
        ),
        ("rectified_on_site", json!({}), "fixed", "fixed"),
        ("no_violation", json!({}), "fixed", "fixed"),
    ];
    // Units of inspector 1's grids (1 and 2), one for each case.
    let units = app.inspector_units().await;
    assert!(units.len() >= 10, "{} units", units.len());
    for (k, (result, extra, outcome, closed)) in results.into_iter().enumerate() {
        let id = app.inspect(&t.inspector, units[k], &["wiring"]).await[0];
        app.command(id, &t.inspector, "refer", json!({}))
            .await
            .expect(200);
        app.command(id, &t.fire, "accept", json!({}))
            .await
            .expect(200);
        let mut data = json!({ "result": result });
        for (key, value) in extra.as_object().unwrap() {
            data[key] = value.clone();
        }
        // Without its evidence, a result is refused and nothing changes.
        let before = app.fingerprint().await;
        app.command(id, &t.fire, "record_result", data.clone())
            .await
            .problem(422, Some("data.evidence"));
        assert_eq!(app.fingerprint().await, before);
        let record = app.document(&t.fire, "执法记录").await;
        data["evidence"] = json!([app.photo(&t.fire).await, record]);
        let case = app
            .command(id, &t.fire, "record_result", data)
            .await
            .expect(200);
        let case = viewed(&app, id, &t.fire, case).await;
        assert_eq!(case["case"]["state"], "enforced", "{result}");
        assert_eq!(case["referrals"][0]["status"], "completed");
        assert_eq!(case["referrals"][0]["result"]["result"], result);
        assert_eq!(case["referrals"][0]["result"]["evidence"][1], json!(record));
        // The inspector hears of it.
        let messages = app
            .get(&format!("/api/v1/cases/{id}/messages"), &t.inspector)
            .await
            .expect(200);
        let last = messages["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["template"], "enforcement_feedback");
        assert_eq!(last["recipient_kind"], "inspector");
        let case = app
            .command(id, &t.inspector, "close", json!({ "outcome": outcome }))
            .await
            .expect(200);
        assert_eq!(case["case"]["state"], closed, "{result}");
        assert!(case["terminal"].as_bool().unwrap());
    }
    // A fine needs its amount.
    let id = app.inspect(&t.inspector, units[9], &["wiring"]).await[0];
    app.command(id, &t.inspector, "refer", json!({}))
        .await
        .expect(200);
    app.command(id, &t.fire, "accept", json!({}))
        .await
        .expect(200);
    app.command(
        id,
        &t.fire,
        "record_result",
        json!({ "result": "fine", "evidence": [app.photo(&t.fire).await] }),
    )
    .await
    .problem(422, Some("data.fine_amount"));
}

/// The shape of a case over HTTP is the API's own, written down here: a field the
/// engine renames or adds does not change it silently (the routes convert the engine's
/// records into their answers).
async fn a_case_answers_in_the_apis_own_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = open_case(&app, "wiring").await;
    let answer = app
        .command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    let view = app.case(id, &t.inspector).await;
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let case_keys = [
        "address",
        "category",
        "closed_at",
        "deadline_at",
        "deadline_local",
        "definition_id",
        "department_id",
        "district_code",
        "escalation",
        "evidence",
        "grid_id",
        "id",
        "inspection_id",
        "inspector_id",
        "lat",
        "lon",
        "note",
        "opened_at",
        "order_no",
        "party_id",
        "priority",
        "reopen_count",
        "review_required",
        "severity",
        "state",
        "street_id",
        "timer",
        "unit_id",
        "updated_at",
        "version",
    ];
    assert_eq!(keys(&view["case"]), case_keys);
    assert_eq!(keys(&answer["case"]), case_keys);
    assert_eq!(
        keys(&view),
        [
            "case",
            "commands",
            "evidence",
            "history",
            "referrals",
            "state_en",
            "state_zh",
            "terminal",
            "timers",
            "workflow",
            "workflow_version"
        ]
    );
    assert_eq!(
        keys(&answer),
        [
            "case",
            "commands",
            "events",
            "state_en",
            "state_zh",
            "terminal",
            "timers",
            "workflow",
            "workflow_version"
        ]
    );
    let event_keys = [
        "actor",
        "at",
        "command",
        "data",
        "from_state",
        "reason",
        "seq",
        "to_state",
    ];
    assert_eq!(keys(&view["history"][0]), event_keys);
    assert_eq!(keys(&answer["events"][0]), event_keys);
    assert_eq!(
        keys(&view["timers"][0]),
        [
            "case_id",
            "due_at",
            "fire_command",
            "kind",
            "provisional",
            "seq"
        ]
    );
    assert_eq!(keys(&answer["case"]["timer"]), keys(&view["timers"][0]));
}

/// The history pages: `GET /cases/{id}/events?after=` gives the events after a
/// sequence number, as many as asked, as the caller sees them in the whole case.
async fn the_history_pages_after_a_sequence_number(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let id = open_case(&app, "wiring").await;
    let photo = app.photo(&t.landlord).await;
    for (token, name, data) in [
        (&t.inspector, "notify", json!({})),
        (&t.landlord, "acknowledge", json!({})),
        (&t.landlord, "report_fix", json!({ "evidence": [photo] })),
    ] {
        app.command(id, token, name, data).await.expect(200);
    }
    for token in [&t.inspector, &t.landlord] {
        let whole = app.case(id, token).await["history"].clone();
        let whole = whole.as_array().unwrap();
        assert!(whole.len() >= 4);
        let page = app
            .get(&format!("/api/v1/cases/{id}/events?after=1&limit=2"), token)
            .await
            .expect(200);
        assert_eq!(page["events"].as_array().unwrap(), &whole[1..3].to_vec());
        assert_eq!(page["next_after"], whole[2]["seq"]);
        let rest = app
            .get(
                &format!("/api/v1/cases/{id}/events?after={}", whole[2]["seq"]),
                token,
            )
            .await
            .expect(200);
        assert_eq!(rest["events"].as_array().unwrap(), &whole[3..].to_vec());
        assert!(rest["next_after"].is_null());
    }
    app.get(&format!("/api/v1/cases/{id}/events"), &t.other_landlord)
        .await
        .expect(404);
}

backend_tests!(
    a_case_answers_in_the_apis_own_shape,
    the_history_pages_after_a_sequence_number,
    each_enforcement_result_closes_the_case,
    acceptance_sla_counts_working_days,
    fixed_on_first_reinspection,
    failed_reinspection_issues_a_new_order,
    overdue_referral_enforcement_feedback_closed,
    returned_referral_is_rerouted,
    closed_cases_can_be_reopened,
    a_timer_survives_a_restart_and_fires_once,
    two_findings_open_two_cases_in_one_inspection,
    responsibility_stays_with_the_party_at_discovery,
);
