//! Jurisdiction is security: landlords see only their own units' cases, departments only referrals sent to them, inspectors and supervisors only their own grids or area.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

use anju_engine::domain::Role;
use anju_tests::{Backend, backend_tests, spawn_app};

/// Parties whose cases the test opens; each answers for at least one unit.
const PARTIES: i64 = 12;
const PAIRS: usize = 60;

async fn landlords_cannot_read_each_others_cases(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut cases = Vec::new();
    let mut tokens = Vec::new();
    for party in 1..=PARTIES {
        let unit = app.unit_of(party);
        let ids = app.inspect(&app.tokens.city, unit, &["wiring"]).await;
        app.command(ids[0], &app.tokens.city, "notify", json!({}))
            .await
            .expect(200);
        cases.push(ids[0]);
        tokens.push(app.token(Role::Landlord, party).await);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(20261126);
    let before = app.fingerprint().await;
    for _ in 0..PAIRS {
        let a = rng.random_range(0..PARTIES as usize);
        let mut b = rng.random_range(0..PARTIES as usize);
        while b == a {
            b = rng.random_range(0..PARTIES as usize);
        }
        let (me, theirs) = (&tokens[a], cases[b]);
        let read = app.get(&format!("/api/v1/cases/{theirs}"), me).await;
        assert_eq!(
            read.status.as_u16(),
            404,
            "party {} read party {}'s case: {}",
            a + 1,
            b + 1,
            read.body
        );
        let act = app
            .post(
                &format!("/api/v1/cases/{theirs}/commands"),
                me,
                &json!({ "command": "acknowledge", "expected_version": 2 }),
            )
            .await;
        assert_eq!(
            act.status.as_u16(),
            404,
            "party {} acted on party {}'s case",
            a + 1,
            b + 1
        );
        let messages = app
            .get(&format!("/api/v1/cases/{theirs}/messages"), me)
            .await;
        assert_eq!(messages.status.as_u16(), 404);
        let orders = app
            .get(&format!("/api/v1/landlords/{}/orders", b + 1), me)
            .await;
        assert_eq!(orders.status.as_u16(), 404);
        // Their own list holds their own case and nothing else.
        let mine = app
            .get(&format!("/api/v1/landlords/{}/orders", a + 1), me)
            .await
            .expect(200);
        let ids: Vec<i64> = mine["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["case"]["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [cases[a]]);
        // Their units, and no one else's: exactly the units they answer for, one of
        // them with the open order.
        app.get(&format!("/api/v1/landlords/{}/units", b + 1), me)
            .await
            .problem(404, None);
        let units = app
            .get(&format!("/api/v1/landlords/{}/units", a + 1), me)
            .await
            .expect(200);
        let ids: Vec<i64> = units["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, app.units_of(a as i64 + 1));
        let with_orders: Vec<i64> = units["units"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["open_orders"] == 1)
            .map(|u| u["id"].as_i64().unwrap())
            .collect();
        assert_eq!(with_orders, [app.unit_of(a as i64 + 1)]);
        assert!(
            units["units"]
                .as_array()
                .unwrap()
                .iter()
                .all(|u| (u["open_orders"] == 1) == u["next_deadline"].is_string())
        );
        assert!(units["units"][0].get("next_due_at").is_none());
        let listed = app.get("/api/v1/cases?limit=1000", me).await.expect(200);
        let ids: Vec<i64> = listed["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [cases[a]]);
    }
    assert_eq!(app.fingerprint().await, before, "nobody changed anything");
    // A department sees referrals, not landlords' units.
    app.get("/api/v1/landlords/1/units", &app.tokens.fire)
        .await
        .problem(403, None);
    // And each can act on their own.
    app.command(cases[0], &tokens[0], "acknowledge", json!({}))
        .await
        .expect(200);
}

async fn staff_see_only_their_jurisdiction(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let mine = app.inspect(&t.inspector, app.unit_of(1), &["wiring"]).await[0];
    // A case in another district, opened by the city supervisor.
    let far_unit = anju_tests::TEST_UNITS as i64;
    let far = app.inspect(&t.city, far_unit, &["wiring"]).await[0];
    let far_case = app.case(far, &t.city).await;
    assert_ne!(far_case["case"]["district_code"], "440103");

    app.get(&format!("/api/v1/cases/{mine}"), &t.other_inspector)
        .await
        .problem(404, None);
    app.get(&format!("/api/v1/cases/{far}"), &t.inspector)
        .await
        .problem(404, None);
    app.get(&format!("/api/v1/cases/{far}"), &t.district)
        .await
        .problem(404, None);
    app.get(&format!("/api/v1/cases/{mine}"), &t.district)
        .await
        .expect(200);
    // Departments see nothing until something is referred to them.
    app.get(&format!("/api/v1/cases/{mine}"), &t.fire)
        .await
        .problem(404, None);
    let listed = app.get("/api/v1/cases", &t.fire).await.expect(200);
    assert!(listed["cases"].as_array().unwrap().is_empty());
    app.get("/api/v1/departments/2/referrals", &t.fire)
        .await
        .problem(404, None);
    app.get("/api/v1/departments/1/referrals", &t.landlord)
        .await
        .problem(403, None);

    let listed = app.get("/api/v1/cases", &t.inspector).await.expect(200);
    let ids: Vec<i64> = listed["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [mine]);
    let listed = app.get("/api/v1/cases", &t.city).await.expect(200);
    assert_eq!(listed["cases"].as_array().unwrap().len(), 2);
    let district = app.get("/api/v1/cases", &t.district).await.expect(200);
    assert_eq!(district["cases"].as_array().unwrap().len(), 1);
    // A street supervisor of the first street sees the first case only.
    let street = app.token(Role::Supervisor, 13).await;
    let me = app.get("/api/v1/me", &street).await.expect(200);
    assert_eq!(me["scope"]["kind"], "street");
    let listed = app.get("/api/v1/cases", &street).await.expect(200);
    let ids: Vec<i64> = listed["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [mine]);
    // Inspectors cannot register units outside their grids: a building they may not
    // see is, to them, no building.
    let far = app
        .store()
        .unit(anju_engine::domain::UnitId(far_unit))
        .await
        .unwrap()
        .unwrap();
    let outside = json!({ "building_id": far.building_id, "address_code": "X-1", "address": "某处", "lon": far.lon, "lat": far.lat, "floor_area": 20.0, "occupants": 1 });
    let refused = app
        .post("/api/v1/units", &t.inspector, &outside)
        .await
        .problem(422, Some("building_id"));
    let mut nowhere = outside.clone();
    nowhere["building_id"] = json!(987_654_321);
    let missing = app
        .post("/api/v1/units", &t.inspector, &nowhere)
        .await
        .problem(422, Some("building_id"));
    assert_eq!(
        refused["detail"]
            .as_str()
            .unwrap()
            .replace(&far.building_id.0.to_string(), "#"),
        missing["detail"]
            .as_str()
            .unwrap()
            .replace("987654321", "#")
    );
    app.get(&format!("/api/v1/units/{far_unit}"), &t.inspector)
        .await
        .problem(404, None);
}

backend_tests!(
    landlords_cannot_read_each_others_cases,
    staff_see_only_their_jurisdiction,
    each_role_sees_its_part_of_a_case,
    a_callers_scope_follows_the_directory_once_it_moves,
    a_revoked_token_stops_within_a_second,
    tokens_expire_and_are_revoked_by_their_id,
);

/// A token revoked in the database (by any process) stops working once it is read
/// again: at most a second (`TOKEN_RECHECK`) after it was last read.
async fn a_revoked_token_stops_within_a_second(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    app.get("/api/v1/me", &t.inspector).await.expect(200);
    app.get("/api/v1/me", &t.inspector).await.expect(200);
    let digest = anju_engine::auth::token_digest(&t.inspector);
    let sql = "UPDATE api_tokens SET revoked_at = 1 WHERE digest = $1";
    if app.db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
        let n = sqlx::query(sql).bind(&digest).execute(&pool).await.unwrap();
        assert_eq!(n.rows_affected(), 1);
    } else {
        let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
        let n = sqlx::query(sql).bind(&digest).execute(&pool).await.unwrap();
        assert_eq!(n.rows_affected(), 1);
    }
    // Within a second of its last reading the token is taken as it was; then it is
    // read again and refused, in this process as in every other.
    app.get("/api/v1/me", &t.inspector).await.expect(200);
    app.clock.advance(anju_engine::runtime::TOKEN_RECHECK);
    app.get("/api/v1/me", &t.inspector).await.expect(401);
    app.get("/api/v1/me", &t.inspector).await.expect(401);
    // Another caller of the same role is not affected.
    app.get("/api/v1/me", &t.other_inspector).await.expect(200);
}

/// A caller's scope is resolved once and kept while the directory stays as it was:
/// a grid given to an inspector behind the service's back (no import) is not seen,
/// and is seen once the token is read again (at most a second later) after any import
/// of registry records, which moves the directory's generation read with the token.
async fn a_callers_scope_follows_the_directory_once_it_moves(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let grids = |me: serde_json::Value| me["scope"]["id"].as_array().unwrap().len();
    let before = grids(app.get("/api/v1/me", &t.inspector).await.expect(200));
    let sql = "INSERT INTO inspector_grids (inspector_id, grid_id) \
               SELECT 1, MAX(id) FROM grids WHERE id NOT IN \
               (SELECT grid_id FROM inspector_grids WHERE inspector_id = 1)";
    if app.db.url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
    } else {
        let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    assert_eq!(
        grids(app.get("/api/v1/me", &t.inspector).await.expect(200)),
        before,
        "the cached scope stands while the directory's generation does not move"
    );
    app.store()
        .import(
            &[anju_engine::registry::Record::Party {
                id: anju_engine::domain::PartyId(90_001),
                kind: "landlord".into(),
                name: "新业主".into(),
                phone: None,
                email: None,
            }],
            anju_tests::t0(),
        )
        .await
        .unwrap();
    // Within a second the token is taken as it was; then it is read again, with the
    // directory's new generation.
    assert_eq!(
        grids(app.get("/api/v1/me", &t.inspector).await.expect(200)),
        before
    );
    app.clock.advance(anju_engine::runtime::TOKEN_RECHECK);
    assert_eq!(
        grids(app.get("/api/v1/me", &t.inspector).await.expect(200)),
        before + 1
    );
}

/// What a landlord and a department see of a case (issue 9, item 10): a landlord the
/// events that concern them, without the office's internals; a department that
/// returned a case, the case up to its return. And a referral goes to a department
/// serving the case's district (item 7).
async fn each_role_sees_its_part_of_a_case(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let id = app.inspect(&t.inspector, unit, &["wiring"]).await[0];
    app.command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    // An internal note of the system (a rule's notice to supervisors).
    let mut data = serde_json::Map::new();
    data.insert("to".into(), json!("supervisor"));
    data.insert("zh".into(), json!("内部提示"));
    data.insert("en".into(), json!("internal"));
    app.runtime()
        .execute_as_system(
            anju_engine::store::TransitionRequest {
                case_id: anju_engine::domain::CaseId(id),
                expected_version: None,
                timer_seq: None,
                actor: anju_engine::domain::Actor::system("rule:test@v1"),
                command: "rule_notice".into(),
                reason: None,
                rule: None,
            },
            data,
        )
        .await
        .unwrap();
    app.command(id, &t.landlord, "acknowledge", json!({}))
        .await
        .expect(200);
    app.clock.advance(chrono::TimeDelta::days(4));
    app.tick().await;
    // Another district's brigade: not for an inspector.
    app.command(id, &t.inspector, "refer", json!({ "department_id": 2 }))
        .await
        .problem(422, Some("data.department_id"));
    app.command(id, &t.inspector, "refer", json!({}))
        .await
        .expect(200);
    app.command_with_reason(
        id,
        &t.fire,
        "return_referral",
        json!({ "reason_code": "wrong_department" }),
        Some("非本部门"),
    )
    .await
    .expect(200);
    app.clock.advance(chrono::TimeDelta::hours(1));
    app.command_with_reason(id, &t.inspector, "cancel", json!({}), Some("x"))
        .await
        .problem(403, None);
    app.command_with_reason(id, &t.city, "cancel", json!({}), Some("核实后撤销"))
        .await
        .expect(200);
    // The landlord: their order, their acknowledgement, the overdue notice, the
    // outcome; not the notice to supervisors, the referral or its return.
    let mine = app.case(id, &t.landlord).await;
    let commands: Vec<&str> = mine["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        commands,
        ["open", "notify", "acknowledge", "deadline_passed", "cancel"]
    );
    assert!(mine["history"][0]["data"].get("point").is_none());
    assert!(mine["referrals"].as_array().unwrap().is_empty());
    // The brigade that returned the case sees it up to its return, not the cancel.
    let theirs = app.case(id, &t.fire).await;
    let last = theirs["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["command"], "return_referral");
    assert!(
        theirs["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["command"] != "cancel")
    );
    assert_eq!(theirs["case"]["state"], "returned");
    assert!(theirs["commands"].as_array().unwrap().is_empty());
    // The office sees it all.
    let all = app.case(id, &t.city).await;
    let commands: Vec<&str> = all["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["command"].as_str().unwrap())
        .collect();
    assert!(commands.contains(&"rule_notice") && commands.contains(&"refer"));
    assert_eq!(all["case"]["state"], "cancelled");
}

/// A token made to expire is refused from its expiry on (read again within
/// `TOKEN_RECHECK`); a token revoked by its id (as `anju token list` shows it) is
/// refused; ids that are too short, unknown or already revoked are refused clearly.
async fn tokens_expire_and_are_revoked_by_their_id(backend: Backend) {
    use anju_engine::domain::Role;
    use anju_engine::time::Clock as _;
    let app = spawn_app(backend).await;
    let rt = app.runtime();
    let now = app.clock.now();
    let expiring = rt
        .create_token_until(
            Role::Inspector,
            1,
            Some("expiring"),
            Some(now + chrono::TimeDelta::hours(1)),
        )
        .await
        .unwrap();
    assert!(
        rt.create_token_until(Role::Inspector, 1, None, Some(now))
            .await
            .is_err(),
        "an expiry must be in the future"
    );
    app.get("/api/v1/me", &expiring).await.expect(200);
    app.clock.advance(chrono::TimeDelta::minutes(59));
    app.get("/api/v1/me", &expiring).await.expect(200);
    app.clock
        .advance(chrono::TimeDelta::minutes(1) + anju_engine::runtime::TOKEN_RECHECK);
    app.get("/api/v1/me", &expiring).await.expect(401);

    let revoking = rt
        .create_token(Role::Landlord, 1, Some("revoke-me"))
        .await
        .unwrap();
    app.get("/api/v1/me", &revoking).await.expect(200);
    let listed = rt.tokens().await.unwrap();
    let mine = listed
        .iter()
        .find(|t| t.label.as_deref() == Some("revoke-me"))
        .unwrap();
    assert_eq!((mine.role, mine.subject), (Role::Landlord, 1));
    assert!(mine.revoked_at.is_none() && mine.expires_at.is_none());
    assert!(
        !listed.iter().any(|t| revoking.contains(&t.id)),
        "no secret is listed"
    );
    assert!(rt.revoke_token("abc").await.is_err(), "too short");
    assert!(
        rt.revoke_token("0000000000zz").await.is_err(),
        "not hexadecimal"
    );
    rt.revoke_token(&mine.id).await.unwrap();
    app.clock.advance(anju_engine::runtime::TOKEN_RECHECK);
    app.get("/api/v1/me", &revoking).await.expect(401);
    assert!(
        matches!(
            rt.revoke_token(&mine.id).await,
            Err(anju_engine::Error::NotFound { .. })
        ),
        "already revoked"
    );
    // The others are untouched.
    app.get("/api/v1/me", &app.tokens.landlord)
        .await
        .expect(200);
}
