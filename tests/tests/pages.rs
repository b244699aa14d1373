//! The pages people use, over the real HTTP server with a real SMTP server on loopback: a landlord asks for a code on the sign-in page, signs in into a cookie session (HttpOnly, SameSite, Secure behind https), sees their own cases and not another landlord's (whose case page answers like one that does not exist), acknowledges an order from the case page with the CSRF token (a post without it is refused and changes nothing), and signs out. On both backends.

use reqwest::StatusCode;
use serde_json::json;

use anju_engine::runtime::Config;
use anju_tests::mail::smtp;
use anju_tests::{Backend, backend_tests, spawn_app_on};

mod page_support;
use page_support::*;

async fn a_landlord_works_in_the_pages(backend: Backend) {
    let smtp = smtp();
    let config = Config {
        public_url: Some("https://anju.example".into()),
        ..Config::default()
    };
    let app = spawn_app_on(backend, config, smtp.channels.clone()).await;
    let mine = app.ordered(app.unit_of(1), "wiring", "整改 / Fix").await;
    let theirs = app.ordered(app.unit_of(2), "wiring", "整改 / Fix").await;
    let client = browser();

    // Not signed in: sent to the sign-in page, which remembers where they were going.
    let (status, _, location) = get(&client, &app, "/", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some("/signin?next=%2F"));

    // Ask for a code on the page, then sign in with it.
    let asked = signin_post(
        &client,
        &app,
        "/signin/code",
        "address=party1%40anju.example&next=%2F",
    )
    .await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(asked.text().await.unwrap().contains("验证码已发出"));
    let (code, _, _) = smtp.sign_in_code("party1@anju.example", 1).await;
    let signed = signin_post(
        &client,
        &app,
        "/signin",
        &format!("address=party1%40anju.example&code={code}&next=%2F"),
    )
    .await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed.headers()["location"], "/");
    let set = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in [
        "anju_session=anju_",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Path=/",
    ] {
        assert!(set.contains(part), "{part} in {set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();

    // Home: their own case, not the other landlord's.
    let (status, home, _) = get(&client, &app, "/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains(&format!("href=\"/cases/{mine}\"")), "{home}");
    assert!(
        !home.contains(&format!("href=\"/cases/{theirs}\"")),
        "{home}"
    );
    assert!(
        home.contains("剩余") && home.contains("left"),
        "the deadline counted down: {home}"
    );
    // Another landlord's case answers as one that does not exist.
    let (s1, other, _) = get(&client, &app, &format!("/cases/{theirs}"), Some(&cookie)).await;
    let (s2, missing, _) = get(&client, &app, "/cases/99999999", Some(&cookie)).await;
    assert_eq!((s1, s2), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(other, missing);

    // The case page offers Acknowledge, with this session's CSRF token.
    let (status, page, _) = get(&client, &app, &format!("/cases/{mine}"), Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("value=\"acknowledge\""), "{page}");
    let csrf = field(&page, "csrf");
    let version = field(&page, "expected_version");
    let post = |body: String| {
        multipart_post(
            &client,
            format!("{}/cases/{mine}/commands", app.base),
            Some(&cookie),
            body,
            vec![],
        )
    };
    // A post from another site carries no token: refused, nothing changes.
    let forged = post(format!("command=acknowledge&expected_version={version}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let wrong = post(format!(
        "csrf=0000&command=acknowledge&expected_version={version}"
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.case(mine, &app.tokens.inspector).await["case"]["state"],
        "notified"
    );
    let done = post(format!(
        "csrf={csrf}&command=acknowledge&expected_version={version}"
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.case(mine, &app.tokens.inspector).await["case"]["state"],
        "acknowledged"
    );
    // The same form again: the case has moved on, the page says so and nothing changes.
    let stale = post(format!(
        "csrf={csrf}&command=acknowledge&expected_version={version}"
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(stale.status(), StatusCode::CONFLICT);

    // The printable order: its document number (the district's, this year's), the
    // order's text, the deadline in China time, the proof-of-service slip, the
    // placard's QR code. Another landlord's order is a page that does not exist.
    let (status, sheet, _) = get(
        &client,
        &app,
        &format!("/cases/{mine}/order"),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let store = app.store();
    let numbered = |case: i64| {
        let store = store.clone();
        async move {
            store
                .order_sheet(anju_engine::domain::CaseId(case), 1)
                .await
                .unwrap()
                .unwrap()
                .document_no
                .unwrap()
        }
    };
    let (first, second) = (numbered(mine).await, numbered(theirs).await);
    assert!(
        first.contains("安居整改〔2026〕第") && first.ends_with("号"),
        "{first}"
    );
    assert_ne!(first, second, "each order its own number");
    let record = store
        .case(anju_engine::domain::CaseId(mine))
        .await
        .unwrap()
        .unwrap();
    let deadline = anju_engine::time::local_time(record.snapshot.deadline_at.unwrap());
    for part in [
        first.as_str(),
        "整改通知书",
        "送达回证",
        "/qr.svg",
        deadline.as_str(),
        "整改 / Fix",
    ] {
        assert!(sheet.contains(part), "{part} in {sheet}");
    }
    let (s1, other, _) = get(
        &client,
        &app,
        &format!("/cases/{theirs}/order"),
        Some(&cookie),
    )
    .await;
    assert_eq!((s1, other), (StatusCode::NOT_FOUND, missing.clone()));

    // My units: with their stars; my messages: the order, marked read with the form.
    let (status, units, _) = get(&client, &app, "/units", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let unit = app
        .store()
        .unit(anju_engine::domain::UnitId(app.unit_of(1)))
        .await
        .unwrap()
        .unwrap();
    assert!(units.contains(&unit.address), "{units}");
    app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    let (_, inbox, _) = get(&client, &app, "/messages", Some(&cookie)).await;
    assert!(
        inbox.contains("整改通知书") && inbox.contains(&format!("href=\"/cases/{mine}\"")),
        "{inbox}"
    );
    let action = inbox.find("/read\"").map(|at| {
        let start = inbox[..at].rfind("/messages/").unwrap();
        inbox[start..at + 5].to_string()
    });
    let action = action.expect("a mark-read form");
    let read = form_post(
        &client,
        format!("{}{action}", app.base),
        Some(&cookie),
        format!("csrf={csrf}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(read.status(), StatusCode::SEE_OTHER);
    let (_, inbox, _) = get(&client, &app, "/messages", Some(&cookie)).await;
    assert!(!inbox.contains(&action), "marked read: {inbox}");
    // A landlord has no plan page.
    let (status, _, _) = get(&client, &app, "/plan", Some(&cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // An inspector's session (a token as the cookie) shows today's plan in walking
    // order, the same stops the API gives.
    let inspector = format!("anju_session={}", app.tokens.inspector);
    let (status, plan, _) = get(&client, &app, "/plan", Some(&inspector)).await;
    assert_eq!(status, StatusCode::OK);
    let api = app
        .get("/api/v1/inspectors/1/plan", &app.tokens.inspector)
        .await
        .expect(200);
    let stops = api["stops"].as_array().unwrap();
    assert_eq!(plan.matches("<li>").count(), stops.len(), "{plan}");
    if let Some(first) = stops.first() {
        assert!(plan.contains(first["address"].as_str().unwrap()));
    }
    // The route on a map: Leaflet from the binary, the stops as [lat, lon] with no
    // tiles configured (a plain background).
    assert!(
        plan.contains("id=\"map\"") && plan.contains("/assets/leaflet/leaflet.js"),
        "{plan}"
    );
    assert!(plan.contains("\"tiles\":null"), "{plan}");
    // The inspector's grids are outlined under the route, from their stored shapes.
    let grid = app
        .get("/api/v1/grids/1", &app.tokens.inspector)
        .await
        .expect(200);
    let ring = &grid["geometry"]["coordinates"][0];
    let corner = format!("[{},{}]", ring[0][1], ring[0][0]);
    assert!(
        plan.contains("\"grids\":[[") && plan.contains(&corner),
        "{corner}: {plan}"
    );
    let leaflet = client
        .get(format!("{}/assets/leaflet/leaflet.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(leaflet.status(), StatusCode::OK);
    assert!(
        leaflet.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(leaflet.text().await.unwrap().contains("Leaflet"));
    // A unit's page: its grade, history and cases; another landlord's unit is a page
    // that does not exist.
    let (status, unit_page, _) = get(
        &client,
        &app,
        &format!("/units/{}", app.unit_of(1)),
        Some(&inspector),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        unit_page.contains(&unit.address) && unit_page.contains("评级经过"),
        "{unit_page}"
    );
    assert!(
        unit_page.contains(&format!("href=\"/cases/{mine}\"")),
        "{unit_page}"
    );
    let (status, _, _) = get(
        &client,
        &app,
        &format!("/units/{}", app.unit_of(2)),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A blacklist entry in force is appealed from the page.
    let entry = app
        .post(
            "/api/v1/blacklist",
            &app.tokens.district,
            &json!({ "party_id": 1, "reason": "拒不整改 / refuses to fix" }),
        )
        .await
        .expect(201);
    let entry = entry["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/blacklist/{entry}/decision"),
        &app.tokens.district,
        &json!({ "approve": true }),
    )
    .await
    .expect(200);
    let (status, listed, _) = get(&client, &app, "/blacklist", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listed.contains(&format!("action=\"/blacklist/{entry}/appeal\"")),
        "{listed}"
    );
    let forged = form_post(
        &client,
        format!("{}/blacklist/{entry}/appeal", app.base),
        Some(&cookie),
        "appeal=x".into(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let appealed = form_post(
        &client,
        format!("{}/blacklist/{entry}/appeal", app.base),
        Some(&cookie),
        format!("csrf={csrf}&appeal=%E5%B7%B2%E6%95%B4%E6%94%B9"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(appealed.status(), StatusCode::SEE_OTHER);
    let (_, listed, _) = get(&client, &app, "/blacklist", Some(&cookie)).await;
    assert!(
        listed.contains("appealed") && !listed.contains("/appeal\""),
        "{listed}"
    );

    // Signing out ends the session: the cookie no longer opens a page.
    let out = form_post(
        &client,
        format!("{}/signout", app.base),
        Some(&cookie),
        format!("csrf={csrf}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, location) = get(&client, &app, "/", Some(&cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.unwrap().starts_with("/signin"));
}

/// The link in a code's message fills the sign-in form in (its values escaped); a wrong
/// code is answered on the page with 401.
async fn the_link_in_a_code_fills_the_sign_in_form(backend: Backend) {
    let smtp = smtp();
    let config = Config {
        public_url: Some("https://anju.example".into()),
        ..Config::default()
    };
    let app = spawn_app_on(backend, config, smtp.channels.clone()).await;
    let client = browser();
    signin_post(
        &client,
        &app,
        "/signin/code",
        "address=party1%40anju.example",
    )
    .await;
    let (code, text, _) = smtp.sign_in_code("party1@anju.example", 1).await;
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("https://anju.example/signin?"))
        .unwrap()
        .to_string();
    let (status, html, _) = get(
        &client,
        &app,
        link.trim_start_matches("https://anju.example"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("value=\"party1@anju.example\"")
            && html.contains(&format!("value=\"{code}\"")),
        "{html}"
    );
    let (_, hostile, _) = get(
        &client,
        &app,
        "/signin?address=%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
        None,
    )
    .await;
    assert!(
        !hostile.contains("<script>alert") && hostile.contains("&lt;script&gt;"),
        "{hostile}"
    );
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let refused = signin_post(
        &client,
        &app,
        "/signin",
        &format!("address=party1%40anju.example&code={wrong}"),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("set-cookie").is_none());
    assert!(refused.text().await.unwrap().contains("验证码错误"));
}

/// A department's officer works a referral in the pages: signs in, accepts it, then
/// records a fine with its decision number and document from the form the workflow
/// defines (a fine without its amount is refused on the page, naming the field); the
/// history records the officer.
async fn an_officer_records_a_fine_in_the_pages(backend: Backend) {
    let smtp = smtp();
    let app = spawn_app_on(backend, Config::default(), smtp.channels.clone()).await;
    app.store()
        .import(
            &[anju_engine::registry::Record::Officer {
                department_id: anju_engine::domain::DepartmentId(1),
                name: "执法员 王五".into(),
                phone: None,
                email: Some("wang.officer@fire.example".into()),
            }],
            anju_tests::t0(),
        )
        .await
        .unwrap();
    let case = app
        .inspect(&app.tokens.inspector, app.unit_of(1), &["wiring"])
        .await[0];
    app.command(case, &app.tokens.inspector, "refer", json!({}))
        .await
        .expect(200);
    let client = browser();
    signin_post(
        &client,
        &app,
        "/signin/code",
        "address=wang.officer%40fire.example",
    )
    .await;
    let (code, _, _) = smtp.sign_in_code("wang.officer@fire.example", 1).await;
    let signed = signin_post(
        &client,
        &app,
        "/signin",
        &format!("address=wang.officer%40fire.example&code={code}"),
    )
    .await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (_, home, _) = get(&client, &app, "/", Some(&cookie)).await;
    assert!(
        home.contains(&format!("href=\"/cases/{case}\"")),
        "the referral is in the inbox: {home}"
    );

    let open = |html: &str| (field(html, "csrf"), field(html, "expected_version"));
    let (_, page, _) = get(&client, &app, &format!("/cases/{case}"), Some(&cookie)).await;
    assert!(page.contains("value=\"accept\""), "{page}");
    assert!(
        page.contains("下一时限"),
        "the acceptance time limit is shown: {page}"
    );
    let (csrf, version) = open(&page);
    let post = |body: String, files: Vec<FormFile>| {
        multipart_post(
            &client,
            format!("{}/cases/{case}/commands", app.base),
            Some(&cookie),
            body,
            files,
        )
    };
    let decision = || {
        vec![(
            "f.evidence",
            "处罚决定书.pdf",
            "application/pdf",
            anju_tests::photos::pdf("穗消罚001"),
        )]
    };
    let accepted = post(
        format!("csrf={csrf}&command=accept&expected_version={version}"),
        vec![],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);

    let (_, page, _) = get(&client, &app, &format!("/cases/{case}"), Some(&cookie)).await;
    assert!(
        page.contains("name=\"f.result\"")
            && page.contains("罚款 fine")
            && page.contains("name=\"f.fine_amount\""),
        "{page}"
    );
    let (csrf, version) = open(&page);
    let missing = post(
        format!("csrf={csrf}&command=record_result&expected_version={version}&f.result=fine"),
        decision(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.text().await.unwrap().contains("fine_amount"));
    let recorded = post(format!(
        "csrf={csrf}&command=record_result&expected_version={version}&f.result=fine&f.fine_amount=5000&f.decision_no=%E7%A9%97%E6%B6%88%E7%BD%9A001"
    ), decision())
    .send()
    .await
    .unwrap();
    assert_eq!(recorded.status(), StatusCode::SEE_OTHER);
    let view = app.case(case, &app.tokens.city).await;
    let last = view["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["command"], "record_result", "{view}");
    assert_eq!(last["data"]["fine_amount"], 5000.0, "{last}");
    // The decision is an upload of the officer's, served to those who see the event.
    let decision_id = last["data"]["evidence"][0].as_str().unwrap().to_string();
    assert!(decision_id.starts_with("ev_"), "{last}");
    let pdf = client
        .get(format!("{}/evidence/{decision_id}", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), StatusCode::OK);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert_eq!(
        pdf.bytes().await.unwrap().to_vec(),
        anju_tests::photos::pdf("穗消罚001")
    );
    assert!(
        last["actor"]["id"]
            .as_str()
            .unwrap()
            .starts_with("1/account:"),
        "{last}"
    );
}

/// `anju serve` serves the pages over TLS when given a certificate (phones give their
/// position and camera to secure pages only): a client trusting the certificate gets
/// the pages and a `Secure` session cookie; a plain HTTP request to the port gets no
/// page. The certificate (for 127.0.0.1, signed by a test authority the client trusts)
/// is made by the `openssl` command.
async fn pages_are_served_over_tls(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (cert, key, ca) = (path("cert.pem"), path("key.pem"), path("ca.pem"));
    std::fs::write(
        path("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A test authority, and a certificate for 127.0.0.1 it signs.
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=anju-test-ca",
                "-keyout",
                &path("ca.key"),
                "-out",
                &ca,
            ][..],
            &ec[..],
        ]
        .concat(),
    );
    openssl(
        &[
            &[
                "req",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &key,
                "-out",
                &path("leaf.csr"),
            ][..],
            &ec[..],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path("leaf.csr"),
        "-CA",
        &ca,
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        &cert,
        "-extfile",
        &path("ext.cnf"),
    ]);
    let db = anju_tests::TestDb::new(backend).await;
    anju_tests::seed(&db.store().await).await;
    let clock = anju_engine::time::ManualClock::new(anju_tests::t0());
    let smtp = smtp();
    let app = anju_tests::start_full(
        &db,
        &clock,
        Config::default(),
        anju_api::http::serve::Limits::default(),
        smtp.channels.clone(),
        Some(anju_api::http::serve::TlsFiles {
            cert: cert.clone().into(),
            key: key.into(),
        }),
    )
    .await;
    let pem = std::fs::read(&ca).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", app.addr.port());
    let page = client.get(format!("{base}/signin")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    // Under https, pages ask browsers to keep to https (HSTS), and the sign-in cookie
    // is Secure too.
    let hsts = page.headers()["strict-transport-security"]
        .to_str()
        .unwrap();
    assert!(hsts.contains("max-age="), "{hsts}");
    let pre = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("anju_signin="))
        .unwrap();
    assert!(pre.contains("; Secure"), "{pre}");
    let pre = pre.split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    assert!(html.contains("登录安居"));
    let token = field(&html, "csrf");
    client
        .post(format!("{base}/signin/code"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &pre)
        .body(format!("address=party1%40anju.example&csrf={token}"))
        .send()
        .await
        .unwrap();
    let (code, _, _) = smtp.sign_in_code("party1@anju.example", 1).await;
    let signed = client
        .post(format!("{base}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", &pre)
        .body(format!(
            "address=party1%40anju.example&code={code}&csrf={token}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    assert!(
        signed.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    // Plain HTTP to the TLS port: no page.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/signin", app.addr.port()))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK);
    app.shutdown().await;
}

/// An inspector records an inspection from the phone's form: the position the page
/// got from the phone, a finding ticked by its category; the answer is the new case's
/// page. The same form sent twice (its Idempotency-Key made when it was shown) records
/// one inspection; a form without a position, or without the CSRF token, records
/// nothing.
async fn an_inspector_records_an_inspection_from_the_form(backend: Backend) {
    let app = anju_tests::spawn_app(backend).await;
    let client = browser();
    let cookie = format!("anju_session={}", app.tokens.inspector);
    let unit_id = app.unit_of(1);
    let unit = app
        .store()
        .unit(anju_engine::domain::UnitId(unit_id))
        .await
        .unwrap()
        .unwrap();
    let (status, form, _) = get(
        &client,
        &app,
        &format!("/units/{unit_id}/inspect"),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        form.contains("value=\"wiring\"") && form.contains("id=\"pos\""),
        "{form}"
    );
    let (csrf, key) = (field(&form, "csrf"), field(&form, "idempotency_key"));
    let cases = || async {
        app.get(
            &format!("/api/v1/cases?unit_id={unit_id}"),
            &app.tokens.city,
        )
        .await
        .expect(200)["cases"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = cases().await;
    let photo = anju_tests::photos::photo_at(unit.lon, unit.lat, "2026:03:02 09:30:00", 7);
    let post = |body: String| {
        multipart_post(
            &client,
            format!("{}/units/{unit_id}/inspect", app.base),
            Some(&cookie),
            body,
            vec![("photos", "IMG_0001.jpg", "image/jpeg", photo.clone())],
        )
    };
    let base =
        format!("idempotency_key={key}&outcome=inspected&finding=wiring&note=%E9%A3%9E%E7%BA%BF");
    let forged = post(format!("{base}&lon={}&lat={}", unit.lon, unit.lat))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(cases().await, before);
    let body = format!("csrf={csrf}&{base}&lon={}&lat={}", unit.lon, unit.lat);
    let first = post(body.clone()).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let location = first.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/cases/"), "{location}");
    // Sent again: answered from the first sending, and this sending's upload does not
    // stay behind (issue 22, 13).
    let rows = app.store().table_counts().await.unwrap();
    let again = post(body).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.headers()["location"].to_str().unwrap(), location);
    assert_eq!(
        app.store().table_counts().await.unwrap(),
        rows,
        "nothing left behind"
    );
    assert_eq!(cases().await, before + 1, "one inspection, one case");
    let id: i64 = location.trim_start_matches("/cases/").parse().unwrap();
    let case = app.case(id, &app.tokens.inspector).await;
    assert_eq!(case["case"]["category"], "wiring");
    // The photo came with the form, once (the form sent twice uploaded it twice, and
    // the inspection it references is the first's), taken at the unit that morning.
    let evidence = case["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 1, "{case}");
    assert_eq!(evidence[0]["photo_check"], "on_site", "{case}");
    let (_, page, _) = get(&client, &app, &format!("/cases/{id}"), Some(&cookie)).await;
    assert!(page.contains("现场拍摄 / Taken on site"), "{page}");
    // A command the case refuses (a re-inspection with its photo, before any order):
    // refused on the page, and its photo is not kept.
    let (csrf_c, version) = (field(&page, "csrf"), field(&page, "expected_version"));
    let rows = app.store().table_counts().await.unwrap();
    let other = anju_tests::photos::photo_at(unit.lon, unit.lat, "2026:03:02 09:40:00", 11);
    let refused = multipart_post(
        &client,
        format!("{}/cases/{id}/commands", app.base),
        Some(&cookie),
        format!("csrf={csrf_c}&command=reinspect&expected_version={version}&f.passed=true"),
        vec![("f.evidence", "after.jpg", "image/jpeg", other)],
    )
    .send()
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(
        app.store().table_counts().await.unwrap(),
        rows,
        "no upload left behind"
    );

    // A form filled in two hours ago (kept on the phone without network), and with
    // no position from the phone: recorded, dated when it was observed, at the unit's
    // point and flagged as not located.
    let again = || async {
        let (_, form, _) = get(
            &client,
            &app,
            &format!("/units/{unit_id}/inspect"),
            Some(&cookie),
        )
        .await;
        (field(&form, "csrf"), field(&form, "idempotency_key"))
    };
    let (csrf, key) = again().await;
    let late = post(format!(
        "csrf={csrf}&idempotency_key={key}&outcome=inspected&observed_at=2026-02-26T01%3A00%3A00Z"
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(
        late.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "over 72 hours"
    );
    let (csrf, key) = again().await;
    let observed = "2026-03-02T07:00:00+08:00";
    let kept = post(format!(
        "csrf={csrf}&idempotency_key={key}&outcome=inspected&finding=sanitation&observed_at=2026-03-01T23%3A00%3A00Z"
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(kept.status(), StatusCode::SEE_OTHER);
    let list = app
        .get(
            &format!("/api/v1/inspections?unit_id={unit_id}"),
            &app.tokens.city,
        )
        .await
        .expect(200);
    let newest = list["inspections"][0].clone();
    assert_eq!(newest["located"], false, "{list}");
    assert_eq!(newest["off_site"], false);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(newest["at"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(observed).unwrap(),
        "dated when observed"
    );
    assert_eq!(
        (newest["lon"].as_f64(), newest["lat"].as_f64()),
        (Some(unit.lon), Some(unit.lat))
    );
}

backend_tests!(
    a_landlord_works_in_the_pages,
    the_link_in_a_code_fills_the_sign_in_form,
    an_officer_records_a_fine_in_the_pages,
    pages_are_served_over_tls,
    an_inspector_records_an_inspection_from_the_form,
);
