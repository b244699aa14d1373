//! The SQL of uploaded evidence and the units that reference it.

use super::*;
use crate::evidence::{EvidenceKind, MediaType, PhotoFacts, TakenAt};
use crate::model::EvidenceRecord;

const EVIDENCE_COLUMNS: &str = "id, sha256, kind, media_type, bytes, width, height, file_name, \
    owner_role, owner_subject, uploaded_by, uploaded_at, lon, lat, taken_at, has_thumbnail";

fn evidence_row(r: &Row) -> Result<EvidenceRecord, Error> {
    let kind: String = r.try_get("kind")?;
    let media: String = r.try_get("media_type")?;
    let role: String = r.try_get("owner_role")?;
    let dim = |c: &str| -> Result<Option<u32>, Error> {
        Ok(r.try_get::<Option<i64>, _>(c)?
            .and_then(|v| u32::try_from(v).ok()))
    };
    let point = match (
        r.try_get::<Option<f64>, _>("lon")?,
        r.try_get::<Option<f64>, _>("lat")?,
    ) {
        (Some(lon), Some(lat)) => crate::domain::Point::parse(lon, lat, "exif").ok(),
        _ => None,
    };
    Ok(EvidenceRecord {
        id: r.try_get("id")?,
        sha256: r.try_get("sha256")?,
        kind: EvidenceKind::parse(&kind).ok_or_else(|| corrupt(format!("evidence kind {kind}")))?,
        media_type: MediaType::parse(&media)
            .ok_or_else(|| corrupt(format!("evidence type {media}")))?,
        bytes: r.try_get("bytes")?,
        width: dim("width")?,
        height: dim("height")?,
        file_name: r.try_get("file_name")?,
        owner_role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
        owner_subject: r.try_get("owner_subject")?,
        uploaded_by: r.try_get("uploaded_by")?,
        uploaded_at: from_millis(r.try_get("uploaded_at")?),
        facts: PhotoFacts {
            point,
            taken: r
                .try_get::<Option<String>, _>("taken_at")?
                .as_deref()
                .and_then(TakenAt::parse_stored),
        },
        has_thumbnail: r.try_get("has_thumbnail")?,
    })
}

/// Binds evidence ids (as many as a statement takes, beside a few other parameters) and
/// closes the `IN (` list.
fn push_id_list(q: &mut QueryBuilder<Db>, ids: &[String]) {
    let mut list = q.separated(", ");
    for id in ids.iter().take(MAX_PARAMS - 1) {
        list.push_bind(id.clone());
    }
    q.push(")");
}

#[async_trait]
impl EvidenceStore for This {
    async fn insert_evidence(&self, e: &EvidenceRecord) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO evidence (id, sha256, kind, media_type, bytes, width, height, \
             file_name, owner_role, owner_subject, uploaded_by, uploaded_at, lon, lat, \
             taken_at, has_thumbnail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(&e.id)
        .bind(&e.sha256)
        .bind(e.kind.as_str())
        .bind(e.media_type.as_str())
        .bind(e.bytes)
        .bind(e.width.map(i64::from))
        .bind(e.height.map(i64::from))
        .bind(&e.file_name)
        .bind(e.owner_role.as_str())
        .bind(e.owner_subject)
        .bind(&e.uploaded_by)
        .bind(ms(e.uploaded_at))
        .bind(e.facts.point.map(|p| p.lon()))
        .bind(e.facts.point.map(|p| p.lat()))
        .bind(e.facts.taken.map(|t| t.stored()))
        .bind(e.has_thumbnail)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn evidence(&self, ids: &[String]) -> Result<Vec<EvidenceRecord>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {EVIDENCE_COLUMNS} FROM evidence WHERE id IN ("
        ));
        push_id_list(&mut q, ids);
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(evidence_row)
            .collect()
    }

    async fn evidence_on_unit(
        &self,
        ids: &[String],
        unit: UnitId,
    ) -> Result<Vec<(EvidenceRecord, bool)>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Db>::new(format!(
            "SELECT {EVIDENCE_COLUMNS}, EXISTS (SELECT 1 FROM evidence_units u \
             WHERE u.evidence_id = evidence.id AND u.unit_id = "
        ));
        q.push_bind(unit.0);
        q.push(") AS linked FROM evidence WHERE id IN (");
        push_id_list(&mut q, ids);
        q.build()
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| Ok((evidence_row(r)?, r.try_get::<bool, _>("linked")?)))
            .collect()
    }

    async fn discard_evidence(
        &self,
        ids: &[String],
        (role, subject): (Role, i64),
    ) -> Result<Vec<String>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = begin_write(self.writer()).await?;
        let mut q = QueryBuilder::<Db>::new("DELETE FROM evidence WHERE owner_role = ");
        q.push_bind(role.as_str())
            .push(" AND owner_subject = ")
            .push_bind(subject)
            .push(" AND NOT EXISTS (SELECT 1 FROM evidence_units u WHERE u.evidence_id = evidence.id) AND id IN (");
        push_id_list(&mut q, ids);
        q.push(" RETURNING sha256");
        let digests: Vec<String> = q.build_query_scalar().fetch_all(&mut *tx).await?;
        let mut unused = Vec::new();
        for d in digests {
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM evidence WHERE sha256 = $1")
                .bind(&d)
                .fetch_one(&mut *tx)
                .await?;
            if left == 0 && !unused.contains(&d) {
                unused.push(d);
            }
        }
        tx.commit().await?;
        Ok(unused)
    }

    async fn evidence_units(&self, id: &str) -> Result<Vec<UnitId>, Error> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT unit_id FROM evidence_units WHERE evidence_id = $1 ORDER BY unit_id",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(UnitId)
        .collect())
    }
}

/// Links uploads to the unit whose cases now reference them, in the transaction that
/// writes the references (an inspection's), so that a refused write links nothing.
pub(super) async fn link_evidence(
    tx: &mut Tx<'_>,
    ids: &[String],
    unit: UnitId,
) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Db>::new("INSERT INTO evidence_units (evidence_id, unit_id) ");
    q.push_values(ids.iter().take(MAX_PARAMS / 2), |mut b, id| {
        b.push_bind(id.clone()).push_bind(unit.0);
    });
    q.push(" ON CONFLICT (evidence_id, unit_id) DO NOTHING");
    q.build().execute(&mut **tx).await?;
    Ok(())
}
