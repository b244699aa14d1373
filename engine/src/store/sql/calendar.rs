//! The SQL of the working-day calendar's versions, its end-of-calendar warnings and the timers that count working days.

use super::*;
use crate::store::CalendarVersion;

const CALENDAR_COLUMNS: &str =
    "version, source, sha256, years, test_data, imported_at, imported_by";

fn calendar_from_row(r: &Row) -> Result<CalendarVersion, Error> {
    Ok(CalendarVersion {
        version: r.try_get("version")?,
        source: r.try_get("source")?,
        sha256: r.try_get("sha256")?,
        years: r.try_get("years")?,
        test_data: r.try_get("test_data")?,
        imported_at: from_millis(r.try_get("imported_at")?),
        imported_by: r.try_get("imported_by")?,
    })
}

#[async_trait]
impl CalendarStore for This {
    async fn latest_calendar(&self) -> Result<Option<CalendarVersion>, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CALENDAR_COLUMNS} FROM calendar_versions ORDER BY version DESC LIMIT 1"
        )))
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(calendar_from_row).transpose()
    }

    async fn calendar_versions(&self) -> Result<Vec<CalendarVersion>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CALENDAR_COLUMNS} FROM calendar_versions ORDER BY version"
        )))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(calendar_from_row).collect()
    }

    async fn import_calendar(&self, v: &CalendarVersion) -> crate::Result<()> {
        let mut tx = begin_write(self.writer()).await.map_err(Error::from)?;
        lock_named(&mut tx, "calendar").await?;
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM calendar_versions")
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::from)?;
        if let Some(last) = last
            && v.version <= last
        {
            return Err(crate::Error::Conflict(format!(
                "calendar version {} is not above the version in force ({last}): raise `version`",
                v.version
            )));
        }
        sqlx::query(
            "INSERT INTO calendar_versions (version, source, sha256, years, test_data, \
             imported_at, imported_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(v.version)
        .bind(&v.source)
        .bind(&v.sha256)
        .bind(&v.years)
        .bind(v.test_data)
        .bind(ms(v.imported_at))
        .bind(&v.imported_by)
        .execute(&mut *tx)
        .await
        .map_err(|e| refusal(e, "this calendar version"))?;
        tx.commit().await.map_err(Error::from)?;
        Ok(())
    }

    async fn claim_calendar_warning(
        &self,
        version: i64,
        days: i64,
        notice: &crate::machine::MessageDraft,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let mut tx = begin_write(self.writer()).await?;
        let claimed = sqlx::query(
            "INSERT INTO calendar_warnings (version, days, at) VALUES ($1, $2, $3) \
             ON CONFLICT (version, days) DO NOTHING",
        )
        .bind(version)
        .bind(days)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if claimed {
            sqlx::query(
                "INSERT INTO outbox (case_id, event_seq, recipient_kind, recipient_id, template, \
                 subject, body, created_at, next_attempt_at) VALUES ($1, 0, $2, NULL, $3, $4, $5, $6, $6)",
            )
            .bind(crate::notices::SYSTEM_CASE)
            .bind(notice.recipient.as_str())
            .bind(&notice.template)
            .bind(&notice.subject)
            .bind(&notice.body)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn working_day_timers(
        &self,
        kinds: &[String],
        after: CaseId,
        limit: u32,
    ) -> Result<Vec<(CaseId, i64, TimerRecord)>, Error> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT id, definition_id, timer_seq, timer_kind, timer_fire, timer_due_at, timer_from_at \
             FROM cases WHERE closed_at IS NULL AND timer_due_at IS NOT NULL AND id > ",
        );
        q.push_bind(after.0).push(" AND timer_kind IN (");
        let mut list = q.separated(", ");
        for k in kinds {
            list.push_bind(k.clone());
        }
        q.push(") ORDER BY id LIMIT ").push_bind(i64::from(limit));
        let rows = q.build().fetch_all(self.reader()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            if let Some(timer) = timer_from_case_row(r)? {
                out.push((CaseId(r.try_get("id")?), r.try_get("definition_id")?, timer));
            }
        }
        Ok(out)
    }
}
