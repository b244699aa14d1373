//! The runtime's workers: due timers fired through the writer, the outbox delivered, the loops that run them (and the rule, plan and upgrade workers), and the metrics page.

use std::sync::Arc;

use chrono::{TimeDelta, Timelike};
use serde::Serialize;
use serde_json::Map;
use tokio::sync::{Mutex, oneshot, watch};
use tokio::task::JoinHandle;

use crate::auth::Principal;
use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::machine::Command;
use crate::metrics::Metrics;
use crate::outbox::Deliverer;
use crate::store::{Applied, TransitionRequest};

use super::writer::Job;

use super::writer::Work;
use super::{PLAN_HOUR, Runtime, UPGRADE_BATCH};

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

impl Runtime {
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
    pub(super) fn spawn_loop<F, Fut>(
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
