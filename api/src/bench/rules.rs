//! `anju bench-rules`: evaluations per second of the starter escalation rules over generated cases, on every core, and the time a daily sweep of that many open cases would spend evaluating.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use anju_engine::rules::{CaseFacts, Facts, PartyFacts, RuleSet, Trigger, UnitFacts};
use anju_engine::taxonomy::Taxonomy;

#[derive(Debug, Args)]
pub struct RulesBenchArgs {
    /// Open cases to evaluate (each against every rule of its event).
    #[arg(long, default_value_t = 1_000_000)]
    pub cases: usize,
    /// Then open this many cases in a scratch SQLite database and time the daily sweep
    /// over them (0: skip).
    #[arg(long, default_value_t = 0)]
    pub sweep_cases: usize,
    /// Directory for the scratch SQLite file (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

const EVENTS: [Trigger; 6] = [
    Trigger::Daily,
    Trigger::OrderOverdue,
    Trigger::ReferralNotAccepted,
    Trigger::ReinspectionFailed,
    Trigger::NewHazard,
    Trigger::GradeDrop,
];

fn facts(rng: &mut ChaCha8Rng, event: Trigger, taxonomy: &Taxonomy) -> Facts {
    let category = taxonomy.categories[rng.random_range(0..taxonomy.categories.len())]
        .code
        .clone();
    Facts {
        event,
        case: Some(CaseFacts {
            id: rng.random_range(1..10_000_000),
            category,
            severity: ["critical", "major", "general", "minor"][rng.random_range(0..4)].into(),
            state: ["notified", "overdue", "referred"][rng.random_range(0..3)].into(),
            order_no: rng.random_range(1..4),
            escalation: rng.random_range(0..3),
            reopen_count: 0,
            overdue_hours: rng.random_range(0..96),
            deadline_hours: 24 * rng.random_range(1..16),
            department_kind: Some("fire".into()),
        }),
        unit: UnitFacts {
            id: rng.random_range(1..5_000_000),
            address: "天河区示例路8号302房".into(),
            district_code: "440106".into(),
            stars: Some(rng.random_range(1..=5)),
            previous_stars: Some(rng.random_range(1..=5)),
            past_cases: rng.random_range(0..4),
        },
        party: Some(PartyFacts {
            id: rng.random_range(1..1_000_000),
            kind: "landlord".into(),
            cases_by_severity: Default::default(),
            overdue_12m: rng.random_range(0..5),
            referrals_12m: rng.random_range(0..3),
            blacklisted: rng.random_bool(0.02),
            blacklist_proposed: rng.random_bool(0.02),
        }),
        now: 1_790_000_000,
    }
}

pub async fn run(args: RulesBenchArgs) -> anyhow::Result<()> {
    let taxonomy = Taxonomy::builtin();
    let rules = Arc::new(RuleSet::builtin(
        taxonomy.departments.keys().cloned().collect(),
    ));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "anju bench-rules: {} starter rules, {} cases, {cores} cores",
        rules.specs().len(),
        args.cases
    );
    for event in EVENTS {
        let per_thread = args.cases.div_ceil(cores);
        let started = Instant::now();
        let handles: Vec<_> = (0..cores)
            .map(|t| {
                let rules = rules.clone();
                let taxonomy = taxonomy.clone();
                std::thread::spawn(move || {
                    let mut rng = ChaCha8Rng::seed_from_u64(t as u64);
                    let (mut evaluations, mut actions, mut failures) = (0u64, 0u64, 0u64);
                    for _ in 0..per_thread {
                        for e in rules.evaluate(&facts(&mut rng, event, &taxonomy)) {
                            evaluations += 1;
                            match e.outcome {
                                Ok(a) => actions += a.len() as u64,
                                Err(_) => failures += 1,
                            }
                        }
                    }
                    (evaluations, actions, failures)
                })
            })
            .collect();
        let (mut evaluations, mut actions, mut failures) = (0, 0, 0);
        for h in handles {
            let (e, a, f) = h
                .join()
                .map_err(|_| anyhow::anyhow!("a bench thread failed"))?;
            evaluations += e;
            actions += a;
            failures += f;
        }
        let secs = started.elapsed().as_secs_f64();
        let name = serde_json::to_value(event)?;
        println!(
            "{:<22} {:>9} cases in {:>5.2} s: {:>9.0} rule evaluations/s, {actions} actions, {failures} failures",
            name.as_str().unwrap_or("?"),
            per_thread * cores,
            secs,
            evaluations as f64 / secs
        );
    }
    if args.sweep_cases > 0 {
        sweep(&args).await?;
    }
    Ok(())
}

/// The daily sweep over `sweep_cases` open cases in a scratch SQLite database.
async fn sweep(args: &RulesBenchArgs) -> anyhow::Result<()> {
    use anju_engine::auth::{Principal, Scope};
    use anju_engine::domain::Role;
    use anju_engine::runtime::{self, Runtime};
    use anju_engine::time::{SharedClock, SystemClock};
    let dir = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!("anju-sweep-{}.db", std::process::id()));
    let url = path.display().to_string();
    let store = crate::app::open_store(&url).await?;
    // Twelve categories a unit, and a few units without a party.
    let units = (args.sweep_cases / 11 + 1_000) as u64;
    crate::cli::seed(&store, units, 7, chrono::Utc::now()).await?;
    let runtime = Runtime::start(
        store.clone(),
        Arc::new(SystemClock) as SharedClock,
        runtime::Config::default(),
    )
    .await?;
    let city = Principal {
        role: Role::Supervisor,
        subject: 1,
        scope: Scope::City,
        account: None,
    };
    let started = Instant::now();
    crate::bench::open_cases(&runtime, &city, &store, args.sweep_cases, None).await?;
    println!(
        "opened {} cases in {:.1} s",
        args.sweep_cases,
        started.elapsed().as_secs_f64()
    );
    let report = runtime.sweep_rules(Trigger::Daily).await?;
    println!(
        "daily sweep: {} open cases, {} rule evaluations, {} failures, {:.1} s in all ({:.1} s of reading, summed over the readers; target < 20 s)",
        report.cases,
        report.evaluations,
        report.failures,
        report.total.as_secs_f64(),
        report.loading.as_secs_f64()
    );
    runtime.shutdown().await;
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
