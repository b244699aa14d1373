//! Notices that reach people, against a real SMTP server on loopback (mailin-embedded, in this process): a rectification order e-mailed to the landlord, read back and parsed as MIME; deliveries recorded per person and channel; a server that refuses mail brings retries by the manual clock, then a dead letter a supervisor lists and sends again with the same Message-ID. On both backends.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, TimeDelta, Utc};
use mail_parser::MessageParser;
use serde_json::{Value, json};

use anju_engine::outbox::{Channel, Channels};
use anju_engine::time::Clock as _;
use anju_tests::mail::{email_to, smtp};
use anju_tests::{
    Backend, TestApp, backend_tests, history_commands as commands, spawn_app, spawn_app_on,
};

/// The requirements of the orders these tests issue.
const REQUIREMENTS: &str = "拆除飞线，规范布线。Remove the loose wiring.";

/// The deliveries of a case's messages of `template`, as the API shows them.
async fn deliveries(app: &TestApp, case: i64, template: &str) -> Vec<Value> {
    let messages = app
        .get(&format!("/api/v1/cases/{case}/messages"), &app.tokens.city)
        .await
        .expect(200);
    messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["template"] == template)
        .flat_map(|m| m["deliveries"].as_array().unwrap().clone())
        .collect()
}

/// A rectification order reaches the landlord by e-mail: one message, to their address
/// on record, its subject and both languages (Chinese first), the deadline in China
/// time, how to acknowledge, a link to the case, a text and an HTML part, and the
/// Message-ID the delivery records. Stepping the worker again sends nothing twice.
async fn an_order_reaches_the_landlord_by_email(backend: Backend) {
    let app = spawn_app(backend).await;
    let smtp = smtp();
    let case = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    let tick = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert!(tick.claimed >= 1 && tick.delivered >= 1, "{tick:?}");
    assert_eq!(tick.failed + tick.dead, 0, "{tick:?}");

    let landlord = "party1@anju.example";
    let mails = smtp.to(landlord);
    assert_eq!(mails.len(), 1, "one order, one mail");
    let parsed = MessageParser::default().parse(&mails[0].data).unwrap();
    let subject = parsed.subject().unwrap();
    assert!(
        subject.contains("整改通知书") && subject.contains("Rectification order"),
        "{subject}"
    );
    assert_eq!(
        parsed
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some(landlord)
    );
    let text = parsed.body_text(0).unwrap().to_string();
    let html = parsed.body_html(0).unwrap().to_string();
    let record = app
        .store()
        .case(anju_engine::domain::CaseId(case))
        .await
        .unwrap()
        .unwrap();
    let deadline = anju_engine::time::local_time(record.snapshot.deadline_at.unwrap());
    assert!(
        text.contains(&deadline),
        "deadline {deadline} in China time: {text}"
    );
    assert!(deadline.contains("UTC+8"));
    let (zh, en) = (
        text.find("经检查发现安全隐患").unwrap(),
        text.find("has a").unwrap(),
    );
    assert!(zh < en, "Chinese first: {text}");
    assert!(text.contains("拆除飞线") && text.contains("签收") && text.contains("To acknowledge"));
    let link = format!("https://anju.example/cases/{case}");
    assert!(text.contains(&link), "{text}");
    assert!(html.contains(&format!("<a href=\"{link}\">")), "{html}");

    let delivered = deliveries(&app, case, "rectification_order").await;
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let d = &delivered[0];
    assert_eq!(d["channel"], "email");
    assert_eq!(d["address"], landlord);
    assert_eq!(d["recipient"], "party:1");
    assert_eq!(d["state"], "sent");
    assert_eq!(d["attempts"], 1);
    assert!(d["answer"].as_str().unwrap().starts_with("250"), "{d}");
    assert_eq!(parsed.message_id(), d["message_id"].as_str());

    // Nothing is sent twice.
    let again = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert_eq!((again.claimed, again.sending), (0, 0));
    assert_eq!(smtp.to(landlord).len(), 1);
}

/// A server that refuses mail: the delivery fails and is tried again as the manual
/// clock passes its retry time, until its last attempt makes it a dead letter. The
/// district supervisor lists it; the landlord is not told anything meanwhile. Once the
/// server is back, sending it again delivers it, with the Message-ID it had.
async fn a_refused_delivery_retries_then_waits_as_a_dead_letter(backend: Backend) {
    let app = spawn_app(backend).await;
    let smtp = smtp();
    smtp.refuse.store(true, Ordering::SeqCst);
    let case = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    let landlord = "party1@anju.example";
    let first = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert_eq!(
        (first.delivered, first.failed),
        (0, first.sending),
        "{first:?}"
    );
    let d = deliveries(&app, case, "rectification_order").await;
    assert_eq!(d[0]["state"], "failed");
    assert!(d[0]["answer"].as_str().unwrap().contains("421"), "{}", d[0]);

    // Not retried before its time.
    let early = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert_eq!(early.sending, 0);
    let mut attempts = 1;
    while attempts < anju_engine::notices::MAX_ATTEMPTS {
        app.clock.advance(TimeDelta::hours(8));
        let tick = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
        assert!(tick.sending >= 1, "attempt {}: {tick:?}", attempts + 1);
        attempts += 1;
    }
    let d = deliveries(&app, case, "rectification_order").await;
    assert_eq!(d[0]["state"], "dead", "{}", d[0]);
    assert_eq!(d[0]["attempts"], anju_engine::notices::MAX_ATTEMPTS);
    assert!(smtp.to(landlord).is_empty());
    let message_id = d[0]["message_id"].as_str().unwrap().to_string();

    // Dead letters are for supervisors of the case's area.
    let dead = app
        .get("/api/v1/deliveries/dead", &app.tokens.district)
        .await
        .expect(200);
    let ids: Vec<i64> = dead["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    let id = d[0]["id"].as_i64().unwrap();
    assert!(ids.contains(&id), "{dead}");
    app.get("/api/v1/deliveries/dead", &app.tokens.landlord)
        .await
        .problem(403, None);
    app.post(
        &format!("/api/v1/deliveries/{id}/resend"),
        &app.tokens.inspector,
        &json!({}),
    )
    .await
    .problem(403, None);

    // The server is back; sent again, it arrives once, with the same Message-ID.
    smtp.refuse.store(false, Ordering::SeqCst);
    let queued = app
        .post(
            &format!("/api/v1/deliveries/{id}/resend"),
            &app.tokens.district,
            &json!({}),
        )
        .await
        .expect(200);
    assert_eq!(queued["state"], "queued");
    app.post(
        &format!("/api/v1/deliveries/{id}/resend"),
        &app.tokens.district,
        &json!({}),
    )
    .await
    .problem(404, None);
    let tick = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert_eq!(tick.delivered, 1, "{tick:?}");
    let mails = smtp.to(landlord);
    assert_eq!(mails.len(), 1);
    let parsed = MessageParser::default().parse(&mails[0].data).unwrap();
    assert_eq!(parsed.message_id(), Some(message_id.as_str()));
    let d = deliveries(&app, case, "rectification_order").await;
    assert_eq!(d[0]["state"], "sent");
}

/// Messages written before e-mail was configured are not e-mailed afterwards: they are
/// handed over with no delivery. A message written after is.
async fn messages_before_a_channel_existed_are_not_sent_on_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    app.clock.advance(TimeDelta::seconds(1));
    let smtp = smtp();
    // The channel is recorded as configured from now.
    app.store()
        .channel_since("email", app.clock.now())
        .await
        .unwrap();
    app.clock.advance(TimeDelta::seconds(1));
    let after = app.ordered(app.unit_of(2), "wiring", REQUIREMENTS).await;
    let tick = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert!(tick.claimed >= 2, "{tick:?}");
    // Not e-mailed after the fact, but not lost either: kept in the landlord's inbox,
    // and the delivery says why.
    let kept = deliveries(&app, before, "rectification_order").await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["channel"], "inbox", "{kept:?}");
    assert!(
        kept[0]["answer"]
            .as_str()
            .unwrap_or("")
            .contains("before any channel"),
        "{kept:?}"
    );
    assert_eq!(
        deliveries(&app, after, "rectification_order").await.len(),
        1
    );
    assert!(smtp.to("party1@anju.example").is_empty());
    assert_eq!(smtp.to("party2@anju.example").len(), 1);
}

/// Issue 22, 1: a fresh service started with e-mail configured sends the very first
/// order, even when the first outbox step runs later than the order was written (the
/// channel counts from the service's start, not from the first step).
async fn the_first_order_of_a_fresh_service_is_emailed(backend: Backend) {
    let smtp = smtp();
    let app = spawn_app_on(backend, Default::default(), smtp.channels.clone()).await;
    app.clock.advance(TimeDelta::seconds(3));
    let case = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    app.clock.advance(TimeDelta::seconds(5));
    let tick = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert!(tick.delivered >= 1, "{tick:?}");
    let mails = smtp.to("party1@anju.example");
    assert_eq!(mails.len(), 1, "the first order is e-mailed");
    let sent = deliveries(&app, case, "rectification_order").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["channel"], "email");
    assert_eq!(sent[0]["state"], "sent");
}

/// An escalation by the `referral_stalled_to_district` rule reaches every supervisor of
/// the case's district, by e-mail, and no one else.
async fn a_stalled_referral_reaches_the_district_supervisors_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let smtp = smtp();
    let t = &app.tokens;
    let id = app.inspect(&t.inspector, app.unit_of(1), &["wiring"]).await[0];
    app.command(id, &t.inspector, "refer", json!({}))
        .await
        .expect(200);
    app.clock.advance(TimeDelta::days(7));
    assert_eq!(app.tick().await, 1);
    app.rules_tick().await;
    let case = app.case(id, &t.city).await;
    assert_eq!(case["case"]["escalation"], 2, "{case}");
    let district = case["case"]["district_code"].as_str().unwrap().to_string();
    app.runtime().deliver_outbox(&smtp.channels).await.unwrap();

    let supervisors = app.get("/api/v1/supervisors", &t.city).await.expect(200);
    let mut expected: Vec<String> = supervisors["supervisors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["level"] == "district" && s["district_code"] == district.as_str())
        .map(|s| format!("supervisor:{}", s["id"]))
        .collect();
    expected.sort();
    assert!(!expected.is_empty(), "the seeded district has a supervisor");
    let sent = deliveries(&app, id, "rule_escalation").await;
    let mut got: Vec<String> = sent
        .iter()
        .map(|d| d["recipient"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, expected);
    for d in &sent {
        assert_eq!(d["state"], "sent", "{d}");
        let mails = smtp.to(d["address"].as_str().unwrap());
        let escalations: Vec<_> = mails
            .iter()
            .filter_map(|m| MessageParser::default().parse(&m.data))
            .filter(|m| m.subject().is_some_and(|s| s.contains("升级督办")))
            .collect();
        assert_eq!(escalations.len(), 1, "{d}");
    }
    // No one else received the escalation.
    let all = smtp.mails.lock().unwrap().clone();
    let received: usize = all
        .iter()
        .filter_map(|m| MessageParser::default().parse(&m.data))
        .filter(|m| m.subject().is_some_and(|s| s.contains("升级督办")))
        .count();
    assert_eq!(received, expected.len());
}

/// Two processes on one database step their outbox workers at the same time: every
/// delivery is sent once.
async fn two_processes_send_each_delivery_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let smtp = smtp();
    let mut cases = Vec::new();
    for party in [1, 2] {
        for unit in &app.units_of(party)[..3] {
            cases.push(app.ordered(*unit, "wiring", REQUIREMENTS).await);
        }
    }
    let other = anju_engine::runtime::Runtime::start(
        app.db.store().await,
        Arc::new(app.clock.clone()),
        anju_engine::runtime::Config {
            worker_id: "second".into(),
            outbox_batch: 2,
            ..anju_engine::runtime::Config::default()
        },
    )
    .await
    .unwrap();
    for _ in 0..6 {
        let (a, b) = tokio::join!(
            app.runtime().deliver_outbox(&smtp.channels),
            other.deliver_outbox(&smtp.channels)
        );
        a.unwrap();
        b.unwrap();
    }
    other.shutdown().await;
    for party in [1, 2] {
        assert_eq!(
            smtp.to(&format!("party{party}@anju.example")).len(),
            3,
            "party {party}"
        );
    }
    for case in cases {
        let d = deliveries(&app, case, "rectification_order").await;
        assert_eq!(d.len(), 1);
        assert_eq!(d[0]["state"], "sent");
        assert_eq!(d[0]["attempts"], 1);
    }
}

/// Every caller has an inbox of what was addressed to them: a landlord sees their order
/// there without knowing the case, unread until they mark it read; another landlord
/// sees none of it and cannot mark it; a message not addressed to the caller is not
/// found.
async fn a_landlord_finds_their_order_in_their_inbox(backend: Backend) {
    let app = spawn_app(backend).await;
    let log: Channels = vec![Arc::new(anju_engine::outbox::LogChannel) as Arc<dyn Channel>];
    let case = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    app.runtime().deliver_outbox(&log).await.unwrap();
    let t = &app.tokens;
    let inbox = app
        .get("/api/v1/me/messages", &t.landlord)
        .await
        .expect(200);
    let messages = inbox["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{inbox}");
    let m = &messages[0];
    assert_eq!(m["case_id"], case);
    assert_eq!(m["template"], "rectification_order");
    assert_eq!(m["read"], false);
    let id = m["id"].as_i64().unwrap();
    let theirs = app
        .get("/api/v1/me/messages", &t.other_landlord)
        .await
        .expect(200);
    assert!(
        !theirs["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == id),
        "{theirs}"
    );
    app.post(
        &format!("/api/v1/me/messages/{id}/read"),
        &t.other_landlord,
        &json!({}),
    )
    .await
    .problem(404, None);
    app.post(
        &format!("/api/v1/me/messages/{id}/read"),
        &t.landlord,
        &json!({}),
    )
    .await
    .expect(200);
    let unread = app
        .get("/api/v1/me/messages?unread=true", &t.landlord)
        .await
        .expect(200);
    assert!(
        unread["messages"].as_array().unwrap().is_empty(),
        "{unread}"
    );
    let all = app
        .get("/api/v1/me/messages", &t.landlord)
        .await
        .expect(200);
    assert_eq!(all["messages"][0]["read"], true);
    assert!(all["messages"][0]["read_at"].is_string());
    // The inspector's inbox holds what was addressed to the inspector, not the order.
    let inspector = app
        .get("/api/v1/me/messages", &t.inspector)
        .await
        .expect(200);
    assert!(
        !inspector["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == id),
        "{inspector}"
    );
}

/// A server that accepts the connection and never answers does not hold the worker:
/// the attempt fails after the configured timeout and is tried again later. (This test
/// waits a real 300 ms, the timeout it configures.)
async fn a_silent_server_times_out_and_the_delivery_is_retried(backend: Backend) {
    let app = spawn_app(backend).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let channels = email_to(port, std::time::Duration::from_millis(300));
    let case = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    let tick = app.runtime().deliver_outbox(&channels).await.unwrap();
    assert_eq!((tick.delivered, tick.failed), (0, 1), "{tick:?}");
    let d = deliveries(&app, case, "rectification_order").await;
    assert_eq!(d[0]["state"], "failed", "{}", d[0]);
    assert!(
        d[0]["answer"].as_str().unwrap().contains("greeting"),
        "{}",
        d[0]
    );
}

/// A person's preferences are data: a landlord who wants a daily digest gets an order
/// of a major hazard in the 18:00 digest (one message with its own Message-ID), while an
/// order of a critical hazard goes at once; a landlord who chose only SMS, with e-mail
/// the only channel, is not e-mailed: the message is kept in their inbox, and says so.
async fn preferences_hold_messages_for_a_digest_or_the_inbox(backend: Backend) {
    let app = spawn_app(backend).await;
    let smtp = smtp();
    let store = app.store();
    let one = &store.accounts_at("party1@anju.example").await.unwrap()[0];
    store.set_preferences(one.id, None, true).await.unwrap();
    let two = &store.accounts_at("party2@anju.example").await.unwrap()[0];
    store
        .set_preferences(two.id, Some(&["sms".to_string()]), false)
        .await
        .unwrap();
    let major = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    let critical = app
        .inspect(&app.tokens.inspector, app.unit_of(1), &["ebike_indoor"])
        .await[0];
    app.command(
        critical,
        &app.tokens.inspector,
        "notify",
        json!({ "requirements": "立即停止室内充电 / Stop charging indoors now" }),
    )
    .await
    .expect(200);
    let theirs = app.ordered(app.unit_of(2), "wiring", REQUIREMENTS).await;
    let tick = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert_eq!(
        tick.delivered, 1,
        "only the critical order goes now: {tick:?}"
    );
    let mails = smtp.to("party1@anju.example");
    assert_eq!(mails.len(), 1);
    let parsed = MessageParser::default().parse(&mails[0].data).unwrap();
    assert!(parsed.body_text(0).unwrap().contains("立即停止室内充电"));
    let held = deliveries(&app, major, "rectification_order").await;
    assert_eq!(
        (held[0]["state"].as_str(), held[0]["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
    // Party 2 chose SMS only: nothing by e-mail, the order kept in their inbox.
    assert!(smtp.to("party2@anju.example").is_empty());
    let kept = deliveries(&app, theirs, "rectification_order").await;
    assert_eq!(
        (kept[0]["channel"].as_str(), kept[0]["state"].as_str()),
        (Some("inbox"), Some("sent"))
    );
    assert!(
        kept[0]["answer"].as_str().unwrap().contains("inbox only"),
        "{}",
        kept[0]
    );
    let inbox = app
        .get("/api/v1/me/messages", &app.tokens.other_landlord)
        .await
        .expect(200);
    assert!(
        inbox["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["case_id"] == theirs),
        "{inbox}"
    );

    // 17:59 China time: still held; 18:00: the digest.
    app.clock
        .advance(TimeDelta::hours(9) - TimeDelta::minutes(1));
    assert_eq!(
        app.runtime()
            .deliver_outbox(&smtp.channels)
            .await
            .unwrap()
            .sending,
        0
    );
    app.clock.advance(TimeDelta::minutes(1));
    let tick = app.runtime().deliver_outbox(&smtp.channels).await.unwrap();
    assert_eq!(tick.delivered, 1, "{tick:?}");
    let mails = smtp.to("party1@anju.example");
    assert_eq!(mails.len(), 2);
    let parsed = MessageParser::default().parse(&mails[1].data).unwrap();
    assert!(
        parsed.subject().unwrap().contains("每日摘要"),
        "{:?}",
        parsed.subject()
    );
    assert!(parsed.message_id().unwrap().starts_with("anju.digest."));
    let text = parsed.body_text(0).unwrap().to_string();
    assert!(
        text.contains(&format!("https://anju.example/cases/{major}")),
        "{text}"
    );
    let sent = deliveries(&app, major, "rectification_order").await;
    assert_eq!(sent[0]["state"], "sent");
    assert!(
        sent[0]["answer"]
            .as_str()
            .unwrap()
            .starts_with("in a digest of 1"),
        "{}",
        sent[0]
    );
}

/// Issue 22, 2: an order on a unit with no responsible party on record goes to
/// nobody, so it is issued for service in person: the inspector is told on the page
/// before issuing and after, the case waits as 待送达 with no deadline running (it
/// cannot go overdue), it is listed for the inspector and the supervisors, a reminder
/// escalates it once after 48 hours, and its deadline runs from the service recorded.
async fn an_order_to_nobody_is_served_in_person(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let mut unit = None;
    for u in app.inspector_units().await {
        let record = app
            .store()
            .unit(anju_engine::domain::UnitId(u))
            .await
            .unwrap()
            .unwrap();
        if record.party_id.is_none() {
            unit = Some(u);
            break;
        }
    }
    let unit = match unit {
        Some(u) => u,
        None => {
            // Registered by the inspector with nobody to answer for it yet.
            let u = app
                .store()
                .unit(anju_engine::domain::UnitId(app.inspector_units().await[0]))
                .await
                .unwrap()
                .unwrap();
            let made = app
                .post(
                    "/api/v1/units",
                    &t.inspector,
                    &json!({ "building_id": u.building_id.0, "address_code": "TEST-NOBODY-1",
                             "address": "无主单元 1 号", "lon": u.lon, "lat": u.lat,
                             "floor_area": 30.0, "occupants": 2 }),
                )
                .await
                .expect(201);
            made["id"].as_i64().unwrap()
        }
    };
    let id = app.inspect(&t.inspector, unit, &["wiring"]).await[0];
    let cookie = format!("anju_session={}", t.inspector);
    let page = |path: String| {
        let (client, cookie) = (app.client.clone(), cookie.clone());
        async move {
            client
                .get(path)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let before = page(format!("{}/cases/{id}", app.base)).await;
    assert!(before.contains("没有登记的责任人"), "told before issuing");

    let issued = app
        .command(id, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    assert_eq!(issued["case"]["state"], "awaiting_service", "{issued}");
    assert!(issued["case"]["deadline_at"].is_null(), "{issued}");
    let kinds: Vec<&str> = issued["timers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["service_reminder"]);
    // Nothing was addressed to nobody.
    let messages = app
        .get(&format!("/api/v1/cases/{id}/messages"), &t.city)
        .await
        .expect(200);
    assert!(
        messages["messages"].as_array().unwrap().is_empty(),
        "{messages}"
    );
    let after = page(format!("{}/cases/{id}", app.base)).await;
    assert!(
        after.contains("整改通知书待现场送达") && after.contains("须现场送达"),
        "told after"
    );
    let sheet = page(format!("{}/cases/{id}/order", app.base)).await;
    assert!(
        sheet.contains("自送达之日起72小时内") && sheet.contains("乱拉乱接电线"),
        "the printed order has its text and its deadline from service"
    );
    // Listed for the inspector and the supervisors.
    for token in [&t.inspector, &t.district, &t.city] {
        let listed = app
            .get("/api/v1/cases?state=awaiting_service", token)
            .await
            .expect(200);
        assert!(
            listed.to_string().contains(&format!("\"id\":{id}")),
            "{listed}"
        );
    }
    let home = page(format!("{}/", app.base)).await;
    assert!(home.contains("待现场送达的整改通知书"));

    // Not overdue however long it waits; reminded once after 48 hours.
    app.clock.advance(TimeDelta::hours(100));
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.tick().await, 0);
    let waiting = app.case(id, &t.city).await;
    assert_eq!(waiting["case"]["state"], "awaiting_service");
    assert!(commands(&waiting).ends_with(&["notify".to_string(), "service_overdue".to_string()]));
    assert_eq!(waiting["case"]["escalation"], 1);

    // Served: left at the premises needs a witness; the deadline runs from now.
    let unchanged = app.fingerprint().await;
    app.command(
        id,
        &t.inspector,
        "record_service",
        json!({ "method": "left", "recipient": "租户 李四" }),
    )
    .await
    .problem(422, Some("data.witness"));
    assert_eq!(app.fingerprint().await, unchanged);
    let served = app
        .command(
            id,
            &t.inspector,
            "record_service",
            json!({ "method": "left", "recipient": "租户 李四", "witness": "社区网格员 王五" }),
        )
        .await
        .expect(200);
    assert_eq!(served["case"]["state"], "notified");
    let deadline: DateTime<Utc> =
        serde_json::from_value(served["case"]["deadline_at"].clone()).unwrap();
    assert_eq!(deadline, app.clock.now() + TimeDelta::hours(72));
    app.clock.advance(TimeDelta::hours(71));
    assert_eq!(app.tick().await, 0);
    app.clock.advance(TimeDelta::hours(2));
    assert_eq!(app.tick().await, 1);
    assert_eq!(app.state(id).await, "overdue");
}

backend_tests!(
    an_order_to_nobody_is_served_in_person,
    an_order_reaches_the_landlord_by_email,
    the_first_order_of_a_fresh_service_is_emailed,
    a_refused_delivery_retries_then_waits_as_a_dead_letter,
    messages_before_a_channel_existed_are_not_sent_on_it,
    a_stalled_referral_reaches_the_district_supervisors_only,
    two_processes_send_each_delivery_once,
    a_landlord_finds_their_order_in_their_inbox,
    a_silent_server_times_out_and_the_delivery_is_retried,
    preferences_hold_messages_for_a_digest_or_the_inbox,
);
