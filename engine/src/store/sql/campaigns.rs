//! The SQL of campaigns (专项行动).

use super::*;

const CAMPAIGN_SELECT: &str = "SELECT c.id, c.name, c.area, c.starts_on, c.ends_on, c.checklist, \
    c.created_by, c.created_at, (SELECT COUNT(*) FROM campaign_units cu \
    WHERE cu.campaign_id = c.id) AS units FROM campaigns c";
/// A campaign is visible to those who oversee at least one of its units.
fn push_campaign_scope(q: &mut QueryBuilder<Db>, scope: &Scope) {
    if matches!(scope, Scope::City | Scope::System) {
        return;
    }
    q.push(
        " AND EXISTS (SELECT 1 FROM campaign_units cu JOIN units u ON u.id = cu.unit_id \
         WHERE cu.campaign_id = c.id",
    );
    match scope {
        Scope::Department(_) => {
            q.push(" AND 1 = 0");
        }
        other => push_scope(q, other),
    }
    q.push(")");
}
fn campaign_from_row(r: &Row) -> Result<CampaignRecord, Error> {
    let text = |name: &str| -> Result<String, Error> { Ok(r.try_get::<String, _>(name)?) };
    let date = |name: &str| -> Result<NaiveDate, Error> { text(name)?.parse().map_err(corrupt) };
    Ok(CampaignRecord {
        id: r.try_get("id")?,
        name: text("name")?,
        area: serde_json::from_str(&text("area")?).map_err(corrupt)?,
        starts_on: date("starts_on")?,
        ends_on: date("ends_on")?,
        checklist: serde_json::from_str(&text("checklist")?).map_err(corrupt)?,
        created_by: text("created_by")?,
        created_at: from_millis(r.try_get("created_at")?),
        units: r.try_get("units")?,
    })
}
#[async_trait]
impl CampaignStore for This {
    async fn create_campaign(
        &self,
        c: &NewCampaign,
        scope: &Scope,
    ) -> crate::Result<CampaignRecord> {
        let (starts_at, _) = crate::time::day_bounds(c.starts_on);
        let (_, ends_at) = crate::time::day_bounds(c.ends_on);
        let mut tx = begin_write(self.writer()).await.map_err(Error::from)?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (name, area, starts_on, ends_on, starts_at, ends_at, \
             checklist, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id",
        )
        .bind(&c.name)
        .bind(c.area_json.to_string())
        .bind(c.starts_on.to_string())
        .bind(c.ends_on.to_string())
        .bind(ms(starts_at))
        .bind(ms(ends_at))
        .bind(serde_json::to_string(&c.checklist).map_err(corrupt)?)
        .bind(&c.created_by)
        .bind(ms(c.at))
        .fetch_one(&mut *tx)
        .await
        .map_err(Error::from)?;
        let insert = |q: &mut QueryBuilder<Db>| {
            q.push("INSERT INTO campaign_units (campaign_id, unit_id) SELECT ")
                .push_bind(id)
                .push(", id FROM units WHERE 1 = 1");
            push_scope(q, scope);
        };
        let mut units = 0;
        let mut run = async |mut q: QueryBuilder<Db>| -> Result<u64, Error> {
            Ok(q.build().execute(&mut *tx).await?.rows_affected())
        };
        match &c.area {
            CampaignArea::District(code) => {
                let mut q = QueryBuilder::new("");
                insert(&mut q);
                q.push(" AND district_code = ").push_bind(code.clone());
                units += run(q).await?;
            }
            CampaignArea::Street(street) => {
                let mut q = QueryBuilder::new("");
                insert(&mut q);
                q.push(" AND street_id = ").push_bind(street.0);
                units += run(q).await?;
            }
            CampaignArea::Grid(grid) => {
                let mut q = QueryBuilder::new("");
                insert(&mut q);
                q.push(" AND grid_id = ").push_bind(grid.0);
                units += run(q).await?;
            }
            CampaignArea::Units(ids) => {
                for chunk in ids.chunks(rows_per_statement(1) - 40) {
                    let mut q = QueryBuilder::new("");
                    insert(&mut q);
                    q.push(" AND id IN (");
                    let mut list = q.separated(", ");
                    for u in chunk {
                        list.push_bind(u.0);
                    }
                    q.push(")");
                    units += run(q).await?;
                }
            }
        }
        if units == 0 {
            return Err(crate::Error::invalid(
                "area",
                "the area holds no units in your jurisdiction",
            ));
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(self
            .campaign(id, scope)
            .await?
            .ok_or_else(|| corrupt("a campaign just created is missing"))?)
    }

    async fn campaign(&self, id: i64, scope: &Scope) -> Result<Option<CampaignRecord>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!("{CAMPAIGN_SELECT} WHERE c.id = "));
        q.push_bind(id);
        push_campaign_scope(&mut q, scope);
        let row = q.build().fetch_optional(self.reader()).await?;
        row.as_ref().map(campaign_from_row).transpose()
    }

    async fn campaigns(&self, scope: &Scope) -> Result<Vec<CampaignRecord>, Error> {
        let mut q = QueryBuilder::<Db>::new(format!("{CAMPAIGN_SELECT} WHERE 1 = 1"));
        push_campaign_scope(&mut q, scope);
        q.push(" ORDER BY c.id DESC LIMIT 500");
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(campaign_from_row)
            .collect()
    }

    async fn campaign_progress(
        &self,
        id: i64,
        level: &str,
        scope: &Scope,
    ) -> Result<Vec<CampaignProgress>, Error> {
        let column = match level {
            "district" => "u.district_code",
            "street" => "CAST(u.street_id AS TEXT)",
            "community" => "CAST(u.community_id AS TEXT)",
            _ => "CAST(u.grid_id AS TEXT)",
        };
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {column} AS area, COUNT(*) AS total, COUNT(cu.visited_at) AS visited, \
             CAST(COALESCE(SUM(cu.hazards), 0) AS BIGINT) AS hazards \
             FROM campaign_units cu JOIN units u ON u.id = cu.unit_id WHERE cu.campaign_id = "
        ));
        q.push_bind(id)
            .push(" AND u.id IN (SELECT id FROM units WHERE 1 = 1");
        push_scope(&mut q, scope);
        q.push(format!(") GROUP BY {column} ORDER BY {column}"));
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok(CampaignProgress {
                    area: r.try_get("area")?,
                    total: r.try_get("total")?,
                    visited: r.try_get("visited")?,
                    hazards: r.try_get("hazards")?,
                })
            })
            .collect()
    }

    async fn open_campaign_checklists(
        &self,
        unit: UnitId,
        at: DateTime<Utc>,
    ) -> Result<Vec<CheckItem>, Error> {
        let lists: Vec<String> = sqlx::query_scalar(
            "SELECT c.checklist FROM campaigns c JOIN campaign_units cu \
             ON cu.campaign_id = c.id WHERE cu.unit_id = $1 AND cu.visited_at IS NULL \
             AND c.starts_at <= $2 AND c.ends_at > $2 ORDER BY c.id",
        )
        .bind(unit.0)
        .bind(ms(at))
        .fetch_all(self.reader())
        .await?;
        let mut items: Vec<CheckItem> = Vec::new();
        for list in lists {
            for item in serde_json::from_str::<Vec<CheckItem>>(&list).map_err(corrupt)? {
                if !items.iter().any(|i| i.code == item.code) {
                    items.push(item);
                }
            }
        }
        Ok(items)
    }
}
