//! The PostgreSQL backend, the multi-node mode: several `anju` processes share one database and claim work with `FOR UPDATE SKIP LOCKED`.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use sqlx::types::Json;
use sqlx::{QueryBuilder, Row as _};

use super::{Applied, Backend, CaseRecord, Decider, Error, TransitionRequest};
use sql::{
    CASE_COLUMNS, Tx, Writes, case_from_row, case_ids, corrupt, decide_batch, ms, push_referral,
    timer_ids,
};

pub(crate) type Db = sqlx::Postgres;
pub(crate) type This = PostgresStore;
const BACKEND: Backend = Backend::Postgres;
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

/// The timers of `ids` that still exist, locked: a timer fired or cancelled by another
/// transaction is gone by the time the lock is granted.
async fn lock_timers(tx: &mut Tx<'_>, ids: &[i64]) -> Result<BTreeSet<(i64, i64)>, Error> {
    let rows =
        sqlx::query("SELECT id, case_id FROM timers WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(ids)
            .fetch_all(&mut **tx)
            .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("case_id")?)))
        .collect()
}

/// Applies a batch in one transaction: lock its cases (and fired timers), decide, write,
/// commit.
async fn apply_batch(
    store: &PostgresStore,
    batch: &[TransitionRequest],
    decide: &Decider<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::Result<Applied>>, Error> {
    let mut tx = store.pool.begin().await?;
    let mut cases = lock_cases(&mut tx, &case_ids(batch)).await?;
    let timers = timer_ids(batch);
    let mut live_timers = if timers.is_empty() {
        BTreeSet::new()
    } else {
        lock_timers(&mut tx, &timers).await?
    };
    let (results, writes) = decide_batch(batch, &mut cases, &mut live_timers, decide, now);
    if !writes.is_empty()
        && let Err(e) = write_batch(&mut tx, writes, ms(now)).await
    {
        // Nothing of the batch is kept; the caller answers every request with the error.
        tx.rollback().await.ok();
        return Err(e);
    }
    tx.commit().await?;
    Ok(results)
}

/// Writes a batch's changes, one statement per table.
async fn write_batch(tx: &mut Tx<'_>, writes: Writes, at: i64) -> Result<(), Error> {
    if !writes.cases.is_empty() {
        let n = writes.cases.len();
        let (mut id, mut state, mut version, mut dept, mut deadline) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut order_no, mut escalation, mut reopen, mut closed, mut before) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (case, (v, s)) in &writes.cases {
            id.push(*case);
            state.push(s.state.clone());
            version.push(s.version);
            dept.push(s.department_id.map(|d| d.0));
            deadline.push(s.deadline_at.map(ms));
            order_no.push(i64::from(s.order_no));
            escalation.push(i64::from(s.escalation));
            reopen.push(i64::from(s.reopen_count));
            closed.push(s.closed_at.map(ms));
            before.push(*v);
        }
        let updated = sqlx::query(
            "UPDATE cases SET state = v.state, version = v.version, department_id = v.dept, \
             deadline_at = v.deadline, order_no = v.order_no, escalation = v.escalation, \
             reopen_count = v.reopen, closed_at = v.closed, updated_at = $11 \
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], \
                         $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[]) \
                  AS v(id, state, version, dept, deadline, order_no, escalation, reopen, closed, before) \
             WHERE cases.id = v.id AND cases.version = v.before",
        )
        .bind(id)
        .bind(state)
        .bind(version)
        .bind(dept)
        .bind(deadline)
        .bind(order_no)
        .bind(escalation)
        .bind(reopen)
        .bind(closed)
        .bind(before)
        .bind(at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if updated != n as u64 {
            return Err(corrupt("a case changed under a held lock"));
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
    if !writes.consumed_timers.is_empty() {
        sqlx::query("DELETE FROM timers WHERE id = ANY($1)")
            .bind(&writes.consumed_timers)
            .execute(&mut **tx)
            .await?;
    }
    if !writes.cancelled.is_empty() {
        let (cases, kinds): (Vec<i64>, Vec<String>) = writes.cancelled.iter().cloned().unzip();
        sqlx::query(
            "DELETE FROM timers t USING UNNEST($1::bigint[], $2::text[]) AS v(case_id, kind) \
             WHERE t.case_id = v.case_id AND t.kind = v.kind",
        )
        .bind(cases)
        .bind(kinds)
        .execute(&mut **tx)
        .await?;
    }
    if !writes.timers.is_empty() {
        let t = &writes.timers;
        sqlx::query(
            "INSERT INTO timers (case_id, kind, fire_command, due_at, created_at) \
             SELECT v.case_id, v.kind, v.fire, v.due, $5 \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS v(case_id, kind, fire, due)",
        )
        .bind(t.iter().map(|(c, _)| *c).collect::<Vec<_>>())
        .bind(t.iter().map(|(_, t)| t.kind.clone()).collect::<Vec<_>>())
        .bind(t.iter().map(|(_, t)| t.fire.clone()).collect::<Vec<_>>())
        .bind(t.iter().map(|(_, t)| ms(t.due_at)).collect::<Vec<_>>())
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
        push_referral(&mut q, *case, *seq, change.as_ref(), at);
        q.build().execute(&mut **tx).await?;
    }
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
