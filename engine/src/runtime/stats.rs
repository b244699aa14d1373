//! Statistics of notification and disposal on the runtime: the figures of an area the caller oversees over a period, read from the rollups after folding what is queued, and the worker step that folds the queue.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::auth::Principal;
use crate::domain::{DepartmentId, GridId};
use crate::error::{Error, Result};
use crate::policy::{self, Act};
use crate::runtime::Runtime;
use crate::spatial::grids::GridPlace;
use crate::stats::{Area, Breakdown, period_ranges, scope_area};
use crate::store::StatsQuery;

/// Queued items folded in one bulk step (a query's catch-up, `anju report`, the
/// benchmark): a bigger batch sums more before it writes.
pub const STATS_BATCH: u32 = 5000;

/// Queued items folded in one step of the statistics worker: on SQLite a fold holds the
/// one writer, so a step stays short (about 50 ms on this machine) beside the commands.
pub const WORKER_STATS_BATCH: u32 = 500;

/// Batches a query folds before answering, at most; what is left is reported as pending.
const CATCH_UP_BATCHES: usize = 4;

/// The longest period one query covers, in days (three years and a leap day).
pub const MAX_PERIOD_DAYS: i64 = 3 * 365 + 1;

/// What a caller asks: an area (their own when `None`) and a period of China days,
/// both ends included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsRequest {
    pub area: Option<Area>,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The figures of an area over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    pub area: Area,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Only the department's own referrals, for a department.
    pub department: Option<i64>,
    pub figures: Breakdown,
    /// Graded units by stars, now (not for departments).
    pub stars: BTreeMap<u8, i64>,
    /// Names of the departments and inspectors in the breakdowns.
    pub department_names: BTreeMap<i64, String>,
    pub inspector_names: BTreeMap<i64, String>,
    /// Events and visits recorded but not yet counted (0 unless a backlog is being
    /// folded).
    pub pending: i64,
}

impl Runtime {
    /// The statistics of an area the caller oversees over a period (see
    /// `stats::scope_area`). Landlords are refused; an area out of sight is "not found".
    pub async fn statistics(
        &self,
        principal: &Principal,
        request: StatisticsRequest,
    ) -> Result<Statistics> {
        policy::check(principal, Act::ReadStatistics)?;
        let StatisticsRequest { area, from, to } = request;
        if to < from {
            return Err(Error::invalid("to", "the period ends before it starts"));
        }
        if (to - from).num_days() >= MAX_PERIOD_DAYS {
            return Err(Error::invalid(
                "to",
                format!("a period covers at most {MAX_PERIOD_DAYS} days"),
            ));
        }
        let places = self.grid_places().await?;
        let scoped = scope_area(principal, area, &places)?;
        let pending = self.catch_up_statistics().await?;
        let query = StatsQuery {
            level: scoped.level,
            areas: scoped.areas.clone(),
            ranges: period_ranges(from, to, scoped.level != "g"),
            department: scoped.department,
        };
        let rows = self.store().statistics(&query).await?;
        let figures = Breakdown::from_rows(&rows);
        let stars = match scoped.department {
            Some(_) => BTreeMap::new(),
            None => {
                self.store()
                    .star_distribution(scoped.level, &scoped.areas)
                    .await?
            }
        };
        let routing = self.routing();
        let department_names = figures
            .by_department
            .keys()
            .filter_map(|id| {
                routing
                    .get(DepartmentId(*id))
                    .map(|d| (*id, d.name.clone()))
            })
            .collect();
        let inspector_names = if figures.by_inspector.is_empty() {
            BTreeMap::new()
        } else {
            self.store()
                .inspectors()
                .await?
                .into_iter()
                .filter(|i| figures.by_inspector.contains_key(&i.id.0))
                .map(|i| (i.id.0, i.name))
                .collect()
        };
        Ok(Statistics {
            area: scoped.area,
            from,
            to,
            department: scoped.department,
            figures,
            stars,
            department_names,
            inspector_names,
            pending,
        })
    }

    /// Every grid's place, from the grid index (kept while the grids stand).
    pub(super) async fn grid_places(&self) -> Result<BTreeMap<GridId, GridPlace>> {
        Ok(self
            .grid_index()
            .await?
            .places()
            .map(|(g, p)| (*g, p.clone()))
            .collect())
    }

    /// Folds up to `limit` queued items (one step of the statistics worker with
    /// [`WORKER_STATS_BATCH`]).
    pub async fn fold_statistics(&self, limit: u32) -> Result<usize> {
        Ok(self.store().fold_statistics(limit).await?)
    }

    /// Folds what is queued (a few batches at most), so that an answer counts what was
    /// committed before it was asked; answers how many items are left.
    async fn catch_up_statistics(&self) -> Result<i64> {
        for _ in 0..CATCH_UP_BATCHES {
            if self.store().statistics_backlog().await? == 0 {
                return Ok(0);
            }
            self.fold_statistics(STATS_BATCH).await?;
        }
        Ok(self.store().statistics_backlog().await?)
    }
}
