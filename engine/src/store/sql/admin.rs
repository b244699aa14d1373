//! The SQL of the store as a whole: backend, writers, migrations, workflow definitions, statistics, fingerprint.

use super::*;

#[async_trait]
impl AdminStore for This {
    fn backend(&self) -> Backend {
        BACKEND
    }

    fn writers(&self) -> usize {
        self.writer_count()
    }

    fn stale_retries(&self) -> u64 {
        stale_retries(self)
    }

    async fn refresh_statistics(&self) -> Result<Vec<String>, Error> {
        refresh_statistics(self.writer()).await
    }

    async fn migrate(&self) -> Result<(), Error> {
        migrator().run(self.writer()).await?;
        Ok(())
    }

    async fn register_definition(
        &self,
        name: &str,
        version: u32,
        hash: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> crate::Result<i64> {
        let text = serde_json::to_string(body).map_err(corrupt)?;
        sqlx::query(
            "INSERT INTO workflow_definitions (name, version, hash, body, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name, version) DO NOTHING",
        )
        .bind(name)
        .bind(i64::from(version))
        .bind(hash)
        .bind(text)
        .bind(ms(now))
        .execute(self.writer())
        .await
        .map_err(Error::from)?;
        let row = sqlx::query(
            "SELECT id, hash FROM workflow_definitions WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(i64::from(version))
        .fetch_one(self.writer())
        .await
        .map_err(Error::from)?;
        let stored: String = row.try_get("hash").map_err(Error::from)?;
        if stored != hash {
            return Err(crate::Error::Conflict(format!(
                "workflow {name} v{version} is already stored with other content; \
                 running cases depend on it, so publish the change as a new version"
            )));
        }
        Ok(row.try_get("id").map_err(Error::from)?)
    }

    async fn definitions(&self) -> Result<Vec<(i64, Value)>, Error> {
        let rows = sqlx::query("SELECT id, body FROM workflow_definitions ORDER BY id")
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                let body: String = r.try_get("body")?;
                Ok((
                    r.try_get("id")?,
                    serde_json::from_str(&body).map_err(corrupt)?,
                ))
            })
            .collect()
    }

    async fn table_counts(&self) -> Result<Vec<(String, i64)>, Error> {
        let names: Vec<String> = sqlx::query_scalar(TABLE_NAMES)
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            // Names come from the catalog, not from a caller.
            let sql = format!("SELECT COUNT(*) FROM \"{}\"", name.replace('"', ""));
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(self.reader())
                .await?;
            out.push((name, n));
        }
        Ok(out)
    }

    async fn silent_messages(&self) -> Result<Vec<i64>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT o.id FROM outbox o WHERE o.delivered_at IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.outbox_id = o.id) ORDER BY o.id",
        )
        .fetch_all(self.reader())
        .await?)
    }

    async fn fingerprint(&self) -> Result<Vec<(String, i64)>, Error> {
        let mut out = Vec::new();
        for (name, sql) in [
            ("cases", "SELECT COUNT(*) FROM cases"),
            (
                "case_versions",
                "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM cases",
            ),
            ("case_events", "SELECT COUNT(*) FROM case_events"),
            (
                "timers",
                "SELECT COUNT(*) FROM cases WHERE timer_due_at IS NOT NULL",
            ),
            (
                "timer_seqs",
                "SELECT CAST(COALESCE(SUM(timer_seq), 0) AS BIGINT) FROM cases",
            ),
            ("outbox", "SELECT COUNT(*) FROM outbox"),
            ("referrals", "SELECT COUNT(*) FROM referrals"),
            ("inspections", "SELECT COUNT(*) FROM inspections"),
            ("units", "SELECT COUNT(*) FROM units"),
            ("unit_parties", "SELECT COUNT(*) FROM unit_parties"),
            ("parties", "SELECT COUNT(*) FROM parties"),
            ("idempotency_keys", "SELECT COUNT(*) FROM idempotency_keys"),
            ("api_tokens", "SELECT COUNT(*) FROM api_tokens"),
            ("declarations", "SELECT COUNT(*) FROM unit_declarations"),
            (
                "tips",
                "SELECT COUNT(*) + CAST(COALESCE(SUM(CASE WHEN status = 'open' THEN 0 ELSE 1 END), 0) AS BIGINT) FROM tips",
            ),
            (
                "workflow_definitions",
                "SELECT COUNT(*) FROM workflow_definitions",
            ),
        ] {
            let n: i64 = sqlx::query_scalar(sql).fetch_one(self.reader()).await?;
            out.push((name.to_string(), n));
        }
        Ok(out)
    }
}
