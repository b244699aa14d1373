//! Statistics of notification and disposal on both backends: a known history built by the manual clock (cases found, fixed on time and late, dismissed, overdue, referred and accepted in time or not, with results and fines, closed not fixed, across a month's end and in two districts), every figure compared for several areas and periods with counts the test keeps itself; the CSV and Excel exports read back and compared with the JSON; who sees which figures; bad queries refused naming the parameter.

use std::collections::BTreeMap;

use anju_engine::domain::{GridId, InspectorId, UnitId};
use anju_engine::time::{Clock as _, china_time};
use anju_tests::{Backend, TestApp, backend_tests, spawn_app};
use chrono::{NaiveDate, TimeDelta};
use serde_json::{Value, json};

/// One thing the test did, as it counts it.
#[derive(Debug, Clone)]
struct Fact {
    day: NaiveDate,
    grid: i64,
    street: i64,
    district: String,
    category: String,
    department: i64,
    metric: &'static str,
    bucket: String,
    n: i64,
    amount_fen: i64,
}

/// Which facts an area holds.
type Keep = Box<dyn Fn(&Fact) -> bool>;

/// Where a case is and what it is.
#[derive(Debug, Clone)]
struct Tracked {
    id: i64,
    opened: chrono::DateTime<chrono::Utc>,
    grid: i64,
    street: i64,
    district: String,
    category: String,
    unit: i64,
    /// The unit's stars before the case's inspection.
    stars_before: Option<u8>,
}

struct Ledger {
    facts: Vec<Fact>,
}

impl Ledger {
    fn add(&mut self, app: &TestApp, c: &Tracked, metric: &'static str, department: i64) {
        self.add_full(app, c, metric, department, String::new(), 0);
    }

    fn add_full(
        &mut self,
        app: &TestApp,
        c: &Tracked,
        metric: &'static str,
        department: i64,
        bucket: String,
        amount_fen: i64,
    ) {
        self.facts.push(Fact {
            day: today(app),
            grid: c.grid,
            street: c.street,
            district: c.district.clone(),
            category: c.category.clone(),
            department,
            metric,
            bucket,
            n: 1,
            amount_fen,
        });
    }

    /// The fix of a case now: fixed, maybe on time, and its whole days since discovery.
    fn fixed(&mut self, app: &TestApp, c: &Tracked, on_time: bool) {
        self.add(app, c, "fixed", 0);
        if on_time {
            self.add(app, c, "fixed_on_time", 0);
        }
        let days = (app.clock.now() - c.opened).num_days();
        self.add_full(app, c, "fix_days", 0, days.to_string(), 0);
    }

    /// The figures the test expects for the facts that `keep` keeps.
    fn expected(&self, keep: impl Fn(&Fact) -> bool) -> Value {
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        let mut results: BTreeMap<String, i64> = BTreeMap::new();
        let mut days: Vec<i64> = Vec::new();
        let mut fen = 0;
        for f in self.facts.iter().filter(|f| keep(f)) {
            match f.metric {
                "result" => {
                    *results.entry(f.bucket.clone()).or_default() += f.n;
                    fen += f.amount_fen;
                }
                "fix_days" => days.push(f.bucket.parse().unwrap()),
                m => *counts.entry(m).or_default() += f.n,
            }
        }
        days.sort();
        let rank =
            |p: usize| (!days.is_empty()).then(|| days[(p * days.len()).div_ceil(100).max(1) - 1]);
        let c = |k: &str| counts.get(k).copied().unwrap_or(0);
        json!({
            "found": c("found"),
            "orders_issued": c("orders"),
            "fixed": c("fixed"),
            "fixed_on_time": c("fixed_on_time"),
            "overdue": c("overdue"),
            "referred": c("referred"),
            "accepted": c("accepted"),
            "accepted_in_sla": c("accepted_in_sla"),
            "sla_breached": c("sla_breached"),
            "returned": c("returned"),
            "closed_not_fixed": c("closed_not_fixed"),
            "dismissed": c("dismissed"),
            "results": results,
            "fines_yuan": fen as f64 / 100.0,
            "median_days_to_fix": rank(50),
            "p90_days_to_fix": rank(90),
        })
    }
}

fn today(app: &TestApp) -> NaiveDate {
    app.clock.now().with_timezone(&china_time()).date_naive()
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The figures of the answer's `cases` object (or a breakdown row) that the ledger
/// counts.
fn counted(v: &Value) -> Value {
    let keys = [
        "found",
        "orders_issued",
        "fixed",
        "fixed_on_time",
        "overdue",
        "referred",
        "accepted",
        "accepted_in_sla",
        "sla_breached",
        "returned",
        "closed_not_fixed",
        "dismissed",
        "results",
        "fines_yuan",
        "median_days_to_fix",
        "p90_days_to_fix",
    ];
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), v[*k].clone()))
            .collect(),
    )
}

async fn track(app: &TestApp, id: i64, stars_before: Option<u8>) -> Tracked {
    let case = app
        .store()
        .case(anju_engine::domain::CaseId(id))
        .await
        .unwrap()
        .unwrap();
    Tracked {
        id,
        opened: case.opened_at,
        grid: case.snapshot.grid_id.map_or(0, |g| g.0),
        street: case.snapshot.street_id.map_or(0, |s| s.0),
        district: case.snapshot.district_code.clone(),
        category: case.snapshot.category.clone(),
        unit: case.unit_id.0,
        stars_before,
    }
}

/// A case found now at `unit` by `token`, counted.
async fn found(
    app: &TestApp,
    ledger: &mut Ledger,
    token: &str,
    unit: i64,
    category: &str,
) -> Tracked {
    let before = app.store().unit(UnitId(unit)).await.unwrap().unwrap().stars;
    let id = app.inspect(token, unit, &[category]).await[0];
    let c = track(app, id, before).await;
    ledger.add(app, &c, "found", 0);
    c
}

async fn ok(app: &TestApp, c: &Tracked, token: &str, name: &str, data: Value) -> Value {
    app.command(c.id, token, name, data).await.expect(200)
}

async fn department_of(app: &TestApp, c: &Tracked) -> i64 {
    app.store()
        .case(anju_engine::domain::CaseId(c.id))
        .await
        .unwrap()
        .unwrap()
        .snapshot
        .department_id
        .expect("referred")
        .0
}

async fn stats(app: &TestApp, token: &str, query: &str) -> Value {
    app.get(&format!("/api/v1/statistics?{query}"), token)
        .await
        .expect(200)
}

/// Builds the history: returns the ledger and the tracked cases.
async fn history(app: &TestApp) -> (Ledger, Vec<Tracked>) {
    let mut ledger = Ledger { facts: Vec::new() };
    let insp = app.tokens.inspector.clone();
    // Units with a responsible party: an order to a unit with none is served in
    // person first (workflow version 6), which this history does not walk.
    let mut units = Vec::new();
    for u in app.inspector_units().await {
        if app
            .store()
            .unit(UnitId(u))
            .await
            .unwrap()
            .unwrap()
            .party_id
            .is_some()
        {
            units.push(u);
        }
    }
    let hour = |h| TimeDelta::hours(h);

    // Monday 2 March: four cases found by inspector 1.
    let a = found(app, &mut ledger, &insp, units[0], "wiring").await;
    let b = found(app, &mut ledger, &insp, units[1], "ebike_indoor").await;
    let c = found(app, &mut ledger, &insp, units[2], "gas_heater").await;
    let e = found(app, &mut ledger, &insp, units[3], "wiring").await;
    for x in [&a, &b, &e] {
        let hours = if x.id == b.id { 24 } else { 72 };
        ok(app, x, &insp, "notify", json!({ "deadline_hours": hours })).await;
        ledger.add(app, x, "orders", 0);
    }
    app.command_with_reason(c.id, &insp, "dismiss", json!({}), Some("不属隐患"))
        .await
        .expect(200);
    ledger.add(app, &c, "dismissed", 0);

    // Tuesday: A fixed on re-inspection, before its deadline.
    app.clock.advance(hour(24));
    ok(app, &a, &insp, "reinspect", json!({ "passed": true })).await;
    ledger.fixed(app, &a, true);

    // Wednesday: B's 24-hour order passed; it is referred and accepted in time, fined.
    app.clock.advance(hour(24));
    assert!(app.tick().await >= 1);
    ledger.add(app, &b, "overdue", 0);
    ok(app, &b, &insp, "refer", json!({})).await;
    let fire = department_of(app, &b).await;
    ledger.add(app, &b, "referred", fire);
    app.clock.advance(hour(5));
    let officer = app.token(anju_engine::domain::Role::Department, fire).await;
    ok(app, &b, &officer, "accept", json!({})).await;
    ledger.add(app, &b, "accepted", fire);
    ledger.add(app, &b, "accepted_in_sla", fire);
    let decision = app.document(&officer, "处罚决定书").await;
    ok(
        app,
        &b,
        &officer,
        "record_result",
        json!({ "result": "fine", "fine_amount": 1500.5, "evidence": [decision] }),
    )
    .await;
    ledger.add_full(app, &b, "result", fire, "fine".into(), 150_050);

    // Thursday: E's 72-hour order is overdue; it is referred and not accepted in time.
    app.clock.advance(hour(24));
    assert!(app.tick().await >= 1);
    ledger.add(app, &e, "overdue", 0);
    ok(app, &e, &insp, "refer", json!({})).await;
    let fire_e = department_of(app, &e).await;
    ledger.add(app, &e, "referred", fire_e);
    // Seven days on (five working days): the acceptance time has passed.
    app.clock.advance(TimeDelta::days(7));
    assert!(app.tick().await >= 1);
    ledger.add(app, &e, "sla_breached", fire_e);
    let officer_e = app
        .token(anju_engine::domain::Role::Department, fire_e)
        .await;
    ok(app, &e, &officer_e, "accept", json!({})).await;
    ledger.add(app, &e, "accepted", fire_e);
    let decision = app.document(&officer_e, "警告").await;
    ok(
        app,
        &e,
        &officer_e,
        "record_result",
        json!({ "result": "warning", "evidence": [decision] }),
    )
    .await;
    ledger.add_full(app, &e, "result", fire_e, "warning".into(), 0);
    ok(app, &e, &insp, "close", json!({ "outcome": "not_fixed" })).await;
    ledger.add(app, &e, "closed_not_fixed", 0);
    // B closed fixed, late (its order went overdue).
    ok(app, &b, &insp, "close", json!({ "outcome": "fixed" })).await;
    ledger.fixed(app, &b, false);

    // April: a case in another inspector's grids (another district where the city has
    // one), fixed on time the next day; and one more of inspector 1's, left open.
    let target = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
    while today(app) < target {
        app.clock.advance(hour(24));
    }
    let grids = app
        .store()
        .inspector_grids(InspectorId(2))
        .await
        .unwrap()
        .unwrap_or_default();
    let mut other = Vec::new();
    for g in grids {
        other.extend(
            app.store()
                .grid_units(GridId(g.0), None, 5)
                .await
                .unwrap()
                .iter()
                .map(|u| u.id.0),
        );
    }
    let f = found(
        app,
        &mut ledger,
        &app.tokens.other_inspector,
        other[0],
        "fire_escape",
    )
    .await;
    ok(
        app,
        &f,
        &app.tokens.other_inspector,
        "notify",
        json!({ "deadline_hours": 48 }),
    )
    .await;
    ledger.add(app, &f, "orders", 0);
    let g = found(app, &mut ledger, &insp, units[4], "wiring").await;
    app.clock.advance(hour(24));
    ok(
        app,
        &f,
        &app.tokens.other_inspector,
        "reinspect",
        json!({ "passed": true }),
    )
    .await;
    ledger.fixed(app, &f, true);
    (ledger, vec![a, b, c, e, f, g])
}

async fn figures_agree_with_the_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ledger, cases) = history(&app).await;
    let a = &cases[0];
    let f = &cases[4];
    let city = app.tokens.city.clone();

    // Whole periods and areas, each compared with the test's own counts.
    let periods = [
        ("2026-03-01", "2026-03-31"),
        ("2026-03-03", "2026-04-30"),
        ("2026-03-02", "2026-03-02"),
        ("2026-01-01", "2026-12-31"),
        ("2026-04-02", "2026-04-02"),
    ];
    let areas: Vec<(String, Keep)> = vec![
        ("city".into(), Box::new(|_: &Fact| true)),
        (format!("district:{}", a.district), {
            let d = a.district.clone();
            Box::new(move |x: &Fact| x.district == d)
        }),
        (format!("district:{}", f.district), {
            let d = f.district.clone();
            Box::new(move |x: &Fact| x.district == d)
        }),
        (format!("street:{}", a.street), {
            let s = a.street;
            Box::new(move |x: &Fact| x.street == s)
        }),
        (format!("grid:{}", a.grid), {
            let g = a.grid;
            Box::new(move |x: &Fact| x.grid == g)
        }),
    ];
    let mut nonzero = 0;
    for (from, to) in periods {
        let (from_d, to_d) = (d(from), d(to));
        for (area, keep) in &areas {
            let got = stats(&app, &city, &format!("area={area}&from={from}&to={to}")).await;
            let expected = ledger.expected(|x| keep(x) && x.day >= from_d && x.day <= to_d);
            assert_eq!(counted(&got["cases"]), expected, "{area} {from}..{to}");
            assert_eq!(got["pending"], 0);
            if expected["found"].as_i64().unwrap() > 0 {
                nonzero += 1;
            }
            // By category, each row against the test's counts of its category.
            for row in got["by_category"].as_array().unwrap() {
                let cat = row["category"].as_str().unwrap().to_string();
                let expected = ledger
                    .expected(|x| keep(x) && x.day >= from_d && x.day <= to_d && x.category == cat);
                assert_eq!(counted(row), expected, "{area} {from}..{to} {cat}");
            }
        }
    }
    assert!(nonzero >= 8, "the history shows in most areas and periods");

    // The department sees its own referrals only, wherever they are.
    let fire = ledger
        .facts
        .iter()
        .find(|x| x.metric == "referred")
        .map(|x| x.department)
        .unwrap();
    let officer = app.token(anju_engine::domain::Role::Department, fire).await;
    let got = stats(&app, &officer, "from=2026-03-01&to=2026-04-30").await;
    let expected = ledger.expected(|x| x.department == fire);
    assert_eq!(counted(&got["cases"]), expected);
    assert_eq!(
        got["cases"]["found"], 0,
        "discovery is not the department's"
    );
    assert_eq!(got["department_id"], fire);
    assert!(
        got["grades"]["distribution"]
            .as_object()
            .unwrap()
            .is_empty()
    );

    // Supervisors see the departments' SLA and results.
    let q = "from=2026-03-01&to=2026-04-30";
    let got = stats(&app, &city, &format!("area=city&{q}")).await;
    let row = got["departments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["department_id"] == fire)
        .unwrap()
        .clone();
    assert_eq!(counted(&row), ledger.expected(|x| x.department == fire));
    assert!(row["name"].as_str().is_some_and(|n| !n.is_empty()));

    // Visits: every inspection above was a located visit on site, by its inspector.
    let visits = ledger.facts.iter().filter(|x| x.metric == "found").count() as i64;
    assert_eq!(got["visits"]["visits"], visits);
    assert_eq!(got["visits"]["off_site"], 0);
    let by_inspector: i64 = got["inspectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["visits"].as_i64().unwrap())
        .sum();
    assert_eq!(by_inspector, visits);

    // Grades now in a street, against its units themselves.
    let mut by_stars: BTreeMap<String, i64> = BTreeMap::new();
    for (grid, place) in app.store().grid_places().await.unwrap() {
        if place.street_id.0 != a.street {
            continue;
        }
        for u in app.store().grid_units(grid, None, 10_000).await.unwrap() {
            if let Some(s) = u.stars {
                *by_stars.entry(s.to_string()).or_default() += 1;
            }
        }
    }
    let street = stats(&app, &city, &format!("area=street:{}&{q}", a.street)).await;
    let distribution: BTreeMap<String, i64> = street["grades"]["distribution"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
        .collect();
    assert_eq!(distribution, by_stars);
    assert!(!by_stars.is_empty());
    // Movement of grades over the period, against each unit's grade history.
    let (mut gained, mut lost) = (0, 0);
    for c in &cases {
        let mut stars = vec![c.stars_before];
        for g in app.store().unit_grades(UnitId(c.unit)).await.unwrap() {
            stars.push(g.stars);
        }
        for w in stars.windows(2) {
            match (w[0], w[1]) {
                (Some(x), Some(y)) if y > x => gained += 1,
                (Some(x), Some(y)) if y < x => lost += 1,
                _ => {}
            }
        }
    }
    assert_eq!(
        (
            got["grades"]["stars_gained"].as_i64(),
            got["grades"]["stars_lost"].as_i64()
        ),
        (Some(gained), Some(lost))
    );
}

async fn exports_agree_with_the_json(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, cases) = history(&app).await;
    let city = app.tokens.city.clone();
    let q = "area=city&from=2026-03-01&to=2026-04-30";
    let json = stats(&app, &city, q).await;
    let fetch = |format: &str| {
        let req = app
            .client
            .get(format!(
                "{}/api/v1/statistics?{q}&format={format}",
                app.base
            ))
            .bearer_auth(&city);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
            let disposition = resp.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .to_string();
            (kind, disposition, resp.bytes().await.unwrap().to_vec())
        }
    };
    let (kind, disposition, csv) = fetch("csv").await;
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert!(disposition.contains(".csv"), "{disposition}");
    assert_eq!(&csv[..3], b"\xEF\xBB\xBF", "a byte-order mark for Excel");
    let text = String::from_utf8(csv[3..].to_vec()).unwrap();
    let csv_rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let (kind, _, xlsx) = fetch("xlsx").await;
    assert!(kind.contains("spreadsheetml"), "{kind}");
    use calamine::{Reader, Xlsx};
    let mut book: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(xlsx)).expect("a workbook");
    let sheet = book.worksheet_range("统计 Statistics").expect("the sheet");
    let xlsx_rows: Vec<Vec<String>> = sheet
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    calamine::Data::Float(f) => f.to_string(),
                    calamine::Data::Int(i) => i.to_string(),
                    calamine::Data::String(s) => s.clone(),
                    calamine::Data::Empty => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    // Every row of one is a row of the other, cell for cell.
    assert_eq!(csv_rows.len(), xlsx_rows.len());
    for (c, x) in csv_rows.iter().zip(&xlsx_rows) {
        let pad = |r: &Vec<String>| {
            let mut r = r.clone();
            while r.last().is_some_and(String::is_empty) {
                r.pop();
            }
            r
        };
        assert_eq!(pad(c), pad(x));
    }
    // And they say what the JSON says.
    let header = &csv_rows[0];
    let column = |zh: &str| header.iter().position(|h| h.starts_with(zh)).unwrap();
    let total = &csv_rows[1];
    assert_eq!(total[0], "total");
    for (zh, key) in [
        ("发现隐患", "found"),
        ("下发整改", "orders_issued"),
        ("已整改", "fixed"),
        ("按期整改", "fixed_on_time"),
        ("逾期", "overdue"),
        ("转办", "referred"),
        ("超时未受理", "sla_breached"),
        ("未整改结案", "closed_not_fixed"),
        ("罚款金额", "fines_yuan"),
        ("整改天数中位数", "median_days_to_fix"),
    ] {
        let cell: f64 = total[column(zh)].parse().unwrap();
        assert_eq!(cell, json["cases"][key].as_f64().unwrap(), "{zh}");
    }
    let fines: f64 = total[column("罚款 fine")].parse().unwrap();
    assert_eq!(fines, json["cases"]["results"]["fine"].as_f64().unwrap());
    for row in json["by_category"].as_array().unwrap() {
        let code = row["category"].as_str().unwrap();
        let line = csv_rows
            .iter()
            .find(|r| r[0] == "category" && r[1] == code)
            .unwrap_or_else(|| panic!("{code}"));
        let found: f64 = line[column("发现隐患")].parse().unwrap();
        assert_eq!(found, row["found"].as_f64().unwrap());
        assert!(line[2].contains(row["zh"].as_str().unwrap()));
    }
    assert_eq!(
        json["cases"]["found"],
        cases.len() as i64,
        "the exports are not empty"
    );
}

async fn each_caller_sees_their_own_figures(backend: Backend) {
    let app = spawn_app(backend).await;
    let (ledger, cases) = history(&app).await;
    let a = &cases[0];
    let f = &cases[4];
    let q = "from=2026-03-01&to=2026-04-30";
    // The district supervisor: their district by default, any area within it.
    let got = stats(&app, &app.tokens.district, q).await;
    assert_eq!(got["area"], format!("district:{}", a.district));
    let found = ledger.facts.iter().filter(|x| x.metric == "found");
    assert_eq!(
        got["cases"]["found"],
        found.clone().filter(|x| x.district == a.district).count() as i64
    );
    stats(
        &app,
        &app.tokens.district,
        &format!("{q}&area=grid:{}", a.grid),
    )
    .await;
    stats(
        &app,
        &app.tokens.district,
        &format!("{q}&area=street:{}", a.street),
    )
    .await;
    for area in ["city".to_string(), format!("grid:{}", 999_999)] {
        let r = app
            .get(
                &format!("/api/v1/statistics?{q}&area={area}"),
                &app.tokens.district,
            )
            .await;
        r.problem(404, None);
    }
    if f.district != a.district {
        app.get(
            &format!("/api/v1/statistics?{q}&area=district:{}", f.district),
            &app.tokens.district,
        )
        .await
        .problem(404, None);
    }
    // The inspector: their grids by default; another inspector's grid is out of sight.
    let got = stats(&app, &app.tokens.inspector, q).await;
    assert_eq!(got["area"], "grids");
    let mine = app
        .store()
        .inspector_grids(InspectorId(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got["cases"]["found"],
        found
            .clone()
            .filter(|x| mine.contains(&GridId(x.grid)))
            .count() as i64
    );
    if !mine.contains(&GridId(f.grid)) {
        app.get(
            &format!("/api/v1/statistics?{q}&area=grid:{}", f.grid),
            &app.tokens.inspector,
        )
        .await
        .problem(404, None);
    }
    // Landlords see none.
    app.get(&format!("/api/v1/statistics?{q}"), &app.tokens.landlord)
        .await
        .problem(403, None);
}

async fn bad_queries_are_refused_by_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let city = &app.tokens.city;
    for (query, field) in [
        ("area=district:abc", "area"),
        ("area=grid:-1", "area"),
        ("area=planet", "area"),
        ("area=street:", "area"),
        ("from=2026-05-01&to=2026-04-01", "to"),
        ("from=2020-01-01&to=2026-04-01", "to"),
        ("from=2026-13-01", "from"),
        ("format=pdf", "format"),
        ("colour=red", "colour"),
    ] {
        app.get(&format!("/api/v1/statistics?{query}"), city)
            .await
            .problem(422, Some(field));
    }
}

/// Plan completion: the first visit of a planned unit on its day counts once; a second
/// visit that day, and a visit to a unit not planned, do not.
async fn planned_stops_visited_count_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let date = today(&app);
    let report = app.runtime().plan_city(date, true).await.unwrap();
    assert!(report.planned >= 3, "{report:?}");
    let route = app
        .store()
        .stored_route(date, InspectorId(1))
        .await
        .unwrap()
        .expect("inspector 1's route");
    let stops: Vec<i64> = route.stops.iter().map(|s| s.unit_id.0).collect();
    assert!(stops.len() >= 2);
    app.inspect(&app.tokens.inspector, stops[0], &["wiring"])
        .await;
    app.inspect(&app.tokens.inspector, stops[1], &["gas_heater"])
        .await;
    app.inspect(&app.tokens.inspector, stops[0], &["warehouse"])
        .await;
    let unplanned = app
        .inspector_units()
        .await
        .into_iter()
        .find(|u| !stops.contains(u))
        .expect("a unit off the route");
    app.inspect(&app.tokens.inspector, unplanned, &["wiring"])
        .await;
    let day = date.to_string();
    let got = stats(
        &app,
        &app.tokens.city,
        &format!("area=city&from={day}&to={day}"),
    )
    .await;
    assert_eq!(got["visits"]["planned"], report.planned as i64);
    assert_eq!(got["visits"]["planned_done"], 2);
    assert_eq!(got["visits"]["visits"], 4);
    let mine = got["inspectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["inspector_id"] == 1)
        .unwrap()
        .clone();
    assert_eq!(mine["planned"], stops.len() as i64);
    assert_eq!(mine["planned_done"], 2);
}

backend_tests!(
    planned_stops_visited_count_once,
    figures_agree_with_the_history,
    exports_agree_with_the_json,
    each_caller_sees_their_own_figures,
    bad_queries_are_refused_by_name,
);
