//! API tokens, stored by digest.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::Role;
use crate::model::*;
use crate::store::Error;

/// API tokens, stored by digest.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    // ----- tokens ---------------------------------------------------------------------

    async fn insert_token(
        &self,
        digest: &str,
        role: Role,
        subject: i64,
        label: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// A token that is not revoked (expired or not: the caller judges by its clock).
    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, Error>;

    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<TokenListing>, Error>;

    /// Revokes the tokens whose digest starts with `id` and are not revoked yet; how
    /// many.
    async fn revoke_tokens(&self, id: &str, now: DateTime<Utc>) -> Result<u64, Error>;
}
