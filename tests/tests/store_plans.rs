//! The store conformance suite, plans and campaigns: stored routes, visits, extra stops, campaigns and their progress, on both backends.

use chrono::TimeDelta;
use serde_json::json;

use anju_engine::auth::Scope;
use anju_engine::domain::{GridId, UnitId};
use anju_engine::registry::Record;
use anju_tests::{Backend, backend_tests, t0};

mod store_support;
use store_support::*;

async fn plans_and_campaigns_round_trip(backend: Backend) {
    use anju_engine::domain::InspectorId;
    use anju_engine::planning;
    use anju_engine::store::{CampaignArea, CheckItem, NewCampaign};
    use anju_engine::time::day_bounds;
    let f = fixture(backend).await;
    // An inspector with a capacity of their own; the others get the default.
    f.store
        .import(
            &[Record::Inspector {
                id: InspectorId(9001),
                name: "周敏".into(),
                phone: None,
                email: None,
                shift: "evening".into(),
                capacity: Some(3),
                grids: vec![GridId(1)],
            }],
            t0(),
        )
        .await
        .unwrap();
    let planners = f.store.planners().await.unwrap();
    let mine = planners.iter().find(|p| p.id == InspectorId(9001)).unwrap();
    assert_eq!((mine.capacity, mine.shift.as_str()), (3, "evening"));
    assert_eq!(mine.grids, vec![GridId(1)]);
    assert!(
        planners
            .iter()
            .filter(|p| p.id != InspectorId(9001))
            .all(|p| p.capacity == 25)
    );

    // Candidates: exactly the units due by the end of the day (or never graded).
    let date = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
    let (start, end) = day_bounds(date);
    let all = f.store.plan_candidates(None, start, end).await.unwrap();
    let mut expected = Vec::new();
    for id in 1..=anju_tests::TEST_UNITS as i64 {
        let u = f.store.unit(UnitId(id)).await.unwrap().unwrap();
        if u.next_due_at.is_none_or(|d| d < end) {
            expected.push(id);
        }
    }
    let mut got: Vec<i64> = all.iter().map(|c| c.id.0).collect();
    got.sort();
    assert_eq!(got, expected);
    let in_grid = f
        .store
        .plan_candidates(Some(&[GridId(1)]), start, end)
        .await
        .unwrap();
    assert!(!in_grid.is_empty() && in_grid.iter().all(|c| c.grid_id == GridId(1)));
    assert!(in_grid.iter().all(|c| c.campaign_from.is_none()));

    // A campaign over grid 1 makes every unit of the grid a candidate, once.
    let grid_units = f.store.grid_units(GridId(1), None, 1000).await.unwrap();
    let campaign = f
        .store
        .create_campaign(
            &NewCampaign {
                name: "八查".into(),
                area: CampaignArea::Grid(GridId(1)),
                area_json: json!({ "grid": 1 }),
                starts_on: date,
                ends_on: date + TimeDelta::days(6),
                checklist: vec![CheckItem {
                    code: "wiring".into(),
                    zh: "查电气线路".into(),
                    en: "Wiring".into(),
                }],
                created_by: "supervisor:1".into(),
                at: t0(),
            },
            &Scope::City,
        )
        .await
        .unwrap();
    assert_eq!(campaign.units, grid_units.len() as i64);
    let in_grid = f
        .store
        .plan_candidates(Some(&[GridId(1)]), start, end)
        .await
        .unwrap();
    assert_eq!(in_grid.len(), grid_units.len());
    assert!(in_grid.iter().all(|c| c.campaign_from == Some(start)));
    let checks = f
        .store
        .open_campaign_checklists(grid_units[0].id, t0())
        .await
        .unwrap();
    assert_eq!(checks.len(), 1);
    // Outside the campaign's jurisdiction nothing is created.
    let refused = f
        .store
        .create_campaign(
            &NewCampaign {
                name: "x".into(),
                area: CampaignArea::Grid(GridId(1)),
                area_json: json!({ "grid": 1 }),
                starts_on: date,
                ends_on: date,
                checklist: vec![],
                created_by: "supervisor:9".into(),
                at: t0(),
            },
            &Scope::District("440118".into()),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(f.store.campaigns(&Scope::City).await.unwrap().len(), 1);
    // Another district oversees none of its units: it does not see it.
    let elsewhere = Scope::District("440118".into());
    assert!(f.store.campaigns(&elsewhere).await.unwrap().is_empty());
    assert!(
        f.store
            .campaign(campaign.id, &elsewhere)
            .await
            .unwrap()
            .is_none()
    );

    // A stored plan reads back as planned; storing the day again keeps the routes
    // stored (none are added twice), and replacing it writes them anew.
    let plan = planning::plan_day(date, all, &planners);
    assert_eq!(
        f.store
            .save_plan(&plan, t0(), anju_engine::store::PlanSave::City)
            .await
            .unwrap(),
        plan.routes.len()
    );
    assert_eq!(
        f.store
            .save_plan(&plan, t0(), anju_engine::store::PlanSave::City)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        f.store
            .save_plan(&plan, t0(), anju_engine::store::PlanSave::ReplaceCity)
            .await
            .unwrap(),
        plan.routes.len()
    );
    for r in &plan.routes {
        let stored = f
            .store
            .stored_route(date, r.inspector_id)
            .await
            .unwrap()
            .unwrap();
        let ids: Vec<UnitId> = stored.stops.iter().map(|s| s.unit_id).collect();
        let planned: Vec<UnitId> = r.stops.iter().map(|s| s.unit_id).collect();
        assert_eq!(ids, planned);
        assert!((stored.length_m - r.length_m).abs() < 1e-6);
        assert!(stored.stops.iter().all(|s| s.visited_at.is_none()));
    }
    let backlog = f
        .store
        .stored_backlog(date, &Scope::City)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(backlog.len(), plan.backlog.len());
    assert!(
        f.store
            .stored_route(date + TimeDelta::days(1), InspectorId(1))
            .await
            .unwrap()
            .is_none()
    );
}

backend_tests!(plans_and_campaigns_round_trip);
