//! Statistics: the queue of case events, visits, planned stops and grade changes not yet folded, the rollups they are folded into, and the sums that answer a query.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::stats::Summed;
use crate::store::Error;

/// The rollup rows that answer a query: one area level, the areas at it, the periods
/// (`stats::period_ranges`) and, for a department, its own rows only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsQuery {
    /// `g` grid, `s` street, `d` district, `c` city.
    pub level: &'static str,
    /// Grid or street ids, district codes, or one empty area for the city.
    pub areas: Vec<String>,
    pub ranges: Vec<(&'static str, String, String)>,
    pub department: Option<i64>,
}

/// Statistics: the queue not yet folded, the rollups, and the sums of a query.
#[async_trait]
pub trait StatsStore: Send + Sync + 'static {
    /// Folds up to `limit` queued items, oldest first, into the rollups and removes them
    /// from the queue, in one transaction (one process at a time): each is counted
    /// once. Answers how many were folded.
    async fn fold_statistics(&self, limit: u32) -> Result<usize, Error>;

    /// How many items wait to be folded.
    async fn statistics_backlog(&self) -> Result<i64, Error>;

    /// The rollup rows of a query, summed per category, severity, department, inspector,
    /// metric and bucket.
    async fn statistics(&self, query: &StatsQuery) -> Result<Vec<Summed>, Error>;

    /// Graded units by stars, now, in the areas of a level (`g`, `s`, `d`, `c`).
    async fn star_distribution(
        &self,
        level: &str,
        areas: &[String],
    ) -> Result<BTreeMap<u8, i64>, Error>;
}
