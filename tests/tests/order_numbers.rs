//! Document numbers of rectification orders (文书编号) under load: orders issued at once, several to a batch and (on PostgreSQL) in batches committed side by side, get their office's numbers one to n, each once. On both backends.

use serde_json::json;

use anju_tests::{Backend, backend_tests};

/// Orders issued at once by many callers (several per batch, batches side by side on
/// PostgreSQL) get the numbers of their office one to n, each once.
async fn order_numbers_run_without_gaps_or_repeats(backend: Backend) {
    let app = anju_tests::spawn_app(backend).await;
    let mut units = app.inspector_units().await;
    units.truncate(24);
    let mut cases = Vec::new();
    for unit in &units {
        cases.extend(app.inspect(&app.tokens.inspector, *unit, &["wiring"]).await);
    }
    let notify = |id: i64| {
        let app = &app;
        async move {
            app.command(id, &app.tokens.inspector, "notify", json!({}))
                .await
                .expect(200);
        }
    };
    // All at once: the writer batches them.
    futures_util::future::join_all(cases.iter().map(|id| notify(*id))).await;
    let mut by_office: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for id in &cases {
        let case = app
            .store()
            .case(anju_engine::domain::CaseId(*id))
            .await
            .unwrap()
            .unwrap();
        let sheet = app
            .store()
            .order_sheet(anju_engine::domain::CaseId(*id), 1)
            .await
            .unwrap()
            .unwrap();
        let no = sheet.document_no.expect("numbered");
        let n: i64 = no
            .rsplit('第')
            .next()
            .and_then(|t| t.trim_end_matches('号').parse().ok())
            .unwrap_or_else(|| panic!("{no}"));
        by_office
            .entry(case.snapshot.district_code.clone())
            .or_default()
            .push(n);
    }
    assert!(!by_office.is_empty());
    for (office, mut numbers) in by_office {
        numbers.sort();
        let expected: Vec<i64> = (1..=numbers.len() as i64).collect();
        assert_eq!(numbers, expected, "office {office}");
    }
}

backend_tests!(order_numbers_run_without_gaps_or_repeats);
