//! The store: one trait per table family (`tables/`), composed into `Store`; the records it reads and writes are `crate::model`. `sqlite` and `postgres` implement it from one shared body of SQL (`sql/`, split by table family), and the batch decision both use is `batch.rs`.

use std::sync::Arc;

use serde::Serialize;

mod batch;
pub mod postgres;
pub mod sqlite;

/// A failure of the database itself, as opposed to a refused request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not as expected: {0}")]
    Corrupt(String),
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub use crate::model::*;

mod tables;
pub use tables::{
    AdminStore, CalendarStore, CampaignStore, CaseStore, EvidenceStore, GridStore, ImportStore,
    InspectionStore, PartyStore, PlanStore, QueueStore, RuleStore, StatsQuery, StatsStore,
    TipStore, TokenStore, UnitStore,
};

/// Everything Anju keeps. Implemented by [`sqlite::SqliteStore`] and
/// [`postgres::PostgresStore`] from the same SQL, and proven by one conformance suite
/// run against both: the table families composed into one trait object. A `dyn Store`
/// answers every family's methods without importing the family traits.
pub trait Store:
    AdminStore
    + ImportStore
    + CaseStore
    + InspectionStore
    + UnitStore
    + GridStore
    + TokenStore
    + PartyStore
    + RuleStore
    + PlanStore
    + CampaignStore
    + QueueStore
    + EvidenceStore
    + StatsStore
    + TipStore
    + CalendarStore
{
}

impl<
    T: AdminStore
        + ImportStore
        + CaseStore
        + InspectionStore
        + UnitStore
        + GridStore
        + TokenStore
        + PartyStore
        + RuleStore
        + PlanStore
        + CampaignStore
        + QueueStore
        + EvidenceStore
        + StatsStore
        + TipStore
        + CalendarStore
        + ?Sized,
> Store for T
{
}

pub type SharedStore = Arc<dyn Store>;

/// The migrations of one backend, from `migrations/<backend>/` (compiled in); both
/// folders hold the same numbered steps, proven equivalent by the conformance suite.
macro_rules! migrator {
    ($backend:literal) => {{
        let step = |version, description: &'static str, sql: &'static str| {
            sqlx::migrate::Migration::new(
                version,
                description.into(),
                sqlx::migrate::MigrationType::Simple,
                sqlx::SqlStr::from_static(sql),
                false,
            )
        };
        macro_rules! file {
            ($name:literal) => {
                include_str!(concat!("../../../migrations/", $backend, "/", $name))
            };
        }
        sqlx::migrate::Migrator::with_migrations(vec![
            step(1, "foundation", file!("0001_foundation.sql")),
            step(2, "geography", file!("0002_geography.sql")),
            step(3, "grading", file!("0003_grading.sql")),
            step(4, "planning", file!("0004_planning.sql")),
            step(5, "unit points", file!("0005_unit_points.sql")),
            step(
                6,
                "rules and responsibility",
                file!("0006_rules_and_responsibility.sql"),
            ),
            step(7, "corrections", file!("0007_corrections.sql")),
            step(
                8,
                "directory generation",
                file!("0008_directory_generation.sql"),
            ),
            step(9, "deliveries", file!("0009_deliveries.sql")),
            step(10, "token expiry", file!("0010_token_expiry.sql")),
            step(11, "accounts", file!("0011_accounts.sql")),
            step(12, "order documents", file!("0012_order_documents.sql")),
            step(13, "evidence", file!("0013_evidence.sql")),
            step(14, "observed visits", file!("0014_observed_visits.sql")),
            step(15, "statistics", file!("0015_statistics.sql")),
            step(16, "objections", file!("0016_objections.sql")),
            step(17, "dashboard", file!("0017_dashboard.sql")),
            step(18, "tips", file!("0018_tips.sql")),
            step(19, "declarations", file!("0019_declarations.sql")),
            step(20, "signin limits", file!("0020_signin_limits.sql")),
            step(21, "service in person", file!("0021_service_in_person.sql")),
            step(22, "calendar", file!("0022_calendar.sql")),
        ])
    }};
}
pub(crate) use migrator;

/// Opens the store named by a database URL: `postgres://…` for PostgreSQL, a path or
/// `sqlite://…` for SQLite.
pub async fn open(url: &str) -> Result<SharedStore, Error> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(url).await?))
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        Ok(Arc::new(sqlite::SqliteStore::open(path).await?))
    }
}
