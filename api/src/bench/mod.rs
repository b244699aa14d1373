//! `anju bench`: durable case transitions per second at 1, 8 and 64 clients with p50/p99 latency, and how fast 100,000 due timers fire, on SQLite and PostgreSQL.

pub mod city;
pub mod http;
pub mod outbox;
pub mod pages;
pub mod rules;
pub mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{TimeDelta, Utc};
use clap::{Args, ValueEnum};
use serde_json::{Map, json};

use anju_engine::auth::{Principal, Scope};
use anju_engine::domain::{CaseId, PartyId, Point, Role, UnitId};
use anju_engine::machine::{CaseSnapshot, Command};
use anju_engine::runtime::{self, Finding, InspectionInput, Runtime};
use anju_engine::store::{CaseFilter, Idempotent, SharedStore, postgres};
use anju_engine::time::{Clock, ManualClock, SharedClock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Sqlite,
    Postgres,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Backends to measure.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    pub backends: Vec<BackendArg>,
    /// A PostgreSQL URL with the right to create databases; a scratch database is made
    /// and dropped on its server. Default: the local server's Unix socket if there is
    /// one, else 127.0.0.1:5432.
    #[arg(long, env = "ANJU_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// Concurrent clients to measure, each issuing commands one after another.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub clients: Vec<usize>,
    /// Seconds to run each concurrency level.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Due timers to fire.
    #[arg(long, default_value_t = 100_000)]
    pub timers: u64,
    /// Rectification orders to e-mail through the outbox worker to an SMTP server on
    /// loopback, after the other phases (0: none).
    #[arg(long, default_value_t = 0)]
    pub outbox: u64,
    /// Directory for the scratch SQLite file (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Drive the transitions over HTTP against a real `anju serve` process on loopback
    /// (one connection per client) instead of in process; timers and rules are not run.
    #[arg(long)]
    pub http: bool,
}

/// Cases each client cycles through, so that clients never contend for one case.
pub(crate) const CASES_PER_CLIENT: usize = 8;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "anju bench: {} cores, {}s per level, clients {:?}, {} timers",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.seconds,
        args.clients,
        args.timers
    );
    for backend in &args.backends {
        match backend {
            BackendArg::Sqlite => {
                let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
                let path = dir.join(format!("anju-bench-{}.db", std::process::id()));
                remove_sqlite(&path);
                let url = path.display().to_string();
                let result = if args.http {
                    crate::bench::http::bench_backend("sqlite", &url, &args).await
                } else {
                    bench_backend("sqlite", &url, &args).await
                };
                remove_sqlite(&path);
                result?;
            }
            BackendArg::Postgres => {
                let admin = args.postgres.clone().unwrap_or_else(default_postgres);
                let name = format!("anju_bench_{}", std::process::id());
                let url = postgres::create_database(&admin, &name)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot create a scratch database on {}",
                            crate::app::redact(&admin)
                        )
                    })?;
                let transport = if admin.contains("host=/") {
                    "Unix socket"
                } else {
                    "TCP"
                };
                let label = format!("postgres ({transport})");
                let result = if args.http {
                    crate::bench::http::bench_backend(&label, &url, &args).await
                } else {
                    bench_backend(&label, &url, &args).await
                };
                postgres::drop_database(&admin, &name).await.ok();
                result?;
            }
        }
    }
    Ok(())
}

/// The local server's Unix socket when it exists, else TCP on loopback.
fn default_postgres() -> String {
    const SOCKET_DIR: &str = "/var/run/postgresql";
    if std::path::Path::new(SOCKET_DIR)
        .join(".s.PGSQL.5432")
        .exists()
    {
        format!("postgres://postgres@localhost/postgres?host={SOCKET_DIR}")
    } else {
        "postgres://postgres@127.0.0.1:5432/postgres".into()
    }
}

fn remove_sqlite(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The cycle each client drives a case through once it has an order: acknowledge,
/// report the fix, fail the re-inspection (a new order). Every step schedules or
/// cancels a timer and writes an outbox message.
pub(crate) fn next_command(state: &str, photo: &str) -> (&'static str, serde_json::Value) {
    match state {
        "discovered" => ("notify", json!({})),
        "notified" => ("acknowledge", json!({})),
        "acknowledged" => ("report_fix", json!({ "evidence": [photo] })),
        _ => ("reinspect", json!({ "passed": false })),
    }
}

fn principal_for(command: &str, case: &anju_engine::machine::CaseSnapshot) -> Principal {
    match command {
        "acknowledge" | "report_fix" => Principal {
            role: Role::Landlord,
            subject: case.party_id.map_or(0, |p| p.0),
            scope: Scope::Party(case.party_id.unwrap_or(PartyId(0))),
            account: None,
        },
        _ => Principal {
            role: Role::Inspector,
            subject: 1,
            scope: Scope::Grids(case.grid_id.into_iter().collect()),
            account: None,
        },
    }
}

async fn bench_backend(name: &str, url: &str, args: &BenchArgs) -> anyhow::Result<()> {
    println!("\n== {name} ==");
    let store = crate::app::open_store(url).await?;
    // Enough units with a responsible party for the timer cases, one finding of each
    // category each.
    let cases = args.timers.max(args.outbox);
    let units = 2_000u64.max(cases / CATEGORIES as u64 * 11 / 10 + 200);
    let started = Instant::now();
    crate::cli::seed(&store, units, 7, chrono::Utc::now()).await?;
    println!(
        "seeded {units} units in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let clock = ManualClock::new(Utc::now());
    let runtime = Runtime::start(
        store.clone(),
        Arc::new(clock.clone()) as SharedClock,
        runtime::Config::default(),
    )
    .await?;
    let city = Principal {
        role: Role::Supervisor,
        subject: 1,
        scope: Scope::City,
        account: None,
    };

    // Cases for the clients: one finding on each of the first units that have a party.
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    let case_ids: Vec<CaseId> = open_cases(
        &runtime,
        &city,
        &store,
        max_clients * CASES_PER_CLIENT,
        Some("wiring"),
    )
    .await?
    .iter()
    .map(|c| c.id)
    .collect();

    println!(
        "{:>8} {:>14} {:>10} {:>10} {:>10}",
        "clients", "transitions/s", "p50 ms", "p99 ms", "max ms"
    );
    for &clients in &args.clients {
        transitions_level(&runtime, &case_ids, clients, args.seconds).await?;
    }

    // Timers: open cases, issue their orders (deadlines from 24 hours to 15 days), move
    // the clock past them and fire them all.
    if args.timers > 0 {
        bench_timers(&runtime, &store, &clock, &city, args.timers).await?;

        bench_rules(&runtime, &store).await?;
    }
    if args.outbox > 0 {
        outbox::bench_outbox(&runtime, &clock, &city, args.outbox).await?;
    }
    runtime.shutdown().await;
    Ok(())
}
/// One level of the transitions benchmark: `clients` clients, each cycling its own
/// cases through acknowledge, report fix and a failed re-inspection for `seconds`.
async fn transitions_level(
    runtime: &Runtime,
    case_ids: &[CaseId],
    clients: usize,
    seconds: u64,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let metrics = runtime.metrics();
    let (batches0, batch_sum0) = (
        metrics.batch_size.count(),
        metrics.batch_size.mean() * metrics.batch_size.count() as f64,
    );
    let commit_sum0 = metrics.commit_seconds.mean() * metrics.commit_seconds.count() as f64;
    let mut tasks = Vec::new();
    let begin = Instant::now();
    for c in 0..clients {
        let rt = runtime.clone();
        let stop = stop.clone();
        let mine: Vec<CaseId> = case_ids[c * CASES_PER_CLIENT..(c + 1) * CASES_PER_CLIENT].to_vec();
        tasks.push(tokio::spawn(async move {
            let photo = case_photo(rt.store(), mine[0]).await?;
            // A client knows each case's state and version from the last answer,
            // as a real client does.
            let mut known = Vec::with_capacity(mine.len());
            for id in &mine {
                known.push(
                    rt.store()
                        .case(*id)
                        .await?
                        .context("bench case vanished")?
                        .snapshot,
                );
            }
            let mut latencies = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let case = &mut known[i % mine.len()];
                i += 1;
                let (command, data) = next_command(&case.state, &photo);
                let principal = principal_for(command, case);
                let cmd = Command {
                    name: command.into(),
                    data: data.as_object().cloned().unwrap_or_else(Map::new),
                    reason: None,
                };
                let t = Instant::now();
                *case = rt
                    .execute(&principal, case.id, cmd, Some(case.version))
                    .await?
                    .case
                    .snapshot;
                latencies.push(t.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = begin.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let batches = (metrics.batch_size.count() - batches0).max(1) as f64;
    let batch_sum = metrics.batch_size.mean() * metrics.batch_size.count() as f64 - batch_sum0;
    let commit_sum =
        metrics.commit_seconds.mean() * metrics.commit_seconds.count() as f64 - commit_sum0;
    println!(
        "{:>8} {:>14.0} {:>10.2} {:>10.2} {:>10.2} {:>12.1} {:>14.2}",
        clients,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        batch_sum / batches,
        commit_sum / batches * 1e3
    );
    Ok(())
}

/// Timers: opens `n` cases, issues their orders (deadlines from 24 hours to 15 days),
/// moves the clock past them and fires them all.
/// Issues the cases' rectification orders from 64 clients at once.
pub(crate) async fn issue_orders(
    runtime: &Runtime,
    cases: Vec<anju_engine::machine::CaseSnapshot>,
) -> anyhow::Result<()> {
    let notify = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for case in cases {
        let rt = runtime.clone();
        let permit = notify.clone().acquire_owned().await?;
        tasks.spawn(async move {
            let _permit = permit;
            let principal = principal_for("notify", &case);
            let cmd = Command {
                name: "notify".into(),
                ..Command::default()
            };
            rt.execute(&principal, case.id, cmd, Some(case.version))
                .await?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

async fn bench_timers(
    runtime: &Runtime,
    store: &SharedStore,
    clock: &ManualClock,
    city: &Principal,
    n: u64,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let cases = open_cases(runtime, city, store, n as usize, None).await?;
    let opened = started.elapsed().as_secs_f64();
    let started = Instant::now();
    issue_orders(runtime, cases).await?;
    println!(
        "opened {} cases in {opened:.1}s and issued their orders in {:.1}s ({:.0} transitions/s at 64 clients)",
        n,
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    // The longest deadline of the taxonomy is 15 days.
    clock.advance(TimeDelta::days(16));
    let due = store.timer_backlog(clock.now()).await?.due;
    let started = Instant::now();
    let mut fired = 0;
    loop {
        let tick = runtime.fire_due_timers().await?;
        fired += tick.fired;
        if tick.claimed == 0 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fired {fired} of {due} due timers in {secs:.1}s ({:.0} timers/s)",
        fired as f64 / secs
    );
    let overdue = store
        .list_cases(
            &CaseFilter {
                state: Some("overdue".into()),
                limit: 1,
                ..CaseFilter::default()
            },
            &Scope::City,
        )
        .await?;
    anyhow::ensure!(!overdue.is_empty(), "the fired timers left no overdue case");
    Ok(())
}

/// The escalation rules on every overdue event the timers raised (the rule worker's
/// work), with the cost of a claim at the start and the end of the drain.
async fn bench_rules(runtime: &Runtime, store: &SharedStore) -> anyhow::Result<()> {
    // The escalation rules on every overdue event the timers raised (the rule
    // worker's work): e-bike and three-in-one cases go to the fire brigade, repeat
    // offenders are proposed for the blacklist.
    // Most of these jobs sit behind others of their case (the transitions above
    // failed re-inspections on a few hundred cases over and over): claiming must
    // cost the same with a long backlog as with a short one.
    let pending = store.pending_rule_jobs().await?;
    let started = Instant::now();
    let mut done = anju_engine::escalation::RuleTick::default();
    // (jobs left before the step, seconds per claimed job) of every step.
    let mut claims: Vec<(i64, f64, usize)> = Vec::new();
    loop {
        let left = pending - done.jobs as i64;
        let tick = runtime.run_rule_jobs().await?;
        if tick.jobs == 0 {
            break;
        }
        claims.push((left, tick.claim_seconds, tick.jobs));
        done.add(&tick);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "rules ran on {} of {pending} pending case events in {secs:.1}s ({:.0} events/s over \
         the whole drain): {} actions applied ({:.0}/s), {} refused, {} rule failures",
        done.jobs,
        done.jobs as f64 / secs,
        done.applied,
        done.applied as f64 / secs,
        done.refused,
        done.failures
    );
    let claim_ms = |from: i64, to: i64| {
        let (n, s, j) = claims
            .iter()
            .filter(|(left, _, _)| (from..to).contains(left))
            .fold((0usize, 0.0, 0usize), |(n, s, j), (_, secs, jobs)| {
                (n + 1, s + secs, j + jobs)
            });
        (n > 0).then(|| (s / n as f64 * 1e3, j / n.max(1)))
    };
    let long = claim_ms(pending * 9 / 10, pending + 1);
    let short = claim_ms(0, 1_001);
    if let (Some((long_ms, long_jobs)), Some((short_ms, short_jobs))) = (long, short) {
        println!(
            "claiming rule jobs: {long_ms:.2} ms a claim ({long_jobs} jobs) with over {} pending, \
             {short_ms:.2} ms ({short_jobs} jobs) with 1,000 or fewer",
            pending * 9 / 10
        );
    }
    Ok(())
}

/// Categories in the taxonomy: one inspection opens at most one case of each.
const CATEGORIES: usize = 14;

/// The photo the bench's inspections and fix reports reference (16 × 12 pixels).
pub(crate) const BENCH_PHOTO: &[u8] = include_bytes!("photo.jpg");

/// The photo a bench case's inspection referenced, which its landlord references when
/// reporting the fix.
pub(crate) async fn case_photo(store: &SharedStore, id: CaseId) -> anyhow::Result<String> {
    store
        .case(id)
        .await?
        .and_then(|c| c.evidence.first().cloned())
        .context("a bench case has its inspection's photo")
}

/// Opens `n` cases on units that have a responsible party: one of `category` on each
/// unit, or (with `None`) one of every category on each unit.
pub(crate) async fn open_cases(
    runtime: &Runtime,
    city: &Principal,
    store: &SharedStore,
    n: usize,
    category: Option<&str>,
) -> anyhow::Result<Vec<CaseSnapshot>> {
    let all: Vec<String> = runtime
        .taxonomy()
        .categories
        .iter()
        .map(|c| c.code.clone())
        .collect();
    // One real photo, uploaded once: every inspection references it, so that each
    // unit's landlord may reference it in turn when reporting the fix.
    let photo = runtime
        .upload_evidence(
            city,
            anju_engine::evidence::EvidenceKind::Photo,
            Some("image/jpeg"),
            "bench.jpg",
            BENCH_PHOTO.to_vec(),
        )
        .await?
        .id;
    let mut ids = Vec::with_capacity(n);
    let mut unit = 0i64;
    while ids.len() < n {
        unit += 1;
        let Some(u) = store.unit(UnitId(unit)).await? else {
            anyhow::bail!("ran out of units after {} cases", ids.len());
        };
        if u.party_id.is_none() {
            continue;
        }
        let categories: Vec<String> = match category {
            Some(c) => vec![c.to_string()],
            None => all.iter().take(n - ids.len()).cloned().collect(),
        };
        let findings = categories
            .into_iter()
            .map(|category| Finding {
                category,
                severity: None,
                note: None,
                evidence: vec![photo.clone()],
            })
            .collect();
        let input = InspectionInput {
            unit_id: u.id,
            point: Some(Point::parse(u.lon, u.lat, "point")?),
            observed_at: None,
            crs: anju_engine::spatial::crs::Crs::Wgs84,
            checklist: None,
            campaign_checks: None,
            note: None,
            findings,
            outcome: Default::default(),
        };
        match runtime
            .record_inspection(city, input, None, |_| json!({}))
            .await?
        {
            Idempotent::Created(o) => ids.extend(o.cases),
            Idempotent::Replayed(_) => unreachable!("no idempotency key was given"),
        }
    }
    Ok(ids)
}
