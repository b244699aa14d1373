//! Escalation rules at work: the rule worker applies the rules' actions to cases as audited commands, and the daily sweep evaluates every open case (read page by page over disjoint id ranges while earlier pages are evaluated), as a dry run or adding jobs for the worker.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::Result;
use crate::auth::Principal;
use crate::domain::{Actor, CaseId, PartyId};
use crate::machine::Command;
use crate::routing::Routing;
use crate::rules::{Action, CaseFacts, Evaluation, Facts, PartyFacts, Trigger, UnitFacts};
use crate::runtime::Runtime;
use crate::store::{Applied, OpenCase, PartyRecord, RuleJob, RuleStep, TransitionRequest};
use crate::taxonomy::Taxonomy;

/// Rule steps per job: a job's actions are numbered job * STEPS + action.
pub const STEPS: i64 = 1024;

/// Rule jobs run side by side in one step of the rule worker.
const RULE_JOBS_AT_ONCE: usize = 32;

/// What one run of the rule worker did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleTick {
    pub jobs: usize,
    pub applied: usize,
    /// Actions a retried job had applied already.
    pub skipped: usize,
    /// Actions the case refused (its state does not allow them, say): recorded in the
    /// job's outcome.
    pub refused: usize,
    /// Rules that failed (a limit, an error, bad actions).
    pub failures: usize,
    /// Time spent claiming the jobs.
    pub claim_seconds: f64,
}

impl RuleTick {
    pub fn add(&mut self, other: &RuleTick) {
        self.claim_seconds += other.claim_seconds;
        self.jobs += other.jobs;
        self.applied += other.applied;
        self.skipped += other.skipped;
        self.refused += other.refused;
        self.failures += other.failures;
    }
}

/// Cases read from the store at once.
const PAGE: u32 = 20_000;

/// What a sweep found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepReport {
    pub cases: u64,
    pub evaluations: u64,
    pub failures: u64,
    /// Per rule, per action, how many the rules asked for.
    pub actions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Time spent reading, summed over the readers (which run at the same time).
    #[serde(skip)]
    pub loading: Duration,
    #[serde(skip)]
    pub total: Duration,
    /// The cases some rule would act on (when asked for).
    #[serde(skip)]
    pub acting: Vec<CaseId>,
}

fn action_name(a: &Action) -> &'static str {
    match a {
        Action::Escalate { .. } => "escalate",
        Action::Refer { .. } => "refer",
        Action::MoveDeadline { .. } => "move_deadline",
        Action::RaisePriority { .. } => "raise_priority",
        Action::Notify { .. } => "notify",
        Action::ProposeBlacklist { .. } => "propose_blacklist",
        Action::RequireReview { .. } => "require_review",
    }
}

/// The party's record as rules see it.
pub fn party_facts(p: PartyRecord) -> PartyFacts {
    PartyFacts {
        id: p.party_id.0,
        kind: p.kind,
        cases_by_severity: p.cases_by_severity,
        overdue_12m: p.overdue_since,
        referrals_12m: p.referrals_since,
        blacklisted: p.blacklisted,
        blacklist_proposed: p.proposed,
    }
}

/// What a rule sees of an open case at `now`. `previous_stars` is the unit's grade
/// before the change that raised the event (its grade, for other events).
pub fn case_facts(
    c: &OpenCase,
    trigger: Trigger,
    now: DateTime<Utc>,
    taxonomy: &Taxonomy,
    routing: &Routing,
    party: Option<PartyFacts>,
    previous_stars: Option<u8>,
) -> Facts {
    let overdue_hours = c.deadline_at.map_or(0, |d| (now - d).num_hours().max(0));
    Facts {
        event: trigger,
        case: Some(CaseFacts {
            id: c.id.0,
            category: c.category.clone(),
            severity: c.severity.clone(),
            state: c.state.clone(),
            order_no: c.order_no,
            escalation: c.escalation,
            reopen_count: c.reopen_count,
            overdue_hours,
            deadline_hours: taxonomy.deadline(&c.category, &c.severity).num_hours(),
            department_kind: c
                .department_id
                .and_then(|d| routing.get(d))
                .map(|d| d.kind.clone()),
        }),
        unit: UnitFacts {
            id: c.unit_id.0,
            address: c.address.clone(),
            district_code: c.district_code.clone(),
            stars: c.unit_stars,
            previous_stars,
            past_cases: c.past_cases,
        },
        party,
        now: now.timestamp(),
    }
}

/// A rule's actions, each with the index of its request (`None`: dropped), or the
/// rule's failure.
type Planned<'a> = Result<Vec<(&'a Action, Option<usize>)>, Value>;

/// A case's facts after a rule's command: what the command may change. A closed case
/// has no more facts for the rules.
fn follow(open: &mut OpenCase, next: &crate::machine::CaseSnapshot) {
    open.state = next.state.clone();
    open.order_no = i64::from(next.order_no);
    open.escalation = i64::from(next.escalation);
    open.reopen_count = i64::from(next.reopen_count);
    open.deadline_at = next.deadline_at;
    open.department_id = next.department_id;
    open.party_id = next.party_id;
}

/// The unit's grade before a grade drop, as its job recorded it (`None` for other
/// events; `Some(None)` for a unit that had no grade).
fn previous_stars(job: &RuleJob) -> Option<Option<u8>> {
    job.detail
        .as_ref()
        .and_then(|d| d.get("previous_stars"))
        .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
}

/// The command that applies a rule's action, with its reason.
pub fn action_command(action: &Action) -> Command {
    let mut data = Map::new();
    let (name, reason) = match action {
        Action::Escalate { level, reason } => {
            data.insert("level".into(), json!(level));
            ("rule_escalate", reason.clone())
        }
        Action::Refer { department, reason } => {
            data.insert("department_kind".into(), json!(department));
            ("rule_refer", reason.clone())
        }
        Action::MoveDeadline { hours, reason } => {
            data.insert("hours".into(), json!(hours));
            ("rule_move_deadline", reason.clone())
        }
        Action::RaisePriority { reason } => ("rule_raise_priority", reason.clone()),
        Action::Notify { to, zh, en } => {
            data.insert("to".into(), json!(to));
            data.insert("zh".into(), json!(zh));
            data.insert("en".into(), json!(en));
            ("rule_notice", String::new())
        }
        Action::ProposeBlacklist { reason } => ("rule_propose_blacklist", reason.clone()),
        Action::RequireReview { reason } => ("rule_require_review", reason.clone()),
    };
    Command {
        name: name.into(),
        data,
        // Commands that need a reason get one even when the rule gave none.
        reason: Some(if reason.trim().is_empty() && name != "rule_notice" {
            "escalation rule".to_string()
        } else {
            reason
        }),
    }
}

impl Runtime {
    /// What the rules did on a case (inspectors and supervisors who may see it).
    pub async fn case_rule_jobs(
        &self,
        principal: &Principal,
        case: CaseId,
    ) -> Result<Vec<RuleJob>> {
        // A case the caller may not see is not found, whatever the role; a case they
        // see, but whose rule jobs their role never sees, is forbidden.
        self.visible_case(principal, case).await?;
        crate::policy::check(principal, crate::policy::Act::ReadRuleJobs)?;
        Ok(self.store().case_rule_jobs(case).await?)
    }

    /// A party's record over the last 12 months.
    pub async fn party_record(&self, party: PartyId) -> Result<Option<PartyRecord>> {
        let now = self.now();
        Ok(self
            .store()
            .party_records(now, now - TimeDelta::days(365), Some(party))
            .await?
            .pop())
    }

    /// One step of the rule worker: claims pending rule jobs, evaluates the rules
    /// listening to each job's event, and applies their actions as commands issued by
    /// the system as `rule:<name>@v<version>`. Each action is a numbered step that the
    /// case remembers, so a job retried after a crash (or taken over by another process)
    /// does nothing twice. A failing rule fails alone and is recorded in the job.
    pub async fn run_rule_jobs(&self) -> Result<RuleTick> {
        self.refresh_rules().await?;
        let cfg = self.config();
        let now = self.now();
        let started = std::time::Instant::now();
        let jobs = self
            .store()
            .claim_rule_jobs(now, cfg.timer_batch, now + cfg.lease, &cfg.worker_id)
            .await?;
        let mut tick = RuleTick {
            jobs: jobs.len(),
            claim_seconds: started.elapsed().as_secs_f64(),
            ..RuleTick::default()
        };
        if jobs.is_empty() {
            return Ok(tick);
        }
        // The jobs' cases, read at once; then the jobs grouped by the cases' party. A
        // claim holds at most one job per case. Groups run side by side (their commands
        // share the writer's batches); within a group, jobs run one after another on one
        // party record kept in step with what they do, so that (say) a party is proposed
        // for the blacklist once however many of its cases see it.
        let ids: Vec<CaseId> = jobs.iter().map(|j| j.case_id).collect();
        let mut open: HashMap<i64, OpenCase> = self
            .store()
            .open_cases_by_id(&ids)
            .await?
            .into_iter()
            .map(|c| (c.id.0, c))
            .collect();
        // A claim holds a case's oldest pending jobs (its queue's head, and those behind
        // it): they run in order, in one group with the other jobs of the case's party
        // (or of the case alone, if it has none).
        let mut groups: Vec<Vec<(RuleJob, Option<OpenCase>)>> = Vec::new();
        let mut by_key: HashMap<(bool, i64), usize> = HashMap::new();
        for job in jobs {
            let case = open.get(&job.case_id.0).cloned();
            let key = match case.as_ref().and_then(|c| c.party_id) {
                Some(p) => (true, p.0),
                None => (false, job.case_id.0),
            };
            let k = *by_key.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[k].push((job, case));
        }
        open.clear();
        let limit = Arc::new(tokio::sync::Semaphore::new(RULE_JOBS_AT_ONCE));
        let mut running = tokio::task::JoinSet::new();
        for group in groups {
            let (rt, limit) = (self.clone(), limit.clone());
            running.spawn(async move {
                let _permit = limit.acquire_owned().await;
                rt.run_rule_group(group).await
            });
        }
        let mut finished = Vec::new();
        let mut failed = None;
        while let Some(done) = running.join_next().await {
            match done {
                Ok((outcomes, part, error)) => {
                    tick.add(&part);
                    finished.extend(outcomes);
                    // The group's remaining jobs stay claimed: another step takes them
                    // up once the lease runs out.
                    if let Some(e) = error {
                        failed = Some(e);
                    }
                }
                Err(e) => failed = Some(crate::Error::Internal(format!("a rule job stopped: {e}"))),
            }
        }
        self.store().finish_rule_jobs(&finished, self.now()).await?;
        match failed {
            Some(e) => Err(e),
            None => Ok(tick),
        }
    }

    /// Runs one party's jobs (or the jobs of a case without a party) in order.
    async fn run_rule_group(
        &self,
        group: Vec<(RuleJob, Option<OpenCase>)>,
    ) -> (Vec<(i64, Value)>, RuleTick, Option<crate::Error>) {
        let mut tick = RuleTick::default();
        let mut outcomes = Vec::with_capacity(group.len());
        let party = group
            .iter()
            .find_map(|(_, c)| c.as_ref().and_then(|c| c.party_id));
        let mut party = match party {
            Some(p) => match self.party_record(p).await {
                Ok(record) => record.map(party_facts),
                Err(e) => return (outcomes, tick, Some(e)),
            },
            None => None,
        };
        // A case's later jobs in the step see the case as its earlier ones left it.
        let mut current: HashMap<CaseId, Option<OpenCase>> = HashMap::new();
        for (job, case) in &group {
            let case = current.entry(job.case_id).or_insert_with(|| case.clone());
            match self
                .run_rule_job(job, case.as_ref(), party.as_mut(), &mut tick)
                .await
            {
                Ok((outcome, next)) => {
                    match next {
                        Some(next) if next.closed_at.is_some() => *case = None,
                        Some(next) => {
                            if let Some(open) = case.as_mut() {
                                follow(open, &next);
                            }
                        }
                        None => {}
                    }
                    outcomes.push((job.id, outcome));
                }
                Err(e) => return (outcomes, tick, Some(e)),
            }
        }
        (outcomes, tick, None)
    }

    async fn run_rule_job(
        &self,
        job: &RuleJob,
        case: Option<&OpenCase>,
        party: Option<&mut PartyFacts>,
        tick: &mut RuleTick,
    ) -> Result<(Value, Option<crate::machine::CaseSnapshot>)> {
        let Some(trigger) = Trigger::parse(&job.trigger) else {
            return Ok((
                json!({ "skipped": format!("unknown event `{}`", job.trigger) }),
                None,
            ));
        };
        let Some(case) = case else {
            return Ok((json!({ "skipped": "the case is closed" }), None));
        };
        let previous = previous_stars(job);
        let facts = case_facts(
            case,
            trigger,
            self.now(),
            self.taxonomy(),
            &self.routing(),
            party.as_deref().cloned(),
            previous.unwrap_or(case.unit_stars),
        );
        let evaluations = self.rules().evaluate(&facts);
        self.apply_evaluations(job, trigger, &evaluations, party, tick)
            .await
    }

    /// Applies the actions of a job's evaluations in order, and says what became of
    /// each. A job's actions go to the writer together, in order, in one batch (one
    /// commit); the case as the last applied action left it is returned, for the next
    /// job of the case in the same step.
    async fn apply_evaluations(
        &self,
        job: &RuleJob,
        trigger: Trigger,
        evaluations: &[Evaluation],
        mut party: Option<&mut PartyFacts>,
        tick: &mut RuleTick,
    ) -> Result<(Value, Option<crate::machine::CaseSnapshot>)> {
        let mut step = 0i64;
        // Per rule: its name and version, and its actions with the step each takes
        // (`None`: dropped), or its failure.
        let mut plan: Vec<(&Evaluation, Planned<'_>)> = Vec::new();
        let mut requests = Vec::new();
        for e in evaluations {
            let actions = match &e.outcome {
                Ok(actions) => actions,
                Err(failure) => {
                    tick.failures += 1;
                    tracing::warn!(rule = %e.rule, version = e.version, job = job.id, ?failure, "rule failed");
                    plan.push((e, Err(json!(failure))));
                    continue;
                }
            };
            let mut planned = Vec::new();
            for action in actions {
                step += 1;
                if step >= STEPS {
                    planned.push((action, None));
                    continue;
                }
                let command = action_command(action);
                let actor = format!("rule:{}@v{}", e.rule, e.version);
                let request = TransitionRequest {
                    case_id: job.case_id,
                    expected_version: None,
                    timer_seq: None,
                    actor: Actor::system(actor),
                    command: command.name.clone(),
                    reason: command.reason.clone(),
                    rule: Some(RuleStep {
                        mark: job.id * STEPS + step,
                        attribution: json!({
                            "name": e.rule,
                            "version": e.version,
                            "trigger": trigger,
                            "job": job.id,
                            "event_seq": job.event_seq,
                        }),
                    }),
                };
                planned.push((action, Some(requests.len())));
                requests.push((request, Principal::system(), command));
            }
            plan.push((e, Ok(planned)));
        }
        let mut answers: Vec<Option<Result<Applied>>> = self
            .submit_in_order(requests)
            .await?
            .into_iter()
            .map(Some)
            .collect();
        let mut last = None;
        let mut rules = Vec::new();
        for (e, planned) in plan {
            let planned = match planned {
                Ok(p) => p,
                Err(failure) => {
                    rules.push(json!({ "rule": e.rule, "version": e.version, "failed": failure }));
                    continue;
                }
            };
            let mut results = Vec::new();
            for (action, at) in planned {
                let Some(at) = at else {
                    results.push(json!({ "action": action, "result": "dropped: too many actions in one job" }));
                    continue;
                };
                let result = match answers[at].take().expect("one answer per request") {
                    Ok(Applied::Done { decision, .. }) => {
                        tick.applied += 1;
                        // The party's record as the next job of the party sees it.
                        if let Some(p) = party.as_deref_mut() {
                            match action {
                                Action::ProposeBlacklist { .. } => p.blacklist_proposed = true,
                                Action::Refer { .. } => p.referrals_12m += 1,
                                _ => {}
                            }
                        }
                        let version = decision.next.version;
                        last = Some(decision.next);
                        json!({ "applied": version })
                    }
                    Ok(_) => {
                        tick.skipped += 1;
                        json!("applied before")
                    }
                    Err(crate::Error::Store(e)) => return Err(crate::Error::Store(e)),
                    Err(refused) => {
                        tick.refused += 1;
                        json!({ "refused": refused.to_string() })
                    }
                };
                results.push(json!({ "action": action, "result": result }));
            }
            rules.push(json!({ "rule": e.rule, "version": e.version, "actions": results }));
        }
        Ok((json!({ "rules": rules }), last))
    }

    /// Runs the daily sweep of `day` (China time): the rules listening to the daily
    /// event over every open case, and a job for each case they would act on. Run once
    /// per day across all processes; `None` if the day was swept already.
    pub async fn sweep_and_queue(&self, day: &str) -> Result<Option<(SweepReport, usize)>> {
        let (report, cases) = self.sweep(Trigger::Daily, true).await?;
        let queued = cases.len();
        if self.store().add_sweep_jobs(day, &cases, self.now()).await? {
            Ok(Some((report, queued)))
        } else {
            Ok(None)
        }
    }

    /// Evaluates the rules listening to `trigger` over every open case and reports what
    /// they would do. Nothing is changed.
    pub async fn sweep_rules(&self, trigger: Trigger) -> Result<SweepReport> {
        Ok(self.sweep(trigger, false).await?.0)
    }

    /// The sweep itself; with `collect`, also the cases some rule would act on.
    async fn sweep(&self, trigger: Trigger, collect: bool) -> Result<(SweepReport, Vec<CaseId>)> {
        let started = Instant::now();
        let now = self.now();
        let rules = self.rules();
        let taxonomy = self.taxonomy().clone();
        let routing = self.routing();
        let parties: HashMap<i64, PartyFacts> = self
            .store()
            .party_records(now, now - TimeDelta::days(365), None)
            .await?
            .into_iter()
            .map(|p| (p.party_id.0, party_facts(p)))
            .collect();
        let mut loading = started.elapsed();
        let facts_of = |c: &OpenCase| -> Facts {
            // The sweep is not a grade change: the grade before is the grade.
            case_facts(
                c,
                trigger,
                now,
                &taxonomy,
                &routing,
                c.party_id.and_then(|p| parties.get(&p.0).cloned()),
                c.unit_stars,
            )
        };
        let mut report = SweepReport::default();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Readers over disjoint id ranges send pages; each page is evaluated on a
        // blocking thread while the readers go on. At most `workers` pages wait.
        let top = self.store().max_case_id().await?.0 + 1;
        let readers = workers.max(1) as i64;
        let (pages, mut incoming) =
            tokio::sync::mpsc::channel::<(Vec<OpenCase>, Duration)>(workers);
        let mut loaders = Vec::new();
        for k in 0..readers {
            let (from, to) = (top * k / readers, top * (k + 1) / readers);
            let store = self.store().clone();
            let pages = pages.clone();
            loaders.push(tokio::spawn(async move {
                let mut after = CaseId(from);
                loop {
                    let read = Instant::now();
                    let page = store.open_cases_page(after, CaseId(to + 1), PAGE).await?;
                    let Some(last) = page.last() else {
                        return Ok::<(), crate::store::Error>(());
                    };
                    after = last.id;
                    if pages.send((page, read.elapsed())).await.is_err() {
                        return Ok(());
                    }
                }
            }));
        }
        drop(pages);
        let mut running = VecDeque::new();
        while let Some((page, took)) = incoming.recv().await {
            loading += took;
            report.cases += page.len() as u64;
            let facts: Vec<Facts> = page.iter().map(facts_of).collect();
            let rules = rules.clone();
            running.push_back(tokio::task::spawn_blocking(move || {
                let mut part = SweepReport::default();
                for f in &facts {
                    for e in rules.evaluate(f) {
                        part.evaluations += 1;
                        match e.outcome {
                            Ok(actions) => {
                                if collect
                                    && !actions.is_empty()
                                    && let Some(c) = &f.case
                                    && part.acting.last() != Some(&CaseId(c.id))
                                {
                                    part.acting.push(CaseId(c.id));
                                }
                                for a in &actions {
                                    *part
                                        .actions
                                        .entry(e.rule.clone())
                                        .or_default()
                                        .entry(action_name(a).to_string())
                                        .or_default() += 1;
                                }
                            }
                            Err(_) => part.failures += 1,
                        }
                    }
                }
                part
            }));
            while running.len() > workers {
                merge(
                    &mut report,
                    running.pop_front().expect("one is running").await,
                );
            }
        }
        for loader in loaders {
            loader
                .await
                .map_err(|e| crate::Error::Internal(format!("reading open cases: {e}")))??;
        }
        while let Some(task) = running.pop_front() {
            merge(&mut report, task.await);
        }
        report.loading = loading;
        report.total = started.elapsed();
        let mut acting = std::mem::take(&mut report.acting);
        acting.sort_unstable();
        acting.dedup();
        Ok((report, acting))
    }
}

fn merge(into: &mut SweepReport, part: std::result::Result<SweepReport, tokio::task::JoinError>) {
    let part = match part {
        Ok(part) => part,
        Err(e) => {
            tracing::error!(error = %e, "a rule evaluator stopped");
            into.failures += 1;
            return;
        }
    };
    into.evaluations += part.evaluations;
    into.failures += part.failures;
    into.acting.extend(part.acting);
    for (rule, actions) in part.actions {
        for (action, n) in actions {
            *into
                .actions
                .entry(rule.clone())
                .or_default()
                .entry(action)
                .or_default() += n;
        }
    }
}

/// What a draft rule would have done, changing nothing.
#[derive(Debug, Clone, Default)]
pub struct DryRun {
    pub rule: String,
    pub version: u32,
    /// Case events (and, for a daily rule, open cases) the draft was evaluated on.
    pub evaluations: u64,
    pub failures: u64,
    /// Per action, how many the draft asked for.
    pub actions: BTreeMap<String, u64>,
    /// The first evaluations in detail: case, event, and the actions or the failure.
    pub samples: Vec<Value>,
}

/// Most case events a backtest reads.
const BACKTEST_EVENTS: u32 = 20_000;
/// Most evaluations a dry run shows in detail.
const SAMPLES: usize = 200;

impl Runtime {
    /// Evaluates a draft rule against one case (for `event`, or the first event the draft
    /// listens to), or backtests it over the last `days` days: each case event of those
    /// days that the draft listens to, and for a daily draft every open case, with the
    /// cases as they stand now. Only cases the supervisor may see are used. Nothing is
    /// changed.
    pub async fn dry_run_rule(
        &self,
        principal: &Principal,
        spec: crate::rules::RuleSpec,
        source: String,
        case: Option<CaseId>,
        event: Option<Trigger>,
        days: Option<u32>,
    ) -> Result<DryRun> {
        crate::policy::check(principal, crate::policy::Act::DryRunRule)?;
        let set = crate::rules::RuleSet::from_parts(
            vec![(spec.clone(), source)],
            self.rules().departments().clone(),
            crate::rules::Limits::default(),
        )
        .map_err(|errors| crate::Error::invalid("source", errors.join("; ")))?;
        let mut run = DryRun {
            rule: spec.name.clone(),
            version: spec.version,
            ..DryRun::default()
        };
        let mut targets: Vec<(CaseId, Trigger, Option<Option<u8>>)> = Vec::new();
        match (case, days) {
            (Some(id), None) => {
                self.visible_case(principal, id).await?;
                let trigger = event.unwrap_or(spec.on[0]);
                if !spec.on.contains(&trigger) {
                    return Err(crate::Error::invalid(
                        "event",
                        format!("the draft does not listen to `{}`", trigger.as_str()),
                    ));
                }
                targets.push((id, trigger, None));
            }
            (None, Some(days @ 1..=366)) => {
                let since = self.now() - TimeDelta::days(i64::from(days));
                for job in self.store().rule_jobs_since(since, BACKTEST_EVENTS).await? {
                    let Some(trigger) = Trigger::parse(&job.trigger) else {
                        continue;
                    };
                    if trigger == Trigger::Daily || !spec.on.contains(&trigger) {
                        continue;
                    }
                    targets.push((job.case_id, trigger, previous_stars(&job)));
                }
                if spec.on.contains(&Trigger::Daily) {
                    let open = self
                        .store()
                        .open_cases_page(CaseId(0), CaseId(i64::MAX), BACKTEST_EVENTS)
                        .await?;
                    targets.extend(open.into_iter().map(|c| (c.id, Trigger::Daily, None)));
                }
            }
            (None, Some(_)) => {
                return Err(crate::Error::invalid("days", "from 1 to 366"));
            }
            _ => {
                return Err(crate::Error::invalid(
                    "case_id",
                    "give either case_id (one case) or days (a backtest)",
                ));
            }
        }
        // The cases at once; each party's record once.
        let mut ids: Vec<CaseId> = targets.iter().map(|t| t.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let open: HashMap<i64, OpenCase> = self
            .store()
            .open_cases_by_id(&ids)
            .await?
            .into_iter()
            .map(|c| (c.id.0, c))
            .collect();
        let mut parties: HashMap<i64, Option<PartyFacts>> = HashMap::new();
        let (now, routing) = (self.now(), self.routing());
        for (id, trigger, previous) in targets {
            let Some(c) = open.get(&id.0) else {
                if case.is_some() {
                    return Err(crate::Error::invalid("case_id", "the case is closed"));
                }
                continue;
            };
            if !principal.covers(c.place()) {
                continue;
            }
            let party = match c.party_id {
                Some(p) => match parties.entry(p.0) {
                    std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
                    std::collections::hash_map::Entry::Vacant(e) => e
                        .insert(self.party_record(p).await?.map(party_facts))
                        .clone(),
                },
                None => None,
            };
            let facts = case_facts(
                c,
                trigger,
                now,
                self.taxonomy(),
                &routing,
                party,
                previous.unwrap_or(c.unit_stars),
            );
            for e in set.evaluate(&facts) {
                run.evaluations += 1;
                let shown = match &e.outcome {
                    Ok(actions) => {
                        for a in actions {
                            *run.actions.entry(action_name(a).to_string()).or_default() += 1;
                        }
                        json!({ "case_id": id, "event": trigger, "actions": actions })
                    }
                    Err(failure) => {
                        run.failures += 1;
                        json!({ "case_id": id, "event": trigger, "failed": failure })
                    }
                };
                if run.samples.len() < SAMPLES {
                    run.samples.push(shown);
                }
            }
        }
        Ok(run)
    }
}
