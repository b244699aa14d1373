//! The SQL of work queues.

use super::*;

static CLAIM_TIMERS: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "UPDATE cases SET timer_claimed_until = $1, timer_claimed_by = $2 \
         WHERE id IN (SELECT id FROM cases \
                      WHERE timer_due_at <= $3 \
                        AND (timer_claimed_until IS NULL OR timer_claimed_until <= $3) \
                      ORDER BY timer_due_at, id LIMIT $4{SKIP_LOCKED}) \
         RETURNING id, timer_seq, timer_kind, timer_fire, timer_due_at"
    ))
});
static CLAIM_OUTBOX: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "UPDATE outbox SET claimed_until = $1, claimed_by = $2 \
         WHERE id IN (SELECT id FROM outbox \
                      WHERE delivered_at IS NULL AND next_attempt_at <= $3 \
                        AND (claimed_until IS NULL OR claimed_until <= $3) \
                      ORDER BY next_attempt_at, id LIMIT $4{SKIP_LOCKED}) \
         RETURNING {OUTBOX_COLUMNS}"
    ))
});
#[async_trait]
impl QueueStore for This {
    async fn claim_due_timers(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<TimerRecord>, Error> {
        let rows = sqlx::query(*CLAIM_TIMERS)
            .bind(ms(lease_until))
            .bind(worker)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(self.writer())
            .await?;
        let mut timers: Vec<TimerRecord> = rows
            .iter()
            .filter_map(|r| timer_from_case_row(r).transpose())
            .collect::<Result<_, _>>()?;
        timers.sort_by_key(|t| (t.due_at, t.case_id));
        Ok(timers)
    }

    async fn timer_backlog(&self, now: DateTime<Utc>) -> Result<TimerBacklog, Error> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM cases WHERE timer_due_at IS NOT NULL) AS pending, \
             (SELECT COUNT(*) FROM cases WHERE timer_due_at <= $1) AS due, \
             (SELECT MIN(timer_due_at) FROM cases WHERE timer_due_at IS NOT NULL) AS oldest",
        )
        .bind(ms(now))
        .fetch_one(self.reader())
        .await?;
        let oldest: Option<i64> = row.try_get("oldest")?;
        Ok(TimerBacklog {
            pending: row.try_get("pending")?,
            due: row.try_get("due")?,
            oldest_due_at: oldest.map(from_millis).filter(|t| *t <= now),
        })
    }

    async fn claim_outbox(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<OutboxMessage>, Error> {
        let rows = sqlx::query(*CLAIM_OUTBOX)
            .bind(ms(lease_until))
            .bind(worker)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(self.writer())
            .await?;
        let mut messages: Vec<OutboxMessage> =
            rows.iter().map(outbox_from_row).collect::<Result<_, _>>()?;
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    async fn outbox_delivered(
        &self,
        id: i64,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE outbox SET delivered_at = $2, channel = $3, attempts = attempts + 1, \
             claimed_until = NULL, last_error = NULL WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(ms(now))
        .bind(channel)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn outbox_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, \
             claimed_until = NULL WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(error)
        .bind(ms(retry_at))
        .execute(self.writer())
        .await?;
        Ok(())
    }
}
