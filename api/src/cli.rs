//! The `anju` command line: serve, migrate, seed, import, token and bench.

use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use axum::Router;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use anju_engine::domain::Role;
use anju_engine::outbox::LogDeliverer;
use anju_engine::registry::Record;
use anju_engine::runtime::{self, Runtime};
use anju_engine::seed::DemoCity;
use anju_engine::store::SharedStore;
use anju_engine::taxonomy::Taxonomy;
use anju_engine::time::{SharedClock, SystemClock};

use crate::app::{Application, Settings, open_store};

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
    Serve(ServeArgs),
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
    /// Escalation rules (rhai).
    #[command(subcommand)]
    Rules(RulesCmd),
    /// Units of the registry.
    #[command(subcommand)]
    Units(UnitsCmd),
    /// Plan a day's patrols for the whole city: every inspector's visits (most overdue
    /// and riskiest first, within capacity and shift) as a walking route, stored for
    /// GET /api/v1/inspectors/{id}/plan; prints the backlog.
    Plan(PlanArgs),
    /// Measure durable transitions per second, latency and timer throughput on SQLite
    /// and PostgreSQL.
    Bench(crate::bench::BenchArgs),
    /// Measure a city of millions of units: the unit index built from the database,
    /// 500 m radius queries, grid assignment, the whole city's daily plan, and the
    /// resident memory of `anju serve` on it.
    BenchCity(crate::bench::city::CityBenchArgs),
    /// Measure escalation-rule evaluations per second for the starter rules.
    BenchRules(crate::bench::rules::RulesBenchArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: Db,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "ANJU_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Seed an empty database with a demo city and print demo tokens.
    #[arg(long)]
    pub demo: bool,
    /// Units in the demo city.
    #[arg(long, default_value_t = 10_000)]
    pub demo_units: u64,
    /// Do not run the timer and outbox workers in this process.
    #[arg(long)]
    pub no_workers: bool,
    /// Do not open a `no_agreement` finding when an inspected unit's party has no
    /// responsibility agreement in force (for a city not running the agreements).
    #[arg(long)]
    pub no_agreement_findings: bool,
    /// Claim name of this process for timers and outbox rows.
    #[arg(long, env = "ANJU_WORKER_ID")]
    pub worker_id: Option<String>,
    /// The address the public reaches this service at, for the links in placards' QR
    /// codes (default: the Host of each request).
    #[arg(long, env = "ANJU_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Most open connections in all (lowered to fit the open-files limit).
    #[arg(long, env = "ANJU_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Most open connections from one client address; 0 for no cap (behind a reverse
    /// proxy every connection comes from the proxy).
    #[arg(long, env = "ANJU_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 256)]
    pub max_connections_per_client: usize,
    /// Seconds a client has to send a request's headers (and an idle keep-alive
    /// connection stays open).
    #[arg(long, env = "ANJU_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a client has to send a request's body.
    #[arg(long, env = "ANJU_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum RulesCmd {
    /// Check a rule folder: the manifest (rules.toml), and that every script compiles
    /// in the sandbox. Prints each rule; exits non-zero on any problem.
    Check(RulesCheckArgs),
    /// Run the daily rules over every open case as a dry run: print what they would
    /// do, per rule and action. Nothing is changed.
    Sweep(Db),
}

#[derive(Debug, Args)]
pub struct RulesCheckArgs {
    /// The folder holding rules.toml and the scripts.
    #[arg(long, default_value = "workflows/rules")]
    pub dir: PathBuf,
}

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

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub db: Db,
    /// Generate the demo city (the only kind of seed there is; required, so that
    /// nobody fills a production database by accident).
    #[arg(long, required = true)]
    pub demo: bool,
    /// How many rental units.
    #[arg(long, default_value_t = 10_000)]
    pub units: u64,
    /// Random seed; the same seed and size give the same city.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

#[derive(Debug, Subcommand)]
pub enum ImportCmd {
    /// Registry records from a JSON-lines file: one record a line, tagged by "type"
    /// (district, street, community, grid, building, party, unit, inspector,
    /// department, supervisor). All or nothing. Use - for standard input.
    Records(ImportArgs),
    /// Grid shapes (网格) from a GeoJSON FeatureCollection (RFC 7946, WGS-84): each
    /// feature a Polygon or MultiPolygon with properties.code; a new grid also needs
    /// properties.name and properties.community_code. Every unit is then placed in
    /// the grid that contains it; units inside no grid are reported.
    Grids(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: Db,
    /// The file, or - for standard input.
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum UnitsCmd {
    /// List the units whose point lies in no grid (they have a district, no grid or
    /// inspector): id, district, address and point, one a line.
    Ungridded(UngriddedArgs),
}

#[derive(Debug, Args)]
pub struct UngriddedArgs {
    #[command(flatten)]
    pub db: Db,
    /// Only this district (GB/T 2260 code).
    #[arg(long)]
    pub district: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Create a token for an existing inspector, landlord (party), department or
    /// supervisor, and print it. The token is shown only once.
    Create(TokenArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Inspector,
    Landlord,
    Department,
    Supervisor,
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

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub db: Db,
    /// Who the token speaks for.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The id of the inspector, party, department or supervisor.
    #[arg(long)]
    pub subject: i64,
    /// A note stored with the token (whose phone, which integration).
    #[arg(long)]
    pub label: Option<String>,
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
        Cmd::Serve(args) => serve(args, hooks).await,
        Cmd::Migrate(db) => {
            open_store(&db.database_url).await?;
            println!("database is up to date");
            Ok(())
        }
        Cmd::Seed(args) => {
            let store = open_store(&args.db.database_url).await?;
            seed(&store, args.units, args.seed, hooks.clock.now()).await?;
            Ok(())
        }
        Cmd::Import(ImportCmd::Records(args)) => import(args, hooks.clock.clone()).await,
        Cmd::Units(UnitsCmd::Ungridded(args)) => ungridded(args).await,
        Cmd::Import(ImportCmd::Grids(args)) => import_grids(args, hooks.clock.clone()).await,
        Cmd::Token(TokenCmd::Create(args)) => {
            let store = open_store(&args.db.database_url).await?;
            let runtime = Runtime::start(store, hooks.clock, runtime::Config::default()).await?;
            let secret = runtime
                .create_token(args.role.into(), args.subject, args.label.as_deref())
                .await?;
            runtime.shutdown().await;
            println!("{secret}");
            Ok(())
        }
        Cmd::Plan(args) => plan(args, hooks.clock).await,
        Cmd::Rules(RulesCmd::Check(args)) => rules_check(&args),
        Cmd::Rules(RulesCmd::Sweep(db)) => rules_sweep(db, hooks.clock).await,
        Cmd::Bench(args) => crate::bench::run(args).await,
        Cmd::BenchCity(args) => crate::bench::city::run(args).await,
        Cmd::BenchRules(args) => crate::bench::rules::run(args).await,
    }
}

async fn serve(args: ServeArgs, hooks: Hooks) -> anyhow::Result<()> {
    let mut config = runtime::Config::default();
    if let Some(id) = args.worker_id {
        config.worker_id = id;
    }
    config.public_url = args.public_url.map(|u| u.trim_end_matches('/').to_string());
    config.agreement_findings = !args.no_agreement_findings;
    if args.demo {
        let store = open_store(&args.db.database_url).await?;
        if store.unit(anju_engine::domain::UnitId(1)).await?.is_none() {
            seed(&store, args.demo_units, 2026, hooks.clock.now()).await?;
        }
    }
    let open_files = crate::http::serve::raise_open_files_limit();
    let limits = crate::http::serve::Limits {
        max_connections: args.max_connections,
        max_per_client: args.max_connections_per_client,
        header_timeout: std::time::Duration::from_secs(args.header_timeout.max(1)),
        body_timeout: std::time::Duration::from_secs(args.body_timeout.max(1)),
    }
    .within_open_files(open_files);
    tracing::info!(
        open_files,
        max_connections = limits.max_connections,
        max_per_client = limits.max_per_client,
        "connection limits"
    );
    let settings = Settings {
        database_url: args.db.database_url.clone(),
        bind: args.bind,
        workers: !args.no_workers,
        limits,
        runtime: config,
    };
    let app = Application::build(
        settings,
        hooks.clock,
        hooks.clock_kind,
        Arc::new(LogDeliverer),
        hooks.extra,
    )
    .await?;
    if args.demo {
        print_demo_tokens(&app.runtime, app.addr).await?;
    }
    tracing::info!(addr = %app.addr, database = %crate::app::redact(&args.db.database_url), "anju is serving");
    // The bound address on stdout, so that scripts starting `--bind 127.0.0.1:0`
    // can find the port.
    println!("listening on http://{}", app.addr);
    std::io::stdout().flush().ok();
    shutdown_signal().await;
    tracing::info!("shutting down");
    app.shutdown().await;
    Ok(())
}

fn rules_check(args: &RulesCheckArgs) -> anyhow::Result<()> {
    use anju_engine::rules::{Limits, RuleSet};
    let departments = Taxonomy::builtin().departments.keys().cloned().collect();
    match RuleSet::load_dir(&args.dir, departments, Limits::default()) {
        Ok(set) => {
            for r in set.specs() {
                let on: Vec<String> = r
                    .on
                    .iter()
                    .map(|t| serde_json::to_value(t).map(|v| v.as_str().unwrap_or("").to_string()))
                    .collect::<Result<_, _>>()?;
                println!(
                    "ok  {} v{} on {}: {}",
                    r.name,
                    r.version,
                    on.join(", "),
                    r.zh
                );
            }
            Ok(())
        }
        Err(errors) => {
            let first = errors.first().cloned().unwrap_or_default();
            for e in errors.iter().skip(1) {
                eprintln!("error: {e}");
            }
            bail!("{first}")
        }
    }
}

async fn rules_sweep(db: Db, clock: SharedClock) -> anyhow::Result<()> {
    let store = open_store(&db.database_url).await?;
    let runtime = Runtime::start(store, clock, runtime::Config::default()).await?;
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("evaluating the daily rules over the open cases");
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let report = runtime
        .sweep_rules(anju_engine::rules::Trigger::Daily)
        .await;
    spinner.finish_and_clear();
    let report = report?;
    runtime.shutdown().await;
    println!(
        "{} open cases, {} rule evaluations, {} failed, in {:.1} s ({:.1} s of reading, summed over the readers)",
        report.cases,
        report.evaluations,
        report.failures,
        report.total.as_secs_f64(),
        report.loading.as_secs_f64()
    );
    for (rule, actions) in &report.actions {
        for (action, n) in actions {
            println!("  {rule}: {n} × {action}");
        }
    }
    println!("dry run: nothing was changed");
    Ok(())
}

async fn plan(args: PlanArgs, clock: SharedClock) -> anyhow::Result<()> {
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

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Demo principals: inspector 1 covers the first grids; party 1 answers for the first
/// building in them; department 1 is the fire brigade of that district; supervisor 2
/// watches the district and supervisor 1 the city.
async fn print_demo_tokens(runtime: &Runtime, addr: SocketAddr) -> anyhow::Result<()> {
    println!("Demo tokens (演示令牌) for http://{addr}:");
    for (role, subject, what) in [
        (Role::Inspector, 1, "inspector 1 / 出租屋管理员"),
        (Role::Landlord, 1, "landlord (party) 1 / 房东"),
        (Role::Department, 1, "department 1 (fire) / 消防救援大队"),
        (Role::Supervisor, 2, "district supervisor 2 / 区级督导"),
        (Role::Supervisor, 1, "city supervisor 1 / 市级督导"),
    ] {
        let token = runtime.create_token(role, subject, Some("demo")).await?;
        println!("  {what:40} {token}");
    }
    println!("  unit 1 belongs to party 1 and lies in inspector 1's grid.");
    Ok(())
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Seeds a demo city into an empty database, with a progress bar.
/// Seeds an empty database with the demo city, its patrol history leading up to `now`
/// (the clock's, so that a test server seeds at its manual time).
pub async fn seed(
    store: &SharedStore,
    units: u64,
    seed_value: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    if units == 0 || units > 10_000_000 {
        bail!("--units must be from 1 to 10000000");
    }
    if store.unit(anju_engine::domain::UnitId(1)).await?.is_some() {
        bail!("the database already holds units; seed into a new database");
    }
    let started = Instant::now();
    let city = DemoCity::new(units, seed_value).at(now);
    let mut counts = store
        .import(city.skeleton(), now)
        .await
        .context("writing the districts, streets, grids and staff")?;
    let bar = progress(units, "units");
    // Generating the next chunk overlaps with writing this one.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Record>>(2);
    let generator = {
        let city = Arc::new(city);
        tokio::task::spawn_blocking(move || {
            for chunk in city.chunks(25_000) {
                if tx.blocking_send(chunk).is_err() {
                    return;
                }
            }
        })
    };
    while let Some(chunk) = rx.recv().await {
        let written = store.import(&chunk, now).await.context("writing units")?;
        bar.inc(written.units);
        counts.add(&written);
    }
    generator.await?;
    store.finish_import().await?;
    // Most landlords of the demo city signed their responsibility agreement.
    let signed = store
        .seed_agreements(anju_engine::seed::AGREEMENT_GAP, now)
        .await?;
    bar.finish_and_clear();
    eprintln!(
        "{signed} responsibility agreements signed (every {}th unit has none)",
        anju_engine::seed::AGREEMENT_GAP
    );
    eprintln!(
        "seeded {} units, {} buildings, {} parties, {} grids, {} inspectors, {} departments, {} supervisors in {:.1}s",
        counts.units,
        counts.buildings,
        counts.parties,
        counts.grids,
        counts.inspectors,
        counts.departments,
        counts.supervisors,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn ungridded(args: UngriddedArgs) -> anyhow::Result<()> {
    use anju_engine::auth::Scope;
    let store = open_store(&args.db.database_url).await?;
    let scope = match args.district {
        Some(code) => Scope::District(code),
        None => Scope::City,
    };
    let mut after = None;
    let mut count = 0;
    loop {
        let page = store.ungridded_units(&scope, after, 1000).await?;
        for u in &page {
            println!(
                "{}\t{}\t{}\t{},{}",
                u.id, u.district_code, u.address, u.lon, u.lat
            );
        }
        count += page.len();
        match page.last() {
            Some(u) if page.len() == 1000 => after = Some(u.id),
            _ => break,
        }
    }
    eprintln!("{count} units lie in no grid");
    Ok(())
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

async fn import_grids(args: ImportArgs, clock: SharedClock) -> anyhow::Result<()> {
    let store = open_store(&args.db.database_url).await?;
    let mut text = String::new();
    open_input(&args.file)?.read_to_string(&mut text)?;
    // The runtime places the units and moves their open cases through its writer.
    let runtime = Runtime::start(store, clock, runtime::Config::default()).await?;
    let report = runtime.import_grids(&text).await;
    runtime.shutdown().await;
    let report = report.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "grids: {} created, {} updated; units: {} checked, {} moved, {} inside no grid, {} outside the city; {} open cases followed their units",
        report.grids_created,
        report.grids_updated,
        report.units_checked,
        report.units_moved,
        report.units_outside,
        report.units_outside_city,
        report.cases_relocated
    );
    if report.units_outside > 0 {
        println!("units inside no grid: list them with `anju units ungridded`");
    }
    Ok(())
}

async fn import(args: ImportArgs, clock: SharedClock) -> anyhow::Result<()> {
    let store = open_store(&args.db.database_url).await?;
    let reader = open_input(&args.file)?;
    // Every line is parsed and checked before anything is written, so that a bad line
    // leaves the database as it was; every refused line is reported.
    let taxonomy = Taxonomy::builtin();
    let mut records = Vec::new();
    let mut refused: Vec<String> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| e.to_string())
            .and_then(|value| match anju_engine::text::find_forbidden(&value) {
                Some((field, c)) => Err(format!(
                    "{field}: holds the control character U+{:04X}",
                    c as u32
                )),
                None => serde_json::from_value::<Record>(value).map_err(|e| e.to_string()),
            })
            .and_then(|record| {
                record
                    .check(&taxonomy)
                    .map(|()| record)
                    .map_err(|e| format!("{}: {}", e.field, e.message))
            });
        match parsed {
            Ok(record) => records.push((i + 1, record)),
            Err(e) => refused.push(format!("line {}: {e}", i + 1)),
        }
    }
    // Units lie near their buildings, and everything inside the city.
    let runtime = Runtime::start(store.clone(), clock, runtime::Config::default()).await?;
    for (line, e) in runtime.check_sites(&records).await? {
        refused.push(format!("line {line}: {}: {}", e.field, e.message));
    }
    if !refused.is_empty() {
        runtime.shutdown().await;
        refused.sort_by_key(|r| {
            r.split(':')
                .next()
                .and_then(|l| l.trim_start_matches("line ").parse::<usize>().ok())
                .unwrap_or(0)
        });
        if let [only] = refused.as_slice() {
            anyhow::bail!("{only}");
        }
        for r in &refused {
            eprintln!("{r}");
        }
        anyhow::bail!("nothing was imported: {} lines refused", refused.len());
    }
    let records: Vec<Record> = records.into_iter().map(|(_, r)| r).collect();
    let counts = store
        .import(&records, runtime.now())
        .await
        .map_err(|e| anyhow::anyhow!("nothing was imported: {e}"));
    let counts = match counts {
        Ok(c) => c,
        Err(e) => {
            runtime.shutdown().await;
            return Err(e);
        }
    };
    store.finish_import().await?;
    // Units take the grid their point lies in (if grids have shapes).
    let report = runtime
        .regrid(Default::default())
        .await
        .map_err(|e| anyhow::anyhow!("imported, but placing units in grids failed: {e}"));
    runtime.shutdown().await;
    let report = report?;
    println!(
        "imported {} records: {}",
        counts.total(),
        serde_json::to_string(&counts)?
    );
    println!(
        "units placed by their point: {} moved, {} inside no grid, {} outside the city",
        report.units_moved, report.units_outside, report.units_outside_city
    );
    Ok(())
}
