//! Open311 GeoReport v2 and tips over the real HTTP server, on both backends: the hotline's integration posts a request on a unit's address code (JSON) and one by a point 10 m from a unit (XML); each lands on the unit and in the covering inspector's plan as a priority stop; a point far from every unit lies only on its grid; the request reads `open`, without a key only its id and status; the reporter's contact is for staff only (a landlord gets none); the inspector confirms the tip as the case the visit opened, and once the case closes the request reads `closed` with the inspector's note, in JSON and XML, and the change was pushed to the integration's webhook, signed; bad requests change nothing; a tenant's placard reports are limited per client. With `ANJU_OPEN311_PYTHON` (set by `.ci/run`), a registry client, georeport from PyPI, lists the services and reads the requests back in JSON and XML.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use anju_engine::domain::{InspectorId, UnitId};
use anju_engine::runtime::tips::key_digest;
use anju_engine::time::Clock as _;
use anju_tests::{Backend, TestApp, backend_tests, spawn_app};

/// What a webhook received: (timestamp, signature, body) of each POST.
type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A webhook receiver on loopback, and what it was sent.
async fn hotline() -> (String, Received) {
    let received: Received = Arc::default();
    let r = received.clone();
    let app = axum::Router::new().route(
        "/status",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let r = r.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string()
                };
                r.lock().unwrap().push((
                    h("x-anju-timestamp"),
                    h("x-anju-signature"),
                    body.to_vec(),
                ));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/status", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

async fn get_text(app: &TestApp, path: &str) -> (u16, String) {
    let r = app
        .client
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The stops of inspector 1's plan of the clock's day: (unit, reason).
async fn plan_stops(app: &TestApp) -> Vec<(i64, String)> {
    let day = app
        .clock
        .now()
        .with_timezone(&anju_engine::time::china_time())
        .date_naive();
    let plan = app
        .get(
            &format!("/api/v1/inspectors/1/plan?date={day}"),
            &app.tokens.inspector,
        )
        .await
        .expect(200);
    plan["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["unit_id"].as_i64().unwrap(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn the_hotline_reports_and_hears_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let (webhook, pushed) = hotline().await;
    let (_, key) = app
        .runtime()
        .create_integration("12345", Some(&webhook))
        .await
        .unwrap();
    let units = app.inspector_units().await;
    let first = units[0];
    let u1 = app.store().unit(UnitId(first)).await.unwrap().unwrap();
    // A unit of another building.
    let mut u2 = None;
    for id in &units[1..] {
        let u = app.store().unit(UnitId(*id)).await.unwrap().unwrap();
        if u.building_id != u1.building_id {
            u2 = Some(u);
            break;
        }
    }
    let u2 = u2.expect("a unit of another building");
    // The inspector's day is planned before the tips come in.
    let today = app
        .clock
        .now()
        .with_timezone(&anju_engine::time::china_time())
        .date_naive();
    app.runtime()
        .plan_around(InspectorId(1), today)
        .await
        .unwrap();
    let planned_before = plan_stops(&app).await;

    // Bad requests are refused in their format and store nothing.
    let before = app.fingerprint().await;
    let (status, body) = app
        .post_form(
            "/open311/v2/requests.json",
            &[
                ("service_code", "wiring".into()),
                ("address_id", u1.address_code.clone()),
            ],
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let errors: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(errors[0]["code"], 401);
    for (form, field) in [
        (
            vec![
                ("service_code", "no_such".to_string()),
                ("lat", "23.1".into()),
                ("long", "113.3".into()),
            ],
            "service_code",
        ),
        (vec![("service_code", "wiring".to_string())], "lat"),
        (
            vec![
                ("service_code", "wiring".to_string()),
                ("lat", "x".into()),
                ("long", "113.3".into()),
            ],
            "lat",
        ),
        (
            vec![
                ("service_code", "wiring".to_string()),
                ("lat", "1.0".into()),
                ("long", "1.0".into()),
            ],
            "lat",
        ),
        (
            vec![
                ("service_code", "wiring".to_string()),
                ("address_id", "0000".into()),
            ],
            "address_id",
        ),
        (
            vec![
                ("service_code", "wiring".to_string()),
                ("address_id", u1.address_code.clone()),
                ("email", "not-mail".into()),
            ],
            "email",
        ),
    ] {
        let mut form = form;
        form.push(("api_key", key.clone()));
        let (status, body) = app.post_form("/open311/v2/requests.xml", &form).await;
        assert_eq!(status, 400, "{form:?}: {body}");
        assert!(
            body.starts_with("<?xml") && body.contains("<errors><error><code>400</code>"),
            "{body}"
        );
        assert!(body.contains(field), "{field}: {body}");
    }
    assert_eq!(app.fingerprint().await, before);

    // A request on a unit's address code, with the reporter's contact (JSON).
    let (status, body) = app
        .post_form(
            "/open311/v2/requests.json",
            &[
                ("api_key", key.clone()),
                ("service_code", "wiring".into()),
                ("address_id", u1.address_code.clone()),
                ("description", "楼道私拉电线".into()),
                ("first_name", "小明".into()),
                ("last_name", "李".into()),
                ("phone", "13800138000".into()),
                ("email", "li@example.cn".into()),
            ],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let by_code: i64 = created[0]["service_request_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // A request by a point 10 m from the second unit (XML): on that unit.
    let (status, body) = app
        .post_form(
            "/open311/v2/requests.xml",
            &[
                ("api_key", key.clone()),
                ("service_code", "ebike_indoor".into()),
                ("lat", format!("{}", u2.lat + 0.00009)),
                ("long", format!("{}", u2.lon)),
                ("attribute[room]", "302".into()),
            ],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let at = body.find("<service_request_id>").unwrap() + 20;
    let by_point: i64 = body[at..at + body[at..].find('<').unwrap()]
        .parse()
        .unwrap();
    // A point far from every unit (but in the city): only the grid, or the district.
    let (status, body) = app
        .post_form(
            "/open311/v2/requests.json",
            &[
                ("api_key", key.clone()),
                ("service_code", "wiring".into()),
                ("lat", format!("{}", u1.lat + 0.02)),
                ("long", format!("{}", u1.lon + 0.02)),
            ],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let far: i64 = serde_json::from_str::<Value>(&body).unwrap()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Staff see where each lies and who reported; a landlord sees no tips.
    let tip = |id: i64| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/tips/{id}"), &app.tokens.city)
                .await
                .expect(200)
        }
    };
    let a = tip(by_code).await;
    assert_eq!(
        (a["placed_by"].as_str(), a["unit_id"].as_i64()),
        (Some("address_code"), Some(first))
    );
    assert_eq!(a["reporter_phone"], "13800138000");
    assert_eq!(a["reporter_name"], "李小明");
    // On the building 10 m away: one of its units (they share its point).
    let b = tip(by_point).await;
    assert_eq!(b["placed_by"], "nearest_building");
    let second = b["unit_id"].as_i64().unwrap();
    let placed = app.store().unit(UnitId(second)).await.unwrap().unwrap();
    assert_eq!(placed.building_id, u2.building_id);
    assert!(b["description"].as_str().unwrap().contains("302"));
    let c = tip(far).await;
    assert_eq!(c["placed_by"], "grid");
    assert!(c["unit_id"].is_null());
    app.get("/api/v1/tips", &t.landlord)
        .await
        .problem(403, None);
    app.get(&format!("/api/v1/tips/{by_code}"), &t.other_inspector)
        .await
        .problem(404, None);

    // Both units enter inspector 1's plan, appended as priority stops; nothing moved.
    let planned = plan_stops(&app).await;
    assert_eq!(&planned[..planned_before.len()], &planned_before[..]);
    for unit in [first, second] {
        assert!(
            planned.iter().any(|(u, r)| *u == unit && r == "tip"),
            "unit {unit}: {planned:?}"
        );
    }

    // Read back with the key: open, no contact in it; without a key, id and status.
    let (status, body) = get_text(
        &app,
        &format!("/open311/v2/requests/{by_code}.json?api_key={key}"),
    )
    .await;
    assert_eq!(status, 200);
    let read: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(read[0]["status"], "open");
    assert_eq!(read[0]["service_code"], "wiring");
    assert!(
        !body.contains("13800138000") && !body.contains("li@example.cn"),
        "{body}"
    );
    let (_, body) = get_text(&app, &format!("/open311/v2/requests/{by_code}.json")).await;
    let bare: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        bare,
        json!([{ "service_request_id": by_code.to_string(), "status": "open" }])
    );
    let (status, _) = get_text(&app, "/open311/v2/requests/999999.json").await;
    assert_eq!(status, 404);
    let (_, listed) = get_text(&app, &format!("/open311/v2/requests.json?api_key={key}")).await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);

    // The visit: the inspector records the hazard (a case), and confirms the tip as it.
    let case = app.inspect(&t.inspector, first, &["wiring"]).await[0];
    let before = app.fingerprint().await;
    app.post(
        &format!("/api/v1/tips/{by_code}/resolve"),
        &t.inspector,
        &json!({ "case_id": 999_999, "note": "x" }),
    )
    .await
    .problem(422, Some("case_id"));
    app.post(
        &format!("/api/v1/tips/{by_code}/resolve"),
        &t.inspector,
        &json!({ "case_id": case }),
    )
    .await
    .problem(400, Some("note"));
    assert_eq!(app.fingerprint().await, before);
    let resolved = app
        .post(
            &format!("/api/v1/tips/{by_code}/resolve"),
            &t.inspector,
            &json!({ "case_id": case, "note": "已上门核实，责令整改 / Confirmed on site; ordered to fix" }),
        )
        .await
        .expect(200);
    assert_eq!(resolved["status"], "confirmed");
    assert_eq!(resolved["open311_status"], "open");
    app.post(
        &format!("/api/v1/tips/{by_code}/resolve"),
        &t.inspector,
        &json!({ "note": "again" }),
    )
    .await
    .problem(409, None);
    // Nothing found at the far point: dismissed, closed for the reporter.
    app.post(
        &format!("/api/v1/tips/{far}/resolve"),
        &t.city,
        &json!({ "note": "现场未发现 / Nothing found" }),
    )
    .await
    .expect(200);

    // The case closes: ordered, fixed at the re-inspection.
    app.command(
        case,
        &t.inspector,
        "notify",
        json!({ "requirements": "拆除飞线" }),
    )
    .await
    .expect(200);
    app.command(
        case,
        &t.inspector,
        "reinspect",
        json!({ "passed": true, "note": "已整改" }),
    )
    .await
    .expect(200);
    for format in ["json", "xml"] {
        let (status, body) = get_text(
            &app,
            &format!("/open311/v2/requests/{by_code}.{format}?api_key={key}"),
        )
        .await;
        assert_eq!(status, 200);
        if format == "json" {
            let read: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(read[0]["status"], "closed");
            assert_eq!(
                read[0]["status_notes"],
                "已上门核实，责令整改 / Confirmed on site; ordered to fix"
            );
        } else {
            assert!(body.contains("<status>closed</status>"), "{body}");
            assert!(body.contains("<status_notes>已上门核实，责令整改 / Confirmed on site; ordered to fix</status_notes>"), "{body}");
        }
    }

    // The worker pushed each change to the hotline, signed with the key's digest.
    let mut pushes = 0;
    while app.runtime().push_tip_changes(50).await.unwrap() > 0 {
        pushes += 1;
        assert!(pushes < 10);
    }
    let received = pushed.lock().unwrap().clone();
    let last_of = |id: i64| {
        let id = id.to_string();
        received
            .iter()
            .rev()
            .map(|(ts, sig, body)| (ts, sig, serde_json::from_slice::<Value>(body).unwrap()))
            .find(|(_, _, b)| b["service_request_id"] == id.as_str())
            .unwrap()
    };
    let (ts, sig, body) = last_of(by_code);
    assert_eq!(body["status"], "closed");
    assert_eq!(
        body["status_notes"],
        "已上门核实，责令整改 / Confirmed on site; ordered to fix"
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key_digest(&key).as_bytes()).unwrap();
    let raw = received
        .iter()
        .rev()
        .find(|(t2, s2, _)| t2 == ts && s2 == sig)
        .unwrap()
        .2
        .clone();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(&raw);
    assert_eq!(
        *sig,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    assert_eq!(last_of(far).2["status"], "closed");
    assert_eq!(last_of(by_point).2["status"], "open");
    // Nothing changed since: nothing is pushed again.
    let count = received.len();
    assert_eq!(app.runtime().push_tip_changes(50).await.unwrap(), 0);
    assert_eq!(pushed.lock().unwrap().len(), count);

    // A registry client reads it back (georeport, PyPI), in JSON and XML.
    if let Some(python) = std::env::var_os("ANJU_OPEN311_PYTHON") {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/open311/read_back.py");
        let out = std::process::Command::new(python)
            .arg(script)
            .arg(format!("{}/open311/v2", app.base))
            .arg(by_code.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read: Value = serde_json::from_slice(&out.stdout).unwrap();
        let wanted = by_code.to_string();
        for format in ["json", "xml"] {
            let r = &read[format];
            assert_eq!(r["request"]["status"], "closed", "{read}");
            assert_eq!(r["request"]["service_request_id"], by_code.to_string());
            assert!(
                r["services"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["service_code"] == "wiring")
            );
            assert!(r["definition"]["service_code"] == "wiring");
            assert!(
                r["listed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["service_request_id"] == wanted.as_str())
            );
        }
    } else {
        assert!(
            std::env::var("ANJU_REQUIRE_OPEN311_CLIENT").is_err(),
            "ANJU_REQUIRE_OPEN311_CLIENT is set but ANJU_OPEN311_PYTHON is not"
        );
        eprintln!("*** SKIPPED: the georeport client (ANJU_OPEN311_PYTHON) ***");
    }
}

/// A tenant reports from the placard: a tip on its unit, no sign-in; a few an hour
/// from one address, then 429 and nothing stored.
async fn a_tenant_reports_from_the_placard(backend: Backend) {
    let app = spawn_app(backend).await;
    let unit = app.inspector_units().await[2];
    let code = app
        .store()
        .unit(UnitId(unit))
        .await
        .unwrap()
        .unwrap()
        .public_code;
    let (status, page) = get_text(&app, &format!("/u/{code}")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("action=\"/u/{code}/tip\"")),
        "{page}"
    );
    for n in 0..anju_engine::intake::TIPS_PER_CLIENT {
        let (status, body) = app
            .post_form(
                &format!("/u/{code}/tip"),
                &[
                    ("category", "ebike_indoor".into()),
                    ("description", format!("楼道充电 {n}")),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("已收到"));
    }
    let before = app.fingerprint().await;
    let (status, body) = app
        .post_form(
            &format!("/u/{code}/tip"),
            &[("category", "ebike_indoor"), ("description", "again")],
        )
        .await;
    assert_eq!(status, 429, "{body}");
    let (status, _) = app
        .post_form(&format!("/u/{code}/tip"), &[("category", "nope")])
        .await;
    assert_eq!(status, 422);
    assert_eq!(app.fingerprint().await, before);
    let tips = app
        .get("/api/v1/tips", &app.tokens.inspector)
        .await
        .expect(200);
    let tips = tips["tips"].as_array().unwrap();
    assert_eq!(tips.len() as i64, anju_engine::intake::TIPS_PER_CLIENT);
    assert!(
        tips.iter().all(|t| t["source"] == "placard"
            && t["unit_id"] == unit
            && t["reporter_name"].is_null())
    );
}

backend_tests!(
    the_hotline_reports_and_hears_back,
    a_tenant_reports_from_the_placard
);
