//! Patrol planning, campaigns and public placards over HTTP, on both backends: plans within capacity and shift with no unit twice, the stored city plan equal to each inspector's own plan, visits marked, backlog per grid, campaign units entering plans and their progress, and placards without personal data.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{NaiveDate, TimeDelta};
use serde_json::{Value, json};

use anju_engine::domain::{GridId, UnitId};
use anju_engine::registry::Record;
use anju_engine::time::day_bounds;
use anju_tests::{Backend, TestApp, backend_tests, spawn_app};

const DAY: &str = "2026-03-02";

fn day() -> NaiveDate {
    DAY.parse().unwrap()
}

/// Inspectors of the seeded city: id → (shift, grids).
fn inspectors(app: &TestApp) -> BTreeMap<i64, (String, BTreeSet<i64>)> {
    let mut all: BTreeMap<i64, (String, BTreeSet<i64>)> = app
        .city
        .skeleton()
        .iter()
        .filter_map(|r| match r {
            Record::Inspector {
                id, shift, grids, ..
            } => Some((id.0, (shift.clone(), grids.iter().map(|g| g.0).collect()))),
            _ => None,
        })
        .collect();
    all.insert(9001, ("morning".into(), [9001].into()));
    all
}

async fn plan_of(app: &TestApp, inspector: i64, token: &str) -> Value {
    app.get(
        &format!("/api/v1/inspectors/{inspector}/plan?date={DAY}"),
        token,
    )
    .await
    .expect(200)
}

fn stop_ids(plan: &Value) -> Vec<i64> {
    plan["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["unit_id"].as_i64().unwrap())
        .collect()
}

/// A new grid of ten never-graded units, covered by one inspector with room for three.
async fn add_small_grid(app: &TestApp) {
    use anju_engine::domain::{BuildingId, CommunityId, InspectorId, StreetId};
    let mut records = vec![
        Record::Community {
            id: CommunityId(9001),
            code: "440103009001".into(),
            street_id: StreetId(1),
            name: "测试社区".into(),
        },
        Record::Grid {
            id: GridId(9001),
            code: "G9001".into(),
            community_id: CommunityId(9001),
            name: "测试网格".into(),
            geometry: None,
        },
        Record::Building {
            id: BuildingId(9001),
            grid_id: GridId(9001),
            address: "测试路1号".into(),
            lon: 113.25,
            lat: 23.12,
        },
        Record::Inspector {
            id: InspectorId(9001),
            name: "赵磊".into(),
            phone: None,
            email: None,
            shift: "morning".into(),
            capacity: Some(3),
            grids: vec![GridId(9001)],
        },
    ];
    for k in 1..=10 {
        records.push(Record::Unit {
            id: UnitId(90_000 + k),
            address_code: format!("T9001{k:04}"),
            building_id: BuildingId(9001),
            address: format!("测试路1号{k}房"),
            lon: 113.25 + k as f64 * 1e-5,
            lat: 23.12,
            floor_area: 20.0,
            occupants: 2,
            party_id: None,
            evening_only: false,
            stars: None,
            checklist: None,
            last_inspected_at: None,
            next_due_at: None,
        });
    }
    app.store()
        .import(&records, anju_tests::t0())
        .await
        .unwrap();
}

async fn plans_respect_capacity_and_shift_and_never_repeat_a_unit(backend: Backend) {
    let app = spawn_app(backend).await;
    let city = &app.tokens.city;
    add_small_grid(&app).await;
    let all = inspectors(&app);
    // Each inspector's plan made (and stored) on request, before the city is planned...
    let mut live = HashMap::new();
    for id in all.keys() {
        let plan = plan_of(&app, *id, city).await;
        assert_eq!(plan["stored"], true);
        live.insert(*id, stop_ids(&plan));
    }
    let report = app.runtime().plan_city(day(), true).await.unwrap();
    assert!(report.planned > 0 && report.candidates >= report.planned);

    let (_, end) = day_bounds(day());
    let mut seen = BTreeSet::new();
    let mut planned = 0;
    for (id, (shift, grids)) in &all {
        let plan = plan_of(&app, *id, city).await;
        assert_eq!(plan["stored"], true);
        assert_eq!(plan["shift"], shift.as_str());
        let ids = stop_ids(&plan);
        // ...is exactly its part of the stored city plan.
        assert_eq!(ids, live[id], "inspector {id}");
        assert!(ids.len() <= plan["capacity"].as_u64().unwrap() as usize);
        assert!(ids.len() <= 25);
        let mut length = 0.0;
        for s in plan["stops"].as_array().unwrap() {
            let unit = UnitId(s["unit_id"].as_i64().unwrap());
            assert!(seen.insert(unit), "unit {unit} planned twice");
            let u = app.store().unit(unit).await.unwrap().unwrap();
            assert!(
                grids.contains(&u.grid_id.unwrap().0),
                "unit {unit} outside the grids"
            );
            assert!(u.next_due_at.is_none_or(|d| d < end), "unit {unit} not due");
            if u.evening_only {
                assert_eq!(shift, "evening", "evening-only unit {unit} by day");
            }
            length += s["leg_m"].as_f64().unwrap();
        }
        assert!((length - plan["length_m"].as_f64().unwrap()).abs() < 1.0);
        assert!(plan["length_m"].as_f64().unwrap() <= plan["nn_length_m"].as_f64().unwrap());
        planned += ids.len();
    }
    assert_eq!(planned, report.planned);
    // The inspector with room for three gets the three first of the ten (all never
    // graded, so by id); the other seven are the grid's backlog.
    let small = plan_of(&app, 9001, city).await;
    let mut ids = stop_ids(&small);
    ids.sort();
    assert_eq!(ids, vec![90_001, 90_002, 90_003]);
    assert_eq!(small["capacity"], 3);
    assert!(
        small["stops"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["reason"] == "never")
    );

    // The backlog: what was due and not planned, per grid; a district supervisor sees
    // their district's grids only.
    let backlog = app
        .get(&format!("/api/v1/plans/{DAY}/backlog"), city)
        .await
        .expect(200);
    let grids = backlog["grids"].as_array().unwrap();
    let due: u64 = grids.iter().map(|g| g["due"].as_u64().unwrap()).sum();
    let left: u64 = grids.iter().map(|g| g["left"].as_u64().unwrap()).sum();
    assert_eq!(due as usize, report.candidates);
    assert_eq!(left as usize, report.candidates - report.planned);
    assert_eq!(backlog["left"], left);
    let g = grids.iter().find(|g| g["grid_id"] == 9001).unwrap();
    assert_eq!(
        (&g["due"], &g["planned"], &g["left"]),
        (&json!(10), &json!(3), &json!(7))
    );
    let district = app
        .get(
            &format!("/api/v1/plans/{DAY}/backlog"),
            &app.tokens.district,
        )
        .await
        .expect(200);
    let mine: Vec<i64> = district["grids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["grid_id"].as_i64().unwrap())
        .collect();
    assert!(!mine.is_empty() && mine.len() < grids.len());
    for g in mine {
        let grid = app.store().grid(GridId(g)).await.unwrap().unwrap();
        assert_eq!(grid.district_code, "440103");
    }
    app.get("/api/v1/plans/2026-03-03/backlog", city)
        .await
        .problem(404, None);
    app.get("/api/v1/plans/yesterday/backlog", city)
        .await
        .problem(422, Some("date"));
}

async fn a_plan_is_seen_by_its_inspector_and_their_supervisors_only(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    app.runtime().plan_city(day(), true).await.unwrap();
    let own = plan_of(&app, 1, &t.inspector).await;
    assert_eq!(own["inspector_id"], 1);
    plan_of(&app, 1, &t.district).await;
    for token in [&t.other_inspector, &t.landlord, &t.fire] {
        app.get(&format!("/api/v1/inspectors/1/plan?date={DAY}"), token)
            .await
            .problem(404, None);
    }
    app.get("/api/v1/inspectors/1/plan?date=2026-02-30", &t.inspector)
        .await
        .problem(422, Some("date"));
    app.get("/api/v1/inspectors/99999/plan", &t.city)
        .await
        .problem(404, None);

    // As GeoJSON: the route as a line through the stops, then the stops.
    let r = app
        .send(
            app.client
                .get(format!("{}/api/v1/inspectors/1/plan?date={DAY}", app.base))
                .bearer_auth(&t.inspector)
                .header("accept", "application/geo+json"),
        )
        .await;
    assert_eq!(r.content_type, "application/geo+json");
    let features = r.body["features"].as_array().unwrap();
    let stops = own["stops"].as_array().unwrap();
    assert!(stops.len() >= 2, "inspector 1 has a route");
    assert_eq!(features.len(), stops.len() + 1);
    let line = features[0]["geometry"]["coordinates"].as_array().unwrap();
    assert_eq!(line.len(), stops.len());
    for (f, s) in features[1..].iter().zip(stops) {
        assert_eq!(f["id"], s["unit_id"]);
        assert_eq!(f["properties"]["seq"], s["seq"]);
    }

    // Visiting a planned unit marks it visited; tomorrow it is no longer due.
    let first = stops[0]["unit_id"].as_i64().unwrap();
    app.inspect(&t.inspector, first, &[]).await;
    let again = plan_of(&app, 1, &t.inspector).await;
    assert_eq!(again["visited"], 1);
    assert!(again["stops"][0]["visited_at"].is_string());
    assert!(again["stops"][1]["visited_at"].is_null());
    let tomorrow = app
        .get("/api/v1/inspectors/1/plan?date=2026-03-03", &t.inspector)
        .await
        .expect(200);
    assert_eq!(tomorrow["stored"], true);
    assert!(!stop_ids(&tomorrow).contains(&first));
}

/// Units of a grid in the seeded city.
fn grid_units(app: &TestApp, grid: i64) -> Vec<i64> {
    let buildings: BTreeSet<i64> = app
        .city
        .chunks(10_000)
        .flatten()
        .filter_map(|r| match r {
            Record::Building { id, grid_id, .. } if grid_id.0 == grid => Some(id.0),
            _ => None,
        })
        .collect();
    app.city
        .chunks(10_000)
        .flatten()
        .filter_map(|r| match r {
            Record::Unit {
                id, building_id, ..
            } if buildings.contains(&building_id.0) => Some(id.0),
            _ => None,
        })
        .collect()
}

async fn campaigns_enter_plans_and_count_visits(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let units = grid_units(&app, 1);
    assert!(units.len() > 5);
    let campaign = |area: Value, starts: &str, ends: &str| {
        json!({
            "name": "洗楼式大排查 Building sweep",
            "area": area,
            "starts_on": starts,
            "ends_on": ends,
        })
    };

    // Refused, and nothing written: a landlord, an area outside the jurisdiction, a
    // window backwards, an unknown area kind.
    let before = app.fingerprint().await;
    let body = campaign(json!({ "grid": 1 }), "2026-03-01", "2026-03-10");
    app.post("/api/v1/campaigns", &t.landlord, &body)
        .await
        .problem(403, None);
    let other = app
        .city
        .skeleton()
        .iter()
        .find_map(|r| match r {
            Record::Grid {
                id, community_id, ..
            } if community_id.0 > 3 => Some(id.0),
            _ => None,
        })
        .unwrap();
    let far = app.store().grid(GridId(other)).await.unwrap().unwrap();
    assert_ne!(far.district_code, "440103");
    app.post(
        "/api/v1/campaigns",
        &t.district,
        &campaign(json!({ "grid": other }), "2026-03-01", "2026-03-10"),
    )
    .await
    .problem(422, Some("area"));
    app.post(
        "/api/v1/campaigns",
        &t.district,
        &campaign(json!({ "grid": 1 }), "2026-03-10", "2026-03-01"),
    )
    .await
    .problem(422, Some("ends_on"));
    app.post(
        "/api/v1/campaigns",
        &t.district,
        &campaign(json!({ "county": 1 }), "2026-03-01", "2026-03-10"),
    )
    .await
    .problem(422, Some("area"));
    assert_eq!(app.fingerprint().await, before);

    let created = app
        .post("/api/v1/campaigns", &t.district, &body)
        .await
        .expect(201);
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["units"], units.len());
    assert_eq!(created["checklist"].as_array().unwrap().len(), 8, "八查");

    // Every unit of the grid is now a candidate for the day, due or not.
    app.runtime().plan_city(day(), true).await.unwrap();
    let backlog = app
        .get(&format!("/api/v1/plans/{DAY}/backlog"), &t.city)
        .await
        .expect(200);
    let grid1 = backlog["grids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["grid_id"] == 1)
        .unwrap()
        .clone();
    assert_eq!(grid1["due"], units.len());

    // Two visits, one with a hazard and the campaign's checks; a wrong check is refused.
    let u = app.store().unit(UnitId(units[0])).await.unwrap().unwrap();
    app.post(
        "/api/v1/inspections",
        &t.inspector,
        &json!({
            "unit_id": units[0],
            "point": { "lon": u.lon, "lat": u.lat },
            "campaign_checks": { "no_such_check": true },
        }),
    )
    .await
    .problem(422, Some("campaign_checks.no_such_check"));
    app.post(
        "/api/v1/inspections",
        &t.inspector,
        &json!({
            "unit_id": units[0],
            "point": { "lon": u.lon, "lat": u.lat },
            "campaign_checks": { "ebike_charging": false, "wiring": true },
            "findings": [{ "category": "ebike_indoor", "evidence": [app.photo(&t.inspector).await] }],
        }),
    )
    .await
    .expect(201);
    app.inspect(&t.inspector, units[1], &[]).await;
    // After the window, a visit no longer counts.
    app.clock.advance(TimeDelta::days(10));
    app.inspect(&t.inspector, units[2], &[]).await;

    let progress = app
        .get(&format!("/api/v1/campaigns/{id}/progress"), &t.district)
        .await
        .expect(200);
    assert_eq!(progress["total"], units.len());
    assert_eq!(progress["visited"], 2);
    assert_eq!(progress["hazards"], 1);
    assert_eq!(progress["areas"][0]["area"], "1");
    let by_district = app
        .get(
            &format!("/api/v1/campaigns/{id}/progress?by=district"),
            &t.city,
        )
        .await
        .expect(200);
    assert_eq!(by_district["areas"][0]["area"], "440103");
    assert_eq!(by_district["visited"], 2);
    app.get(
        &format!("/api/v1/campaigns/{id}/progress?by=planet"),
        &t.city,
    )
    .await
    .problem(422, Some("by"));
    // Those who oversee none of its units do not see it: an inspector of other grids,
    // another district's supervisor.
    let other_district = app.token(anju_engine::domain::Role::Supervisor, 3).await;
    for token in [&t.other_inspector, &other_district] {
        app.get(&format!("/api/v1/campaigns/{id}/progress"), token)
            .await
            .problem(404, None);
        app.get(&format!("/api/v1/campaigns/{id}"), token)
            .await
            .problem(404, None);
        let list = app.get("/api/v1/campaigns", token).await.expect(200);
        assert!(list["campaigns"].as_array().unwrap().is_empty());
    }
    let list = app.get("/api/v1/campaigns", &t.inspector).await.expect(200);
    assert_eq!(list["campaigns"][0]["id"], id);
}

async fn placards_show_the_grade_and_no_personal_data(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let u = app.store().unit(UnitId(unit)).await.unwrap().unwrap();
    let code = u.public_code.clone();
    assert_eq!(code.len(), 14);
    let public = |path: String, accept: &'static str| {
        let app = &app;
        async move {
            app.send(
                app.client
                    .get(format!("{}{path}", app.base))
                    .header("accept", accept),
            )
            .await
        }
    };
    let page = public(format!("/u/{code}"), "application/json")
        .await
        .expect(200);
    assert_eq!(page["address"], u.address.as_str());
    assert_eq!(page["stars"], json!(u.stars));
    assert_eq!(page["open_orders"], 0);

    // An order issued on the unit shows; the landlord's name and phone never do.
    let case = app.inspect(&t.inspector, unit, &["ebike_indoor"]).await[0];
    app.command(case, &t.inspector, "notify", json!({}))
        .await
        .expect(200);
    let page = public(format!("/u/{code}"), "application/json")
        .await
        .expect(200);
    assert_eq!(page["open_orders"], 1);
    assert!(page["last_inspected_on"].is_string());
    let html = public(format!("/u/{code}"), "text/html").await;
    assert!(html.content_type.starts_with("text/html"));
    let text = html.body.as_str().unwrap();
    assert!(text.contains(&u.address) && text.contains("出租屋安全公示"));
    let (name, phone) = app
        .city
        .chunks(10_000)
        .flatten()
        .find_map(|r| match r {
            Record::Party {
                id, name, phone, ..
            } if id.0 == 1 => Some((name, phone.unwrap())),
            _ => None,
        })
        .unwrap();
    for secret in [&name, &phone] {
        assert!(!text.contains(secret.as_str()) && !page.to_string().contains(secret.as_str()));
    }

    let qr = public(format!("/u/{code}/qr.svg"), "image/svg+xml").await;
    assert_eq!(qr.status.as_u16(), 200);
    assert_eq!(qr.content_type, "image/svg+xml");
    let svg = qr.body.as_str().unwrap();
    assert!(svg.contains("<svg") && svg.len() > 1000);
    let other = app.store().unit(UnitId(unit + 1)).await.unwrap().unwrap();
    let other_svg = public(format!("/u/{}/qr.svg", other.public_code), "image/svg+xml").await;
    assert_ne!(other_svg.body.as_str().unwrap(), svg);

    public(format!("/u/{}00000000", &code[..6]), "application/json")
        .await
        .problem(404, None);
    public("/u/%3Cscript%3E".into(), "text/html")
        .await
        .problem(404, None);

    // The community's low-grade list: its units of 1 or 2 stars, lowest first.
    let community = app
        .city
        .skeleton()
        .iter()
        .find_map(|r| match r {
            Record::Community { id, code, .. } if Some(*id) == u.community_id => Some(code.clone()),
            _ => None,
        })
        .unwrap();
    let list = public(format!("/c/{community}"), "application/json")
        .await
        .expect(200);
    let listed: Vec<(String, u64)> = list["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["public_code"].as_str().unwrap().to_string(),
                p["stars"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected = Vec::new();
    for r in app.city.chunks(10_000).flatten() {
        if let Record::Unit { id, .. } = r {
            let x = app.store().unit(id).await.unwrap().unwrap();
            if x.community_id == u.community_id && x.stars.is_some_and(|s| s <= 2) {
                expected.push((x.public_code, u64::from(x.stars.unwrap())));
            }
        }
    }
    assert!(!expected.is_empty());
    assert_eq!(listed.len(), expected.len());
    assert!(listed.windows(2).all(|w| w[0].1 <= w[1].1));
    let listed: BTreeSet<_> = listed.into_iter().collect();
    assert_eq!(listed, expected.into_iter().collect());
    let html = public(format!("/c/{community}"), "text/html").await;
    assert!(html.body.as_str().unwrap().contains("低星级出租屋公示"));
    public("/c/nowhere".into(), "text/html")
        .await
        .problem(404, None);
}

backend_tests!(
    plans_respect_capacity_and_shift_and_never_repeat_a_unit,
    a_plan_is_seen_by_its_inspector_and_their_supervisors_only,
    campaigns_enter_plans_and_count_visits,
    placards_show_the_grade_and_no_personal_data,
    the_plan_shown_is_the_plan_of_the_day,
);

/// A plan shown is the plan of the day (issue 9, item 18): stored when first shown,
/// visits marked on it and nothing reordered, attempts (no one home, entry refused)
/// marked and the unit brought back soon, units that come up during the day appended,
/// and the city's run keeping the routes shown already.
async fn the_plan_shown_is_the_plan_of_the_day(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let first = plan_of(&app, 1, &t.inspector).await;
    let order = stop_ids(&first);
    assert!(order.len() >= 3, "{first}");
    // A visit: marked, and the stops keep their order.
    app.inspect(&t.inspector, order[0], &[]).await;
    let after = plan_of(&app, 1, &t.inspector).await;
    assert_eq!(stop_ids(&after), order);
    assert!(after["stops"][0]["visited_at"].is_string());
    assert_eq!(after["stops"][0]["outcome"], "inspected");
    // No one home at the second: an attempt, marked; the unit is due again in two
    // days; its grade is untouched. An attempt records no findings.
    let unit = app.store().unit(UnitId(order[1])).await.unwrap().unwrap();
    let body = |outcome: &str, findings: Value| {
        json!({ "unit_id": unit.id, "point": { "lon": unit.lon, "lat": unit.lat },
                "outcome": outcome, "findings": findings })
    };
    app.post(
        "/api/v1/inspections",
        &t.inspector,
        &body("no_one_home", json!([{ "category": "wiring" }])),
    )
    .await
    .problem(422, Some("findings"));
    app.post(
        "/api/v1/inspections",
        &t.inspector,
        &body("no_one_home", json!([])),
    )
    .await
    .expect(201);
    let later = app.store().unit(unit.id).await.unwrap().unwrap();
    assert_eq!(later.stars, unit.stars);
    assert_eq!(later.last_inspected_at, unit.last_inspected_at);
    assert_eq!(
        later.next_due_at,
        Some(app.runtime().now() + chrono::TimeDelta::days(2))
    );
    let after = plan_of(&app, 1, &t.inspector).await;
    assert_eq!(stop_ids(&after), order);
    assert_eq!(after["stops"][1]["outcome"], "no_one_home");
    // A unit registered during the day in the inspector's grid: an extra stop, last.
    app.clock.advance(TimeDelta::minutes(30));
    let site = app.store().building_place(1).await.unwrap().unwrap();
    let created = app
        .post(
            "/api/v1/units",
            &t.inspector,
            &json!({ "building_id": 1, "address_code": "NEW-DAY-1", "address": "新登记",
                     "lon": site.lon, "lat": site.lat, "floor_area": 20.0, "occupants": 1 }),
        )
        .await
        .expect(201);
    let after = plan_of(&app, 1, &t.inspector).await;
    let ids = stop_ids(&after);
    assert_eq!(&ids[..order.len()], order.as_slice(), "nothing reordered");
    assert_eq!(*ids.last().unwrap(), created["id"].as_i64().unwrap());
    assert_eq!(
        after["stops"].as_array().unwrap().last().unwrap()["extra"],
        true
    );
    // The city's run keeps the routes shown already, and runs once a day.
    app.runtime().plan_city(day(), false).await.unwrap();
    assert_eq!(stop_ids(&plan_of(&app, 1, &t.inspector).await), ids);
    assert!(
        app.store()
            .claim_plan_run(day(), app.runtime().now())
            .await
            .unwrap()
    );
    assert!(
        !app.store()
            .claim_plan_run(day(), app.runtime().now())
            .await
            .unwrap()
    );
}
