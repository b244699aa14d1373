//! The PostgreSQL backend, the multi-node mode: several `anju` processes share one database and claim work with `FOR UPDATE SKIP LOCKED`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::batch::{CASE_UPDATES, Cell, Writes, case_ids, decide_batch, rule_writes_of};
use super::{Applied, Backend, CaseRecord, Decider, Error, TransitionRequest};
use sql::{
    CASE_COLUMNS, Tx, case_from_row, corrupt, ms, push_move, push_referral, push_rule_write,
};

pub(crate) type Db = sqlx::Postgres;
pub(crate) type This = PostgresStore;
const BACKEND: Backend = Backend::Postgres;
/// Workers skip rows another worker has claimed instead of waiting for them.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
/// Every table of the schema but the migrations' own, by name.
const TABLE_NAMES: &str = "SELECT CAST(tablename AS TEXT) FROM pg_tables \
     WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations' ORDER BY tablename";
/// PostgreSQL accepts up to 65535 bound parameters per statement.
const MAX_PARAMS: usize = 60_000;

// The same SQL is compiled once per backend, on purpose: see `sql/mod.rs`.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

/// Pool sizing for PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct PgConfig {
    pub max_connections: u32,
    /// How many batches of transitions are applied at once.
    pub writers: usize,
}

impl Default for PgConfig {
    /// 16 connections and 2 writers, or `ANJU_PG_MAX_CONNECTIONS` and
    /// `ANJU_PG_WRITERS`. Two writers keep batches large (fewer, bigger transactions)
    /// while one commits and the other fills its next batch.
    fn default() -> Self {
        let env = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        PgConfig {
            max_connections: env("ANJU_PG_MAX_CONNECTIONS", 16) as u32,
            writers: env("ANJU_PG_WRITERS", 2),
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
        // Plan every statement for its actual arguments. The batch statements take
        // arrays whose length varies, and the tables grow from empty: a generic plan
        // made early (a sequential scan of a small table) would stay in use long after
        // it stopped fitting.
        let options =
            PgConnectOptions::from_str(url)?.options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            // A broken connection shows itself on use; a ping before every use would
            // cost a round trip per transaction.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options)
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

async fn begin_write(pool: &PgPool) -> Result<sql::Tx<'static>, sqlx::Error> {
    pool.begin().await
}

fn migrator() -> Migrator {
    super::migrator!("postgres")
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

/// Analyzes the tables that grew or changed by a tenth since they were last analyzed,
/// so that the planner does not keep plans made for a nearly empty table (autovacuum
/// may be off, as on this machine's server, or too slow for a table that grows fast).
async fn refresh_statistics(pool: &PgPool) -> Result<Vec<String>, Error> {
    const TABLES: &[&str] = &[
        "cases",
        "case_events",
        "outbox",
        "referrals",
        "rule_jobs",
        "inspections",
        "units",
        "blacklist",
    ];
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables WHERE relname = ANY($1) \
         AND n_mod_since_analyze > 1000 + n_live_tup / 10",
    )
    .bind(TABLES.iter().map(|t| t.to_string()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    for table in &stale {
        // Only names from the list above reach the statement.
        if TABLES.contains(&table.as_str()) {
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(pool)
                .await?;
        }
    }
    Ok(stale)
}

// ----- bulk statements ------------------------------------------------------------
// A batch is written with one statement per table over arrays (UNNEST): the statement
// text does not depend on the batch size, so PostgreSQL prepares and plans it once.

static LOCK_CASES: LazyLock<&'static str> = LazyLock::new(|| {
    format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ANY($1) ORDER BY id FOR UPDATE").leak()
});

/// Loads and locks the cases of a batch, in id order, so that concurrent batches (in
/// this process or another) lock in the same order and cannot deadlock.
async fn lock_cases(tx: &mut Tx<'_>, ids: &[i64]) -> Result<BTreeMap<i64, CaseRecord>, Error> {
    let rows = sqlx::query(*LOCK_CASES)
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?;
    let mut out = BTreeMap::new();
    for row in &rows {
        let case = case_from_row(row)?;
        out.insert(case.snapshot.id.0, case);
    }
    Ok(out)
}

/// Locks cases (in id order) while their rule jobs' queue changes: a job added by a
/// transition (which holds its case's lock) and a job finished at the same time then
/// see each other, and the queue keeps exactly one head.
async fn lock_cases_for_rule_jobs(tx: &mut Tx<'_>, ids: &[i64]) -> Result<(), Error> {
    if !ids.is_empty() {
        sqlx::query("SELECT id FROM cases WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(ids)
            .fetch_all(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Serializes work across processes by name (a transaction-scoped advisory lock): the
/// storing of a day's plan (`plan:<day>`), so that routes stored by a group and by the
/// city's run never mix; the folding of statistics (`statistics`).
async fn lock_named(tx: &mut Tx<'_>, name: &str) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('anju-' || $1))")
        .bind(name)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// PostgreSQL keeps no cases in memory, so nothing is ever stale.
fn stale_retries(_: &PostgresStore) -> u64 {
    0
}

/// PostgreSQL keeps no cases in memory.
fn forget_cases(_: &PostgresStore, _: &[crate::domain::CaseId]) {}

/// Applies a batch in one transaction: lock its cases, decide, write, commit.
async fn apply_batch(
    store: &PostgresStore,
    batch: &[TransitionRequest],
    decide: &Decider<'_>,
    rubric: &crate::grading::Rubric,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::Result<Applied>>, Error> {
    // Cases are locked in id order and blacklist proposals written in party order, so
    // batches should not deadlock; if the server still picks this batch as a deadlock
    // victim, it is decided and written again from the start.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_batch(store, batch, decide, rubric, now).await {
            Err(Error::Database(sqlx::Error::Database(e)))
                if attempt < 3 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tracing::warn!(attempt, error = %e, "batch retried");
            }
            other => return other,
        }
    }
}

/// One attempt at a batch: lock its cases, decide, write, commit.
async fn try_batch(
    store: &PostgresStore,
    batch: &[TransitionRequest],
    decide: &Decider<'_>,
    rubric: &crate::grading::Rubric,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::Result<Applied>>, Error> {
    let mut tx = store.pool.begin().await?;
    let mut cases = lock_cases(&mut tx, &case_ids(batch)).await?;
    let (results, mut writes) = decide_batch(batch, &mut cases, decide, now);
    let regrades = std::mem::take(&mut writes.regrades);
    let written = async {
        if !regrades.is_empty() {
            sql::write_regrades(&mut tx, &regrades, &cases, rubric, now).await?;
        }
        if !writes.is_empty() {
            write_batch(&mut tx, writes, ms(now)).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = written {
        // Nothing of the batch is kept; the caller answers every request with the error.
        tx.rollback().await.ok();
        return Err(e);
    }
    tx.commit().await?;
    Ok(results)
}

/// The update of a batch's cases: one statement over one array per column of
/// `CASE_UPDATES` (the columns' types come from their cells).
fn update_cases(writes: &Writes, at: i64) -> QueryBuilder<Db> {
    let ids: Vec<i64> = writes.cases.keys().copied().collect();
    let before: Vec<i64> = writes.cases.values().map(|w| w.before).collect();
    let mut q = QueryBuilder::<Db>::new("UPDATE cases SET updated_at = ");
    q.push_bind(at);
    for (column, _) in CASE_UPDATES {
        q.push(format_args!(", {column} = v.{column}"));
    }
    q.push(", timer_claimed_until = NULL, timer_claimed_by = NULL FROM UNNEST(");
    q.push_bind(ids).push("::bigint[], ");
    q.push_bind(before).push("::bigint[]");
    for (_, cell) in CASE_UPDATES {
        let cells: Vec<Cell> = writes.cases.values().map(cell).collect();
        q.push(", ");
        match cells.first() {
            Some(Cell::Int(_)) | Some(Cell::MaybeInt(_)) => {
                let values: Vec<Option<i64>> = cells
                    .into_iter()
                    .map(|c| match c {
                        Cell::Int(v) => Some(v),
                        Cell::MaybeInt(v) => v,
                        // `CASE_UPDATES` holds integers and texts only (tested).
                        Cell::Text(_) | Cell::MaybeText(_) | Cell::Real(_) | Cell::Json(_) => None,
                    })
                    .collect();
                q.push_bind(values).push("::bigint[]");
            }
            _ => {
                let values: Vec<Option<String>> = cells
                    .into_iter()
                    .map(|c| match c {
                        Cell::Text(v) => Some(v),
                        Cell::MaybeText(v) => v,
                        Cell::Int(_) | Cell::MaybeInt(_) | Cell::Real(_) | Cell::Json(_) => None,
                    })
                    .collect();
                q.push_bind(values).push("::text[]");
            }
        }
    }
    q.push(") AS v(id, before");
    for (column, _) in CASE_UPDATES {
        q.push(format_args!(", {column}"));
    }
    q.push(") WHERE cases.id = v.id AND cases.version = v.before");
    q
}

/// Writes a batch's changes, one statement per table.
async fn write_batch(tx: &mut Tx<'_>, writes: Writes, at: i64) -> Result<(), Error> {
    if !writes.cases.is_empty() {
        let n = writes.cases.len();
        let updated = update_cases(&writes, at)
            .build()
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if updated != n as u64 {
            return Err(corrupt("a case changed under a held lock"));
        }
    }
    for id in &writes.moved {
        if let Some(w) = writes.cases.get(id) {
            let mut q = QueryBuilder::<Db>::new("");
            push_move(&mut q, *id, w);
            q.build().execute(&mut **tx).await?;
        }
    }
    if !writes.events.is_empty() {
        let e = &writes.events;
        sqlx::query(
            "INSERT INTO case_events (case_id, seq, at, actor_role, actor_id, command, from_state, \
             to_state, reason, data) \
             SELECT v.case_id, v.seq, $10, v.role, v.actor, v.command, v.from_state, v.to_state, \
                    v.reason, v.data \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
                         $7::text[], $8::text[], $9::jsonb[]) \
                  AS v(case_id, seq, role, actor, command, from_state, to_state, reason, data)",
        )
        .bind(e.iter().map(|e| e.case_id).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.seq).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.actor.role.as_str().to_string()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.actor.id.clone()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.command.clone()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.from.clone()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.to.clone()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.reason.clone()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| Json(e.data.clone())).collect::<Vec<_>>())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    if !writes.messages.is_empty() {
        let m = &writes.messages;
        sqlx::query(
            "INSERT INTO outbox (case_id, event_seq, recipient_kind, recipient_id, template, \
             subject, body, created_at, next_attempt_at) \
             SELECT v.case_id, v.seq, v.kind, v.recipient, v.template, v.subject, v.body, $8, $8 \
             FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], \
                         $6::text[], $7::text[]) \
                  AS v(case_id, seq, kind, recipient, template, subject, body)",
        )
        .bind(m.iter().map(|(c, _, _)| *c).collect::<Vec<_>>())
        .bind(m.iter().map(|(_, s, _)| *s).collect::<Vec<_>>())
        .bind(
            m.iter()
                .map(|(_, _, m)| m.recipient.as_str().to_string())
                .collect::<Vec<_>>(),
        )
        .bind(m.iter().map(|(_, _, m)| m.recipient_id).collect::<Vec<_>>())
        .bind(
            m.iter()
                .map(|(_, _, m)| m.template.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            m.iter()
                .map(|(_, _, m)| m.subject.clone())
                .collect::<Vec<_>>(),
        )
        .bind(m.iter().map(|(_, _, m)| m.body.clone()).collect::<Vec<_>>())
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    // Referral changes are few and depend on each other (opened, then accepted), so
    // they are written one by one, in order.
    for (case, seq, change) in &writes.referrals {
        let mut q = QueryBuilder::<Db>::new("");
        push_referral(&mut q, *case, *seq, change, at);
        q.build().execute(&mut **tx).await?;
    }
    if !writes.evidence_links.is_empty() {
        let (ids, units): (Vec<String>, Vec<i64>) = writes.evidence_links.iter().cloned().unzip();
        sqlx::query(
            "INSERT INTO evidence_units (evidence_id, unit_id) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
             ON CONFLICT (evidence_id, unit_id) DO NOTHING",
        )
        .bind(ids)
        .bind(units)
        .execute(&mut **tx)
        .await?;
    }
    if !writes.orders.is_empty() {
        write_orders(tx, &writes, at).await?;
    }
    for i in 0..rule_writes_of(&writes) {
        let mut q = QueryBuilder::<Db>::new("");
        push_rule_write(&mut q, &writes, i, at);
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Numbers a batch's orders in two statements whatever their count: each office's
/// counter moved on by its orders in one upsert over arrays (rows taken in (office,
/// year) order, the same in every batch, so that two batches cannot deadlock on them),
/// then every order's document with its number and 文书编号.
async fn write_orders(tx: &mut Tx<'_>, writes: &Writes, at: i64) -> Result<(), Error> {
    let orders = writes.orders_in_lock_order();
    let mut groups: Vec<(&str, i64, i64)> = Vec::new();
    for o in &orders {
        match groups.last_mut() {
            Some((office, year, n)) if *office == o.office && *year == i64::from(o.year) => *n += 1,
            _ => groups.push((&o.office, i64::from(o.year), 1)),
        }
    }
    let lasts: Vec<(String, i64, i64)> = sqlx::query_as(
        "INSERT INTO document_counters (office, year, last) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) \
         ON CONFLICT (office, year) DO UPDATE SET last = document_counters.last + EXCLUDED.last \
         RETURNING office, year, last",
    )
    .bind(groups.iter().map(|g| g.0.to_string()).collect::<Vec<_>>())
    .bind(groups.iter().map(|g| g.1).collect::<Vec<_>>())
    .bind(groups.iter().map(|g| g.2).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    let last_of: BTreeMap<(String, i64), i64> =
        lasts.into_iter().map(|(o, y, l)| ((o, y), l)).collect();
    // Each group's numbers run up to its counter's new value, in the orders' order.
    let mut numbers = Vec::with_capacity(orders.len());
    for (office, year, n) in &groups {
        let last = last_of
            .get(&(office.to_string(), *year))
            .copied()
            .ok_or_else(|| Error::Corrupt(format!("no document counter for {office} {year}")))?;
        numbers.extend((0..*n).map(|k| last - n + 1 + k));
    }
    sqlx::query(
        "INSERT INTO order_documents (case_id, order_no, event_seq, office, year, number, \
         document_no, issued_at) \
         SELECT v.c, v.o, v.s, v.office, v.year, v.number, \
         COALESCE(d.name_zh, v.office) || '安居整改〔' || CAST(v.year AS TEXT) || '〕第' || \
         CAST(v.number AS TEXT) || '号', $7 \
         FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], \
         $6::bigint[]) AS v(c, o, s, office, year, number) \
         LEFT JOIN districts d ON d.code = v.office",
    )
    .bind(orders.iter().map(|o| o.case).collect::<Vec<_>>())
    .bind(
        orders
            .iter()
            .map(|o| i64::from(o.order_no))
            .collect::<Vec<_>>(),
    )
    .bind(orders.iter().map(|o| o.seq).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| o.office.clone()).collect::<Vec<_>>())
    .bind(orders.iter().map(|o| i64::from(o.year)).collect::<Vec<_>>())
    .bind(numbers)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
