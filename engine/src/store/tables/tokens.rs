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
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, Error>;
}
