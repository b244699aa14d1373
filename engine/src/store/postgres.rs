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

/// The URL of database `name` on the server of `admin_url`.
pub fn url_for_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Creates an empty database `name` (letters, digits and underscores only) on the
/// server of `admin_url` and returns its URL. For tests and benchmarks.
pub async fn create_database(admin_url: &str, name: &str) -> Result<String, Error> {
    assert!(
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "database names are plain identifiers"
    );
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(admin_url)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(url_for_database(admin_url, name))
}

/// Drops database `name`, disconnecting whoever is still connected.
pub async fn drop_database(admin_url: &str, name: &str) -> Result<(), Error> {
    assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(admin_url)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await?;
    admin.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::url_for_database;

    #[test]
    fn database_urls_swap_only_the_name() {
        assert_eq!(
            url_for_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            url_for_database("postgres://u:p@h/db?sslmode=disable", "t2"),
            "postgres://u:p@h/t2?sslmode=disable"
        );
        assert_eq!(
            url_for_database("postgres://h:5432", "t3"),
            "postgres://h:5432/t3"
        );
    }
}
