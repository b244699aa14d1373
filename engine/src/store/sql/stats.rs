//! The SQL of statistics: folding the queue into the rollups (one transaction, one process at a time), and the sums and star counts that answer a query.

use super::*;
use crate::stats::{Place, Rollup, Summed, Visit, case_tallies, china_day, grade_tally};
use crate::store::StatsQuery;

/// One queued item, as the triggers wrote it.
struct Queued {
    id: i64,
    kind: String,
    case_id: i64,
    seq: i64,
    ref_id: i64,
    day: Option<String>,
    place: Option<Place>,
}

fn queued_row(r: &Row) -> Result<Queued, Error> {
    let grid: Option<i64> = r.try_get("grid_id")?;
    let street: Option<i64> = r.try_get("street_id")?;
    let district: Option<String> = r.try_get("district_code")?;
    Ok(Queued {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        case_id: r.try_get("case_id")?,
        seq: r.try_get("seq")?,
        ref_id: r.try_get("ref_id")?,
        day: r.try_get("day")?,
        place: match (grid, street, district) {
            (Some(grid), Some(street), Some(district)) => Some(Place {
                grid,
                street,
                district,
            }),
            _ => None,
        },
    })
}

/// A case as the fold needs it: its category, severity and place now (for events queued
/// without one), and its history.
struct FoldCase {
    category: String,
    severity: String,
    place: Place,
    history: Vec<EventRecord>,
}

fn place_of(r: &Row) -> Result<Place, Error> {
    Ok(Place {
        grid: r.try_get("grid_id")?,
        street: r.try_get("street_id")?,
        district: r.try_get("district_code")?,
    })
}

/// Starts `head` (ending in `IN (`) with the ids bound and the list closed.
fn select_in(head: &str, ids: &[i64]) -> QueryBuilder<Db> {
    let mut q = QueryBuilder::<Db>::new(head.to_string());
    push_ids(&mut q, ids);
    q
}

async fn fold_cases(tx: &mut Tx<'_>, ids: &[i64]) -> Result<BTreeMap<i64, FoldCase>, Error> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let rows = select_in(
            "SELECT id, category, severity, grid_id, street_id, district_code FROM cases \
             WHERE id IN (",
            chunk,
        )
        .build()
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            out.insert(
                r.try_get::<i64, _>("id")?,
                FoldCase {
                    category: r.try_get("category")?,
                    severity: r.try_get("severity")?,
                    place: place_of(r)?,
                    history: Vec::new(),
                },
            );
        }
        let rows = select_in(
            "SELECT case_id, seq, at, actor_role, actor_id, command, from_state, to_state, \
             reason, data FROM case_events WHERE case_id IN (",
            chunk,
        )
        .push(" ORDER BY case_id, seq")
        .build()
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            if let Some(c) = out.get_mut(&r.try_get::<i64, _>("case_id")?) {
                c.history.push(event_from_row(r)?);
            }
        }
    }
    Ok(out)
}

/// The visits of a batch: each with its time and whether it is the first visit that day
/// to a unit on that day's plan. Three reads per chunk: the visits, the plan stops of
/// their units over their days, and their units' visits over those days.
async fn fold_visits(
    tx: &mut Tx<'_>,
    ids: &[i64],
) -> Result<BTreeMap<i64, (DateTime<Utc>, Visit)>, Error> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(MAX_PARAMS / 2) {
        let rows = select_in(
            "SELECT id, unit_id, inspector_id, at, outcome, off_site, located \
             FROM inspections WHERE id IN (",
            chunk,
        )
        .build()
        .fetch_all(&mut **tx)
        .await?;
        let mut visits = Vec::with_capacity(rows.len());
        for r in &rows {
            let at = from_millis(r.try_get("at")?);
            let visit = Visit {
                inspector: r.try_get::<Option<i64>, _>("inspector_id")?.unwrap_or(0),
                outcome: r.try_get("outcome")?,
                off_site: r.try_get("off_site")?,
                located: r.try_get("located")?,
                planned_first: false,
            };
            visits.push((
                r.try_get::<i64, _>("id")?,
                r.try_get::<i64, _>("unit_id")?,
                at,
                visit,
            ));
        }
        let (Some(first), Some(last)) = (
            visits.iter().map(|v| china_day(v.2)).min(),
            visits.iter().map(|v| china_day(v.2)).max(),
        ) else {
            continue;
        };
        let units: Vec<i64> = visits
            .iter()
            .map(|v| v.1)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut q = select_in(
            "SELECT plan_date, unit_id FROM plan_stops WHERE unit_id IN (",
            &units,
        );
        q.push(" AND plan_date >= ")
            .push_bind(first.to_string())
            .push(" AND plan_date <= ")
            .push_bind(last.to_string());
        let mut planned = BTreeSet::new();
        for r in q.build().fetch_all(&mut **tx).await? {
            planned.insert((
                r.try_get::<String, _>("plan_date")?,
                r.try_get::<i64, _>("unit_id")?,
            ));
        }
        let mut q = select_in(
            "SELECT id, unit_id, at FROM inspections WHERE unit_id IN (",
            &units,
        );
        q.push(" AND at >= ")
            .push_bind(ms(crate::time::day_bounds(first).0))
            .push(" AND at < ")
            .push_bind(ms(crate::time::day_bounds(last).1));
        // The first visit of each unit on each day.
        let mut firsts: BTreeMap<(i64, NaiveDate), i64> = BTreeMap::new();
        for r in q.build().fetch_all(&mut **tx).await? {
            let id: i64 = r.try_get("id")?;
            let day = china_day(from_millis(r.try_get("at")?));
            let first = firsts.entry((r.try_get("unit_id")?, day)).or_insert(id);
            *first = (*first).min(id);
        }
        for (id, unit, at, mut visit) in visits {
            let day = china_day(at);
            let planned_today = planned.contains(&(day.to_string(), unit));
            visit.planned_first = planned_today && firsts.get(&(unit, day)) == Some(&id);
            out.insert(id, (at, visit));
        }
    }
    Ok(out)
}

/// A grade change: when, the stars before and after.
type GradeChange = (DateTime<Utc>, Option<u8>, Option<u8>);

async fn fold_grades(tx: &mut Tx<'_>, ids: &[i64]) -> Result<BTreeMap<i64, GradeChange>, Error> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let rows = select_in(
            "SELECT id, at, stars, stars_before FROM unit_grades WHERE id IN (",
            chunk,
        )
        .build()
        .fetch_all(&mut **tx)
        .await?;
        for r in &rows {
            out.insert(
                r.try_get::<i64, _>("id")?,
                (
                    from_millis(r.try_get("at")?),
                    stars_at(r, "stars_before")?,
                    stars_at(r, "stars")?,
                ),
            );
        }
    }
    Ok(out)
}

fn ids_of(items: &[Queued], kind: &str, id: impl Fn(&Queued) -> i64) -> Vec<i64> {
    let set: BTreeSet<i64> = items.iter().filter(|q| q.kind == kind).map(id).collect();
    set.into_iter().collect()
}

/// Writes a batch's sums into the rollups, adding to rows already there.
async fn write_rollup(tx: &mut Tx<'_>, rollup: &Rollup) -> Result<(), Error> {
    let cells: Vec<_> = rollup.cells.iter().collect();
    for chunk in cells.chunks(rows_per_statement(12)) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO stat_cells (grain, level, area, period, category, severity, \
             department_id, inspector_id, metric, bucket, n, amount) ",
        );
        q.push_values(chunk, |mut b, (k, (n, amount))| {
            b.push_bind(k.grain)
                .push_bind(k.level)
                .push_bind(k.area.clone())
                .push_bind(k.period.clone())
                .push_bind(k.category.clone())
                .push_bind(k.severity.clone())
                .push_bind(k.department)
                .push_bind(k.inspector)
                .push_bind(k.metric)
                .push_bind(k.bucket.clone())
                .push_bind(*n)
                .push_bind(*amount);
        });
        q.push(
            " ON CONFLICT (grain, level, area, period, category, severity, department_id, \
             inspector_id, metric, bucket) DO UPDATE SET n = stat_cells.n + excluded.n, \
             amount = stat_cells.amount + excluded.amount",
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[async_trait]
impl StatsStore for This {
    async fn fold_statistics(&self, limit: u32) -> Result<usize, Error> {
        let mut tx = begin_write(self.writer()).await?;
        lock_named(&mut tx, "statistics").await?;
        let items: Vec<Queued> = sqlx::query(
            "SELECT id, kind, case_id, seq, ref_id, day, grid_id, street_id, district_code \
             FROM stat_queue ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(queued_row)
        .collect::<Result<_, _>>()?;
        if items.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        let cases = fold_cases(&mut tx, &ids_of(&items, "event", |q| q.case_id)).await?;
        let visits = fold_visits(&mut tx, &ids_of(&items, "visit", |q| q.ref_id)).await?;
        let grades = fold_grades(&mut tx, &ids_of(&items, "grade", |q| q.ref_id)).await?;
        let mut rollup = Rollup::default();
        for item in &items {
            match item.kind.as_str() {
                "event" => {
                    // A case or event since removed has nothing to add.
                    let Some(c) = cases.get(&item.case_id) else {
                        continue;
                    };
                    let Some(index) = c.history.iter().position(|e| e.seq == item.seq) else {
                        continue;
                    };
                    let place = item.place.as_ref().unwrap_or(&c.place);
                    let day = china_day(c.history[index].at);
                    for t in case_tallies(&c.history, index, &c.category, &c.severity) {
                        rollup.add(day, place, &t);
                    }
                }
                "visit" => {
                    let (Some((at, v)), Some(place)) = (visits.get(&item.ref_id), &item.place)
                    else {
                        continue;
                    };
                    for t in crate::stats::visit_tallies(v) {
                        rollup.add(china_day(*at), place, &t);
                    }
                }
                "stop" => {
                    let (Some(day), Some(place)) = (
                        item.day
                            .as_deref()
                            .and_then(|d| d.parse::<NaiveDate>().ok()),
                        &item.place,
                    ) else {
                        continue;
                    };
                    rollup.add(day, place, &crate::stats::stop_tally(item.seq));
                }
                _ => {
                    let (Some((at, before, after)), Some(place)) =
                        (grades.get(&item.ref_id), &item.place)
                    else {
                        continue;
                    };
                    if let Some(t) = grade_tally(*before, *after) {
                        rollup.add(china_day(*at), place, &t);
                    }
                }
            }
        }
        write_rollup(&mut tx, &rollup).await?;
        let ids: Vec<i64> = items.iter().map(|q| q.id).collect();
        for chunk in ids.chunks(MAX_PARAMS) {
            select_in("DELETE FROM stat_queue WHERE id IN (", chunk)
                .build()
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(items.len())
    }

    async fn statistics_backlog(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM stat_queue")
            .fetch_one(self.reader())
            .await?)
    }

    async fn statistics(&self, query: &StatsQuery) -> Result<Vec<Summed>, Error> {
        let mut out = Vec::new();
        for (grain, from, to) in &query.ranges {
            for areas in query.areas.chunks(MAX_PARAMS / 2) {
                let mut q = QueryBuilder::<Db>::new(
                    "SELECT category, severity, department_id, inspector_id, metric, bucket, \
                     CAST(SUM(n) AS BIGINT) AS n, CAST(SUM(amount) AS BIGINT) AS amount \
                     FROM stat_cells WHERE grain = ",
                );
                q.push_bind(*grain)
                    .push(" AND level = ")
                    .push_bind(query.level)
                    .push(" AND area IN (");
                let mut list = q.separated(", ");
                for a in areas {
                    list.push_bind(a.clone());
                }
                q.push(") AND period >= ")
                    .push_bind(from.clone())
                    .push(" AND period <= ")
                    .push_bind(to.clone());
                if let Some(d) = query.department {
                    q.push(" AND department_id = ").push_bind(d);
                }
                q.push(" GROUP BY category, severity, department_id, inspector_id, metric, bucket");
                for r in q.build().fetch_all(self.reader()).await? {
                    out.push(Summed {
                        category: r.try_get("category")?,
                        severity: r.try_get("severity")?,
                        department: r.try_get("department_id")?,
                        inspector: r.try_get("inspector_id")?,
                        metric: r.try_get("metric")?,
                        bucket: r.try_get("bucket")?,
                        n: r.try_get("n")?,
                        amount: r.try_get("amount")?,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn star_distribution(
        &self,
        level: &str,
        areas: &[String],
    ) -> Result<BTreeMap<u8, i64>, Error> {
        let mut q =
            QueryBuilder::<Db>::new("SELECT stars, CAST(SUM(n) AS BIGINT) AS n FROM stat_stars");
        let column = match level {
            "g" => Some("grid_id"),
            "s" => Some("street_id"),
            "d" => Some("district_code"),
            _ => None,
        };
        if let Some(column) = column {
            if areas.is_empty() {
                return Ok(BTreeMap::new());
            }
            q.push(format_args!(" WHERE {column} IN ("));
            let mut list = q.separated(", ");
            for a in areas.iter().take(MAX_PARAMS) {
                if column == "district_code" {
                    list.push_bind(a.clone());
                } else {
                    list.push_bind(a.parse::<i64>().unwrap_or(-1));
                }
            }
            q.push(")");
        }
        q.push(" GROUP BY stars");
        let mut out = BTreeMap::new();
        for r in q.build().fetch_all(self.reader()).await? {
            if let Some(s) = stars_at(&r, "stars")? {
                let n: i64 = r.try_get("n")?;
                if n != 0 {
                    out.insert(s, n);
                }
            }
        }
        Ok(out)
    }
}
