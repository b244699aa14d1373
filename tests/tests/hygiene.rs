//! Faults any caller can cause (issue 9, items 1, 2, 4 and 21): control characters in every string, key, query parameter and path; malformed GeoJSON shapes; undecodable paths; out-of-range dates and blank phone numbers; idempotency over the parsed request. Each is refused with problem+json naming the field, on both backends alike, and changes nothing.

use serde_json::{Value, json};

use anju_tests::{Backend, TestApp, backend_tests, spawn_app};

/// The control characters tried, in turn: NUL, ESC, DEL, a vertical tab, a unit
/// separator.
const BAD: [char; 5] = ['\u{0}', '\u{1b}', '\u{7f}', '\u{b}', '\u{1f}'];

/// Every string leaf of `value`, by its path as the API names fields.
fn string_paths(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(path),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                string_paths(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                string_paths(v, p, out);
            }
        }
        _ => {}
    }
}

/// `value` with the string at `path` replaced by `text`.
fn with_string(value: &Value, path: &str, text: &str) -> Value {
    fn at<'a>(v: &'a mut Value, path: &str) -> &'a mut Value {
        let mut cur = v;
        for part in path.split('.') {
            let (key, indexes) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            cur = &mut cur[key];
            for index in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
                cur = &mut cur[index.parse::<usize>().unwrap()];
            }
        }
        cur
    }
    let mut v = value.clone();
    *at(&mut v, path) = json!(text);
    v
}

/// The bodies of every route that takes one, each with strings in as many places as
/// its shape allows (whether the rest is valid does not matter: text is checked first).
fn bodies(app: &TestApp) -> Vec<(String, Value)> {
    let unit = app.unit_of(1);
    let polygon = json!({"type": "Polygon", "coordinates": [[[113.2, 23.1], [113.3, 23.1], [113.3, 23.2], [113.2, 23.1]]]});
    vec![
        (
            "/api/v1/inspections".into(),
            json!({"unit_id": unit, "point": {"lon": 113.26, "lat": 23.13, "crs": "wgs84"}, "note": "到访",
                   "findings": [{"category": "wiring", "severity": "major", "note": "飞线", "evidence": ["photo:1", "photo:2"]}],
                   "checklist": {"extinguishers": true}}),
        ),
        (
            "/api/v1/cases/1/commands".into(),
            json!({"command": "notify", "expected_version": 1, "reason": "原因", "data": {"requirements": "整改", "evidence": ["photo:x"]}}),
        ),
        (
            "/api/v1/units".into(),
            json!({"building_id": 1, "address_code": "440106-x", "address": "天河路1号", "point": {"lon": 113.3, "lat": 23.1}, "floor_area": 40.0, "occupants": 2}),
        ),
        (
            format!("/api/v1/units/{unit}/parties"),
            json!({"party_id": 2, "reason": "转让"}),
        ),
        (
            "/api/v1/parties".into(),
            json!({"kind": "sublandlord", "name": "李四", "phone": "13800000000", "email": "li@example.cn"}),
        ),
        (
            "/api/v1/blacklist".into(),
            json!({"party_id": 1, "reason": "屡次逾期"}),
        ),
        (
            "/api/v1/blacklist/1/decision".into(),
            json!({"approve": true, "note": "同意", "months": 6, "publish": false}),
        ),
        ("/api/v1/blacklist/1/appeal".into(), json!({"text": "申诉"})),
        (
            "/api/v1/rules/versions".into(),
            json!({"name": "r", "version": 2, "on": "deadline_passed", "zh": "规则", "en": "rule", "source": "[]"}),
        ),
        (
            "/api/v1/rules/dry-run".into(),
            json!({"rule": {"name": "r", "on": "deadline_passed", "zh": "规则", "en": "rule", "source": "[]"}, "case_id": 1}),
        ),
        ("/api/v1/units/within".into(), polygon.clone()),
        (
            "/api/v1/campaigns".into(),
            json!({"name": "八查", "area": {"polygon": polygon}, "starts_on": "2026-03-02", "ends_on": "2026-03-09"}),
        ),
        (
            format!("/api/v1/units/{unit}/agreements"),
            json!({"signer": "王五", "signed_on": "2026-01-01", "expires_on": "2027-01-01", "document": "doc:1"}),
        ),
        (
            format!("/api/v1/units/{unit}/policies"),
            json!({"insurer": "人保", "policy_no": "P-1", "starts_on": "2026-01-01", "ends_on": "2027-01-01"}),
        ),
    ]
}

/// Any string or key of any body holding a control character is refused with 422
/// naming it, and nothing changes.
async fn control_characters_in_bodies_are_refused_naming_the_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app.fingerprint().await;
    let mut tried = 0;
    for (route, body) in bodies(&app) {
        let mut paths = Vec::new();
        string_paths(&body, String::new(), &mut paths);
        assert!(!paths.is_empty(), "{route}");
        for (n, path) in paths.iter().enumerate() {
            let bad = BAD[n % BAD.len()];
            let sent = with_string(&body, path, &format!("a{bad}b"));
            for token in [
                &app.tokens.city,
                &app.tokens.inspector,
                &app.tokens.landlord,
            ] {
                let r = app.post(&route, token, &sent).await;
                r.problem(422, Some(path));
                tried += 1;
            }
        }
        // A key holding one.
        let mut sent = body.clone();
        sent.as_object_mut()
            .unwrap()
            .insert("k\u{0}".into(), json!(1));
        app.post(&route, &app.tokens.city, &sent)
            .await
            .problem(422, Some("k\\0"));
    }
    assert!(tried > 100, "{tried}");
    assert_eq!(app.fingerprint().await, before);
}

/// Query strings and paths: a control character is refused with 422 naming the
/// parameter (or `path`); text that is not UTF-8 once decoded with 400; both as
/// problem+json, on every route, before anything is read.
async fn control_characters_and_bad_utf8_in_queries_and_paths(backend: Backend) {
    let app = spawn_app(backend).await;
    let tok = &app.tokens.city;
    let queries = [
        ("/api/v1/cases", "state"),
        ("/api/v1/cases", "category"),
        ("/api/v1/cases", "district"),
        ("/api/v1/units/near", "crs"),
        ("/api/v1/units/within", "bbox"),
        ("/api/v1/parties", "kind"),
        ("/api/v1/blacklist", "status"),
        ("/api/v1/routing", "district"),
        ("/api/v1/inspectors/1/plan", "date"),
        ("/api/v1/campaigns/1/progress", "by"),
        ("/api/v1/inspections", "anything"),
        ("/named", "x"),
    ];
    for (route, param) in queries {
        for enc in ["%00", "%1B", "%7F", "a%0Bb"] {
            app.get(&format!("{route}?{param}={enc}"), tok)
                .await
                .problem(422, Some(param));
        }
        app.get(&format!("{route}?{param}=%ff"), tok)
            .await
            .problem(400, Some(param));
    }
    // A parameter whose name holds one.
    app.get("/api/v1/cases?st%00ate=1", tok)
        .await
        .problem(422, Some("query"));
    for path in [
        "/api/v1/cases/%00",
        "/api/v1/plans/%00/backlog",
        "/u/%00",
        "/u/ab%1Bcd/qr.svg",
        "/c/%7F",
    ] {
        app.get(path, tok).await.problem(422, Some("path"));
    }
    for path in [
        "/u/%ff",
        "/api/v1/plans/%ff/backlog",
        "/c/%c3%28",
        "/api/v1/cases/%ff",
    ] {
        app.get(path, tok).await.problem(400, Some("path"));
    }
}

/// Concurrent commands of other callers commit when some carry a NUL: the bad ones are
/// refused before the writer, the others are not rolled back with them.
async fn a_nul_in_one_command_does_not_fail_the_others(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut cases = Vec::new();
    for unit in app.units_of(1).into_iter().take(4) {
        cases.extend(
            app.inspect(
                &app.tokens.city,
                unit,
                &["wiring", "gas_heater", "sanitation", "fire_equipment"],
            )
            .await,
        );
    }
    assert!(cases.len() >= 12, "{}", cases.len());
    let mut set = tokio::task::JoinSet::new();
    for (i, id) in cases.iter().copied().enumerate() {
        let client = reqwest::Client::new();
        let url = format!("{}/api/v1/cases/{id}/commands", app.base);
        let token = app.tokens.city.clone();
        let reason = if i % 4 == 1 { "坏\u{0}的" } else { "正常" };
        let body = json!({"command": "notify", "expected_version": 1, "reason": reason});
        set.spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (i, id, r.status().as_u16())
        });
    }
    let mut results = set.join_all().await;
    results.sort();
    for (i, id, status) in results {
        if i % 4 == 1 {
            assert_eq!(status, 422, "case {id}");
            assert_eq!(app.state(id).await, "discovered");
        } else {
            assert_eq!(status, 200, "case {id}");
            assert_eq!(app.state(id).await, "notified");
        }
    }
}

/// Every malformed shape is refused with 422 naming the body, never a panic: short and
/// long positions, non-numbers, unclosed rings, too few positions, self-intersections,
/// wrong types, coordinates out of range; on the polygon query and a campaign's area.
async fn malformed_shapes_are_refused_without_a_panic(backend: Backend) {
    let app = spawn_app(backend).await;
    let tok = &app.tokens.city;
    let ring = |r: Value| json!({"type": "Polygon", "coordinates": [r]});
    let shapes = vec![
        ring(json!([
            [113.0],
            [113.1, 23.0],
            [113.1, 23.1],
            [113.0, 23.0]
        ])),
        ring(json!([[], [113.1, 23.0], [113.1, 23.1], [113.0, 23.0]])),
        ring(json!([
            [113.0, 23.0, 1.0, 2.0],
            [113.1, 23.0],
            [113.1, 23.1],
            [113.0, 23.0]
        ])),
        ring(json!([
            ["113.0", 23.0],
            [113.1, 23.0],
            [113.1, 23.1],
            ["113.0", 23.0]
        ])),
        ring(json!([
            [113.0, 23.0],
            [113.1, 23.0],
            [113.1, 23.1],
            [113.0, 23.1]
        ])),
        ring(json!([[113.0, 23.0], [113.1, 23.0], [113.0, 23.0]])),
        ring(json!([
            [113.0, 23.0],
            [113.1, 23.1],
            [113.1, 23.0],
            [113.0, 23.1],
            [113.0, 23.0]
        ])),
        ring(json!([
            [113.0, 23.0],
            [193.1, 23.0],
            [113.1, 23.1],
            [113.0, 23.0]
        ])),
        ring(json!([
            [113.0, 23.0],
            [113.1, 95.0],
            [113.1, 23.1],
            [113.0, 23.0]
        ])),
        ring(json!(113.0)),
        ring(json!([113.0, 23.0])),
        json!({"type": "Polygon", "coordinates": []}),
        json!({"type": "Polygon", "coordinates": [[]]}),
        json!({"type": "Polygon"}),
        json!({"type": "MultiPolygon", "coordinates": [[[[113.0], [113.1, 23.0], [113.1, 23.1], [113.0, 23.0]]]]}),
        json!({"type": "MultiPolygon", "coordinates": [[]]}),
        json!({"type": "Point", "coordinates": [113.0, 23.0]}),
        json!({"type": "LineString", "coordinates": [[113.0, 23.0], [113.1, 23.0]]}),
        json!({"type": "GeometryCollection", "geometries": []}),
        json!({"type": "FeatureCollection", "features": []}),
        json!({"type": "Feature", "geometry": null, "properties": {}}),
        json!({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[113.0]]]}, "properties": {}}),
        json!({"type": "Circle", "coordinates": [113.0, 23.0]}),
        json!({"coordinates": [[[113.0, 23.0], [113.1, 23.0], [113.1, 23.1], [113.0, 23.0]]]}),
        json!([1, 2, 3]),
        json!("Polygon"),
        json!(null),
    ];
    let before = app.fingerprint().await;
    for shape in &shapes {
        for crs in ["wgs84", "gcj02"] {
            let r = app
                .post(&format!("/api/v1/units/within?crs={crs}"), tok, shape)
                .await;
            let body = r.problem(422, None);
            assert!(
                body["field"].as_str().unwrap().starts_with("body"),
                "{shape}: {body}"
            );
        }
        let campaign = json!({"name": "八查", "area": {"polygon": shape}, "starts_on": "2026-03-02", "ends_on": "2026-03-09"});
        let body = app
            .post("/api/v1/campaigns", tok, &campaign)
            .await
            .problem(422, None);
        assert!(
            body["field"].as_str().unwrap().starts_with("area.polygon"),
            "{shape}: {body}"
        );
    }
    assert_eq!(app.fingerprint().await, before);
    // The service is still up.
    app.get("/api/v1/me", tok).await.expect(200);
}

/// Dates far outside any plan, and blank or malformed phone numbers, are refused.
async fn out_of_range_dates_and_blank_phones_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let tok = &app.tokens.city;
    let unit = app.unit_of(1);
    let before = app.fingerprint().await;
    for day in ["0000-01-01", "9999-12-31", "1970-01-01", "2026-02-30"] {
        app.get(&format!("/api/v1/inspectors/1/plan?date={day}"), tok)
            .await
            .problem(422, Some("date"));
        app.get(&format!("/api/v1/plans/{day}/backlog"), tok)
            .await
            .problem(422, Some("date"));
        let body = json!({"signer": "王五", "signed_on": day, "expires_on": "2027-01-01"});
        app.post(&format!("/api/v1/units/{unit}/agreements"), tok, &body)
            .await
            .problem(422, Some("signed_on"));
        let body = json!({"name": "八查", "area": {"district": "440106"}, "starts_on": "2026-03-02", "ends_on": day});
        app.post("/api/v1/campaigns", tok, &body)
            .await
            .problem(422, Some("ends_on"));
    }
    for phone in ["", "   ", "abc", "12", "+86 +20"] {
        let body = json!({"kind": "sublandlord", "name": "李四", "phone": phone});
        app.post("/api/v1/parties", tok, &body)
            .await
            .problem(422, Some("phone"));
    }
    for email in ["", " ", "li", "li@"] {
        let body = json!({"kind": "sublandlord", "name": "李四", "email": email});
        app.post("/api/v1/parties", tok, &body)
            .await
            .problem(422, Some("email"));
    }
    assert_eq!(app.fingerprint().await, before);
}

/// The same JSON under the same Idempotency-Key, with other whitespace or key order,
/// is the same request: the first answer is replayed.
async fn idempotency_compares_the_parsed_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let unit = app.unit_of(1);
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit))
        .await
        .unwrap()
        .unwrap();
    let compact = format!(
        r#"{{"unit_id":{unit},"point":{{"lon":{},"lat":{}}},"findings":[{{"category":"wiring"}}]}}"#,
        u.lon, u.lat
    );
    let spaced = format!(
        "{{\n  \"findings\" : [ {{ \"category\" : \"wiring\" }} ],\n  \"point\" : {{ \"lat\" : {}, \"lon\" : {} }},\n  \"unit_id\" : {unit}\n}}",
        u.lat, u.lon
    );
    let send = |body: String| {
        app.send(
            app.client
                .post(format!("{}/api/v1/inspections", app.base))
                .bearer_auth(&app.tokens.inspector)
                .header("content-type", "application/json")
                .header("idempotency-key", "visit-same")
                .body(body),
        )
    };
    let first = send(compact).await.expect(201);
    let again = send(spaced).await.expect(201);
    assert_eq!(first, again);
    // A different request under the same key is still refused.
    let other = format!(
        r#"{{"unit_id":{unit},"point":{{"lon":{},"lat":{}}},"findings":[{{"category":"sanitation"}}]}}"#,
        u.lon, u.lat
    );
    send(other).await.problem(422, Some("Idempotency-Key"));
}

backend_tests!(
    control_characters_in_bodies_are_refused_naming_the_field,
    control_characters_and_bad_utf8_in_queries_and_paths,
    a_nul_in_one_command_does_not_fail_the_others,
    malformed_shapes_are_refused_without_a_panic,
    out_of_range_dates_and_blank_phones_are_refused,
    idempotency_compares_the_parsed_request,
);
