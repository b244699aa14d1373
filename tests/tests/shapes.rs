//! The public API's shapes, route by route: one scenario touches every route as the users who may use it, and the keys and value types of every answer (paths such as `cases[].timer.due_at: string`) are held against `tests/shapes/api.txt`, so that a change in the engine's records never changes an answer unnoticed. `ANJU_BLESS_SHAPES=1` rewrites the file (review its diff: it is the API's change).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Value, json};

use anju_engine::time::Clock as _;
use anju_tests::{Backend, Reply, TestApp, backend_tests, spawn_app};

/// Every leaf of `value` as `path: type` (arrays merge their items' shapes; empty
/// arrays and objects are leaves of their own).
fn shape(value: &Value, path: &str, out: &mut BTreeSet<String>) {
    let leaf = |kind: &str| format!("{path}: {kind}");
    match value {
        Value::Null => {
            out.insert(leaf("null"));
        }
        Value::Bool(_) => {
            out.insert(leaf("bool"));
        }
        Value::Number(_) => {
            out.insert(leaf("number"));
        }
        Value::String(_) => {
            out.insert(leaf("string"));
        }
        Value::Array(items) if items.is_empty() => {
            out.insert(leaf("[]"));
        }
        Value::Array(items) => {
            for item in items {
                shape(item, &format!("{path}[]"), out);
            }
        }
        Value::Object(map) if map.is_empty() => {
            out.insert(leaf("{}"));
        }
        Value::Object(map) => {
            for (k, v) in map {
                shape(v, &format!("{path}.{k}"), out);
            }
        }
    }
}

/// The answers of a scenario, written down as their statuses and shapes.
struct Book {
    text: String,
}

impl Book {
    /// Notes an answer under `label`, and returns its body.
    fn note(&mut self, label: &str, r: Reply) -> Value {
        let mut lines = BTreeSet::new();
        shape(&r.body, "", &mut lines);
        writeln!(self.text, "## {label}: {}", r.status.as_u16()).unwrap();
        if r.status.as_u16() >= 400 {
            eprintln!("{label}: {}", r.body);
        }
        for line in lines {
            writeln!(self.text, "{line}").unwrap();
        }
        r.body
    }
}

async fn get_json(app: &TestApp, path: &str) -> Reply {
    app.send(
        app.client
            .get(format!("{}{path}", app.base))
            .header("accept", "application/json"),
    )
    .await
}

/// Every route, as the users who may use it, in one scenario.
async fn scenario(app: &TestApp) -> String {
    let t = &app.tokens;
    let mut b = Book {
        text: String::new(),
    };
    let unit = app.unit_of(1);
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit))
        .await
        .unwrap()
        .unwrap();
    let (lon, lat) = (u.lon, u.lat);
    let d = 0.002;
    let square = json!({ "type": "Polygon", "coordinates": [[
        [lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]
    ]] });

    b.note("me (inspector)", app.get("/api/v1/me", &t.inspector).await);
    b.note("me (landlord)", app.get("/api/v1/me", &t.landlord).await);
    let uploaded = b.note(
        "upload a photo",
        app.upload(
            &t.inspector,
            "photo",
            "现场.jpg",
            "image/jpeg",
            anju_tests::photos::photo_at(lon, lat, "2026:03:02 08:45:00", 1),
        )
        .await,
    );
    let photo = uploaded["id"].as_str().expect("an upload").to_string();
    b.note(
        "an upload, described",
        app.get(&format!("/api/v1/evidence/{photo}"), &t.inspector)
            .await,
    );
    let inspection = b.note(
        "record an inspection",
        app.post(
            "/api/v1/inspections",
            &t.inspector,
            &json!({ "unit_id": unit, "point": { "lon": lon, "lat": lat }, "note": "到访",
                     "findings": [
                        { "category": "wiring", "severity": "major", "note": "飞线", "evidence": [photo] },
                        { "category": "ebike_indoor", "severity": "critical", "evidence": [photo] }
                     ],
                     "checklist": anju_engine::grading::Rubric::builtin().checklist_for(4, |_| 0) }),
        )
        .await,
    );
    let case = inspection["cases"][0]["id"].as_i64().expect("a case");
    let other = inspection["cases"][1]["id"]
        .as_i64()
        .expect("a second case");
    b.note(
        "notify",
        app.command(
            case,
            &t.inspector,
            "notify",
            json!({ "requirements": "整改" }),
        )
        .await,
    );
    b.note(
        "refer",
        app.command(other, &t.inspector, "refer", json!({ "note": "需执法" }))
            .await,
    );
    let log: anju_engine::outbox::Channels =
        vec![std::sync::Arc::new(anju_engine::outbox::LogChannel)];
    app.runtime().deliver_outbox(&log).await.unwrap();
    b.note(
        "a refused command",
        app.command(
            case,
            &t.inspector,
            "notify",
            json!({ "requirements": "再次" }),
        )
        .await,
    );
    b.note(
        "case (inspector)",
        app.get(&format!("/api/v1/cases/{case}"), &t.inspector)
            .await,
    );
    b.note(
        "case (landlord)",
        app.get(&format!("/api/v1/cases/{case}"), &t.landlord).await,
    );
    b.note(
        "case (fire)",
        app.get(&format!("/api/v1/cases/{other}"), &t.fire).await,
    );
    b.note(
        "events",
        app.get(
            &format!("/api/v1/cases/{case}/events?after=1"),
            &t.inspector,
        )
        .await,
    );
    b.note(
        "messages",
        app.get(&format!("/api/v1/cases/{case}/messages"), &t.inspector)
            .await,
    );
    b.note(
        "dead letters",
        app.get("/api/v1/deliveries/dead", &t.district).await,
    );
    b.note("inbox", app.get("/api/v1/me/messages", &t.landlord).await);
    b.note("cases", app.get("/api/v1/cases", &t.district).await);
    b.note(
        "cases of a unit",
        app.get(&format!("/api/v1/cases?unit_id={unit}"), &t.inspector)
            .await,
    );
    b.note(
        "orders",
        app.get("/api/v1/landlords/1/orders", &t.landlord).await,
    );
    b.note(
        "landlord's units",
        app.get("/api/v1/landlords/1/units", &t.landlord).await,
    );
    b.note(
        "referrals",
        app.get("/api/v1/departments/1/referrals", &t.fire).await,
    );
    b.note(
        "rule jobs",
        app.get(&format!("/api/v1/cases/{case}/rule-jobs"), &t.district)
            .await,
    );

    b.note(
        "unit",
        app.get(&format!("/api/v1/units/{unit}"), &t.inspector)
            .await,
    );
    b.note(
        "grades",
        app.get(&format!("/api/v1/units/{unit}/grades"), &t.inspector)
            .await,
    );
    b.note(
        "rubric",
        app.get("/api/v1/grading/rubric", &t.inspector).await,
    );
    b.note(
        "near",
        app.get(
            &format!("/api/v1/units/near?lon={lon}&lat={lat}&radius_m=100&limit=3"),
            &t.inspector,
        )
        .await,
    );
    b.note(
        "nearest",
        app.get(
            &format!("/api/v1/units/nearest?lon={lon}&lat={lat}&k=2"),
            &t.inspector,
        )
        .await,
    );
    b.note(
        "within a box",
        app.get(
            &format!(
                "/api/v1/units/within?bbox={},{},{},{}&limit=3",
                lon - d,
                lat - d,
                lon + d,
                lat + d
            ),
            &t.inspector,
        )
        .await,
    );
    b.note(
        "within a polygon",
        app.post("/api/v1/units/within?limit=3", &t.inspector, &square)
            .await,
    );
    b.note(
        "ungridded",
        app.get("/api/v1/units/ungridded?limit=3", &t.city).await,
    );
    let grid = u.grid_id.expect("a gridded unit").0;
    b.note(
        "grid",
        app.get(&format!("/api/v1/grids/{grid}"), &t.inspector)
            .await,
    );
    b.note(
        "grid's units",
        app.get(&format!("/api/v1/grids/{grid}/units"), &t.inspector)
            .await,
    );
    b.note(
        "correct a unit's point",
        app.post(
            &format!("/api/v1/units/{unit}/location"),
            &t.inspector,
            &json!({ "point": { "lon": lon + 0.00001, "lat": lat }, "reason": "现场核实" }),
        )
        .await,
    );
    b.note(
        "create a unit",
        app.post(
            "/api/v1/units",
            &t.city,
            &json!({ "building_id": u.building_id.0, "address_code": "440106-shape", "address": "形状路1号",
                     "lon": lon, "lat": lat, "floor_area": 40.0, "occupants": 2 }),
        )
        .await,
    );
    b.note(
        "inspections",
        app.get("/api/v1/inspections", &t.district).await,
    );

    b.note(
        "workflows",
        app.get("/api/v1/workflows", &t.inspector).await,
    );
    b.note(
        "departments",
        app.get("/api/v1/departments", &t.district).await,
    );
    b.note(
        "inspectors",
        app.get("/api/v1/inspectors", &t.district).await,
    );
    b.note("supervisors", app.get("/api/v1/supervisors", &t.city).await);
    b.note("rules", app.get("/api/v1/rules", &t.city).await);
    b.note(
        "statistics",
        app.get(
            "/api/v1/statistics?area=city&from=2026-03-01&to=2026-03-31",
            &t.city,
        )
        .await,
    );
    b.note(
        "routing",
        app.get(
            &format!("/api/v1/routing?district={}", u.district_code),
            &t.city,
        )
        .await,
    );
    b.note(
        "publish a rule",
        app.post(
            "/api/v1/rules/versions",
            &t.city,
            &json!({ "name": "shape_rule", "version": 1, "on": ["order_overdue"], "zh": "形状", "en": "shape",
                     "source": "[]" }),
        )
        .await,
    );
    b.note(
        "dry run",
        app.post(
            "/api/v1/rules/dry-run",
            &t.district,
            &json!({ "rule": { "name": "shape_rule", "version": 2, "on": ["order_overdue"], "zh": "形状", "en": "shape",
                               "source": "[#{ action: \"refer\", department: \"fire\", reason: \"逾期\" }]" },
                     "case_id": case }),
        )
        .await,
    );

    let day = app
        .clock
        .now()
        .with_timezone(&anju_engine::time::china_time())
        .date_naive();
    b.note(
        "plan",
        app.get(
            &format!("/api/v1/inspectors/1/plan?date={day}"),
            &t.inspector,
        )
        .await,
    );
    app.runtime().plan_city(day, true).await.unwrap();
    b.note(
        "backlog",
        app.get(&format!("/api/v1/plans/{day}/backlog"), &t.district)
            .await,
    );
    let campaign = b.note(
        "create a campaign",
        app.post(
            "/api/v1/campaigns",
            &t.district,
            &json!({ "name": "八查", "area": { "polygon": square }, "starts_on": day.to_string(),
                     "ends_on": (day + chrono::Days::new(7)).to_string() }),
        )
        .await,
    );
    let campaign = campaign["id"].as_i64().expect("a campaign");
    b.note("campaigns", app.get("/api/v1/campaigns", &t.district).await);
    b.note(
        "campaign",
        app.get(&format!("/api/v1/campaigns/{campaign}"), &t.district)
            .await,
    );
    b.note(
        "campaign progress",
        app.get(
            &format!("/api/v1/campaigns/{campaign}/progress"),
            &t.district,
        )
        .await,
    );

    b.note(
        "register a party",
        app.post(
            "/api/v1/parties",
            &t.district,
            &json!({ "kind": "sublandlord", "name": "李四", "phone": "13800000000", "email": "li@example.cn" }),
        )
        .await,
    );
    b.note(
        "parties",
        app.get("/api/v1/parties?limit=3", &t.district).await,
    );
    b.note("party", app.get("/api/v1/parties/1", &t.landlord).await);
    b.note(
        "change a unit's party",
        app.post(
            &format!("/api/v1/units/{}/parties", app.unit_of(2)),
            &t.city,
            &json!({ "party_id": 1 }),
        )
        .await,
    );
    b.note(
        "unit's parties",
        app.get(&format!("/api/v1/units/{unit}/parties"), &t.inspector)
            .await,
    );
    b.note(
        "add an agreement",
        app.post(
            &format!("/api/v1/units/{unit}/agreements"),
            &t.inspector,
            &json!({ "signer": "王五", "signed_on": day.to_string(), "expires_on": (day + chrono::Days::new(365)).to_string(),
                     "document": "doc:1" }),
        )
        .await,
    );
    b.note(
        "add a policy",
        app.post(
            &format!("/api/v1/units/{unit}/policies"),
            &t.inspector,
            &json!({ "insurer": "人保", "policy_no": "P-1", "coverage_yuan": 500000, "starts_on": day.to_string(),
                     "ends_on": (day + chrono::Days::new(365)).to_string() }),
        )
        .await,
    );
    b.note(
        "responsibility",
        app.get(&format!("/api/v1/units/{unit}/responsibility"), &t.landlord)
            .await,
    );
    let entry = b.note(
        "propose a blacklist entry",
        app.post(
            "/api/v1/blacklist",
            &t.city,
            &json!({ "party_id": 1, "reason": "屡次逾期" }),
        )
        .await,
    );
    let entry = entry["id"].as_i64().expect("an entry");
    b.note(
        "decide an entry",
        app.post(
            &format!("/api/v1/blacklist/{entry}/decision"),
            &t.city,
            &json!({ "approve": true, "months": 6, "publish": true }),
        )
        .await,
    );
    b.note(
        "appeal",
        app.post(
            &format!("/api/v1/blacklist/{entry}/appeal"),
            &t.landlord,
            &json!({ "appeal": "已整改" }),
        )
        .await,
    );
    b.note(
        "decide an appeal",
        app.post(
            &format!("/api/v1/blacklist/{entry}/appeal-decision"),
            &t.city,
            &json!({ "upheld": true, "note": "维持" }),
        )
        .await,
    );
    b.note("blacklist", app.get("/api/v1/blacklist", &t.city).await);
    b.note(
        "lift an entry",
        app.post(
            &format!("/api/v1/blacklist/{entry}/lift"),
            &t.city,
            &json!({ "note": "已整改到位" }),
        )
        .await,
    );

    b.note(
        "placard",
        get_json(app, &format!("/u/{}", u.public_code)).await,
    );
    b.note("named", get_json(app, "/named").await);
    b.note(
        "not found",
        app.get("/api/v1/cases/999999", &t.inspector).await,
    );
    b.text
}

/// Every answer has the shape written in `tests/shapes/api.txt`, on both backends.
async fn every_answer_keeps_its_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let got = scenario(&app).await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/shapes/api.txt");
    if std::env::var_os("ANJU_BLESS_SHAPES").is_some() && backend == Backend::Sqlite {
        std::fs::write(path, &got).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    if got != want {
        let diff: Vec<String> = diff_lines(&want, &got);
        panic!(
            "the API's shapes changed ({} lines differ; ANJU_BLESS_SHAPES=1 rewrites the file):\n{}",
            diff.len(),
            diff.join("\n")
        );
    }
}

/// The lines only one side has, marked `-` (expected) and `+` (got), with their section.
fn diff_lines(want: &str, got: &str) -> Vec<String> {
    let sections = |text: &str| -> BTreeSet<String> {
        let mut section = String::new();
        let mut out = BTreeSet::new();
        for line in text.lines() {
            if line.starts_with("## ") {
                section = line.to_string();
            }
            out.insert(format!("{section} | {line}"));
        }
        out
    };
    let (w, g) = (sections(want), sections(got));
    w.difference(&g)
        .map(|l| format!("- {l}"))
        .chain(g.difference(&w).map(|l| format!("+ {l}")))
        .collect()
}

backend_tests!(every_answer_keeps_its_shape);
