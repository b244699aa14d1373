//! `anju units ungridded`: the units whose point lies in no grid.

use clap::{Args, Subcommand};

use crate::app::open_store;

use super::*;

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

pub(super) async fn ungridded(args: UngriddedArgs) -> anyhow::Result<()> {
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
