//! The SQLite backend, the embedded default: one file in WAL mode with `synchronous=FULL`, one writer connection and a pool of readers.

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Backend, Error};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type This = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;
/// SQLite has one writer at a time: rows are locked by holding the write lock.
const FOR_UPDATE: &str = "";
const SKIP_LOCKED: &str = "";
/// SQLite's default limit of bound parameters per statement is 32766.
const MAX_PARAMS: usize = 32_000;

// The same SQL is compiled once per backend, on purpose: see `sql.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "sql.rs"]
mod sql;

/// A store in one SQLite file. All writes go through a single connection (SQLite allows
/// one writer), so writers queue in the pool rather than spin on a busy lock; reads use
/// a separate pool and see the last committed state (WAL).
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore, Error> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A commit returns only once the WAL is on disk: an acknowledged command
            // survives a power cut.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(120))
            .connect_with(options.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { write, read })
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    fn writer_count(&self) -> usize {
        1
    }

    /// Closes both pools, checkpointing the WAL.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![Migration::new(
        1,
        "foundation".into(),
        MigrationType::Simple,
        sqlx::SqlStr::from_static(include_str!(
            "../../../migrations/sqlite/0001_foundation.sql"
        )),
        false,
    )])
}

async fn after_import(pool: &SqlitePool) -> Result<(), Error> {
    sql::execute_all(
        pool,
        &["PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"],
    )
    .await
}
