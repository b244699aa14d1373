//! `anju calendar`: the working-day calendar kept as data — `import FILE` brings in a new version (next year's public holidays from the State Council's notice, cited), in force at once in every process, audited; `list` shows every version with when it took effect and who imported it; `status` says how near its end is.

use std::io::Read as _;

use clap::{Args, Subcommand};

use super::*;

#[derive(Debug, Subcommand)]
pub enum CalendarCmd {
    /// Import a calendar version: `workflows/calendar.toml` copied, its `version`
    /// raised and the new year added from the State Council's notice (cited under
    /// `[[sources]]`). In force at once, in every process within seconds; open timers
    /// counted in working days that it moves are re-dated by an audited event each.
    Import(CalendarImportArgs),
    /// Every version kept, oldest first: when it took effect, who imported it, its
    /// years and digest.
    List(Db),
    /// The version in force and the days left before its last published day.
    Status(Db),
}

#[derive(Debug, Args)]
pub struct CalendarImportArgs {
    #[command(flatten)]
    pub db: Db,
    /// The calendar file (TOML; `-` reads standard input).
    pub file: std::path::PathBuf,
    /// Who imports it, for the record (default: the login name).
    #[arg(long, env = "USER", default_value = "operator")]
    pub by: String,
    /// Accept a file marked `test_data = true` (made for tests, not from a notice).
    #[arg(long)]
    pub test_data: bool,
}

/// Runs a `calendar` command.
pub(super) async fn calendar(cmd: CalendarCmd, clock: SharedClock) -> anyhow::Result<()> {
    let db = match &cmd {
        CalendarCmd::Import(a) => a.db.clone(),
        CalendarCmd::List(db) | CalendarCmd::Status(db) => db.clone(),
    };
    let store = open_store(&db.database_url).await?;
    let runtime = Runtime::start(store, clock, runtime::Config::default()).await?;
    let system = anju_engine::auth::Principal::system();
    let done = match cmd {
        CalendarCmd::Import(args) => {
            let mut text = String::new();
            open_input(&args.file)?.read_to_string(&mut text)?;
            let by = format!("cli:{}", args.by);
            match runtime
                .import_calendar(&system, &text, &by, args.test_data)
                .await
            {
                Ok(status) => {
                    println!(
                        "calendar version {} in force: years {:?}, last day {}",
                        status.version,
                        status.years,
                        status.last_day.map(|d| d.to_string()).unwrap_or_default()
                    );
                    // This process re-dates what it can now; running services do too.
                    let tick = runtime.calendar_step().await?;
                    println!("{} running timer(s) re-dated", tick.redated);
                    Ok(())
                }
                Err(e) => Err(anyhow::anyhow!("{e}")),
            }
        }
        CalendarCmd::List(_) => {
            for v in runtime.calendar_versions(&system).await? {
                println!(
                    "version {}  years {}  from {}  by {}  sha256 {}{}",
                    v.version,
                    v.years,
                    anju_engine::time::local_time(v.imported_at),
                    v.imported_by,
                    &v.sha256[..16],
                    if v.test_data { "  (test data)" } else { "" }
                );
            }
            Ok(())
        }
        CalendarCmd::Status(_) => {
            let s = runtime.calendar_status();
            println!(
                "calendar version {}: years {:?}, last day {}, {} days left{}",
                s.version,
                s.years,
                s.last_day.map(|d| d.to_string()).unwrap_or_default(),
                s.days_left.unwrap_or(0),
                if s.ending {
                    " — import next year's holidays when they are published"
                } else {
                    ""
                }
            );
            Ok(())
        }
    };
    runtime.shutdown().await;
    done
}
