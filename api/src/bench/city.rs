//! `anju bench-city`: a seeded city of millions of units — the unit index loaded from the database, 500 m radius queries, every unit assigned to its grid, the whole city's day planned, and the resident memory of `anju serve` on it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use anju_engine::domain::Point;
use anju_engine::runtime::{self, Runtime};
use anju_engine::spatial::grids::{self, GridImportReport};
use anju_engine::spatial::index::UnitIndex;
use anju_engine::time::china_time;
use anju_engine::time::{SharedClock, SystemClock};

#[derive(Debug, Args)]
pub struct CityBenchArgs {
    /// Units in the city to seed (when --database-url is not given).
    #[arg(long, default_value_t = 5_000_000)]
    pub units: u64,
    /// An already seeded database to measure instead of seeding a scratch SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Radius queries to time.
    #[arg(long, default_value_t = 20_000)]
    pub queries: usize,
    /// Directory for the scratch SQLite file (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the scratch database (its path is printed) for another run.
    #[arg(long)]
    pub keep: bool,
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// A process's resident memory now and at its peak, in MiB, from /proc.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

pub async fn run(args: CityBenchArgs) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("anju bench-city: {cores} cores");
    let (url, scratch) = open_city(
        args.database_url.as_deref(),
        args.dir.as_deref(),
        args.units,
        "city",
    )
    .await?;
    let store = crate::app::open_store(&url).await?;

    // The unit index, as `anju serve` builds it at start-up.
    let started = Instant::now();
    let points = store.unit_points().await?;
    let load = started.elapsed();
    let count = points.len();
    let centres: Vec<(f64, f64)> = {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        (0..args.queries)
            .map(|_| points[rng.random_range(0..count)].lon_lat())
            .collect()
    };
    let started = Instant::now();
    let index = tokio::task::spawn_blocking(move || UnitIndex::bulk(points)).await?;
    let build = started.elapsed();
    println!(
        "unit index: {count} units read in {:.1} s, R-tree built in {:.1} s ({:.1} s in all; target < 15 s)",
        load.as_secs_f64(),
        build.as_secs_f64(),
        (load + build).as_secs_f64()
    );

    // Radius queries around units' own positions (where the units are).
    let (mut times, mut unordered, mut found) = tokio::task::spawn_blocking(move || {
        let mut times = Vec::with_capacity(centres.len());
        let mut unordered = Vec::with_capacity(centres.len());
        let mut found = Vec::with_capacity(centres.len());
        let centres: Vec<Point> = centres
            .into_iter()
            .map(|(lon, lat)| Point::parse(lon, lat, "centre").expect("a unit's point is valid"))
            .collect();
        // Two passes over the same random centres, so that neither kind of query finds
        // the tree warm from the other.
        for centre in &centres {
            let started = Instant::now();
            found.push(index.within_radius(*centre, 500.0).len());
            times.push(started.elapsed());
        }
        for (centre, n) in centres.iter().zip(&found) {
            let started = Instant::now();
            let m = index.within_radius_unordered(*centre, 500.0).len();
            unordered.push(started.elapsed());
            assert_eq!(m, *n);
        }
        (times, unordered, found)
    })
    .await?;
    times.sort();
    unordered.sort();
    println!(
        "radius 500 m, unordered: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&unordered, 0.5).as_secs_f64() * 1e3,
        percentile(&unordered, 0.99).as_secs_f64() * 1e3,
        unordered.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    found.sort();
    let found_at = |p: f64| found[((found.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "radius 500 m, nearest first: {} queries, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms (target p99 < 0.5 ms); units found: median {}, p99 {}, mean {:.0}",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        found_at(0.5),
        found_at(0.99),
        found.iter().sum::<usize>() as f64 / found.len().max(1) as f64
    );

    place_units_in_grids(&store).await?;

    // The whole city's day.
    let runtime = Runtime::start(
        store.clone(),
        Arc::new(SystemClock) as SharedClock,
        runtime::Config::default(),
    )
    .await?;
    let date = runtime.now().with_timezone(&china_time()).date_naive();
    let started = Instant::now();
    let plan = runtime.plan_city(date, true).await?;
    let total = started.elapsed();
    println!(
        "day plan {date}: {} of {} due units planned for {} inspectors; {:.1} s loading, {:.1} s planning, {:.1} s storing, {:.1} s in all (target < 20 s)",
        plan.planned,
        plan.candidates,
        plan.routes,
        plan.load.as_secs_f64(),
        plan.plan.as_secs_f64(),
        plan.save.as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "routes: {:.0} km walked after 2-opt against {:.0} km by nearest neighbour ({:.1}% shorter), {:.0} m a route on average",
        plan.length_m / 1000.0,
        plan.nn_length_m / 1000.0,
        100.0 * (1.0 - plan.length_m / plan.nn_length_m.max(1.0)),
        plan.length_m / plan.routes.max(1) as f64
    );
    runtime.shutdown().await;
    drop(store);
    if let Some((rss, peak)) = rss_mib(std::process::id()) {
        println!("this benchmark process: {rss:.0} MiB resident, {peak:.0} MiB at peak");
    }

    serve_memory(&url)?;
    close_city(scratch, args.keep);
    Ok(())
}

/// The city a benchmark measures: `database_url` when given (it must hold units), else
/// a scratch SQLite file in `dir` seeded with `units` (with progress). Its URL, and the
/// scratch file's path.
pub(crate) async fn open_city(
    database_url: Option<&str>,
    dir: Option<&std::path::Path>,
    units: u64,
    name: &str,
) -> anyhow::Result<(String, Option<PathBuf>)> {
    let (url, scratch) = match database_url {
        Some(url) => (url.to_string(), None),
        None => {
            let dir = dir.map_or_else(std::env::temp_dir, |d| d.to_path_buf());
            let path = dir.join(format!("anju-{name}-{}.db", std::process::id()));
            (path.display().to_string(), Some(path))
        }
    };
    println!("database {}", crate::app::redact(&url));
    let store = crate::app::open_store(&url).await?;
    if scratch.is_some() {
        let started = Instant::now();
        crate::cli::seed(&store, units, 2026, chrono::Utc::now()).await?;
        println!(
            "seeded {units} units in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    } else if store.unit(anju_engine::domain::UnitId(1)).await?.is_none() {
        bail!(
            "{} holds no units; seed it first or leave out --database-url",
            crate::app::redact(&url)
        );
    }
    Ok((url, scratch))
}

/// Removes a scratch city (its SQLite file and evidence beside it), or says where it
/// was kept.
pub(crate) fn close_city(scratch: Option<PathBuf>, keep: bool) {
    let Some(path) = scratch else {
        return;
    };
    if keep {
        println!("kept {}", path.display());
        return;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let _ = std::fs::remove_dir_all(format!("{}.evidence", path.display()));
}
/// Every unit placed in the grid polygon that contains it.
async fn place_units_in_grids(store: &anju_engine::store::SharedStore) -> anyhow::Result<()> {
    let started = Instant::now();
    let grid_index = anju_engine::places::load_index(store.as_ref()).await?;
    let units = store.unit_grids().await?;
    let loaded = started.elapsed();
    let grid_count = grid_index.len();
    let started = Instant::now();
    let report = tokio::task::spawn_blocking(move || {
        let mut report = GridImportReport::default();
        grids::assign(&grid_index, &units, &mut report);
        report
    })
    .await?;
    println!(
        "grid assignment: {} units over {grid_count} grids in {:.1} s (+{:.1} s loading); {} outside every grid, {} in another grid than recorded",
        report.units_checked,
        started.elapsed().as_secs_f64(),
        loaded.as_secs_f64(),
        report.units_outside,
        report.units_moved
    );

    Ok(())
}

/// `anju serve` on the city: resident memory once it listens (its index built).
fn serve_memory(url: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut server = crate::bench::http::Server::start(url)?;
    let ready = started.elapsed();
    let memory = rss_mib(server.pid());
    server.stop();
    match memory {
        Some((rss, peak)) => println!(
            "anju serve: listening after {:.1} s, {rss:.0} MiB resident ({peak:.0} MiB at peak; target < 2048 MiB)",
            ready.as_secs_f64()
        ),
        None => println!("anju serve: resident memory not available (no /proc)"),
    }

    Ok(())
}
