//! `anju bench-stats`: statistics on a city of a million units and two million cases with their events (generated in bulk by SQL over the units, not through two million transitions), folded into the rollups by the real worker, then the figures of a district for a month and of the whole city for a year, timed at p50, p90 and p99 on a warm database.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use anju_engine::auth::Principal;
use anju_engine::runtime::{self, Runtime, StatisticsRequest};
use anju_engine::stats::Area;
use anju_engine::time::{SharedClock, SystemClock, china_time, to_millis};

#[derive(Debug, Args)]
pub struct StatsBenchArgs {
    /// Units in the city to seed (when --database-url is not given).
    #[arg(long, default_value_t = 1_000_000)]
    pub units: u64,
    /// Cases to generate (two per unit at most), spread over the year before today.
    #[arg(long, default_value_t = 2_000_000)]
    pub cases: u64,
    /// An already seeded database to measure instead of seeding a scratch SQLite file
    /// (cases are generated only if it has none).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Queries timed per kind.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
    /// Directory for the scratch SQLite file (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the scratch database (its path is printed) for another run.
    #[arg(long)]
    pub keep: bool,
}

pub async fn run(args: StatsBenchArgs) -> anyhow::Result<()> {
    let (url, scratch) = crate::bench::city::open_city(
        args.database_url.as_deref(),
        args.dir.as_deref(),
        args.units,
        "stats",
    )
    .await?;
    let result = measure(&url, &args).await;
    crate::bench::city::close_city(scratch, args.keep);
    result
}

/// One SQL connection pool of either backend, for the bulk statements.
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    async fn open(url: &str) -> anyhow::Result<Pool> {
        Ok(if url.starts_with("postgres") {
            Pool::Postgres(sqlx::PgPool::connect(url).await?)
        } else {
            let url = if url.starts_with("sqlite:") {
                url.to_string()
            } else {
                format!("sqlite://{url}")
            };
            Pool::Sqlite(sqlx::SqlitePool::connect(&url).await?)
        })
    }

    async fn execute(&self, sql: &str, now: i64) -> anyhow::Result<u64> {
        Ok(match self {
            Pool::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .bind(now)
                .execute(p)
                .await?
                .rows_affected(),
            Pool::Postgres(p) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .bind(now)
                .execute(p)
                .await?
                .rows_affected(),
        })
    }

    async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(match self {
            Pool::Sqlite(p) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(p)
                    .await?
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(p)
                    .await?
            }
        })
    }
}

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// A case's lot (0–99) and its day in the year before now, from its id.
const LOT: &str = "((id * 2654435761) % 100)";

/// The statements that generate cases and their histories: `$1` is now (ms). Each case
/// is one of: fixed on re-inspection (45 %), fixed late after referral and a fine
/// (10 %), ordered and waiting (10 %), overdue (10 %), dismissed (10 %), just found
/// (15 %).
fn generators(cases: u64, units: u64) -> Vec<(&'static str, String)> {
    let per_unit = if cases > units { 2 } else { 1 };
    let last_unit = cases.div_ceil(per_unit);
    let opened = format!("($1 - ((id * 40503) % 365) * {DAY} - ((id * 7) % 10) * {HOUR})");
    let event = |name: &'static str,
                 cmd: &str,
                 from: &str,
                 to: &str,
                 at: String,
                 data: &str,
                 filter: &str,
                 seq: i64| {
        (
            name,
            format!(
                "INSERT INTO case_events (case_id, seq, at, actor_role, actor_id, command, \
                 from_state, to_state, reason, data) \
                 SELECT id, {seq}, {at}, 'system', 'bench', '{cmd}', {from}, '{to}', NULL, \
                 ({data}) FROM cases WHERE {filter}"
            ),
        )
    };
    let lot = |lo: i64, hi: i64| format!("{LOT} >= {lo} AND {LOT} < {hi}");
    let fixed_at = format!("opened_at + (1 + (id % 20)) * {DAY}");
    let late_at = |d: i64| format!("opened_at + {d} * {DAY}");
    let mut out = vec![("cases", cases_statement(per_unit, last_unit, &opened))];
    out.push(event(
        "open",
        "open",
        "NULL",
        "discovered",
        "opened_at".into(),
        "'{}'",
        "1 = 1",
        1,
    ));
    out.push(event(
        "notify",
        "notify",
        "'discovered'",
        "notified",
        format!("opened_at + {HOUR}"),
        "'{\"order_no\": 1}'",
        &format!("{LOT} < 75"),
        2,
    ));
    out.push(event(
        "reinspect",
        "reinspect",
        "'notified'",
        "fixed",
        fixed_at,
        "'{\"passed\": true}'",
        &lot(0, 45),
        3,
    ));
    out.push(event(
        "deadline",
        "deadline_passed",
        "'notified'",
        "overdue",
        late_at(3),
        "'{}'",
        &lot(45, 55),
        3,
    ));
    out.push(event(
        "deadline",
        "deadline_passed",
        "'notified'",
        "overdue",
        late_at(3),
        "'{}'",
        &lot(65, 75),
        3,
    ));
    out.push(event(
        "refer",
        "refer",
        "'overdue'",
        "referred",
        late_at(4),
        "'{\"department_id\": ' || CAST(1 + (id % 60) AS TEXT) || '}'",
        &lot(45, 55),
        4,
    ));
    out.push(event(
        "accept",
        "accept",
        "'referred'",
        "accepted",
        late_at(5),
        "'{}'",
        &lot(45, 55),
        5,
    ));
    out.push(event(
        "result",
        "record_result",
        "'accepted'",
        "enforced",
        late_at(9),
        "CASE WHEN id % 2 = 0 THEN '{\"result\": \"fine\", \"fine_amount\": 2000}' \
              ELSE '{\"result\": \"warning\"}' END",
        &lot(45, 55),
        6,
    ));
    out.push(event(
        "close",
        "close",
        "'enforced'",
        "fixed",
        late_at(12),
        "'{\"outcome\": \"fixed\"}'",
        &lot(45, 55),
        7,
    ));
    out.push(event(
        "dismiss",
        "dismiss",
        "'discovered'",
        "not_a_hazard",
        format!("opened_at + {HOUR}"),
        "'{}'",
        &lot(75, 85),
        2,
    ));
    out
}

/// The statement that generates the cases: `per_unit` for each unit up to `last_unit`,
/// opened at `opened` (an expression of the case id and `$1`, now).
fn cases_statement(per_unit: u64, last_unit: u64, opened: &str) -> String {
    let state = format!(
        "CASE WHEN {LOT} < 45 THEN 'fixed' WHEN {LOT} < 55 THEN 'fixed' \
              WHEN {LOT} < 65 THEN 'notified' WHEN {LOT} < 75 THEN 'overdue' \
              WHEN {LOT} < 85 THEN 'not_a_hazard' ELSE 'discovered' END"
    );
    let category = "CASE (id % 8) WHEN 0 THEN 'ebike_indoor' WHEN 1 THEN 'three_in_one' \
         WHEN 2 THEN 'fire_escape' WHEN 3 THEN 'structure' WHEN 4 THEN 'gas_heater' \
         WHEN 5 THEN 'wiring' WHEN 6 THEN 'warehouse' ELSE 'fire_equipment' END";
    let severity = "CASE WHEN (id % 8) < 4 THEN 'critical' WHEN (id % 8) < 7 THEN 'major' \
         ELSE 'general' END";
    format!(
        "INSERT INTO cases (id, definition_id, unit_id, category, severity, state, version, \
             address, district_code, street_id, grid_id, party_id, inspector_id, department_id, \
             evidence, lon, lat, opened_at, updated_at, closed_at) \
             SELECT id, (SELECT MAX(id) FROM workflow_definitions WHERE name = 'hazard_case'), \
                    unit_id, {category}, {severity}, {state}, 1, address, district_code, \
                    street_id, grid_id, party_id, NULL, NULL, '[]', lon, lat, {opened}, \
                    {opened}, NULL \
             FROM (SELECT (u.id - 1) * {per_unit} + k.k + 1 AS id, u.id AS unit_id, u.address, \
                          u.district_code, u.street_id, u.grid_id, u.party_id, u.lon, u.lat \
                     FROM units u CROSS JOIN (SELECT 0 AS k UNION ALL SELECT 1) k \
                    WHERE u.id <= {last_unit} AND k.k < {per_unit}) AS g"
    )
}

async fn measure(url: &str, args: &StatsBenchArgs) -> anyhow::Result<()> {
    let store = crate::app::open_store(url).await?;
    let clock: SharedClock = std::sync::Arc::new(SystemClock);
    let now = clock.now();
    // Starting the runtime registers the workflow the generated cases run on.
    let rt = Runtime::start(store.clone(), clock.clone(), runtime::Config::default()).await?;
    let pool = Pool::open(url).await.context("bulk connection")?;
    let json_cast = |sql: String| {
        if url.starts_with("postgres") {
            sql.replace(" FROM cases WHERE", "::jsonb FROM cases WHERE")
        } else {
            sql
        }
    };
    if pool.count("SELECT COUNT(*) FROM cases").await? == 0 {
        let started = Instant::now();
        let units = pool.count("SELECT COUNT(*) FROM units").await? as u64;
        for (name, sql) in generators(args.cases, units) {
            let t = Instant::now();
            let sql = if name == "cases" {
                if url.starts_with("postgres") {
                    sql.replace("'[]', lon", "'[]'::jsonb, lon")
                } else {
                    sql
                }
            } else {
                json_cast(sql)
            };
            let n = pool
                .execute(&sql, to_millis(now))
                .await
                .with_context(|| format!("generating {name}"))?;
            println!(
                "generated {n} {name} rows in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        }
        println!(
            "generated the history in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let (backlog, took) = crate::cli::fold_statistics_backlog(&store).await?;
    if backlog > 0 {
        let secs = took.as_secs_f64();
        println!(
            "folded {backlog} queued items in {secs:.1} s ({:.0}/s)",
            backlog as f64 / secs
        );
    }
    let cells = pool.count("SELECT COUNT(*) FROM stat_cells").await?;
    let events = pool.count("SELECT COUNT(*) FROM case_events").await?;
    println!("{events} events, {cells} rollup rows");
    let district: String = store
        .grid_places()
        .await?
        .first()
        .map(|(_, p)| p.district_code.clone())
        .context("no grids")?;
    let today = now.with_timezone(&china_time()).date_naive();
    let last_month_end = today.with_day(1).context("day 1")? - chrono::TimeDelta::days(1);
    let last_month_start = last_month_end.with_day(1).context("day 1")?;
    let city = Principal::system();
    let kinds: Vec<(&str, StatisticsRequest)> = vec![
        (
            "district, last month",
            StatisticsRequest {
                area: Some(Area::District(district.clone())),
                from: last_month_start,
                to: last_month_end,
            },
        ),
        (
            "district, last 30 days",
            StatisticsRequest {
                area: Some(Area::District(district.clone())),
                from: today - chrono::TimeDelta::days(29),
                to: today,
            },
        ),
        (
            "city, last 12 months",
            StatisticsRequest {
                area: Some(Area::City),
                from: (last_month_start - chrono::TimeDelta::days(334))
                    .with_day(1)
                    .context("day 1")?,
                to: last_month_end,
            },
        ),
        (
            "city, last 365 days",
            StatisticsRequest {
                area: Some(Area::City),
                from: today - chrono::TimeDelta::days(364),
                to: today,
            },
        ),
    ];
    for (name, request) in kinds {
        // Warm up once, then time.
        let s = rt.statistics(&city, request.clone()).await?;
        let found = s.figures.total.cases.found;
        let mut times: Vec<Duration> = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let t = Instant::now();
            let s = rt.statistics(&city, request.clone()).await?;
            times.push(t.elapsed());
            anyhow::ensure!(s.figures.total.cases.found == found, "answers changed");
        }
        times.sort();
        let at =
            |p: usize| times[(p * times.len()).div_ceil(100).max(1) - 1].as_secs_f64() * 1000.0;
        println!(
            "{name} ({} .. {}): found {found}, fixed {}, median days to fix {:?}: \
             p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms",
            request.from,
            request.to,
            s.figures.total.cases.fixed,
            s.figures.total.cases.median_days_to_fix,
            at(50),
            at(90),
            at(99)
        );
    }
    rt.shutdown().await;
    Ok(())
}

use chrono::Datelike as _;
