//! Landlords' responsibility over HTTP, on both backends: a party's record and score, the blacklist from proposal to approval, appeal, lifting and expiry, public naming only after approval, agreements and insurance, and landlords seeing nothing of each other's.

use chrono::TimeDelta;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use anju_engine::domain::Role;
use anju_tests::{Backend, TestApp, backend_tests, spawn_app, spawn_app_with};

async fn named(app: &TestApp) -> Value {
    let reply = app
        .send(
            app.client
                .get(format!("{}/named", app.base))
                .header("accept", "application/json"),
        )
        .await;
    reply.expect(200)
}

async fn the_blacklist_from_proposal_to_appeal_and_public_naming(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    // A district supervisor proposes party 1.
    let entry = app
        .post(
            "/api/v1/blacklist",
            &t.district,
            &json!({ "party_id": 1, "reason": "拒不整改，多次逾期" }),
        )
        .await
        .expect(201);
    let id = entry["id"].as_i64().unwrap();
    assert_eq!(entry["status"], "proposed");
    assert_eq!(entry["source"], "supervisor:2");
    assert_eq!(entry["published"], false);
    // One open entry per party.
    app.post(
        "/api/v1/blacklist",
        &t.city,
        &json!({ "party_id": 1, "reason": "again" }),
    )
    .await
    .problem(409, None);
    // Not named while proposed; the party is not yet blacklisted.
    assert_eq!(named(&app).await["count"], 0);
    let record = app.get("/api/v1/parties/1", &t.landlord).await.expect(200);
    assert_eq!(record["blacklisted"], false);
    assert_eq!(record["blacklist"][0]["status"], "proposed");

    // Only a district or city supervisor decides; bad decisions change nothing.
    let before = app.fingerprint().await;
    app.post(
        &format!("/api/v1/blacklist/{id}/decision"),
        &t.inspector,
        &json!({ "approve": true }),
    )
    .await
    .problem(403, None);
    app.post(
        &format!("/api/v1/blacklist/{id}/decision"),
        &t.district,
        &json!({ "approve": true, "months": 0 }),
    )
    .await
    .problem(422, Some("months"));
    app.post(
        &format!("/api/v1/blacklist/{id}/decision"),
        &t.district,
        &json!({ "approve": false }),
    )
    .await
    .problem(422, Some("note"));
    app.post(
        &format!("/api/v1/blacklist/{id}/decision"),
        &t.district,
        &json!({ "approve": "yes" }),
    )
    .await
    .problem(400, Some("approve"));
    assert_eq!(app.fingerprint().await, before);

    // Approved for publication: now named, with the party's name and no phone.
    let approved = app
        .post(
            &format!("/api/v1/blacklist/{id}/decision"),
            &t.district,
            &json!({ "approve": true, "months": 6, "publish": true, "note": "经核实" }),
        )
        .await
        .expect(200);
    assert_eq!(approved["status"], "active");
    assert_eq!(approved["decided_by"], "supervisor:2");
    let public = named(&app).await;
    assert_eq!(public["count"], 1);
    assert_eq!(public["named"][0]["name"], approved["party_name"]);
    assert!(public["named"][0].get("phone").is_none());
    let html = app
        .client
        .get(format!("{}/named", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(html.status().as_u16(), 200);
    assert_eq!(html.headers()["cache-control"], "no-cache");
    let text = html.text().await.unwrap();
    assert!(text.contains("出租屋安全责任通报"));
    assert!(text.contains(approved["party_name"].as_str().unwrap()));
    let record = app.get("/api/v1/parties/1", &t.landlord).await.expect(200);
    assert_eq!(record["blacklisted"], true);
    assert!(record["score"].as_u64().unwrap() <= 70, "{record}");
    // Deciding twice is refused.
    app.post(
        &format!("/api/v1/blacklist/{id}/decision"),
        &t.district,
        &json!({ "approve": true }),
    )
    .await
    .problem(409, None);

    // The other landlord can neither see nor appeal it; the party appeals, once.
    assert_eq!(
        app.get("/api/v1/blacklist", &t.other_landlord)
            .await
            .expect(200)["count"],
        0
    );
    app.post(
        &format!("/api/v1/blacklist/{id}/appeal"),
        &t.other_landlord,
        &json!({ "appeal": "不是我" }),
    )
    .await
    .problem(404, None);
    app.post(
        &format!("/api/v1/blacklist/{id}/appeal"),
        &t.landlord,
        &json!({ "appeal": "" }),
    )
    .await
    .problem(422, Some("appeal"));
    let mine = app.get("/api/v1/blacklist", &t.landlord).await.expect(200);
    assert_eq!(mine["count"], 1);
    let appealed = app
        .post(
            &format!("/api/v1/blacklist/{id}/appeal"),
            &t.landlord,
            &json!({ "appeal": "已全部整改完毕，请求复核" }),
        )
        .await
        .expect(200);
    assert_eq!(appealed["status"], "appealed");
    app.post(
        &format!("/api/v1/blacklist/{id}/appeal"),
        &t.landlord,
        &json!({ "appeal": "again" }),
    )
    .await
    .problem(409, None);
    // The appeal is granted: lifted and no longer named.
    let lifted = app
        .post(
            &format!("/api/v1/blacklist/{id}/appeal-decision"),
            &t.district,
            &json!({ "upheld": false, "note": "复核属实，撤销" }),
        )
        .await
        .expect(200);
    assert_eq!(lifted["status"], "lifted");
    assert_eq!(named(&app).await["count"], 0);
    let record = app.get("/api/v1/parties/1", &t.district).await.expect(200);
    assert_eq!(record["blacklisted"], false);

    // A rejected proposal.
    let again = app
        .post(
            "/api/v1/blacklist",
            &t.district,
            &json!({ "party_id": 1, "reason": "复查" }),
        )
        .await
        .expect(201);
    let rejected = app
        .post(
            &format!("/api/v1/blacklist/{}/decision", again["id"]),
            &t.district,
            &json!({ "approve": false, "note": "证据不足" }),
        )
        .await
        .expect(200);
    assert_eq!(rejected["status"], "rejected");
}

async fn a_blacklisting_expires(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let entry = app
        .post(
            "/api/v1/blacklist",
            &t.city,
            &json!({ "party_id": 2, "reason": "群租违规" }),
        )
        .await
        .expect(201);
    let id = entry["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/blacklist/{id}/decision"),
        &t.city,
        &json!({ "approve": true, "months": 1, "publish": true }),
    )
    .await
    .expect(200);
    // Approved without publication, another party is not named.
    let other = app
        .post(
            "/api/v1/blacklist",
            &t.city,
            &json!({ "party_id": 1, "reason": "多次逾期" }),
        )
        .await
        .expect(201);
    app.post(
        &format!("/api/v1/blacklist/{}/decision", other["id"]),
        &t.city,
        &json!({ "approve": true, "months": 12 }),
    )
    .await
    .expect(200);
    assert_eq!(named(&app).await["count"], 1);
    // A supervisor lifts that one, with a note; lifting twice is refused.
    let lift = format!("/api/v1/blacklist/{}/lift", other["id"]);
    app.post(&lift, &t.city, &json!({ "note": "" }))
        .await
        .problem(422, Some("note"));
    let lifted = app
        .post(&lift, &t.city, &json!({ "note": "已整改到位，提前解除" }))
        .await
        .expect(200);
    assert_eq!(lifted["status"], "lifted");
    app.post(&lift, &t.city, &json!({ "note": "again" }))
        .await
        .problem(409, None);
    assert_eq!(
        app.get("/api/v1/parties/1", &t.landlord).await.expect(200)["blacklisted"],
        false
    );
    assert_eq!(
        app.get("/api/v1/parties/2", &t.other_landlord)
            .await
            .expect(200)["blacklisted"],
        true
    );
    app.clock.advance(TimeDelta::days(32));
    assert_eq!(named(&app).await["count"], 0);
    let record = app
        .get("/api/v1/parties/2", &t.other_landlord)
        .await
        .expect(200);
    assert_eq!(record["blacklisted"], false);
    assert_eq!(record["blacklist"][0]["status"], "expired");
    let expired = app
        .get("/api/v1/blacklist?status=expired", &t.city)
        .await
        .expect(200);
    assert_eq!(expired["count"], 1);
    assert_eq!(expired["entries"][0]["party_id"], 2);
    // An expired entry cannot be appealed.
    app.post(
        &format!("/api/v1/blacklist/{id}/appeal"),
        &t.other_landlord,
        &json!({ "appeal": "请求撤销" }),
    )
    .await
    .problem(409, None);
    app.get("/api/v1/blacklist?status=gone", &t.city)
        .await
        .problem(422, Some("status"));
}

async fn agreements_and_insurance_per_unit(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let path = format!("/api/v1/units/{unit}/responsibility");
    let none = app.get(&path, &t.landlord).await.expect(200);
    assert_eq!(none["agreement_valid"], false);
    assert_eq!(none["insured"], false);
    // Bad agreements are refused and change nothing.
    let agreements = format!("/api/v1/units/{unit}/agreements");
    let before = app.fingerprint().await;
    app.post(
        &agreements,
        &t.inspector,
        &json!({ "signer": "张三", "signed_on": "2026-01-01", "expires_on": "2025-12-31" }),
    )
    .await
    .problem(422, Some("expires_on"));
    app.post(
        &agreements,
        &t.inspector,
        &json!({ "signer": "张三", "signed_on": "2027-01-01", "expires_on": "2028-01-01" }),
    )
    .await
    .problem(422, Some("signed_on"));
    app.post(
        &agreements,
        &t.inspector,
        &json!({ "signer": " ", "signed_on": "2026-01-01", "expires_on": "2027-01-01" }),
    )
    .await
    .problem(422, Some("signer"));
    app.post(
        &agreements,
        &t.landlord,
        &json!({ "signer": "张三", "signed_on": "2026-01-01", "expires_on": "2027-01-01" }),
    )
    .await
    .problem(403, None);
    app.post(
        &agreements,
        &t.inspector,
        &json!({ "signer": "张三", "signed_on": "1 Jan", "expires_on": "2027-01-01" }),
    )
    .await
    .problem(422, Some("signed_on"));
    assert_eq!(app.fingerprint().await, before);
    // An expired agreement does not count; a current one does.
    app.post(
        &agreements,
        &t.inspector,
        &json!({ "signer": "张三", "signed_on": "2025-01-01", "expires_on": "2026-01-01" }),
    )
    .await
    .expect(201);
    assert_eq!(
        app.get(&path, &t.landlord).await.expect(200)["agreement_valid"],
        false
    );
    let signed = app
        .post(&agreements, &t.inspector, &json!({ "signer": "张三", "signed_on": "2026-02-01", "expires_on": "2027-01-31", "document": "doc:agreement-1" }))
        .await
        .expect(201);
    assert_eq!(signed["party_id"], 1);
    assert_eq!(
        app.get(&path, &t.landlord).await.expect(200)["agreement_valid"],
        true
    );
    // The landlord records the unit's insurance policy; a number is recorded once.
    let policies = format!("/api/v1/units/{unit}/policies");
    let policy = json!({ "insurer": "人保财险", "policy_no": "PICC-2026-0001", "coverage_yuan": 500000,
                         "starts_on": "2026-01-01", "ends_on": "2026-12-31" });
    app.post(&policies, &t.landlord, &policy).await.expect(201);
    app.post(&policies, &t.landlord, &policy)
        .await
        .problem(409, None);
    let mut zero = policy.clone();
    zero["policy_no"] = json!("PICC-2026-0002");
    zero["coverage_yuan"] = json!(0);
    app.post(&policies, &t.landlord, &zero)
        .await
        .problem(422, Some("coverage_yuan"));
    app.post(&policies, &t.other_landlord, &zero)
        .await
        .problem(404, None);
    let both = app.get(&path, &t.inspector).await.expect(200);
    assert_eq!(both["insured"], true);
    assert_eq!(both["agreements"].as_array().unwrap().len(), 2);
    // Past the agreement's expiry, the unit has none in force.
    app.clock.set(
        chrono::DateTime::parse_from_rfc3339("2027-02-15T10:00:00+08:00")
            .unwrap()
            .to_utc(),
    );
    let later = app.get(&path, &t.landlord).await.expect(200);
    assert_eq!(later["agreement_valid"], false);
    assert_eq!(later["insured"], false);
}

/// A unit whose party has no responsibility agreement in force is a finding of its own,
/// attributed to that party; once the agreement is recorded, it is not.
async fn a_unit_without_an_agreement_is_a_finding(backend: Backend) {
    let config = anju_engine::runtime::Config {
        agreement_findings: true,
        ..Default::default()
    };
    let app = spawn_app_with(backend, config).await;
    let t = &app.tokens;
    let units = app.units_of(1);
    let (bare, signed) = (units[0], units[1]);
    app.post(
        &format!("/api/v1/units/{signed}/agreements"),
        &t.inspector,
        &json!({ "signer": "业主", "signed_on": "2026-01-05", "expires_on": "2027-01-04" }),
    )
    .await
    .expect(201);
    let opened = app.inspect(&t.inspector, bare, &["wiring"]).await;
    assert_eq!(opened.len(), 2);
    let found = app.case(opened[1], &t.landlord).await;
    assert_eq!(found["case"]["category"], "no_agreement");
    assert_eq!(found["case"]["party_id"], 1);
    assert_eq!(
        app.inspect(&t.inspector, signed, &["wiring"]).await.len(),
        1
    );
    // An inspector who records it too does not make it twice; a second visit attaches
    // to the open case.
    let again = app.inspect(&t.inspector, units[2], &["no_agreement"]).await;
    assert_eq!(again.len(), 1);
    assert!(app.inspect(&t.inspector, bare, &[]).await.is_empty());
}

/// Sub-landlords and agents are registered, handed units, and answer for what is found
/// there from then on; the register lists them by kind within a supervisor's area.
async fn sub_landlords_are_registered_and_answer_for_their_units(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let before = app.fingerprint().await;
    app.post(
        "/api/v1/parties",
        &t.inspector,
        &json!({ "kind": "tenant", "name": "王五" }),
    )
    .await
    .problem(422, Some("kind"));
    app.post(
        "/api/v1/parties",
        &t.inspector,
        &json!({ "kind": "sublandlord", "name": " " }),
    )
    .await
    .problem(422, Some("name"));
    app.post(
        "/api/v1/parties",
        &t.inspector,
        &json!({ "kind": "sublandlord", "name": "王五", "phone": "call me" }),
    )
    .await
    .problem(422, Some("phone"));
    app.post(
        "/api/v1/parties",
        &t.landlord,
        &json!({ "kind": "sublandlord", "name": "王五" }),
    )
    .await
    .problem(403, None);
    assert_eq!(app.fingerprint().await, before);
    let party = app
        .post(
            "/api/v1/parties",
            &t.inspector,
            &json!({ "kind": "sublandlord", "name": "王五（二房东）", "phone": "138 0000 0000" }),
        )
        .await
        .expect(201);
    let id = party["id"].as_i64().unwrap();
    let unit = app.unit_of(1);
    app.post(
        &format!("/api/v1/units/{unit}/parties"),
        &t.inspector,
        &json!({ "party_id": id }),
    )
    .await
    .expect(200);
    let listed = app
        .get("/api/v1/parties?kind=sublandlord", &t.district)
        .await
        .expect(200);
    let found = listed["parties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .expect("listed in the district");
    assert_eq!(found["units"], 1);
    assert!(
        listed["parties"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["kind"] == "sublandlord")
    );
    // The sub-landlord now sees the unit, its new case, and its own record.
    let token = app.token(Role::Landlord, id).await;
    let case = app.inspect(&t.inspector, unit, &["wiring"]).await[0];
    assert_eq!(app.case(case, &token).await["case"]["party_id"], id);
    let units = app
        .get(&format!("/api/v1/landlords/{id}/units"), &token)
        .await
        .expect(200);
    assert_eq!(units["count"], 1);
    let record = app
        .get(&format!("/api/v1/parties/{id}"), &token)
        .await
        .expect(200);
    assert_eq!(record["kind"], "sublandlord");
    assert_eq!(record["cases_by_severity"]["major"], 1);
    app.get("/api/v1/parties", &t.landlord)
        .await
        .problem(403, None);
    app.get("/api/v1/parties?kind=owner", &t.city)
        .await
        .problem(422, Some("kind"));
    // Once blacklisted, the sub-landlord takes on no more units.
    let entry = app
        .post(
            "/api/v1/blacklist",
            &t.district,
            &json!({ "party_id": id, "reason": "违规分租" }),
        )
        .await
        .expect(201);
    app.post(
        &format!("/api/v1/blacklist/{}/decision", entry["id"]),
        &t.district,
        &json!({ "approve": true }),
    )
    .await
    .expect(200);
    let another = app.units_of(1)[1];
    let before = app.fingerprint().await;
    app.post(
        &format!("/api/v1/units/{another}/parties"),
        &t.inspector,
        &json!({ "party_id": id }),
    )
    .await
    .problem(409, None);
    assert_eq!(app.fingerprint().await, before);
}

/// The landlord's side of the API, end to end: their units with grades and deadlines,
/// the order, acknowledging it, reporting the fix with evidence, the unit's grade
/// history; and none of it for another landlord.
async fn a_landlord_works_their_orders(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let id = app.inspect(&t.inspector, unit, &["wiring"]).await[0];
    app.command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    let units = app
        .get("/api/v1/landlords/1/units", &t.landlord)
        .await
        .expect(200);
    let mine = units["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == unit)
        .unwrap()
        .clone();
    assert_eq!(mine["open_orders"], 1);
    assert!(mine["next_deadline"].is_string());
    assert!(mine["stars"].is_number(), "{mine}");
    let orders = app
        .get("/api/v1/landlords/1/orders", &t.landlord)
        .await
        .expect(200);
    assert!(
        orders.to_string().contains(&format!("\"id\":{id}")),
        "{orders}"
    );
    app.command(id, &t.landlord, "acknowledge", json!({}))
        .await
        .expect(200);
    app.command(id, &t.landlord, "report_fix", json!({}))
        .await
        .problem(422, Some("data.evidence"));
    let fixed = app
        .command(
            id,
            &t.landlord,
            "report_fix",
            json!({ "evidence": [app.photo(&t.landlord).await], "note": "已重新布线" }),
        )
        .await
        .expect(200);
    assert_eq!(fixed["case"]["state"], "rectification_reported");
    let grades = app
        .get(&format!("/api/v1/units/{unit}/grades"), &t.landlord)
        .await
        .expect(200);
    assert!(grades.to_string().contains("stars"), "{grades}");
    // Another landlord sees none of it and may do none of it.
    app.get(&format!("/api/v1/units/{unit}/grades"), &t.other_landlord)
        .await
        .problem(404, None);
    app.get("/api/v1/landlords/1/orders", &t.other_landlord)
        .await
        .problem(404, None);
    app.command(id, &t.other_landlord, "acknowledge", json!({}))
        .await
        .problem(404, None);
}

/// Landlords see nothing of one another over the new endpoints, for many random pairs.
async fn landlords_see_nothing_of_each_others_records(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    // An entry for each of the first parties, so that there is something to hide.
    let parties: Vec<i64> = (1..=12).filter(|p| !app.units_of(*p).is_empty()).collect();
    let mut entries = std::collections::BTreeMap::new();
    for p in &parties {
        let e = app
            .post(
                "/api/v1/blacklist",
                &t.city,
                &json!({ "party_id": p, "reason": "测试" }),
            )
            .await
            .expect(201);
        entries.insert(*p, e["id"].as_i64().unwrap());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut checked = 0;
    for _ in 0..40 {
        let a = parties[rng.random_range(0..parties.len())];
        let b = parties[rng.random_range(0..parties.len())];
        if a == b {
            continue;
        }
        let token = app.token(Role::Landlord, a).await;
        app.get(&format!("/api/v1/parties/{b}"), &token)
            .await
            .problem(404, None);
        let unit = app.units_of(b)[0];
        app.get(&format!("/api/v1/units/{unit}/responsibility"), &token)
            .await
            .problem(404, None);
        app.post(
            &format!("/api/v1/blacklist/{}/appeal", entries[&b]),
            &token,
            &json!({ "appeal": "x" }),
        )
        .await
        .problem(404, None);
        let list = app.get("/api/v1/blacklist", &token).await.expect(200);
        assert!(
            list["entries"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["party_id"] == a),
            "{list}"
        );
        let own = app
            .get(&format!("/api/v1/parties/{a}"), &token)
            .await
            .expect(200);
        assert_eq!(own["party_id"], a);
        checked += 1;
    }
    assert!(checked > 20);
    // Departments and inspectors see no party records.
    app.get("/api/v1/parties/1", &t.fire)
        .await
        .problem(403, None);
    app.get("/api/v1/parties/1", &t.inspector)
        .await
        .problem(403, None);
    app.get("/api/v1/blacklist", &t.fire)
        .await
        .problem(403, None);
}

backend_tests!(
    a_landlord_works_their_orders,
    a_unit_without_an_agreement_is_a_finding,
    sub_landlords_are_registered_and_answer_for_their_units,
    the_blacklist_from_proposal_to_appeal_and_public_naming,
    a_blacklisting_expires,
    agreements_and_insurance_per_unit,
    landlords_see_nothing_of_each_others_records,
);
