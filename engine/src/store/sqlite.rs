//! The SQLite backend, the embedded default: one file in WAL mode with `synchronous=FULL`, one writer connection and a pool of readers.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::batch::{CASE_UPDATES, CaseWrite, Writes, case_ids, decide_batch, rule_writes_of};
use super::{Applied, Backend, CaseRecord, Decider, Error, TransitionRequest};
use sql::{
    CASE_COLUMNS, case_from_row, corrupt, ms, push_cell, push_move, push_referral, push_rule_write,
    rows_per_statement,
};

pub(crate) type Db = sqlx::Sqlite;
pub(crate) type This = SqliteStore;
const BACKEND: Backend = Backend::Sqlite;
const SKIP_LOCKED: &str = "";
/// Every table of the schema but SQLite's and the migrations' own, by name.
const TABLE_NAMES: &str = "SELECT name FROM sqlite_master WHERE type = 'table' \
     AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name";
/// SQLite's default limit of bound parameters per statement is 32766.
const MAX_PARAMS: usize = 32_000;

// The same SQL is compiled once per backend, on purpose: see `sql/mod.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

/// A store in one SQLite file. All writes go through a single connection (SQLite allows
/// one writer), so writers queue in the pool rather than spin on a busy lock; reads use
/// a separate pool and see the last committed state (WAL).
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    checkpointer: tokio::task::JoinHandle<()>,
    /// The cases as this store last wrote them (see `apply_batch`).
    cases: Mutex<HashMap<i64, CaseRecord>>,
    /// Batches decided again because the cache proved stale.
    stale: std::sync::atomic::AtomicU64,
}

/// How often the background checkpointer copies the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// Past this many WAL pages, the checkpointer also resets the WAL, waiting briefly for
/// the writer, so that the file stays bounded under sustained load.
const WAL_RESTART_PAGES: i64 = 64 * 1024;

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
            .pragma("temp_store", "memory");
        // A local file needs no liveness ping before each use. The writer never
        // checkpoints: copying the WAL back into the database would stall whichever
        // commit crossed the threshold; a background connection does it instead.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(120))
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", "0")
                    // Page caches, in KiB: the writer's is the one that matters; the
                    // sum stays well inside the service's memory budget.
                    .pragma("cache_size", "-65536"),
            )
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(
                options
                    .clone()
                    .read_only(true)
                    .pragma("cache_size", "-16384"),
            )
            .await?;
        let checkpoint = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.pragma("cache_size", "-2048"))
            .await?;
        let checkpointer = tokio::spawn(checkpoint_loop(checkpoint));
        Ok(SqliteStore {
            write,
            read,
            checkpointer,
            cases: Mutex::new(HashMap::new()),
            stale: std::sync::atomic::AtomicU64::new(0),
        })
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
        self.checkpointer.abort();
        self.read.close().await;
        self.write.close().await;
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

/// Copies committed WAL pages into the database file, off the writer's path. A
/// PASSIVE checkpoint never blocks the writer or the readers.
async fn checkpoint_loop(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let wal_pages: Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await;
        match wal_pages {
            Ok((_, log, _)) if log > WAL_RESTART_PAGES => {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(error = %e, "WAL restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// Starts a write transaction that takes the write lock at once, so that it waits
/// (up to the busy timeout) for a checkpoint instead of failing half-way.
async fn begin_write(pool: &SqlitePool) -> Result<sql::Tx<'static>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

fn migrator() -> Migrator {
    super::migrator!("sqlite")
}

async fn after_import(pool: &SqlitePool) -> Result<(), Error> {
    sql::execute_all(
        pool,
        &["PRAGMA optimize", "PRAGMA wal_checkpoint(TRUNCATE)"],
    )
    .await
}

// ----- batches ----------------------------------------------------------------------
// SQLite has one writer, and every change to an existing case goes through it: so the
// store keeps the cases it has written in memory, and a batch needs no read before it
// writes. The whole batch -- BEGIN, multi-row statements, COMMIT -- is one script,
// one call to SQLite's thread, and one fsync.

/// Cases kept in memory; past this, the cache is emptied and refills from use.
const CACHE_CAPACITY: usize = 50_000;

/// Applies a batch: cases from the cache (loading those it lacks), decisions in
/// memory, then one script that writes and commits them.
async fn apply_batch(
    store: &SqliteStore,
    batch: &[TransitionRequest],
    decide: &Decider<'_>,
    rubric: &crate::grading::Rubric,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::Result<Applied>>, Error> {
    // A second attempt runs when the cache proved stale (another process wrote the
    // same file): the script's guard refused to commit, and the cases are re-read.
    for attempt in 0..2 {
        let ids = case_ids(batch);
        let mut cases = BTreeMap::new();
        let mut missing = Vec::new();
        {
            let cache = store.cases.lock().expect("case cache lock");
            for id in ids {
                match cache.get(&id) {
                    Some(c) => {
                        cases.insert(id, c.clone());
                    }
                    None => missing.push(id),
                }
            }
        }
        let mut conn = store.write.acquire().await?;
        if !missing.is_empty() {
            cases.append(&mut load_cases(&mut conn, &missing).await?);
        }
        let (results, mut writes) = decide_batch(batch, &mut cases, decide, now);
        if writes.is_empty() {
            return Ok(results);
        }
        let written: Vec<i64> = writes.cases.keys().copied().collect();
        // A batch that closes or reopens cases regrades their units in its own
        // transaction: it begins before the units are read, and the script goes on in it.
        let regrades = std::mem::take(&mut writes.regrades);
        let begun = !regrades.is_empty();
        let outcome = async {
            if begun {
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                sql::write_regrades(&mut conn, &regrades, &cases, rubric, now).await?;
            }
            let mut script = batch_script(writes, ms(now), !begun);
            script.q.build().execute(&mut *conn).await?;
            Ok::<_, Error>(())
        }
        .await;
        match outcome {
            Ok(_) => {
                let mut cache = store.cases.lock().expect("case cache lock");
                if cache.len() + written.len() > CACHE_CAPACITY {
                    cache.clear();
                }
                for id in written {
                    if let Some(case) = cases.remove(&id) {
                        cache.insert(id, case);
                    }
                }
                return Ok(results);
            }
            Err(e) => {
                // Whatever the script got to, undo it, and forget what may be stale.
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                store.cases.lock().expect("case cache lock").clear();
                let stale = matches!(&e, Error::Database(sqlx::Error::Database(d)) if d.is_check_violation());
                if attempt == 0 && stale {
                    store
                        .stale
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(
                        "cached cases were stale (is another process writing this file?); retrying"
                    );
                    continue;
                }
                return Err(e);
            }
        }
    }
    Err(corrupt("cached cases stayed stale after a reload"))
}

/// SQLite's planner picks indexes by their shape; nothing to refresh.
async fn refresh_statistics(_: &SqlitePool) -> Result<Vec<String>, Error> {
    Ok(Vec::new())
}

fn stale_retries(store: &SqliteStore) -> u64 {
    store.stale.load(std::sync::atomic::Ordering::Relaxed)
}

/// SQLite has one writer at a time: a rule job's queue cannot change under it.
async fn lock_cases_for_rule_jobs(_: &mut sql::Tx<'_>, _: &[i64]) -> Result<(), Error> {
    Ok(())
}

/// SQLite has one writer at a time: work locked by name elsewhere is serialized already.
async fn lock_named(_: &mut sql::Tx<'_>, _: &str) -> Result<(), Error> {
    Ok(())
}

/// Drops cases from the writer's cache after they were changed outside a batch.
fn forget_cases(store: &SqliteStore, ids: &[crate::domain::CaseId]) {
    if !ids.is_empty() {
        let mut cache = store.cases.lock().expect("case cache lock");
        for id in ids {
            cache.remove(&id.0);
        }
    }
}

/// A batch's changes as one script of multi-row statements between BEGIN IMMEDIATE
/// (unless the transaction was begun already) and COMMIT. After each update of cases, a guard statement makes the script fail (a CHECK
/// violation on `write_guard`) unless every case was at the version the batch decided
/// from.
fn batch_script(writes: Writes, at: i64, begin: bool) -> Script {
    let mut script = Script::default();
    if begin {
        script.start("BEGIN IMMEDIATE");
    }
    let cases: Vec<(&i64, &CaseWrite)> = writes.cases.iter().collect();
    for chunk in cases.chunks(rows_per_statement(CASE_UPDATES.len() + 2)) {
        let q = script.start("UPDATE cases SET updated_at = ");
        q.push_bind(at);
        for (k, (column, _)) in CASE_UPDATES.iter().enumerate() {
            q.push(format_args!(", {column} = v.column{}", k + 3));
        }
        q.push(", timer_claimed_until = NULL, timer_claimed_by = NULL FROM (");
        q.push_values(chunk, |mut b, (id, w)| {
            b.push_bind(**id).push_bind(w.before);
            for (_, cell) in CASE_UPDATES {
                push_cell(&mut b, cell(w));
            }
        });
        q.push(") AS v WHERE cases.id = v.column1 AND cases.version = v.column2");
        script
            .start("INSERT INTO write_guard (ok) SELECT 0 WHERE changes() <> ")
            .push_bind(chunk.len() as i64);
    }
    for id in &writes.moved {
        if let Some(w) = writes.cases.get(id) {
            push_move(script.start(""), *id, w);
        }
    }
    for chunk in writes.events.chunks(rows_per_statement(10)) {
        let q = script.start(
            "INSERT INTO case_events (case_id, seq, at, actor_role, actor_id, command, \
                 from_state, to_state, reason, data) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.case_id)
                .push_bind(e.seq)
                .push_bind(at)
                .push_bind(e.actor.role.as_str())
                .push_bind(e.actor.id.clone())
                .push_bind(e.command.clone())
                .push_bind(e.from.clone())
                .push_bind(e.to.clone())
                .push_bind(e.reason.clone())
                .push_bind(Json(e.data.clone()));
        });
    }
    for chunk in writes.messages.chunks(rows_per_statement(9)) {
        let q = script.start(
            "INSERT INTO outbox (case_id, event_seq, recipient_kind, recipient_id, template, \
                 subject, body, created_at, next_attempt_at) ",
        );
        q.push_values(chunk, |mut b, (case, seq, m)| {
            b.push_bind(*case)
                .push_bind(*seq)
                .push_bind(m.recipient.as_str())
                .push_bind(m.recipient_id)
                .push_bind(m.template.clone())
                .push_bind(m.subject.clone())
                .push_bind(m.body.clone())
                .push_bind(at)
                .push_bind(at);
        });
    }
    // Referral changes are few and depend on each other (opened, then accepted), so
    // they are written one by one, in order.
    for (case, seq, change) in &writes.referrals {
        push_referral(script.start(""), *case, *seq, change, at);
    }
    for chunk in writes.evidence_links.chunks(rows_per_statement(2)) {
        let q = script.start("INSERT INTO evidence_units (evidence_id, unit_id) ");
        q.push_values(chunk, |mut b, (id, unit)| {
            b.push_bind(id.clone()).push_bind(*unit);
        });
        q.push(" ON CONFLICT (evidence_id, unit_id) DO NOTHING");
    }
    for o in writes.orders_in_lock_order() {
        push_order_counter(script.start(""), o);
        push_order_document(script.start(""), o, at);
    }
    for i in 0..rule_writes_of(&writes) {
        push_rule_write(script.start(""), &writes, i, at);
    }
    script.start("COMMIT");
    script
}

/// The statements of one batch. SQLite runs a script of several statements in one call
/// to its database thread, saving a thread round trip per statement.
struct Script {
    q: QueryBuilder<Db>,
    pending: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            q: QueryBuilder::new(""),
            pending: false,
        }
    }
}

impl Script {
    /// Starts a statement with `sql`; returns the builder to add to it.
    fn start(&mut self, sql: &str) -> &mut QueryBuilder<Db> {
        if self.pending {
            self.q.push("; ");
        }
        self.pending = true;
        self.q.push(sql);
        &mut self.q
    }
}

/// Loads cases the cache lacks. Only this store's writer changes cases, so what it
/// reads is what the batch may decide from.
async fn load_cases(
    conn: &mut SqliteConnection,
    ids: &[i64],
) -> Result<BTreeMap<i64, CaseRecord>, Error> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(rows_per_statement(1)) {
        let mut q =
            QueryBuilder::<Db>::new(format!("SELECT {CASE_COLUMNS} FROM cases WHERE id IN ("));
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        q.push(") ORDER BY id");
        for row in q.build().fetch_all(&mut *conn).await? {
            let case = case_from_row(&row)?;
            out.insert(case.snapshot.id.0, case);
        }
    }
    Ok(out)
}

/// Appends the statement that moves an office's document counter on for an issued
/// order's year; `push_order_document` then numbers the order from it. In the batch's
/// script (PostgreSQL numbers a batch's orders over arrays: `write_orders`).
fn push_order_counter(q: &mut QueryBuilder<Db>, o: &crate::store::batch::IssuedOrder) {
    q.push("INSERT INTO document_counters (office, year, last) VALUES (")
        .push_bind(o.office.clone())
        .push(", ")
        .push_bind(i64::from(o.year))
        .push(", 1) ON CONFLICT (office, year) DO UPDATE SET last = document_counters.last + 1");
}

/// Appends the statement that gives an issued order its document number (文书编号)
/// from its office's counter: `天河区安居整改〔2026〕第17号`.
fn push_order_document(q: &mut QueryBuilder<Db>, o: &crate::store::batch::IssuedOrder, at: i64) {
    q.push(
        "INSERT INTO order_documents (case_id, order_no, event_seq, office, year, number, \
         document_no, issued_at) SELECT ",
    )
    .push_bind(o.case)
    .push(", ")
    .push_bind(i64::from(o.order_no))
    .push(", ")
    .push_bind(o.seq)
    .push(
        ", k.office, k.year, k.last, COALESCE(d.name_zh, k.office) || '安居整改〔' || \
         CAST(k.year AS TEXT) || '〕第' || CAST(k.last AS TEXT) || '号', ",
    )
    .push_bind(at)
    .push(" FROM document_counters k LEFT JOIN districts d ON d.code = k.office WHERE k.office = ")
    .push_bind(o.office.clone())
    .push(" AND k.year = ")
    .push_bind(i64::from(o.year));
}
