//! `anju rules`: check the rule manifest and scripts; sweep the open cases (a dry run).

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;

use anju_engine::runtime::{self, Runtime};
use anju_engine::taxonomy::Taxonomy;
use anju_engine::time::SharedClock;

use crate::app::open_store;

use super::*;

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

pub(super) fn rules_check(args: &RulesCheckArgs) -> anyhow::Result<()> {
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

pub(super) async fn rules_sweep(db: Db, clock: SharedClock) -> anyhow::Result<()> {
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
