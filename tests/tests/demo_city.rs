//! The demo city lies in the real Guangzhou (issue 9, items 16, 17 and 19): every seeded unit inside its own district's full outline (checked with geo's point-in-polygon against the unsimplified data, not the seeder's band test), grids inside their district, seeded grades backed by checklists, and caps that lower grades without making them.

use std::collections::HashMap;

use geo::{Contains, Distance, Euclidean};
use serde_json::{Value, json};

use anju_engine::domain::{CommunityId, GridId, StreetId, UnitId};
use anju_engine::registry::Record;
use anju_engine::seed::DemoCity;
use anju_tests::{Backend, backend_tests, spawn_app};

/// The districts' full outlines (as published, converted to WGS-84), by code.
fn full_outlines() -> HashMap<String, geo::MultiPolygon<f64>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/boundaries/guangzhou-districts-full.geojson"
    ))
    .unwrap();
    let collection: geojson::FeatureCollection = text.parse().unwrap();
    collection
        .features
        .into_iter()
        .map(|f| {
            let code = f.properties.as_ref().unwrap()["code"]
                .as_str()
                .unwrap()
                .to_string();
            let shape: geo::Geometry<f64> = f.geometry.unwrap().try_into().unwrap();
            let shape = match shape {
                geo::Geometry::Polygon(p) => geo::MultiPolygon::new(vec![p]),
                geo::Geometry::MultiPolygon(m) => m,
                other => panic!("{other:?}"),
            };
            (code, shape)
        })
        .collect()
}

#[test]
fn every_seeded_unit_lies_in_its_own_district() {
    let outlines = full_outlines();
    assert_eq!(outlines.len(), 11);
    for (units, seed) in [(10_000, 2026), (60_000, 7)] {
        let city = DemoCity::new(units, seed);
        let mut street_district: HashMap<StreetId, String> = HashMap::new();
        let mut community_street: HashMap<CommunityId, StreetId> = HashMap::new();
        let mut grid_community: HashMap<GridId, CommunityId> = HashMap::new();
        let mut grid_shapes = Vec::new();
        for r in city.skeleton() {
            match r {
                Record::Street {
                    id, district_code, ..
                } => {
                    street_district.insert(*id, district_code.clone());
                }
                Record::Community { id, street_id, .. } => {
                    community_street.insert(*id, *street_id);
                }
                Record::Grid {
                    id,
                    community_id,
                    geometry,
                    ..
                } => {
                    grid_community.insert(*id, *community_id);
                    grid_shapes.push((*id, geometry.clone().unwrap()));
                }
                _ => {}
            }
        }
        let district_of_grid =
            |g: GridId| -> &str { &street_district[&community_street[&grid_community[&g]]] };
        // Grids nest in their districts: every vertex inside the outline the seeder
        // used (the simplified one, shipped with Anju), or on it (within 0.1 m: the cut
        // along the outline computes its vertices in floating point).
        let shipped = anju_engine::spatial::outline::guangzhou_districts();
        for (id, geometry) in &grid_shapes {
            let shape = anju_engine::spatial::shape::parse_area(geometry, "grid").unwrap();
            let code = district_of_grid(*id);
            let district = shipped.iter().find(|d| d.code == code).unwrap();
            for p in shape.0.iter().flat_map(|p| p.exterior().points()) {
                let off = Euclidean.distance(&p, district.outline.shape());
                assert!(
                    off < 1e-6,
                    "grid {id} reaches {off}° out of {code} at {p:?}"
                );
            }
        }
        let mut building_grid: HashMap<i64, GridId> = HashMap::new();
        let mut checked = 0;
        let mut by_district: HashMap<String, usize> = HashMap::new();
        for chunk in city.chunks(5_000) {
            for r in chunk {
                match r {
                    Record::Building { id, grid_id, .. } => {
                        building_grid.insert(id.0, grid_id);
                    }
                    Record::Unit {
                        id,
                        building_id,
                        lon,
                        lat,
                        ..
                    } => {
                        let code = district_of_grid(building_grid[&building_id.0]);
                        assert!(
                            outlines[code].contains(&geo::Point::new(lon, lat)),
                            "unit {id} at {lon},{lat} is outside {code}"
                        );
                        *by_district.entry(code.to_string()).or_default() += 1;
                        checked += 1;
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(checked as u64, city.plan.units);
        assert_eq!(by_district.len(), 11, "every district has units");
    }
}

/// A seeded unit's first inspection without a checklist keeps its grade (the seeded
/// checklist stands), and a cap never makes a grade for a unit never assessed.
async fn seeded_grades_stand_and_caps_do_not_make_grades(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    let store = app.store();
    // A five-star unit and an ungraded one in inspector 1's grids.
    let mut five = None;
    let mut ungraded = None;
    for grid in [1, 2] {
        for u in store.grid_units(GridId(grid), None, 500).await.unwrap() {
            match u.stars {
                Some(5) if five.is_none() => five = Some(u),
                None if ungraded.is_none() => ungraded = Some(u),
                _ => {}
            }
        }
    }
    let (five, ungraded) = (
        five.expect("a 5-star unit"),
        ungraded.expect("an ungraded unit"),
    );
    assert!(
        five.checklist.is_some(),
        "seeded grades carry their checklist"
    );
    let visit = |u: &anju_engine::registry::Unit, findings: Value| json!({ "unit_id": u.id, "point": { "lon": u.lon, "lat": u.lat }, "findings": findings });
    let r = app
        .post(
            "/api/v1/inspections",
            &t.inspector,
            &visit(&five, json!([])),
        )
        .await
        .expect(201);
    assert_eq!(r["grade"]["stars"], 5, "{r}");
    // An ungraded unit with a finding that caps grades stays ungraded.
    let r = app
        .post(
            "/api/v1/inspections",
            &t.inspector,
            &visit(
                &ungraded,
                json!([{ "category": "no_agreement" }, { "category": "wiring" }]),
            ),
        )
        .await
        .expect(201);
    assert!(r["grade"]["stars"].is_null(), "{r}");
    let after = store.unit(UnitId(ungraded.id.0)).await.unwrap().unwrap();
    assert_eq!(after.stars, None);
    // Its placard says so.
    let page = app
        .client
        .get(format!("{}/u/{}", app.base, after.public_code))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("未评级"), "{page}");
    assert!(!page.contains('★'), "{page}");
}

backend_tests!(seeded_grades_stand_and_caps_do_not_make_grades);
