//! Work queues: due timers and outbox messages, claimed under a lease and settled.

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

    async fn outbox_delivered(
        &self,
        id: i64,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), Error>;
}
