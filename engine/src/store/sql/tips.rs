//! The SQL of tips and integrations.

use super::*;

const TIP_COLUMNS: &str = "t.id, t.source, t.integration_id, t.category, t.description, t.lon, \
    t.lat, t.address, t.placed_by, t.unit_id, t.grid_id, t.street_id, t.district_code, \
    t.reporter_name, t.reporter_email, t.reporter_phone, t.status, t.case_id, t.public_note, \
    t.created_at, t.updated_at, t.pushed, t.pushed_at, c.closed_at AS case_closed_at, \
    c.department_id AS case_department_id, c.updated_at AS case_updated_at";

const TIP_FROM: &str = "FROM tips t LEFT JOIN cases c ON c.id = t.case_id";

fn tip_from_row(r: &Row) -> Result<TipRecord, Error> {
    let millis = |name: &str| -> Result<Option<DateTime<Utc>>, Error> {
        Ok(r.try_get::<Option<i64>, _>(name)?.map(from_millis))
    };
    Ok(TipRecord {
        id: r.try_get("id")?,
        source: r.try_get("source")?,
        integration_id: r.try_get("integration_id")?,
        category: r.try_get("category")?,
        description: r.try_get("description")?,
        lon: r.try_get("lon")?,
        lat: r.try_get("lat")?,
        address: r.try_get("address")?,
        placed_by: r.try_get("placed_by")?,
        unit_id: r.try_get::<Option<i64>, _>("unit_id")?.map(UnitId),
        grid_id: r.try_get::<Option<i64>, _>("grid_id")?.map(GridId),
        street_id: r.try_get::<Option<i64>, _>("street_id")?.map(StreetId),
        district_code: r.try_get("district_code")?,
        reporter_name: r.try_get("reporter_name")?,
        reporter_email: r.try_get("reporter_email")?,
        reporter_phone: r.try_get("reporter_phone")?,
        status: r.try_get("status")?,
        case_id: r.try_get::<Option<i64>, _>("case_id")?.map(CaseId),
        public_note: r.try_get("public_note")?,
        created_at: from_millis(r.try_get("created_at")?),
        updated_at: from_millis(r.try_get("updated_at")?),
        case_closed_at: millis("case_closed_at")?,
        case_department_id: r
            .try_get::<Option<i64>, _>("case_department_id")?
            .map(DepartmentId),
        case_updated_at: millis("case_updated_at")?,
        pushed: r.try_get("pushed")?,
        pushed_at: millis("pushed_at")?,
    })
}

fn integration_from_row(r: &Row) -> Result<Integration, Error> {
    Ok(Integration {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        webhook_url: r.try_get("webhook_url")?,
        key_digest: r.try_get("key_digest")?,
    })
}

/// Tips within a scope: a supervisor's area, an inspector's grids; landlords and
/// departments see none.
fn push_tip_scope(q: &mut QueryBuilder<Db>, scope: &Scope) {
    match scope {
        Scope::City | Scope::System => {}
        Scope::District(code) => {
            q.push(" AND t.district_code = ").push_bind(code.clone());
        }
        Scope::Street(id) => {
            q.push(" AND t.street_id = ").push_bind(id.0);
        }
        Scope::Grids(grids) if !grids.is_empty() => {
            q.push(" AND t.grid_id IN (");
            let mut list = q.separated(", ");
            for g in grids {
                list.push_bind(g.0);
            }
            q.push(")");
        }
        Scope::Grids(_) | Scope::Party(_) | Scope::Department(_) => {
            q.push(" AND 1 = 0");
        }
    }
}

#[async_trait]
impl TipStore for This {
    async fn create_integration(
        &self,
        name: &str,
        key_digest: &str,
        webhook_url: Option<&str>,
        now: DateTime<Utc>,
    ) -> crate::Result<Integration> {
        let row = sqlx::query(
            "INSERT INTO integrations (name, key_digest, webhook_url, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id, name, webhook_url, key_digest",
        )
        .bind(name)
        .bind(key_digest)
        .bind(webhook_url)
        .bind(ms(now))
        .fetch_one(self.writer())
        .await
        .map_err(|e| refusal(e, "an integration of this name"))?;
        Ok(integration_from_row(&row)?)
    }

    async fn integration_by_key(&self, key_digest: &str) -> Result<Option<Integration>, Error> {
        sqlx::query(
            "SELECT id, name, webhook_url, key_digest FROM integrations WHERE key_digest = $1",
        )
        .bind(key_digest)
        .fetch_optional(self.reader())
        .await?
        .as_ref()
        .map(integration_from_row)
        .transpose()
    }

    async fn insert_tip(
        &self,
        tip: &NewTip,
        (per_key, per_client): (i64, i64),
        since: DateTime<Utc>,
    ) -> Result<Result<i64, TipRefusal>, Error> {
        let mut tx = begin_write(self.writer()).await?;
        // One counter at a time, so that two processes cannot both pass the limit.
        lock_named(&mut tx, "tips").await?;
        if let Some(key) = tip.integration_id {
            let sent: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tips WHERE integration_id = $1 AND created_at >= $2",
            )
            .bind(key)
            .bind(ms(since))
            .fetch_one(&mut *tx)
            .await?;
            if sent >= per_key {
                return Ok(Err(TipRefusal::KeyLimited));
            }
        } else {
            let sent: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM tips WHERE client = $1 AND created_at >= $2 \
                 AND integration_id IS NULL",
            )
            .bind(&tip.client)
            .bind(ms(since))
            .fetch_one(&mut *tx)
            .await?;
            if sent >= per_client {
                return Ok(Err(TipRefusal::ClientLimited));
            }
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tips (source, integration_id, client, category, description, lon, lat, \
             address, placed_by, unit_id, grid_id, street_id, district_code, reporter_name, \
             reporter_email, reporter_phone, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             'open', $17, $17) RETURNING id",
        )
        .bind(tip.source)
        .bind(tip.integration_id)
        .bind(&tip.client)
        .bind(&tip.category)
        .bind(&tip.description)
        .bind(tip.lon)
        .bind(tip.lat)
        .bind(&tip.address)
        .bind(tip.placed_by)
        .bind(tip.unit_id.map(|u| u.0))
        .bind(tip.grid_id.map(|g| g.0))
        .bind(tip.street_id.map(|s| s.0))
        .bind(&tip.district_code)
        .bind(&tip.reporter_name)
        .bind(&tip.reporter_email)
        .bind(&tip.reporter_phone)
        .bind(ms(tip.at))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(id))
    }

    async fn unit_by_address_code(&self, code: &str) -> Result<Option<UnitId>, Error> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM units WHERE address_code = $1")
            .bind(code)
            .fetch_optional(self.reader())
            .await?;
        Ok(id.map(UnitId))
    }

    async fn units_with_open_tips(&self, units: &[UnitId]) -> Result<BTreeSet<UnitId>, Error> {
        let mut out = BTreeSet::new();
        for chunk in units.chunks(MAX_PARAMS) {
            let mut q = QueryBuilder::<Db>::new(
                "SELECT DISTINCT t.unit_id FROM tips t WHERE t.status = 'open' \
                 AND NOT EXISTS (SELECT 1 FROM inspections i WHERE i.unit_id = t.unit_id \
                 AND i.at >= t.created_at) AND t.unit_id IN (",
            );
            let mut list = q.separated(", ");
            for u in chunk {
                list.push_bind(u.0);
            }
            q.push(")");
            for row in q.build().fetch_all(self.reader()).await? {
                out.insert(UnitId(row.try_get("unit_id")?));
            }
        }
        Ok(out)
    }

    async fn tip(&self, id: i64) -> Result<Option<TipRecord>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TIP_COLUMNS} {TIP_FROM} WHERE t.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.reader())
        .await?
        .as_ref()
        .map(tip_from_row)
        .transpose()
    }

    async fn tips(&self, filter: &TipFilter, scope: &Scope) -> Result<Vec<TipRecord>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!("SELECT {TIP_COLUMNS} {TIP_FROM} WHERE 1 = 1"));
        push_tip_scope(&mut q, scope);
        if let Some(i) = filter.integration_id {
            q.push(" AND t.integration_id = ").push_bind(i);
        }
        if let Some(ids) = &filter.ids {
            if ids.is_empty() {
                q.push(" AND 1 = 0");
            } else {
                q.push(" AND t.id IN (");
                let mut list = q.separated(", ");
                for id in ids.iter().take(MAX_PARAMS / 2) {
                    list.push_bind(*id);
                }
                q.push(")");
            }
        }
        if let Some(cats) = &filter.categories {
            q.push(" AND");
            push_in(&mut q, "t.category", cats);
        }
        if let Some(from) = filter.from {
            q.push(" AND t.created_at >= ").push_bind(ms(from));
        }
        if let Some(to) = filter.to {
            q.push(" AND t.created_at <= ").push_bind(ms(to));
        }
        q.push(" ORDER BY t.id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.clamp(1, 1000)));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(tip_from_row)
            .collect()
    }

    async fn resolve_tip(
        &self,
        id: i64,
        case: Option<CaseId>,
        note: &str,
        by: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE tips SET status = $2, case_id = $3, public_note = $4, resolved_by = $5, \
             updated_at = $6 WHERE id = $1 AND status = 'open'",
        )
        .bind(id)
        .bind(if case.is_some() {
            "confirmed"
        } else {
            "dismissed"
        })
        .bind(case.map(|c| c.0))
        .bind(note)
        .bind(by)
        .bind(ms(now))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn tips_to_push(&self, limit: u32) -> Result<Vec<(TipRecord, Integration)>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TIP_COLUMNS}, i.name AS integration_name, i.webhook_url, i.key_digest {TIP_FROM} \
             JOIN integrations i ON i.id = t.integration_id \
             WHERE i.webhook_url IS NOT NULL AND (t.pushed_at IS NULL \
               OR t.updated_at > t.pushed_at OR c.updated_at > t.pushed_at) \
             ORDER BY t.id LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let tip = tip_from_row(r)?;
                let integration = Integration {
                    id: tip.integration_id.unwrap_or_default(),
                    name: r.try_get("integration_name")?,
                    webhook_url: r.try_get("webhook_url")?,
                    key_digest: r.try_get("key_digest")?,
                };
                Ok((tip, integration))
            })
            .collect()
    }

    async fn claim_tip_push(
        &self,
        id: i64,
        seen: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let claimed = sqlx::query(
            "UPDATE tips SET pushed_at = $3 WHERE id = $1 \
             AND (pushed_at = $2 OR (pushed_at IS NULL AND $2 IS NULL))",
        )
        .bind(id)
        .bind(seen.map(ms))
        .bind(ms(now))
        .execute(self.writer())
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    async fn release_tip_push(&self, id: i64) -> Result<(), Error> {
        sqlx::query("UPDATE tips SET pushed_at = NULL WHERE id = $1")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn add_declaration(&self, d: &Declaration) -> Result<i64, Error> {
        let checklist = d
            .checklist
            .as_ref()
            .map(|c| serde_json::to_string(c).unwrap_or_default());
        Ok(sqlx::query_scalar(
            "INSERT INTO unit_declarations (unit_id, party_id, kind, rooms, occupants, \
             checklist, note, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(d.unit_id.0)
        .bind(d.party_id.0)
        .bind(&d.kind)
        .bind(d.rooms)
        .bind(d.occupants)
        .bind(checklist)
        .bind(&d.note)
        .bind(ms(d.at))
        .fetch_one(self.writer())
        .await?)
    }

    async fn declarations(&self, unit: UnitId, limit: u32) -> Result<Vec<Declaration>, Error> {
        sqlx::query(
            "SELECT id, unit_id, party_id, kind, rooms, occupants, checklist, note, at \
             FROM unit_declarations WHERE unit_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(unit.0)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            let checklist: Option<String> = r.try_get("checklist")?;
            Ok(Declaration {
                id: r.try_get("id")?,
                unit_id: UnitId(r.try_get("unit_id")?),
                party_id: PartyId(r.try_get("party_id")?),
                kind: r.try_get("kind")?,
                rooms: r.try_get("rooms")?,
                occupants: r.try_get("occupants")?,
                checklist: checklist
                    .map(|c| serde_json::from_str(&c).map_err(corrupt))
                    .transpose()?,
                note: r.try_get("note")?,
                at: from_millis(r.try_get("at")?),
            })
        })
        .collect()
    }

    async fn mark_pushed(&self, id: i64, state: &str, at: DateTime<Utc>) -> Result<(), Error> {
        sqlx::query("UPDATE tips SET pushed = $2, pushed_at = $3 WHERE id = $1")
            .bind(id)
            .bind(state)
            .bind(ms(at))
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
