//! The runtime: the engine's one object, cut at its seams. This file holds its configuration, start-up (stores, caches, writer threads) and shared state; `writer` commits batches, `callers` authenticates and scopes, `units` and `places` are the registry and its geography, `inspections` and `cases` take people's work to the writer, `workers` run timers, the outbox and the loops, and `escalation`, `patrol`, `responsibility` and `directory` are the rules at work, patrol plans and campaigns, landlords' responsibility and the directories.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeDelta, Utc};
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use crate::auth::Principal;
use crate::domain::UnitId;
use crate::error::{Error, Result};
use crate::grading::Rubric;
use crate::metrics::Metrics;
use crate::routing::Routing;
use crate::spatial::index::UnitIndex;
use crate::store::SharedStore;
use crate::taxonomy::Taxonomy;
use crate::time::{SharedClock, truncate_millis};
use crate::workflow::{self, Definition};

pub mod calendar;
mod callers;
mod cases;
pub mod dashboard;
pub mod declarations;
pub mod directory;
pub mod escalation;
mod evidence;
mod inspections;
pub mod patrol;
pub mod places;
pub mod responsibility;
pub mod signin;
mod stats;
pub mod tips;
mod units;
mod workers;
mod writer;

pub use callers::TOKEN_RECHECK;
pub use cases::*;
pub use evidence::*;
pub use inspections::*;
pub use signin::{Session, SignIn};
pub use stats::*;
pub use units::*;
pub use workers::*;
use writer::{Work, writer};

/// Tunables of the runtime.
#[derive(Debug, Clone)]
pub struct Config {
    /// Most commands committed in one transaction.
    pub max_batch: usize,
    /// Most due timers claimed at once; bounds the work one tick adds to the queue, so a
    /// backlog of due timers cannot crowd out callers.
    pub timer_batch: u32,
    /// How long a claim on a timer or outbox row holds before another worker may take it.
    pub lease: TimeDelta,
    /// How often idle workers look for due timers and pending messages.
    pub poll: Duration,
    /// Most messages fanned out, and most deliveries claimed, in one outbox step.
    pub outbox_batch: u32,
    /// Most deliveries being sent at once (SMTP connections in use, gateway requests).
    pub outbox_concurrency: usize,
    /// A name for this process in claims (`host:pid`).
    pub worker_id: String,
    /// Workflow definitions to use instead of the built-in ones.
    pub workflows: Option<Vec<Definition>>,
    /// An inspection recorded farther than this from its unit is flagged off-site.
    pub off_site_m: f64,
    /// The address the public reaches the service at (`https://anju.example.gov.cn`),
    /// for the links in placards' QR codes; without it, the request's Host is used.
    pub public_url: Option<String>,
    /// An inspection of a unit whose party has no responsibility agreement in force
    /// records a `no_agreement` finding of its own. `anju serve` turns this on unless
    /// told not to; it is off here so that embedded uses opt in.
    pub agreement_findings: bool,
    /// Where the bytes of uploaded evidence are kept (memory unless told otherwise;
    /// `anju serve` keeps them in a directory beside the database or an object store).
    pub blobs: crate::blobs::Blobs,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_batch: 256,
            timer_batch: 500,
            lease: TimeDelta::seconds(60),
            poll: Duration::from_millis(250),
            outbox_batch: 200,
            outbox_concurrency: 16,
            worker_id: format!("pid{}", std::process::id()),
            workflows: None,
            off_site_m: 100.0,
            public_url: None,
            agreement_findings: false,
            blobs: crate::blobs::Blobs::memory(),
        }
    }
}

/// The starter rules with the published versions laid over them, and how many
/// versions were published.
async fn load_rules(
    store: &SharedStore,
    departments: BTreeSet<String>,
) -> Result<(Arc<crate::rules::RuleSet>, i64)> {
    let published = store.rule_versions().await?;
    let count = published.len() as i64;
    let set = crate::rules::RuleSet::with_published(
        published.into_iter().map(|v| (v.spec, v.source)).collect(),
        departments,
    )
    .map_err(|errors| {
        Error::Store(crate::store::Error::Corrupt(format!(
            "the published rules do not hold together: {}",
            errors.join("; ")
        )))
    })?;
    Ok((Arc::new(set), count))
}

/// The China-time hour at which `anju serve` plans the city's day (before the morning
/// shift).
pub const PLAN_HOUR: u32 = 5;

/// Open cases moved to the newest workflow version in one step of the upgrade worker.
const UPGRADE_BATCH: u32 = 200;

/// Tips whose status changes one step of the tip worker pushes, at most.
const TIP_PUSH_BATCH: u32 = 50;

/// How often the runtime looks for tables whose planner statistics went stale.
const STATISTICS_EVERY: Duration = Duration::from_secs(30);

/// The workflow definitions known to this process, by stored id.
#[derive(Debug, Default)]
struct Workflows {
    by_id: BTreeMap<i64, Arc<Definition>>,
    latest: BTreeMap<String, i64>,
}

/// The grid index, with the stamp of the grids it was built from.
pub(crate) type StampedGrids = ((i64, i64), Arc<crate::spatial::grids::GridIndex>);

struct Shared {
    store: SharedStore,
    clock: SharedClock,
    taxonomy: Taxonomy,
    rubric: Rubric,
    /// The working-day calendar in force (the newest version stored; refreshed).
    calendar: RwLock<Arc<crate::calendar::Calendar>>,
    /// The calendar version this process last re-dated the running timers under.
    redated_under: std::sync::atomic::AtomicU32,
    /// The calendar version and day this process last checked the calendar's end on.
    end_checked: std::sync::Mutex<Option<(u32, chrono::NaiveDate)>>,
    /// The rules in force, and how many published versions they were built from.
    rules: RwLock<(Arc<crate::rules::RuleSet>, i64)>,
    workflows: RwLock<Arc<Workflows>>,
    routing: RwLock<Arc<Routing>>,
    /// Every unit's position; built when the runtime starts, kept in step with units
    /// registered through it.
    index: RwLock<UnitIndex>,
    /// The grids' shapes and places, with the stamp of the grids they were built from.
    grids: RwLock<Option<StampedGrids>>,
    /// Callers' resolved scopes by (role, subject), with the directory generation they
    /// were resolved at (see `callers.rs`).
    principals: RwLock<std::collections::HashMap<(crate::domain::Role, i64), (i64, Principal)>>,
    /// Tokens seen, by digest, with when they were last read (see `callers.rs`).
    tokens: RwLock<std::collections::HashMap<String, (DateTime<Utc>, Principal)>>,
    /// Since when each delivery channel is configured, once read (it never changes).
    channels_since: RwLock<std::collections::HashMap<String, DateTime<Utc>>>,
    /// How long sending a sign-in code takes here (a moving average, milliseconds): an
    /// address nobody has is answered after as long.
    code_send_ms: std::sync::atomic::AtomicU64,
    /// Until when sign-in codes are said to be unsendable, after a server failed to take
    /// one (for every address alike, so that it tells nobody who is registered).
    code_channel_down: std::sync::Mutex<Option<std::time::Instant>>,
    /// The memory image decodes may hold at once, in megabytes: each upload takes what
    /// its header says it needs before it is decoded.
    decode_budget: Arc<tokio::sync::Semaphore>,
    metrics: Metrics,
    config: Config,
}

/// The engine's entry point. Cheap to clone; all clones share one queue of commands.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Work>,
    stop: watch::Sender<bool>,
    writers: Arc<Mutex<Vec<oneshot::Receiver<()>>>>,
}

impl Runtime {
    /// Starts the runtime over a migrated store: registers the workflow definitions,
    /// loads the department directory and starts the writers.
    pub async fn start(store: SharedStore, clock: SharedClock, config: Config) -> Result<Runtime> {
        let taxonomy = Taxonomy::builtin();
        let definitions = config.workflows.clone().unwrap_or_else(workflow::builtin);
        for def in &definitions {
            let body = serde_json::to_value(def).expect("definitions serialize");
            store
                .register_definition(
                    &def.name,
                    def.version,
                    &def.content_hash(),
                    &body,
                    clock.now(),
                )
                .await?;
        }
        let rules = load_rules(&store, taxonomy.departments.keys().cloned().collect()).await?;
        let calendar = calendar::load_calendar(&store, clock.now()).await?;
        let today = clock
            .now()
            .with_timezone(&crate::time::china_time())
            .date_naive();
        if !calendar.covers(today) {
            tracing::warn!(
                year = today.year(),
                "the working-day calendar does not list this year's public holidays; \
                 working days count weekends only (anju calendar import)"
            );
        } else if let Some(days) = calendar
            .days_left(today)
            .filter(|d| *d <= crate::calendar::WARN_DAYS)
        {
            tracing::warn!(
                days_left = days,
                last_day = ?calendar.last_day(),
                "the working-day calendar nears its end: import next year's holidays when the \
                 State Council publishes them (anju calendar import)"
            );
        }
        let shared = Arc::new(Shared {
            store,
            clock,
            taxonomy,
            rubric: Rubric::builtin(),
            calendar: RwLock::new(Arc::new(calendar)),
            redated_under: Default::default(),
            end_checked: Default::default(),
            rules: RwLock::new(rules),
            workflows: RwLock::new(Arc::new(Workflows::default())),
            routing: RwLock::new(Arc::new(Routing::default())),
            index: RwLock::new(UnitIndex::default()),
            grids: RwLock::new(None),
            principals: RwLock::new(Default::default()),
            tokens: RwLock::new(Default::default()),
            channels_since: RwLock::new(Default::default()),
            code_send_ms: Default::default(),
            code_channel_down: Default::default(),
            decode_budget: Arc::new(tokio::sync::Semaphore::new(
                evidence::DECODE_BUDGET_MB as usize,
            )),
            metrics: Metrics::default(),
            config,
        });
        reload_workflows(&shared).await?;
        reload_routing(&shared).await?;
        reload_index(&shared).await?;
        let (queue, rx) = mpsc::channel::<Work>(16_384);
        let rx = Arc::new(Mutex::new(rx));
        let (stop, _) = watch::channel(false);
        let mut handles = Vec::new();
        for n in 0..shared.store.writers() {
            // Each writer runs on a thread of its own, so that a batch's next statement
            // never waits behind the callers' tasks for a turn on the shared runtime.
            let (done, finished) = oneshot::channel::<()>();
            let (shared, rx, stop) = (shared.clone(), rx.clone(), stop.subscribe());
            std::thread::Builder::new()
                .name(format!("anju-writer-{n}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a writer runtime");
                    rt.block_on(writer(shared, rx, stop));
                    let _ = done.send(());
                })
                .map_err(|e| Error::Internal(format!("cannot start a writer thread: {e}")))?;
            handles.push(finished);
        }
        // Takes up a calendar version imported by any process, within seconds.
        {
            let (rt_shared, mut stop) = (shared.clone(), stop.subscribe());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(calendar::CALENDAR_EVERY) => {}
                        _ = stop.changed() => return,
                    }
                    if let Err(e) = calendar::refresh(&rt_shared).await {
                        tracing::warn!(error = %e, "reading the working-day calendar");
                    }
                }
            });
        }
        // Keeps the planner's statistics in step with tables that grow fast.
        {
            let store = shared.store.clone();
            let mut stop = stop.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(STATISTICS_EVERY) => {}
                        _ = stop.changed() => return,
                    }
                    match store.refresh_statistics().await {
                        Ok(tables) if !tables.is_empty() => {
                            tracing::info!(?tables, "refreshed planner statistics");
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "refreshing planner statistics"),
                    }
                }
            });
        }
        Ok(Runtime {
            shared,
            queue,
            stop,
            writers: Arc::new(Mutex::new(handles)),
        })
    }

    /// Which database the store runs on.
    pub fn backend(&self) -> crate::store::Backend {
        self.shared.store.backend()
    }

    pub fn store(&self) -> &SharedStore {
        &self.shared.store
    }

    pub fn clock(&self) -> &SharedClock {
        &self.shared.clock
    }

    /// The current time at the database's precision (milliseconds).
    pub fn now(&self) -> DateTime<Utc> {
        truncate_millis(self.shared.clock.now())
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.shared.taxonomy
    }

    pub fn rubric(&self) -> &Rubric {
        &self.shared.rubric
    }

    /// The escalation rules in force.
    pub fn rules(&self) -> Arc<crate::rules::RuleSet> {
        self.shared.rules.read().expect("rules lock").0.clone()
    }

    /// Takes up rule versions another process published, if there are any.
    pub async fn refresh_rules(&self) -> Result<()> {
        let count = self.shared.store.rule_version_count().await?;
        if count == self.shared.rules.read().expect("rules lock").1 {
            return Ok(());
        }
        let departments = self.rules().departments().clone();
        let (set, count) = load_rules(&self.shared.store, departments).await?;
        self.swap_rules(set, count);
        Ok(())
    }

    fn swap_rules(&self, set: Arc<crate::rules::RuleSet>, count: i64) {
        let mut held = self.shared.rules.write().expect("rules lock");
        set.carry_counts(&held.0);
        *held = (set, count);
    }

    /// Publishes a new version of a rule (or a new rule), city supervisors only. The
    /// version must be above the one in force; the script must compile and the whole set
    /// with it must hold together. It takes effect at once here, and in other processes
    /// at their rule worker's next step.
    pub async fn publish_rule(
        &self,
        principal: &Principal,
        spec: crate::rules::RuleSpec,
        source: String,
    ) -> Result<crate::store::RuleVersion> {
        crate::policy::check(principal, crate::policy::Act::PublishRule)?;
        if !crate::rules::valid_name(&spec.name) {
            return Err(Error::invalid("name", "1 to 64 of a-z, 0-9 and _"));
        }
        if spec.on.is_empty() {
            return Err(Error::invalid("on", "name at least one event"));
        }
        if spec.zh.trim().is_empty() || spec.en.trim().is_empty() {
            return Err(Error::invalid(
                if spec.zh.trim().is_empty() {
                    "zh"
                } else {
                    "en"
                },
                "describe the rule in Chinese and in English",
            ));
        }
        let current = self.rules();
        if let Some((spec_now, _)) = current.rule(&spec.name)
            && spec.version <= spec_now.version
        {
            return Err(Error::invalid(
                "version",
                format!(
                    "rule `{}` is at version {}; publish a higher version",
                    spec.name, spec_now.version
                ),
            ));
        }
        crate::rules::RuleSet::from_parts(
            vec![(spec.clone(), source.clone())],
            current.departments().clone(),
            crate::rules::Limits::default(),
        )
        .map_err(|errors| Error::invalid("source", errors.join("; ")))?;
        let version = crate::store::RuleVersion {
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(source.as_bytes())),
            spec,
            source,
            published_at: self.now(),
            published_by: format!("supervisor:{}", principal.subject),
        };
        self.shared.store.publish_rule_version(&version).await?;
        let (set, count) = load_rules(&self.shared.store, current.departments().clone()).await?;
        self.swap_rules(set, count);
        Ok(version)
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub(crate) fn grids_cache(&self) -> &RwLock<Option<StampedGrids>> {
        &self.shared.grids
    }

    /// Puts a unit at `to` in the unit index (from `from`, if it was indexed there).
    pub(crate) fn index_unit(&self, id: UnitId, from: Option<(f64, f64)>, to: (f64, f64)) {
        self.shared
            .index
            .write()
            .expect("index lock")
            .relocate(id, from, to);
    }

    /// The stored ids of a workflow's definitions other than `except`.
    pub(crate) fn definitions_of(&self, name: &str, except: i64) -> Vec<i64> {
        let w = self.shared.workflows.read().expect("workflow lock").clone();
        w.by_id
            .iter()
            .filter(|(id, d)| d.name == name && **id != except)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The department directory as loaded.
    pub fn routing(&self) -> Arc<Routing> {
        self.shared.routing.read().expect("routing lock").clone()
    }

    /// The routing table, for the callers who may read it.
    pub fn routing_for(&self, principal: &Principal) -> Result<Arc<Routing>> {
        crate::policy::check(principal, crate::policy::Act::ReadRouting)?;
        Ok(self.routing())
    }

    /// The rules in force, for the callers who may read them.
    pub fn rules_for(&self, principal: &Principal) -> Result<Arc<crate::rules::RuleSet>> {
        crate::policy::check(principal, crate::policy::Act::ReadRules)?;
        Ok(self.rules())
    }

    /// Re-reads the department directory and the streets with supervisors (after an
    /// import).
    pub async fn reload_routing(&self) -> Result<()> {
        reload_routing(&self.shared).await
    }

    /// Rebuilds the spatial index from the store (after an import).
    pub async fn reload_index(&self) -> Result<()> {
        reload_index(&self.shared).await
    }

    /// How many units the spatial index holds.
    pub fn indexed_units(&self) -> usize {
        self.shared.index.read().expect("index lock").len()
    }

    /// The newest version of a workflow.
    pub fn latest_definition(&self, name: &str) -> Option<(i64, Arc<Definition>)> {
        let w = self.shared.workflows.read().expect("workflow lock").clone();
        let id = *w.latest.get(name)?;
        Some((id, w.by_id[&id].clone()))
    }

    pub fn definition(&self, id: i64) -> Option<Arc<Definition>> {
        let w = self.shared.workflows.read().expect("workflow lock").clone();
        w.by_id.get(&id).cloned()
    }

    /// Stops the writers once the commands already queued are committed.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let handles: Vec<_> = self.writers.lock().await.drain(..).collect();
        for h in handles {
            let _ = h.await;
        }
    }
}

async fn reload_workflows(shared: &Shared) -> Result<()> {
    let mut w = Workflows::default();
    for (id, body) in shared.store.definitions().await? {
        let def: Definition = serde_json::from_value(body).map_err(|e| {
            crate::store::Error::Corrupt(format!("stored workflow definition {id}: {e}"))
        })?;
        let newest = w
            .latest
            .get(&def.name)
            .is_none_or(|other| w.by_id[other].version < def.version);
        if newest {
            w.latest.insert(def.name.clone(), id);
        }
        w.by_id.insert(id, Arc::new(def));
    }
    *shared.workflows.write().expect("workflow lock") = Arc::new(w);
    Ok(())
}

async fn reload_index(shared: &Shared) -> Result<()> {
    let points = shared.store.unit_points().await?;
    let index = tokio::task::spawn_blocking(move || UnitIndex::bulk(points))
        .await
        .map_err(|e| Error::Internal(format!("building the unit index: {e}")))?;
    *shared.index.write().expect("index lock") = index;
    Ok(())
}

async fn reload_routing(shared: &Shared) -> Result<()> {
    let streets = shared
        .store
        .supervisors()
        .await?
        .into_iter()
        .filter(|s| s.level == "street")
        .filter_map(|s| s.street_id);
    let routing = Routing::new(shared.store.departments().await?).with_supervised_streets(streets);
    *shared.routing.write().expect("routing lock") = Arc::new(routing);
    Ok(())
}
