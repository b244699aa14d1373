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
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO api_tokens (digest, role, subject_id, label, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest)
        .bind(role.as_str())
        .bind(subject)
        .bind(label)
        .bind(ms(now))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, Error> {
        let row = sqlx::query(
            "SELECT t.role, t.subject_id, g.generation FROM api_tokens t, directory_generation g \
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
            })
        })
        .transpose()
    }
}
