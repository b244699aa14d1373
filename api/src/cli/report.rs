//! `anju report`: the statistics of an area over a period, as CSV, JSON or an Excel workbook, folding what is queued first (with progress).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use anju_engine::auth::Principal;
use anju_engine::runtime::{self, Runtime};
use anju_engine::time::{SharedClock, china_time};

use crate::app::open_store;
use crate::report::{statistics_csv, statistics_json, statistics_xlsx};
use crate::routes::stats::{Format, statistics_request};

use super::*;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: Db,
    /// `city`, `district:<code>`, `street:<id>`, `community:<id>` or `grid:<id>`.
    #[arg(long, default_value = "city")]
    pub area: String,
    /// First China day (YYYY-MM-DD); the first of the last day's month if left out.
    #[arg(long, value_parser = parse_day)]
    pub from: Option<chrono::NaiveDate>,
    /// Last China day, included; today if left out.
    #[arg(long, value_parser = parse_day)]
    pub to: Option<chrono::NaiveDate>,
    /// csv (with a byte-order mark, for Excel), json or xlsx.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Where to write it; standard output if left out (not for xlsx).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub(super) async fn report(args: ReportArgs, clock: SharedClock) -> anyhow::Result<()> {
    let format = Format::parse(&args.format)
        .with_context(|| format!("--format {}: csv, json or xlsx", args.format))?;
    if format == Format::Xlsx && args.out.is_none() {
        anyhow::bail!("--format xlsx needs --out FILE");
    }
    let today = clock.now().with_timezone(&china_time()).date_naive();
    let request = statistics_request(Some(&args.area), args.from, args.to, today)
        .map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.message))?;
    let store = open_store(&args.db.database_url).await?;
    fold_statistics_backlog(&store).await?;
    let runtime = Runtime::start(store, clock, runtime::Config::default()).await?;
    let result = runtime.statistics(&Principal::system(), request).await;
    let taxonomy = runtime.taxonomy().clone();
    runtime.shutdown().await;
    let s = result?;
    let bytes = match format {
        Format::Json => serde_json::to_vec_pretty(&statistics_json(&s, &taxonomy))?,
        Format::Csv => statistics_csv(&s, &taxonomy).into_bytes(),
        Format::Xlsx => statistics_xlsx(&s, &taxonomy).map_err(|e| anyhow::anyhow!(e))?,
    };
    match args.out {
        Some(path) => {
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            use std::io::Write as _;
            std::io::stdout().write_all(&bytes)?;
        }
    }
    Ok(())
}
