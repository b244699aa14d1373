//! Bulk imports of registry records, all or nothing.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::*;
use crate::registry::Record;
use crate::store::Error;

/// Bulk imports of registry records, all or nothing.
#[async_trait]
pub trait ImportStore: Send + Sync + 'static {
    // ----- registry -------------------------------------------------------------------

    /// Writes registry records in bulk, in one transaction, in dependency order.
    async fn import(&self, records: &[Record], now: DateTime<Utc>) -> crate::Result<ImportCounts>;

    /// Brings the database up to date after a bulk import (statistics, id sequences).
    async fn finish_import(&self) -> Result<(), Error>;
}
