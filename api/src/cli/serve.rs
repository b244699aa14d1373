//! `anju serve`: the service on a database, with demo data on request, until a signal.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use clap::Args;

use anju_engine::domain::Role;
use anju_engine::outbox::{
    Channels, EmailChannel, GatewayKind, LogChannel, SmtpSettings, SmtpTls, WebhookChannel,
    WebhookSettings,
};
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
    /// A reverse proxy (an address or a network, `10.0.0.0/8`) whose `Forwarded` or
    /// `X-Forwarded-For` names the client, for per-client limits; repeat it, or give a
    /// comma-separated list. Without it every client is the connection's address.
    #[arg(long = "trusted-proxy", env = "ANJU_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Serve HTTPS with this certificate chain (PEM); with `--tls-key`.
    #[arg(long, env = "ANJU_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "ANJU_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// The maps' tile URL template, e.g. `https://webrd01.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}&style=8`;
    /// without it the maps draw units and routes on a plain background.
    #[arg(long, env = "ANJU_TILE_URL")]
    pub tile_url: Option<String>,
    /// The tiles' datum: `gcj02` (AMap) or `wgs84` (Tianditu).
    #[arg(long, env = "ANJU_TILE_DATUM", default_value = "wgs84", value_parser = ["wgs84", "gcj02"])]
    pub tile_datum: String,
    /// The tiles' attribution, shown on the map.
    #[arg(long, env = "ANJU_TILE_ATTRIBUTION", default_value = "")]
    pub tile_attribution: String,
    /// Where uploaded evidence is kept: a directory, or `s3://bucket[/prefix]` for an
    /// S3-compatible object store shared by several nodes (endpoint and keys from the
    /// `AWS_*` variables). Default: a directory beside the SQLite file
    /// (`anju.db.evidence/`), or `anju-evidence/` for PostgreSQL.
    #[arg(long, env = "ANJU_EVIDENCE_STORE")]
    pub evidence_store: Option<String>,
    #[command(flatten)]
    pub channels: ChannelArgs,
}

/// A trusted proxy: a network (`10.0.0.0/8`) or one address (`10.0.0.5`).
fn parse_proxy(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{s}` is neither an address nor a network (10.0.0.0/8)"))
}

/// Where evidence is kept when not told: beside a SQLite file, else `anju-evidence/`.
fn default_evidence_store(database_url: &str) -> String {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        "anju-evidence".into()
    } else {
        let path = database_url
            .strip_prefix("sqlite://")
            .or_else(|| database_url.strip_prefix("sqlite:"))
            .unwrap_or(database_url);
        let path = path.split('?').next().unwrap_or(path);
        format!("{path}.evidence")
    }
}

/// The channels notices go out on: e-mail, an SMS gateway, platforms; with none of them,
/// messages go to the log.
#[derive(Debug, Args)]
pub struct ChannelArgs {
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
    /// The SMS gateway's URL: each SMS is a signed JSON POST (channel `sms`); the
    /// secret is read from ANJU_SMS_SECRET.
    #[arg(long, env = "ANJU_SMS_URL")]
    pub sms_url: Option<String>,
    /// A platform (粤政易, a street command platform) that takes the messages of
    /// departments and supervisors, as `NAME=URL` (repeat, or comma-separated in the
    /// environment); each one's secret is read from ANJU_PLATFORM_SECRET_<NAME>.
    #[arg(long = "platform", env = "ANJU_PLATFORMS", value_delimiter = ',')]
    pub platforms: Vec<String>,
}

impl ChannelArgs {
    /// The channels notices are delivered on: e-mail when a server is given, the SMS
    /// gateway and the platforms when given, else the log.
    pub fn channels(&self, public_url: Option<String>) -> anyhow::Result<Channels> {
        let mut channels: Channels = Vec::new();
        let secret = |var: &str| {
            std::env::var(var)
                .map_err(|_| anyhow::anyhow!("{var} is not set: the gateway's shared secret"))
        };
        let gateway = |name: &str, url: &str, secret: String, kind| -> anyhow::Result<_> {
            let channel = WebhookChannel::new(WebhookSettings {
                name: name.to_string(),
                url: url.to_string(),
                secret,
                kind,
                public_url: public_url.clone(),
                timeout: std::time::Duration::from_secs(30),
            })
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            Ok(Arc::new(channel))
        };
        if let Some(url) = &self.sms_url {
            channels.push(gateway(
                "sms",
                url,
                secret("ANJU_SMS_SECRET")?,
                GatewayKind::Sms,
            )?);
        }
        for p in &self.platforms {
            let Some((name, url)) = p.split_once('=') else {
                anyhow::bail!("--platform `{p}`: NAME=URL");
            };
            if name.is_empty()
                || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || ["email", "sms", "log"].contains(&name)
            {
                anyhow::bail!(
                    "--platform `{p}`: a name of letters, digits and _, not email, sms or log"
                );
            }
            let var = format!("ANJU_PLATFORM_SECRET_{}", name.to_ascii_uppercase());
            let kind = GatewayKind::Platform {
                serves: vec!["department".into(), "supervisor".into()],
            };
            channels.push(gateway(name, url, secret(&var)?, kind)?);
        }
        let Some(host) = &self.smtp_host else {
            if channels.is_empty() {
                channels.push(Arc::new(LogChannel));
            }
            return Ok(channels);
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
        channels.insert(0, Arc::new(email));
        Ok(channels)
    }
}

pub(super) async fn serve(args: ServeArgs, hooks: Hooks) -> anyhow::Result<()> {
    let mut config = runtime::Config::default();
    if let Some(id) = args.worker_id {
        config.worker_id = id;
    }
    config.public_url = args.public_url.map(|u| u.trim_end_matches('/').to_string());
    let channels = args.channels.channels(config.public_url.clone())?;
    config.agreement_findings = !args.no_agreement_findings;
    let evidence = args
        .evidence_store
        .clone()
        .unwrap_or_else(|| default_evidence_store(&args.db.database_url));
    config.blobs = anju_engine::blobs::Blobs::open(&evidence)
        .map_err(|e| anyhow::anyhow!("evidence store: {e}"))?;
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
        trusted_proxies: args.trusted_proxies.clone(),
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
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| crate::http::serve::TlsFiles { cert, key }),
        map: crate::web::MapSettings {
            tile_url: args.tile_url.clone(),
            gcj02: args.tile_datum == "gcj02",
            attribution: args.tile_attribution.clone(),
        },
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
