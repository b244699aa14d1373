//! `anju` for black-box tests: the real command line, with a manual clock set from `ANJU_TEST_CLOCK_START` and test-only routes to move it and step the timer, rule and calendar workers. Only this test crate builds it; the production binary has no way to install a manual clock.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use chrono::DateTime;
use serde_json::{Value, json};

use anju_api::cli::{Hooks, main_with};
use anju_engine::runtime::Runtime;
use anju_engine::time::ManualClock;

fn main() -> std::process::ExitCode {
    let start = std::env::var("ANJU_TEST_CLOCK_START")
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.to_utc());
    let Some(start) = start else {
        eprintln!("anju-test-server: set ANJU_TEST_CLOCK_START to an RFC 3339 time");
        return std::process::ExitCode::FAILURE;
    };
    let clock = ManualClock::new(start);
    let routes_clock = clock.clone();
    main_with(Hooks {
        clock: Arc::new(clock),
        clock_kind: "manual",
        extra: Box::new(move |runtime| test_routes(runtime, routes_clock)),
    })
}

#[derive(Clone)]
struct TestState {
    runtime: Runtime,
    clock: ManualClock,
}

fn test_routes(runtime: Runtime, clock: ManualClock) -> Router {
    Router::new()
        .route("/__test/clock", post(set_clock))
        .route("/__test/timers/tick", post(tick))
        .route("/__test/rules/tick", post(rules_tick))
        .route("/__test/rules/sweep", post(sweep))
        .route("/__test/calendar/tick", post(calendar_tick))
        .with_state(TestState { runtime, clock })
}

/// Sets the clock to `now` (RFC 3339); a `now` that does not parse is refused, and the
/// clock stays.
async fn set_clock(
    State(s): State<TestState>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    match body["now"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
    {
        Some(now) => {
            s.clock.set(now.to_utc());
            (StatusCode::OK, Json(json!({ "now": s.runtime.now() })))
        }
        None => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "status": 422,
                "field": "now",
                "detail": "an RFC 3339 time, such as 2026-03-02T09:00:00+08:00",
                "now": s.runtime.now(),
            })),
        ),
    }
}

/// Runs the daily rule sweep of the clock's China day now (once a day, as in
/// `anju serve`).
async fn sweep(State(s): State<TestState>) -> Json<Value> {
    let day = s
        .runtime
        .now()
        .with_timezone(&anju_engine::time::china_time())
        .date_naive()
        .to_string();
    match s.runtime.sweep_and_queue(&day).await {
        Ok(Some((report, queued))) => {
            Json(json!({ "day": day, "cases": report.cases, "queued": queued }))
        }
        Ok(None) => Json(json!({ "day": day, "already": true })),
        Err(e) => Json(json!({ "error": e.to_string() })),
    }
}

async fn rules_tick(State(s): State<TestState>) -> Json<Value> {
    match s.runtime.run_rule_jobs().await {
        Ok(t) => Json(json!(t)),
        Err(e) => Json(json!({ "error": e.to_string() })),
    }
}

/// One step of the calendar worker: a newer version taken up, timers re-dated, the
/// end warned of.
async fn calendar_tick(State(s): State<TestState>) -> Json<Value> {
    match s.runtime.calendar_step().await {
        Ok(t) => Json(json!(t)),
        Err(e) => Json(json!({ "error": e.to_string() })),
    }
}

async fn tick(State(s): State<TestState>) -> Json<Value> {
    match s.runtime.fire_due_timers().await {
        Ok(t) => Json(json!(t)),
        Err(e) => Json(json!({ "error": e.to_string() })),
    }
}
