//! The store conformance suite, lists: every scope and filter of the case list, on both backends.

use chrono::TimeDelta;
use serde_json::json;

use anju_engine::auth::Scope;
use anju_engine::domain::{DepartmentId, GridId, UnitId};
use anju_engine::store::CaseFilter;
use anju_tests::{Backend, backend_tests, t0};

mod store_support;
use store_support::*;

async fn lists_respect_every_scope_and_filter(backend: Backend) {
    let f = fixture(backend).await;
    let near = f.open(1, &["wiring", "sanitation"]).await;
    let far_unit = anju_tests::TEST_UNITS as i64;
    let far = f.open(far_unit, &["wiring"]).await;
    let unit1 = f.store.unit(UnitId(1)).await.unwrap().unwrap();
    let far_u = f.store.unit(UnitId(far_unit)).await.unwrap().unwrap();
    f.apply(
        &[
            (near[0], "notify", json!({ "deadline_hours": 1 })),
            (far[0], "refer", json!({})),
        ]
        .map(|(a, b, c)| (a, b, c, None)),
        t0(),
    )
    .await;
    let list = |filter: CaseFilter, scope: Scope| {
        let store = f.store.clone();
        async move {
            store
                .list_cases(
                    &CaseFilter {
                        limit: if filter.limit == 0 { 100 } else { filter.limit },
                        ..filter
                    },
                    &scope,
                )
                .await
                .unwrap()
                .iter()
                .map(|c| c.snapshot.id)
                .collect::<Vec<_>>()
        }
    };
    let all = [far[0], near[1], near[0]];
    assert_eq!(list(CaseFilter::default(), Scope::City).await, all);
    assert_eq!(
        list(
            CaseFilter::default(),
            Scope::District(unit1.district_code.clone())
        )
        .await,
        [near[1], near[0]]
    );
    assert_eq!(
        list(
            CaseFilter::default(),
            Scope::Street(far_u.street_id.unwrap())
        )
        .await,
        [far[0]]
    );
    assert_eq!(
        list(
            CaseFilter::default(),
            Scope::Grids([unit1.grid_id.unwrap(), GridId(999)].into())
        )
        .await,
        [near[1], near[0]]
    );
    assert!(
        list(CaseFilter::default(), Scope::Grids(Default::default()))
            .await
            .is_empty()
    );
    assert_eq!(
        list(CaseFilter::default(), Scope::Party(unit1.party_id.unwrap())).await,
        [near[1], near[0]]
    );
    let far_case = f.store.case(far[0]).await.unwrap().unwrap();
    let dept = far_case.snapshot.department_id.expect("referred");
    assert_eq!(
        list(CaseFilter::default(), Scope::Department(dept)).await,
        [far[0]]
    );
    assert!(
        list(CaseFilter::default(), Scope::Department(DepartmentId(999)))
            .await
            .is_empty()
    );
    assert_eq!(
        list(
            CaseFilter {
                state: Some("referred".into()),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [far[0]]
    );
    assert_eq!(
        list(
            CaseFilter {
                category: Some("sanitation".into()),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [near[1]]
    );
    assert_eq!(
        list(
            CaseFilter {
                unit_id: Some(UnitId(far_unit)),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [far[0]]
    );
    assert_eq!(
        list(
            CaseFilter {
                department_id: Some(dept),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [far[0]]
    );
    assert_eq!(
        list(
            CaseFilter {
                before: Some(far[0]),
                limit: 1,
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [near[1]]
    );
    let overdue = |wanted, hours| anju_engine::store::Overdue {
        wanted,
        states: vec!["overdue".into()],
        deadline_states: vec!["notified".into(), "acknowledged".into()],
        now: t0() + TimeDelta::hours(hours),
    };
    assert!(
        list(
            CaseFilter {
                overdue: Some(overdue(true, 0)),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await
        .is_empty()
    );
    assert_eq!(
        list(
            CaseFilter {
                overdue: Some(overdue(true, 2)),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [near[0]]
    );
    assert_eq!(
        list(
            CaseFilter {
                overdue: Some(overdue(false, 2)),
                ..CaseFilter::default()
            },
            Scope::City
        )
        .await,
        [far[0], near[1]]
    );
}

/// The case lists cut by scope in SQL answer exactly what the policy lets each caller
/// read of a single case (`policy::reads_case`): for the city, every district, street,
/// grid, party and department of a spread of cases, some of them referred.
async fn the_case_lists_agree_with_the_policy(backend: Backend) {
    use std::collections::BTreeSet;

    use anju_engine::auth::Principal;
    use anju_engine::domain::{CaseId, DepartmentId, Role};
    use anju_engine::policy::reads_case;
    use serde_json::Value;

    let f = fixture(backend).await;
    let mut ids = Vec::new();
    for unit in (1..=anju_tests::TEST_UNITS as i64).step_by(17) {
        ids.extend(f.open(unit, &["wiring"]).await);
    }
    let referred: Vec<(CaseId, &str, Value, Option<i64>)> = ids
        .iter()
        .step_by(3)
        .map(|id| (*id, "refer", json!({}), None))
        .collect();
    for r in f.apply(&referred, t0()).await {
        r.unwrap();
    }
    let everything = CaseFilter {
        limit: 1000,
        ..CaseFilter::default()
    };
    let cases = f.store.list_cases(&everything, &Scope::City).await.unwrap();
    assert_eq!(cases.len(), ids.len());
    let mut referrals = std::collections::BTreeMap::new();
    for c in &cases {
        let to: Vec<DepartmentId> = f
            .store
            .case_referrals(c.snapshot.id)
            .await
            .unwrap()
            .iter()
            .map(|r| r.department_id)
            .collect();
        referrals.insert(c.snapshot.id, to);
    }
    let mut scopes = vec![(Role::Supervisor, Scope::City)];
    for c in &cases {
        let s = &c.snapshot;
        scopes.push((Role::Supervisor, Scope::District(s.district_code.clone())));
        if let Some(street) = s.street_id {
            scopes.push((Role::Supervisor, Scope::Street(street)));
        }
        if let Some(grid) = s.grid_id {
            scopes.push((Role::Inspector, Scope::Grids([grid].into())));
        }
        if let Some(party) = s.party_id {
            scopes.push((Role::Landlord, Scope::Party(party)));
        }
    }
    for d in referrals.values().flatten() {
        scopes.push((Role::Department, Scope::Department(*d)));
    }
    scopes.push((Role::Department, Scope::Department(DepartmentId(999_999))));
    scopes.dedup();
    let (mut some, mut not_all) = (0, 0);
    for (role, scope) in scopes {
        let principal = Principal {
            role,
            subject: 1,
            scope: scope.clone(),
            account: None,
        };
        let listed: BTreeSet<CaseId> = f
            .store
            .list_cases(&everything, &scope)
            .await
            .unwrap()
            .iter()
            .map(|c| c.snapshot.id)
            .collect();
        let allowed: BTreeSet<CaseId> = cases
            .iter()
            .filter(|c| reads_case(&principal, c.snapshot.place(), &referrals[&c.snapshot.id]))
            .map(|c| c.snapshot.id)
            .collect();
        assert_eq!(listed, allowed, "{scope:?}");
        some += usize::from(!listed.is_empty());
        not_all += usize::from(listed.len() < cases.len());
    }
    assert!(some > 10 && not_all > 10, "{some} {not_all}");
}

backend_tests!(
    lists_respect_every_scope_and_filter,
    the_case_lists_agree_with_the_policy,
);
