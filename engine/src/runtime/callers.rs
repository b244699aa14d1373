//! Callers: tokens authenticated to principals with their scope, tokens issued, and the one check that a case is visible to a caller.

use chrono::{DateTime, Utc};

use crate::auth::{Principal, Scope};
use crate::domain::{CaseId, DepartmentId, InspectorId, PartyId, Role, SupervisorId};
use crate::error::{Error, Result};
use crate::store::CaseRecord;

use super::Runtime;

/// How long a token seen is taken as it was before it is read again: the longest a
/// revoked token, or a changed directory, takes to reach a process.
pub const TOKEN_RECHECK: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// How many callers' scopes (and tokens) a process keeps; past it, the cache starts again.
const MAX_CACHED_PRINCIPALS: usize = 100_000;

impl Runtime {
    // ----- callers ----------------------------------------------------------------------

    /// Resolves a bearer token to a principal with its scope. `None` for unknown or
    /// revoked tokens, and for tokens whose subject no longer exists.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        let digest = crate::auth::token_digest(secret);
        let now = self.now();
        // A token seen in the last second is taken as it was: a revoked token (and a
        // changed directory) reaches every process within TOKEN_RECHECK.
        if let Some((checked, principal)) =
            self.shared.tokens.read().expect("tokens lock").get(&digest)
            && *checked <= now
            && now - *checked < TOKEN_RECHECK
        {
            return Ok(Some(principal.clone()));
        }
        // Otherwise the token is read again; the scope it resolves to is cached until
        // the directory's generation (read with the token) moves, which every import of
        // registry records does.
        let token = self
            .shared
            .store
            .token(&digest)
            .await?
            .filter(|t| t.expires_at.is_none_or(|at| now < at));
        let Some(token) = token else {
            self.shared
                .tokens
                .write()
                .expect("tokens lock")
                .remove(&digest);
            return Ok(None);
        };
        let key = (token.role, token.subject);
        let cached = self
            .shared
            .principals
            .read()
            .expect("principals lock")
            .get(&key)
            .filter(|(generation, _)| *generation == token.directory_generation)
            .map(|(_, p)| p.clone());
        let principal = match cached {
            Some(p) => Some(p),
            None => {
                let resolved = self.principal(token.role, token.subject).await?;
                if let Some(p) = &resolved {
                    let mut cache = self.shared.principals.write().expect("principals lock");
                    if cache.len() >= MAX_CACHED_PRINCIPALS {
                        cache.clear();
                    }
                    cache.insert(key, (token.directory_generation, p.clone()));
                }
                resolved
            }
        };
        // The person behind a session token acts in the office's scope, as themselves.
        let principal = principal.map(|mut p| {
            p.account = token.account;
            p
        });
        let mut tokens = self.shared.tokens.write().expect("tokens lock");
        match &principal {
            Some(p) => {
                if tokens.len() >= MAX_CACHED_PRINCIPALS {
                    tokens.clear();
                }
                tokens.insert(digest, (now, p.clone()));
            }
            None => {
                tokens.remove(&digest);
            }
        }
        Ok(principal)
    }

    /// The principal for a role and subject id, if the subject exists.
    pub async fn principal(&self, role: Role, subject: i64) -> Result<Option<Principal>> {
        let store = &self.shared.store;
        let scope = match role {
            Role::Inspector => match store.inspector_grids(InspectorId(subject)).await? {
                Some(grids) => Scope::Grids(grids),
                None => return Ok(None),
            },
            Role::Landlord => {
                if !store.party_exists(PartyId(subject)).await? {
                    return Ok(None);
                }
                Scope::Party(PartyId(subject))
            }
            Role::Department => {
                if !store.department_exists(DepartmentId(subject)).await? {
                    return Ok(None);
                }
                Scope::Department(DepartmentId(subject))
            }
            Role::Supervisor => match store.supervisor(SupervisorId(subject)).await? {
                Some(s) => match (s.level.as_str(), s.district_code, s.street_id) {
                    ("city", _, _) => Scope::City,
                    ("district", Some(code), _) => Scope::District(code),
                    ("street", _, Some(street)) => Scope::Street(street),
                    _ => return Ok(None),
                },
                None => return Ok(None),
            },
            Role::System => return Ok(None),
        };
        Ok(Some(Principal {
            role,
            subject,
            scope,
            account: None,
        }))
    }

    /// Makes an API token for an existing subject; returns the secret, shown once.
    pub async fn create_token(
        &self,
        role: Role,
        subject: i64,
        label: Option<&str>,
    ) -> Result<String> {
        self.create_token_until(role, subject, label, None).await
    }

    /// Makes an API token that stops working at `expires_at` (never if `None`).
    pub async fn create_token_until(
        &self,
        role: Role,
        subject: i64,
        label: Option<&str>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<String> {
        if expires_at.is_some_and(|at| at <= self.now()) {
            return Err(Error::invalid("expires_at", "in the future"));
        }
        if role == Role::System {
            return Err(Error::invalid(
                "role",
                "tokens are for people and departments",
            ));
        }
        if self.principal(role, subject).await?.is_none() {
            return Err(Error::not_found(
                match role {
                    Role::Inspector => "inspector",
                    Role::Landlord => "party",
                    Role::Department => "department",
                    _ => "supervisor",
                },
                subject,
            ));
        }
        let token = crate::auth::new_token();
        self.shared
            .store
            .insert_token(
                &token.digest,
                role,
                subject,
                label,
                expires_at,
                None,
                self.now(),
            )
            .await?;
        Ok(token.secret)
    }

    /// Every token, newest first (for `anju token list`: no secrets, the start of each
    /// digest as its id).
    pub async fn tokens(&self) -> Result<Vec<crate::store::TokenListing>> {
        Ok(self.shared.store.tokens().await?)
    }

    /// Revokes the token whose id (the start of its digest, at least 8 characters) is
    /// given; every process refuses it within `TOKEN_RECHECK`.
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        if id.len() < 8 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "id",
                "at least 8 hexadecimal characters of a token's id",
            ));
        }
        let listed = self.shared.store.tokens().await?;
        let matching = listed
            .iter()
            .filter(|t| t.id.starts_with(id) || id.starts_with(&t.id))
            .filter(|t| t.revoked_at.is_none())
            .count();
        match matching {
            0 => Err(Error::not_found("token", id)),
            1 => {
                self.shared.store.revoke_tokens(id, self.now()).await?;
                Ok(())
            }
            n => Err(Error::invalid(
                "id",
                format!("{n} tokens start with it; give more of it"),
            )),
        }
    }

    /// The case, if `principal` may see it; otherwise "not found".
    pub async fn visible_case(&self, principal: &Principal, id: CaseId) -> Result<CaseRecord> {
        let store = &self.shared.store;
        let record = store
            .case(id)
            .await?
            .ok_or_else(|| Error::not_found("case", id))?;
        // A department keeps seeing the cases once referred to it: its referrals are
        // read only for a department.
        let referred_to: Vec<_> = match &principal.scope {
            Scope::Department(_) => store
                .case_referrals(id)
                .await?
                .iter()
                .map(|r| r.department_id)
                .collect(),
            _ => Vec::new(),
        };
        let visible = crate::policy::reads_case(principal, record.snapshot.place(), &referred_to);
        if visible {
            Ok(record)
        } else {
            Err(Error::not_found("case", id))
        }
    }
}
