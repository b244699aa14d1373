//! The SQL of work queues.

use super::*;

static CLAIM_TIMERS: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "UPDATE cases SET timer_claimed_until = $1, timer_claimed_by = $2 \
         WHERE id IN (SELECT id FROM cases \
                      WHERE timer_due_at <= $3 \
                        AND (timer_claimed_until IS NULL OR timer_claimed_until <= $3) \
                      ORDER BY timer_due_at, id LIMIT $4{SKIP_LOCKED}) \
         RETURNING id, timer_seq, timer_kind, timer_fire, timer_due_at, timer_from_at"
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
/// The statement recording an attempt at a delivery: its new state, the server's
/// answer, when it was sent and when it is due next.
fn settled<'a>(
    id: i64,
    state: &'static str,
    answer: &'a str,
    sent_at: Option<i64>,
    next: i64,
) -> sqlx::query::Query<'a, Db, <Db as sqlx::Database>::Arguments> {
    sqlx::query(
        "UPDATE deliveries SET state = $2, answer = $3, sent_at = $4, next_attempt_at = $5, \
         attempts = attempts + 1, claimed_until = NULL, claimed_by = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(answer)
    .bind(sent_at)
    .bind(next)
}

/// A stored list of channels (comma-separated).
fn channel_list(stored: Option<String>) -> Option<Vec<String>> {
    stored.map(|c| {
        c.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

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

    async fn channel_since(
        &self,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Error> {
        sqlx::query(
            "INSERT INTO channels (name, since) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(channel)
        .bind(ms(now))
        .execute(self.writer())
        .await?;
        let since: i64 = sqlx::query_scalar("SELECT since FROM channels WHERE name = $1")
            .bind(channel)
            .fetch_one(self.writer())
            .await?;
        Ok(from_millis(since))
    }

    async fn addressees(
        &self,
        message: &OutboxMessage,
        level: crate::rules::Level,
    ) -> Result<Vec<Addressee>, Error> {
        let one = |sql: &'static str, role: Role| async move {
            let Some(id) = message.recipient_id else {
                return Ok::<_, Error>(Vec::new());
            };
            let row = sqlx::query(sql)
                .bind(id)
                .fetch_optional(self.reader())
                .await?;
            row.map(|r| {
                Ok(Addressee {
                    recipient: crate::notices::recipient(role, id).unwrap_or_default(),
                    name: r.try_get("name")?,
                    email: r.try_get("email")?,
                    phone: r.try_get("phone")?,
                    channels: None,
                    digest: false,
                })
            })
            .into_iter()
            .collect()
        };
        match message.recipient_kind.as_str() {
            "landlord" => {
                one(
                    "SELECT name, email, phone FROM parties WHERE id = $1",
                    Role::Landlord,
                )
                .await
            }
            "inspector" => {
                one(
                    "SELECT name, email, phone FROM inspectors WHERE id = $1",
                    Role::Inspector,
                )
                .await
            }
            "department" => {
                // The office's address; its officers read it in the department's inbox.
                one(
                    "SELECT name, email, NULL AS phone FROM departments WHERE id = $1",
                    Role::Department,
                )
                .await
            }
            _ => {
                let found = supervisors_over(self.reader(), message.case_id, level).await?;
                if found.is_empty() && level == crate::rules::Level::Street {
                    return supervisors_over(
                        self.reader(),
                        message.case_id,
                        crate::rules::Level::District,
                    )
                    .await;
                }
                Ok(found)
            }
        }
    }

    async fn preferences(&self, subjects: &[i64]) -> Result<Vec<(String, Preference)>, Error> {
        let mut out = Vec::new();
        for chunk in subjects.chunks(rows_per_statement(1)) {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT role, subject_id, channels, digest FROM accounts \
                 WHERE (channels IS NOT NULL OR digest) AND disabled_at IS NULL AND subject_id IN (",
            );
            push_ids(&mut q, chunk);
            q.push(" ORDER BY id");
            for r in q.build().fetch_all(self.reader()).await? {
                let role: String = r.try_get("role")?;
                let role = Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?;
                let Some(recipient) = crate::notices::recipient(role, r.try_get("subject_id")?)
                else {
                    continue;
                };
                out.push((
                    recipient,
                    Preference {
                        channels: channel_list(r.try_get("channels")?),
                        digest: r.try_get("digest")?,
                    },
                ));
            }
        }
        Ok(out)
    }

    async fn event_level(
        &self,
        case: CaseId,
        seq: i64,
    ) -> Result<Option<crate::rules::Level>, Error> {
        let data: Option<Json<Value>> =
            sqlx::query_scalar("SELECT data FROM case_events WHERE case_id = $1 AND seq = $2")
                .bind(case.0)
                .bind(seq)
                .fetch_optional(self.reader())
                .await?;
        Ok(data
            .and_then(|d| d.0.get("level").cloned())
            .and_then(|l| serde_json::from_value(l).ok()))
    }

    async fn fan_out(
        &self,
        deliveries: &[NewDelivery],
        messages: &[i64],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = begin_write(self.writer()).await?;
        for chunk in deliveries.chunks(rows_per_statement(10)) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO deliveries (outbox_id, recipient, channel, address, state, \
                 answer, message_id, next_attempt_at, created_at, digest) ",
            );
            q.push_values(chunk, |mut b, d| {
                let (state, answer) = match (&d.dead, &d.kept) {
                    (Some(why), _) => ("dead", Some(why.clone())),
                    (None, Some(why)) => ("sent", Some(why.clone())),
                    (None, None) => ("queued", None),
                };
                b.push_bind(d.outbox_id)
                    .push_bind(d.recipient.clone())
                    .push_bind(d.channel.clone())
                    .push_bind(d.address.clone())
                    .push_bind(state)
                    .push_bind(answer)
                    .push_bind(d.message_id.clone())
                    .push_bind(ms(d.digest_at.unwrap_or(now)))
                    .push_bind(ms(now))
                    .push_bind(d.digest_at.is_some());
            });
            q.push(" ON CONFLICT (outbox_id, channel, address) DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        for chunk in messages.chunks(rows_per_statement(1)) {
            let mut q = QueryBuilder::<Db>::new("UPDATE outbox SET delivered_at = ");
            q.push_bind(ms(now));
            q.push(
                ", channel = 'deliveries', attempts = attempts + 1, claimed_until = NULL \
                    WHERE delivered_at IS NULL AND id IN (",
            );
            push_ids(&mut q, chunk);
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        worker: &str,
    ) -> Result<Vec<DeliveryJob>, Error> {
        let ids: Vec<i64> = sqlx::query_scalar(*CLAIM_DELIVERIES)
            .bind(ms(lease_until))
            .bind(worker)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(self.writer())
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT d.id, d.outbox_id, o.case_id, d.recipient, d.channel, d.address, d.attempts, \
             d.message_id, d.digest, o.template, o.subject, o.body, COALESCE(c.order_no, 0) AS order_no, \
             COALESCE(c.address, '') AS unit_address, COALESCE(c.severity, '') AS severity, \
             c.deadline_at, i.name AS inspector \
             FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             LEFT JOIN cases c ON c.id = o.case_id LEFT JOIN inspectors i ON i.id = c.inspector_id \
             WHERE d.id IN (",
        );
        push_ids(&mut q, &ids);
        q.push(" ORDER BY d.id");
        q.build()
            .fetch_all(self.writer())
            .await?
            .iter()
            .map(|r| {
                Ok(DeliveryJob {
                    id: r.try_get("id")?,
                    outbox_id: r.try_get("outbox_id")?,
                    case_id: CaseId(r.try_get("case_id")?),
                    recipient: r.try_get("recipient")?,
                    channel: r.try_get("channel")?,
                    address: r.try_get("address")?,
                    attempts: r.try_get("attempts")?,
                    message_id: r.try_get("message_id")?,
                    template: r.try_get("template")?,
                    subject: r.try_get("subject")?,
                    body: r.try_get("body")?,
                    order_no: r.try_get("order_no")?,
                    unit_address: r.try_get("unit_address")?,
                    severity: r.try_get("severity")?,
                    deadline_at: r.try_get::<Option<i64>, _>("deadline_at")?.map(from_millis),
                    inspector: r.try_get("inspector")?,
                    code: None,
                    digest: r.try_get("digest")?,
                })
            })
            .collect()
    }

    async fn settle_deliveries(
        &self,
        results: &[Settled],
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        if results.is_empty() {
            return Ok(());
        }
        let mut tx = begin_write(self.writer()).await?;
        for r in results {
            // A held delivery (an SMS in quiet hours) only waits: its state, answer and
            // attempts stay as they were.
            let q = match r {
                Settled::Held { id, until } => sqlx::query(
                    "UPDATE deliveries SET next_attempt_at = $2, claimed_until = NULL, \
                     claimed_by = NULL WHERE id = $1",
                )
                .bind(*id)
                .bind(ms(*until)),
                Settled::Sent { id, answer } => {
                    settled(*id, "sent", answer, Some(ms(now)), ms(now))
                }
                Settled::Failed {
                    id,
                    answer,
                    retry_at,
                } => settled(*id, "failed", answer, None, ms(*retry_at)),
                Settled::Dead { id, answer } => settled(*id, "dead", answer, None, ms(now)),
            };
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn case_deliveries(&self, case: CaseId) -> Result<Vec<DeliveryRecord>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             WHERE o.case_id = $1 ORDER BY d.id"
        )))
        .bind(case.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn dead_letters(
        &self,
        scope: &Scope,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             WHERE d.state = 'dead' AND (o.case_id IN (SELECT id FROM cases WHERE 1 = 1"
        ));
        push_scope(&mut q, scope);
        q.push(")");
        // The system's notices (about no case) are the city's.
        if matches!(scope, Scope::City | Scope::System) {
            q.push(" OR o.case_id = ")
                .push_bind(crate::notices::SYSTEM_CASE);
        }
        q.push(")");
        if let Some(before) = before {
            q.push(" AND d.id < ").push_bind(before);
        }
        q.push(" ORDER BY d.id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn resend(
        &self,
        id: i64,
        scope: &Scope,
        now: DateTime<Utc>,
    ) -> Result<Option<DeliveryRecord>, Error> {
        let mut q = QueryBuilder::<Db>::new(
            "UPDATE deliveries SET state = 'queued', attempts = 0, next_attempt_at = ",
        );
        q.push_bind(ms(now));
        q.push(", claimed_until = NULL, claimed_by = NULL WHERE state = 'dead' AND id = ");
        q.push_bind(id);
        q.push(" AND outbox_id IN (SELECT id FROM outbox WHERE case_id IN (SELECT id FROM cases WHERE 1 = 1");
        push_scope(&mut q, scope);
        q.push("))");
        if q.build().execute(self.writer()).await?.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             WHERE d.id = $1"
        )))
        .bind(id)
        .fetch_one(self.writer())
        .await?;
        delivery_from_row(&row).map(Some)
    }

    async fn inbox(
        &self,
        recipient: &str,
        unread: bool,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<InboxItem>, Error> {
        let mut q = QueryBuilder::<Db>::new(
            "SELECT o.id, o.case_id, o.template, o.subject, o.body, o.created_at, \
             MIN(d.read_at) AS read_at FROM deliveries d JOIN outbox o ON o.id = d.outbox_id \
             WHERE d.recipient = ",
        );
        q.push_bind(recipient.to_string());
        if let Some(before) = before {
            q.push(" AND o.id < ").push_bind(before);
        }
        q.push(" GROUP BY o.id, o.case_id, o.template, o.subject, o.body, o.created_at");
        if unread {
            q.push(" HAVING MIN(d.read_at) IS NULL");
        }
        q.push(" ORDER BY o.id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                Ok(InboxItem {
                    id: r.try_get("id")?,
                    case_id: CaseId(r.try_get("case_id")?),
                    template: r.try_get("template")?,
                    subject: r.try_get("subject")?,
                    body: r.try_get("body")?,
                    created_at: from_millis(r.try_get("created_at")?),
                    read_at: r.try_get::<Option<i64>, _>("read_at")?.map(from_millis),
                })
            })
            .collect()
    }

    async fn mark_read(
        &self,
        recipient: &str,
        message: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        // Read once: a message read again keeps its first reading.
        let addressed = sqlx::query(
            "UPDATE deliveries SET read_at = COALESCE(read_at, $3) \
             WHERE recipient = $1 AND outbox_id = $2",
        )
        .bind(recipient)
        .bind(message)
        .bind(ms(now))
        .execute(self.writer())
        .await?;
        Ok(addressed.rows_affected() > 0)
    }
}

const DELIVERY_COLUMNS: &str = "d.id, d.outbox_id, o.case_id, d.recipient, d.channel, d.address, \
    d.state, d.attempts, d.answer, d.message_id, d.sent_at";
fn delivery_from_row(r: &Row) -> Result<DeliveryRecord, Error> {
    Ok(DeliveryRecord {
        id: r.try_get("id")?,
        outbox_id: r.try_get("outbox_id")?,
        case_id: CaseId(r.try_get("case_id")?),
        recipient: r.try_get("recipient")?,
        channel: r.try_get("channel")?,
        address: r.try_get("address")?,
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        answer: r.try_get("answer")?,
        message_id: r.try_get("message_id")?,
        sent_at: r.try_get::<Option<i64>, _>("sent_at")?.map(from_millis),
    })
}
static CLAIM_DELIVERIES: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "UPDATE deliveries SET claimed_until = $1, claimed_by = $2 \
         WHERE id IN (SELECT id FROM deliveries \
                      WHERE state IN ('queued', 'failed') AND next_attempt_at <= $3 \
                        AND (claimed_until IS NULL OR claimed_until <= $3) \
                      ORDER BY next_attempt_at, id LIMIT $4{SKIP_LOCKED}) \
         RETURNING id"
    ))
});
/// The supervisors of a level over a case's area, as addressees.
async fn supervisors_over(
    reader: &sqlx::Pool<Db>,
    case: CaseId,
    level: crate::rules::Level,
) -> Result<Vec<Addressee>, Error> {
    use crate::rules::Level;
    let area = match level {
        Level::Street => "s.level = 'street' AND s.street_id = c.street_id",
        Level::District => "s.level = 'district' AND s.district_code = c.district_code",
        Level::City => "s.level = 'city'",
    };
    // A notice of the system (about no case) goes to the city's supervisors.
    let rows = if case.0 == crate::notices::SYSTEM_CASE {
        sqlx::query(
            "SELECT s.id, s.name, s.email FROM supervisors s WHERE s.level = 'city' ORDER BY s.id",
        )
        .fetch_all(reader)
        .await?
    } else {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT s.id, s.name, s.email FROM supervisors s, cases c \
             WHERE c.id = $1 AND {area} ORDER BY s.id"
        )))
        .bind(case.0)
        .fetch_all(reader)
        .await?
    };
    rows.iter()
        .map(|r| {
            Ok(Addressee {
                recipient: crate::notices::recipient(Role::Supervisor, r.try_get("id")?)
                    .unwrap_or_default(),
                name: r.try_get("name")?,
                email: r.try_get("email")?,
                phone: None,
                channels: None,
                digest: false,
            })
        })
        .collect()
}
