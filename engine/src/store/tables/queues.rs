//! Work queues: due timers and outbox messages, claimed under a lease and settled.

use crate::domain::CaseId;
use crate::model::*;
use crate::store::Error;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Work queues: due timers and outbox messages, claimed under a lease and settled.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    // ----- timers and outbox ----------------------------------------------------------

    /// Claims up to `limit` due timers until `lease_until`, oldest first, skipping those
    /// claimed by a live worker.
    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<TimerRecord>, Error>;

    async fn timer_backlog(&self, now: DateTime<Utc>) -> Result<TimerBacklog, Error>;

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<OutboxMessage>, Error>;

    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), Error>;

    // ----- deliveries -----------------------------------------------------------------

    /// Since when a channel is configured (recorded the first time it is asked for):
    /// messages written before it are not sent on it.
    async fn channel_since(
        &self,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Error>;

    /// The people or offices a message is for, with their addresses: the landlord, the
    /// inspector or the department it names, or the supervisors of `level` over the
    /// case's area (the district's where a street has none).
    async fn addressees(
        &self,
        message: &OutboxMessage,
        level: crate::rules::Level,
    ) -> Result<Vec<Addressee>, Error>;

    /// The preferences of the people among `subjects` (ids of parties, inspectors,
    /// supervisors, departments) who set any, by recipient name (`party:12`); the first
    /// account of a person counts. One query for a whole batch of messages.
    async fn preferences(&self, subjects: &[i64]) -> Result<Vec<(String, Preference)>, Error>;

    /// The level a rule asked for in the event that wrote the message, if any.
    async fn event_level(
        &self,
        case: CaseId,
        seq: i64,
    ) -> Result<Option<crate::rules::Level>, Error>;

    /// Writes the deliveries of claimed messages and marks the messages handed over, in
    /// one transaction (a delivery already written is kept as it is).
    async fn fan_out(
        &self,
        deliveries: &[NewDelivery],
        messages: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// Claims up to `limit` deliveries due to be sent until `lease_until`.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<DeliveryJob>, Error>;

    /// Records how attempts ended, all in one transaction.
    async fn settle_deliveries(&self, results: &[Settled], now: DateTime<Utc>)
    -> Result<(), Error>;

    /// The deliveries of a case's messages.
    async fn case_deliveries(&self, case: CaseId) -> Result<Vec<DeliveryRecord>, Error>;

    /// Dead letters, newest first, of cases in `scope` (before delivery `before`).
    async fn dead_letters(
        &self,
        scope: &crate::auth::Scope,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, Error>;

    /// Queues a dead letter again with fresh attempts; `None` if there is no such dead
    /// letter in `scope`.
    async fn resend(
        &self,
        id: i64,
        scope: &crate::auth::Scope,
        now: DateTime<Utc>,
    ) -> Result<Option<DeliveryRecord>, Error>;

    /// What was addressed to `recipient` (`party:12`, …), newest first, before message
    /// `before`; only unread ones when asked.
    async fn inbox(
        &self,
        recipient: &str,
        unread: bool,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboxItem>, Error>;

    /// Marks a message read by `recipient`; `false` if it was not addressed to them.
    async fn mark_read(
        &self,
        recipient: &str,
        message: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error>;
}
