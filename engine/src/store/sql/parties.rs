//! The SQL of parties (landlords, agents, sub-landlords), their units and records, the blacklist, responsibility agreements and insurance policies.

use super::*;

const BLACKLIST_COLUMNS: &str = "b.id, b.party_id, p.name AS party_name, p.kind AS party_kind, \
    b.status, b.reason, b.source, b.case_id, b.district_code, b.proposed_at, b.decided_by, \
    b.decided_at, b.decision_note, b.expires_at, b.appeal, b.appealed_at, b.appeal_decided_by, \
    b.appeal_decided_at, b.appeal_note, b.published";
fn blacklist_from_row(r: &Row) -> Result<BlacklistEntry, Error> {
    let at = |name: &str| -> Result<Option<DateTime<Utc>>, Error> {
        Ok(r.try_get::<Option<i64>, _>(name)?.map(from_millis))
    };
    Ok(BlacklistEntry {
        id: r.try_get("id")?,
        party_id: PartyId(r.try_get("party_id")?),
        party_name: r.try_get("party_name")?,
        party_kind: r.try_get("party_kind")?,
        status: r.try_get("status")?,
        reason: r.try_get("reason")?,
        source: r.try_get("source")?,
        case_id: r.try_get::<Option<i64>, _>("case_id")?.map(CaseId),
        district_code: r.try_get("district_code")?,
        proposed_at: from_millis(r.try_get("proposed_at")?),
        decided_by: r.try_get("decided_by")?,
        decided_at: at("decided_at")?,
        decision_note: r.try_get("decision_note")?,
        expires_at: at("expires_at")?,
        appeal: r.try_get("appeal")?,
        appealed_at: at("appealed_at")?,
        appeal_decided_by: r.try_get("appeal_decided_by")?,
        appeal_decided_at: at("appeal_decided_at")?,
        appeal_note: r.try_get("appeal_note")?,
        published: r.try_get::<i64, _>("published")? != 0,
    })
}
fn date_at(r: &Row, i: usize) -> Result<NaiveDate, Error> {
    r.try_get::<String, _>(i)?.parse().map_err(corrupt)
}
#[async_trait]
impl PartyStore for This {
    async fn party_exists(&self, id: PartyId) -> Result<bool, Error> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM parties WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(found.is_some())
    }

    async fn party_kind(&self, id: PartyId) -> Result<Option<String>, Error> {
        Ok(sqlx::query_scalar("SELECT kind FROM parties WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?)
    }

    async fn add_party(
        &self,
        kind: &str,
        name: &str,
        phone: Option<&str>,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> crate::Result<PartyId> {
        let mut tx = begin_write(self.writer()).await.map_err(Error::from)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO parties (kind, name, phone, email) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(kind)
        .bind(name)
        .bind(phone)
        .bind(email)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| refusal(e, "a party"))?;
        // The party's person gets an account with the register's addresses, so that
        // they can sign in and be told.
        let (email, phone) = (
            email.and_then(crate::signin::email),
            phone.and_then(crate::signin::phone),
        );
        if email.is_some() || phone.is_some() {
            sqlx::query(
                "INSERT INTO accounts (name, role, subject_id, email, phone, created_at) \
                 VALUES ($1, 'landlord', $2, $3, $4, $5)",
            )
            .bind(name)
            .bind(id)
            .bind(email)
            .bind(phone)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(PartyId(id))
    }

    async fn parties(
        &self,
        kind: Option<&str>,
        scope: &Scope,
        after: PartyId,
        limit: u32,
    ) -> Result<Vec<PartyListing>, Error> {
        // Parties with units in the scope; a city-wide scope also lists parties that
        // manage no unit yet.
        let mut q = QueryBuilder::<Db>::new(
            "SELECT p.id, p.kind, p.name, p.phone, \
             (SELECT COUNT(*) FROM units u WHERE u.party_id = p.id) AS units \
             FROM parties p WHERE p.id > ",
        );
        q.push_bind(after.0);
        if let Some(kind) = kind {
            q.push(" AND p.kind = ").push_bind(kind.to_string());
        }
        if !matches!(scope, Scope::City | Scope::System) {
            q.push(" AND p.id IN (SELECT party_id FROM units WHERE party_id IS NOT NULL");
            push_scope(&mut q, scope);
            q.push(")");
        }
        q.push(" ORDER BY p.id LIMIT ").push_bind(i64::from(limit));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(PartyListing {
                    id: PartyId(r.try_get(0)?),
                    kind: r.try_get(1)?,
                    name: r.try_get(2)?,
                    phone: r.try_get(3)?,
                    units: r.try_get(4)?,
                })
            })
            .collect()
    }

    async fn set_unit_party(
        &self,
        unit: UnitId,
        party: Option<(PartyId, String)>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = begin_write(self.writer()).await?;
        sqlx::query("UPDATE unit_parties SET to_at = $2 WHERE unit_id = $1 AND to_at IS NULL")
            .bind(unit.0)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        if let Some((party, role)) = &party {
            sqlx::query(
                "INSERT INTO unit_parties (unit_id, party_id, role, from_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(unit.0)
            .bind(party.0)
            .bind(role)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE units SET party_id = $2 WHERE id = $1")
            .bind(unit.0)
            .bind(party.map(|(p, _)| p.0))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn unit_parties(&self, unit: UnitId) -> Result<Vec<UnitPartyRecord>, Error> {
        let rows = sqlx::query(
            "SELECT party_id, role, from_at, to_at FROM unit_parties WHERE unit_id = $1 \
             ORDER BY from_at, id",
        )
        .bind(unit.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UnitPartyRecord {
                    party_id: PartyId(r.try_get("party_id")?),
                    role: r.try_get("role")?,
                    from_at: from_millis(r.try_get("from_at")?),
                    to_at: r.try_get::<Option<i64>, _>("to_at")?.map(from_millis),
                })
            })
            .collect()
    }

    async fn party_records(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        only: Option<PartyId>,
    ) -> Result<Vec<PartyRecord>, Error> {
        let mut records: BTreeMap<i64, PartyRecord> = BTreeMap::new();
        let only_party = |q: &mut QueryBuilder<Db>, column: &str| {
            if let Some(p) = only {
                q.push(format_args!(" AND {column} = ")).push_bind(p.0);
            }
        };
        let mut q = QueryBuilder::<Db>::new(
            "SELECT c.party_id, p.kind, c.severity, COUNT(*) AS n FROM cases c \
             JOIN parties p ON p.id = c.party_id WHERE 1 = 1",
        );
        only_party(&mut q, "c.party_id");
        q.push(" GROUP BY c.party_id, p.kind, c.severity");
        for r in &q.build().fetch_all(self.reader()).await? {
            let id: i64 = r.try_get("party_id")?;
            let record = records
                .entry(id)
                .or_insert_with(|| PartyRecord::empty(PartyId(id), String::new()));
            record.kind = r.try_get("kind")?;
            record
                .cases_by_severity
                .insert(r.try_get("severity")?, r.try_get("n")?);
        }
        // A party asked for by id has a record even without cases.
        if let Some(p) = only
            && !records.contains_key(&p.0)
            && let Some(kind) = self.party_kind(p).await?
        {
            records.insert(p.0, PartyRecord::empty(p, kind));
        }
        let mut q = QueryBuilder::<Db>::new(
            // An order overdue: its deadline passed, or an objection decided after it
            // had (the case entered `overdue`).
            "SELECT c.party_id, CASE WHEN e.to_state = 'overdue' AND e.from_state <> 'overdue' \
             THEN 'overdue' ELSE e.command END AS kind, COUNT(*) AS n FROM case_events e \
             JOIN cases c ON c.id = e.case_id WHERE c.party_id IS NOT NULL \
             AND (e.command IN ('refer', 'rule_refer', 'record_result') \
             OR (e.to_state = 'overdue' AND e.from_state <> 'overdue')) \
             AND e.at >= ",
        );
        q.push_bind(ms(since));
        only_party(&mut q, "c.party_id");
        q.push(" GROUP BY c.party_id, kind");
        for r in &q.build().fetch_all(self.reader()).await? {
            let id: i64 = r.try_get("party_id")?;
            let n: i64 = r.try_get("n")?;
            if let Some(record) = records.get_mut(&id) {
                match r.try_get::<String, _>("kind")?.as_str() {
                    "overdue" => record.overdue_since += n,
                    "record_result" => record.results_since += n,
                    _ => record.referrals_since += n,
                }
            }
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT party_id, status FROM blacklist WHERE (status = 'proposed' \
             OR (status IN ('active', 'appealed') AND (expires_at IS NULL OR expires_at > ",
        );
        q.push_bind(ms(now)).push(")))");
        only_party(&mut q, "party_id");
        for r in &q.build().fetch_all(self.reader()).await? {
            if let Some(record) = records.get_mut(&r.try_get::<i64, _>(0)?) {
                if r.try_get::<String, _>(1)? == "proposed" {
                    record.proposed = true;
                } else {
                    record.blacklisted = true;
                }
            }
        }
        Ok(records.into_values().collect())
    }

    async fn propose_blacklist(
        &self,
        party: PartyId,
        reason: &str,
        source: &str,
        district_code: &str,
        at: DateTime<Utc>,
    ) -> crate::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO blacklist (party_id, status, reason, source, district_code, proposed_at) \
             VALUES ($1, 'proposed', $2, $3, $4, $5) RETURNING id",
        )
        .bind(party.0)
        .bind(reason)
        .bind(source)
        .bind(district_code)
        .bind(ms(at))
        .fetch_one(self.writer())
        .await
        .map_err(|e| refusal(e, "an open blacklist entry of this party"))
    }

    async fn blacklist(
        &self,
        party: Option<PartyId>,
        scope: &Scope,
        status: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<BlacklistEntry>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {BLACKLIST_COLUMNS} FROM blacklist b JOIN parties p ON p.id = b.party_id \
             WHERE 1 = 1"
        ));
        if let Some(p) = party {
            q.push(" AND b.party_id = ").push_bind(p.0);
        }
        match status {
            // `expired` is not stored: it is an active entry past its end.
            Some("expired") => {
                q.push(" AND b.status = 'active' AND b.expires_at <= ")
                    .push_bind(ms(now));
            }
            Some("active") => {
                q.push(" AND b.status = 'active' AND (b.expires_at IS NULL OR b.expires_at > ")
                    .push_bind(ms(now))
                    .push(")");
            }
            Some(status) => {
                q.push(" AND b.status = ").push_bind(status.to_string());
            }
            None => {}
        }
        match scope {
            Scope::City | Scope::System => {}
            Scope::District(code) => {
                q.push(" AND b.district_code = ").push_bind(code.clone());
            }
            Scope::Party(id) => {
                q.push(" AND b.party_id = ").push_bind(id.0);
            }
            _ => {
                q.push(" AND 1 = 0");
            }
        }
        q.push(" ORDER BY b.id DESC LIMIT 1000");
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(blacklist_from_row)
            .collect()
    }

    async fn blacklist_entry(&self, id: i64) -> Result<Option<BlacklistEntry>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BLACKLIST_COLUMNS} FROM blacklist b JOIN parties p ON p.id = b.party_id \
             WHERE b.id = $1"
        )))
        .bind(id)
        .fetch_optional(self.reader())
        .await?
        .as_ref()
        .map(blacklist_from_row)
        .transpose()
    }

    async fn change_blacklist(
        &self,
        id: i64,
        change: &BlacklistChange,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let at = ms(at);
        let q = match change {
            BlacklistChange::Approve {
                by,
                note,
                expires_at,
                publish,
            } => sqlx::query(
                "UPDATE blacklist SET status = 'active', decided_by = $2, decided_at = $3, \
                 decision_note = $4, expires_at = $5, published = $6 \
                 WHERE id = $1 AND status = 'proposed'",
            )
            .bind(id)
            .bind(by.clone())
            .bind(at)
            .bind(note.clone())
            .bind(ms(*expires_at))
            .bind(i64::from(*publish)),
            BlacklistChange::Reject { by, note } => sqlx::query(
                "UPDATE blacklist SET status = 'rejected', decided_by = $2, decided_at = $3, \
                 decision_note = $4 WHERE id = $1 AND status = 'proposed'",
            )
            .bind(id)
            .bind(by.clone())
            .bind(at)
            .bind(note.clone()),
            BlacklistChange::Appeal { text } => sqlx::query(
                "UPDATE blacklist SET status = 'appealed', appeal = $2, appealed_at = $3 \
                 WHERE id = $1 AND status = 'active' AND appeal IS NULL \
                 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .bind(id)
            .bind(text.clone())
            .bind(at),
            BlacklistChange::DecideAppeal { by, upheld, note } => sqlx::query(
                "UPDATE blacklist SET status = $2, appeal_decided_by = $3, \
                 appeal_decided_at = $4, appeal_note = $5, \
                 published = CASE WHEN $2 = 'lifted' THEN 0 ELSE published END \
                 WHERE id = $1 AND status = 'appealed'",
            )
            .bind(id)
            .bind(if *upheld { "active" } else { "lifted" })
            .bind(by.clone())
            .bind(at)
            .bind(note.clone()),
            BlacklistChange::Lift { by, note } => sqlx::query(
                "UPDATE blacklist SET status = 'lifted', published = 0, \
                 appeal_decided_by = $2, appeal_decided_at = $3, appeal_note = $4 \
                 WHERE id = $1 AND status IN ('active', 'appealed')",
            )
            .bind(id)
            .bind(by.clone())
            .bind(at)
            .bind(note.clone()),
        };
        Ok(q.execute(self.writer()).await?.rows_affected() == 1)
    }

    async fn published_blacklist(&self, now: DateTime<Utc>) -> Result<Vec<BlacklistEntry>, Error> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BLACKLIST_COLUMNS} FROM blacklist b JOIN parties p ON p.id = b.party_id \
             WHERE b.published = 1 AND b.status IN ('active', 'appealed') \
             AND (b.expires_at IS NULL OR b.expires_at > $1) ORDER BY b.decided_at DESC, b.id \
             LIMIT 1000"
        )))
        .bind(ms(now))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(blacklist_from_row)
        .collect()
    }

    async fn add_agreement(&self, a: &Agreement) -> crate::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO agreements (unit_id, party_id, signer, signed_on, expires_on, document, \
             recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(a.unit_id.0)
        .bind(a.party_id.0)
        .bind(&a.signer)
        .bind(a.signed_on.to_string())
        .bind(a.expires_on.to_string())
        .bind(&a.document)
        .bind(&a.recorded_by)
        .bind(ms(a.recorded_at))
        .fetch_one(self.writer())
        .await
        .map_err(|e| refusal(e, "an agreement"))
    }

    async fn seed_agreements(&self, gap: i64, at: DateTime<Utc>) -> Result<u64, Error> {
        let year = at.with_timezone(&crate::time::china_time()).year();
        let written = sqlx::query(
            "INSERT INTO agreements (unit_id, party_id, signer, signed_on, expires_on, \
             recorded_by, recorded_at) \
             SELECT u.id, u.party_id, p.name, $1, $2, 'seed', $3 FROM units u \
             JOIN parties p ON p.id = u.party_id WHERE u.id % $4 <> 0",
        )
        .bind(format!("{year}-01-01"))
        .bind(format!("{}-12-31", year + 1))
        .bind(ms(at))
        .bind(gap)
        .execute(self.writer())
        .await?
        .rows_affected();
        Ok(written)
    }

    async fn agreements(&self, unit: UnitId) -> Result<Vec<Agreement>, Error> {
        let rows = sqlx::query(
            "SELECT id, unit_id, party_id, signer, signed_on, expires_on, document, recorded_by, \
             recorded_at FROM agreements WHERE unit_id = $1 ORDER BY id",
        )
        .bind(unit.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Agreement {
                    id: r.try_get(0)?,
                    unit_id: UnitId(r.try_get(1)?),
                    party_id: PartyId(r.try_get(2)?),
                    signer: r.try_get(3)?,
                    signed_on: date_at(r, 4)?,
                    expires_on: date_at(r, 5)?,
                    document: r.try_get(6)?,
                    recorded_by: r.try_get(7)?,
                    recorded_at: from_millis(r.try_get(8)?),
                })
            })
            .collect()
    }

    async fn add_policy(&self, p: &InsurancePolicy) -> crate::Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO insurance_policies (unit_id, insurer, policy_no, coverage_yuan, \
             starts_on, ends_on, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(p.unit_id.0)
        .bind(&p.insurer)
        .bind(&p.policy_no)
        .bind(p.coverage_yuan)
        .bind(p.starts_on.to_string())
        .bind(p.ends_on.to_string())
        .bind(&p.recorded_by)
        .bind(ms(p.recorded_at))
        .fetch_one(self.writer())
        .await
        .map_err(|e| refusal(e, "a policy with this insurer and number"))
    }

    async fn policies(&self, unit: UnitId) -> Result<Vec<InsurancePolicy>, Error> {
        let rows = sqlx::query(
            "SELECT id, unit_id, insurer, policy_no, coverage_yuan, starts_on, ends_on, \
             recorded_by, recorded_at FROM insurance_policies WHERE unit_id = $1 ORDER BY id",
        )
        .bind(unit.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InsurancePolicy {
                    id: r.try_get(0)?,
                    unit_id: UnitId(r.try_get(1)?),
                    insurer: r.try_get(2)?,
                    policy_no: r.try_get(3)?,
                    coverage_yuan: r.try_get(4)?,
                    starts_on: date_at(r, 5)?,
                    ends_on: date_at(r, 6)?,
                    recorded_by: r.try_get(7)?,
                    recorded_at: from_millis(r.try_get(8)?),
                })
            })
            .collect()
    }

    async fn party_units(&self, party: PartyId) -> Result<Vec<PartyUnit>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UNIT_COLUMNS}, {OPEN_ORDERS_OF_U} AS open_orders, \
             (SELECT MIN(k.deadline_at) FROM cases k WHERE k.unit_id = u.id \
             AND k.closed_at IS NULL AND k.order_no > 0) AS next_deadline \
             FROM units u WHERE party_id = $1 ORDER BY id LIMIT 5000"
        )))
        .bind(party.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PartyUnit {
                    unit: unit_from_row(r)?,
                    open_orders: r.try_get("open_orders")?,
                    next_deadline: r
                        .try_get::<Option<i64>, _>("next_deadline")?
                        .map(from_millis),
                })
            })
            .collect()
    }
}
