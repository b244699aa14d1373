//! The `anju` command line: serve, migrate, seed, import, token, integration, rules, calendar, units, plan, report and bench.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use anju_engine::domain::Role;
use anju_engine::runtime::{self, Runtime};
use anju_engine::time::{SharedClock, SystemClock};

use crate::app::open_store;

mod calendar;
mod import;
mod integration;
mod plan;
mod report;
mod rules;
mod seed;
mod serve;
mod token;
mod units;

pub use import::*;
pub use plan::*;
pub use report::*;
pub use rules::*;
pub use seed::*;
pub use serve::*;
pub use token::*;
pub use units::*;

/// Anju (安居): the rental hazard-inspection workflow engine.
///
/// Anju runs Guangzhou's closed loop for hazards in rental units — patrol, discover,
/// notify, enforce, feedback — over a registry of units, landlords, inspectors and
/// departments. Data lives in one SQLite file by default (`./anju.db`), or in
/// PostgreSQL when DATABASE_URL is a postgres:// URL.
#[derive(Debug, Parser)]
#[command(name = "anju", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Args, Clone)]
pub struct Db {
    /// Where the data lives: a SQLite file path, or postgres://user@host/db.
    #[arg(long, env = "DATABASE_URL", default_value = "anju.db")]
    pub database_url: String,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the HTTP service (and its timer and outbox workers).
    ///
    /// Creates and migrates the database if needed. With --demo, an empty database is
    /// first filled with a demo city and tokens for a demo inspector, landlord,
    /// department and supervisor are printed.
    Serve(Box<ServeArgs>),
    /// Create or upgrade the database schema, then exit.
    Migrate(Db),
    /// Fill an empty database with a reproducible demo city of Guangzhou.
    Seed(SeedArgs),
    /// Import registry records or grid shapes.
    #[command(subcommand)]
    Import(ImportCmd),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Integrations that report tips through Open311 (the 12345 hotline).
    #[command(subcommand)]
    Integration(integration::IntegrationCmd),
    /// Escalation rules (rhai).
    #[command(subcommand)]
    Rules(RulesCmd),
    /// The working-day calendar (public holidays and make-up working days).
    #[command(subcommand)]
    Calendar(calendar::CalendarCmd),
    /// Units of the registry.
    #[command(subcommand)]
    Units(UnitsCmd),
    /// Plan a day's patrols for the whole city: every inspector's visits (most overdue
    /// and riskiest first, within capacity and shift) as a walking route, stored for
    /// GET /api/v1/inspectors/{id}/plan; prints the backlog.
    Plan(PlanArgs),
    /// The statistics of notification and disposal of an area over a period (found,
    /// ordered, fixed on time, overdue, referred, results, days to fix, visits, grades),
    /// as CSV for Excel, JSON or an Excel workbook.
    Report(ReportArgs),
    /// Measure durable transitions per second, latency and timer throughput on SQLite
    /// and PostgreSQL.
    Bench(crate::bench::BenchArgs),
    /// Measure a city of millions of units: the unit index built from the database,
    /// 500 m radius queries, grid assignment, the whole city's daily plan, and the
    /// resident memory of `anju serve` on it.
    BenchCity(crate::bench::city::CityBenchArgs),
    /// Measure the pages people use on a city of a million units: the inspector's plan
    /// page and a case page, over loopback with a session cookie.
    BenchPages(crate::bench::pages::PagesBenchArgs),
    /// Measure escalation-rule evaluations per second for the starter rules.
    BenchRules(crate::bench::rules::RulesBenchArgs),
    /// Measure statistics on a city of a million units and two million cases: the
    /// history generated in bulk, folded into the rollups, then a district's month and
    /// the city's year answered.
    BenchStats(crate::bench::stats::StatsBenchArgs),
    /// An SMTP server on a free loopback port that accepts and drops every message (for
    /// `anju bench --outbox`).
    #[command(hide = true)]
    SmtpSink,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Inspector => Role::Inspector,
            RoleArg::Landlord => Role::Landlord,
            RoleArg::Department => Role::Department,
            RoleArg::Supervisor => Role::Supervisor,
        }
    }
}

/// What a test build may change about `serve`: the clock and extra routes. The
/// production binary uses [`Hooks::production`].
pub struct Hooks {
    pub clock: SharedClock,
    pub clock_kind: &'static str,
    pub extra: Box<dyn FnOnce(Runtime) -> Router + Send>,
}

impl Hooks {
    pub fn production() -> Hooks {
        Hooks {
            clock: Arc::new(SystemClock),
            clock_kind: "system",
            extra: Box::new(|_| Router::new()),
        }
    }
}

/// The `anju` binary's main: parses arguments, runs, and turns an error into one line
/// on standard error and a non-zero exit.
pub fn main_with(hooks: Hooks) -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("anju: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, hooks)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("anju: error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("ANJU_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn run(cli: Cli, hooks: Hooks) -> anyhow::Result<()> {
    match cli.command {
        Cmd::Serve(args) => serve(*args, hooks).await,
        Cmd::Migrate(db) => {
            open_store(&db.database_url).await?;
            println!("database is up to date");
            Ok(())
        }
        Cmd::Seed(args) => seed_command(args, hooks.clock.now()).await,
        Cmd::Import(ImportCmd::Records(args)) => import(args, hooks.clock.clone()).await,
        Cmd::Units(UnitsCmd::Ungridded(args)) => ungridded(args).await,
        Cmd::Import(ImportCmd::Grids(args)) => import_grids(args, hooks.clock.clone()).await,
        Cmd::Token(cmd) => token::token(cmd, hooks.clock).await,
        Cmd::Integration(cmd) => integration::integration(cmd, hooks.clock).await,
        Cmd::Plan(args) => plan(args, hooks.clock).await,
        Cmd::Report(args) => report(args, hooks.clock).await,
        Cmd::Rules(RulesCmd::Check(args)) => rules_check(&args),
        Cmd::Rules(RulesCmd::Sweep(db)) => rules_sweep(db, hooks.clock).await,
        Cmd::Calendar(cmd) => calendar::calendar(cmd, hooks.clock).await,
        Cmd::Bench(args) => crate::bench::run(args).await,
        Cmd::BenchCity(args) => crate::bench::city::run(args).await,
        Cmd::BenchPages(args) => crate::bench::pages::run(args).await,
        Cmd::BenchRules(args) => crate::bench::rules::run(args).await,
        Cmd::BenchStats(args) => crate::bench::stats::run(args).await,
        Cmd::SmtpSink => crate::bench::outbox::smtp_sink(),
    }
}

pub(crate) fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Folds every queued event, visit, stop and grade change into the statistics, with a
/// progress bar; answers how many were folded and how long it took.
pub(crate) async fn fold_statistics_backlog(
    store: &anju_engine::store::SharedStore,
) -> anyhow::Result<(i64, std::time::Duration)> {
    let started = std::time::Instant::now();
    let backlog = store.statistics_backlog().await?;
    if backlog > 0 {
        let bar = progress(backlog as u64, "counting events into the statistics");
        loop {
            let n = store.fold_statistics(runtime::STATS_BATCH).await?;
            if n == 0 {
                break;
            }
            bar.inc(n as u64);
        }
        bar.finish_and_clear();
    }
    Ok((backlog, started.elapsed()))
}

/// A `--date` argument in the accepted range.
fn parse_day(text: &str) -> Result<chrono::NaiveDate, String> {
    anju_engine::text::parse_day("date", text).map_err(|e| e.message)
}

fn open_input(file: &std::path::Path) -> anyhow::Result<Box<dyn BufRead>> {
    Ok(if file.as_os_str() == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?,
        ))
    })
}
