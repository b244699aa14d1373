//! Sign-in without an operator, over the real HTTP server with a real SMTP server on loopback: a landlord asks for a code by e-mail, reads it from the parsed mail, signs in, sees only their own orders and acknowledges one; used, expired and five-times-wrong codes, an unknown address (the same answer as a known one), rate limits, signing out and session expiry, each refused with a clear problem+json; an agent with one address for two landlords chooses whom to act as; a department's officer signs in for the department. On both backends.
//!
//! The answer to a code request waits for the send (an address nobody has is answered
//! after about as long); the tests still poll the loopback server for the mail, every
//! 10 ms for at most 5 s of real time. Time in the service moves by the manual clock.
//! The service trusts 127.0.0.1 as a reverse proxy, so that a test names the client
//! of a request by `X-Forwarded-For`; one test runs a real proxy on loopback.

use chrono::TimeDelta;
use serde_json::{Value, json};

use anju_engine::domain::{DepartmentId, PartyId};
use anju_engine::registry::Record;
use anju_engine::runtime::Config;
use anju_engine::time::Clock as _;
use anju_tests::mail::{Smtp, smtp};
use anju_tests::{Backend, Reply, TestApp, backend_tests, spawn_app_full, spawn_app_on};

mod page_support;
use page_support::{browser, form_post, signin_page, signin_post};

/// The requirements of the orders these tests issue.
const REQUIREMENTS: &str = "拆除飞线 / Remove the loose wiring";

async fn app_with_mail(backend: Backend) -> (TestApp, Smtp) {
    let smtp = smtp();
    let config = Config {
        public_url: Some("https://anju.example".into()),
        ..Config::default()
    };
    let limits = anju_api::http::serve::Limits {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..Default::default()
    };
    let app = spawn_app_full(backend, config, limits, smtp.channels.clone()).await;
    (app, smtp)
}

/// Asks for a code as the client `client` (behind the trusted proxy).
async fn ask_code_from(app: &TestApp, address: &str, client: &str) -> Reply {
    app.send(
        app.client
            .post(format!("{}/api/v1/auth/code", app.base))
            .header("x-forwarded-for", client)
            .json(&json!({ "address": address })),
    )
    .await
}

/// Exchanges a code as the client `client` (behind the trusted proxy).
async fn session_from(app: &TestApp, address: &str, code: &str, client: &str) -> Reply {
    app.send(
        app.client
            .post(format!("{}/api/v1/auth/session", app.base))
            .header("x-forwarded-for", client)
            .json(&json!({ "address": address, "code": code })),
    )
    .await
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

    // Five wrong codes from one client: that client is refused for the address, even
    // with the right code; another requester (the person, elsewhere) is not locked out.
    ask_code(&app, address).await.expect(202);
    let (second, _, _) = nth_code(&smtp, address, 2).await;
    let stranger = "203.0.113.66";
    for _ in 0..5 {
        let p = session_from(&app, address, &wrong(&second), stranger)
            .await
            .problem(401, Some("code"));
        assert_eq!(p["type"], "/problems/sign-in-refused");
    }
    session_from(&app, address, &second, stranger)
        .await
        .problem(429, Some("code"));
    let theirs = session(&app, address, &second, None).await.expect(201);
    assert_eq!(theirs["account"]["subject_id"], 1);
    // A stranger's request does not void the person's live code either.
    ask_code(&app, address).await.expect(202);
    let (mine_code, _, _) = nth_code(&smtp, address, 3).await;
    ask_code_from(&app, address, stranger).await.expect(202);
    session(&app, address, &mine_code, None).await.expect(201);
    // The code the stranger's request sent is live too (it reached the person).
    let (fourth, _, _) = nth_code(&smtp, address, 4).await;
    session(&app, address, &fourth, None).await.expect(201);

    // An expired code is refused.
    ask_code(&app, address).await.expect(202);
    let (third, _, _) = nth_code(&smtp, address, 5).await;
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
    let (sixth, _, _) = nth_code(&smtp, address, 6).await;
    let s = session(&app, address, &sixth, None).await.expect(201);
    let token = s["token"].as_str().unwrap().to_string();
    app.get("/api/v1/me", &token).await.expect(200);
    app.clock
        .advance(TimeDelta::hours(12) + TimeDelta::seconds(2));
    app.get("/api/v1/me", &token).await.problem(401, None);
}

/// Codes are limited per requester and address (five an hour from one client for one
/// address, whether it is registered or not), so that a stranger's requests never lock
/// the person out; per client (twenty an hour); and per address from everyone
/// (thirty). The limits lift when the hour has passed.
async fn sign_in_codes_are_rate_limited(backend: Backend) {
    let (app, _smtp) = app_with_mail(backend).await;
    let (one, two) = ("198.51.100.1", "198.51.100.2");
    for address in ["party3@anju.example", "nobody@anju.example"] {
        for _ in 0..5 {
            ask_code_from(&app, address, one).await.expect(202);
        }
        let p = ask_code_from(&app, address, one)
            .await
            .problem(429, Some("address"));
        assert_eq!(p["type"], "/problems/too-many-requests");
        // Someone else, for the same address: not locked out by the first.
        ask_code_from(&app, address, two).await.expect(202);
    }
    // Ten more addresses from the first client: its twentieth code is the last.
    for i in 0..10 {
        ask_code_from(&app, &format!("someone{i}@anju.example"), one)
            .await
            .expect(202);
    }
    ask_code_from(&app, "party4@anju.example", one)
        .await
        .problem(429, Some("address"));
    ask_code_from(&app, "party4@anju.example", two)
        .await
        .expect(202);
    // One address from thirty clients: the thirty-first is refused.
    for n in 0..30 {
        ask_code_from(&app, "party5@anju.example", &format!("192.0.2.{}", n + 1))
            .await
            .expect(202);
    }
    ask_code_from(&app, "party5@anju.example", "192.0.2.200")
        .await
        .problem(429, Some("address"));
    app.clock.advance(TimeDelta::minutes(61));
    ask_code_from(&app, "party4@anju.example", one)
        .await
        .expect(202);
}

/// Twenty code requests at once, for one address from one client: no more codes are
/// issued than the limit (the counting is under a lock, in every connection).
async fn concurrent_code_requests_issue_no_more_than_the_limit(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    let address = "party6@anju.example";
    let asks = (0..20).map(|_| ask_code_from(&app, address, "198.51.100.9"));
    let replies = futures_util::future::join_all(asks).await;
    let accepted = replies.iter().filter(|r| r.status.as_u16() == 202).count();
    let limited = replies.iter().filter(|r| r.status.as_u16() == 429).count();
    assert_eq!(
        (accepted, limited),
        (anju_engine::signin::CODES_PER_REQUESTER as usize, 15),
        "{replies:?}"
    );
    nth_code(&smtp, address, accepted).await;
    assert_eq!(smtp.to(address).len(), accepted);
}

/// A code the mail server does not take is said not to be sent (503, `not-sent`), on
/// the API and on the page, never "on its way"; while the server is down, an address
/// nobody has gets the same answer.
async fn a_code_the_server_refuses_is_said_not_sent(backend: Backend) {
    let (app, smtp) = app_with_mail(backend).await;
    smtp.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let p = ask_code(&app, "party1@anju.example")
        .await
        .problem(503, Some("address"));
    assert_eq!(p["type"], "/problems/not-sent", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("未能发出"), "{p}");
    let nobody = ask_code(&app, "nobody@anju.example")
        .await
        .problem(503, Some("address"));
    assert_eq!(nobody, p);
    // The page says so too.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/signin", app.base))
        .send()
        .await
        .unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).unwrap() + marker.len();
    let token = &html[at..at + html[at..].find('"').unwrap()];
    let asked = client
        .post(format!("{}/signin/code", app.base))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("address=party1%40anju.example&csrf={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status().as_u16(), 503);
    let text = asked.text().await.unwrap();
    assert!(
        text.contains("未能发出") && !text.contains("验证码已发出"),
        "{text}"
    );
    assert!(smtp.to("party1@anju.example").is_empty());
}

/// Behind a real reverse proxy on loopback that the service trusts, two clients (two
/// loopback addresses) have limits of their own; a client that reaches the service
/// directly cannot claim another address by writing the header itself.
async fn behind_a_trusted_proxy_each_client_has_its_own_limits(backend: Backend) {
    let (app, _smtp) = app_with_mail(backend).await;
    let proxy = anju_tests::proxy::start(app.addr).await;
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(Some(ip.parse().unwrap()))
            .build()
            .unwrap()
    };
    let ask = |client: reqwest::Client, base: String, spoof: Option<&'static str>| async move {
        let mut r = client
            .post(format!("{base}/api/v1/auth/code"))
            .json(&json!({ "address": "party7@anju.example" }));
        if let Some(s) = spoof {
            r = r.header("x-forwarded-for", s);
        }
        r.send().await.unwrap().status().as_u16()
    };
    let via = format!("http://{}", proxy.addr);
    for ip in ["127.0.0.2", "127.0.0.3"] {
        for _ in 0..5 {
            assert_eq!(ask(from(ip), via.clone(), None).await, 202, "{ip}");
        }
        assert_eq!(ask(from(ip), via.clone(), None).await, 429, "{ip}");
        // Through the proxy, a header of its own is passed over: the proxy appended
        // the real address after it.
        assert_eq!(
            ask(from(ip), via.clone(), Some("192.0.2.77")).await,
            429,
            "{ip}"
        );
    }
    // Directly, not through the proxy: its own address, whatever it writes.
    let direct = app.base.clone();
    for _ in 0..5 {
        assert_eq!(
            ask(from("127.0.0.4"), direct.clone(), Some("192.0.2.1")).await,
            202
        );
    }
    assert_eq!(
        ask(from("127.0.0.4"), direct.clone(), Some("192.0.2.2")).await,
        429
    );
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

/// Issue 22, 10 and 13: after signing in, `next` only ever leads to a path of this
/// service (tabs, newlines, backslashes, `//` and other hosts lead home, never to a
/// 500); a sign-in form that did not come from this browser's sign-in page (login
/// CSRF: no cookie of its own, or a token of another) signs nobody in; every page
/// carries the security headers.
async fn sign_in_stays_on_the_service_and_needs_its_own_form(backend: Backend) {
    let smtp = smtp();
    let app = spawn_app_on(backend, Config::default(), smtp.channels.clone()).await;
    let client = browser();
    let address = "party1%40anju.example";
    let hostile = [
        "/%09/evil.example",
        "/%0a/evil.example",
        "/%0d%0aSet-Cookie:%20x=1",
        "//evil.example",
        "/%5Cevil.example",
        "https://evil.example/",
        "/%20/evil.example",
        "%2F%2Fevil.example",
        "/%E4%BD%A0",
    ];
    // A new code by e-mail; five an hour for one address from one client: spaced out.
    let fresh_code = async |n: &mut usize| {
        app.clock.advance(chrono::TimeDelta::minutes(13));
        signin_post(&client, &app, "/signin/code", &format!("address={address}")).await;
        *n += 1;
        smtp.sign_in_code("party1@anju.example", *n).await.0
    };
    let mut n = 0;
    for next in hostile {
        let code = fresh_code(&mut n).await;
        let signed = signin_post(
            &client,
            &app,
            "/signin",
            &format!("address={address}&code={code}&next={next}"),
        )
        .await;
        assert_eq!(signed.status(), reqwest::StatusCode::SEE_OTHER, "{next}");
        assert_eq!(signed.headers()["location"], "/", "{next}");
    }
    // A path of the service is kept.
    let code = fresh_code(&mut n).await;
    let signed = signin_post(
        &client,
        &app,
        "/signin",
        &format!("address={address}&code={code}&next=%2Funits%3Fx%3D1"),
    )
    .await;
    assert_eq!(signed.headers()["location"], "/units?x=1");

    // Login CSRF: the right code, posted without the sign-in page's cookie, or with a
    // token that is not this browser's, signs nobody in.
    let code = fresh_code(&mut n).await;
    let (cookie, token) = signin_page(&client, &app).await;
    let (_, other_token) = signin_page(&client, &app).await;
    for (cookie, token) in [
        (None, token.as_str()),
        (Some(cookie.as_str()), other_token.as_str()),
    ] {
        let forged = form_post(
            &client,
            format!("{}/signin", app.base),
            cookie,
            format!("address={address}&code={code}&csrf={token}"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(forged.status(), reqwest::StatusCode::FORBIDDEN);
        assert!(
            forged
                .headers()
                .get_all("set-cookie")
                .iter()
                .all(|c| !c.to_str().unwrap().starts_with("anju_session=anju_")),
            "no session from a forged form"
        );
    }
    // The code still holds for the person's own form.
    let mine = signin_post(
        &client,
        &app,
        "/signin",
        &format!("address={address}&code={code}"),
    )
    .await;
    assert_eq!(mine.status(), reqwest::StatusCode::SEE_OTHER);

    // The pages' headers: only the service's scripts, no framing, no sniffing.
    let page = client
        .get(format!("{}/signin", app.base))
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-eval") && !csp.contains("script-src 'self' 'unsafe-inline'"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    // Plain http: no HSTS (it would pin a host that has no https).
    assert!(page.headers().get("strict-transport-security").is_none());
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("<script>") && !html.contains("onclick="),
        "no inline script: {html}"
    );
}

backend_tests!(
    sign_in_stays_on_the_service_and_needs_its_own_form,
    a_landlord_signs_in_with_a_code_by_email,
    sign_in_codes_are_rate_limited,
    concurrent_code_requests_issue_no_more_than_the_limit,
    a_code_the_server_refuses_is_said_not_sent,
    behind_a_trusted_proxy_each_client_has_its_own_limits,
    an_agent_chooses_and_an_officer_signs_in,
);
