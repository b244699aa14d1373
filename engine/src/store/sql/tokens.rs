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
        account: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO api_tokens (digest, role, subject_id, label, created_at, expires_at, \
             account_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(digest)
        .bind(role.as_str())
        .bind(subject)
        .bind(label)
        .bind(ms(now))
        .bind(expires_at.map(ms))
        .bind(account)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, Error> {
        let row = sqlx::query(
            "SELECT t.role, t.subject_id, t.expires_at, t.account_id, g.generation \
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
                account: r.try_get("account_id")?,
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

    async fn accounts_at(&self, address: &str) -> Result<Vec<AccountRecord>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts \
             WHERE (email = $1 OR phone = $1) AND disabled_at IS NULL ORDER BY id"
        )))
        .bind(address)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    async fn account(&self, id: i64) -> Result<Option<AccountRecord>, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1 AND disabled_at IS NULL"
        )))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn set_preferences(
        &self,
        id: i64,
        channels: Option<&[String]>,
        digest: bool,
    ) -> Result<(), Error> {
        sqlx::query("UPDATE accounts SET channels = $2, digest = $3 WHERE id = $1")
            .bind(id)
            .bind(channels.map(|c| c.join(",")))
            .bind(digest)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn issue_code(
        &self,
        address: &str,
        digest: &str,
        client: &str,
        (per_requester, per_address, per_client): (i64, i64, i64),
        window_start: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<CodeRequest, Error> {
        let mut tx = begin_write(self.writer()).await?;
        // One request at a time: two processes (or two connections) cannot both count
        // below the limit and both issue a code.
        lock_named(&mut tx, "signin codes").await?;
        let counts: (i64, i64, i64) = sqlx::query_as(
            "SELECT \
             (SELECT count(*) FROM signin_codes WHERE address = $1 AND client = $2 AND created_at >= $3), \
             (SELECT count(*) FROM signin_codes WHERE address = $1 AND created_at >= $3), \
             (SELECT count(*) FROM signin_codes WHERE client = $2 AND created_at >= $3)",
        )
        .bind(address)
        .bind(client)
        .bind(ms(window_start))
        .fetch_one(&mut *tx)
        .await?;
        if counts.0 >= per_requester {
            return Ok(CodeRequest::RequesterLimited);
        }
        if counts.1 >= per_address {
            return Ok(CodeRequest::AddressLimited);
        }
        if counts.2 >= per_client {
            return Ok(CodeRequest::ClientLimited);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO signin_codes (address, digest, client, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(address)
        .bind(digest)
        .bind(client)
        .bind(ms(now))
        .bind(ms(expires_at))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CodeRequest::Issued(id))
    }

    async fn live_codes(
        &self,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<SigninCode>, Error> {
        let rows = sqlx::query(
            "SELECT id, digest, failures FROM signin_codes \
             WHERE address = $1 AND used_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id DESC LIMIT 50",
        )
        .bind(address)
        .bind(ms(now))
        .fetch_all(self.writer())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SigninCode {
                    id: r.try_get("id")?,
                    digest: r.try_get("digest")?,
                    failures: r.try_get("failures")?,
                })
            })
            .collect()
    }

    async fn wrong_tries(
        &self,
        address: &str,
        client: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, Error> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM signin_failures WHERE address = $1 AND client = $2 AND at >= $3",
        )
        .bind(address)
        .bind(client)
        .bind(ms(since))
        .fetch_one(self.writer())
        .await?)
    }

    async fn wrong_code(
        &self,
        address: &str,
        client: &str,
        ids: &[i64],
        max_total: i64,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = begin_write(self.writer()).await?;
        sqlx::query("INSERT INTO signin_failures (address, client, at) VALUES ($1, $2, $3)")
            .bind(address)
            .bind(client)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        for id in ids {
            sqlx::query(
                "UPDATE signin_codes SET failures = failures + 1, \
                 used_at = CASE WHEN failures + 1 >= $2 THEN $3 ELSE used_at END \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(max_total)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn spend_code(&self, id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
        let done =
            sqlx::query("UPDATE signin_codes SET used_at = $2 WHERE id = $1 AND used_at IS NULL")
                .bind(id)
                .bind(ms(now))
                .execute(self.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

const ACCOUNT_COLUMNS: &str = "id, name, role, subject_id, email, phone, channels, digest";

fn account_from_row(r: &Row) -> Result<AccountRecord, Error> {
    let role: String = r.try_get("role")?;
    let channels: Option<String> = r.try_get("channels")?;
    Ok(AccountRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| corrupt(format!("role {role}")))?,
        subject: r.try_get("subject_id")?,
        email: r.try_get("email")?,
        phone: r.try_get("phone")?,
        channels: channels.map(|c| {
            c.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        }),
        digest: r.try_get("digest")?,
    })
}
