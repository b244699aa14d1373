//! The PostgreSQL backend, the multi-node mode: several `anju` processes share one database and claim work with `FOR UPDATE SKIP LOCKED`.

use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions};

use super::{Backend, Error};

pub(crate) type Db = sqlx::Postgres;
pub(crate) type This = PostgresStore;
const BACKEND: Backend = Backend::Postgres;
/// A transition locks its case row, so that concurrent processes serialise on it.
const FOR_UPDATE: &str = " FOR UPDATE";
/// Workers skip rows another worker has claimed instead of waiting for them.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
/// PostgreSQL accepts up to 65535 bound parameters per statement.
const MAX_PARAMS: usize = 60_000;

// The same SQL is compiled once per backend, on purpose: see `sql.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "sql.rs"]
mod sql;

/// Pool sizing for PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct PgConfig {
    pub max_connections: u32,
    /// How many batches of transitions are applied at once.
    pub writers: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        PgConfig {
            max_connections: 24,
            writers: 8,
        }
    }
}

pub struct PostgresStore {
    pool: PgPool,
    writers: usize,
}

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<PostgresStore, Error> {
        PostgresStore::connect_with(url, PgConfig::default()).await
    }

    pub async fn connect_with(url: &str, config: PgConfig) -> Result<PostgresStore, Error> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(60))
            .connect(url)
            .await?;
        Ok(PostgresStore {
            pool,
            writers: config.writers.max(1),
        })
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer_count(&self) -> usize {
        self.writers
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "foundation".into(),
        MigrationType::Simple,
        sqlx::SqlStr::from_static(include_str!(
            "../../../migrations/postgres/0001_foundation.sql"
        )),
        false,
    )])
}

/// After rows were written with explicit ids, moves each identity sequence past the
/// highest id, so that rows created later do not collide with imported ones.
async fn after_import(pool: &PgPool) -> Result<(), Error> {
    const TABLES: &[&str] = &[
        "streets",
        "communities",
        "grids",
        "buildings",
        "parties",
        "units",
        "unit_parties",
        "inspectors",
        "departments",
        "supervisors",
    ];
    for table in TABLES {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
             GREATEST(COALESCE((SELECT MAX(id) FROM {table}), 0), 1))"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
    }
    sql::execute_all(pool, &["ANALYZE"]).await
}
