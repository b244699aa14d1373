//! `anju integration create`: an integration that reports tips through Open311 (the 12345 hotline, a street platform), with its API key (printed once) and the webhook its requests' status changes are pushed to.

use clap::{Args, Subcommand};

use super::*;

#[derive(Debug, Subcommand)]
pub enum IntegrationCmd {
    /// Register an integration and print its API key (shown only once).
    Create(IntegrationArgs),
}

#[derive(Debug, Args)]
pub struct IntegrationArgs {
    #[command(flatten)]
    pub db: Db,
    /// Its name (unique), e.g. `12345`.
    #[arg(long)]
    pub name: String,
    /// Where the status changes of its requests are pushed (signed JSON POSTs).
    #[arg(long)]
    pub webhook: Option<String>,
}

/// Runs an `integration` command.
pub(super) async fn integration(
    cmd: IntegrationCmd,
    clock: anju_engine::time::SharedClock,
) -> anyhow::Result<()> {
    let IntegrationCmd::Create(args) = cmd;
    let store = open_store(&args.db.database_url).await?;
    let runtime = Runtime::start(store, clock, runtime::Config::default()).await?;
    let created = runtime
        .create_integration(&args.name, args.webhook.as_deref())
        .await;
    runtime.shutdown().await;
    let (integration, key) = created?;
    eprintln!("integration {} ({})", integration.id, integration.name);
    println!("{key}");
    Ok(())
}
