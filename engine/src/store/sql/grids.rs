//! The SQL of grids and the directory.

use super::*;

static SELECT_GRID_UNITS: LazyLock<&'static str> = LazyLock::new(|| {
    leak(format!(
        "SELECT {UNIT_COLUMNS} FROM units WHERE grid_id = $1 AND id > $2 ORDER BY id LIMIT $3"
    ))
});
#[async_trait]
impl GridStore for This {
    async fn grids_by_code(&self, codes: &[String]) -> Result<Vec<(String, GridId)>, Error> {
        let mut out = Vec::new();
        for chunk in codes.chunks(rows_per_statement(1)) {
            let mut q = QueryBuilder::<Db>::new("SELECT code, id FROM grids WHERE code IN (");
            let mut list = q.separated(", ");
            for c in chunk {
                list.push_bind(c.clone());
            }
            q.push(")");
            for row in q.build().fetch_all(self.reader()).await? {
                out.push((row.try_get("code")?, GridId(row.try_get("id")?)));
            }
        }
        Ok(out)
    }

    async fn community_by_code(&self, code: &str) -> Result<Option<CommunityId>, Error> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM communities WHERE code = $1")
            .bind(code)
            .fetch_optional(self.reader())
            .await?;
        Ok(id.map(CommunityId))
    }

    async fn save_grids(
        &self,
        updates: &[(GridId, Option<String>, String)],
        creates: &[(String, String, CommunityId, String)],
    ) -> crate::Result<Vec<GridId>> {
        let mut tx = begin_write(self.writer()).await.map_err(Error::from)?;
        for (id, name, geometry) in updates {
            sqlx::query(
                "UPDATE grids SET geometry = $2, name = COALESCE($3, name), \
                 shape_at = (SELECT COALESCE(MAX(shape_at), 0) + 1 FROM grids) WHERE id = $1",
            )
            .bind(id.0)
            .bind(geometry)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(Error::from)?;
        }
        let mut ids = Vec::with_capacity(creates.len());
        for (code, name, community, geometry) in creates {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO grids (code, community_id, name, geometry, shape_at) \
                 VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(shape_at), 0) + 1 FROM grids)) \
                 RETURNING id",
            )
            .bind(code)
            .bind(community.0)
            .bind(name)
            .bind(geometry)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| refusal(e, "a grid"))?;
            ids.push(GridId(id));
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(ids)
    }

    async fn grid(&self, id: GridId) -> Result<Option<GridRecord>, Error> {
        let row = sqlx::query(
            "SELECT g.id, g.code, g.name, g.community_id, c.street_id, s.district_code, g.geometry, \
             (SELECT COUNT(*) FROM units u WHERE u.grid_id = g.id) AS units \
             FROM grids g JOIN communities c ON c.id = g.community_id \
             JOIN streets s ON s.id = c.street_id WHERE g.id = $1",
        )
        .bind(id.0)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            let geometry: Option<String> = r.try_get("geometry")?;
            Ok(GridRecord {
                id: GridId(r.try_get("id")?),
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                community_id: CommunityId(r.try_get("community_id")?),
                street_id: StreetId(r.try_get("street_id")?),
                district_code: r.try_get("district_code")?,
                geometry: geometry
                    .map(|g| serde_json::from_str(&g).map_err(corrupt))
                    .transpose()?,
                units: r.try_get("units")?,
            })
        })
        .transpose()
    }

    async fn grid_units(
        &self,
        id: GridId,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>, Error> {
        let rows = sqlx::query(*SELECT_GRID_UNITS)
            .bind(id.0)
            .bind(after.map_or(0, |u| u.0))
            .bind(i64::from(limit.clamp(1, 5000)))
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(unit_from_row).collect()
    }

    async fn grid_shapes(&self) -> Result<Vec<(GridId, String)>, Error> {
        let rows =
            sqlx::query("SELECT id, geometry FROM grids WHERE geometry IS NOT NULL ORDER BY id")
                .fetch_all(self.reader())
                .await?;
        rows.iter()
            .map(|r| Ok((GridId(r.try_get("id")?), r.try_get("geometry")?)))
            .collect()
    }

    async fn grid_places(&self) -> Result<Vec<(GridId, GridPlace)>, Error> {
        sqlx::query(
            "SELECT g.id, g.community_id, c.street_id, s.district_code FROM grids g \
             JOIN communities c ON c.id = g.community_id JOIN streets s ON s.id = c.street_id",
        )
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            Ok((
                GridId(r.try_get("id")?),
                GridPlace {
                    community_id: CommunityId(r.try_get("community_id")?),
                    street_id: StreetId(r.try_get("street_id")?),
                    district_code: r.try_get("district_code")?,
                },
            ))
        })
        .collect()
    }

    async fn grid_stamp(&self) -> Result<(i64, i64), Error> {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(MAX(shape_at), 0) FROM grids WHERE geometry IS NOT NULL",
        )
        .fetch_one(self.reader())
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    async fn streets(&self) -> Result<Vec<StreetRecord>, Error> {
        sqlx::query(
            "SELECT s.id, s.code, s.name, s.district_code, o.geometry FROM streets s \
             LEFT JOIN street_outlines o ON o.street_id = s.id ORDER BY s.id",
        )
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(|r| {
            Ok(StreetRecord {
                id: StreetId(r.try_get("id")?),
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                district_code: r.try_get("district_code")?,
                outline: r.try_get("geometry")?,
            })
        })
        .collect()
    }

    async fn outline_stamp(&self) -> Result<Option<((i64, i64), i64)>, Error> {
        let row = sqlx::query(
            "SELECT MIN(grids) AS grids, MIN(shape_at) AS shape_at, COUNT(*) AS n \
             FROM street_outlines",
        )
        .fetch_one(self.reader())
        .await?;
        let n: i64 = row.try_get("n")?;
        Ok(if n == 0 {
            None
        } else {
            Some(((row.try_get("grids")?, row.try_get("shape_at")?), n))
        })
    }

    async fn save_outlines(
        &self,
        stamp: (i64, i64),
        outlines: &[(StreetId, String)],
    ) -> Result<(), Error> {
        let mut tx = begin_write(self.writer()).await?;
        // Two processes computing the same outlines write one after the other.
        lock_named(&mut tx, "street outlines").await?;
        sqlx::query("DELETE FROM street_outlines")
            .execute(&mut *tx)
            .await?;
        for (street, geometry) in outlines {
            sqlx::query(
                "INSERT INTO street_outlines (street_id, grids, shape_at, geometry) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(street.0)
            .bind(stamp.0)
            .bind(stamp.1)
            .bind(geometry)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn departments(&self) -> Result<Vec<DepartmentInfo>, Error> {
        let rows = sqlx::query("SELECT id, name, kind, district_code FROM departments ORDER BY id")
            .fetch_all(self.reader())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DepartmentInfo {
                    id: DepartmentId(r.try_get("id")?),
                    name: r.try_get("name")?,
                    kind: r.try_get("kind")?,
                    district_code: r.try_get("district_code")?,
                })
            })
            .collect()
    }

    async fn inspector_grids(&self, id: InspectorId) -> Result<Option<BTreeSet<GridId>>, Error> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM inspectors WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let grids: Vec<i64> =
            sqlx::query_scalar("SELECT grid_id FROM inspector_grids WHERE inspector_id = $1")
                .bind(id.0)
                .fetch_all(self.reader())
                .await?;
        Ok(Some(grids.into_iter().map(GridId).collect()))
    }

    async fn grid_inspectors(&self, grid: GridId) -> Result<Vec<InspectorId>, Error> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT inspector_id FROM inspector_grids WHERE grid_id = $1 ORDER BY inspector_id",
        )
        .bind(grid.0)
        .fetch_all(self.reader())
        .await?;
        Ok(ids.into_iter().map(InspectorId).collect())
    }

    async fn supervisors(&self) -> Result<Vec<SupervisorRecord>, Error> {
        sqlx::query("SELECT id, name, level, district_code, street_id FROM supervisors ORDER BY id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(SupervisorRecord {
                    id: SupervisorId(r.try_get("id")?),
                    name: r.try_get("name")?,
                    level: r.try_get("level")?,
                    district_code: r.try_get("district_code")?,
                    street_id: r.try_get::<Option<i64>, _>("street_id")?.map(StreetId),
                })
            })
            .collect()
    }

    async fn inspectors(&self) -> Result<Vec<InspectorListing>, Error> {
        let mut grids = inspector_grid_lists(self.reader()).await?;
        sqlx::query("SELECT id, name, shift FROM inspectors ORDER BY id")
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                Ok(InspectorListing {
                    id: InspectorId(id),
                    name: r.try_get("name")?,
                    shift: r.try_get("shift")?,
                    grids: grids.remove(&id).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn supervisor(&self, id: SupervisorId) -> Result<Option<SupervisorRecord>, Error> {
        let row = sqlx::query(
            "SELECT id, name, level, district_code, street_id FROM supervisors WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            Ok(SupervisorRecord {
                id: SupervisorId(r.try_get("id")?),
                name: r.try_get("name")?,
                level: r.try_get("level")?,
                district_code: r.try_get("district_code")?,
                street_id: r.try_get::<Option<i64>, _>("street_id")?.map(StreetId),
            })
        })
        .transpose()
    }

    async fn department_exists(&self, id: DepartmentId) -> Result<bool, Error> {
        let found: Option<i64> = sqlx::query_scalar("SELECT id FROM departments WHERE id = $1")
            .bind(id.0)
            .fetch_optional(self.reader())
            .await?;
        Ok(found.is_some())
    }
}
