//! Spatial queries over HTTP against a brute-force scan of the seeded city, GCJ-02 input, GeoJSON output, and the off-site flag on inspections.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use anju_engine::domain::Point;
use anju_engine::registry::Record;
use anju_engine::spatial::crs::gcj02_from_wgs84;
use anju_engine::spatial::index::EARTH_RADIUS_M;
use anju_tests::{Backend, TestApp, backend_tests, spawn_app};

/// Every unit of the seeded city: (id, lon, lat).
fn city_units(app: &TestApp) -> Vec<(i64, f64, f64)> {
    app.city
        .chunks(10_000)
        .flatten()
        .filter_map(|r| match r {
            Record::Unit { id, lon, lat, .. } => Some((id.0, lon, lat)),
            _ => None,
        })
        .collect()
}

fn ids(body: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = body["units"]
        .as_array()
        .expect("units")
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

fn p(lon: f64, lat: f64) -> Point {
    Point::parse(lon, lat, "p").unwrap()
}

/// The point `metres` due north of (lon, lat): exactly that far on the sphere.
fn north(lon: f64, lat: f64, metres: f64) -> (f64, f64) {
    (lon, lat + (metres / EARTH_RADIUS_M).to_degrees())
}

async fn radius_box_polygon_and_nearest_match_a_brute_force_scan(backend: Backend) {
    let app = spawn_app(backend).await;
    let units = city_units(&app);
    let tok = app.tokens.city.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..12 {
        let (_, lon, lat) = units[rng.random_range(0..units.len())];
        let c = (
            lon + rng.random_range(-0.01..0.01),
            lat + rng.random_range(-0.01..0.01),
        );
        let r = rng.random_range(200.0..8000.0);
        let got = app
            .get(
                &format!(
                    "/api/v1/units/near?lon={}&lat={}&radius_m={r}&limit=5000",
                    c.0, c.1
                ),
                &tok,
            )
            .await
            .expect(200);
        let mut expect: Vec<i64> = units
            .iter()
            .filter(|(_, lon, lat)| p(c.0, c.1).distance_m(p(*lon, *lat)) <= r)
            .map(|(id, _, _)| *id)
            .collect();
        expect.sort();
        assert_eq!(ids(&got), expect, "radius {r} around {c:?}");
        let distances: Vec<f64> = got["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["distance_m"].as_f64().unwrap())
            .collect();
        assert!(distances.windows(2).all(|w| w[0] <= w[1]), "nearest first");

        let k = rng.random_range(1..30);
        let got = app
            .get(
                &format!("/api/v1/units/nearest?lon={}&lat={}&k={k}", c.0, c.1),
                &tok,
            )
            .await
            .expect(200);
        let mut all: Vec<(f64, i64)> = units
            .iter()
            .map(|(id, lon, lat)| (p(c.0, c.1).distance_m(p(*lon, *lat)), *id))
            .collect();
        all.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let got_d: Vec<f64> = got["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["distance_m"].as_f64().unwrap())
            .collect();
        assert_eq!(got_d.len(), k);
        for (g, (d, _)) in got_d.iter().zip(&all) {
            assert!((g - d).abs() < 0.06, "{g} vs {d}");
        }

        let (w, h) = (rng.random_range(0.005..0.1), rng.random_range(0.005..0.1));
        let bbox = (c.0 - w, c.1 - h, c.0 + w, c.1 + h);
        let got = app
            .get(
                &format!(
                    "/api/v1/units/within?bbox={},{},{},{}&limit=5000",
                    bbox.0, bbox.1, bbox.2, bbox.3
                ),
                &tok,
            )
            .await
            .expect(200);
        let mut expect: Vec<i64> = units
            .iter()
            .filter(|(_, lon, lat)| {
                (bbox.0..=bbox.2).contains(lon) && (bbox.1..=bbox.3).contains(lat)
            })
            .map(|(id, _, _)| *id)
            .collect();
        expect.sort();
        assert_eq!(ids(&got), expect);

        // A triangle: the half of the box below its diagonal.
        let triangle = json!({ "type": "Polygon", "coordinates": [[[bbox.0, bbox.1], [bbox.2, bbox.1], [bbox.2, bbox.3], [bbox.0, bbox.1]]] });
        let got = app
            .post("/api/v1/units/within?limit=5000", &tok, &triangle)
            .await
            .expect(200);
        let inside = |lon: f64, lat: f64| {
            use geo::Contains;
            geo::Polygon::new(
                vec![
                    (bbox.0, bbox.1),
                    (bbox.2, bbox.1),
                    (bbox.2, bbox.3),
                    (bbox.0, bbox.1),
                ]
                .into(),
                vec![],
            )
            .contains(&geo::Point::new(lon, lat))
        };
        let mut expect: Vec<i64> = units
            .iter()
            .filter(|(_, lon, lat)| inside(*lon, *lat))
            .map(|(id, _, _)| *id)
            .collect();
        expect.sort();
        assert_eq!(ids(&got), expect);
    }
}

async fn queries_see_only_the_callers_units_and_speak_geojson(backend: Backend) {
    let app = spawn_app(backend).await;
    let units = city_units(&app);
    let (_, lon, lat) = units[0];
    let all = app
        .get(
            &format!("/api/v1/units/near?lon={lon}&lat={lat}&radius_m=50000&limit=5000"),
            &app.tokens.city,
        )
        .await
        .expect(200);
    let mine = app
        .get(
            &format!("/api/v1/units/near?lon={lon}&lat={lat}&radius_m=50000&limit=5000"),
            &app.tokens.inspector,
        )
        .await
        .expect(200);
    assert!(ids(&mine).len() < ids(&all).len());
    let grids: std::collections::BTreeSet<i64> = mine["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["grid_id"].as_i64().unwrap())
        .collect();
    let covered: std::collections::BTreeSet<i64> = app
        .store()
        .inspector_grids(anju_engine::domain::InspectorId(1))
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|g| g.0)
        .collect();
    assert!(
        !grids.is_empty() && grids.is_subset(&covered),
        "{grids:?} within {covered:?}"
    );
    let nearest = app
        .get(
            &format!("/api/v1/units/nearest?lon={lon}&lat={lat}&k=3"),
            &app.tokens.landlord,
        )
        .await
        .expect(200);
    let own = app.units_of(1);
    assert!(
        ids(&nearest).iter().all(|id| own.contains(id)),
        "a landlord finds only their own units"
    );

    let geo = app
        .send(
            app.client
                .get(format!(
                    "{}/api/v1/units/nearest?lon={lon}&lat={lat}&k=2&crs=gcj02",
                    app.base
                ))
                .bearer_auth(&app.tokens.city)
                .header("accept", "application/geo+json"),
        )
        .await;
    assert_eq!(geo.status.as_u16(), 200);
    assert_eq!(geo.content_type, "application/geo+json");
    assert_eq!(geo.body["type"], "FeatureCollection");
    let f = &geo.body["features"][0];
    assert_eq!(f["geometry"]["type"], "Point");
    assert!(f["properties"]["address"].is_string());
    // Asked in GCJ-02, answered in GCJ-02: the unit's WGS-84 point, shifted.
    let id = f["id"].as_i64().unwrap();
    let (_, ulon, ulat) = units.iter().find(|u| u.0 == id).copied().unwrap();
    let (glon, glat) = gcj02_from_wgs84(ulon, ulat);
    assert!((f["geometry"]["coordinates"][0].as_f64().unwrap() - glon).abs() < 1e-9);
    assert!((f["geometry"]["coordinates"][1].as_f64().unwrap() - glat).abs() < 1e-9);
}

async fn bad_spatial_queries_name_their_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let tok = app.tokens.city.clone();
    for (path, field) in [
        (
            "/api/v1/units/near?lon=113.3&lat=23.1&radius_m=0",
            "radius_m",
        ),
        (
            "/api/v1/units/near?lon=113.3&lat=23.1&radius_m=90000",
            "radius_m",
        ),
        (
            "/api/v1/units/near?lon=113.3&lat=95&radius_m=100",
            "point.lat",
        ),
        (
            "/api/v1/units/near?lon=113.3&lat=23.1&radius_m=100&crs=bd09",
            "crs",
        ),
        ("/api/v1/units/near?lon=113.3&lat=23.1", "radius_m"),
        ("/api/v1/units/nearest?lon=113.3&lat=23.1&k=0", "k"),
        ("/api/v1/units/within?bbox=1,2,3", "bbox"),
        ("/api/v1/units/within?bbox=114,23,113,24", "bbox"),
        (
            "/api/v1/units/near?lon=113.3&lat=23.1&radius_m=100&limit=999999",
            "limit",
        ),
    ] {
        app.get(path, &tok).await.problem(422, Some(field));
    }
    app.post(
        "/api/v1/units/within",
        &tok,
        &json!({ "type": "Point", "coordinates": [113.3, 23.1] }),
    )
    .await
    .problem(422, Some("body"));
    app.post("/api/v1/units/within", &tok, &json!({ "type": "Polygon", "coordinates": [[[113.3, 23.1], [113.4, 23.1], [113.3, 123.0], [113.3, 23.1]]] }))
        .await
        .problem(422, Some("body.lat"));
}

async fn inspections_far_from_their_unit_are_flagged(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app.unit_of(1);
    let u = app
        .store()
        .unit(anju_engine::domain::UnitId(unit))
        .await
        .unwrap()
        .unwrap();
    let app = &app;
    let record = |lon: f64, lat: f64, crs: &'static str| {
        let body = json!({ "unit_id": unit, "point": { "lon": lon, "lat": lat, "crs": crs }, "findings": [] });
        async move {
            app.post("/api/v1/inspections", &t.inspector, &body)
                .await
                .expect(201)
        }
    };
    let (lon, lat) = north(u.lon, u.lat, 99.0);
    let near = record(lon, lat, "wgs84").await;
    assert_eq!(near["off_site"], false);
    assert!((near["distance_m"].as_f64().unwrap() - 99.0).abs() < 0.1);
    let (lon, lat) = north(u.lon, u.lat, 101.0);
    let far = record(lon, lat, "wgs84").await;
    assert_eq!(far["off_site"], true);
    // A map app's GCJ-02 reading of the unit's own spot is on site once converted;
    // taken as WGS-84 it would be hundreds of metres off.
    let (glon, glat) = gcj02_from_wgs84(u.lon, u.lat);
    let on_map = record(glon, glat, "gcj02").await;
    assert_eq!(on_map["off_site"], false);
    assert!(on_map["distance_m"].as_f64().unwrap() < 1.0);
    let misread = record(glon, glat, "wgs84").await;
    assert_eq!(misread["off_site"], true);

    // Supervisors list the flagged inspections of an inspector; inspectors their own.
    let flagged = app
        .get(
            "/api/v1/inspections?off_site=true&inspector_id=1",
            &t.district,
        )
        .await
        .expect(200);
    let flagged_ids: Vec<i64> = flagged["inspections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        flagged_ids,
        [
            misread["inspection_id"].as_i64().unwrap(),
            far["inspection_id"].as_i64().unwrap()
        ]
    );
    assert_eq!(flagged["inspections"][0]["crs"], "wgs84");
    let all = app
        .get("/api/v1/inspections?inspector_id=1", &t.district)
        .await
        .expect(200);
    assert_eq!(all["inspections"].as_array().unwrap().len(), 4);
    let own = app
        .get("/api/v1/inspections", &t.inspector)
        .await
        .expect(200);
    assert_eq!(own["inspections"].as_array().unwrap().len(), 4);
    app.get("/api/v1/inspections?inspector_id=1", &t.other_inspector)
        .await
        .problem(403, None);
    app.get("/api/v1/inspections", &t.landlord)
        .await
        .problem(403, None);
    // A supervisor of another district sees none of them.
    let other_district = app.token(anju_engine::domain::Role::Supervisor, 3).await;
    let none = app
        .get("/api/v1/inspections?off_site=true", &other_district)
        .await
        .expect(200);
    assert!(none["inspections"].as_array().unwrap().is_empty());
}

async fn units_registered_through_the_api_are_found_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let u1 = app
        .store()
        .unit(anju_engine::domain::UnitId(app.unit_of(1)))
        .await
        .unwrap()
        .unwrap();
    // Registered in GCJ-02, stored and found in WGS-84.
    let (wlon, wlat) = north(u1.lon, u1.lat, 30.0);
    let (glon, glat) = gcj02_from_wgs84(wlon, wlat);
    let created = app
        .post(
            "/api/v1/units",
            &app.tokens.inspector,
            &json!({ "building_id": u1.building_id, "address_code": "NEW-GEO-1", "address": "新登记 9 号", "lon": glon, "lat": glat, "crs": "gcj02", "floor_area": 20.0, "occupants": 1 }),
        )
        .await
        .expect(201);
    let id = created["id"].as_i64().unwrap();
    assert!(
        p(
            created["lon"].as_f64().unwrap(),
            created["lat"].as_f64().unwrap()
        )
        .distance_m(p(wlon, wlat))
            < 0.01
    );
    let found = app
        .get(
            &format!("/api/v1/units/nearest?lon={wlon}&lat={wlat}&k=1"),
            &app.tokens.inspector,
        )
        .await
        .expect(200);
    assert_eq!(ids(&found), [id]);
}

async fn findings_attach_to_open_cases_and_near_ones_are_offered_as_duplicates(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let units = app.units_of(1);
    assert!(units.len() >= 2, "party 1's building has several units");
    let (u, neighbour) = (units[0], units[1]);
    let unit = app
        .store()
        .unit(anju_engine::domain::UnitId(u))
        .await
        .unwrap()
        .unwrap();
    let inspect = |unit_id: i64, at: (f64, f64), findings: Value| {
        let body = json!({ "unit_id": unit_id, "point": { "lon": at.0, "lat": at.1 }, "findings": findings });
        let app = &app;
        async move {
            app.post("/api/v1/inspections", &t.inspector, &body)
                .await
                .expect(201)
        }
    };
    let here = (unit.lon, unit.lat);
    let (p1, p2, p3) = (
        app.photo(&t.inspector).await,
        app.photo(&t.inspector).await,
        app.photo(&t.inspector).await,
    );
    let first = inspect(u, here, json!([{ "category": "wiring", "evidence": [p1] }])).await;
    let a = first["cases"][0]["id"].as_i64().unwrap();
    let before = app.fingerprint().await;
    let second = inspect(
        u,
        here,
        json!([
            { "category": "wiring", "evidence": [p2], "note": "又见飞线" },
            { "category": "sanitation" },
            { "category": "wiring", "evidence": [p3] },
        ]),
    )
    .await;
    assert_eq!(
        second["attached"],
        json!([{ "finding": 0, "case_id": a }, { "finding": 2, "case_id": a }])
    );
    assert_eq!(
        second["cases"].as_array().unwrap().len(),
        1,
        "only the sanitation finding opens a case"
    );
    assert_eq!(second["cases"][0]["category"], "sanitation");
    assert_eq!(second["findings_of_cases"], json!([[1]]));
    let after = app.fingerprint().await;
    let count = |fp: &[(String, i64)], k: &str| fp.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(count(&after, "cases") - count(&before, "cases"), 1);
    let case = app.case(a, &t.inspector).await;
    assert_eq!(case["case"]["version"], 2);
    let last = case["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["command"], "attach_finding");
    assert_eq!(last["from_state"], last["to_state"]);
    assert_eq!(last["data"]["evidence"], json!([p2, p3]));
    assert_eq!(last["data"]["inspection_id"], second["inspection_id"]);
    // The case moves on from its new version.
    app.command(a, &t.inspector, "notify", json!({}))
        .await
        .expect(200);

    // The same hazard seen from the neighbouring unit, within 50 m: a new case, with
    // the open one offered as a possible duplicate.
    let close = inspect(
        neighbour,
        north(here.0, here.1, 20.0),
        json!([{ "category": "wiring" }]),
    )
    .await;
    assert_eq!(close["cases"].as_array().unwrap().len(), 1);
    let dup = &close["possible_duplicates"][0];
    assert_eq!(dup["case_id"], a);
    assert_eq!(dup["unit_id"], u);
    assert!((dup["distance_m"].as_f64().unwrap() - 20.0).abs() < 0.2);
    // From 60 m away it is not offered; nor is a case of another category.
    let far = inspect(
        neighbour,
        north(here.0, here.1, 60.0),
        json!([{ "category": "fire_equipment" }]),
    )
    .await;
    assert!(far["possible_duplicates"].as_array().unwrap().is_empty());
    // Once the case is closed, a new finding opens a new case.
    let b = second["cases"][0]["id"].as_i64().unwrap();
    app.command_with_reason(b, &t.inspector, "dismiss", json!({}), Some("已清理"))
        .await
        .expect(200);
    let again = inspect(u, here, json!([{ "category": "sanitation" }])).await;
    assert!(again["attached"].as_array().unwrap().is_empty());
    assert_eq!(again["cases"].as_array().unwrap().len(), 1);
}

backend_tests!(
    findings_attach_to_open_cases_and_near_ones_are_offered_as_duplicates,
    radius_box_polygon_and_nearest_match_a_brute_force_scan,
    queries_see_only_the_callers_units_and_speak_geojson,
    bad_spatial_queries_name_their_field,
    inspections_far_from_their_unit_are_flagged,
    units_registered_through_the_api_are_found_at_once,
);
