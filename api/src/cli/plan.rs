//! `anju plan`: the whole city's day, planned and stored.

use std::time::Instant;

use clap::Args;
use indicatif::ProgressBar;

use anju_engine::runtime::{self, Runtime};
use anju_engine::time::SharedClock;

use crate::app::open_store;

use super::*;

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub db: Db,
    /// The day to plan (YYYY-MM-DD, China time).
    #[arg(long, value_parser = parse_day)]
    pub date: chrono::NaiveDate,
    /// Replace the day's routes stored already (their order may change). Without it,
    /// routes shown to inspectors earlier in the day are kept as they are.
    #[arg(long)]
    pub replace: bool,
}

pub(super) async fn plan(args: PlanArgs, clock: SharedClock) -> anyhow::Result<()> {
    let store = open_store(&args.db.database_url).await?;
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("loading units and building the index");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let runtime = Runtime::start(store, clock, runtime::Config::default()).await?;
    spinner.set_message(format!("planning {}", args.date));
    let report = runtime.plan_city(args.date, args.replace).await;
    spinner.finish_and_clear();
    let report = report?;
    let backlog = runtime
        .plan_backlog(&anju_engine::auth::Principal::system(), args.date)
        .await?;
    runtime.shutdown().await;
    println!(
        "planned {}: {} of {} due units for {} of {} inspectors; {} left over",
        report.date,
        report.planned,
        report.candidates,
        report.routes,
        report.inspectors,
        report.backlog
    );
    println!(
        "walking: {:.0} km in all (nearest-neighbour routes: {:.0} km, 2-opt saved {:.1}%)",
        report.length_m / 1000.0,
        report.nn_length_m / 1000.0,
        100.0 * (1.0 - report.length_m / report.nn_length_m.max(1.0))
    );
    println!(
        "time: {:.1} s loading, {:.1} s planning, {:.1} s storing ({:.1} s in all)",
        report.load.as_secs_f64(),
        report.plan.as_secs_f64(),
        report.save.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let left: Vec<_> = backlog.iter().filter(|b| b.left > 0).take(10).collect();
    if !left.is_empty() {
        println!("grids with the most left over:");
        for b in left {
            println!(
                "  grid {}: {} due, {} planned, {} left",
                b.grid_id, b.due, b.planned, b.left
            );
        }
    }
    Ok(())
}
