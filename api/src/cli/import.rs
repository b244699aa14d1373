//! `anju import`: registry records (JSON lines) and grid shapes (GeoJSON), all or nothing.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use anju_engine::registry::Record;
use anju_engine::runtime::{self, Runtime};
use anju_engine::taxonomy::Taxonomy;
use anju_engine::time::SharedClock;

use crate::app::open_store;

use super::*;

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

pub(super) async fn import_grids(args: ImportArgs, clock: SharedClock) -> anyhow::Result<()> {
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

pub(super) async fn import(args: ImportArgs, clock: SharedClock) -> anyhow::Result<()> {
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
