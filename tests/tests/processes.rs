//! Real `anju` processes: a restart between an order and its deadline (the timer fires once), two processes sharing one PostgreSQL database (each timer fires exactly once), and the command line's errors.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta};
use serde_json::{Value, json};
use sqlx::Row;

use anju_tests::{Backend, TestDb, t0};

mod process_support;
use process_support::*;

/// The test server seeds its demo city at its own (manual) time, refuses a clock it
/// cannot read, and runs the daily sweep when asked (issue 9, item 23).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_server_keeps_to_its_clock() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = Server::start_with(&db, t0(), false, &["--demo", "--demo-units", "300"]);
    let city = token(&db, "supervisor", 1);
    // The seeded patrol history leads up to the server's clock, not the wall clock.
    let mut seen = Vec::new();
    for id in 1..=60 {
        let u = server.get(&format!("/api/v1/units/{id}"), &city).await;
        if let Some(t) = u["last_inspected_at"].as_str() {
            seen.push(DateTime::parse_from_rfc3339(t).unwrap().to_utc());
        }
    }
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|t| *t <= t0() && *t > t0() - chrono::TimeDelta::days(120)),
        "{seen:?}"
    );
    // A clock that does not parse is refused and the clock stays.
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/__test/clock",
            "",
            Some(json!({ "now": "next tuesday" })),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "now");
    let health = server.get("/healthz", "").await;
    assert_eq!(
        DateTime::parse_from_rfc3339(health["now"].as_str().unwrap())
            .unwrap()
            .to_utc(),
        t0()
    );
    // The daily sweep, on demand, once a day.
    let swept = server.post("/__test/rules/sweep", "", json!({})).await;
    assert_eq!(swept["day"], "2026-03-02", "{swept}");
    assert!(swept["cases"].is_number(), "{swept}");
    let again = server.post("/__test/rules/sweep", "", json!({})).await;
    assert_eq!(again["already"], true, "{again}");
}

/// `anju import grids` moves units out of a grid that moved away, and `anju units
/// ungridded` lists them, every one (issue 9, item 12).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_lists_units_in_no_grid() {
    let db = seeded(Backend::Sqlite).await;
    let store = db.store().await;
    let in_grid_1: Vec<i64> = store
        .grid_units(anju_engine::domain::GridId(1), None, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|u| u.id.0)
        .collect();
    let code = store
        .grid(anju_engine::domain::GridId(1))
        .await
        .unwrap()
        .unwrap()
        .code;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        json!({"type": "FeatureCollection", "features": [{"type": "Feature",
            "properties": {"code": code},
            "geometry": anju_engine::spatial::grids::rectangle((100.0, 10.0), (100.01, 10.01))}]})
        .to_string(),
    )
    .unwrap();
    let (ok, out, err) = cli(&[
        "import",
        "grids",
        "--database-url",
        &db.url,
        file.path().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("{} inside no grid", in_grid_1.len())),
        "{out}"
    );
    let (ok, out, err) = cli(&["units", "ungridded", "--database-url", &db.url]);
    assert!(ok, "{err}");
    let listed: Vec<i64> = out
        .lines()
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed, in_grid_1);
    assert_eq!(err, format!("{} units lie in no grid", in_grid_1.len()));
}

async fn restart_between_order_and_deadline(backend: Backend) {
    let db = seeded(backend).await;
    let inspector = token(&db, "inspector", 1);
    let a = Server::start(&db, t0(), false);
    let unit = a.get("/api/v1/units/1", &inspector).await;
    let opened = a
        .post(
            "/api/v1/inspections",
            &inspector,
            json!({ "unit_id": 1, "point": { "lon": unit["lon"], "lat": unit["lat"] }, "findings": [{ "category": "wiring" }] }),
        )
        .await;
    let id = opened["cases"][0]["id"].as_i64().unwrap();
    let case = a.command(id, &inspector, "notify").await;
    assert_eq!(case["case"]["deadline_at"], "2026-03-05T01:00:00Z");
    a.kill();

    // A new process, the clock a day before the deadline: nothing is due.
    let b = Server::start(&db, t0() + TimeDelta::hours(48), false);
    assert_eq!(b.tick().await["claimed"], 0);
    b.kill();

    // Another one after the deadline: the timer fires, once.
    let c = Server::start(&db, t0() + TimeDelta::hours(73), false);
    assert_eq!(c.tick().await["fired"], 1);
    assert_eq!(c.tick().await["claimed"], 0);
    c.set_clock(t0() + TimeDelta::days(30)).await;
    assert_eq!(c.tick().await["claimed"], 0);
    let case = c.get(&format!("/api/v1/cases/{id}"), &inspector).await;
    assert_eq!(case["case"]["state"], "overdue");
    let fired = case["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["command"] == "deadline_passed")
        .count();
    assert_eq!(fired, 1);
    let health = c.get("/healthz", "").await;
    assert_eq!(health["clock"], "manual");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restart_between_order_and_deadline() {
    restart_between_order_and_deadline(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_between_order_and_deadline() {
    if anju_tests::postgres_available().await {
        restart_between_order_and_deadline(Backend::Postgres).await;
    }
}

/// Cases whose deadlines the two processes race to fire.
const RACED: usize = 240;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_fire_each_timer_once() {
    if !anju_tests::postgres_available().await {
        return;
    }
    let db = seeded(Backend::Postgres).await;
    let city = token(&db, "supervisor", 1);
    let a = Server::start(&db, t0(), true);
    let b = Server::start(&db, t0(), true);
    // Open the cases on units across the city, 12 findings an inspection, and issue
    // their orders through both processes.
    let mut ids = Vec::new();
    let mut unit = 0;
    while ids.len() < RACED {
        unit += 1;
        let u = a.get(&format!("/api/v1/units/{unit}"), &city).await;
        if u["party_id"].is_null() {
            continue;
        }
        let findings: Vec<Value> = (0..20)
            .map(|_| json!({ "category": "ebike_indoor" }))
            .collect();
        let opened = a
            .post("/api/v1/inspections", &city, json!({ "unit_id": unit, "point": { "lon": u["lon"], "lat": u["lat"] }, "findings": findings }))
            .await;
        ids.extend(
            opened["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap()),
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let via = if i % 2 == 0 { &a } else { &b };
        via.command(*id, &city, "notify").await;
    }
    // Every deadline is due at once, for both processes; their background workers and
    // explicit ticks all claim at the same time.
    // Past the longest deadline (15 days).
    let later = t0() + TimeDelta::days(16);
    a.set_clock(later).await;
    b.set_clock(later).await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await
        .unwrap();
    let mut rounds = 0;
    loop {
        let (ta, tb) = tokio::join!(a.tick(), b.tick());
        assert!(ta["error"].is_null() && tb["error"].is_null(), "{ta} {tb}");
        let left: i64 =
            sqlx::query("SELECT COUNT(*) FROM cases WHERE timer_kind = 'order_deadline'")
                .fetch_one(&pool)
                .await
                .unwrap()
                .get(0);
        if left == 0 {
            break;
        }
        rounds += 1;
        assert!(rounds < 10_000, "{left} timers never fired");
    }
    let per_case: Vec<(i64, i64)> = sqlx::query(
        "SELECT case_id, COUNT(*) FROM case_events WHERE command = 'deadline_passed' GROUP BY case_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert_eq!(per_case.len(), RACED, "every case's deadline fired");
    assert!(
        per_case.iter().all(|(_, n)| *n == 1),
        "a deadline fired twice: {per_case:?}"
    );
    let overdue_messages: i64 = sqlx::query("SELECT COUNT(*) FROM outbox WHERE template IN ('order_overdue', 'order_overdue_inspector')")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        overdue_messages,
        2 * RACED as i64,
        "each firing wrote its messages once"
    );
    // The rules then act on every overdue event, both processes working the same jobs
    // (their background workers too): each e-bike case goes to the fire brigade once,
    // and no rule step is applied twice.
    let mut rounds = 0;
    loop {
        let (ra, rb) = tokio::join!(a.rules_tick(), b.rules_tick());
        assert!(ra["error"].is_null() && rb["error"].is_null(), "{ra} {rb}");
        let pending: i64 = sqlx::query("SELECT COUNT(*) FROM rule_jobs WHERE done_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            break;
        }
        rounds += 1;
        assert!(rounds < 10_000, "{pending} rule jobs never ran");
    }
    let states: Vec<String> = sqlx::query("SELECT DISTINCT state FROM cases")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["referred"]);
    let referred: Vec<i64> = sqlx::query(
        "SELECT COUNT(*) FROM case_events WHERE command = 'rule_refer' GROUP BY case_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert_eq!(referred.len(), RACED);
    assert!(referred.iter().all(|n| *n == 1), "{referred:?}");
    let twice: i64 = sqlx::query(
        "SELECT COUNT(*) FROM (SELECT case_id, data->'rule'->>'job', command, COUNT(*) \
         FROM case_events WHERE actor_id LIKE 'rule:%' \
         GROUP BY 1, 2, 3 HAVING COUNT(*) > 1) AS t",
    )
    .fetch_one(&pool)
    .await
    .unwrap()
    .get(0);
    assert_eq!(twice, 0, "a rule step was applied twice");
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_errors_are_one_line_and_change_nothing() {
    let db = seeded(Backend::Sqlite).await;
    let (ok, _, err) = cli(&[
        "token",
        "create",
        "--database-url",
        &db.url,
        "--role",
        "landlord",
        "--subject",
        "999999",
    ]);
    assert!(!ok);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("anju: error: party 999999 not found"),
        "{err}"
    );
    let (ok, _, err) = cli(&[
        "seed",
        "--demo",
        "--units",
        "100",
        "--database-url",
        &db.url,
    ]);
    assert!(!ok);
    assert!(err.contains("already holds units"), "{err}");
    let (ok, _, err) = cli(&["token", "create", "--role", "wizard", "--subject", "1"]);
    assert!(!ok);
    assert!(err.contains("invalid value 'wizard'"), "{err}");

    // An import with a bad line writes nothing, not even its good lines.
    let store = db.store().await;
    let before = store.fingerprint().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.jsonl");
    std::fs::write(
        &file,
        concat!(
            "{\"type\":\"party\",\"id\":90001,\"kind\":\"landlord\",\"name\":\"王五\"}\n",
            "{\"type\":\"unit\",\"id\":90001,\"address_code\":\"X1\",\"building_id\":1,\"address\":\"某处\",\"lon\":113.2,\"lat\":123.1,\"floor_area\":20,\"occupants\":1}\n",
        ),
    )
    .unwrap();
    let (ok, _, err) = cli(&[
        "import",
        "records",
        "--database-url",
        &db.url,
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert_eq!(
        err,
        "anju: error: line 2: point.lat: latitude must be a number from -90 to 90, got 123.1"
    );
    std::fs::write(
        &file,
        concat!(
            "{\"type\":\"party\",\"id\":90001,\"kind\":\"landlord\",\"name\":\"王五\"}\n",
            "{\"type\":\"unit\",\"id\":90001,\"address_code\":\"X1\",\"building_id\":999999,\"address\":\"某处\",\"lon\":113.2,\"lat\":23.1,\"floor_area\":20,\"occupants\":1}\n",
        ),
    )
    .unwrap();
    let (ok, _, err) = cli(&[
        "import",
        "records",
        "--database-url",
        &db.url,
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("nothing was imported"), "{err}");
    assert_eq!(store.fingerprint().await.unwrap(), before);
    // Units far from their building, or outside the city, are refused, every one with
    // its line; nothing is written.
    let site = store.building_place(1).await.unwrap().unwrap();
    let unit_line = |id: i64, lon: f64, lat: f64| {
        format!(
            "{{\"type\":\"unit\",\"id\":{id},\"address_code\":\"X{id}\",\"building_id\":1,\"address\":\"某处\",\"lon\":{lon},\"lat\":{lat},\"floor_area\":20,\"occupants\":1,\"party_id\":90001}}\n"
        )
    };
    let party = "{\"type\":\"party\",\"id\":90001,\"kind\":\"landlord\",\"name\":\"王五\"}\n";
    std::fs::write(
        &file,
        format!(
            "{party}{}{}{}",
            unit_line(90001, site.lon + 0.05, site.lat),
            unit_line(90002, site.lon, site.lat),
            unit_line(90003, site.lon, site.lat + 0.01),
        ),
    )
    .unwrap();
    let (ok, _, err) = cli(&[
        "import",
        "records",
        "--database-url",
        &db.url,
        file.to_str().unwrap(),
    ]);
    assert!(!ok);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("line 2: point: ") && lines[0].contains("m from its building 1"),
        "{err}"
    );
    assert!(lines[1].starts_with("line 4: point: "), "{err}");
    assert_eq!(
        *lines.last().unwrap(),
        "anju: error: nothing was imported: 2 lines refused"
    );
    assert_eq!(store.fingerprint().await.unwrap(), before);
    // A good import lands, and the new unit can be read.
    std::fs::write(
        &file,
        format!("{party}{}", unit_line(90001, site.lon, site.lat)),
    )
    .unwrap();
    let (ok, out, err) = cli(&[
        "import",
        "records",
        "--database-url",
        &db.url,
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.starts_with("imported 2 records"), "{out}");
    let unit = store
        .unit(anju_engine::domain::UnitId(90001))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unit.party_id, Some(anju_engine::domain::PartyId(90001)));
    assert_eq!(unit.district_code, "440103", "placed by its building");
}

/// `anju rules check` lists the starter rules, and refuses a folder with a broken
/// script in one line, naming the rule and the file.
#[test]
fn rules_check_lists_rules_and_refuses_broken_scripts() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../workflows/rules");
    let (ok, out, err) = cli(&["rules", "check", "--dir", shipped]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(out.contains("ok  ebike_overdue_to_fire v1 on order_overdue, daily"));

    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("grade_drop_to_one_star.rhai"), "if {").unwrap();
    let (ok, out, err) = cli(&["rules", "check", "--dir", dir.path().to_str().unwrap()]);
    assert!(!ok);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("grade_drop_to_one_star") && err.contains(".rhai"),
        "{err}"
    );

    let (ok, _, err) = cli(&["rules", "check", "--dir", "/nonexistent/rules"]);
    assert!(
        !ok && err.lines().count() == 1 && err.contains("rules.toml"),
        "{err}"
    );
}

/// The README's walkthrough, run verbatim (its `sh` blocks, with the demo's tokens)
/// against `anju serve --demo`: the inspection is on site, every step is accepted, and
/// the bad-input example answers exactly as the README shows (issue 9, item 22).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_as_written() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = &readme[readme.find("## A case over HTTP, step by step").unwrap()..];
    let blocks: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap()])
        .take(2)
        .collect();
    let (walk, bad) = (blocks[0], blocks[1]);
    assert!(
        walk.contains("export API=") && bad.contains("passed"),
        "{walk}\n{bad}"
    );
    // The demo, as the README starts it (with the test server's clock).
    let db = TestDb::new(Backend::Sqlite).await;
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--database-url",
            &db.url,
            "--bind",
            "127.0.0.1:0",
        ])
        .env("ANJU_TEST_CLOCK_START", t0().to_rfc3339())
        .env("ANJU_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut tokens = std::collections::HashMap::new();
    let base = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the demo starts");
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_string();
        }
        for (who, var) in [
            ("inspector 1", "INSPECTOR"),
            ("landlord (party) 1", "LANDLORD"),
            ("department 1", "FIRE"),
            ("district supervisor 2", "DISTRICT"),
        ] {
            if line.trim_start().starts_with(who) {
                tokens.insert(var, line.split_whitespace().last().unwrap().to_string());
            }
        }
    };
    assert_eq!(tokens.len(), 4, "{tokens:?}");
    // The README's own lines, but for the two that say where the service and the
    // tokens are: those come from the environment.
    let script: String = walk
        .lines()
        .filter(|l| !l.starts_with("export "))
        .map(|l| format!("{l}\n"))
        .collect();
    let run = |script: String| {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            // As a reader runs it: from the repository's root.
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("API", format!("{base}/api/v1"))
            .env("INSPECTOR", &tokens["INSPECTOR"])
            .env("LANDLORD", &tokens["LANDLORD"])
            .env("FIRE", &tokens["FIRE"])
            .env("DISTRICT", &tokens["DISTRICT"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let out = run(script.clone());
    assert!(
        !out.contains("/problems/"),
        "a walkthrough step was refused: {out}"
    );
    // The bad-input example answers as the README shows.
    let prelude: String = script
        .lines()
        .take_while(|l| !l.starts_with("# The unit"))
        .map(|l| format!("{l}\n"))
        .collect();
    let shown: String = bad
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .collect::<Vec<_>>()
        .join("")
        .replace("#  ", "");
    let command: String = bad
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let answer = run(format!("{prelude}{command}"));
    let answer: Value = serde_json::from_str(&answer).unwrap();
    let shown: Value = serde_json::from_str(&shown.replace("  ", " ")).unwrap();
    assert_eq!(answer, shown);
    // Where the walkthrough left the cases, read back: both inspections on site, case
    // 2 closed after its enforcement result, case 1 fixed.
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let token = tokens["INSPECTOR"].clone();
        let base = base.clone();
        async move {
            client
                .get(format!("{base}/api/v1{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let inspections = get("/inspections?unit_id=1".into()).await;
    let list = inspections["inspections"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{inspections}");
    assert!(list.iter().all(|i| i["off_site"] == false), "{inspections}");
    assert_eq!(get("/cases/1".into()).await["case"]["state"], "fixed");
    assert_eq!(get("/cases/2".into()).await["case"]["state"], "fixed");
    let _ = child.kill();
    let _ = child.wait();
}

/// Issue 22, 4: `anju calendar import` of the next year's fixture, on one PostgreSQL
/// shared by two serving processes: every process takes the new version up (a referral
/// made through the other process afterwards counts with it), the open referral's
/// acceptance timer is re-dated by one audited event however many processes work on
/// it, and the same version cannot be imported twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_import_reaches_every_process_and_redates_once() {
    if !anju_tests::postgres_available().await {
        return;
    }
    let db = seeded(Backend::Postgres).await;
    let start = DateTime::parse_from_rfc3339("2026-12-30T10:00:00+08:00")
        .unwrap()
        .to_utc();
    let a = Server::start(&db, start, false);
    let b = Server::start(&db, start, false);
    // The command line runs at the tests' own start (March): a token that does not
    // expire before December.
    let (ok, city, err) = cli(&[
        "token",
        "create",
        "--database-url",
        &db.url,
        "--role",
        "supervisor",
        "--subject",
        "1",
        "--expires-in-days",
        "0",
    ]);
    assert!(ok, "{err}");
    let unit = a.get("/api/v1/units/1", &city).await;
    let point = json!({ "lon": unit["lon"], "lat": unit["lat"] });
    let open = |category: &'static str| {
        let (a, city, point) = (&a, city.clone(), point.clone());
        async move {
            let opened = a
                .post(
                    "/api/v1/inspections",
                    &city,
                    json!({ "unit_id": 1, "point": point, "findings": [{ "category": category }] }),
                )
                .await;
            opened["cases"][0]["id"].as_i64().unwrap()
        }
    };
    let due_of = |case: &Value| case["timers"][0]["due_at"].as_str().unwrap().to_string();
    let first = open("wiring").await;
    let referred = b.command(first, &city, "refer").await;
    assert_eq!(due_of(&referred), "2027-01-04T16:00:00Z", "{referred}");
    assert_eq!(referred["timers"][0]["provisional"], true);

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/calendar-2027-test.toml"
    );
    let (ok, _, err) = cli(&["calendar", "import", "--database-url", &db.url, fixture]);
    assert!(!ok && err.contains("test data"), "{err}");
    let (ok, out, err) = cli(&[
        "calendar",
        "import",
        "--database-url",
        &db.url,
        "--test-data",
        "--by",
        "ops",
        fixture,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("calendar version 2 in force"), "{out}");
    // Both processes take it up and work on the timers; one event in all.
    let ticks = [
        a.post("/__test/calendar/tick", "", json!({})).await,
        b.post("/__test/calendar/tick", "", json!({})).await,
        a.post("/__test/calendar/tick", "", json!({})).await,
    ];
    assert!(ticks.iter().all(|t| t["version"] == 2), "{ticks:?}");
    let cli_redated: i64 = out
        .lines()
        .find_map(|l| l.strip_suffix(" running timer(s) re-dated"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    let by_processes: i64 = ticks.iter().map(|t| t["redated"].as_i64().unwrap()).sum();
    assert_eq!(cli_redated + by_processes, 1, "{out} {ticks:?}");
    let case = a.get(&format!("/api/v1/cases/{first}"), &city).await;
    let events: Vec<&Value> = case["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["command"] == "redate")
        .collect();
    assert_eq!(events.len(), 1, "{case}");
    assert_eq!(due_of(&case), "2027-01-05T16:00:00Z");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM case_events WHERE command = 'redate'"
        )
        .await,
        1
    );
    // A referral made through the other process now counts with the new calendar.
    let second = open("gas_heater").await;
    let referred = b.command(second, &city, "refer").await;
    assert_eq!(due_of(&referred), "2027-01-05T16:00:00Z", "{referred}");
    assert_eq!(referred["timers"][0]["provisional"], false);
    // The same version again: refused, one line, nothing changed.
    let (ok, _, err) = cli(&[
        "calendar",
        "import",
        "--database-url",
        &db.url,
        "--test-data",
        fixture,
    ]);
    assert!(!ok && err.lines().count() == 1, "{err}");
    assert!(err.contains("not above"), "{err}");
}

/// A field of `/proc/<pid>/status` in kilobytes (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Issue 22, 8: decompression bombs cannot run the server out of memory. Sixteen
/// uploads at once, each a small file whose header declares a huge image (JPEGs of
/// 14,142 × 14,142 and of 48 megapixels, PNGs of 49 megapixels that really decode),
/// add under 256 MB to the server's resident memory at its peak (measured from
/// `/proc`, its peak reset first); what does not fit is refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_upload_bombs_at_once_stay_within_memory() {
    let db = seeded(Backend::Sqlite).await;
    let server = Server::start(&db, t0(), false);
    let inspector = token(&db, "inspector", 1);
    let pid = server.pid();
    let made = std::time::Instant::now();
    let png = anju_tests::photos::png_of_zeros(7000, 7000);
    let files: Vec<(&str, Vec<u8>)> = (0..16)
        .map(|i| match i % 4 {
            0 | 1 => (
                "image/jpeg",
                anju_tests::photos::jpeg_declaring(14142, 14142),
            ),
            2 => ("image/jpeg", anju_tests::photos::jpeg_declaring(8064, 6048)),
            _ => ("image/png", png.clone()),
        })
        .collect();
    assert!(files.iter().all(|(_, f)| f.len() < 1_000_000));
    eprintln!("upload bombs made in {:?}", made.elapsed());
    let sent = std::time::Instant::now();
    // Settle, then forget the peak so far (the start and seeding).
    for _ in 0..3 {
        server.get("/healthz", "").await;
    }
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kb(pid, "VmRSS");
    let uploads = files.into_iter().enumerate().map(|(i, (media, bytes))| {
        let (client, base, token) = (
            server.client.clone(),
            server.base.clone(),
            inspector.clone(),
        );
        async move {
            let part = reqwest::multipart::Part::bytes(bytes)
                .file_name(format!("bomb{i}"))
                .mime_str(media)
                .unwrap();
            let form = reqwest::multipart::Form::new()
                .text("kind", "photo")
                .part("file", part);
            let r = client
                .post(format!("{base}/api/v1/evidence"))
                .bearer_auth(token)
                .multipart(form)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    let answers = futures_util::future::join_all(uploads).await;
    let peak = status_kb(pid, "VmHWM");
    eprintln!("upload bombs answered in {:?}", sent.elapsed());
    let added_mb = peak.saturating_sub(before) / 1024;
    eprintln!("upload bombs: resident {before} kB before, peak {peak} kB: +{added_mb} MB");
    assert!(added_mb < 256, "16 bombs added {added_mb} MB");
    // The huge ones are refused before decoding, saying why; the PNGs are taken.
    for (i, (status, body)) in answers.iter().enumerate() {
        match i % 4 {
            0 | 1 => {
                assert_eq!(*status, 422, "{body}");
                assert!(
                    body["detail"].as_str().unwrap().contains("would take"),
                    "{body}"
                );
            }
            // Decoded within the budget (the decoder fills what the data lacks).
            _ => assert_eq!(*status, 201, "{body}"),
        }
    }
    // The service still answers.
    server.get("/healthz", "").await;
}
