//! `anju bench --http`: the transitions benchmark over HTTP, against a real `anju serve` process on loopback, with the client's and the server's CPU measured.
//!
//! The benchmark seeds a database, opens and notifies one case per client slot (in
//! process), issues tokens for the cases' landlords and inspectors, then starts
//! `anju serve --no-workers` on the database and drives `POST /cases/{id}/commands`
//! from one connection per client: each client cycles its cases through
//! acknowledge → report fix → failed re-inspection, with the version from the last
//! answer, as a real client does. The client runs in this process and shares the
//! machine's cores with the server; the CPU time of each is read from `/proc` (ticks
//! of 1/100 s, Linux's `CLK_TCK`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use anju_engine::auth::{Principal, Scope, token_digest};
use anju_engine::domain::Role;
use anju_engine::machine::CaseSnapshot;
use anju_engine::runtime::{self, Runtime};
use anju_engine::store::SharedStore;
use anju_engine::time::{ManualClock, SharedClock};

use crate::bench::{BenchArgs, CASES_PER_CLIENT, next_command, open_cases};

/// One client's cases, with the tokens that act on them.
struct Slot {
    case: CaseSnapshot,
    /// The photo its fix reports reference.
    photo: String,
    landlord: String,
    inspector: String,
}

/// Runs the HTTP benchmark on the database at `url`.
pub(crate) async fn bench_backend(name: &str, url: &str, args: &BenchArgs) -> anyhow::Result<()> {
    println!("\n== {name}, over HTTP ==");
    let store = crate::app::open_store(url).await?;
    crate::cli::seed(&store, 2_000, 7, chrono::Utc::now()).await?;
    let max_clients = args.clients.iter().copied().max().unwrap_or(1);
    let slots = prepare(&store, max_clients * CASES_PER_CLIENT).await?;
    drop(store);
    let mut server = Server::start(url)?;
    let base = server.base.clone();
    println!(
        "{:>8} {:>14} {:>10} {:>10} {:>10} {:>12} {:>12}",
        "clients", "transitions/s", "p50 ms", "p99 ms", "max ms", "client CPU", "server CPU"
    );
    let mut slots = slots;
    for &clients in &args.clients {
        let result = level(&base, &mut slots, clients, args.seconds, server.pid()).await;
        if let Err(e) = result {
            server.stop();
            return Err(e);
        }
    }
    server.stop();
    Ok(())
}

/// Opens and notifies the cases, and issues a token for each case's landlord and for
/// an inspector of its grid.
async fn prepare(store: &SharedStore, n: usize) -> anyhow::Result<Vec<Slot>> {
    let clock = ManualClock::new(chrono::Utc::now());
    let runtime = Runtime::start(
        store.clone(),
        Arc::new(clock) as SharedClock,
        runtime::Config::default(),
    )
    .await?;
    let city = Principal {
        role: Role::Supervisor,
        subject: 1,
        scope: Scope::City,
        account: None,
    };
    let opened = open_cases(&runtime, &city, store, n, Some("wiring")).await?;
    let photo = match opened.first() {
        Some(c) => crate::bench::case_photo(store, c.id).await?,
        None => String::new(),
    };
    let mut slots = Vec::with_capacity(n);
    let now = runtime.now();
    for (i, case) in opened.into_iter().enumerate() {
        let party = case.party_id.context("a bench case has a party")?;
        let grid = case.grid_id.context("a bench case has a grid")?;
        let inspector = *store
            .grid_inspectors(grid)
            .await?
            .first()
            .context("every grid has an inspector")?;
        let landlord = format!("bench-landlord-{i}-{}", std::process::id());
        let staff = format!("bench-inspector-{i}-{}", std::process::id());
        store
            .insert_token(
                &token_digest(&landlord),
                Role::Landlord,
                party.0,
                None,
                None,
                None,
                now,
            )
            .await?;
        store
            .insert_token(
                &token_digest(&staff),
                Role::Inspector,
                inspector.0,
                None,
                None,
                None,
                now,
            )
            .await?;
        let committed = runtime
            .execute(
                &city,
                case.id,
                anju_engine::machine::Command {
                    name: "notify".into(),
                    ..Default::default()
                },
                Some(case.version),
            )
            .await?;
        slots.push(Slot {
            case: committed.case.snapshot,
            photo: photo.clone(),
            landlord,
            inspector: staff,
        });
    }
    runtime.shutdown().await;
    Ok(slots)
}

/// `anju serve` on the database, as a child process, once it listens.
pub(crate) struct Server {
    child: Child,
    base: String,
}

impl Server {
    pub(crate) fn start(url: &str) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("finding the anju binary")?;
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--no-workers",
                "--database-url",
            ])
            .arg(url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting anju serve")?;
        let stdout = child.stdout.take().context("serve's output")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let base = loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                let _ = child.kill();
                anyhow::bail!("anju serve stopped before it listened");
            }
            if let Some(at) = line.trim().strip_prefix("listening on ") {
                break at.to_string();
            }
        };
        Ok(Server { child, base })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User and system CPU seconds of a process so far.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// One concurrency level: `clients` connections for `seconds`.
async fn level(
    base: &str,
    slots: &mut [Slot],
    clients: usize,
    seconds: u64,
    server: u32,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let (client0, server0) = (cpu_seconds(std::process::id()), cpu_seconds(server));
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for chunk in slots.chunks_mut(CASES_PER_CLIENT).take(clients) {
        let mine: Vec<Slot> = chunk
            .iter()
            .map(|s| Slot {
                case: s.case.clone(),
                photo: s.photo.clone(),
                landlord: s.landlord.clone(),
                inspector: s.inspector.clone(),
            })
            .collect();
        let (base, stop) = (base.to_string(), stop.clone());
        tasks.push(tokio::spawn(client(base, mine, stop)));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut finished = Vec::new();
    for t in tasks {
        let (latencies, cases) = t.await??;
        all.extend(latencies);
        finished.extend(cases);
    }
    let elapsed = begin.elapsed().as_secs_f64();
    for (slot, case) in slots.iter_mut().zip(finished) {
        slot.case = case;
    }
    let share = |before: Option<f64>, pid: u32| match (before, cpu_seconds(pid)) {
        (Some(b), Some(a)) => format!("{:.0} %", (a - b) / elapsed * 100.0),
        _ => "n/a".into(),
    };
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{:>8} {:>14.0} {:>10.2} {:>10.2} {:>10.2} {:>12} {:>12}",
        clients,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        share(client0, std::process::id()),
        share(server0, server)
    );
    Ok(())
}

/// One client on its own connection: cycles its cases until told to stop, and returns
/// its latencies and its cases as it last saw them.
async fn client(
    base: String,
    mut mine: Vec<Slot>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(Vec<Duration>, Vec<CaseSnapshot>)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .build()?;
    let mut latencies = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let n = mine.len();
        let slot = &mut mine[i % n];
        i += 1;
        let (command, data) = next_command(&slot.case.state, &slot.photo);
        let token = match command {
            "acknowledge" | "report_fix" => &slot.landlord,
            _ => &slot.inspector,
        };
        let body = json!({
            "command": command,
            "expected_version": slot.case.version,
            "data": data,
        });
        let t = Instant::now();
        let reply = http
            .post(format!("{base}/api/v1/cases/{}/commands", slot.case.id))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        let status = reply.status();
        let answer: Value = reply.json().await?;
        latencies.push(t.elapsed());
        anyhow::ensure!(
            status.is_success(),
            "{command} on case {}: {answer}",
            slot.case.id
        );
        let case = &answer["case"];
        slot.case.state = case["state"].as_str().context("state")?.to_string();
        slot.case.version = case["version"].as_i64().context("version")?;
    }
    Ok((latencies, mine.into_iter().map(|s| s.case).collect()))
}
