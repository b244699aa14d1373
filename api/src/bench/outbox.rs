//! `anju bench --outbox N`: N rectification orders e-mailed through the outbox worker to a real SMTP server on loopback (`anju smtp-sink`, a child process, so that its CPU is measured apart), with pooled connections: deliveries per second and the CPU each side used.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::TimeDelta;

use anju_engine::auth::Principal;
use anju_engine::outbox::{Channel, Channels, EmailChannel, SmtpSettings, SmtpTls};
use anju_engine::runtime::Runtime;
use anju_engine::time::{Clock, ManualClock};

use super::http::cpu_seconds;
use super::{issue_orders, open_cases};

/// The SMTP sink as a child process, once it listens.
struct Sink {
    child: Child,
    port: u16,
}

impl Sink {
    fn start() -> anyhow::Result<Sink> {
        let exe = std::env::current_exe().context("finding the anju binary")?;
        let mut child = Command::new(exe)
            .arg("smtp-sink")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting anju smtp-sink")?;
        let stdout = child.stdout.take().context("the sink's output")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the sink said `{}`", line.trim()))?;
        Ok(Sink { child, port })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens `n` cases, issues their orders (one e-mail to a landlord each), and drains
/// the outbox to the sink.
pub(crate) async fn bench_outbox(
    runtime: &Runtime,
    clock: &ManualClock,
    city: &Principal,
    n: u64,
) -> anyhow::Result<()> {
    // E-mail is configured from now: what the earlier phases wrote is not e-mailed.
    let store = runtime.store();
    clock.advance(TimeDelta::seconds(1));
    store.channel_since("email", clock.now()).await?;
    clock.advance(TimeDelta::seconds(1));
    let cases = open_cases(runtime, city, store, n as usize, None).await?;
    issue_orders(runtime, cases).await?;
    let sink = Sink::start()?;
    let email = EmailChannel::new(&SmtpSettings {
        host: "127.0.0.1".into(),
        port: sink.port,
        tls: SmtpTls::None,
        user: None,
        password: None,
        from: "安居 <notices@anju.example>".into(),
        public_url: Some("https://anju.example".into()),
        pool: 16,
        timeout: std::time::Duration::from_secs(30),
    })
    .map_err(|e| anyhow::anyhow!(e))?;
    let channels: Channels = vec![Arc::new(email) as Arc<dyn Channel>];
    let (own0, sink0) = (
        cpu_seconds(std::process::id()),
        cpu_seconds(sink.child.id()),
    );
    let started = Instant::now();
    let (mut sent, mut failed, mut dead) = (0, 0, 0);
    loop {
        let tick = runtime.deliver_outbox(&channels).await?;
        sent += tick.delivered;
        failed += tick.failed;
        dead += tick.dead;
        if tick.claimed == 0 && tick.sending == 0 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let share = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(b), Some(a)) => format!("{:.0} %", (a - b) / secs * 100.0),
        _ => "?".into(),
    };
    println!(
        "outbox: {sent} e-mails sent in {secs:.1}s ({:.0}/s; {failed} failed, {dead} dead), \
         {} SMTP connections at most; CPU: anju {} (engine and database client), SMTP sink {}",
        sent as f64 / secs,
        16,
        share(own0, cpu_seconds(std::process::id())),
        share(sink0, cpu_seconds(sink.child.id())),
    );
    Ok(())
}

/// `anju smtp-sink`: an SMTP server on a free loopback port that accepts every message
/// and keeps nothing (for `anju bench --outbox`); prints its address, then serves until
/// killed.
pub fn smtp_sink() -> anyhow::Result<()> {
    use std::io::Write;
    #[derive(Clone)]
    struct Accept;
    impl mailin_embedded::Handler for Accept {}
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut server = mailin_embedded::Server::new(Accept);
    server
        .with_name("sink.anju")
        .with_num_threads(32)
        .with_tcp_listener(listener);
    println!("listening on {addr}");
    std::io::stdout().flush()?;
    server
        .serve()
        .map_err(|e| anyhow::anyhow!("smtp sink: {e}"))
}
