//! The store as a whole: its backend, writers and migrations, the stored workflow definitions, planner statistics and a fingerprint of every table.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::store::{Backend, Error};

/// The store as a whole: its backend, writers and migrations, the stored workflow
/// definitions, planner statistics and a fingerprint of every table.
#[async_trait]
pub trait AdminStore: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Refreshes the planner's statistics of tables that changed much since; returns
    /// the tables refreshed.
    async fn refresh_statistics(&self) -> Result<Vec<String>, Error>;

    /// How many batches of transitions may be applied at once: one on SQLite, which has
    /// a single writer; several on PostgreSQL.
    fn writers(&self) -> usize;

    /// How many batches the store decided again because cases it held in memory had
    /// changed behind it (SQLite; always 0 where nothing is cached).
    fn stale_retries(&self) -> u64;

    async fn migrate(&self) -> Result<(), Error>;

    /// Stores a workflow definition version once; returns its id. Registering the same
    /// name and version with other content is refused.
    async fn register_definition(
        &self,
        name: &str,
        version: u32,
        hash: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> crate::Result<i64>;

    /// Every stored definition: (id, body).
    async fn definitions(&self) -> Result<Vec<(i64, Value)>, Error>;

    // ----- idempotency and inspection -------------------------------------------------

    /// Counts of every table and the sum of case versions: two equal fingerprints mean
    /// nothing was written in between.
    async fn fingerprint(&self) -> Result<Vec<(String, i64)>, Error>;

    /// The row count of every table of the schema (but the migrations' own), by name:
    /// equal before and after means no row was added or removed anywhere.
    async fn table_counts(&self) -> Result<Vec<(String, i64)>, Error>;

    /// Outbox messages handed over with neither a delivery nor a dead letter: always
    /// none (a message never vanishes without a trace). The tests check it after each
    /// backend test.
    async fn silent_messages(&self) -> Result<Vec<i64>, Error>;
}
