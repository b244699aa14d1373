//! The SQL of escalation rules.

use super::*;

static CLAIM_RULE_JOBS: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "UPDATE rule_jobs SET claimed_until = $1, claimed_by = $2 \
         WHERE id IN (SELECT id FROM rule_jobs \
                      WHERE head = 1 AND done_at IS NULL \
                        AND (claimed_until IS NULL OR claimed_until <= $3) \
                      ORDER BY id LIMIT $4{SKIP_LOCKED}) \
         RETURNING {RULE_JOB_COLUMNS}"
    ))
});
fn rule_job_from_row(r: &Row) -> Result<RuleJob, Error> {
    Ok(RuleJob {
        id: r.try_get("id")?,
        case_id: CaseId(r.try_get("case_id")?),
        event_seq: r.try_get("event_seq")?,
        trigger: r.try_get("on_event")?,
        detail: r.try_get::<Option<Json<Value>>, _>("detail")?.map(|j| j.0),
        created_at: from_millis(r.try_get("created_at")?),
        done_at: r.try_get::<Option<i64>, _>("done_at")?.map(from_millis),
        outcome: r.try_get::<Option<Json<Value>>, _>("outcome")?.map(|j| j.0),
    })
}
/// Open cases with only the columns rules see (reading is most of a sweep's time);
/// callers add conditions after `WHERE closed_at IS NULL`.
const OPEN_CASE_SELECT: &str = "SELECT id, unit_id, category, severity, state, order_no, \
    escalation, reopen_count, deadline_at, department_id, party_id, address, district_code, \
    (SELECT stars FROM units u WHERE u.id = cases.unit_id) AS unit_stars, \
    (SELECT COUNT(*) FROM cases k WHERE k.unit_id = cases.unit_id AND k.id < cases.id) \
    AS past_cases, street_id, grid_id FROM cases WHERE closed_at IS NULL";
fn open_case_from_row(r: &Row) -> Result<OpenCase, Error> {
    Ok(OpenCase {
        id: CaseId(r.try_get(0)?),
        unit_id: UnitId(r.try_get(1)?),
        category: r.try_get(2)?,
        severity: r.try_get(3)?,
        state: r.try_get(4)?,
        order_no: r.try_get(5)?,
        escalation: r.try_get(6)?,
        reopen_count: r.try_get(7)?,
        deadline_at: r.try_get::<Option<i64>, _>(8)?.map(from_millis),
        department_id: r.try_get::<Option<i64>, _>(9)?.map(DepartmentId),
        party_id: r.try_get::<Option<i64>, _>(10)?.map(PartyId),
        address: r.try_get(11)?,
        district_code: r.try_get(12)?,
        unit_stars: stars_at(r, 13)?,
        past_cases: r.try_get(14)?,
        street_id: some_id(r, "street_id")?.map(StreetId),
        grid_id: some_id(r, "grid_id")?.map(GridId),
    })
}
const RULE_JOB_COLUMNS: &str =
    "id, case_id, event_seq, on_event, detail, created_at, done_at, outcome";
#[async_trait]
impl RuleStore for This {
    async fn max_case_id(&self) -> Result<CaseId, Error> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM cases")
            .fetch_one(self.reader())
            .await?;
        Ok(CaseId(id.unwrap_or(0)))
    }

    async fn open_cases_page(
        &self,
        after: CaseId,
        before: CaseId,
        limit: u32,
    ) -> Result<Vec<OpenCase>, Error> {
        let mut q = QueryBuilder::<Db>::new(OPEN_CASE_SELECT);
        q.push(" AND id > ")
            .push_bind(after.0)
            .push(" AND id < ")
            .push_bind(before.0)
            .push(" ORDER BY id LIMIT ")
            .push_bind(i64::from(limit));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(open_case_from_row)
            .collect()
    }

    async fn open_cases_by_id(&self, ids: &[CaseId]) -> Result<Vec<OpenCase>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_statement(1)) {
            let mut q = QueryBuilder::<Db>::new(OPEN_CASE_SELECT);
            q.push(" AND id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            q.push(") ORDER BY id");
            for r in &q.build().fetch_all(self.reader()).await? {
                out.push(open_case_from_row(r)?);
            }
        }
        Ok(out)
    }

    async fn claim_rule_jobs(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<RuleJob>, Error> {
        let mut rows = sqlx::query(*CLAIM_RULE_JOBS)
            .bind(ms(until))
            .bind(worker)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(self.writer())
            .await?
            .iter()
            .map(rule_job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        // With room left, the jobs queued behind the claimed heads, oldest first: a
        // case with a long queue is worked off many jobs a step, in order. No other
        // worker claims them, as they are no heads; whoever holds a case's head holds
        // its queue.
        let room = i64::from(limit) - rows.len() as i64;
        if room > 0 && !rows.is_empty() {
            let mut cases: Vec<i64> = rows.iter().map(|j| j.case_id.0).collect();
            cases.sort_unstable();
            cases.dedup();
            let mut q = QueryBuilder::<Db>::new("UPDATE rule_jobs SET claimed_until = ");
            q.push_bind(ms(until))
                .push(", claimed_by = ")
                .push_bind(worker)
                .push(
                    " WHERE id IN (SELECT id FROM rule_jobs WHERE done_at IS NULL AND head = 0 \
                     AND (claimed_until IS NULL OR claimed_until <= ",
                )
                .push_bind(ms(now))
                .push(") AND case_id IN (");
            let mut list = q.separated(", ");
            for c in &cases {
                list.push_bind(*c);
            }
            q.push(") ORDER BY id LIMIT ")
                .push_bind(room)
                .push(format!("{SKIP_LOCKED}) RETURNING {RULE_JOB_COLUMNS}"));
            for row in q.build().fetch_all(self.writer()).await? {
                rows.push(rule_job_from_row(&row)?);
            }
        }
        rows.sort_by_key(|j| j.id);
        Ok(rows)
    }

    async fn finish_rule_jobs(
        &self,
        done: &[(i64, Value)],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = begin_write(self.writer()).await?;
        // The jobs' cases are locked (in id order, as batches lock them), so that a job
        // added to a case at the same time sees this one done, or is promoted below.
        let ids: Vec<i64> = done.iter().map(|(id, _)| *id).collect();
        let mut cases: Vec<i64> = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_PARAMS) {
            let mut q =
                QueryBuilder::<Db>::new("SELECT DISTINCT case_id FROM rule_jobs WHERE id IN (");
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(")");
            for r in q.build().fetch_all(&mut *tx).await? {
                cases.push(r.try_get(0)?);
            }
        }
        cases.sort_unstable();
        cases.dedup();
        lock_cases_for_rule_jobs(&mut tx, &cases).await?;
        for (id, outcome) in done {
            sqlx::query(
                "UPDATE rule_jobs SET done_at = $2, outcome = $3, claimed_until = NULL, head = 0 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(ms(at))
            .bind(Json(outcome))
            .execute(&mut *tx)
            .await?;
        }
        // The next job of each case, if any, is now the head of its queue.
        for chunk in cases.chunks(MAX_PARAMS) {
            let mut q = QueryBuilder::<Db>::new(
                "UPDATE rule_jobs SET head = 1 WHERE id IN (SELECT MIN(id) FROM rule_jobs \
                 WHERE done_at IS NULL AND case_id IN (",
            );
            let mut list = q.separated(", ");
            for c in chunk {
                list.push_bind(*c);
            }
            q.push(") GROUP BY case_id)");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn pending_rule_jobs(&self) -> Result<i64, Error> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM rule_jobs WHERE done_at IS NULL")
                .fetch_one(self.reader())
                .await?,
        )
    }

    async fn case_rule_jobs(&self, case: CaseId) -> Result<Vec<RuleJob>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_JOB_COLUMNS} FROM rule_jobs WHERE case_id = $1 ORDER BY id"
        )))
        .bind(case.0)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(rule_job_from_row)
        .collect()
    }

    async fn rule_jobs_since(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RuleJob>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RULE_JOB_COLUMNS} FROM rule_jobs WHERE created_at >= $1 ORDER BY id LIMIT $2"
        )))
        .bind(ms(since))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(rule_job_from_row)
        .collect()
    }

    async fn publish_rule_version(&self, v: &RuleVersion) -> crate::Result<()> {
        sqlx::query(
            "INSERT INTO rule_versions (name, version, spec, source, sha256, published_at, \
             published_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&v.spec.name)
        .bind(i64::from(v.spec.version))
        .bind(Json(&v.spec))
        .bind(&v.source)
        .bind(&v.sha256)
        .bind(ms(v.published_at))
        .bind(&v.published_by)
        .execute(self.writer())
        .await
        .map_err(|e| refusal(e, "this version of the rule"))?;
        Ok(())
    }

    async fn rule_versions(&self) -> Result<Vec<RuleVersion>, Error> {
        let rows = sqlx::query(
            "SELECT spec, source, sha256, published_at, published_by FROM rule_versions \
             ORDER BY name, version",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RuleVersion {
                    spec: r.try_get::<Json<crate::rules::RuleSpec>, _>(0)?.0,
                    source: r.try_get(1)?,
                    sha256: r.try_get(2)?,
                    published_at: from_millis(r.try_get(3)?),
                    published_by: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn rule_version_count(&self) -> Result<i64, Error> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM rule_versions")
            .fetch_one(self.reader())
            .await?)
    }

    async fn add_sweep_jobs(
        &self,
        day: &str,
        cases: &[CaseId],
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let mut tx = begin_write(self.writer()).await?;
        let claimed = sqlx::query(
            "INSERT INTO rule_sweeps (day, at, jobs) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(day)
        .bind(ms(at))
        .bind(cases.len() as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let mut ids: Vec<i64> = cases.iter().map(|c| c.0).collect();
        ids.sort_unstable();
        ids.dedup();
        lock_cases_for_rule_jobs(&mut tx, &ids).await?;
        for chunk in ids.chunks(MAX_PARAMS / 2) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO rule_jobs (case_id, on_event, created_at, head) SELECT c.id, ",
            );
            q.push_bind(crate::rules::Trigger::Daily.as_str())
                .push(", ")
                .push_bind(ms(at))
                .push(
                    ", CASE WHEN EXISTS (SELECT 1 FROM rule_jobs k WHERE k.case_id = c.id \
                 AND k.done_at IS NULL) THEN 0 ELSE 1 END FROM cases c WHERE c.id IN (",
                );
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            q.push(") ORDER BY c.id");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
