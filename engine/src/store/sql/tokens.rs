//! The SQL of API tokens, stored by digest.

use super::*;

#[async_trait]
impl TokenStore for This {
    async fn insert_token(
        &self,
        digest: &str,
        role: Role,
        subject: i64,
        label: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO api_tokens (digest, role, subject_id, label, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(digest)
        .bind(role.as_str())
        .bind(subject)
        .bind(label)
        .bind(ms(now))
        .bind(expires_at.map(ms))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, Error> {
        let row = sqlx::query(
            "SELECT t.role, t.subject_id, t.expires_at, g.generation \
             FROM api_tokens t, directory_generation g \
             WHERE t.digest = $1 AND t.revoked_at IS NULL AND g.id = 1",
        )
        .bind(digest)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| {
            let role: String = r.try_get("role")?;
            Ok(TokenRecord {
                role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
                subject: r.try_get("subject_id")?,
                directory_generation: r.try_get("generation")?,
                expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(from_millis),
            })
        })
        .transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenListing>, Error> {
        let rows = sqlx::query(
            "SELECT digest, role, subject_id, label, created_at, expires_at, revoked_at \
             FROM api_tokens ORDER BY created_at DESC, digest",
        )
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                let digest: String = r.try_get("digest")?;
                let at = |c: &str| -> Result<Option<DateTime<Utc>>, Error> {
                    Ok(r.try_get::<Option<i64>, _>(c)?.map(from_millis))
                };
                Ok(TokenListing {
                    id: digest.chars().take(12).collect(),
                    role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
                    subject: r.try_get("subject_id")?,
                    label: r.try_get("label")?,
                    created_at: from_millis(r.try_get("created_at")?),
                    expires_at: at("expires_at")?,
                    revoked_at: at("revoked_at")?,
                })
            })
            .collect()
    }

    async fn revoke_tokens(&self, id: &str, now: DateTime<Utc>) -> Result<u64, Error> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 \
             WHERE revoked_at IS NULL AND substr(digest, 1, length($1)) = $1",
        )
        .bind(id)
        .bind(ms(now))
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }
}
