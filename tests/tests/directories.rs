//! Directories (issue 9, item 22): departments, inspectors and supervisors listed for those who work with them, scoped by jurisdiction, so that nobody finds ids by trial.

use serde_json::Value;

use anju_tests::{Backend, backend_tests, spawn_app};

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap()
}

async fn directories_are_scoped(backend: Backend) {
    let app = spawn_app(backend).await;
    let t = &app.tokens;
    // Departments: the city sees all; a district its own and the city-wide ones.
    let all = app.get("/api/v1/departments", &t.city).await.expect(200);
    assert_eq!(list(&all, "departments").len(), 6 * 11 + 1);
    let district = app
        .get("/api/v1/departments", &t.district)
        .await
        .expect(200);
    let codes: Vec<Value> = list(&district, "departments")
        .iter()
        .map(|d| d["district_code"].clone())
        .collect();
    assert_eq!(codes.len(), 7);
    assert!(
        codes.iter().all(|c| c == "440103" || c.is_null()),
        "{codes:?}"
    );
    let inspector = app
        .get("/api/v1/departments", &t.inspector)
        .await
        .expect(200);
    assert_eq!(list(&inspector, "departments").len(), 7);
    app.get("/api/v1/departments", &t.landlord)
        .await
        .problem(403, None);
    // Inspectors: a district supervisor sees those of the district; an inspector those
    // who share a grid with them.
    let everyone = app.get("/api/v1/inspectors", &t.city).await.expect(200);
    let district = app.get("/api/v1/inspectors", &t.district).await.expect(200);
    let mine = app
        .get("/api/v1/inspectors", &t.inspector)
        .await
        .expect(200);
    let ids = |v: &Value, k: &str| -> Vec<i64> {
        list(v, k)
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect()
    };
    assert!(ids(&district, "inspectors").len() < ids(&everyone, "inspectors").len());
    assert!(ids(&mine, "inspectors").contains(&1));
    assert!(
        !ids(&mine, "inspectors").contains(&2),
        "inspector 2 works other grids"
    );
    for i in list(&mine, "inspectors") {
        assert!(
            i["grids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g == 1 || g == 2),
            "{i}"
        );
    }
    app.get("/api/v1/inspectors", &t.fire)
        .await
        .problem(403, None);
    // Supervisors: an inspector sees the city's, the district's and the street's.
    let over = app
        .get("/api/v1/supervisors", &t.inspector)
        .await
        .expect(200);
    let levels: Vec<&str> = list(&over, "supervisors")
        .iter()
        .map(|s| s["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["city", "district", "street"]);
    assert_eq!(ids(&over, "supervisors"), [1, 2, 13]);
    let district = app
        .get("/api/v1/supervisors", &t.district)
        .await
        .expect(200);
    assert!(ids(&district, "supervisors").contains(&13));
    assert!(
        !ids(&district, "supervisors").contains(&3),
        "another district's"
    );
    app.get("/api/v1/supervisors", &t.landlord)
        .await
        .problem(403, None);
}

backend_tests!(directories_are_scoped);
