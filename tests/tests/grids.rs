//! Grids imported from GeoJSON: units move to the grid that contains them when grids are re-imported, units inside no grid are reported and keep their grid, and a bad file changes nothing.

use serde_json::{Value, json};

use anju_engine::domain::{GridId, UnitId};
use anju_engine::spatial::grids::rectangle;
use anju_tests::{Backend, backend_tests, spawn_app};

fn collection(features: Vec<Value>) -> String {
    json!({ "type": "FeatureCollection", "features": features }).to_string()
}

fn feature(code: &str, geometry: Value, extra: Value) -> Value {
    let mut properties = json!({ "code": code });
    if let Value::Object(m) = extra {
        for (k, v) in m {
            properties[k] = v;
        }
    }
    json!({ "type": "Feature", "properties": properties, "geometry": geometry })
}

async fn units_follow_the_grids_they_fall_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.store().clone();
    let unit = store.unit(UnitId(app.unit_of(1))).await.unwrap().unwrap();
    let g1 = unit.grid_id.unwrap();
    let shapes = store.grid_shapes().await.unwrap();
    let g1_shape: Value =
        serde_json::from_str(&shapes.iter().find(|(id, _)| *id == g1).unwrap().1).unwrap();
    let code_of = |id: GridId| {
        app.city
            .skeleton()
            .iter()
            .find_map(|r| match r {
                anju_engine::registry::Record::Grid { id: gid, code, .. } if *gid == id => {
                    Some(code.clone())
                }
                _ => None,
            })
            .unwrap()
    };
    let community_code = app
        .city
        .skeleton()
        .iter()
        .find_map(|r| match r {
            anju_engine::registry::Record::Community { id, code, .. }
                if Some(*id) == unit.community_id =>
            {
                Some(code.clone())
            }
            _ => None,
        })
        .unwrap();
    // Cut a small square around the unit out of its grid, and make it a new grid.
    let d = 0.0005;
    let square = vec![
        [unit.lon - d, unit.lat - d],
        [unit.lon + d, unit.lat - d],
        [unit.lon + d, unit.lat + d],
        [unit.lon - d, unit.lat + d],
        [unit.lon - d, unit.lat - d],
    ];
    let mut holed = g1_shape.clone();
    holed["coordinates"]
        .as_array_mut()
        .unwrap()
        .push(json!(square));
    let before_units = store.unit_grids().await.unwrap();
    let in_square: Vec<i64> = before_units
        .iter()
        .filter(|(u, _, _)| {
            let (lon, lat) = u.lon_lat();
            (unit.lon - d..=unit.lon + d).contains(&lon)
                && (unit.lat - d..=unit.lat + d).contains(&lat)
        })
        .map(|(u, _, _)| u.id.0)
        .collect();
    assert!(in_square.contains(&unit.id.0));
    // An open case on the unit, which follows it from grid to grid.
    let case = app.inspect(&app.tokens.city, unit.id.0, &["wiring"]).await[0];
    let file = collection(vec![
        feature(&code_of(g1), holed, json!({})),
        feature(
            "NEW-GRID-1",
            json!({ "type": "Polygon", "coordinates": [square] }),
            json!({ "name": "新划网格", "community_code": community_code }),
        ),
    ]);
    let report = app.runtime().import_grids(&file).await.unwrap();
    assert_eq!((report.grids_created, report.grids_updated), (1, 1));
    assert_eq!(report.units_moved, in_square.len() as u64);
    assert_eq!(report.units_outside, 0, "the seeded units all lie in grids");
    assert_eq!(report.cases_relocated, 1);
    let moved = store.unit(unit.id).await.unwrap().unwrap();
    assert_ne!(moved.grid_id, Some(g1));
    assert_eq!(moved.community_id, unit.community_id);
    assert_eq!(moved.district_code, unit.district_code);
    // The case followed, by an audited event of the system.
    let view = app.case(case, &app.tokens.city).await;
    assert_eq!(view["case"]["grid_id"], moved.grid_id.unwrap().0);
    let last = view["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["command"], "relocate");
    assert_eq!(last["actor"]["role"], "system");
    assert_eq!(last["data"]["grid_before"], g1.0);
    // The inspector of grid 1 no longer sees the case either.
    app.get(&format!("/api/v1/cases/{case}"), &app.tokens.inspector)
        .await
        .problem(404, None);
    // The inspector of grid 1 no longer covers the unit; the city still sees it.
    let got = app
        .get(&format!("/api/v1/units/{}", unit.id), &app.tokens.inspector)
        .await;
    assert_eq!(got.status.as_u16(), 404, "{}", got.body);
    app.get(&format!("/api/v1/units/{}", unit.id), &app.tokens.city)
        .await
        .expect(200);
    let listed = app
        .get(
            &format!("/api/v1/grids/{}/units", moved.grid_id.unwrap().0),
            &app.tokens.city,
        )
        .await
        .expect(200);
    let mut ids: Vec<i64> = listed["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    let mut expect = in_square.clone();
    expect.sort();
    assert_eq!(ids, expect);
    let grid = app
        .get(
            &format!("/api/v1/grids/{}", moved.grid_id.unwrap().0),
            &app.tokens.city,
        )
        .await
        .expect(200);
    assert_eq!(grid["code"], "NEW-GRID-1");
    assert_eq!(grid["geometry"]["type"], "Polygon");

    // Re-imported without the hole, grid 1 takes its units back (the lower id wins
    // where grids overlap).
    let report = app
        .runtime()
        .import_grids(&collection(vec![feature(
            &code_of(g1),
            g1_shape.clone(),
            json!({}),
        )]))
        .await
        .unwrap();
    assert_eq!(report.units_moved, in_square.len() as u64);
    assert_eq!(
        store.unit(unit.id).await.unwrap().unwrap().grid_id,
        Some(g1)
    );

    assert_eq!(
        app.case(case, &app.tokens.city).await["case"]["grid_id"],
        g1.0
    );

    // Grid 1 (and the new grid) moved away from its units: they lie in no grid now,
    // keep the district their point is in, and are listed for supervisors; the case
    // follows to no grid.
    let far = rectangle((100.0, 10.0), (100.01, 10.01));
    let farther = rectangle((101.0, 10.0), (101.01, 10.01));
    let report = app
        .runtime()
        .import_grids(&collection(vec![
            feature(&code_of(g1), far, json!({})),
            feature("NEW-GRID-1", farther, json!({})),
        ]))
        .await
        .unwrap();
    let g1_units = before_units
        .iter()
        .filter(|(_, g, _)| *g == Some(g1))
        .count() as u64;
    assert_eq!(report.units_outside, g1_units);
    assert!(report.outside_sample.contains(&unit.id));
    assert_eq!(report.units_moved, g1_units);
    let lost = store.unit(unit.id).await.unwrap().unwrap();
    assert_eq!((lost.grid_id, lost.street_id), (None, None));
    assert_eq!(lost.district_code, unit.district_code);
    let view = app.case(case, &app.tokens.city).await;
    assert!(view["case"]["grid_id"].is_null());
    assert_eq!(view["case"]["district_code"], unit.district_code.as_str());
    let listed = app
        .get("/api/v1/units/ungridded?limit=1000", &app.tokens.city)
        .await
        .expect(200);
    let ids: Vec<i64> = listed["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len() as u64, g1_units);
    assert!(ids.contains(&unit.id.0));
    // The district's supervisor sees them too; another district's, none.
    let district = app
        .get("/api/v1/units/ungridded", &app.tokens.district)
        .await
        .expect(200);
    assert_eq!(district["units"].as_array().unwrap().len() as u64, g1_units);
    let other = app.token(anju_engine::domain::Role::Supervisor, 3).await;
    let none = app.get("/api/v1/units/ungridded", &other).await.expect(200);
    assert!(none["units"].as_array().unwrap().is_empty());
    app.get("/api/v1/units/ungridded", &app.tokens.inspector)
        .await
        .problem(403, None);
}

async fn a_bad_grid_file_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let store = app.store().clone();
    let before = app.fingerprint().await;
    let shapes_before = store.grid_shapes().await.unwrap();
    for (file, field) in [
        ("not json".to_string(), "file"),
        (
            collection(vec![feature(
                "X-NEW",
                rectangle((113.0, 23.0), (113.01, 23.01)),
                json!({ "name": "x" }),
            )]),
            "features[0].properties.community_code",
        ),
        (
            collection(vec![feature(
                "X-NEW",
                rectangle((113.0, 23.0), (113.01, 23.01)),
                json!({ "name": "x", "community_code": "nope" }),
            )]),
            "features[0].properties.community_code",
        ),
        (
            collection(vec![feature(
                "X",
                json!({ "type": "Point", "coordinates": [113.0, 23.0] }),
                json!({}),
            )]),
            "features[0].geometry",
        ),
    ] {
        match app.runtime().import_grids(&file).await {
            Err(anju_engine::Error::Invalid(errors)) => assert_eq!(errors[0].field, field),
            other => panic!("expected a refusal naming {field}, got {other:?}"),
        }
    }
    assert_eq!(app.fingerprint().await, before);
    assert_eq!(store.grid_shapes().await.unwrap(), shapes_before);
}

backend_tests!(
    units_follow_the_grids_they_fall_in,
    a_bad_grid_file_changes_nothing
);
