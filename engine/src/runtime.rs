//! The runtime: authenticates callers, opens cases, applies commands in durable batches (state, event, timers and outbox in one transaction), and runs the timer and outbox workers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::auth::{Principal, Scope};
use crate::domain::{
    Actor, CaseId, DepartmentId, InspectorId, PartyId, Point, Role, SupervisorId, UnitId,
};
use crate::error::{Error, FieldError, Result};
use crate::grading::{Checklist, OpenHazard, Rubric};
use crate::machine::{self, CaseSnapshot, Command, Context};
use crate::metrics::Metrics;
use crate::outbox::Deliverer;
use crate::planning::{ATTEMPT_RETRY, VisitOutcome};
use crate::registry::Unit;
use crate::routing::Routing;
use crate::spatial::crs::Crs;
use crate::spatial::index::{Hit, UnitIndex};
use crate::store::{
    Applied, Attachment, CaseFilter, CaseRecord, EventRecord, GradeUpdate, IdempotencyKey,
    Idempotent, NewCase, NewInspection, OutboxMessage, Overdue, RecordedInspection, ReferralRecord,
    SharedStore, TimerRecord, TransitionRequest,
};
use crate::taxonomy::Taxonomy;
use crate::time::{SharedClock, truncate_millis};
use crate::workflow::{self, Definition, FieldKind, HAZARD_CASE, TimerDue};

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
    pub outbox_batch: u32,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_batch: 256,
            timer_batch: 500,
            lease: TimeDelta::seconds(60),
            poll: Duration::from_millis(250),
            outbox_batch: 200,
            worker_id: format!("pid{}", std::process::id()),
            workflows: None,
            off_site_m: 100.0,
            public_url: None,
            agreement_findings: false,
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
    calendar: crate::calendar::Calendar,
    /// The rules in force, and how many published versions they were built from.
    rules: RwLock<(Arc<crate::rules::RuleSet>, i64)>,
    workflows: RwLock<Arc<Workflows>>,
    routing: RwLock<Arc<Routing>>,
    /// Every unit's position; built when the runtime starts, kept in step with units
    /// registered through it.
    index: RwLock<UnitIndex>,
    /// The grids' shapes and places, with the stamp of the grids they were built from.
    grids: RwLock<Option<StampedGrids>>,
    metrics: Metrics,
    config: Config,
}

struct Job {
    request: TransitionRequest,
    principal: Principal,
    command: Command,
    reply: oneshot::Sender<Result<Applied>>,
}

/// A whole inspection for the writer: its row, its new cases, the findings attached to
/// open cases, the unit's grade and the rule job of a grade drop, in one transaction.
struct InspectionJob {
    inspection: NewInspection,
    cases: Vec<NewCase>,
    attachments: Vec<Attachment>,
    idem: Option<IdempotencyKey>,
    /// The answer stored for the inspection's Idempotency-Key.
    respond: Box<dyn Fn(&RecordedInspection) -> Value + Send + Sync>,
    reply: oneshot::Sender<Result<Idempotent<RecordedInspection>>>,
}

/// What the writers are given: every change to an existing case goes through them.
enum Work {
    Command(Job),
    /// Commands applied in order in one batch (a rule job's actions).
    Commands(Vec<Job>),
    Inspection(InspectionJob),
}

/// The engine's entry point. Cheap to clone; all clones share one queue of commands.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
    queue: mpsc::Sender<Work>,
    stop: watch::Sender<bool>,
    writers: Arc<Mutex<Vec<oneshot::Receiver<()>>>>,
}

/// A case with its history, timers and referrals, as a caller may see it.
#[derive(Debug, Clone, Serialize)]
pub struct CaseView {
    pub case: CaseRecord,
    pub workflow: String,
    pub workflow_version: u32,
    pub state_zh: String,
    pub state_en: String,
    pub terminal: bool,
    pub history: Vec<EventRecord>,
    pub timers: Vec<TimerRecord>,
    pub referrals: Vec<ReferralRecord>,
    /// The commands this caller could issue now.
    pub commands: Vec<String>,
}

/// One hazard found on an inspection.
#[derive(Debug, Clone)]
pub struct Finding {
    pub category: String,
    pub severity: Option<String>,
    pub note: Option<String>,
    pub evidence: Vec<String>,
}

/// An inspection as submitted, already parsed.
#[derive(Debug, Clone)]
pub struct InspectionInput {
    pub unit_id: UnitId,
    /// In WGS-84, whatever the device reported in.
    pub point: Point,
    /// The datum the device reported in.
    pub crs: Crs,
    /// A grading checklist, if the inspection graded the unit.
    pub checklist: Option<Checklist>,
    /// Answers to the checklist of the campaign the visit counts for.
    pub campaign_checks: Option<std::collections::BTreeMap<String, bool>>,
    pub note: Option<String>,
    pub findings: Vec<Finding>,
    /// How the visit ended.
    pub outcome: VisitOutcome,
}

/// A unit registration as submitted.
#[derive(Debug, Clone)]
pub struct UnitInput {
    pub building_id: i64,
    pub address_code: String,
    pub address: String,
    pub lon: f64,
    pub lat: f64,
    pub floor_area: f64,
    pub occupants: i64,
    pub party_id: Option<PartyId>,
}

/// An inspection and the cases it opened.
#[derive(Debug, Clone, Serialize)]
pub struct InspectionOutcome {
    pub inspection_id: crate::domain::InspectionId,
    pub unit_id: UnitId,
    pub distance_m: f64,
    pub off_site: bool,
    /// The cases opened.
    pub cases: Vec<CaseSnapshot>,
    /// For each opened case, the indexes of the findings it holds.
    pub findings_of_cases: Vec<Vec<usize>>,
    /// Findings attached to the unit's open case of the same category.
    pub attached: Vec<AttachedFinding>,
    /// Open cases of the same category on other units of the building, close by.
    pub possible_duplicates: Vec<PossibleDuplicate>,
    /// The unit's grade after the inspection.
    pub grade: GradeView,
}

/// A unit's grade as a caller sees it after a change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradeView {
    pub stars: Option<u8>,
    pub score: Option<f64>,
    pub reasons: Vec<String>,
    /// The stars changed.
    pub changed: bool,
    /// The next patrol.
    pub next_due_at: Option<DateTime<Utc>>,
}

/// A page of units found by a query: the units, how many the caller may see in all,
/// and the id after which the next page starts (if there is one).
#[derive(Debug, Clone)]
pub struct UnitPage {
    pub units: Vec<(Unit, Option<f64>)>,
    pub total: usize,
    pub next_after: Option<UnitId>,
}

/// A finding attached to an open case instead of opening another.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AttachedFinding {
    pub finding: usize,
    pub case_id: CaseId,
}

/// An open case that a finding may duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PossibleDuplicate {
    pub finding: usize,
    pub case_id: CaseId,
    pub unit_id: UnitId,
    pub distance_m: f64,
}

/// The findings of one category in an inspection, merged into one hazard.
struct Hazard {
    category: String,
    severity: String,
    note: Option<String>,
    evidence: Vec<String>,
    /// Indexes of the findings in the inspection.
    findings: Vec<usize>,
}

/// The category of a unit without a responsibility agreement in force.
pub const NO_AGREEMENT: &str = "no_agreement";

/// How close an open case of the same category on another unit of the building must be
/// to be offered as a possible duplicate.
pub const DUPLICATE_RADIUS_M: f64 = 50.0;

/// What one step of the timer worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TimerTick {
    pub claimed: usize,
    pub fired: usize,
    /// Already fired elsewhere or cancelled.
    pub skipped: usize,
    /// Fired, but the case no longer accepted the command (the timer is consumed).
    pub refused: usize,
}

/// What one step of the outbox worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxTick {
    pub claimed: usize,
    pub delivered: usize,
    pub failed: usize,
}

/// The most findings one inspection may carry.
pub const MAX_FINDINGS: usize = 20;

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
        let calendar = crate::calendar::Calendar::builtin();
        let today = clock
            .now()
            .with_timezone(&crate::time::china_time())
            .date_naive();
        if !calendar.covers(today) {
            tracing::warn!(
                year = today.year(),
                "workflows/calendar.toml does not list this year's public holidays; \
                 working days count weekends only"
            );
        }
        let shared = Arc::new(Shared {
            store,
            clock,
            taxonomy,
            rubric: Rubric::builtin(),
            calendar,
            rules: RwLock::new(rules),
            workflows: RwLock::new(Arc::new(Workflows::default())),
            routing: RwLock::new(Arc::new(Routing::default())),
            index: RwLock::new(UnitIndex::default()),
            grids: RwLock::new(None),
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
        if !(principal.role == Role::Supervisor && principal.scope == Scope::City) {
            return Err(Error::Forbidden(
                "rules are published by city-level supervisors".into(),
            ));
        }
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

    /// Re-reads the department directory (after an import).
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

    // ----- callers ----------------------------------------------------------------------

    /// Resolves a bearer token to a principal with its scope. `None` for unknown or
    /// revoked tokens, and for tokens whose subject no longer exists.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        let digest = crate::auth::token_digest(secret);
        let Some(token) = self.shared.store.token(&digest).await? else {
            return Ok(None);
        };
        self.principal(token.role, token.subject).await
    }

    /// The principal for a role and subject id, if the subject exists.
    pub async fn principal(&self, role: Role, subject: i64) -> Result<Option<Principal>> {
        let store = &self.shared.store;
        let scope = match role {
            Role::Inspector => match store.inspector_grids(InspectorId(subject)).await? {
                Some(grids) => Scope::Grids(grids),
                None => return Ok(None),
            },
            Role::Landlord => {
                if !store.party_exists(PartyId(subject)).await? {
                    return Ok(None);
                }
                Scope::Party(PartyId(subject))
            }
            Role::Department => {
                if !store.department_exists(DepartmentId(subject)).await? {
                    return Ok(None);
                }
                Scope::Department(DepartmentId(subject))
            }
            Role::Supervisor => match store.supervisor(SupervisorId(subject)).await? {
                Some(s) => match (s.level.as_str(), s.district_code, s.street_id) {
                    ("city", _, _) => Scope::City,
                    ("district", Some(code), _) => Scope::District(code),
                    ("street", _, Some(street)) => Scope::Street(street),
                    _ => return Ok(None),
                },
                None => return Ok(None),
            },
            Role::System => return Ok(None),
        };
        Ok(Some(Principal {
            role,
            subject,
            scope,
        }))
    }

    /// Makes an API token for an existing subject; returns the secret, shown once.
    pub async fn create_token(
        &self,
        role: Role,
        subject: i64,
        label: Option<&str>,
    ) -> Result<String> {
        if role == Role::System {
            return Err(Error::invalid(
                "role",
                "tokens are for people and departments",
            ));
        }
        if self.principal(role, subject).await?.is_none() {
            return Err(Error::not_found(
                match role {
                    Role::Inspector => "inspector",
                    Role::Landlord => "party",
                    Role::Department => "department",
                    _ => "supervisor",
                },
                subject,
            ));
        }
        let token = crate::auth::new_token();
        self.shared
            .store
            .insert_token(&token.digest, role, subject, label, self.now())
            .await?;
        Ok(token.secret)
    }

    // ----- registry ---------------------------------------------------------------------

    /// A unit, if the caller may see it.
    pub async fn unit(&self, principal: &Principal, id: UnitId) -> Result<Unit> {
        match self.shared.store.unit(id).await? {
            Some(u) if principal.covers(u.place()) => Ok(u),
            _ => Err(Error::not_found("unit", id)),
        }
    }

    /// Hands a unit to another responsible party (or to nobody). Inspectors and
    /// supervisors do this for units in their jurisdiction; the new party must exist,
    /// and its role defaults to the party's kind.
    pub async fn change_unit_party(
        &self,
        principal: &Principal,
        id: UnitId,
        party: Option<PartyId>,
        role: Option<String>,
    ) -> Result<Unit> {
        if !matches!(principal.role, Role::Inspector | Role::Supervisor) {
            return Err(Error::Forbidden(
                "responsible parties are recorded by inspectors and supervisors".into(),
            ));
        }
        let unit = self.unit(principal, id).await?;
        let store = &self.shared.store;
        let party = match party {
            Some(p) => {
                let kind = store
                    .party_kind(p)
                    .await?
                    .ok_or_else(|| Error::invalid("party_id", format!("no party {p}")))?;
                let role = role.unwrap_or(kind);
                crate::registry::check_party_kind("role", &role)?;
                Some((p, role))
            }
            None => None,
        };
        if party.as_ref().map(|(p, _)| *p) == unit.party_id {
            return Err(Error::Conflict(format!(
                "unit {id} already has this responsible party"
            )));
        }
        // A blacklisted party takes on no more units while the entry is in force.
        if let Some((p, _)) = &party
            && self.is_blacklisted(*p).await?
        {
            return Err(Error::Conflict(format!(
                "party {p} is on the blacklist and cannot take on units"
            )));
        }
        store.set_unit_party(id, party, self.now()).await?;
        self.unit(principal, id).await
    }

    /// A unit's responsibility history, for callers who may see the unit.
    pub async fn unit_parties(
        &self,
        principal: &Principal,
        id: UnitId,
    ) -> Result<Vec<crate::store::UnitPartyRecord>> {
        self.unit(principal, id).await?;
        Ok(self.shared.store.unit_parties(id).await?)
    }

    // ----- geography --------------------------------------------------------------------

    /// Resolves index hits to the units the caller may see, keeping the hits' order,
    /// at most `limit` of them.
    async fn visible_units(
        &self,
        principal: &Principal,
        hits: Vec<Hit>,
        limit: usize,
    ) -> Result<Vec<(Unit, Option<f64>)>> {
        let mut out = Vec::new();
        // Look units up a page at a time, so that a query over a dense area does not
        // load every unit in it when the caller sees few of them.
        for page in hits.chunks(500) {
            let ids: Vec<UnitId> = page.iter().map(|h| h.id).collect();
            let mut units: std::collections::HashMap<UnitId, Unit> = self
                .shared
                .store
                .units_by_ids(&ids)
                .await?
                .into_iter()
                .map(|u| (u.id, u))
                .collect();
            for h in page {
                if let Some(u) = units.remove(&h.id)
                    && principal.covers(u.place())
                {
                    out.push((u, h.distance_m));
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Units within `radius_m` of `center` that the caller may see, nearest first (at
    /// most `limit`), and how many the caller may see in the circle.
    pub async fn units_near(
        &self,
        principal: &Principal,
        center: Point,
        radius_m: f64,
        limit: usize,
    ) -> Result<(Vec<(Unit, Option<f64>)>, usize)> {
        let hits = self
            .shared
            .index
            .read()
            .expect("index lock")
            .within_radius(center, radius_m);
        let units = self.visible_units(principal, hits.clone(), limit).await?;
        let total = if units.len() < limit {
            units.len()
        } else if matches!(principal.scope, Scope::City | Scope::System) {
            hits.len()
        } else {
            self.count_visible(principal, &hits).await?
        };
        Ok((units, total))
    }

    /// The `k` units nearest to `center` among those the caller may see.
    pub async fn units_nearest(
        &self,
        principal: &Principal,
        center: Point,
        k: usize,
    ) -> Result<Vec<(Unit, Option<f64>)>> {
        // Ask the index for more than k when the caller sees only part of the city, and
        // widen until k visible units are found or the city is exhausted.
        let total = self.indexed_units();
        let mut want = k;
        loop {
            let hits = self
                .shared
                .index
                .read()
                .expect("index lock")
                .nearest(center, want);
            let found = self.visible_units(principal, hits, k).await?;
            if found.len() >= k || want >= total {
                return Ok(found);
            }
            want = (want * 8).min(total);
        }
    }

    /// The units inside an area (given in `crs`, edges included) that the caller may
    /// see, by id: at most `limit` after `after`, with the total and where the next page
    /// starts.
    pub async fn units_in_area(
        &self,
        principal: &Principal,
        area: &crate::spatial::shape::Area,
        crs: Crs,
        after: Option<UnitId>,
        limit: usize,
    ) -> Result<UnitPage> {
        let hits = self
            .shared
            .index
            .read()
            .expect("index lock")
            .within_area(area, crs);
        self.page_of_units(principal, hits, after, limit).await
    }

    /// A page of the visible units among `hits` (sorted by id), with their total.
    async fn page_of_units(
        &self,
        principal: &Principal,
        hits: Vec<Hit>,
        after: Option<UnitId>,
        limit: usize,
    ) -> Result<UnitPage> {
        let start = after.map_or(0, |a| hits.partition_point(|h| h.id <= a));
        let before = &hits[..start];
        let rest = &hits[start..];
        let units = self.visible_units(principal, rest.to_vec(), limit).await?;
        // The total counts every visible hit; a caller who sees the whole city sees
        // them all, anyone else has them checked against the store.
        let total = if matches!(principal.scope, Scope::City | Scope::System) {
            hits.len()
        } else {
            let counted = self.count_visible(principal, before).await?;
            let beyond = match units.last() {
                Some((last, _)) if units.len() == limit => {
                    let i = rest.partition_point(|h| h.id <= last.id);
                    self.count_visible(principal, &rest[i..]).await?
                }
                _ => 0,
            };
            counted + units.len() + beyond
        };
        let next_after = (units.len() == limit && start + units.len() < hits.len())
            .then(|| units.last().map(|(u, _)| u.id))
            .flatten();
        Ok(UnitPage {
            total,
            next_after,
            units,
        })
    }

    /// How many of `hits` the caller may see.
    async fn count_visible(&self, principal: &Principal, hits: &[Hit]) -> Result<usize> {
        let mut n = 0;
        for page in hits.chunks(1000) {
            let ids: Vec<UnitId> = page.iter().map(|h| h.id).collect();
            n += self
                .shared
                .store
                .units_by_ids(&ids)
                .await?
                .iter()
                .filter(|u| principal.covers(u.place()))
                .count();
        }
        Ok(n)
    }

    /// Every unit inside a polygon, by the index alone (the caller scopes them).
    pub fn unit_ids_in_polygon(&self, shape: &geo::MultiPolygon<f64>) -> Vec<UnitId> {
        let index = self.shared.index.read().expect("index lock");
        index
            .within_polygon(shape)
            .into_iter()
            .map(|h| h.id)
            .collect()
    }

    /// A grid, if the caller may see it.
    pub async fn grid(
        &self,
        principal: &Principal,
        id: crate::domain::GridId,
    ) -> Result<crate::store::GridRecord> {
        let grid = self.shared.store.grid(id).await?;
        match grid {
            Some(g) if principal.covers(g.place()) => Ok(g),
            _ => Err(Error::not_found("grid", id)),
        }
    }

    /// The units of a grid the caller may see, by id after `after`.
    pub async fn grid_units(
        &self,
        principal: &Principal,
        id: crate::domain::GridId,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>> {
        self.grid(principal, id).await?;
        Ok(self.shared.store.grid_units(id, after, limit).await?)
    }

    /// Inspections in the caller's scope: supervisors see their area's, an inspector
    /// only their own.
    pub async fn list_inspections(
        &self,
        principal: &Principal,
        mut filter: crate::store::InspectionFilter,
    ) -> Result<Vec<crate::store::InspectionRecord>> {
        match principal.role {
            Role::Supervisor => {}
            Role::Inspector => {
                if filter
                    .inspector_id
                    .is_some_and(|i| i.0 != principal.subject)
                {
                    return Err(Error::Forbidden(
                        "an inspector sees their own inspections".into(),
                    ));
                }
                filter.inspector_id = Some(InspectorId(principal.subject));
            }
            _ => {
                return Err(Error::Forbidden(
                    "inspections are listed for supervisors and inspectors".into(),
                ));
            }
        }
        Ok(self
            .shared
            .store
            .list_inspections(&filter, &principal.scope)
            .await?)
    }

    // ----- cases ------------------------------------------------------------------------

    /// Records an inspection of a unit; every finding opens a case on the newest hazard
    /// case workflow, attributed to the unit's responsible party at this moment.
    pub async fn record_inspection(
        &self,
        principal: &Principal,
        input: InspectionInput,
        idem: Option<&IdempotencyKey>,
        respond: fn(&InspectionOutcome) -> Value,
    ) -> Result<Idempotent<InspectionOutcome>> {
        if !matches!(principal.role, Role::Inspector | Role::Supervisor) {
            return Err(Error::Forbidden(
                "inspections are recorded by inspectors and supervisors".into(),
            ));
        }
        let taxonomy = &self.shared.taxonomy;
        let mut errors = Vec::new();
        if input.findings.len() > MAX_FINDINGS {
            errors.push(FieldError::new(
                "findings",
                format!("at most {MAX_FINDINGS} findings per inspection"),
            ));
        }
        let mut findings = Vec::with_capacity(input.findings.len());
        for (i, f) in input.findings.iter().enumerate() {
            let at = |field: &str| format!("findings[{i}].{field}");
            let category = match taxonomy.parse_category(&f.category, &at("category")) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let severity = match &f.severity {
                Some(s) => match taxonomy.parse_severity(s, &at("severity")) {
                    Ok(s) => s.to_string(),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
                None => category.severity.clone(),
            };
            if f.note
                .as_deref()
                .is_some_and(|n| n.chars().count() > machine::MAX_TEXT)
            {
                errors.push(FieldError::new(
                    at("note"),
                    format!("at most {} characters", machine::MAX_TEXT),
                ));
            }
            if f.evidence.len() > machine::MAX_EVIDENCE
                || f.evidence
                    .iter()
                    .any(|e| e.trim().is_empty() || e.chars().count() > machine::MAX_EVIDENCE_LEN)
            {
                errors.push(FieldError::new(
                    at("evidence"),
                    format!(
                        "at most {} references of 1 to {} characters",
                        machine::MAX_EVIDENCE,
                        machine::MAX_EVIDENCE_LEN
                    ),
                ));
            }
            findings.push((category.code.clone(), severity, f));
        }
        if input
            .note
            .as_deref()
            .is_some_and(|n| n.chars().count() > machine::MAX_TEXT)
        {
            errors.push(FieldError::new(
                "note",
                format!("at most {} characters", machine::MAX_TEXT),
            ));
        }
        if let Some(list) = &input.checklist
            && let Err(mut e) = self.shared.rubric.parse_checklist(list, "checklist")
        {
            errors.append(&mut e);
        }
        let attempt = input.outcome != VisitOutcome::Inspected;
        if attempt {
            // No one home, or entry refused: nothing was inspected.
            for (field, given) in [
                ("findings", !input.findings.is_empty()),
                ("checklist", input.checklist.is_some()),
                ("campaign_checks", input.campaign_checks.is_some()),
            ] {
                if given {
                    errors.push(FieldError::new(
                        field,
                        format!(
                            "a visit that ended `{}` inspected nothing",
                            input.outcome.as_str()
                        ),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let store = &self.shared.store;
        // A unit the caller may not see is, to them, no unit.
        let unit = match store.unit(input.unit_id).await? {
            Some(u) if principal.covers(u.place()) => u,
            _ => {
                return Err(Error::invalid(
                    "unit_id",
                    format!("no unit {}", input.unit_id),
                ));
            }
        };
        let (definition_id, definition) = self
            .latest_definition(HAZARD_CASE)
            .expect("the hazard case workflow is always loaded");
        let now = self.now();
        if let Some(checks) = &input.campaign_checks {
            let items = store.open_campaign_checklists(unit.id, now).await?;
            if items.is_empty() {
                return Err(Error::invalid(
                    "campaign_checks",
                    "the unit is in no running campaign that has yet to visit it",
                ));
            }
            if let Some(unknown) = checks.keys().find(|k| !items.iter().any(|i| &i.code == *k)) {
                let known: Vec<&str> = items.iter().map(|i| i.code.as_str()).collect();
                return Err(Error::invalid(
                    format!("campaign_checks.{unknown}"),
                    format!(
                        "not on the campaign's checklist; known: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        let routing = self.routing();
        let ctx = Context {
            definition: &definition,
            taxonomy,
            routing: &routing,
            calendar: &self.shared.calendar,
            now,
        };
        let actor = Actor {
            role: principal.role,
            id: principal.actor_id(),
        };
        // The case belongs to the inspector who found it, or, when a supervisor records
        // the inspection, to the inspector who covers the unit's grid.
        let inspector_id = if principal.role == Role::Inspector {
            Some(InspectorId(principal.subject))
        } else {
            match unit.grid_id {
                Some(grid) => store.grid_inspectors(grid).await?.first().copied(),
                None => None,
            }
        };
        // Still recorded when far from the unit, but flagged, so that supervisors can
        // see inspections that were not made on site.
        let distance_m = unit.point().distance_m(input.point);
        let off_site = distance_m > self.shared.config.off_site_m;
        // Findings of one category are one hazard: merged within this inspection,
        // and attached to the unit's open case of that category if it has one.
        let mut merged: Vec<Hazard> = Vec::new();
        for (i, (category, severity, f)) in findings.into_iter().enumerate() {
            let evidence = f.evidence.iter().map(|e| e.trim().to_string());
            match merged.iter_mut().find(|m| m.category == category) {
                Some(m) => {
                    m.evidence.extend(evidence);
                    m.evidence.truncate(machine::MAX_EVIDENCE);
                    if let Some(note) = &f.note {
                        m.note = Some(match m.note.take() {
                            Some(first) => format!("{first}\n{note}"),
                            None => note.clone(),
                        });
                    }
                    m.findings.push(i);
                }
                None => merged.push(Hazard {
                    category,
                    severity,
                    note: f.note.clone(),
                    evidence: evidence.collect(),
                    findings: vec![i],
                }),
            }
        }
        // A unit whose party has signed no responsibility agreement in force is a
        // finding of its own (压实主体责任).
        if self.shared.config.agreement_findings
            && !attempt
            && !merged.iter().any(|m| m.category == NO_AGREEMENT)
            && let Some(party) = unit.party_id
            && let Some(category) = taxonomy.category(NO_AGREEMENT)
            && !crate::responsibility::agreement_in_force(
                &store.agreements(unit.id).await?,
                party,
                self.today(),
            )
        {
            merged.push(Hazard {
                category: NO_AGREEMENT.to_string(),
                severity: category.severity.clone(),
                note: Some(
                    "系统核查：无有效的安全管理责任书 / No responsibility agreement in force on record"
                        .into(),
                ),
                evidence: Vec::new(),
                findings: Vec::new(),
            });
        }
        let open = store.open_cases_in_building(unit.building_id).await?;
        let here = input.point;
        let mut cases = Vec::new();
        let mut new_findings = Vec::new();
        let mut attachments = Vec::new();
        let mut attached = Vec::new();
        let mut duplicates = Vec::new();
        for Hazard {
            category,
            severity,
            note,
            evidence,
            findings: indexes,
        } in merged
        {
            let data = json!({
                "category": category,
                "severity": severity,
                "note": note,
                "evidence": evidence,
                "party_id": unit.party_id,
                "point": { "lon": here.lon(), "lat": here.lat() },
                "findings": indexes,
            });
            if let Some(existing) = open
                .iter()
                .find(|c| c.unit_id == unit.id && c.snapshot.category == category)
            {
                attachments.push(Attachment {
                    case_id: existing.snapshot.id,
                    version: existing.snapshot.version,
                    state: existing.snapshot.state.clone(),
                    actor: actor.clone(),
                    data,
                });
                attached.extend(indexes.iter().map(|i| AttachedFinding {
                    finding: *i,
                    case_id: existing.snapshot.id,
                }));
                continue;
            }
            // A hazard of the same kind close by in the same building may be the same
            // one, reported on a neighbouring unit: offered, not decided.
            for other in open
                .iter()
                .filter(|c| c.unit_id != unit.id && c.snapshot.category == category)
            {
                let d = here.distance_m(Point::parse(other.lon, other.lat, "case").unwrap_or(here));
                if d <= DUPLICATE_RADIUS_M {
                    duplicates.extend(indexes.iter().map(|i| PossibleDuplicate {
                        finding: *i,
                        case_id: other.snapshot.id,
                        unit_id: other.unit_id,
                        distance_m: (d * 10.0).round() / 10.0,
                    }));
                }
            }
            let snapshot = CaseSnapshot {
                id: CaseId(0),
                state: definition.initial.clone(),
                version: 1,
                category: category.clone(),
                severity: severity.clone(),
                address: unit.address.clone(),
                district_code: unit.district_code.clone(),
                street_id: unit.street_id,
                grid_id: unit.grid_id,
                party_id: unit.party_id,
                inspector_id,
                department_id: None,
                deadline_at: None,
                order_no: 0,
                escalation: 0,
                reopen_count: 0,
                closed_at: None,
                priority: 0,
                review_required: false,
                rule_mark: 0,
                acted_version: 1,
            };
            let timer = machine::opening_timers(ctx, &snapshot).into_iter().next();
            new_findings.push(indexes);
            cases.push(NewCase {
                definition_id,
                note,
                data,
                evidence,
                lon: here.lon(),
                lat: here.lat(),
                actor: actor.clone(),
                timer,
                snapshot,
            });
        }
        // The grade after this inspection: its checklist (or the last one) and the
        // hazards the unit has open once its findings are recorded.
        let rubric = &self.shared.rubric;
        let hazards: Vec<OpenHazard> = open
            .iter()
            .filter(|c| c.unit_id == unit.id)
            .map(|c| (&c.snapshot.category, &c.snapshot.severity))
            .chain(
                cases
                    .iter()
                    .map(|c| (&c.snapshot.category, &c.snapshot.severity)),
            )
            .map(|(category, severity)| OpenHazard {
                category: category.clone(),
                severity: severity.clone(),
            })
            .collect();
        let checklist = input.checklist.as_ref().or(unit.checklist.as_ref());
        let grade = if attempt {
            crate::grading::Grade {
                stars: unit.stars,
                score: unit.score,
                dimensions: Default::default(),
                reasons: Vec::new(),
            }
        } else {
            rubric.grade(checklist, &hazards)
        };
        // An attempt leaves the grade and the last inspection as they were, and brings
        // the unit back soon.
        let next_due_at = if attempt {
            Some(now + ATTEMPT_RETRY)
        } else {
            rubric.next_due(grade.stars, Some(now), unit.last_closed_at)
        };
        let grade_update = GradeUpdate {
            unit_id: unit.id,
            stars: grade.stars,
            score: grade.score,
            checklist: input.checklist.clone(),
            reasons: grade.reasons.clone(),
            changed: grade.stars != unit.stars,
            cause: if attempt {
                input.outcome.as_str().into()
            } else {
                "inspection".into()
            },
            last_inspected_at: (!attempt).then_some(now),
            last_closed_at: None,
            next_due_at,
            at: now,
        };
        let grade_view = GradeView {
            stars: grade.stars,
            score: grade.score,
            reasons: grade.reasons,
            changed: grade_update.changed,
            next_due_at,
        };
        let grade_update_stars = grade_update.stars;
        let inspection = NewInspection {
            grade: grade_update,
            unit_id: unit.id,
            inspector_id: (principal.role == Role::Inspector)
                .then_some(InspectorId(principal.subject)),
            at: now,
            lon: input.point.lon(),
            lat: input.point.lat(),
            distance_m,
            off_site,
            crs: input.crs,
            note: input.note.clone(),
            findings: u32::try_from(input.findings.len()).unwrap_or(u32::MAX),
            campaign_checks: input.campaign_checks.clone(),
            rule_event: crate::grading::grade_event(unit.stars, grade_update_stars),
            outcome: input.outcome,
        };
        let snapshots: Vec<CaseSnapshot> = cases.iter().map(|c| c.snapshot.clone()).collect();
        let unit_id = unit.id;
        let outcome_of = move |recorded: &RecordedInspection| InspectionOutcome {
            inspection_id: recorded.inspection_id,
            unit_id,
            distance_m,
            off_site,
            cases: recorded
                .case_ids
                .iter()
                .zip(&snapshots)
                .map(|(id, snapshot)| CaseSnapshot {
                    id: *id,
                    ..snapshot.clone()
                })
                .collect(),
            findings_of_cases: new_findings.clone(),
            attached: attached.clone(),
            possible_duplicates: duplicates.clone(),
            grade: grade_view.clone(),
        };
        let outcome_of = Arc::new(outcome_of);
        let respond_recorded = {
            let outcome_of = outcome_of.clone();
            Box::new(move |r: &RecordedInspection| respond(&outcome_of(r)))
        };
        // The whole inspection is written by the writer (one transaction), so that the
        // cases it changes change only there.
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Work::Inspection(InspectionJob {
                inspection,
                cases,
                attachments,
                idem: idem.cloned(),
                respond: respond_recorded,
                reply,
            }))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let result = rx.await.map_err(|_| Error::ShuttingDown)??;
        Ok(match result {
            Idempotent::Created(recorded) => {
                Metrics::add(
                    &self.shared.metrics.cases_opened,
                    recorded.case_ids.len() as u64,
                );
                Idempotent::Created(outcome_of(&recorded))
            }
            Idempotent::Replayed(v) => Idempotent::Replayed(v),
        })
    }

    /// Issues a command on a case as `principal`. Returns the case after the transition,
    /// once it is durable.
    pub async fn execute(
        &self,
        principal: &Principal,
        case_id: CaseId,
        command: Command,
        expected_version: Option<i64>,
    ) -> Result<CaseSnapshot> {
        // A caller who may not see the case learns nothing about it, not even that it
        // exists: the writer answers "not found" when the case is outside the caller's
        // scope. A department also sees the cases once referred to it, which takes a
        // look at the referrals first; so does a command naming other cases.
        if principal.role == Role::Department || self.names_cases(&command) {
            let record = self.visible_case(principal, case_id).await?;
            self.check_references(principal, &record, &command).await?;
        }
        let request = TransitionRequest {
            case_id,
            expected_version,
            timer_seq: None,
            actor: Actor {
                role: principal.role,
                id: principal.actor_id(),
            },
            command: command.name.clone(),
            reason: command.reason.clone(),
            rule: None,
        };
        let decision = match self.submit(request, principal.clone(), command).await? {
            Applied::Done { decision, .. } => decision,
            Applied::TimerGone | Applied::AlreadyApplied => {
                unreachable!("only timer and rule requests can be skipped")
            }
        };
        // Closing a case lifts its cap on the unit's grade and brings a return visit;
        // reopening it puts the cap back.
        let closed = decision.next.closed_at.is_some();
        let was_closed = self.definition_of_state(&decision.from).unwrap_or(false);
        if closed != was_closed {
            let cause = if closed {
                format!("case {case_id} closed")
            } else {
                format!("case {case_id} reopened")
            };
            if let Err(e) = self.regrade_case_unit(case_id, closed, &cause).await {
                // The transition is committed either way; the grade catches up at the
                // unit's next inspection or regrade.
                tracing::warn!(case = %case_id, error = %e, "regrade after a closure failed");
            }
        }
        Ok(decision.next)
    }

    /// Whether the command carries a field that names another case.
    fn names_cases(&self, command: &Command) -> bool {
        let w = self.shared.workflows.read().expect("workflow lock").clone();
        w.by_id.values().any(|def| {
            def.commands.get(&command.name).is_some_and(|spec| {
                spec.fields
                    .iter()
                    .any(|(name, f)| f.kind == FieldKind::Case && command.data.contains_key(name))
            })
        })
    }

    /// Whether a state of the hazard case workflow is terminal (closed).
    fn definition_of_state(&self, state: &str) -> Option<bool> {
        let (_, def) = self.latest_definition(HAZARD_CASE)?;
        def.states.get(state).map(|s| s.terminal)
    }

    /// Recomputes the grade of a case's unit after the case was closed or reopened.
    async fn regrade_case_unit(&self, case_id: CaseId, closed: bool, cause: &str) -> Result<()> {
        let store = &self.shared.store;
        let Some(case) = store.case(case_id).await? else {
            return Ok(());
        };
        let Some(unit) = store.unit(case.unit_id).await? else {
            return Ok(());
        };
        let now = self.now();
        let hazards: Vec<OpenHazard> = store
            .open_cases_in_building(unit.building_id)
            .await?
            .iter()
            .filter(|c| c.unit_id == unit.id)
            .map(|c| OpenHazard {
                category: c.snapshot.category.clone(),
                severity: c.snapshot.severity.clone(),
            })
            .collect();
        let rubric = &self.shared.rubric;
        let grade = rubric.grade(unit.checklist.as_ref(), &hazards);
        let last_closed = if closed {
            Some(now)
        } else {
            unit.last_closed_at
        };
        store
            .regrade(&GradeUpdate {
                unit_id: unit.id,
                stars: grade.stars,
                score: grade.score,
                checklist: None,
                reasons: grade.reasons,
                changed: grade.stars != unit.stars,
                cause: cause.to_string(),
                last_inspected_at: None,
                last_closed_at: closed.then_some(now),
                next_due_at: rubric.next_due(grade.stars, unit.last_inspected_at, last_closed),
                at: now,
            })
            .await?;
        Ok(())
    }

    /// A unit's grade history, for callers who may see the unit.
    pub async fn unit_grades(
        &self,
        principal: &Principal,
        id: UnitId,
    ) -> Result<Vec<crate::store::GradeRecord>> {
        self.unit(principal, id).await?;
        Ok(self.shared.store.unit_grades(id).await?)
    }

    /// Checks fields that name other records (a duplicate's original case) against the
    /// store, since the pure machine cannot.
    async fn check_references(
        &self,
        principal: &Principal,
        record: &CaseRecord,
        command: &Command,
    ) -> Result<()> {
        let Some(def) = self.definition(record.definition_id) else {
            return Ok(());
        };
        let Some(spec) = def.commands.get(&command.name) else {
            return Ok(());
        };
        for (name, field) in &spec.fields {
            if field.kind != FieldKind::Case {
                continue;
            }
            if let Some(id) = command.data.get(name).and_then(Value::as_i64)
                && id != record.snapshot.id.0
                && self.visible_case(principal, CaseId(id)).await.is_err()
            {
                return Err(Error::invalid(
                    format!("data.{name}"),
                    format!("no case {id}"),
                ));
            }
        }
        Ok(())
    }

    /// Queues a request for the batch writer and waits for its result.
    pub(crate) async fn submit(
        &self,
        request: TransitionRequest,
        principal: Principal,
        command: Command,
    ) -> Result<Applied> {
        let (reply, rx) = oneshot::channel();
        self.queue
            .send(Work::Command(Job {
                request,
                principal,
                command,
                reply,
            }))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| Error::ShuttingDown)?
    }

    /// Applies a command of the system (a rule's, a timer's, a correction's) through
    /// the writer, as the engine itself does.
    pub async fn execute_as_system(
        &self,
        request: TransitionRequest,
        data: Map<String, Value>,
    ) -> Result<Applied> {
        let command = Command {
            name: request.command.clone(),
            data,
            reason: request.reason.clone(),
        };
        self.submit(request, Principal::system(), command).await
    }

    /// Queues requests to be applied in this order in one batch (one transaction), and
    /// waits for their results.
    pub(crate) async fn submit_in_order(
        &self,
        requests: Vec<(TransitionRequest, Principal, Command)>,
    ) -> Result<Vec<Result<Applied>>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut jobs = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        for (request, principal, command) in requests {
            let (reply, rx) = oneshot::channel();
            jobs.push(Job {
                request,
                principal,
                command,
                reply,
            });
            replies.push(rx);
        }
        self.queue
            .send(Work::Commands(jobs))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        let mut out = Vec::with_capacity(replies.len());
        for rx in replies {
            out.push(rx.await.map_err(|_| Error::ShuttingDown)?);
        }
        Ok(out)
    }

    /// The case, if `principal` may see it; otherwise "not found".
    pub async fn visible_case(&self, principal: &Principal, id: CaseId) -> Result<CaseRecord> {
        let store = &self.shared.store;
        let record = store
            .case(id)
            .await?
            .ok_or_else(|| Error::not_found("case", id))?;
        let visible = match &principal.scope {
            // A department keeps seeing the cases once referred to it.
            Scope::Department(dept) => store
                .case_referrals(id)
                .await?
                .iter()
                .any(|r| r.department_id == *dept),
            _ => principal.covers(record.snapshot.place()),
        };
        if visible {
            Ok(record)
        } else {
            Err(Error::not_found("case", id))
        }
    }

    /// A case with its history and open timers, as the caller may see it: a landlord
    /// the events that concern them, a department the case up to when it returned it
    /// (see `access`).
    pub async fn case_view(&self, principal: &Principal, id: CaseId) -> Result<CaseView> {
        let mut case = self.visible_case(principal, id).await?;
        let store = &self.shared.store;
        let (history, timers, referrals) = tokio::try_join!(
            store.case_events(id),
            store.case_timers(id),
            store.case_referrals(id)
        )?;
        let def = self
            .definition(case.definition_id)
            .ok_or_else(|| Error::not_found("workflow definition", case.definition_id))?;
        let cutoff = match principal.scope {
            Scope::Department(d) => {
                crate::access::department_cutoff(d, case.snapshot.department_id, &referrals)
            }
            _ => None,
        };
        let history = crate::access::visible_history(principal, history, cutoff);
        let mut timers = timers;
        if cutoff.is_some() {
            // The case as the department left it: its state then, nothing since.
            if let Some(last) = history.last() {
                case.snapshot.state = last.to_state.clone();
                case.snapshot.version = last.seq;
            }
            timers.clear();
        }
        let referrals = crate::access::visible_referrals(principal, referrals);
        let state = def.states.get(&case.snapshot.state);
        let commands = if cutoff.is_none() && principal.covers(case.snapshot.place()) {
            machine::allowed_commands(&def, &case.snapshot.state, principal.role)
                .map(String::from)
                .collect()
        } else {
            Vec::new()
        };
        Ok(CaseView {
            workflow: def.name.clone(),
            workflow_version: def.version,
            state_zh: state.map(|s| s.zh.clone()).unwrap_or_default(),
            state_en: state.map(|s| s.en.clone()).unwrap_or_default(),
            terminal: def.is_terminal(&case.snapshot.state),
            case,
            history,
            timers,
            referrals,
            commands,
        })
    }

    /// Messages written for a case, for callers who may see the case: a landlord or a
    /// department those addressed to them.
    pub async fn case_outbox(
        &self,
        principal: &Principal,
        id: CaseId,
    ) -> Result<Vec<OutboxMessage>> {
        let case = self.visible_case(principal, id).await?;
        let store = &self.shared.store;
        let messages = store.case_outbox(id).await?;
        let cutoff = match principal.scope {
            Scope::Department(d) => crate::access::department_cutoff(
                d,
                case.snapshot.department_id,
                &store.case_referrals(id).await?,
            ),
            _ => None,
        };
        Ok(crate::access::visible_messages(principal, messages, cutoff))
    }

    /// What "overdue" means across the loaded workflows: the states a deadline timer
    /// leads to, and the states in which the deadline runs.
    pub fn overdue(&self, wanted: bool) -> Overdue {
        let w = self.shared.workflows.read().expect("workflow lock").clone();
        let mut states = BTreeSet::new();
        let mut deadline_states = BTreeSet::new();
        for def in w.by_id.values() {
            for timer in def
                .timers
                .values()
                .filter(|t| t.due == Some(TimerDue::Deadline))
            {
                deadline_states.extend(timer.states.iter().cloned());
                for t in def.transitions.iter().filter(|t| t.command == timer.fire) {
                    states.extend(t.to.clone());
                }
            }
        }
        Overdue {
            wanted,
            states: states.into_iter().collect(),
            deadline_states: deadline_states.into_iter().collect(),
            now: self.now(),
        }
    }

    /// Cases within the caller's scope matching `filter`, newest first.
    pub async fn list_cases(
        &self,
        principal: &Principal,
        filter: &CaseFilter,
    ) -> Result<Vec<CaseRecord>> {
        Ok(self
            .shared
            .store
            .list_cases(filter, &principal.scope)
            .await?)
    }

    // ----- workers ----------------------------------------------------------------------

    /// One step of the timer worker: claims a bounded batch of due timers and fires each
    /// through the ordinary command path, consuming the timer in the same transaction.
    pub async fn fire_due_timers(&self) -> Result<TimerTick> {
        let cfg = &self.shared.config;
        let now = self.now();
        let claimed = self
            .shared
            .store
            .claim_due_timers(now, cfg.timer_batch, now + cfg.lease, &cfg.worker_id)
            .await?;
        let mut tick = TimerTick {
            claimed: claimed.len(),
            ..TimerTick::default()
        };
        let mut pending = Vec::with_capacity(claimed.len());
        for timer in &claimed {
            let (reply, rx) = oneshot::channel();
            let job = Job {
                request: TransitionRequest {
                    case_id: timer.case_id,
                    expected_version: None,
                    timer_seq: Some(timer.seq),
                    actor: Actor::system(format!("timer:{}", timer.kind)),
                    command: timer.fire_command.clone(),
                    reason: None,
                    rule: None,
                },
                principal: Principal::system(),
                command: Command {
                    name: timer.fire_command.clone(),
                    data: Map::new(),
                    reason: None,
                },
                reply,
            };
            self.queue
                .send(Work::Command(job))
                .await
                .map_err(|_| Error::ShuttingDown)?;
            pending.push((timer, rx));
        }
        for (timer, rx) in pending {
            match rx.await.map_err(|_| Error::ShuttingDown)? {
                Ok(Applied::Done { at, .. }) => {
                    tick.fired += 1;
                    let late = (at - timer.due_at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.shared.metrics.timer_lateness.observe(late);
                }
                Ok(Applied::TimerGone | Applied::AlreadyApplied) => tick.skipped += 1,
                Err(Error::Store(e)) => return Err(Error::Store(e)),
                Err(e) => {
                    tracing::warn!(timer = timer.seq, case = %timer.case_id, error = %e, "timer fired into a refusal");
                    tick.refused += 1;
                }
            }
        }
        Metrics::add(&self.shared.metrics.timers_fired, tick.fired as u64);
        Metrics::add(&self.shared.metrics.timers_skipped, tick.skipped as u64);
        Ok(tick)
    }

    /// One step of the outbox worker: claims pending messages and hands them to the
    /// deliverer; a failure is retried later with backoff.
    pub async fn deliver_outbox(&self, deliverer: &dyn Deliverer) -> Result<OutboxTick> {
        let cfg = &self.shared.config;
        let now = self.now();
        let store = &self.shared.store;
        let claimed = store
            .claim_outbox(now, cfg.outbox_batch, now + cfg.lease, &cfg.worker_id)
            .await?;
        let mut tick = OutboxTick {
            claimed: claimed.len(),
            ..OutboxTick::default()
        };
        for m in &claimed {
            match deliverer.deliver(m).await {
                Ok(()) => {
                    store
                        .outbox_delivered(m.id, deliverer.channel(), self.now())
                        .await?;
                    tick.delivered += 1;
                }
                Err(e) => {
                    let backoff = TimeDelta::seconds(30 * (1 << m.attempts.clamp(0, 10)));
                    store.outbox_failed(m.id, &e, self.now() + backoff).await?;
                    tick.failed += 1;
                }
            }
        }
        Metrics::add(&self.shared.metrics.outbox_delivered, tick.delivered as u64);
        Metrics::add(&self.shared.metrics.outbox_failed, tick.failed as u64);
        Ok(tick)
    }

    /// Runs the timer, outbox and rule workers until `stop` turns true. A full batch is
    /// followed at once by the next; otherwise the workers wait `poll`. The rule worker
    /// also starts each China day's sweep once it is past 06:00 (once across processes).
    pub fn spawn_workers(
        &self,
        deliverer: Arc<dyn Deliverer>,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let timers = self.spawn_loop("timer", stop.clone(), |rt| async move {
            Ok(rt.fire_due_timers().await?.claimed as u32 >= rt.shared.config.timer_batch)
        });
        let outbox = self.spawn_loop("outbox", stop.clone(), move |rt| {
            let deliverer = deliverer.clone();
            async move {
                let tick = rt.deliver_outbox(deliverer.as_ref()).await?;
                Ok(tick.claimed as u32 >= rt.shared.config.outbox_batch)
            }
        });
        let swept = Arc::new(Mutex::new(None));
        let planned = Arc::new(Mutex::new(None));
        let rules = self.spawn_loop("rule", stop.clone(), move |rt| {
            let (swept, planned) = (swept.clone(), planned.clone());
            async move {
                let local = rt.now().with_timezone(&crate::time::china_time());
                let day = local.date_naive().to_string();
                // The city's day is planned once, before the morning shift, across
                // processes; routes shown earlier in the day are kept.
                let mut last = planned.lock().await;
                if local.hour() >= PLAN_HOUR && last.as_deref() != Some(day.as_str()) {
                    let date = local.date_naive();
                    if rt.store().claim_plan_run(date, rt.now()).await? {
                        let report = rt.plan_city(date, false).await?;
                        tracing::info!(%day, planned = report.planned, routes = report.routes, "daily plan");
                    }
                    *last = Some(day.clone());
                }
                drop(last);
                let mut last = swept.lock().await;
                if local.hour() >= 6 && last.as_deref() != Some(day.as_str()) {
                    if let Some((report, queued)) = rt.sweep_and_queue(&day).await? {
                        tracing::info!(%day, cases = report.cases, queued, "daily rule sweep");
                    }
                    *last = Some(day);
                }
                drop(last);
                // A step takes one job per case: a case's next job is taken at once by
                // the next step, not after the poll interval.
                Ok(rt.run_rule_jobs().await?.jobs > 0)
            }
        });
        // Open cases of older workflow versions move to the newest, a batch at a time.
        let upgrades = self.spawn_loop("upgrade", stop.clone(), |rt| async move {
            Ok(rt.upgrade_open_cases(UPGRADE_BATCH).await? as u32 >= UPGRADE_BATCH)
        });
        vec![timers, outbox, rules, upgrades]
    }

    /// Runs `step` until `stop`; `step` answers whether there is more to do at once.
    fn spawn_loop<F, Fut>(
        &self,
        name: &'static str,
        mut stop: watch::Receiver<bool>,
        step: F,
    ) -> JoinHandle<()>
    where
        F: Fn(Runtime) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<bool>> + Send + 'static,
    {
        let rt = self.clone();
        tokio::spawn(async move {
            loop {
                let full = match step(rt.clone()).await {
                    Ok(full) => full,
                    Err(Error::ShuttingDown) => return,
                    Err(e) => {
                        tracing::error!(error = %e, "{name} worker");
                        false
                    }
                };
                if *stop.borrow() {
                    return;
                }
                if !full {
                    tokio::select! {
                        _ = tokio::time::sleep(rt.shared.config.poll) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        })
    }

    /// The metrics in Prometheus text, with the timer backlog read from the store.
    pub async fn render_metrics(&self) -> Result<String> {
        let now = self.now();
        let backlog = self.shared.store.timer_backlog(now).await?;
        let rule_jobs = self.shared.store.pending_rule_jobs().await?;
        let (evaluations, failures) = self.rules().counts();
        let oldest = backlog
            .oldest_due_at
            .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        Ok(self.shared.metrics.render(&[
            (
                "anju_timers_pending",
                "Timers scheduled and not yet fired.",
                backlog.pending as f64,
            ),
            (
                "anju_timers_due",
                "Timers due now and not yet fired.",
                backlog.due as f64,
            ),
            (
                "anju_timer_oldest_due_seconds",
                "How long the oldest unfired due timer has been due.",
                oldest,
            ),
            (
                "anju_rule_jobs_pending",
                "Case events the escalation rules have yet to run on.",
                rule_jobs as f64,
            ),
            (
                "anju_rule_evaluations",
                "Rule evaluations run by this process.",
                evaluations as f64,
            ),
            (
                "anju_writer_stale_retries",
                "Batches decided again because cached cases had changed behind the writer.",
                self.shared.store.stale_retries() as f64,
            ),
            (
                "anju_rule_failures",
                "Rule evaluations that failed (a limit, an error, bad actions).",
                failures as f64,
            ),
        ]))
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
    let routing = Routing::new(shared.store.departments().await?);
    *shared.routing.write().expect("routing lock") = Arc::new(routing);
    Ok(())
}

/// A writer: takes whatever work is queued (up to `max_batch` commands), applies the
/// commands in one transaction and each inspection in one of its own, in the order they
/// came, and answers each only after its commit is durable.
async fn writer(
    shared: Arc<Shared>,
    rx: Arc<Mutex<mpsc::Receiver<Work>>>,
    mut stop: watch::Receiver<bool>,
) {
    let max = shared.config.max_batch.max(1);
    loop {
        let mut work = Vec::new();
        {
            let mut rx = rx.lock().await;
            if *stop.borrow() {
                // Drain what is already queued, then stop.
                while work.len() < max {
                    match rx.try_recv() {
                        Ok(w) => work.push(w),
                        Err(_) => break,
                    }
                }
                if work.is_empty() {
                    return;
                }
            } else {
                tokio::select! {
                    w = rx.recv() => match w {
                        Some(w) => work.push(w),
                        None => return,
                    },
                    _ = stop.changed() => continue,
                }
                while work.len() < max {
                    match rx.try_recv() {
                        Ok(w) => work.push(w),
                        Err(_) => break,
                    }
                }
            }
        }
        let mut commands = Vec::new();
        for w in work {
            match w {
                Work::Command(job) => commands.push(job),
                Work::Commands(jobs) => commands.extend(jobs),
                Work::Inspection(job) => {
                    if !commands.is_empty() {
                        commit_batch(&shared, std::mem::take(&mut commands)).await;
                    }
                    record_inspection(&shared, job).await;
                }
            }
        }
        if !commands.is_empty() {
            commit_batch(&shared, commands).await;
        }
    }
}

/// Writes one inspection and answers its caller.
async fn record_inspection(shared: &Shared, job: InspectionJob) {
    let result = shared
        .store
        .record_inspection(
            &job.inspection,
            &job.cases,
            &job.attachments,
            job.idem.as_ref(),
            job.respond.as_ref(),
        )
        .await;
    if let Err(Error::Store(e)) = &result {
        tracing::error!(error = %e, unit = %job.inspection.unit_id, "inspection lost to a database error");
        shared.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
    }
    let _ = job.reply.send(result);
}

async fn commit_batch(shared: &Shared, jobs: Vec<Job>) {
    let started = Instant::now();
    let requests: Vec<TransitionRequest> = jobs.iter().map(|j| j.request.clone()).collect();
    let workflows = shared.workflows.read().expect("workflow lock").clone();
    let routing = shared.routing.read().expect("routing lock").clone();
    let now = truncate_millis(shared.clock.now());
    let decide = |i: usize, case: &CaseRecord| {
        let def = workflows.by_id.get(&case.definition_id).ok_or_else(|| {
            anju_core::Error::not_found("workflow definition", case.definition_id)
        })?;
        let principal = &jobs[i].principal;
        if principal.role != Role::Department && !principal.covers(case.snapshot.place()) {
            return Err(anju_core::Error::not_found("case", case.snapshot.id));
        }
        if jobs[i].command.name == machine::UPGRADE && principal.role == Role::System {
            let to_id = workflows
                .latest
                .get(&def.name)
                .copied()
                .unwrap_or(case.definition_id);
            let to = workflows
                .by_id
                .get(&to_id)
                .ok_or_else(|| anju_core::Error::not_found("workflow definition", to_id))?;
            return machine::upgrade(&case.snapshot, def, to, to_id);
        }
        let ctx = Context {
            definition: def,
            taxonomy: &shared.taxonomy,
            routing: &routing,
            calendar: &shared.calendar,
            now,
        };
        machine::decide(ctx, &case.snapshot, principal, &jobs[i].command)
    };
    let outcome = shared.store.apply(&requests, &decide, now).await;
    let metrics = &shared.metrics;
    metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    metrics.batch_size.observe(jobs.len() as f64);
    match outcome {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                match &result {
                    Ok(Applied::Done { .. }) => {
                        metrics.transitions.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Applied::TimerGone | Applied::AlreadyApplied) => {}
                    Err(Error::Store(e)) => {
                        tracing::error!(error = %e, case = %job.request.case_id, "command lost to a database error");
                        metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        metrics.rejected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let _ = job.reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, commands = jobs.len(), "batch lost to a database error");
            metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            let message = e.to_string();
            for job in jobs {
                let _ = job.reply.send(Err(Error::Internal(format!(
                    "the batch was rolled back: {message}"
                ))));
            }
        }
    }
}
