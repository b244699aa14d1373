//! The SQL of units.

use super::*;

static SELECT_UNIT: LazyLock<&'static str> =
    LazyLock::new(|| leak(format!("SELECT {UNIT_COLUMNS} FROM units WHERE id = $1")));
static PLACARD_SELECT: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "SELECT u.id AS unit_id, u.public_code, u.address, u.district_code, u.community_id, \
         c.name AS community_name, u.stars, u.last_inspected_at, \
         {OPEN_ORDERS_OF_U} AS open_orders FROM units u \
         JOIN communities c ON c.id = u.community_id"
    ))
});
fn placard_from_row(r: &Row) -> Result<Placard, Error> {
    Ok(Placard {
        unit_id: UnitId(r.try_get("unit_id")?),
        public_code: r.try_get("public_code")?,
        address: r.try_get("address")?,
        district_code: r.try_get("district_code")?,
        community_id: CommunityId(r.try_get("community_id")?),
        community_name: r.try_get("community_name")?,
        stars: stars_at(r, "stars")?,
        last_inspected_at: r
            .try_get::<Option<i64>, _>("last_inspected_at")?
            .map(from_millis),
        open_orders: r.try_get("open_orders")?,
    })
}
#[async_trait]
impl UnitStore for This {
    async fn create_unit(
        &self,
        unit: &UnitRow,
        idem: Option<&IdempotencyKey>,
        respond: &Respond<'_, Unit>,
        now: DateTime<Utc>,
    ) -> crate::Result<Idempotent<Unit>> {
        let mut tx = begin_write(self.writer()).await.map_err(Error::from)?;
        if let Some(idem) = idem
            && let Some(previous) = claim_idempotency_key(&mut tx, idem, now).await?
        {
            return Ok(Idempotent::Replayed(previous));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO units (address_code, building_id, address, lon, lat, floor_area, \
             occupants, grid_id, community_id, street_id, district_code, party_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(&unit.address_code)
        .bind(unit.building_id.0)
        .bind(&unit.address)
        .bind(unit.point.lon())
        .bind(unit.point.lat())
        .bind(unit.floor_area)
        .bind(unit.occupants)
        .bind(unit.place.grid_id.map_or(0, |g| g.0))
        .bind(unit.place.community_id.map_or(0, |c| c.0))
        .bind(unit.place.street_id.map_or(0, |s| s.0))
        .bind(&unit.place.district_code)
        .bind(unit.party_id.map(|p| p.0))
        .bind(ms(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| refusal(e, "a unit with this address code"))?;
        sqlx::query("UPDATE units SET public_code = $2 WHERE id = $1")
            .bind(id)
            .bind(crate::registry::PublicCodes::new().code_for(UnitId(id)))
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        if let Some(party) = unit.party_id {
            sqlx::query(
                "INSERT INTO unit_parties (unit_id, party_id, role, from_at) \
                 SELECT $1, id, kind, $3 FROM parties WHERE id = $2",
            )
            .bind(id)
            .bind(party.0)
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        }
        let row = sqlx::query(*SELECT_UNIT)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(Error::from)?;
        let created = unit_from_row(&row)?;
        if let Some(idem) = idem {
            store_idempotent_response(&mut tx, idem, respond(&created)).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Idempotent::Created(created))
    }

    async fn unit(&self, id: UnitId) -> Result<Option<Unit>, Error> {
        let row = sqlx::query(*SELECT_UNIT)
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        row.as_ref().map(unit_from_row).transpose()
    }

    async fn units_by_ids(&self, ids: &[UnitId]) -> Result<Vec<Unit>, Error> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(rows_per_statement(1)) {
            let mut q =
                QueryBuilder::<Db>::new(format!("SELECT {UNIT_COLUMNS} FROM units WHERE id IN ("));
            let mut list = q.separated(", ");
            for id in chunk {
                list.push_bind(id.0);
            }
            q.push(")");
            for row in q.build().fetch_all(self.reader()).await? {
                out.push(unit_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn unit_points(&self) -> Result<Vec<Located>, Error> {
        // Read in parts over several connections at once: decoding rows, not the disk,
        // is what takes the time.
        let (low, high): (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(id), MAX(id) FROM units")
                .fetch_one(self.reader())
                .await?;
        let (Some(low), Some(high)) = (low, high) else {
            return Ok(Vec::new());
        };
        let parts = 4i64;
        let step = (high - low) / parts + 1;
        let tasks: Vec<_> = (0..parts)
            .map(|k| {
                let pool = self.reader().clone();
                let (from, to) = (low + k * step, low + (k + 1) * step);
                tokio::spawn(async move {
                    use futures_util::TryStreamExt;
                    let mut out = Vec::new();
                    let mut rows =
                        sqlx::query("SELECT id, lon, lat FROM units WHERE id >= $1 AND id < $2")
                            .bind(from)
                            .bind(to)
                            .fetch(&pool);
                    while let Some(row) = rows.try_next().await? {
                        out.push(Located::new(
                            UnitId(row.try_get(0)?),
                            row.try_get(1)?,
                            row.try_get(2)?,
                        ));
                    }
                    Ok::<_, Error>(out)
                })
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            out.extend(
                task.await
                    .map_err(|e| corrupt(format!("reading units: {e}")))??,
            );
        }
        Ok(out)
    }

    async fn unit_grids(&self) -> Result<Vec<(Located, Option<GridId>, String)>, Error> {
        use futures_util::TryStreamExt;
        let mut out = Vec::new();
        let mut rows =
            sqlx::query("SELECT id, lon, lat, grid_id, district_code FROM units ORDER BY id")
                .fetch(self.reader());
        while let Some(row) = rows.try_next().await? {
            out.push((
                Located::new(
                    UnitId(row.try_get("id")?),
                    row.try_get("lon")?,
                    row.try_get("lat")?,
                ),
                some_id(&row, "grid_id")?.map(GridId),
                row.try_get("district_code")?,
            ));
        }
        Ok(out)
    }

    async fn ungridded_units(
        &self,
        scope: &Scope,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {UNIT_COLUMNS} FROM units WHERE grid_id = 0 AND id > "
        ));
        q.push_bind(after.map_or(0, |a| a.0));
        match scope {
            Scope::City | Scope::System => {}
            Scope::District(code) => {
                q.push(" AND district_code = ").push_bind(code.clone());
            }
            // Streets, grids, parties and departments hold no unit outside every grid.
            _ => {
                q.push(" AND 1 = 0");
            }
        }
        q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(unit_from_row)
            .collect()
    }

    async fn correct_location(&self, c: &LocationCorrection) -> crate::Result<()> {
        let mut tx = begin_write(self.writer()).await.map_err(Error::from)?;
        let p = &c.place;
        let updated = if c.kind == "unit" {
            sqlx::query(
                "UPDATE units SET lon = $2, lat = $3, grid_id = $4, community_id = $5, \
                 street_id = $6, district_code = $7 WHERE id = $1",
            )
            .bind(c.id)
            .bind(c.to.0)
            .bind(c.to.1)
            .bind(p.grid_id.map_or(0, |g| g.0))
            .bind(p.community_id.map_or(0, |g| g.0))
            .bind(p.street_id.map_or(0, |g| g.0))
            .bind(&p.district_code)
            .execute(&mut *tx)
            .await
        } else {
            // A building keeps a grid of the registry; outside every grid, its own.
            sqlx::query(
                "UPDATE buildings SET lon = $2, lat = $3, grid_id = COALESCE($4, grid_id) \
                 WHERE id = $1",
            )
            .bind(c.id)
            .bind(c.to.0)
            .bind(c.to.1)
            .bind(p.grid_id.map(|g| g.0))
            .execute(&mut *tx)
            .await
        }
        .map_err(Error::from)?
        .rows_affected();
        if updated != 1 {
            return Err(crate::Error::not_found(
                if c.kind == "unit" { "unit" } else { "building" },
                c.id,
            ));
        }
        sqlx::query(
            "INSERT INTO location_corrections (kind, object_id, from_lon, from_lat, to_lon, \
             to_lat, grid_before, grid_after, actor, reason, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&c.kind)
        .bind(c.id)
        .bind(c.from.0)
        .bind(c.from.1)
        .bind(c.to.0)
        .bind(c.to.1)
        .bind(c.grid_before.map_or(0, |g| g.0))
        .bind(p.grid_id.map_or(0, |g| g.0))
        .bind(&c.actor)
        .bind(&c.reason)
        .bind(ms(c.at))
        .execute(&mut *tx)
        .await
        .map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(())
    }

    async fn location_corrections(
        &self,
        kind: &str,
        id: i64,
    ) -> Result<Vec<LocationCorrection>, Error> {
        sqlx::query(
            "SELECT from_lon, from_lat, to_lon, to_lat, grid_before, grid_after, actor, reason, \
             at FROM location_corrections WHERE kind = $1 AND object_id = $2 ORDER BY id",
        )
        .bind(kind)
        .bind(id)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            Ok(LocationCorrection {
                kind: kind.to_string(),
                id,
                from: (r.try_get("from_lon")?, r.try_get("from_lat")?),
                to: (r.try_get("to_lon")?, r.try_get("to_lat")?),
                grid_before: some_id(r, "grid_before")?.map(GridId),
                place: crate::spatial::grids::PointPlace {
                    grid_id: some_id(r, "grid_after")?.map(GridId),
                    community_id: None,
                    street_id: None,
                    district_code: String::new(),
                },
                actor: r.try_get("actor")?,
                reason: r.try_get("reason")?,
                at: from_millis(r.try_get("at")?),
            })
        })
        .collect()
    }

    async fn move_units(&self, moves: &[Move]) -> Result<u64, Error> {
        let mut tx = begin_write(self.writer()).await?;
        let mut moved = 0;
        for chunk in moves.chunks(rows_per_statement(5)) {
            let mut q = QueryBuilder::<Db>::new(
                "UPDATE units SET grid_id = v.column2, community_id = v.column3, \
                 street_id = v.column4, district_code = v.column5 FROM (",
            );
            q.push_values(chunk, |mut b, m| {
                b.push_bind(m.unit.0)
                    .push_bind(m.place.grid_id.map_or(0, |g| g.0))
                    .push_bind(m.place.community_id.map_or(0, |g| g.0))
                    .push_bind(m.place.street_id.map_or(0, |g| g.0))
                    .push_bind(m.place.district_code.clone());
            });
            q.push(") AS v WHERE units.id = v.column1");
            moved += q.build().execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn building_place(&self, id: i64) -> Result<Option<BuildingPlace>, Error> {
        let row = sqlx::query(
            "SELECT b.id, b.grid_id, g.community_id, c.street_id, s.district_code, b.lon, b.lat \
             FROM buildings b JOIN grids g ON g.id = b.grid_id \
             JOIN communities c ON c.id = g.community_id JOIN streets s ON s.id = c.street_id \
             WHERE b.id = $1",
        )
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(BuildingPlace {
                building_id: BuildingId(r.try_get("id")?),
                grid_id: GridId(r.try_get("grid_id")?),
                community_id: CommunityId(r.try_get("community_id")?),
                street_id: StreetId(r.try_get("street_id")?),
                district_code: r.try_get("district_code")?,
                lon: r.try_get("lon")?,
                lat: r.try_get("lat")?,
            })
        })
        .transpose()
    }

    async fn unit_grades(&self, unit: UnitId) -> Result<Vec<GradeRecord>, Error> {
        let rows = sqlx::query(
            "SELECT stars, score, reasons, cause, inspection_id, at FROM unit_grades \
             WHERE unit_id = $1 ORDER BY id",
        )
        .bind(unit.0)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let reasons: String = r.try_get("reasons")?;
                Ok(GradeRecord {
                    stars: stars_at(r, "stars")?,
                    score: r.try_get("score")?,
                    reasons: serde_json::from_str(&reasons).map_err(corrupt)?,
                    cause: r.try_get("cause")?,
                    inspection_id: r
                        .try_get::<Option<i64>, _>("inspection_id")?
                        .map(InspectionId),
                    at: from_millis(r.try_get("at")?),
                })
            })
            .collect()
    }

    async fn placard(&self, public_code: &str) -> Result<Option<Placard>, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE u.public_code = $1",
            *PLACARD_SELECT
        )))
        .bind(public_code)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(placard_from_row).transpose()
    }

    async fn low_grade_placards(
        &self,
        community_code: &str,
        max_stars: u8,
    ) -> Result<Option<(String, Vec<Placard>)>, Error> {
        let Some(community) = sqlx::query("SELECT id, name FROM communities WHERE code = $1")
            .bind(community_code)
            .fetch_optional(self.reader())
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE u.community_id = $1 AND u.stars <= $2 \
             ORDER BY u.stars, u.id LIMIT 2000",
            *PLACARD_SELECT
        )))
        .bind(community.try_get::<i64, _>("id")?)
        .bind(i64::from(max_stars))
        .fetch_all(self.reader())
        .await?;
        let placards = rows
            .iter()
            .map(placard_from_row)
            .collect::<Result<_, _>>()?;
        Ok(Some((community.try_get("name")?, placards)))
    }
}
