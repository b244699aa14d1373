//! The daily sweep of escalation rules over every open case, as a dry run: cases are read page by page over disjoint id ranges while earlier pages are evaluated, and what the rules would do is counted per rule and action.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use serde::Serialize;

use crate::Result;
use crate::domain::CaseId;
use crate::rules::{Action, CaseFacts, Facts, PartyFacts, Trigger, UnitFacts};
use crate::runtime::Runtime;
use crate::store::OpenCase;

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

impl Runtime {
    /// Evaluates the rules listening to `trigger` over every open case and reports what
    /// they would do. Nothing is changed.
    pub async fn sweep_rules(&self, trigger: Trigger) -> Result<SweepReport> {
        let started = Instant::now();
        let now = self.now();
        let rules = self.rules();
        let taxonomy = self.taxonomy().clone();
        let routing = self.routing();
        let parties: HashMap<i64, PartyFacts> = self
            .store()
            .party_records(now - TimeDelta::days(365))
            .await?
            .into_iter()
            .map(|p| {
                (
                    p.party_id.0,
                    PartyFacts {
                        id: p.party_id.0,
                        kind: p.kind,
                        cases_by_severity: p.cases_by_severity,
                        overdue_12m: p.overdue_since,
                        referrals_12m: p.referrals_since,
                        blacklisted: false,
                    },
                )
            })
            .collect();
        let mut loading = started.elapsed();
        let facts_of = |c: &OpenCase| -> Facts {
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
                    // The sweep is not a grade change: the grade before is the grade.
                    previous_stars: c.unit_stars,
                    past_cases: c.past_cases,
                },
                party: c.party_id.and_then(|p| parties.get(&p.0).cloned()),
                now: now.timestamp(),
            }
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
                .map_err(|e| crate::store::Error::Corrupt(format!("reading open cases: {e}")))??;
        }
        while let Some(task) = running.pop_front() {
            merge(&mut report, task.await);
        }
        report.loading = loading;
        report.total = started.elapsed();
        Ok(report)
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
