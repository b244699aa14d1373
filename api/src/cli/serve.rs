//! `anju serve`: the service on a database, with demo data on request, until a signal.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use anju_engine::domain::Role;
use anju_engine::outbox::{Channels, EmailChannel, LogChannel, SmtpSettings, SmtpTls};
use anju_engine::runtime::{self, Runtime};

use crate::app::{Application, Settings, open_store};

use super::*;

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
    #[command(flatten)]
    pub smtp: SmtpArgs,
}

/// E-mail: without a host, messages go to the log.
#[derive(Debug, Args)]
pub struct SmtpArgs {
    /// The SMTP server that sends notices by e-mail.
    #[arg(long, env = "ANJU_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// Its port (587 for STARTTLS, 465 for TLS, 25 for none).
    #[arg(long, env = "ANJU_SMTP_PORT", default_value_t = 587)]
    pub smtp_port: u16,
    /// `none`, `starttls` or `tls`.
    #[arg(long, env = "ANJU_SMTP_TLS", default_value = "starttls")]
    pub smtp_tls: SmtpTls,
    #[arg(long, env = "ANJU_SMTP_USER")]
    pub smtp_user: Option<String>,
    /// Read from the environment only, so that it is not on the command line.
    #[arg(skip = std::env::var("ANJU_SMTP_PASSWORD").ok())]
    pub smtp_password: Option<String>,
    /// The sender of notices, e.g. `安居 <notices@example.cn>`.
    #[arg(long, env = "ANJU_MAIL_FROM", default_value = "Anju <anju@localhost>")]
    pub mail_from: String,
    /// SMTP connections kept open.
    #[arg(long, env = "ANJU_SMTP_POOL", default_value_t = 8)]
    pub smtp_pool: u32,
}

impl SmtpArgs {
    /// The channels notices are delivered on: e-mail when a server is given, else the log.
    pub fn channels(&self, public_url: Option<String>) -> anyhow::Result<Channels> {
        let Some(host) = &self.smtp_host else {
            return Ok(vec![Arc::new(LogChannel)]);
        };
        let email = EmailChannel::new(&SmtpSettings {
            host: host.clone(),
            port: self.smtp_port,
            tls: self.smtp_tls,
            user: self.smtp_user.clone(),
            password: self.smtp_password.clone(),
            from: self.mail_from.clone(),
            public_url,
            pool: self.smtp_pool,
            timeout: std::time::Duration::from_secs(30),
        })
        .map_err(|e| anyhow::anyhow!("e-mail: {e}"))?;
        Ok(vec![Arc::new(email)])
    }
}

pub(super) async fn serve(args: ServeArgs, hooks: Hooks) -> anyhow::Result<()> {
    let mut config = runtime::Config::default();
    if let Some(id) = args.worker_id {
        config.worker_id = id;
    }
    config.public_url = args.public_url.map(|u| u.trim_end_matches('/').to_string());
    let channels = args.smtp.channels(config.public_url.clone())?;
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
        channels,
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

pub(super) async fn shutdown_signal() {
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
pub(super) async fn print_demo_tokens(runtime: &Runtime, addr: SocketAddr) -> anyhow::Result<()> {
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
