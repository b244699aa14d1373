//! Callers: tokens authenticated to principals with their scope, tokens issued, and the one check that a case is visible to a caller.

use crate::auth::{Principal, Scope};
use crate::domain::{CaseId, DepartmentId, InspectorId, PartyId, Role, SupervisorId};
use crate::error::{Error, Result};
use crate::store::CaseRecord;

use super::Runtime;

/// How many callers' scopes a process keeps; past it, the cache starts again.
const MAX_CACHED_PRINCIPALS: usize = 100_000;

impl Runtime {
    // ----- callers ----------------------------------------------------------------------

    /// Resolves a bearer token to a principal with its scope. `None` for unknown or
    /// revoked tokens, and for tokens whose subject no longer exists.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>> {
        let digest = crate::auth::token_digest(secret);
        // The token is read on every request, so that a revoked token stops working at
        // once in every process; the scope it resolves to is cached until the
        // directory's generation (read with the token) moves, which every import of
        // registry records does.
        let Some(token) = self.shared.store.token(&digest).await? else {
            return Ok(None);
        };
        let key = (token.role, token.subject);
        if let Some((generation, principal)) = self
            .shared
            .principals
            .read()
            .expect("principals lock")
            .get(&key)
            && *generation == token.directory_generation
        {
            return Ok(Some(principal.clone()));
        }
        let principal = self.principal(token.role, token.subject).await?;
        if let Some(p) = &principal {
            let mut cache = self.shared.principals.write().expect("principals lock");
            if cache.len() >= MAX_CACHED_PRINCIPALS {
                cache.clear();
            }
            cache.insert(key, (token.directory_generation, p.clone()));
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
        }))
    }

    /// Makes an API token for an existing subject; returns the secret, shown once.
    pub async fn create_token(
        &self,
        role: Role,
        subject: i64,
        label: Option<&str>,
    ) -> Result<String> {
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
            .insert_token(&token.digest, role, subject, label, self.now())
            .await?;
        Ok(token.secret)
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
