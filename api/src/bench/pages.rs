//! `anju bench-pages`: the pages people use, on a seeded city of a million units — the inspector's plan page and a case page, each fetched over loopback from the real service (in this process) with a session cookie, as a phone would; the time per page at p50, p90 and p99.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;

use anju_engine::auth::Principal;
use anju_engine::domain::{InspectorId, Point, Role};
use anju_engine::machine::Command;
use anju_engine::model::Idempotent;
use anju_engine::outbox::LogChannel;
use anju_engine::runtime::{self, Finding, InspectionInput};
use anju_engine::time::{SharedClock, SystemClock, china_time};

use crate::app::{Application, Settings};

#[derive(Debug, Args)]
pub struct PagesBenchArgs {
    /// Units in the city to seed (when --database-url is not given).
    #[arg(long, default_value_t = 1_000_000)]
    pub units: u64,
    /// An already seeded database to measure instead of seeding a scratch SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Requests timed per page.
    #[arg(long, default_value_t = 2_000)]
    pub requests: usize,
    /// Directory for the scratch SQLite file (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the scratch database (its path is printed) for another run.
    #[arg(long)]
    pub keep: bool,
}

/// Cases opened (and ordered) on the inspector's first stops, whose pages are fetched.
const CASES: usize = 20;

pub async fn run(args: PagesBenchArgs) -> anyhow::Result<()> {
    let (url, scratch) = crate::bench::city::open_city(
        args.database_url.as_deref(),
        args.dir.as_deref(),
        args.units,
        "pages",
    )
    .await?;
    let result = measure(&url, &args).await;
    crate::bench::city::close_city(scratch, args.keep);
    result
}

async fn measure(url: &str, args: &PagesBenchArgs) -> anyhow::Result<()> {
    // Evidence is kept in memory (the default), as a scratch city's would be lost anyway.
    let config = runtime::Config::default();
    let started = Instant::now();
    let app = Application::build(
        Settings {
            database_url: url.to_string(),
            bind: "127.0.0.1:0".parse()?,
            workers: false,
            limits: crate::http::serve::Limits::default(),
            tls: None,
            map: Default::default(),
            runtime: config,
        },
        Arc::new(SystemClock) as SharedClock,
        "system",
        vec![Arc::new(LogChannel)],
        |_| axum::Router::new(),
    )
    .await?;
    println!(
        "service up in {:.1} s ({} units indexed)",
        started.elapsed().as_secs_f64(),
        app.runtime.indexed_units()
    );
    let rt = &app.runtime;
    let inspector = InspectorId(1);
    let token = rt.create_token(Role::Inspector, 1, Some("bench")).await?;
    let me = rt
        .principal(Role::Inspector, 1)
        .await?
        .context("inspector 1 exists")?;
    let today = rt.now().with_timezone(&china_time()).date_naive();
    let plan = rt.inspector_plan(&me, inspector, today).await?;
    let stops = plan.route.stops.clone();
    anyhow::ensure!(!stops.is_empty(), "inspector 1 has nothing planned today");
    let cases = open_cases(&app, &me, &stops).await?;
    println!(
        "inspector 1: {} stops today, {} cases opened and ordered on them",
        stops.len(),
        cases.len()
    );

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()?;
    let cookie = format!("anju_session={token}");
    let base = format!("http://{}", app.addr);
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let paths: Vec<(&str, Vec<String>)> = vec![
        ("/plan", vec!["/plan".to_string()]),
        (
            "/cases/{id}",
            cases.iter().map(|id| format!("/cases/{id}")).collect(),
        ),
    ];
    for (name, list) in paths {
        let mut times = Vec::with_capacity(args.requests);
        // A warm-up round, not timed.
        for path in list.iter().cycle().take(50) {
            fetch(&client, &base, path, &cookie).await?;
        }
        for path in list.iter().cycle().take(args.requests) {
            let t = Instant::now();
            fetch(&client, &base, path, &cookie).await?;
            times.push(t.elapsed());
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            ms(crate::bench::city::percentile(&times, 0.5)),
            ms(crate::bench::city::percentile(&times, 0.9)),
            ms(crate::bench::city::percentile(&times, 0.99)),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
        );
    }
    app.shutdown().await;
    Ok(())
}

/// Fetches a page; an answer other than 200 is an error of the benchmark.
async fn fetch(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    cookie: &str,
) -> anyhow::Result<()> {
    let r = client
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
    let body = r.bytes().await?;
    anyhow::ensure!(body.len() > 500, "{path}: a page of {} bytes", body.len());
    Ok(())
}

/// Records an inspection with a photo on each of the first stops (one wiring hazard)
/// and issues its order, so that the case pages carry a history, a timer, an order and
/// evidence.
async fn open_cases(
    app: &Application,
    me: &Principal,
    stops: &[anju_engine::model::StoredStop],
) -> anyhow::Result<Vec<i64>> {
    let rt = &app.runtime;
    let mut ids = Vec::new();
    for stop in stops.iter().take(CASES) {
        let photo = rt
            .upload_evidence(
                me,
                anju_engine::evidence::EvidenceKind::Photo,
                Some("image/jpeg"),
                "site.jpg",
                crate::bench::BENCH_PHOTO.to_vec(),
            )
            .await?;
        let input = InspectionInput {
            unit_id: stop.unit_id,
            point: Some(Point::parse(stop.lon, stop.lat, "point")?),
            observed_at: None,
            crs: anju_engine::spatial::crs::Crs::Wgs84,
            checklist: None,
            campaign_checks: None,
            note: Some("楼道飞线 / loose wiring in the stairwell".into()),
            findings: vec![Finding {
                category: "wiring".into(),
                severity: None,
                note: None,
                evidence: vec![photo.id],
            }],
            outcome: Default::default(),
        };
        let Idempotent::Created(outcome) =
            rt.record_inspection(me, input, None, |_| json!({})).await?
        else {
            continue;
        };
        for case in outcome.cases {
            let notify = Command {
                name: "notify".into(),
                data: serde_json::Map::new(),
                reason: None,
            };
            rt.execute(me, case.id, notify, None).await?;
            ids.push(case.id.0);
        }
    }
    anyhow::ensure!(!ids.is_empty(), "no case was opened");
    Ok(ids)
}
