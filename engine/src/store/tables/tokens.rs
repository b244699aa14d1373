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

    /// Writes a sign-in code's digest for `address` asked for by `client`, counted
    /// under a lock (one request at a time, in every process), unless since
    /// `window_start` this client asked for `limits.0` codes for the address, or the
    /// address was sent `limits.1` codes in all, or the client asked for `limits.2`.
    async fn issue_code(
        &self,
        address: &str,
        digest: &str,
        client: &str,
        limits: (i64, i64, i64),
        window_start: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<CodeRequest, Error>;

    /// The codes of `address` that are neither used nor expired at `now`, newest first:
    /// any of them signs in (a stranger's request does not void the person's code).
    async fn live_codes(&self, address: &str, now: DateTime<Utc>)
    -> Result<Vec<SigninCode>, Error>;

    /// Wrong tries at `address` by `client` since `since`.
    async fn wrong_tries(
        &self,
        address: &str,
        client: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, Error>;

    /// Counts a wrong try by `client` at the address's live codes `ids`: each is spent
    /// once `max_total` wrong tries were made at it, from everyone.
    async fn wrong_code(
        &self,
        address: &str,
        client: &str,
        ids: &[i64],
        max_total: i64,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// Uses a code; `false` if it was used (or spent) meanwhile.
    async fn spend_code(&self, id: i64, now: DateTime<Utc>) -> Result<bool, Error>;
}
