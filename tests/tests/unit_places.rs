//! A unit's grid comes from its point (issue 9, items 12 to 15): registration by point, refusals far from the building or outside the city, units outside every grid listed for supervisors, audited point corrections that cases follow, box and polygon edges tested on stored coordinates, answers in the datum asked for, and big answers that say they are cut and page.

use serde_json::{Value, json};

use anju_engine::domain::UnitId;
use anju_engine::spatial::grids::rectangle;
use anju_tests::{Backend, TestApp, backend_tests, spawn_app};

/// A grid file of one new grid, a square of `half` degrees around (lon, lat) in the
/// community of `unit`, cut out of the unit's grid (so that grids do not overlap).
async fn square_grid(app: &TestApp, code: &str, unit: i64, at: (f64, f64), half: f64) -> String {
    use geo::Contains;
    let u = app.store().unit(UnitId(unit)).await.unwrap().unwrap();
    let grid = u.grid_id.unwrap();
    let (community, grid_code) = {
        let sk = app.city.skeleton();
        let community = sk
            .iter()
            .find_map(|r| match r {
                anju_engine::registry::Record::Community { id, code, .. }
                    if Some(*id) == u.community_id =>
                {
                    Some(code.clone())
                }
                _ => None,
            })
            .unwrap();
        let grid_code = sk
            .iter()
            .find_map(|r| match r {
                anju_engine::registry::Record::Grid { id, code, .. } if *id == grid => {
                    Some(code.clone())
                }
                _ => None,
            })
            .unwrap();
        (community, grid_code)
    };
    let square = rectangle((at.0 - half, at.1 - half), (at.0 + half, at.1 + half));
    let hole = square["coordinates"][0].clone();
    let shapes = app.store().grid_shapes().await.unwrap();
    let mut holed: Value =
        serde_json::from_str(&shapes.iter().find(|(id, _)| *id == grid).unwrap().1).unwrap();
    let here = geo::Point::new(at.0, at.1);
    if holed["type"] == "Polygon" {
        holed["coordinates"].as_array_mut().unwrap().push(hole);
    } else {
        let parts = holed["coordinates"].as_array_mut().unwrap();
        let part = parts
            .iter_mut()
            .find(|p| {
                let one = json!({"type": "Polygon", "coordinates": [p[0].clone()]});
                anju_engine::spatial::shape::parse_area(&one, "g")
                    .unwrap()
                    .contains(&here)
            })
            .unwrap();
        part.as_array_mut().unwrap().push(hole);
    }
    json!({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": grid_code}, "geometry": holed},
        {
            "type": "Feature",
            "properties": {"code": code, "name": "新网格", "community_code": community},
            "geometry": square,
        },
    ]})
    .to_string()
}

fn ids(v: &Value, key: &str) -> Vec<i64> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect()
}

async fn a_units_grid_comes_from_its_point(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit1 = app
        .store()
        .unit(UnitId(app.unit_of(1)))
        .await
        .unwrap()
        .unwrap();
    let site = app
        .store()
        .building_place(unit1.building_id.0)
        .await
        .unwrap()
        .unwrap();
    // A new grid 150 m east of the building, inside its grid's area.
    let east = (site.lon + 0.0015, site.lat);
    let file = square_grid(&app, "G-EAST", unit1.id.0, east, 0.0004).await;
    app.runtime().import_grids(&file).await.unwrap();
    let new_grid = app
        .store()
        .grids_by_code(&["G-EAST".to_string()])
        .await
        .unwrap()[0]
        .1;
    // Registered in the building, at a point inside the new grid: the unit is in the
    // new grid, not the building's.
    let body = json!({ "building_id": site.building_id, "address_code": "P-1", "address": "东侧 1 号",
                       "lon": east.0, "lat": east.1, "floor_area": 30.0, "occupants": 2 });
    let created = app.post("/api/v1/units", &t.city, &body).await.expect(201);
    assert_eq!(created["grid_id"], new_grid.0);
    assert_ne!(new_grid, site.grid_id);
    // 300 m is the farthest a unit lies from its building.
    let mut far = body.clone();
    far["address_code"] = json!("P-2");
    far["lon"] = json!(site.lon + 0.004);
    let r = app
        .post("/api/v1/units", &t.city, &far)
        .await
        .problem(422, Some("point"));
    assert!(r["detail"].as_str().unwrap().contains("300 m"), "{r}");

    // A point outside every grid (the building's grid moved away): the unit has no grid,
    // takes its district from the district outline, and is listed for supervisors.
    let code = app
        .city
        .skeleton()
        .iter()
        .find_map(|r| match r {
            anju_engine::registry::Record::Grid { id, code, .. } if *id == site.grid_id => {
                Some(code.clone())
            }
            _ => None,
        })
        .unwrap();
    let away = json!({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"code": code},
        "geometry": rectangle((100.0, 10.0), (100.01, 10.01)),
    }]})
    .to_string();
    app.runtime().import_grids(&away).await.unwrap();
    let mut gridless = body.clone();
    gridless["address_code"] = json!("P-3");
    gridless["lon"] = json!(site.lon);
    let created = app
        .post("/api/v1/units", &t.district, &gridless)
        .await
        .expect(201);
    assert!(created["grid_id"].is_null(), "{created}");
    assert!(created["street_id"].is_null(), "{created}");
    assert_eq!(created["district_code"], site.district_code.as_str());
    let listed = app
        .get("/api/v1/units/ungridded?limit=1000", &t.district)
        .await
        .expect(200);
    assert!(ids(&listed, "units").contains(&created["id"].as_i64().unwrap()));
    // An inspector cannot register a unit in no grid (none of theirs).
    let mut by_inspector = gridless.clone();
    by_inspector["address_code"] = json!("P-4");
    app.post("/api/v1/units", &t.inspector, &by_inspector)
        .await
        .problem(403, None);
}

async fn corrections_regrid_units_and_cases_follow(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let unit = app
        .store()
        .unit(UnitId(app.unit_of(1)))
        .await
        .unwrap()
        .unwrap();
    let case = app.inspect(&t.city, unit.id.0, &["wiring"]).await[0];
    let east = (unit.lon + 0.001, unit.lat);
    let file = square_grid(&app, "G-FIX", unit.id.0, east, 0.0003).await;
    app.runtime().import_grids(&file).await.unwrap();
    let before = app.fingerprint().await;
    // A correction needs a reason, and stays near the building.
    app.post(
        &format!("/api/v1/units/{}/location", unit.id),
        &t.city,
        &json!({ "point": { "lon": east.0, "lat": east.1 }, "reason": " " }),
    )
    .await
    .problem(422, Some("reason"));
    app.post(
        &format!("/api/v1/units/{}/location", unit.id),
        &t.city,
        &json!({ "point": { "lon": unit.lon + 0.01, "lat": unit.lat }, "reason": "测绘" }),
    )
    .await
    .problem(422, Some("point"));
    // A landlord, or someone who cannot see the unit, finds no such unit.
    app.post(
        &format!("/api/v1/units/{}/location", unit.id),
        &t.other_landlord,
        &json!({ "point": { "lon": east.0, "lat": east.1 }, "reason": "测绘" }),
    )
    .await
    .problem(404, None);
    assert_eq!(app.fingerprint().await, before);
    let r = app
        .post(
            &format!("/api/v1/units/{}/location", unit.id),
            &t.city,
            &json!({ "point": { "lon": east.0, "lat": east.1 }, "reason": "现场复核坐标" }),
        )
        .await
        .expect(200);
    let new_grid = r["unit"]["grid_id"].as_i64().unwrap();
    assert_ne!(Some(new_grid), unit.grid_id.map(|g| g.0));
    assert_eq!(r["corrections"][0]["reason"], "现场复核坐标");
    assert_eq!(r["corrections"][0]["from"][0], unit.lon);
    assert_eq!(r["corrections"][0]["actor"], "supervisor:1");
    let view = app.case(case, &t.city).await;
    assert_eq!(view["case"]["grid_id"], new_grid);
    let last = view["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["command"], "relocate");
    // The unit index moved with it: found at its new point, not its old.
    let near = app
        .get(
            &format!(
                "/api/v1/units/near?lon={}&lat={}&radius_m=5",
                east.0, east.1
            ),
            &t.city,
        )
        .await
        .expect(200);
    assert!(ids(&near, "units").contains(&unit.id.0));
    // A building's point can be corrected too, but never out of the city.
    let site = app
        .store()
        .building_place(unit.building_id.0)
        .await
        .unwrap()
        .unwrap();
    app.post(
        &format!("/api/v1/buildings/{}/location", site.building_id),
        &t.city,
        &json!({ "point": { "lon": 112.9, "lat": 22.6 }, "reason": "错" }),
    )
    .await
    .problem(422, Some("point"));
    let moved = app
        .post(
            &format!("/api/v1/buildings/{}/location", site.building_id),
            &t.city,
            &json!({ "point": { "lon": site.lon + 0.0001, "lat": site.lat }, "reason": "微调" }),
        )
        .await
        .expect(200);
    assert_eq!(moved["lon"], site.lon + 0.0001);
}

/// Box and polygon queries hold the units on their edges, compared on the coordinates
/// stored (JSON numbers parsed exactly).
async fn units_on_edges_are_in_boxes_and_polygons(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut missed = Vec::new();
    for unit in 1..=60 {
        let u = app.store().unit(UnitId(unit)).await.unwrap().unwrap();
        let (lon, lat) = (u.lon, u.lat);
        for bbox in [
            format!("{lon},{lat},{},{}", lon + 0.001, lat + 0.001),
            format!("{},{},{lon},{lat}", lon - 0.001, lat - 0.001),
        ] {
            let r = app
                .get(
                    &format!("/api/v1/units/within?bbox={bbox}&limit=5000"),
                    &app.tokens.city,
                )
                .await
                .expect(200);
            if !ids(&r, "units").contains(&unit) {
                missed.push((unit, bbox));
            }
        }
        let triangle = json!({"type": "Polygon", "coordinates": [[[lon, lat], [lon + 0.001, lat], [lon, lat + 0.001], [lon, lat]]]});
        let r = app
            .post(
                "/api/v1/units/within?limit=5000",
                &app.tokens.city,
                &triangle,
            )
            .await
            .expect(200);
        if !ids(&r, "units").contains(&unit) {
            missed.push((unit, "polygon vertex".into()));
        }
    }
    assert!(missed.is_empty(), "{missed:?}");
}

/// Answers come in the datum asked for, say so, and say when they are cut: the total,
/// and pages that add up to it.
async fn answers_are_in_the_asked_datum_and_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let u = app.store().unit(UnitId(1)).await.unwrap().unwrap();
    let (glon, glat) = anju_engine::spatial::crs::gcj02_from_wgs84(u.lon, u.lat);
    let r = app
        .get(
            &format!("/api/v1/units/near?lon={glon}&lat={glat}&radius_m=1&crs=gcj02"),
            &t.city,
        )
        .await
        .expect(200);
    assert_eq!(r["crs"], "gcj02");
    let found = r["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == 1)
        .unwrap();
    assert!((found["lon"].as_f64().unwrap() - glon).abs() < 1e-9);
    assert!((found["lat"].as_f64().unwrap() - glat).abs() < 1e-9);
    let r = app
        .get(
            &format!("/api/v1/grids/{}/units?crs=gcj02", u.grid_id.unwrap()),
            &t.city,
        )
        .await
        .expect(200);
    assert_eq!(r["crs"], "gcj02");
    // A box over the whole city, paged ten at a time.
    let bbox = "112.9,22.5,114.1,23.95";
    let first = app
        .get(
            &format!("/api/v1/units/within?bbox={bbox}&limit=10"),
            &t.city,
        )
        .await
        .expect(200);
    let total = first["total"].as_u64().unwrap();
    assert_eq!(total, anju_tests::TEST_UNITS);
    let mut all = ids(&first, "units");
    let mut next = first["next_after"].as_i64();
    while let Some(after) = next {
        let page = app
            .get(
                &format!("/api/v1/units/within?bbox={bbox}&limit=10&after={after}"),
                &t.city,
            )
            .await
            .expect(200);
        all.extend(ids(&page, "units"));
        next = page["next_after"].as_i64();
    }
    assert_eq!(all.len() as u64, total);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    // An inspector's total counts only what they may see.
    let mine = app
        .get(
            &format!("/api/v1/units/within?bbox={bbox}&limit=5"),
            &t.inspector,
        )
        .await
        .expect(200);
    let visible = app
        .store()
        .grid_units(anju_engine::domain::GridId(1), None, 10_000)
        .await
        .unwrap()
        .len()
        + app
            .store()
            .grid_units(anju_engine::domain::GridId(2), None, 10_000)
            .await
            .unwrap()
            .len();
    assert_eq!(mine["total"].as_u64().unwrap() as usize, visible);
    // A mistyped datum names the field.
    app.post(
        "/api/v1/units",
        &t.city,
        &json!({ "building_id": 1, "address_code": "C-1", "address": "x", "lon": 113.0, "lat": 23.0, "floor_area": 20.0, "occupants": 1, "crs": "gcj2" }),
    )
    .await
    .problem(422, Some("crs"));
    app.get(
        "/api/v1/units/near?lon=113&lat=23&radius_m=10&crs=gcj2",
        &t.city,
    )
    .await
    .problem(422, Some("crs"));
}

/// The shape of a unit over HTTP is the API's own, written down here (the routes
/// convert the engine's record).
async fn a_unit_answers_in_the_apis_own_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let unit = app.unit_of(1);
    let answer = app
        .get(&format!("/api/v1/units/{unit}"), &app.tokens.inspector)
        .await
        .expect(200);
    let mut keys: Vec<&str> = answer
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "address",
            "address_code",
            "building_id",
            "checklist",
            "community_id",
            "created_at",
            "district_code",
            "evening_only",
            "floor_area",
            "grid_id",
            "id",
            "last_closed_at",
            "last_inspected_at",
            "lat",
            "lon",
            "next_due_at",
            "occupants",
            "party_id",
            "public_code",
            "score",
            "stars",
            "street_id"
        ]
    );
    assert_eq!(answer["id"], unit);
}

/// The shape of an inspection's answer is the API's own, written down here.
async fn an_inspection_answers_in_the_apis_own_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    let unit = app.unit_of(1);
    let u = app
        .get(&format!("/api/v1/units/{unit}"), &app.tokens.inspector)
        .await
        .expect(200);
    let body = json!({
        "unit_id": unit,
        "point": { "lon": u["lon"], "lat": u["lat"] },
        "findings": [{ "category": "wiring" }, { "category": "wiring" }],
    });
    let answer = app
        .post("/api/v1/inspections", &app.tokens.inspector, &body)
        .await
        .expect(201);
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&answer),
        [
            "attached",
            "cases",
            "distance_m",
            "findings_of_cases",
            "grade",
            "inspection_id",
            "located",
            "off_site",
            "possible_duplicates",
            "unit_id"
        ]
    );
    assert_eq!(
        keys(&answer["cases"][0]),
        [
            "address",
            "category",
            "closed_at",
            "deadline_at",
            "department_id",
            "district_code",
            "escalation",
            "grid_id",
            "id",
            "inspector_id",
            "order_no",
            "party_id",
            "priority",
            "reopen_count",
            "review_required",
            "severity",
            "state",
            "street_id",
            "version"
        ]
    );
    assert_eq!(
        keys(&answer["grade"]),
        ["changed", "next_due_at", "reasons", "score", "stars"]
    );
    assert_eq!(answer["findings_of_cases"], json!([[0, 1]]));
}

backend_tests!(
    an_inspection_answers_in_the_apis_own_shape,
    a_unit_answers_in_the_apis_own_shape,
    a_units_grid_comes_from_its_point,
    corrections_regrid_units_and_cases_follow,
    units_on_edges_are_in_boxes_and_polygons,
    answers_are_in_the_asked_datum_and_page,
);
