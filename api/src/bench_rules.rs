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
            open_cases: 1,
        },
        party: Some(PartyFacts {
            id: rng.random_range(1..1_000_000),
            kind: "landlord".into(),
            cases_by_severity: Default::default(),
            overdue_12m: rng.random_range(0..5),
            referrals_12m: rng.random_range(0..3),
            blacklisted: rng.random_bool(0.02),
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
    Ok(())
}
