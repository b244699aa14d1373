//! The batch writer: requests queued to dedicated writer threads, decided in batches by the pure machine and committed in one transaction each (commands, whole inspections), every caller answered after the commit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use crate::auth::Principal;
use crate::domain::Role;
use crate::error::{Error, Result};
use crate::machine::{self, Command, Context};
use crate::store::{
    Applied, Attachment, CaseRecord, IdempotencyKey, Idempotent, NewCase, NewInspection,
    RecordedInspection, TransitionRequest,
};
use crate::time::truncate_millis;

use super::{Runtime, Shared};

pub(super) struct Job {
    pub(super) request: TransitionRequest,
    pub(super) principal: Principal,
    pub(super) command: Command,
    pub(super) reply: oneshot::Sender<Result<Applied>>,
}

/// A whole inspection for the writer: its row, its new cases, the findings attached to
/// open cases, the unit's grade and the rule job of a grade drop, in one transaction.
pub(super) struct InspectionJob {
    pub(super) inspection: NewInspection,
    pub(super) cases: Vec<NewCase>,
    pub(super) attachments: Vec<Attachment>,
    pub(super) idem: Option<IdempotencyKey>,
    /// The answer stored for the inspection's Idempotency-Key.
    pub(super) respond: Box<dyn Fn(&RecordedInspection) -> Value + Send + Sync>,
    pub(super) reply: oneshot::Sender<Result<Idempotent<RecordedInspection>>>,
}

/// What the writers are given: every change to an existing case goes through them.
pub(super) enum Work {
    Command(Job),
    /// Commands applied in order in one batch (a rule job's actions).
    Commands(Vec<Job>),
    Inspection(InspectionJob),
}

/// A writer: takes whatever work is queued (up to `max_batch` commands), applies the
/// commands in one transaction and each inspection in one of its own, in the order they
/// came, and answers each only after its commit is durable.
pub(super) async fn writer(
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
pub(super) async fn record_inspection(shared: &Shared, job: InspectionJob) {
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

pub(super) async fn commit_batch(shared: &Shared, jobs: Vec<Job>) {
    let started = Instant::now();
    let requests: Vec<TransitionRequest> = jobs.iter().map(|j| j.request.clone()).collect();
    let workflows = shared.workflows.read().expect("workflow lock").clone();
    let routing = shared.routing.read().expect("routing lock").clone();
    let calendar = shared.calendar.read().expect("calendar lock").clone();
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
            calendar: &calendar,
            now,
        };
        if jobs[i].command.name == machine::REDATE && principal.role == Role::System {
            // Dated again under the calendar in force, as the case is now: nothing to
            // write when it falls due as it was (another process re-dated it first).
            let timer = case.timer.as_ref().and_then(|t| {
                Some(machine::RunningTimer {
                    kind: &t.kind,
                    due_at: t.due_at,
                    from: t.from_at?,
                })
            });
            return timer
                .and_then(|t| machine::redate(ctx, &case.snapshot, t))
                .ok_or_else(|| {
                    anju_core::Error::Conflict(format!(
                        "the timer already falls due as calendar version {} gives it",
                        calendar.version
                    ))
                });
        }
        machine::decide(ctx, &case.snapshot, principal, &jobs[i].command)
    };
    let outcome = shared
        .store
        .apply(&requests, &decide, &shared.rubric, now)
        .await;
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

impl Runtime {
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
}
