//! Who gets which page: every page and evidence address of one landlord's case and unit, fetched with other people's sessions, is the page of something that does not exist; the owner and the inspector get it, and the unit's page says who answers for the unit. On both backends.

use reqwest::StatusCode;

use anju_tests::{Backend, backend_tests};

mod page_support;
use page_support::*;

/// Every page and evidence address of one landlord's unit and case, fetched with
/// another landlord's or another department's session, is the same page as one of the
/// same kind that does not exist; the owner and the inspector get the real one.
async fn other_sessions_get_the_page_of_nothing(backend: Backend) {
    let app = anju_tests::spawn_app(backend).await;
    let client = browser();
    let unit = app.unit_of(1);
    let case = app.ordered(unit, "wiring", "拆除飞线").await;
    let photo = app.case(case, &app.tokens.inspector).await["evidence"][0]["reference"]
        .as_str()
        .expect("the inspection's photo")
        .to_string();
    let missing_photo = format!("ev_{}", "0".repeat(32));
    let pages = [
        (format!("/cases/{case}"), "/cases/99999999".to_string()),
        (
            format!("/cases/{case}/order"),
            "/cases/99999999/order".to_string(),
        ),
        (format!("/units/{unit}"), "/units/99999999".to_string()),
        (
            format!("/evidence/{photo}"),
            format!("/evidence/{missing_photo}"),
        ),
        (
            format!("/evidence/{photo}/thumbnail"),
            format!("/evidence/{missing_photo}/thumbnail"),
        ),
    ];
    let cookie = |token: &str| format!("anju_session={token}");
    for (path, nothing) in &pages {
        for (who, token) in [
            ("landlord 2", &app.tokens.other_landlord),
            ("department 2", &app.tokens.other_fire),
            ("department 1, not referred", &app.tokens.fire),
        ] {
            let (status, body, _) = get(&client, &app, path, Some(&cookie(token))).await;
            let (none_status, none_body, _) =
                get(&client, &app, nothing, Some(&cookie(token))).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path} for {who}");
            assert_eq!(
                (status, &body),
                (none_status, &none_body),
                "{path} for {who}"
            );
        }
        for token in [&app.tokens.landlord, &app.tokens.inspector] {
            let (status, _, _) = get(&client, &app, path, Some(&cookie(token))).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
    }
    // The unit's page says who answers for it and whether their agreement is in force.
    let (_, unit_page, _) = get(
        &client,
        &app,
        &format!("/units/{unit}"),
        Some(&cookie(&app.tokens.landlord)),
    )
    .await;
    assert!(
        unit_page.contains("责任 / Responsibility") && unit_page.contains("治安消防安全责任书"),
        "{unit_page}"
    );
    // The inspection form is an inspector's; for anyone else, no such page.
    let form = format!("/units/{unit}/inspect");
    for token in [
        &app.tokens.other_landlord,
        &app.tokens.other_fire,
        &app.tokens.other_inspector,
    ] {
        let (status, body, _) = get(&client, &app, &form, Some(&cookie(token))).await;
        let (_, none_body, _) = get(
            &client,
            &app,
            "/units/99999999/inspect",
            Some(&cookie(token)),
        )
        .await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, none_body), "{form}");
    }
}

backend_tests!(other_sessions_get_the_page_of_nothing);
