//! Gateways over HTTP, against a real HTTP server on loopback (axum, in this process): an SMS gateway receives signed JSON (the signature checked here with the shared secret), a registered template code with its parameters; a 500 is retried by the manual clock; quiet hours hold an SMS until 08:00 China time except a critical order; a platform receives a department's referral; a sign-in code goes out by SMS at once (the test waits, polling every 10 ms for at most 5 s of real time, for that background send). On both backends.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::TimeDelta;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use anju_engine::outbox::{Channel, Channels, GatewayKind, WebhookChannel, WebhookSettings};
use anju_engine::time::Clock as _;
use anju_tests::{Backend, TestApp, backend_tests, spawn_app};

/// The requirements of the orders these tests issue.
const REQUIREMENTS: &str = "限期整改。Fix it.";

const SECRET: &str = "gateway shared secret, 32 bytes!";

/// A request the gateway received: its headers and body.
#[derive(Debug, Clone)]
struct Request {
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A gateway on a free loopback port that keeps what it receives and answers with the
/// status set in `status`.
struct Gateway {
    url: String,
    received: Arc<Mutex<Vec<Request>>>,
    status: Arc<AtomicU16>,
}

async fn gateway() -> Gateway {
    let received: Arc<Mutex<Vec<Request>>> = Arc::default();
    let status = Arc::new(AtomicU16::new(200));
    let (r, s) = (received.clone(), status.clone());
    let app = axum::Router::new().route(
        "/send",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                let header = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                r.lock().unwrap().push(Request {
                    timestamp: header("x-anju-timestamp"),
                    signature: header("x-anju-signature"),
                    body: body.to_vec(),
                });
                let code = StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                (code, "{\"ok\":true}")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Gateway {
        url,
        received,
        status,
    }
}

impl Gateway {
    fn channel(&self, name: &str, kind: GatewayKind) -> Channels {
        let channel = WebhookChannel::new(WebhookSettings {
            name: name.into(),
            url: self.url.clone(),
            secret: SECRET.into(),
            kind,
            public_url: Some("https://anju.example".into()),
            timeout: std::time::Duration::from_secs(5),
        })
        .unwrap();
        vec![Arc::new(channel) as Arc<dyn Channel>]
    }

    fn requests(&self) -> Vec<Request> {
        self.received.lock().unwrap().clone()
    }
}

/// Checks a request's signature independently of the engine: HMAC-SHA256 with the
/// shared secret over `{timestamp}.{body}`.
fn signed_by(request: &Request, secret: &str) -> bool {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.", request.timestamp).as_bytes());
    mac.update(&request.body);
    let Some(hex_sig) = request.signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(bytes) = hex::decode(hex_sig) else {
        return false;
    };
    mac.verify_slice(&bytes).is_ok()
}

/// The deliveries of a case on `channel`, as the API shows them.
async fn deliveries(app: &TestApp, case: i64, channel: &str) -> Vec<Value> {
    let messages = app
        .get(&format!("/api/v1/cases/{case}/messages"), &app.tokens.city)
        .await
        .expect(200);
    messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["deliveries"].as_array().unwrap().clone())
        .filter(|d| d["channel"] == channel)
        .collect()
}

/// An order reaches the landlord's phone through the SMS gateway: one signed POST (the
/// signature checks out with the shared secret, and not with another), the registered
/// template's code, its parameters (the deadline in China time) and the rendered text.
/// A 500 from the gateway is retried when the manual clock reaches the retry time, with
/// the same message id.
async fn an_sms_is_signed_and_a_500_is_retried(backend: Backend) {
    let app = spawn_app(backend).await;
    let gw = gateway().await;
    let channels = gw.channel("sms", GatewayKind::Sms);
    let case = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    let tick = app.runtime().deliver_outbox(&channels).await.unwrap();
    assert_eq!((tick.delivered, tick.failed), (1, 0), "{tick:?}");
    let requests = gw.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert!(signed_by(r, SECRET), "{r:?}");
    assert!(!signed_by(r, "another secret, also 32 bytes!!!"));
    assert_eq!(
        r.timestamp.parse::<i64>().unwrap(),
        app.clock.now().timestamp()
    );
    let body = r.json();
    assert_eq!(body["to"], "13800000001");
    assert_eq!(body["template_code"], "ANJU_ORDER");
    let record = app
        .store()
        .case(anju_engine::domain::CaseId(case))
        .await
        .unwrap()
        .unwrap();
    let deadline = record
        .snapshot
        .deadline_at
        .unwrap()
        .with_timezone(&anju_engine::time::china_time())
        .format("%Y-%m-%d %H:%M")
        .to_string();
    assert_eq!(body["params"]["deadline"], deadline.as_str());
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("【安居】整改通知书"), "{text}");
    assert!(text.contains(&deadline) && text.contains(&format!("/cases/{case}")));
    let d = deliveries(&app, case, "sms").await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["state"], "sent");
    assert_eq!(body["message_id"], d[0]["message_id"]);

    // The gateway fails: the delivery is tried again at its retry time, not before.
    gw.status.store(500, Ordering::SeqCst);
    let second = app.ordered(app.unit_of(2), "wiring", REQUIREMENTS).await;
    let tick = app.runtime().deliver_outbox(&channels).await.unwrap();
    assert_eq!((tick.delivered, tick.failed), (0, 1), "{tick:?}");
    let d = deliveries(&app, second, "sms").await;
    assert_eq!(d[0]["state"], "failed");
    assert!(
        d[0]["answer"].as_str().unwrap().starts_with("500"),
        "{}",
        d[0]
    );
    assert_eq!(
        app.runtime()
            .deliver_outbox(&channels)
            .await
            .unwrap()
            .sending,
        0
    );
    gw.status.store(200, Ordering::SeqCst);
    app.clock.advance(TimeDelta::minutes(1));
    let tick = app.runtime().deliver_outbox(&channels).await.unwrap();
    assert_eq!(tick.delivered, 1, "{tick:?}");
    let d = deliveries(&app, second, "sms").await;
    assert_eq!(
        (d[0]["state"].as_str(), d[0]["attempts"].as_i64()),
        (Some("sent"), Some(2))
    );
    let tries: Vec<Value> = gw.requests()[1..].iter().map(Request::json).collect();
    assert_eq!(tries.len(), 2);
    assert_eq!(tries[0]["message_id"], tries[1]["message_id"]);
    assert_eq!(
        (tries[0]["attempt"].as_i64(), tries[1]["attempt"].as_i64()),
        (Some(1), Some(2))
    );
}

/// Quiet hours: an order of a major hazard written at 22:30 China time waits until
/// 08:00 (the worker stepping at 07:59 sends nothing, and holding it uses no attempt);
/// an order of a critical hazard written in the night goes at once.
async fn quiet_hours_hold_an_sms_until_eight(backend: Backend) {
    let app = spawn_app(backend).await;
    let gw = gateway().await;
    let channels = gw.channel("sms", GatewayKind::Sms);
    // Register the channel before the night's messages are written.
    app.runtime().deliver_outbox(&channels).await.unwrap();
    // t0 is 09:00 China time; 13.5 hours later it is 22:30.
    app.clock.advance(TimeDelta::minutes(13 * 60 + 30));
    let major = app.ordered(app.unit_of(1), "wiring", REQUIREMENTS).await;
    let critical = app
        .ordered(app.unit_of(2), "ebike_indoor", REQUIREMENTS)
        .await;
    let tick = app.runtime().deliver_outbox(&channels).await.unwrap();
    assert_eq!((tick.delivered, tick.held), (1, 1), "{tick:?}");
    let sent: Vec<Value> = gw.requests().iter().map(Request::json).collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["case"], critical);
    let d = deliveries(&app, major, "sms").await;
    assert_eq!(
        (d[0]["state"].as_str(), d[0]["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );

    // 07:59 the next morning: still held.
    app.clock.advance(TimeDelta::minutes(9 * 60 + 29));
    let tick = app.runtime().deliver_outbox(&channels).await.unwrap();
    assert_eq!(tick.sending, 0, "{tick:?}");
    assert_eq!(gw.requests().len(), 1);
    // 08:00: sent.
    app.clock.advance(TimeDelta::minutes(1));
    let tick = app.runtime().deliver_outbox(&channels).await.unwrap();
    assert_eq!(tick.delivered, 1, "{tick:?}");
    let last = gw.requests().last().unwrap().json();
    assert_eq!(last["case"], major);
    let d = deliveries(&app, major, "sms").await;
    assert_eq!(
        (d[0]["state"].as_str(), d[0]["attempts"].as_i64()),
        (Some("sent"), Some(1))
    );
}

/// A platform (粤政易) takes the messages of departments: a referral is posted for
/// `department:N`, signed, with the message's subject, text and link, and nothing else
/// (the platform serves departments only).
async fn a_platform_receives_a_departments_referral(backend: Backend) {
    let app = spawn_app(backend).await;
    let gw = gateway().await;
    let channels = gw.channel(
        "yzy",
        GatewayKind::Platform {
            serves: vec!["department".into()],
        },
    );
    let case = app
        .inspect(&app.tokens.inspector, app.unit_of(1), &["wiring"])
        .await[0];
    app.command(case, &app.tokens.inspector, "refer", json!({}))
        .await
        .expect(200);
    let tick = app.runtime().deliver_outbox(&channels).await.unwrap();
    assert_eq!(tick.delivered, 1, "{tick:?}");
    let requests = gw.requests();
    assert_eq!(requests.len(), 1);
    assert!(signed_by(&requests[0], SECRET));
    let body = requests[0].json();
    assert_eq!(body["template"], "referral");
    assert!(
        body["to"].as_str().unwrap().starts_with("department:"),
        "{body}"
    );
    assert!(body["subject"].as_str().unwrap().contains('/'), "{body}");
    assert_eq!(body["link"], format!("https://anju.example/cases/{case}"));
}

/// A sign-in code asked for by phone goes out through the SMS gateway at once, even in
/// the quiet hours (the person is waiting for it), as the registered sign-in template
/// with the code as its parameter; the code signs in.
async fn a_sign_in_code_goes_out_by_sms_at_night(backend: Backend) {
    let gw = gateway().await;
    let channels = gw.channel("sms", GatewayKind::Sms);
    let app =
        anju_tests::spawn_app_on(backend, anju_engine::runtime::Config::default(), channels).await;
    // 23:00 China time.
    app.clock.advance(TimeDelta::hours(14));
    let asked = app
        .send(
            app.client
                .post(format!("{}/api/v1/auth/code", app.base))
                .json(&json!({ "address": "+86 138 0000 0001" })),
        )
        .await;
    assert_eq!(asked.status.as_u16(), 202);
    let mut waited = 0;
    while gw.requests().is_empty() {
        assert!(waited < 500, "no SMS reached the gateway");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 1;
    }
    let r = &gw.requests()[0];
    assert!(signed_by(r, SECRET));
    let body = r.json();
    assert_eq!(body["to"], "13800000001");
    assert_eq!(body["template_code"], "ANJU_SIGNIN");
    let code = body["params"]["code"].as_str().unwrap().to_string();
    assert!(
        code.len() == 6 && body["text"].as_str().unwrap().contains(&code),
        "{body}"
    );
    let session = app
        .send(
            app.client
                .post(format!("{}/api/v1/auth/session", app.base))
                .json(&json!({ "address": "13800000001", "code": code })),
        )
        .await;
    assert_eq!(session.status.as_u16(), 201, "{}", session.body);
    assert_eq!(session.body["account"]["subject_id"], 1);
}

backend_tests!(
    an_sms_is_signed_and_a_500_is_retried,
    quiet_hours_hold_an_sms_until_eight,
    a_platform_receives_a_departments_referral,
    a_sign_in_code_goes_out_by_sms_at_night,
);
