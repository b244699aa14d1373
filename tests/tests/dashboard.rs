//! The supervisor's dashboard over the real HTTP server: the map of open hazards counts each street's open cases as the test counts them from the units' streets, each street's outline is the union of its grids (their summed area, holding every grid) and grows when a grid is imported, every role sees only its own; the dashboard page carries the same statistics and map as the API and links each street to exactly its open cases. On both backends.

use std::collections::BTreeMap;

use geo::{Area, Contains, InteriorPoint};
use serde_json::{Value, json};

use anju_engine::domain::{GridId, InspectorId, UnitId};
use anju_engine::registry::Record;
use anju_engine::spatial::grids::rectangle;
use anju_tests::{Backend, TestApp, backend_tests, spawn_app};

mod page_support;
use page_support::*;

/// A GeoJSON Polygon or MultiPolygon as a geo shape.
fn shape(geometry: &Value) -> geo::MultiPolygon<f64> {
    let ring = |r: &Value| -> geo::LineString<f64> {
        r.as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
            .collect::<Vec<_>>()
            .into()
    };
    let polygon = |p: &Value| {
        let rings = p.as_array().unwrap();
        geo::Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
    };
    let coordinates = &geometry["coordinates"];
    match geometry["type"].as_str().unwrap() {
        "Polygon" => geo::MultiPolygon(vec![polygon(coordinates)]),
        "MultiPolygon" => geo::MultiPolygon(
            coordinates
                .as_array()
                .unwrap()
                .iter()
                .map(polygon)
                .collect(),
        ),
        other => panic!("not an area: {other}"),
    }
}

/// Every grid's shape, by street (from the store's grid shapes and places).
async fn grids_by_street(app: &TestApp) -> BTreeMap<i64, Vec<geo::MultiPolygon<f64>>> {
    let places: BTreeMap<GridId, i64> = app
        .store()
        .grid_places()
        .await
        .unwrap()
        .into_iter()
        .map(|(g, p)| (g, p.street_id.0))
        .collect();
    let mut out: BTreeMap<i64, Vec<_>> = BTreeMap::new();
    for (grid, text) in app.store().grid_shapes().await.unwrap() {
        let g: Value = serde_json::from_str(&text).unwrap();
        out.entry(places[&grid]).or_default().push(shape(&g));
    }
    out
}

/// The street of a unit, from the registry.
async fn street_of(app: &TestApp, unit: i64) -> i64 {
    let u = app.store().unit(UnitId(unit)).await.unwrap().unwrap();
    u.street_id.unwrap().0
}

/// The map's features by street id.
fn features(map: &Value) -> BTreeMap<i64, Value> {
    map["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["properties"]["street_id"].as_i64().unwrap(), f.clone()))
        .collect()
}

async fn the_map_counts_open_cases_by_street(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    // Inspector 1 finds hazards in four of their units (two in one unit); inspector 2
    // one in theirs; one of inspector 1's cases is cancelled.
    let mine = app.inspector_units().await;
    let mut open: BTreeMap<i64, i64> = BTreeMap::new();
    let mut cases = Vec::new();
    for (i, unit) in mine.iter().take(4).enumerate() {
        let found: &[&str] = if i == 0 {
            &["wiring", "gas_heater"]
        } else {
            &["wiring"]
        };
        for id in app.inspect(&t.inspector, *unit, found).await {
            cases.push((id, street_of(&app, *unit).await));
        }
    }
    let theirs_grids = app
        .store()
        .inspector_grids(InspectorId(2))
        .await
        .unwrap()
        .unwrap();
    let theirs = app
        .store()
        .grid_units(*theirs_grids.iter().next().unwrap(), None, 1)
        .await
        .unwrap()[0]
        .id
        .0;
    let other_case = app.inspect(&t.other_inspector, theirs, &["wiring"]).await[0];
    cases.push((other_case, street_of(&app, theirs).await));
    let (cancelled, _) = cases[1];
    app.command_with_reason(cancelled, &t.city, "cancel", json!({}), Some("重复登记"))
        .await
        .expect(200);
    for (id, street) in &cases {
        if *id != cancelled {
            *open.entry(*street).or_default() += 1;
        }
    }

    // The city supervisor's map: every street, with the open cases counted above.
    let map = app.get("/api/v1/statistics/map", &t.city).await.expect(200);
    assert_eq!(map["type"], "FeatureCollection");
    let by_street = features(&map);
    let streets: Vec<i64> = app
        .city
        .skeleton()
        .iter()
        .filter_map(|r| match r {
            Record::Street { id, .. } => Some(id.0),
            _ => None,
        })
        .collect();
    assert_eq!(by_street.keys().copied().collect::<Vec<_>>(), {
        let mut s = streets.clone();
        s.sort();
        s
    });
    for (street, f) in &by_street {
        assert_eq!(
            f["properties"]["open"].as_i64().unwrap(),
            open.get(street).copied().unwrap_or(0),
            "street {street}"
        );
        let by_severity: i64 = f["properties"]["by_severity"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .sum();
        assert_eq!(by_severity, f["properties"]["open"].as_i64().unwrap());
    }

    // Each street's outline is the union of its grids: the same area as the grids
    // summed (they do not overlap; the union snaps coordinates to a fine integer grid, so
    // within a ten-millionth), holding a point inside each grid.
    let grids = grids_by_street(&app).await;
    assert!(!grids.is_empty());
    for (street, shapes) in &grids {
        let outline = shape(&by_street[street]["geometry"]);
        let summed: f64 = shapes.iter().map(|s| s.unsigned_area()).sum();
        let area = outline.unsigned_area();
        assert!(
            (area - summed).abs() <= summed * 1e-7,
            "street {street}: outline {area} against grids {summed}"
        );
        for s in shapes {
            assert!(outline.contains(&s.interior_point().unwrap()));
        }
    }

    // Inspector 1 counts only the cases of their grids; inspector 2's case is not in it.
    let map = app
        .get("/api/v1/statistics/map", &t.inspector)
        .await
        .expect(200);
    let seen: i64 = features(&map)
        .values()
        .map(|f| f["properties"]["open"].as_i64().unwrap())
        .sum();
    let total_open: i64 = open.values().sum();
    assert_eq!(seen, total_open - 1);

    // The district supervisor sees their district's streets only; another district
    // is "not found"; a landlord gets none; bad queries name their parameter.
    let me = app.get("/api/v1/me", &t.district).await.expect(200);
    let district = me["scope"]["id"].as_str().unwrap().to_string();
    let map = app
        .get("/api/v1/statistics/map", &t.district)
        .await
        .expect(200);
    let own = features(&map);
    assert!(!own.is_empty());
    assert!(
        own.values()
            .all(|f| f["properties"]["district_code"] == district.as_str())
    );
    let other_district = by_street
        .values()
        .map(|f| f["properties"]["district_code"].as_str().unwrap())
        .find(|d| *d != district)
        .unwrap()
        .to_string();
    app.get(
        &format!("/api/v1/statistics/map?area=district:{other_district}"),
        &t.district,
    )
    .await
    .problem(404, None);
    app.get("/api/v1/statistics/map", &t.landlord)
        .await
        .problem(403, None);
    app.get("/api/v1/statistics/map?area=street:x", &t.city)
        .await
        .problem(422, Some("area"));
    app.get("/api/v1/statistics/map?zone=city", &t.city)
        .await
        .problem(422, Some("zone"));

    // A grid imported for a street joins its outline.
    let (street, _) = grids.iter().next().unwrap();
    let before = shape(&by_street[street]["geometry"]);
    let community = app
        .city
        .skeleton()
        .iter()
        .find_map(|r| match r {
            Record::Community {
                code, street_id, ..
            } if street_id.0 == *street => Some(code.clone()),
            _ => None,
        })
        .unwrap();
    let added = rectangle((113.9, 23.9), (113.91, 23.91));
    assert!(!before.contains(&shape(&added)), "apart from the street");
    let file = json!({ "type": "FeatureCollection", "features": [{
        "type": "Feature",
        "properties": { "code": "DASH-1", "name": "新网格", "community_code": community },
        "geometry": added,
    }]});
    app.runtime().import_grids(&file.to_string()).await.unwrap();
    let map = app.get("/api/v1/statistics/map", &t.city).await.expect(200);
    let after = shape(&features(&map)[street]["geometry"]);
    let grown = before.unsigned_area() + shape(&added).unsigned_area();
    assert!((after.unsigned_area() - grown).abs() <= grown * 1e-7);
    assert!(after.contains(&shape(&added).interior_point().unwrap()));
}

async fn the_dashboard_page_shows_the_statistics_and_links_streets(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let units = app.inspector_units().await;
    let mut cases = Vec::new();
    for unit in units.iter().take(3) {
        cases.extend(app.inspect(&t.inspector, *unit, &["wiring"]).await);
    }
    let street = street_of(&app, units[0]).await;
    app.command_with_reason(cases[0], &t.city, "cancel", json!({}), Some("重复登记"))
        .await
        .expect(200);
    let client = browser();
    let cookie = format!("anju_session={}", t.city);

    let (status, html, _) = get(&client, &app, "/dashboard", Some(&cookie)).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let at = html.find("id=\"dashboard-data\"").expect("the page's data");
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    let api = app.get("/api/v1/statistics", &t.city).await.expect(200);
    assert_eq!(data["statistics"]["cases"], api["cases"]);
    assert_eq!(data["statistics"]["by_category"], api["by_category"]);
    assert_eq!(data["statistics"]["cases"]["found"], 3);
    let map = app.get("/api/v1/statistics/map", &t.city).await.expect(200);
    assert_eq!(data["map"], map);
    assert_eq!(data["trend"].as_array().unwrap().len(), 6);
    assert_eq!(data["trend"][5]["found"], 3);
    for asset in ["/assets/echarts.min.js", "/assets/dashboard.js"] {
        assert!(html.contains(asset), "{asset}");
        let (status, body, _) = get(&client, &app, asset, None).await;
        assert_eq!(status, reqwest::StatusCode::OK);
        assert!(body.len() > 1000, "{asset}");
    }

    // The street's link lists exactly its open cases.
    let link = format!("/?street_id={street}&amp;open=true");
    assert!(html.contains(&link), "the street is linked");
    let (status, list, _) = get(
        &client,
        &app,
        &format!("/?street_id={street}&open=true"),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let mut expected = Vec::new();
    for (i, unit) in units.iter().take(3).enumerate() {
        if street_of(&app, *unit).await == street && i != 0 {
            expected.push(cases[i]);
        }
    }
    let listed: Vec<i64> = list
        .match_indices("href=\"/cases/")
        .map(|(at, _)| {
            let rest = &list[at + 13..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    expected.sort();
    assert_eq!(listed_sorted, expected);

    // A landlord has no dashboard; a bad day is refused by name.
    let landlord = format!("anju_session={}", t.landlord);
    let (status, html, _) = get(&client, &app, "/dashboard", Some(&landlord)).await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    assert!(!html.contains("dashboard-data"));
    let (status, html, _) = get(&client, &app, "/dashboard?area=street:zz", Some(&cookie)).await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert!(html.contains("area"));
    let (status, _, _) = get(&client, &app, "/?street_id=abc", Some(&cookie)).await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
}

backend_tests!(
    the_map_counts_open_cases_by_street,
    the_dashboard_page_shows_the_statistics_and_links_streets,
);
