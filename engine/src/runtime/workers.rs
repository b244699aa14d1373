//! The runtime's workers: due timers fired through the writer, the outbox delivered, the loops that run them (and the rule, plan and upgrade workers), and the metrics page.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use serde_json::Map;
use tokio::sync::{Mutex, oneshot, watch};
use tokio::task::JoinHandle;

use crate::auth::Principal;
use crate::domain::Actor;
use crate::error::{Error, Result};
use crate::machine::Command;
use crate::metrics::Metrics;
use crate::outbox::{Channel, Failure};
use crate::store::{Addressee, DeliveryJob, NewDelivery, Settled};
use crate::store::{Applied, TransitionRequest};

use super::writer::Job;

use super::writer::Work;
use super::{PLAN_HOUR, Runtime, TIP_PUSH_BATCH, UPGRADE_BATCH};

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
    /// Messages fanned out into deliveries.
    pub claimed: usize,
    /// Deliveries claimed and tried.
    pub sending: usize,
    pub delivered: usize,
    /// Failed, to be tried again.
    pub failed: usize,
    /// Failed for the last time (dead letters).
    pub dead: usize,
    /// SMS held until the quiet hours end.
    pub held: usize,
}

/// The deliveries of one message: each addressee on each channel that existed when the
/// message was written and on which they have an address; a dead letter for an
/// addressee with none (or for a message with nobody to tell). Never nothing: a
/// message is handed over only with a delivery or a dead letter. Pure.
///
/// A person's preferences are kept: only the channels they chose (if none of those
/// reaches them, the message is kept in their inbox only, and says so), and for those
/// who want a digest, `digest_at` (when the message may wait for it) holds it until
/// the digest goes out.
fn fan_out(
    m: &crate::store::OutboxMessage,
    addressees: &[Addressee],
    channels: &[Arc<dyn Channel>],
    since: &[DateTime<Utc>],
    digest_at: Option<DateTime<Utc>>,
) -> Vec<NewDelivery> {
    let open: Vec<&Arc<dyn Channel>> = channels
        .iter()
        .zip(since)
        .filter(|(_, since)| m.created_at >= **since)
        .map(|(c, _)| c)
        .collect();
    let dead = |recipient: String, why: String| NewDelivery {
        outbox_id: m.id,
        address: recipient.clone(),
        message_id: crate::notices::message_id(m.id, "none", &recipient, "anju.local"),
        recipient,
        channel: "none".into(),
        dead: Some(why),
        kept: None,
        digest_at: None,
    };
    if addressees.is_empty() {
        let named = crate::domain::Role::parse(&m.recipient_kind)
            .zip(m.recipient_id)
            .and_then(|(role, id)| crate::notices::recipient(role, id));
        return vec![dead(
            named.unwrap_or_else(|| format!("{}s", m.recipient_kind)),
            format!("nobody to tell: no {} on record", m.recipient_kind),
        )];
    }
    let mut out = Vec::new();
    for who in addressees {
        let mut reached = false;
        let mut declined = false;
        for c in &open {
            if let Some(address) = c.address(who) {
                if who
                    .channels
                    .as_ref()
                    .is_some_and(|wanted| !wanted.iter().any(|w| w == c.name()))
                {
                    declined = true;
                    continue;
                }
                reached = true;
                out.push(NewDelivery {
                    outbox_id: m.id,
                    recipient: who.recipient.clone(),
                    channel: c.name().to_string(),
                    message_id: crate::notices::message_id(m.id, c.name(), &address, c.domain()),
                    address,
                    dead: None,
                    kept: None,
                    digest_at: digest_at.filter(|_| who.digest),
                });
            }
        }
        // Written before any channel existed (a database filled before the service
        // ran with its channels), or to a person whose chosen channels do not reach
        // them: kept in their inbox, and it says why; never handed over with no trace.
        let kept = if open.is_empty() {
            Some("kept in the inbox only: written before any channel was configured".to_string())
        } else if declined {
            Some(format!(
                "kept in the inbox only: {} chose no channel that reaches them",
                who.name
            ))
        } else {
            None
        };
        if let (false, Some(kept)) = (reached, kept) {
            out.push(NewDelivery {
                outbox_id: m.id,
                recipient: who.recipient.clone(),
                channel: "inbox".into(),
                address: who.recipient.clone(),
                message_id: crate::notices::message_id(m.id, "inbox", &who.recipient, "anju.local"),
                dead: None,
                kept: Some(kept),
                digest_at: None,
            });
        } else if !reached {
            out.push(dead(
                who.recipient.clone(),
                format!("no address on record for {}", who.name),
            ));
        }
    }
    out
}

/// How an attempt ended, as recorded: sent, failed (tried again later, with backoff and
/// jitter), or dead after the last attempt or a permanent refusal.
fn settle(
    job: &DeliveryJob,
    outcome: std::result::Result<String, Failure>,
    now: DateTime<Utc>,
    tick: &mut OutboxTick,
) -> Settled {
    match outcome {
        Ok(answer) => {
            tick.delivered += 1;
            Settled::Sent { id: job.id, answer }
        }
        Err(f) => {
            let retry = (!f.permanent)
                .then(|| {
                    let jitter = crate::notices::jitter(job.id);
                    crate::notices::retry_at(job.attempts + 1, now, jitter)
                })
                .flatten();
            match retry {
                Some(retry_at) => {
                    tick.failed += 1;
                    Settled::Failed {
                        id: job.id,
                        answer: f.answer,
                        retry_at,
                    }
                }
                None => {
                    tick.dead += 1;
                    Settled::Dead {
                        id: job.id,
                        answer: f.answer,
                    }
                }
            }
        }
    }
}

/// One person's digest on one channel: a message listing the deliveries held for it,
/// with a Message-ID of its own. Pure.
fn digest_job(group: &[DeliveryJob], domain: &str, public_url: Option<&str>) -> DeliveryJob {
    let first = &group[0];
    let entries: Vec<crate::notices::DigestEntry<'_>> = group
        .iter()
        .map(|j| crate::notices::DigestEntry {
            case: j.case_id.0,
            subject: &j.subject,
            link: j.link(public_url),
        })
        .collect();
    let (subject, body) = crate::notices::digest(&entries);
    DeliveryJob {
        id: first.id,
        outbox_id: 0,
        case_id: crate::domain::CaseId(0),
        recipient: first.recipient.clone(),
        channel: first.channel.clone(),
        address: first.address.clone(),
        attempts: group.iter().map(|j| j.attempts).max().unwrap_or(0),
        message_id: crate::notices::digest_message_id(
            first.id,
            &first.channel,
            &first.address,
            domain,
        ),
        template: "digest".into(),
        subject,
        body,
        order_no: 0,
        unit_address: String::new(),
        severity: String::new(),
        deadline_at: None,
        inspector: None,
        code: None,
        digest: false,
    }
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

    /// Records that this process runs with these channels, from now: called when the
    /// service starts with them, before any request is taken, so that a message
    /// written after the start (the very first order on a fresh database) is never
    /// counted as older than its channel.
    pub async fn record_channels(&self, channels: &[Arc<dyn Channel>]) -> Result<()> {
        let now = self.now();
        for c in channels {
            self.channel_since(c.name(), now).await?;
        }
        Ok(())
    }

    /// Since when a channel is configured: recorded the first time any process asks
    /// (at its start), then kept in this process (it never changes), so that an outbox
    /// step does not write it again.
    async fn channel_since(&self, channel: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let known = self
            .shared
            .channels_since
            .read()
            .expect("channels lock")
            .get(channel)
            .copied();
        if let Some(since) = known {
            return Ok(since);
        }
        let since = self.shared.store.channel_since(channel, now).await?;
        self.shared
            .channels_since
            .write()
            .expect("channels lock")
            .insert(channel.to_string(), since);
        Ok(since)
    }

    /// One step of the outbox worker. Claimed messages fan out into deliveries (one per
    /// person or office and channel, on the channels configured when the message was
    /// written; a person with no address on any channel gets a dead letter at once, so
    /// that supervisors see who was never told), handed over in one transaction; then
    /// due deliveries are claimed under a lease, sent concurrently, and their results
    /// recorded in one transaction: sent, failed (tried again later, with backoff and
    /// jitter), or dead after the last attempt.
    pub async fn deliver_outbox(&self, channels: &[Arc<dyn Channel>]) -> Result<OutboxTick> {
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
        if !claimed.is_empty() {
            let mut since = Vec::with_capacity(channels.len());
            for c in channels {
                since.push(self.channel_since(c.name(), now).await?);
            }
            let mut addressed = Vec::with_capacity(claimed.len());
            for m in &claimed {
                let asked = if m.recipient_kind == "supervisor" {
                    store.event_level(m.case_id, m.event_seq).await?
                } else {
                    None
                };
                let level = crate::notices::supervisor_level(&m.template, asked);
                addressed.push(store.addressees(m, level).await?);
            }
            // The preferences of everyone addressed, in one query for the batch.
            let mut subjects: Vec<i64> = addressed
                .iter()
                .flatten()
                .filter_map(|a| a.recipient.split_once(':'))
                .filter_map(|(_, id)| id.parse().ok())
                .collect();
            subjects.sort_unstable();
            subjects.dedup();
            let mut preferences: HashMap<String, crate::store::Preference> = HashMap::new();
            for (recipient, p) in store.preferences(&subjects).await? {
                preferences.entry(recipient).or_insert(p);
            }
            let mut deliveries = Vec::new();
            for (m, mut addressees) in claimed.iter().zip(addressed) {
                for a in &mut addressees {
                    if let Some(p) = preferences.get(&a.recipient) {
                        a.channels = p.channels.clone();
                        a.digest = p.digest;
                    }
                }
                // For those who want a digest: whether this message may wait for it
                // (an order's severity is read only then).
                let digest_at = if addressees.iter().any(|a| a.digest) {
                    let severity =
                        if m.template == "rectification_order" || m.template == "order_overdue" {
                            store.case(m.case_id).await?.map(|c| c.snapshot.severity)
                        } else {
                            None
                        };
                    crate::notices::may_wait_for_digest(&m.template, severity.as_deref())
                        .then(|| crate::notices::next_digest(now))
                } else {
                    None
                };
                deliveries.extend(fan_out(m, &addressees, channels, &since, digest_at));
            }
            store
                .fan_out(
                    &deliveries,
                    &claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
                    now,
                )
                .await?;
        }
        let jobs = store
            .claim_deliveries(now, cfg.outbox_batch, now + cfg.lease, &cfg.worker_id)
            .await?;
        tick.sending = jobs.len();
        let mut sends = tokio::task::JoinSet::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(cfg.outbox_concurrency.max(1)));
        let mut settled = Vec::new();
        // A person's digest deliveries due together go out as one message per channel
        // and address; its result is each one's.
        let (digests, jobs): (Vec<DeliveryJob>, Vec<DeliveryJob>) =
            jobs.into_iter().partition(|j| j.digest);
        let mut groups: BTreeMap<(String, String), Vec<DeliveryJob>> = BTreeMap::new();
        for job in digests {
            groups
                .entry((job.channel.clone(), job.address.clone()))
                .or_default()
                .push(job);
        }
        let mut members: HashMap<i64, Vec<DeliveryJob>> = HashMap::new();
        let mut jobs = jobs;
        for ((channel, _), group) in groups {
            let on = channels.iter().find(|c| c.name() == channel);
            let letter = digest_job(
                &group,
                on.map_or("anju.local", |c| c.domain()),
                on.and_then(|c| c.public_url()),
            );
            members.insert(letter.id, group);
            jobs.push(letter);
        }
        for job in jobs {
            let channel = channels.iter().find(|c| c.name() == job.channel).cloned();
            // An SMS written in the night waits until 08:00 China time, without using an
            // attempt (orders and overdue notices of critical hazards go at once).
            if let Some(c) = &channel
                && c.quiet_hours()
                && let Some(until) = crate::notices::quiet_until(now, &job.template, &job.severity)
            {
                tick.held += 1;
                settled.push(Settled::Held { id: job.id, until });
                continue;
            }
            let slots = slots.clone();
            let sent_at = self.now();
            sends.spawn(async move {
                let _slot = slots.acquire_owned().await;
                let outcome = match channel {
                    Some(c) => c.send(&job, sent_at).await,
                    None => Err(Failure::transient(format!(
                        "channel `{}` is not configured in this process",
                        job.channel
                    ))),
                };
                (job, outcome)
            });
        }
        while let Some(joined) = sends.join_next().await {
            let (job, outcome) =
                joined.map_err(|e| Error::Internal(format!("a send panicked: {e}")))?;
            if let Some(group) = members.remove(&job.id) {
                // A digest: each delivery in it ends as the digest did.
                let n = group.len();
                for member in group {
                    let outcome = outcome
                        .clone()
                        .map(|answer| format!("in a digest of {n}: {answer}"));
                    settled.push(settle(&member, outcome, self.now(), &mut tick));
                }
                continue;
            }
            settled.push(settle(&job, outcome, self.now(), &mut tick));
        }
        store.settle_deliveries(&settled, self.now()).await?;
        let metrics = &self.shared.metrics;
        Metrics::add(&metrics.outbox_delivered, tick.delivered as u64);
        Metrics::add(&metrics.outbox_failed, tick.failed as u64);
        Metrics::add(&metrics.outbox_dead, tick.dead as u64);
        Ok(tick)
    }

    /// Runs the timer, outbox, rule, upgrade, statistics and tip workers until `stop` turns true. A full batch is
    /// followed at once by the next; otherwise the workers wait `poll`. The rule worker
    /// also starts each China day's sweep once it is past 06:00 (once across processes).
    pub fn spawn_workers(
        &self,
        channels: crate::outbox::Channels,
        stop: watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let timers = self.spawn_loop("timer", stop.clone(), |rt| async move {
            Ok(rt.fire_due_timers().await?.claimed as u32 >= rt.shared.config.timer_batch)
        });
        let channels = Arc::new(channels);
        let outbox = self.spawn_loop("outbox", stop.clone(), move |rt| {
            let channels = channels.clone();
            async move {
                let tick = rt.deliver_outbox(&channels).await?;
                let full = rt.shared.config.outbox_batch as usize;
                Ok(tick.claimed >= full || tick.sending >= full)
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
        // Case events, visits, planned stops and grade changes into the statistics.
        let stats = self.spawn_loop("statistics", stop.clone(), |rt| async move {
            let limit = super::WORKER_STATS_BATCH;
            Ok(rt.fold_statistics(limit).await? as u32 >= limit)
        });
        // Status changes of the integrations' tips, to their webhooks.
        let tips = self.spawn_loop("tips", stop.clone(), |rt| async move {
            Ok(rt.push_tip_changes(TIP_PUSH_BATCH).await? as u32 >= TIP_PUSH_BATCH)
        });
        // The working-day calendar: a newer version taken up, its timers re-dated, and
        // the city's supervisors warned as its end nears.
        let calendar = {
            let (rt, mut stop) = (self.clone(), stop.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) = rt.calendar_step().await {
                        tracing::error!(error = %e, "calendar worker");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(super::calendar::CALENDAR_EVERY) => {}
                        _ = stop.changed() => return,
                    }
                    if *stop.borrow() {
                        return;
                    }
                }
            })
        };
        vec![timers, outbox, rules, upgrades, stats, tips, calendar]
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
        let calendar = self.calendar_status();
        Ok(self.shared.metrics.render(&[
            (
                "anju_calendar_version",
                "The working-day calendar version in force in this process.",
                f64::from(calendar.version),
            ),
            (
                "anju_calendar_days_left",
                "Days until the last day whose public holidays the calendar knows (warned from 60).",
                calendar.days_left.unwrap_or(0) as f64,
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CaseId;
    use crate::outbox::{EmailChannel, LogChannel, SmtpSettings, SmtpTls};
    use chrono::TimeZone;

    fn message(at: DateTime<Utc>) -> crate::store::OutboxMessage {
        crate::store::OutboxMessage {
            id: 7,
            case_id: CaseId(3),
            event_seq: 2,
            recipient_kind: "landlord".into(),
            recipient_id: Some(12),
            template: "rectification_order".into(),
            subject: "s".into(),
            body: "b".into(),
            created_at: at,
            attempts: 0,
            delivered_at: None,
            channel: None,
            last_error: None,
        }
    }

    /// The log channel and an e-mail channel (never connected to: fan-out is pure).
    fn log_and_email() -> Vec<Arc<dyn Channel>> {
        let email = EmailChannel::new(&SmtpSettings {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::None,
            user: None,
            password: None,
            from: "notices@anju.example".into(),
            public_url: None,
            pool: 1,
            timeout: std::time::Duration::from_secs(1),
        })
        .unwrap();
        vec![Arc::new(LogChannel), Arc::new(email)]
    }

    fn person(email: Option<&str>) -> Addressee {
        Addressee {
            recipient: "party:12".into(),
            name: "李四".into(),
            email: email.map(String::from),
            phone: None,
            channels: None,
            digest: false,
        }
    }

    /// A message fans out to each person on each channel that existed when it was
    /// written and on which they have an address; a person with none gets a dead
    /// letter, and so does a message with nobody to tell.
    #[test]
    fn a_message_fans_out_per_person_and_channel() {
        let t = |h| Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap();
        let channels = log_and_email();
        // The log channel since 1:00, e-mail since 3:00.
        let since = [t(1), t(3)];
        let later = fan_out(
            &message(t(4)),
            &[person(Some("li@example.cn"))],
            &channels,
            &since,
            None,
        );
        let routes: Vec<(&str, &str)> = later
            .iter()
            .map(|d| (d.channel.as_str(), d.address.as_str()))
            .collect();
        assert_eq!(routes, [("log", "party:12"), ("email", "li@example.cn")]);
        assert!(later.iter().all(|d| d.dead.is_none()));
        assert!(
            later[1].message_id.ends_with("@anju.example"),
            "{}",
            later[1].message_id
        );
        // Written at 2:00: only the log channel existed.
        let earlier = fan_out(
            &message(t(2)),
            &[person(Some("li@example.cn"))],
            &channels,
            &since,
            None,
        );
        assert_eq!(earlier.len(), 1);
        assert_eq!(earlier[0].channel, "log");
        // Before every channel: kept in the person's inbox, saying why (never nothing).
        let before = fan_out(&message(t(0)), &[person(None)], &channels, &since, None);
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].channel, "inbox");
        assert!(
            before[0]
                .kept
                .as_deref()
                .unwrap()
                .contains("before any channel")
        );
        assert!(before[0].dead.is_none());
        // And to nobody on record, a dead letter even then.
        let unknown = fan_out(&message(t(0)), &[], &channels, &since, None);
        assert!(unknown[0].dead.is_some());
        // E-mail only, and no address: a dead letter naming the person.
        let only_email = &channels[1..];
        let none = fan_out(
            &message(t(4)),
            &[person(None)],
            only_email,
            &since[1..],
            None,
        );
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].channel, "none");
        assert!(none[0].dead.as_deref().unwrap().contains("李四"));
        // Nobody on record.
        let nobody = fan_out(&message(t(4)), &[], only_email, &since[1..], None);
        assert_eq!(nobody[0].recipient, "party:12");
        assert!(nobody[0].dead.as_deref().unwrap().contains("nobody"));
    }

    /// Preferences: a person who chose e-mail only gets no log delivery; one who chose a
    /// channel that does not reach them keeps the message in their inbox; a digest
    /// holds the deliveries until the time given.
    #[test]
    fn preferences_choose_channels_and_digests() {
        let t = |h| Utc.with_ymd_and_hms(2026, 3, 2, h, 0, 0).unwrap();
        let channels = log_and_email();
        let since = [t(0), t(0)];
        let chooser = |wanted: &[&str], digest| Addressee {
            channels: Some(wanted.iter().map(|w| w.to_string()).collect()),
            digest,
            ..person(Some("li@example.cn"))
        };
        let mail_only = fan_out(
            &message(t(4)),
            &[chooser(&["email"], false)],
            &channels,
            &since,
            None,
        );
        assert_eq!(mail_only.len(), 1);
        assert_eq!(mail_only[0].channel, "email");
        let sms_only = fan_out(
            &message(t(4)),
            &[chooser(&["sms"], false)],
            &channels,
            &since,
            None,
        );
        assert_eq!(sms_only.len(), 1);
        assert_eq!(sms_only[0].channel, "inbox");
        assert!(sms_only[0].kept.as_deref().unwrap().contains("inbox only"));
        assert!(sms_only[0].dead.is_none());
        let digest = fan_out(
            &message(t(4)),
            &[chooser(&["email"], true), person(Some("wang@example.cn"))],
            &channels,
            &since,
            Some(t(10)),
        );
        let held: Vec<_> = digest
            .iter()
            .map(|d| (d.address.as_str(), d.digest_at))
            .collect();
        assert_eq!(
            held,
            [
                ("li@example.cn", Some(t(10))),
                ("party:12", None),
                ("wang@example.cn", None)
            ]
        );
    }
}
