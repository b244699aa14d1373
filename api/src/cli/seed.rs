//! `anju seed`: the demo city of Guangzhou, written in chunks with progress.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Args;

use anju_engine::registry::Record;
use anju_engine::seed::DemoCity;
use anju_engine::store::SharedStore;

use super::*;

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

/// `anju seed`: opens (and migrates) the store and writes the demo city into it.
pub(super) async fn seed_command(
    args: SeedArgs,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let store = crate::app::open_store(&args.db.database_url).await?;
    seed(&store, args.units, args.seed, now).await
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
