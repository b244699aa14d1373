//! The SQL of patrol plans.

use super::*;

/// An inspector's daily visits: their own, or the planner's default.
fn capacity_at(row: &Row) -> Result<u32, Error> {
    Ok(row
        .try_get::<Option<i64>, _>("capacity")?
        .map(|c| u32::try_from(c).map_err(corrupt))
        .transpose()?
        .unwrap_or(crate::planning::DEFAULT_CAPACITY))
}
#[async_trait]
impl PlanStore for This {
    async fn plan_candidates(
        &self,
        grids: Option<&[GridId]>,
        day_start: DateTime<Utc>,
        day_end: DateTime<Utc>,
    ) -> Result<Vec<Candidate>, Error> {
        use futures_util::TryStreamExt;
        let query = |grids: Option<&[GridId]>| {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT u.id, u.grid_id, u.lon, u.lat, u.next_due_at, u.stars, u.evening_only, \
                 cu.starts_at AS campaign_from FROM units u LEFT JOIN (SELECT cu.unit_id, \
                 MIN(c.starts_at) AS starts_at FROM campaign_units cu \
                 JOIN campaigns c ON c.id = cu.campaign_id WHERE c.starts_at < ",
            );
            q.push_bind(ms(day_end))
                .push(" AND c.ends_at > ")
                .push_bind(ms(day_start))
                .push(
                    " AND cu.visited_at IS NULL GROUP BY cu.unit_id) cu ON cu.unit_id = u.id \
                     WHERE (u.next_due_at IS NULL OR u.next_due_at < ",
                )
                .push_bind(ms(day_end))
                .push(" OR cu.unit_id IS NOT NULL) AND u.grid_id <> 0");
            if let Some(grids) = grids {
                q.push(" AND u.grid_id IN (");
                let mut list = q.separated(", ");
                for g in grids {
                    list.push_bind(g.0);
                }
                q.push(")");
            }
            q
        };
        let chunks: Vec<Option<&[GridId]>> = match grids {
            None => vec![None],
            Some([]) => vec![],
            Some(grids) => grids.chunks(rows_per_statement(1) - 3).map(Some).collect(),
        };
        let mut out = Vec::new();
        for chunk in chunks {
            let mut q = query(chunk);
            let mut rows = q.build().fetch(self.reader());
            while let Some(r) = rows.try_next().await? {
                out.push(Candidate {
                    id: UnitId(r.try_get("id")?),
                    grid_id: GridId(r.try_get("grid_id")?),
                    lon: r.try_get("lon")?,
                    lat: r.try_get("lat")?,
                    next_due_at: r.try_get::<Option<i64>, _>("next_due_at")?.map(from_millis),
                    stars: stars_at(&r, "stars")?,
                    evening_only: r.try_get("evening_only")?,
                    campaign_from: r
                        .try_get::<Option<i64>, _>("campaign_from")?
                        .map(from_millis),
                    tip: false,
                });
            }
        }
        Ok(out)
    }

    async fn planners(&self) -> Result<Vec<Planner>, Error> {
        let mut grids = inspector_grid_lists(self.reader()).await?;
        sqlx::query("SELECT id, shift, capacity FROM inspectors ORDER BY id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                Ok(Planner {
                    id: InspectorId(id),
                    shift: r.try_get("shift")?,
                    capacity: capacity_at(r)?,
                    grids: grids.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn save_plan(
        &self,
        plan: &DayPlan,
        at: DateTime<Utc>,
        mode: PlanSave,
    ) -> Result<usize, Error> {
        let date = plan.date.to_string();
        let mut tx = begin_write(self.writer()).await?;
        lock_named(&mut tx, &format!("plan:{date}")).await?;
        if mode == PlanSave::ReplaceCity {
            for table in ["plan_stops", "plan_routes", "plan_backlog", "plan_days"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE plan_date = $1"
                )))
                .bind(&date)
                .execute(&mut *tx)
                .await?;
            }
        }
        // Routes stored already (by a group planned when one of its inspectors first
        // looked, or an earlier run) stay as they are, with their visits.
        let stored: BTreeSet<i64> =
            sqlx::query("SELECT inspector_id FROM plan_routes WHERE plan_date = $1")
                .bind(&date)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<i64, _>(0))
                .collect::<Result<_, _>>()?;
        let routes: Vec<&crate::planning::Route> = plan
            .routes
            .iter()
            .filter(|r| !stored.contains(&r.inspector_id.0))
            .collect();
        if mode != PlanSave::Group {
            sqlx::query(
                "INSERT INTO plan_days (plan_date, planned_at, due, planned, routes, length_m, \
                 nn_length_m) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(&date)
            .bind(ms(at))
            .bind(plan.due() as i64)
            .bind(plan.planned() as i64)
            .bind(plan.routes.len() as i64)
            .bind(plan.routes.iter().map(|r| r.length_m).sum::<f64>())
            .bind(plan.routes.iter().map(|r| r.nn_length_m).sum::<f64>())
            .execute(&mut *tx)
            .await?;
        }
        for chunk in routes.chunks(rows_per_statement(7)) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO plan_routes (plan_date, inspector_id, shift, capacity, length_m, \
                 nn_length_m, planned_at) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(&date)
                    .push_bind(r.inspector_id.0)
                    .push_bind(&r.shift)
                    .push_bind(i64::from(r.capacity))
                    .push_bind(r.length_m)
                    .push_bind(r.nn_length_m)
                    .push_bind(ms(at));
            });
            q.build().execute(&mut *tx).await?;
        }
        let stops: Vec<(InspectorId, usize, &crate::planning::Stop)> = routes
            .iter()
            .flat_map(|r| {
                r.stops
                    .iter()
                    .enumerate()
                    .map(move |(k, s)| (r.inspector_id, k + 1, s))
            })
            .collect();
        for chunk in stops.chunks(rows_per_statement(7)) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO plan_stops (plan_date, inspector_id, seq, unit_id, reason, \
                 overdue_days, leg_m) ",
            );
            q.push_values(chunk, |mut b, (inspector, seq, s)| {
                b.push_bind(&date)
                    .push_bind(inspector.0)
                    .push_bind(*seq as i64)
                    .push_bind(s.unit_id.0)
                    .push_bind(s.reason.as_str())
                    .push_bind(s.overdue_days)
                    .push_bind(s.leg_m);
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        for g in &plan.backlog {
            sqlx::query("DELETE FROM plan_backlog WHERE plan_date = $1 AND grid_id = $2")
                .bind(&date)
                .bind(g.grid_id.0)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in plan.backlog.chunks(rows_per_statement(5)) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO plan_backlog (plan_date, grid_id, due, planned, left_over) ",
            );
            q.push_values(chunk, |mut b, g| {
                b.push_bind(&date)
                    .push_bind(g.grid_id.0)
                    .push_bind(i64::from(g.due))
                    .push_bind(i64::from(g.planned))
                    .push_bind(i64::from(g.left));
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(routes.len())
    }

    async fn stored_route(
        &self,
        date: NaiveDate,
        inspector: InspectorId,
    ) -> Result<Option<StoredRoute>, Error> {
        let key = date.to_string();
        let route = sqlx::query(
            "SELECT shift, capacity, length_m, nn_length_m, planned_at FROM plan_routes \
             WHERE plan_date = $1 AND inspector_id = $2",
        )
        .bind(&key)
        .bind(inspector.0)
        .fetch_optional(self.reader())
        .await?;
        let day = sqlx::query("SELECT planned_at FROM plan_days WHERE plan_date = $1")
            .bind(&key)
            .fetch_optional(self.reader())
            .await?;
        if route.is_none() && day.is_none() {
            return Ok(None);
        }
        let (start, end) = crate::time::day_bounds(date);
        let stops = sqlx::query(
            "SELECT s.seq, s.unit_id, u.address, u.grid_id, u.lon, u.lat, s.reason, \
             s.overdue_days, u.stars, u.evening_only, s.leg_m, s.extra, \
             (SELECT MIN(i.at) FROM inspections i WHERE i.unit_id = s.unit_id \
              AND i.at >= $3 AND i.at < $4) AS visited_at, \
             (SELECT i.outcome FROM inspections i WHERE i.unit_id = s.unit_id \
              AND i.at >= $3 AND i.at < $4 ORDER BY i.at, i.id LIMIT 1) AS outcome \
             FROM plan_stops s JOIN units u ON u.id = s.unit_id \
             WHERE s.plan_date = $1 AND s.inspector_id = $2 ORDER BY s.seq",
        )
        .bind(&key)
        .bind(inspector.0)
        .bind(ms(start))
        .bind(ms(end))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            let reason: String = r.try_get("reason")?;
            Ok(StoredStop {
                seq: u32::try_from(r.try_get::<i64, _>("seq")?).map_err(corrupt)?,
                unit_id: UnitId(r.try_get("unit_id")?),
                address: r.try_get("address")?,
                grid_id: GridId(r.try_get("grid_id")?),
                lon: r.try_get("lon")?,
                lat: r.try_get("lat")?,
                reason: Reason::parse(&reason).ok_or_else(|| corrupt(reason))?,
                overdue_days: r.try_get("overdue_days")?,
                stars: stars_at(r, "stars")?,
                evening_only: r.try_get("evening_only")?,
                leg_m: r.try_get("leg_m")?,
                visited_at: r.try_get::<Option<i64>, _>("visited_at")?.map(from_millis),
                outcome: r.try_get("outcome")?,
                extra: r.try_get::<i64, _>("extra")? != 0,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
        let (shift, capacity, length_m, nn_length_m, planned_at) = match route {
            Some(r) => (
                r.try_get("shift")?,
                u32::try_from(r.try_get::<i64, _>("capacity")?).map_err(corrupt)?,
                r.try_get("length_m")?,
                r.try_get("nn_length_m")?,
                from_millis(r.try_get("planned_at")?),
            ),
            None => {
                let r = sqlx::query("SELECT shift, capacity FROM inspectors WHERE id = $1")
                    .bind(inspector.0)
                    .fetch_one(self.reader())
                    .await?;
                let day = day.expect("a planned day");
                (
                    r.try_get("shift")?,
                    capacity_at(&r)?,
                    0.0,
                    0.0,
                    from_millis(day.try_get("planned_at")?),
                )
            }
        };
        Ok(Some(StoredRoute {
            inspector_id: inspector,
            shift,
            capacity,
            length_m,
            nn_length_m,
            planned_at,
            stops,
        }))
    }

    async fn append_stops(
        &self,
        date: NaiveDate,
        inspector: InspectorId,
        stops: &[crate::planning::Stop],
    ) -> Result<(), Error> {
        if stops.is_empty() {
            return Ok(());
        }
        let key = date.to_string();
        let mut tx = begin_write(self.writer()).await?;
        lock_named(&mut tx, &format!("plan:{key}")).await?;
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(seq), 0) FROM plan_stops WHERE plan_date = $1 AND inspector_id = $2",
        )
        .bind(&key)
        .bind(inspector.0)
        .fetch_one(&mut *tx)
        .await?;
        for (k, s) in stops.iter().enumerate() {
            sqlx::query(
                "INSERT INTO plan_stops (plan_date, inspector_id, seq, unit_id, reason, \
                 overdue_days, leg_m, extra) VALUES ($1, $2, $3, $4, $5, $6, $7, 1) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&key)
            .bind(inspector.0)
            .bind(last + 1 + k as i64)
            .bind(s.unit_id.0)
            .bind(s.reason.as_str())
            .bind(s.overdue_days)
            .bind(s.leg_m)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn new_candidates(
        &self,
        date: NaiveDate,
        grids: &[GridId],
        since: DateTime<Utc>,
    ) -> Result<Vec<Candidate>, Error> {
        if grids.is_empty() {
            return Ok(Vec::new());
        }
        let (start, end) = crate::time::day_bounds(date);
        // An open tip on the unit that no visit answered since it came in.
        const TIP: &str = "EXISTS (SELECT 1 FROM tips t WHERE t.unit_id = u.id \
             AND t.status = 'open' AND NOT EXISTS (SELECT 1 FROM inspections i2 \
             WHERE i2.unit_id = u.id AND i2.at >= t.created_at))";
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT u.id, u.grid_id, u.lon, u.lat, u.next_due_at, u.stars, u.evening_only, \
             CAST(CASE WHEN {TIP} THEN 1 ELSE 0 END AS BIGINT) AS tip, \
             (SELECT MIN(c.starts_at) FROM campaign_units cu JOIN campaigns c \
              ON c.id = cu.campaign_id WHERE cu.unit_id = u.id AND cu.visited_at IS NULL \
              AND c.created_at > ",
        ));
        q.push_bind(ms(since))
            .push(" AND c.starts_at < ")
            .push_bind(ms(end))
            .push(" AND c.ends_at > ")
            .push_bind(ms(start))
            .push(") AS campaign_from FROM units u WHERE u.grid_id IN (");
        let mut list = q.separated(", ");
        for g in grids {
            list.push_bind(g.0);
        }
        q.push(") AND NOT EXISTS (SELECT 1 FROM plan_stops p WHERE p.plan_date = ")
            .push_bind(date.to_string())
            .push(" AND p.unit_id = u.id) AND (")
            .push(TIP)
            .push(
                " OR (NOT EXISTS (SELECT 1 FROM inspections i WHERE i.unit_id = u.id AND i.at >= ",
            )
            .push_bind(ms(start))
            .push(") AND ((u.created_at > ")
            .push_bind(ms(since))
            .push(" AND (u.next_due_at IS NULL OR u.next_due_at < ")
            .push_bind(ms(end))
            .push(
                ")) OR EXISTS (SELECT 1 FROM campaign_units cu JOIN campaigns c \
                   ON c.id = cu.campaign_id WHERE cu.unit_id = u.id AND cu.visited_at IS NULL \
                   AND c.created_at > ",
            )
            .push_bind(ms(since))
            .push(" AND c.starts_at < ")
            .push_bind(ms(end))
            .push(" AND c.ends_at > ")
            .push_bind(ms(start))
            .push(")))) ORDER BY u.id");
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(Candidate {
                    id: UnitId(r.try_get("id")?),
                    grid_id: GridId(r.try_get("grid_id")?),
                    lon: r.try_get("lon")?,
                    lat: r.try_get("lat")?,
                    next_due_at: r.try_get::<Option<i64>, _>("next_due_at")?.map(from_millis),
                    stars: stars_at(r, "stars")?,
                    evening_only: r.try_get("evening_only")?,
                    campaign_from: r
                        .try_get::<Option<i64>, _>("campaign_from")?
                        .map(from_millis),
                    tip: r.try_get::<i64, _>("tip")? != 0,
                })
            })
            .collect()
    }

    async fn claim_plan_run(&self, date: NaiveDate, at: DateTime<Utc>) -> Result<bool, Error> {
        Ok(sqlx::query(
            "INSERT INTO plan_runs (plan_date, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(date.to_string())
        .bind(ms(at))
        .execute(self.writer())
        .await?
        .rows_affected()
            == 1)
    }

    async fn stored_backlog(
        &self,
        date: NaiveDate,
        scope: &Scope,
    ) -> Result<Option<Vec<Backlog>>, Error> {
        let key = date.to_string();
        let planned = sqlx::query("SELECT plan_date FROM plan_days WHERE plan_date = $1")
            .bind(&key)
            .fetch_optional(self.reader())
            .await?
            .is_some();
        if !planned {
            return Ok(None);
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT grid_id, due, planned, left_over FROM plan_backlog WHERE plan_date = ",
        );
        q.push_bind(key).push(
            " AND grid_id IN (SELECT grid_id FROM (SELECT g.id AS grid_id, c.street_id, \
             s.district_code FROM grids g JOIN communities c ON c.id = g.community_id \
             JOIN streets s ON s.id = c.street_id) places WHERE 1 = 1",
        );
        push_scope(&mut q, scope);
        q.push(") ORDER BY left_over DESC, grid_id");
        let rows = q.build().fetch_all(self.reader()).await?;
        let count = |r: &Row, name: &str| -> Result<u32, Error> {
            u32::try_from(r.try_get::<i64, _>(name)?).map_err(corrupt)
        };
        rows.iter()
            .map(|r| {
                Ok(Backlog {
                    grid_id: GridId(r.try_get("grid_id")?),
                    due: count(r, "due")?,
                    planned: count(r, "planned")?,
                    left: count(r, "left_over")?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()
            .map(Some)
    }
}
