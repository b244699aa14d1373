//! Who calls: people's accounts, sign-in codes, and API tokens stored by digest.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::Role;
use crate::model::*;
use crate::store::Error;

/// Who calls: people's accounts, sign-in codes, and API tokens stored by digest.
#[allow(clippy::too_many_arguments)]
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
        account: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// A token that is not revoked (expired or not: the caller judges by its clock).
    async fn token(&self, digest: &str) -> Result<Option<TokenRecord>, Error>;

    /// Every token, newest first.
    async fn tokens(&self) -> Result<Vec<TokenListing>, Error>;

    /// Revokes the tokens whose digest starts with `id` and are not revoked yet; how
    /// many.
    async fn revoke_tokens(&self, id: &str, now: DateTime<Utc>) -> Result<u64, Error>;

    // ----- accounts and sign-in codes -------------------------------------------------

    /// The accounts (not disabled) whose e-mail address or phone is `address` (in
    /// normal form), by id.
    async fn accounts_at(&self, address: &str) -> Result<Vec<AccountRecord>, Error>;

    async fn account(&self, id: i64) -> Result<Option<AccountRecord>, Error>;

    /// Sets how a person wants to be told.
    async fn set_preferences(
        &self,
        id: i64,
        channels: Option<&[String]>,
        digest: bool,
    ) -> Result<(), Error>;

    /// Writes a sign-in code's digest for `address`, unless the address or the client
    /// has had `per_address` or `per_client` codes since `window_start`.
    async fn issue_code(
        &self,
        address: &str,
        digest: &str,
        client: &str,
        limits: (i64, i64),
        window_start: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<CodeRequest, Error>;

    /// The newest code of `address` that is neither used nor expired at `now`.
    async fn live_code(
        &self,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SigninCode>, Error>;

    /// Counts a wrong try at a code; spent after `max` wrong tries. The count after it.
    async fn wrong_code(&self, id: i64, max: i64, now: DateTime<Utc>) -> Result<i64, Error>;

    /// Uses a code; `false` if it was used (or spent) meanwhile.
    async fn spend_code(&self, id: i64, now: DateTime<Utc>) -> Result<bool, Error>;
}
