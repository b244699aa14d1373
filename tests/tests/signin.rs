//! Sign-in without an operator, over the real HTTP server with a real SMTP server on loopback: a landlord asks for a code by e-mail, reads it from the parsed mail, signs in, sees only their own orders and acknowledges one; used, expired and five-times-wrong codes, an unknown address (the same answer as a known one), rate limits, signing out and session expiry, each refused with a clear problem+json; an agent with one address for two landlords chooses whom to act as; a department's officer signs in for the department. On both backends.
//!
//! The code goes out in the background (so that the answer takes as long for an address
//! nobody has): the tests wait for the mail to arrive at the loopback server, polling
//! every 10 ms for at most 5 s of real time. Time in the service moves by the manual clock.

use chrono::TimeDelta;
use serde_json::{Value, json};

use anju_engine::domain::{DepartmentId, PartyId};
use anju_engine::registry::Record;
use anju_engine::runtime::Config;
use anju_engine::time::Clock as _;
use anju_tests::mail::{Smtp, smtp};
use anju_tests::{Backend, Reply, TestApp, backend_tests, spawn_app_on};

/// The requirements of the orders these tests issue.
const REQUIREMENTS: &str = "拆除飞线 / Remove the loose wiring";

async fn app_with_mail(backend: Backend) -> (TestApp, Smtp) {
    let smtp = smtp();
    let config = Config {
        public_url: Some("https://anju.example".into()),
        ..Config::default()
    };
    let app = spawn_app_on(backend, config, smtp.channels.clone()).await;
    (app, smtp)
}

/// Posts without a token.
async fn post_open(app: &TestApp, path: &str, body: &Value) -> Reply {
    app.send(app.client.post(format!("{}{path}", app.base)).json(body))
        .await
}

async fn ask_code(app: &TestApp, address: &str) -> Reply {
    post_open(app, "/api/v1/auth/code", &json!({ "address": address })).await
}

async fn session(app: &TestApp, address: &str, code: &str, account: Option<i64>) -> Reply {
    let mut body = json!({ "address": address, "code": code });
    if let Some(a) = account {
        body["account_id"] = json!(a);
    }
    post_open(app, "/api/v1/auth/session", &body).await
}

/// Waits for the `n`-th sign-in mail to `address`: its code, text and Message-ID.
async fn nth_code(smtp: &Smtp, address: &str, n: usize) -> (String, String, String) {
    smtp.sign_in_code(address, n).await
}

/// A wrong code of the same shape as `code`.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

async fn a_landlord_signs_in_with_a_code_by_email(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let mine = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    let theirs = app.ordered(app.unit_of(2), "wiring", REQUIREMENTS).await;
    app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    let address = "party1@anju.example";

    // A registered address and an unknown one get the same answer.
    let known = ask_code(&app, "  Party1@ANJU.example ").await.expect(202);
    let unknown = ask_code(&app, "nobody@anju.example").await.expect(202);
    assert_eq!(known, unknown);
    let (code, text, message_id) = nth_code(&smtp, address, 1).await;
    assert!(text.find("验证码").unwrap() < text.find("sign-in code").unwrap());
    assert!(
        text.contains(&format!(
            "https://anju.example/signin?address=party1%40anju.example&code={code}"
        )),
        "{text}"
    );
    assert!(message_id.starts_with("anju.signin."), "{message_id}");
    assert!(smtp.to("nobody@anju.example").is_empty());

    // Signing in: a session that expires in 12 hours, as landlord 1.
    let s = session(&app, address, &code, None).await.expect(201);
    let token = s["token"].as_str().unwrap().to_string();
    assert_eq!(s["account"]["role"], "landlord");
    assert_eq!(s["account"]["subject_id"], 1);
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(s["expires_at"].clone()).unwrap();
    assert_eq!(expires, app.clock.now() + TimeDelta::hours(12));
    let me = app.get("/api/v1/me", &token).await.expect(200);
    assert_eq!(
        (me["role"].as_str(), me["subject"].as_i64()),
        (Some("landlord"), Some(1))
    );
    assert_eq!(me["account_id"], s["account"]["id"]);

    // Only their own orders, and the order in their inbox.
    let orders = app
        .get("/api/v1/landlords/1/orders", &token)
        .await
        .expect(200);
    let ids: Vec<i64> = orders["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["case"]["id"].as_i64().unwrap())
        .collect();
    assert!(ids.contains(&mine) && !ids.contains(&theirs), "{orders}");
    let not_found = app
        .get(&format!("/api/v1/cases/{theirs}"), &token)
        .await
        .problem(404, None);
    let nothing = app
        .get("/api/v1/cases/99999999", &token)
        .await
        .problem(404, None);
    assert_eq!(not_found["title"], nothing["title"]);
    app.get("/api/v1/landlords/2/orders", &token)
        .await
        .problem(404, None);
    let inbox = app.get("/api/v1/me/messages", &token).await.expect(200);
    assert!(
        inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["case_id"] == mine),
        "{inbox}"
    );
    // They acknowledge their order.
    app.command(mine, &token, "acknowledge", json!({}))
        .await
        .expect(200);
    let case = app.case(mine, &app.tokens.inspector).await;
    assert_eq!(case["case"]["state"], "acknowledged");

    // A used code is refused.
    session(&app, address, &code, None)
        .await
        .problem(401, Some("code"));

    // Five wrong codes spend a code: the right one is refused after them.
    ask_code(&app, address).await.expect(202);
    let (second, _, _) = nth_code(&smtp, address, 2).await;
    for _ in 0..5 {
        let p = session(&app, address, &wrong(&second), None)
            .await
            .problem(401, Some("code"));
        assert_eq!(p["type"], "/problems/sign-in-refused");
    }
    session(&app, address, &second, None)
        .await
        .problem(401, Some("code"));

    // An expired code is refused.
    ask_code(&app, address).await.expect(202);
    let (third, _, _) = nth_code(&smtp, address, 3).await;
    app.clock.advance(TimeDelta::minutes(11));
    session(&app, address, &third, None)
        .await
        .problem(401, Some("code"));
    // A code for an address nobody has is refused the same way.
    session(&app, "nobody@anju.example", "123456", None)
        .await
        .problem(401, Some("code"));
    // Malformed input names its field.
    session(&app, address, "12ab", None)
        .await
        .problem(422, Some("code"));
    session(&app, "not an address", "123456", None)
        .await
        .problem(422, Some("address"));
    ask_code(&app, "").await.problem(422, Some("address"));

    // Signing out revokes the session at once.
    let out = app
        .send(
            app.client
                .delete(format!("{}/api/v1/auth/session", app.base))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(out.status.as_u16(), 204);
    app.get("/api/v1/me", &token).await.problem(401, None);

    // A session stops at its expiry.
    ask_code(&app, address).await.expect(202);
    let (fourth, _, _) = nth_code(&smtp, address, 4).await;
    let s = session(&app, address, &fourth, None).await.expect(201);
    let token = s["token"].as_str().unwrap().to_string();
    app.get("/api/v1/me", &token).await.expect(200);
    app.clock
        .advance(TimeDelta::hours(12) + TimeDelta::seconds(2));
    app.get("/api/v1/me", &token).await.problem(401, None);
}

/// Codes are limited per address (five an hour), whether the address is registered or
/// not, and per client (twenty an hour); the limit lifts when the hour has passed.
async fn sign_in_codes_are_rate_limited(backend: Backend) {
    let (app, _smtp) = app_with_mail(backend).await;
    for address in ["party3@anju.example", "nobody@anju.example"] {
        for _ in 0..5 {
            ask_code(&app, address).await.expect(202);
        }
        let p = ask_code(&app, address).await.problem(429, Some("address"));
        assert_eq!(p["type"], "/problems/too-many-requests");
    }
    // Ten more addresses from the same client: the client's twentieth code is the last.
    for i in 0..10 {
        ask_code(&app, &format!("someone{i}@anju.example"))
            .await
            .expect(202);
    }
    ask_code(&app, "party4@anju.example")
        .await
        .problem(429, Some("address"));
    app.clock.advance(TimeDelta::minutes(61));
    ask_code(&app, "party4@anju.example").await.expect(202);
}

/// One address for two landlords (an agent): without a choice the answer lists both
/// and the code still holds; with one, the session acts for that landlord only. A
/// department's officer, imported as a person of the department, signs in for it.
async fn an_agent_chooses_and_an_officer_signs_in(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let agent = "agent@anju.example";
    app.store()
        .import(
            &[
                Record::Party {
                    id: PartyId(90_001),
                    kind: "agent".into(),
                    name: "代理人 甲 (for 王)".into(),
                    phone: None,
                    email: Some("Agent@anju.example".into()),
                },
                Record::Party {
                    id: PartyId(90_002),
                    kind: "agent".into(),
                    name: "代理人 甲 (for 李)".into(),
                    phone: None,
                    email: Some(agent.into()),
                },
                Record::Officer {
                    department_id: DepartmentId(1),
                    name: "执法员 张三".into(),
                    phone: Some("+86 139 0000 0099".into()),
                    email: Some("zhang.officer@fire.example".into()),
                },
            ],
            app.clock.now(),
        )
        .await
        .unwrap();
    ask_code(&app, agent).await.expect(202);
    let (code, _, _) = nth_code(&smtp, agent, 1).await;
    let choose = session(&app, agent, &code, None)
        .await
        .problem(409, Some("account_id"));
    let choices = choose["choices"].as_array().unwrap();
    let subjects: Vec<i64> = choices
        .iter()
        .map(|c| c["subject_id"].as_i64().unwrap())
        .collect();
    assert_eq!(subjects, vec![90_001, 90_002]);
    session(&app, agent, &code, Some(-5))
        .await
        .problem(422, Some("account_id"));
    let pick = choices[1]["account_id"].as_i64().unwrap();
    let s = session(&app, agent, &code, Some(pick)).await.expect(201);
    let token = s["token"].as_str().unwrap();
    assert_eq!(s["account"]["subject_id"], 90_002);
    app.get("/api/v1/landlords/90002/units", token)
        .await
        .expect(200);
    app.get("/api/v1/landlords/90001/units", token)
        .await
        .problem(404, None);

    let officer = "zhang.officer@fire.example";
    ask_code(&app, officer).await.expect(202);
    let (code, _, _) = nth_code(&smtp, officer, 1).await;
    let s = session(&app, officer, &code, None).await.expect(201);
    let token = s["token"].as_str().unwrap();
    assert_eq!(
        (
            s["account"]["role"].as_str(),
            s["account"]["subject_id"].as_i64()
        ),
        (Some("department"), Some(1))
    );
    assert_eq!(s["account"]["phone"], "13900000099");
    app.get("/api/v1/departments/1/referrals", token)
        .await
        .expect(200);
    // The officer accepts a referral: the history records the officer, not only the
    // office.
    let case = app
        .inspect(&app.tokens.inspector, app.unit_of(1), &["wiring"])
        .await[0];
    app.command(case, &app.tokens.inspector, "refer", json!({}))
        .await
        .expect(200);
    let accepted = app
        .command(case, token, "accept", json!({}))
        .await
        .expect(200);
    let account = s["account"]["id"].as_i64().unwrap();
    let last = accepted["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["actor"]["id"],
        format!("1/account:{account}"),
        "{accepted}"
    );
    let mine = app.get("/api/v1/me/account", token).await.expect(200);
    assert_eq!(mine["account"]["name"], "执法员 张三");
    // Preferences are the person's: e-mail only, in a digest; an unknown channel is
    // refused; an office's token has no person to set them for.
    let put = |token: &str, body: Value| {
        app.send(
            app.client
                .put(format!("{}/api/v1/me/preferences", app.base))
                .bearer_auth(token)
                .json(&body),
        )
    };
    let set = put(token, json!({ "channels": ["email"], "digest": true }))
        .await
        .expect(200);
    assert_eq!(set["account"]["channels"], json!(["email"]));
    assert_eq!(set["account"]["digest"], true);
    put(token, json!({ "channels": ["pigeon"] }))
        .await
        .problem(422, Some("channels"));
    put(&app.tokens.fire, json!({ "digest": true }))
        .await
        .problem(409, None);
}

backend_tests!(
    a_landlord_signs_in_with_a_code_by_email,
    sign_in_codes_are_rate_limited,
    an_agent_chooses_and_an_officer_signs_in,
);
