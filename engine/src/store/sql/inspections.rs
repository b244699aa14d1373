//! The SQL of inspections.

use super::*;

fn crs_name(crs: Crs) -> &'static str {
    match crs {
        Crs::Wgs84 => "wgs84",
        Crs::Gcj02 => "gcj02",
    }
}
/// The inspection's own row.
async fn insert_inspection(tx: &mut Tx<'_>, inspection: &NewInspection) -> crate::Result<i64> {
    let now = inspection.at;
    let inspection_id: i64 = sqlx::query_scalar(
        "INSERT INTO inspections (unit_id, inspector_id, at, lon, lat, distance_m, note, \
         created_at, off_site, crs, outcome, located) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(inspection.unit_id.0)
    .bind(inspection.inspector_id.map(|i| i.0))
    .bind(ms(now))
    .bind(inspection.lon)
    .bind(inspection.lat)
    .bind(inspection.distance_m)
    .bind(&inspection.note)
    .bind(ms(inspection.recorded_at))
    .bind(inspection.off_site)
    .bind(crs_name(inspection.crs))
    .bind(inspection.outcome.as_str())
    .bind(inspection.located)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| refusal(e, "an inspection"))?;
    Ok(inspection_id)
}

/// A case the inspection opens, with its `open` event.
async fn insert_case(
    tx: &mut Tx<'_>,
    inspection: &NewInspection,
    inspection_id: i64,
    c: &NewCase,
) -> crate::Result<CaseId> {
    let now = inspection.recorded_at;
    let s = &c.snapshot;
    let opening = Opening {
        case: c,
        unit_id: inspection.unit_id.0,
        inspection_id,
        at: now,
    };
    let write = opening.as_write();
    let mut q = QueryBuilder::<Db>::new("INSERT INTO cases (");
    q.push(case_columns().trim_start_matches("id, "));
    q.push(") ");
    q.push_values([()], |mut b, ()| {
        for (_, cell) in CASE_OPENS {
            push_cell(&mut b, cell(&opening));
        }
        for (_, cell) in CASE_UPDATES {
            push_cell(&mut b, cell(&write));
        }
    });
    q.push(" RETURNING id");
    let id: i64 = q
        .build_query_scalar()
        .fetch_one(&mut **tx)
        .await
        .map_err(|e| refusal(e, "a case"))?;
    sqlx::query(
        "INSERT INTO case_events (case_id, seq, at, actor_role, actor_id, command, \
         from_state, to_state, reason, data) \
         VALUES ($1, $2, $3, $4, $5, 'open', NULL, $6, NULL, $7)",
    )
    .bind(id)
    .bind(s.version)
    .bind(ms(now))
    .bind(c.actor.role.as_str())
    .bind(&c.actor.id)
    .bind(&s.state)
    .bind(Json(&c.data))
    .execute(&mut **tx)
    .await
    .map_err(Error::from)?;
    Ok(CaseId(id))
}

/// A finding attached to an open case: an event at the case's next version.
async fn attach_finding(
    tx: &mut Tx<'_>,
    a: &Attachment,
    inspection_id: i64,
    now: DateTime<Utc>,
) -> crate::Result<()> {
    let bumped = sqlx::query(
        "UPDATE cases SET version = version + 1, updated_at = $2 \
         WHERE id = $1 AND closed_at IS NULL RETURNING version, state",
    )
    .bind(a.case_id.0)
    .bind(ms(now))
    .fetch_optional(&mut **tx)
    .await
    .map_err(Error::from)?;
    let Some(row) = bumped else {
        return Err(crate::Error::Conflict(format!(
            "case {} was closed while the inspection was recorded; send it again",
            a.case_id
        )));
    };
    let version: i64 = row.try_get(0).map_err(Error::from)?;
    let state: String = row.try_get(1).map_err(Error::from)?;
    let mut data = a.data.clone();
    data["inspection_id"] = serde_json::json!(inspection_id);
    sqlx::query(
        "INSERT INTO case_events (case_id, seq, at, actor_role, actor_id, command, \
         from_state, to_state, reason, data) \
         VALUES ($1, $2, $3, $4, $5, 'attach_finding', $6, $6, NULL, $7)",
    )
    .bind(a.case_id.0)
    .bind(version)
    .bind(ms(now))
    .bind(a.actor.role.as_str())
    .bind(&a.actor.id)
    .bind(&state)
    .bind(Json(&data))
    .execute(&mut **tx)
    .await
    .map_err(Error::from)?;
    Ok(())
}

/// The rule event of the new grade (a grade drop), as a rule job on the inspection's
/// first case.
async fn add_rule_event(
    tx: &mut Tx<'_>,
    inspection: &NewInspection,
    first_case: Option<CaseId>,
) -> crate::Result<()> {
    let now = inspection.recorded_at;
    // A grade that drops is an event for the rules, on the inspection's first case.
    if let Some(event) = &inspection.rule_event
        && let Some(case) = first_case
    {
        sqlx::query(
            "INSERT INTO rule_jobs (case_id, event_seq, on_event, detail, created_at, head) \
             VALUES ($1, NULL, $2, $3, $4, CASE WHEN EXISTS (SELECT 1 FROM \
             rule_jobs WHERE case_id = $1 AND done_at IS NULL) THEN 0 ELSE 1 END)",
        )
        .bind(case.0)
        .bind(event.trigger.as_str())
        .bind(Json(&event.detail))
        .bind(ms(now))
        .execute(&mut **tx)
        .await
        .map_err(Error::from)?;
    }
    Ok(())
}

/// The visit counts for every running campaign of the unit that has not visited it
/// (an attempt, no one home or entry refused, does not).
async fn count_campaign_visit(
    tx: &mut Tx<'_>,
    inspection: &NewInspection,
    inspection_id: i64,
) -> crate::Result<()> {
    let now = inspection.at;
    if inspection.outcome == crate::planning::VisitOutcome::Inspected {
        sqlx::query(
            "UPDATE campaign_units SET visited_at = $2, inspection_id = $3, hazards = $4, \
         checks = $5 WHERE unit_id = $1 AND visited_at IS NULL AND campaign_id IN \
         (SELECT id FROM campaigns WHERE starts_at <= $2 AND ends_at > $2)",
        )
        .bind(inspection.unit_id.0)
        .bind(ms(now))
        .bind(inspection_id)
        .bind(i64::from(inspection.findings))
        .bind(
            inspection
                .campaign_checks
                .as_ref()
                .map(|c| serde_json::to_string(c).map_err(corrupt))
                .transpose()?,
        )
        .execute(&mut **tx)
        .await
        .map_err(Error::from)?;
    }
    Ok(())
}

#[async_trait]
impl InspectionStore for This {
    async fn record_inspection(
        &self,
        inspection: &NewInspection,
        cases: &[NewCase],
        attachments: &[Attachment],
        idem: Option<&IdempotencyKey>,
        respond: &Respond<'_, RecordedInspection>,
    ) -> crate::Result<Idempotent<RecordedInspection>> {
        let now = inspection.recorded_at;
        let mut tx = begin_write(self.writer()).await.map_err(Error::from)?;
        if let Some(idem) = idem
            && let Some(previous) = claim_idempotency_key(&mut tx, idem, now).await?
        {
            return Ok(Idempotent::Replayed(previous));
        }
        let inspection_id = insert_inspection(&mut tx, inspection).await?;
        let mut case_ids = Vec::with_capacity(cases.len());
        for c in cases {
            case_ids.push(insert_case(&mut tx, inspection, inspection_id, c).await?);
        }
        // Findings attached to open cases: each case gets an event at its next
        // version, whatever it is now (a finding does not depend on the case's state;
        // only a case closed in the meantime sends the inspection back).
        let mut attached_ids: Vec<&Attachment> = attachments.iter().collect();
        attached_ids.sort_by_key(|a| a.case_id);
        for a in attached_ids {
            attach_finding(&mut tx, a, inspection_id, now).await?;
        }
        write_grade(&mut tx, &inspection.grade, Some(inspection_id)).await?;
        let first_case = case_ids
            .first()
            .copied()
            .or_else(|| attachments.first().map(|a| a.case_id));
        add_rule_event(&mut tx, inspection, first_case).await?;
        count_campaign_visit(&mut tx, inspection, inspection_id).await?;
        let mut uploads: Vec<String> = cases
            .iter()
            .map(|c| &c.data)
            .chain(attachments.iter().map(|a| &a.data))
            .flat_map(crate::evidence::evidence_refs)
            .filter(|id| crate::evidence::is_id(id))
            .collect();
        uploads.sort();
        uploads.dedup();
        super::evidence::link_evidence(&mut tx, &uploads, inspection.unit_id).await?;
        let recorded = RecordedInspection {
            inspection_id: InspectionId(inspection_id),
            case_ids,
            attached: attachments.iter().map(|a| a.case_id).collect(),
        };
        if let Some(idem) = idem {
            store_idempotent_response(&mut tx, idem, respond(&recorded)).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        forget_cases(self, &recorded.attached);
        Ok(Idempotent::Created(recorded))
    }

    async fn list_inspections(
        &self,
        filter: &InspectionFilter,
        scope: &Scope,
    ) -> Result<Vec<InspectionRecord>, Error> {
        // The scope applies to the unit's place; the columns of `units` have the same
        // names as those of `cases`, so the case scope's SQL serves, on a subquery.
        let mut q = QueryBuilder::<Db>::new(
            "SELECT i.id, i.unit_id, u.address, i.inspector_id, i.at, i.lon, i.lat, \
             i.distance_m, i.off_site, i.located, i.crs, i.note FROM inspections i \
             JOIN units u ON u.id = i.unit_id WHERE i.unit_id IN (SELECT id FROM units WHERE 1 = 1",
        );
        match scope {
            Scope::Department(_) | Scope::Party(_) => {
                q.push(" AND 1 = 0");
            }
            other => push_scope(&mut q, other),
        }
        q.push(")");
        if let Some(inspector) = filter.inspector_id {
            q.push(" AND i.inspector_id = ").push_bind(inspector.0);
        }
        if let Some(unit) = filter.unit_id {
            q.push(" AND i.unit_id = ").push_bind(unit.0);
        }
        if let Some(off_site) = filter.off_site {
            q.push(" AND i.off_site = ").push_bind(off_site);
        }
        if let Some(before) = filter.before {
            q.push(" AND i.id < ").push_bind(before.0);
        }
        q.push(" ORDER BY i.id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 1000)));
        let rows = q.build().fetch_all(self.reader()).await?;
        rows.iter()
            .map(|r| {
                let crs: String = r.try_get("crs")?;
                Ok(InspectionRecord {
                    id: InspectionId(r.try_get("id")?),
                    unit_id: UnitId(r.try_get("unit_id")?),
                    address: r.try_get("address")?,
                    inspector_id: r
                        .try_get::<Option<i64>, _>("inspector_id")?
                        .map(InspectorId),
                    at: from_millis(r.try_get("at")?),
                    lon: r.try_get("lon")?,
                    lat: r.try_get("lat")?,
                    distance_m: r.try_get("distance_m")?,
                    off_site: r.try_get("off_site")?,
                    located: r.try_get("located")?,
                    crs: Crs::parse(&crs, "crs").map_err(|e| corrupt(e.message))?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }
}
