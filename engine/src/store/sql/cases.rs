//! The SQL of cases and the batch writer.

use super::*;

static SELECT_CASE: LazyLock<&'static str> =
    LazyLock::new(|| leak(format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = $1")));
static SELECT_OPEN_CASES_IN_BUILDING: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "SELECT {CASE_COLUMNS} FROM cases WHERE closed_at IS NULL \
         AND unit_id IN (SELECT id FROM units WHERE building_id = $1) ORDER BY id"
    ))
});
static SELECT_CASE_OUTBOX: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE case_id = $1 ORDER BY id"
    ))
});
fn referral_from_row(r: &Row) -> Result<ReferralRecord, Error> {
    let result: Option<Json<Value>> = r.try_get("result")?;
    Ok(ReferralRecord {
        id: r.try_get("id")?,
        case_id: CaseId(r.try_get("case_id")?),
        department_id: DepartmentId(r.try_get("department_id")?),
        status: r.try_get("status")?,
        referred_at: from_millis(r.try_get("referred_at")?),
        responded_at: r
            .try_get::<Option<i64>, _>("responded_at")?
            .map(from_millis),
        reason_code: r.try_get("reason_code")?,
        result: result.map(|j| j.0),
    })
}

#[async_trait]
impl CaseStore for This {
    async fn open_cases_of_units(&self, units: &[UnitId]) -> Result<Vec<CaseRecord>, Error> {
        let mut out = Vec::new();
        for chunk in units.chunks(MAX_PARAMS) {
            let mut q = QueryBuilder::<Db>::new(format!(
                "SELECT {CASE_COLUMNS} FROM cases WHERE closed_at IS NULL AND unit_id IN ("
            ));
            let mut list = q.separated(", ");
            for u in chunk {
                list.push_bind(u.0);
            }
            q.push(") ORDER BY id");
            for row in q.build().fetch_all(self.reader()).await? {
                out.push(case_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn open_cases_on(&self, definitions: &[i64], limit: u32) -> Result<Vec<CaseId>, Error> {
        if definitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT id FROM cases WHERE closed_at IS NULL AND definition_id IN (",
        );
        let mut list = q.separated(", ");
        for d in definitions {
            list.push_bind(*d);
        }
        q.push(") ORDER BY id LIMIT ").push_bind(i64::from(limit));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| Ok(CaseId(r.try_get(0)?)))
            .collect()
    }

    async fn open_cases_in_building(&self, building: BuildingId) -> Result<Vec<CaseRecord>, Error> {
        let rows = sqlx::query(*SELECT_OPEN_CASES_IN_BUILDING)
            .bind(building.0)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(case_from_row).collect()
    }

    async fn apply(
        &self,
        batch: &[TransitionRequest],
        decide: &Decider<'_>,
        rubric: &crate::grading::Rubric,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::Result<Applied>>, Error> {
        let error = match apply_batch(self, batch, decide, rubric, now).await {
            Ok(results) => return Ok(results),
            Err(e) if batch.len() > 1 => e,
            Err(e) => return Err(e),
        };
        // The database refused the batch as a whole (one command's values broke a
        // constraint, say). Each command is applied again in a transaction of its own,
        // in order, so that the one at fault fails alone and the others commit.
        tracing::warn!(error = %error, commands = batch.len(), "batch refused by the database; applying its commands one by one");
        let mut results = Vec::with_capacity(batch.len());
        for (i, request) in batch.iter().enumerate() {
            let one = |_: usize, case: &CaseRecord| decide(i, case);
            results.push(
                match apply_batch(self, std::slice::from_ref(request), &one, rubric, now).await {
                    Ok(mut r) => r.pop().unwrap_or_else(|| {
                        Err(crate::Error::Store(corrupt(
                            "a batch of one gave no result",
                        )))
                    }),
                    Err(e) => Err(crate::Error::Store(e)),
                },
            );
        }
        Ok(results)
    }

    async fn case(&self, id: CaseId) -> Result<Option<CaseRecord>, Error> {
        let row = sqlx::query(*SELECT_CASE)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(case_from_row).transpose()
    }

    async fn case_events(&self, id: CaseId) -> Result<Vec<EventRecord>, Error> {
        let rows = sqlx::query(
            "SELECT seq, at, actor_role, actor_id, command, from_state, to_state, reason, data \
             FROM case_events WHERE case_id = $1 ORDER BY seq",
        )
        .bind(id.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn case_timers(&self, id: CaseId) -> Result<Vec<TimerRecord>, Error> {
        Ok(self
            .case(id)
            .await?
            .and_then(|c| c.timer)
            .into_iter()
            .collect())
    }

    async fn order_sheet(&self, id: CaseId, order_no: i32) -> Result<Option<OrderSheet>, Error> {
        let row = sqlx::query(
            "SELECT od.document_no, od.issued_at, p.name AS party, i.name AS inspector, \
             u.public_code, d.name_zh AS district FROM cases c \
             JOIN units u ON u.id = c.unit_id \
             LEFT JOIN order_documents od ON od.case_id = c.id AND od.order_no = $2 \
             LEFT JOIN parties p ON p.id = c.party_id \
             LEFT JOIN inspectors i ON i.id = c.inspector_id \
             LEFT JOIN districts d ON d.code = c.district_code WHERE c.id = $1",
        )
        .bind(id.0)
        .bind(i64::from(order_no))
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(OrderSheet {
                document_no: r.try_get("document_no")?,
                issued_at: r.try_get::<Option<i64>, _>("issued_at")?.map(from_millis),
                party: r.try_get("party")?,
                inspector: r.try_get("inspector")?,
                public_code: r.try_get("public_code")?,
                district: r.try_get("district")?,
            })
        })
        .transpose()
    }

    async fn case_referrals(&self, id: CaseId) -> Result<Vec<ReferralRecord>, Error> {
        self.referrals_of_cases(&[id], None).await
    }

    async fn referrals_of_cases(
        &self,
        ids: &[CaseId],
        department: Option<DepartmentId>,
    ) -> Result<Vec<ReferralRecord>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT id, case_id, department_id, status, referred_at, responded_at, reason_code, \
             result FROM referrals WHERE case_id IN (",
        );
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        q.push(")");
        if let Some(d) = department {
            q.push(" AND department_id = ").push_bind(d.0);
        }
        q.push(" ORDER BY case_id, id");
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter().map(referral_from_row).collect()
    }

    async fn messages_of_cases(
        &self,
        ids: &[CaseId],
        recipient_kind: &str,
        template: &str,
    ) -> Result<Vec<OutboxMessage>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE case_id IN ("
        ));
        let mut list = q.separated(", ");
        for id in ids {
            list.push_bind(id.0);
        }
        q.push(") AND recipient_kind = ")
            .push_bind(recipient_kind.to_string())
            .push(" AND template = ")
            .push_bind(template.to_string())
            .push(" ORDER BY case_id, id");
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter().map(outbox_from_row).collect()
    }

    async fn case_outbox(&self, id: CaseId) -> Result<Vec<OutboxMessage>, Error> {
        let rows = sqlx::query(*SELECT_CASE_OUTBOX)
            .bind(id.0)
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(outbox_from_row).collect()
    }

    async fn open_by_street(
        &self,
        scope: &Scope,
        district: Option<&str>,
    ) -> Result<Vec<(StreetId, String, i64)>, Error> {
        let mut q = QueryBuilder::<Db>::new(
            "SELECT street_id, severity, COUNT(*) AS n FROM cases WHERE closed_at IS NULL",
        );
        push_scope(&mut q, scope);
        if let Some(d) = district {
            q.push(" AND district_code = ").push_bind(d.to_string());
        }
        q.push(" GROUP BY street_id, severity ORDER BY street_id, severity");
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    StreetId(r.try_get("street_id")?),
                    r.try_get("severity")?,
                    r.try_get("n")?,
                ))
            })
            .collect()
    }

    async fn list_cases(
        &self,
        filter: &CaseFilter,
        scope: &Scope,
    ) -> Result<Vec<CaseRecord>, Error> {
        let mut q =
            QueryBuilder::<Db>::new(format!("SELECT {CASE_COLUMNS} FROM cases WHERE 1 = 1"));
        push_scope(&mut q, scope);
        if let Some(state) = &filter.state {
            q.push(" AND state = ").push_bind(state.clone());
        }
        if let Some(category) = &filter.category {
            q.push(" AND category = ").push_bind(category.clone());
        }
        if let Some(district) = &filter.district {
            q.push(" AND district_code = ").push_bind(district.clone());
        }
        if let Some(street) = filter.street_id {
            q.push(" AND street_id = ").push_bind(street.0);
        }
        if let Some(open) = filter.open {
            q.push(if open {
                " AND closed_at IS NULL"
            } else {
                " AND closed_at IS NOT NULL"
            });
        }
        if let Some(unit) = filter.unit_id {
            q.push(" AND unit_id = ").push_bind(unit.0);
        }
        if let Some(party) = filter.party_id {
            q.push(" AND party_id = ").push_bind(party.0);
        }
        if let Some(review) = filter.review_required {
            q.push(" AND review_required = ")
                .push_bind(i64::from(review));
        }
        if let Some(dept) = filter.department_id {
            q.push(" AND id IN (SELECT case_id FROM referrals WHERE department_id = ")
                .push_bind(dept.0)
                .push(")");
        }
        if let Some(overdue) = &filter.overdue {
            q.push(if overdue.wanted {
                " AND ("
            } else {
                " AND NOT ("
            });
            push_in(&mut q, "state", &overdue.states);
            q.push(" OR (deadline_at <= ")
                .push_bind(ms(overdue.now))
                .push(" AND");
            push_in(&mut q, "state", &overdue.deadline_states);
            q.push("))");
        }
        if let Some(before) = filter.before {
            q.push(" AND id < ").push_bind(before.0);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 1000)));
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter().map(case_from_row).collect()
    }
}
