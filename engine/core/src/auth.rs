//! Who is calling and what they may see: principals, their jurisdiction, and API tokens.

use std::collections::BTreeSet;

use rand::TryRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{DepartmentId, GridId, PartyId, Role, StreetId};

/// The part of the registry a caller may see and act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Scope {
    /// A city-level supervisor sees everything.
    City,
    /// A district supervisor: the district's GB/T 2260 code.
    District(String),
    /// A street (town) supervisor.
    Street(StreetId),
    /// An inspector: the grids they cover.
    Grids(BTreeSet<GridId>),
    /// A landlord, agent or sub-landlord: cases of units they answer for.
    Party(PartyId),
    /// A department officer: referrals sent to the department.
    Department(DepartmentId),
    /// The engine itself.
    System,
}

/// An authenticated caller: role, subject id and resolved scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub role: Role,
    pub subject: i64,
    pub scope: Scope,
    /// The person acting, when they signed in with their own account (an officer for
    /// their department, an agent for a landlord); `None` for a token an operator made
    /// for an office or party, and for the system.
    pub account: Option<i64>,
}

/// Where a case or unit sits, for jurisdiction checks.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    pub district_code: &'a str,
    /// `None` for a place outside every grid (and, then, possibly every street).
    pub street_id: Option<StreetId>,
    pub grid_id: Option<GridId>,
    pub party_id: Option<PartyId>,
    pub department_id: Option<DepartmentId>,
}

impl Principal {
    pub fn system() -> Principal {
        Principal {
            role: Role::System,
            subject: 0,
            scope: Scope::System,
            account: None,
        }
    }

    /// Whether the caller may act on something at `place`. A department may act only on
    /// the case currently referred to it.
    pub fn covers(&self, place: Place<'_>) -> bool {
        match &self.scope {
            Scope::City | Scope::System => true,
            Scope::District(code) => place.district_code == code,
            Scope::Street(id) => place.street_id == Some(*id),
            Scope::Grids(grids) => place.grid_id.is_some_and(|g| grids.contains(&g)),
            Scope::Party(id) => place.party_id == Some(*id),
            Scope::Department(id) => place.department_id == Some(*id),
        }
    }

    /// How the history names who acted: the subject (`7`), and the person's account
    /// where they signed in as themselves (`7/account:31`: an officer of department 7),
    /// so that an act is recorded as a person's, not only an office's.
    pub fn actor_id(&self) -> String {
        match self.account {
            Some(account) => format!("{}/account:{account}", self.subject),
            None => self.subject.to_string(),
        }
    }
}

/// A freshly made API token: the secret to hand to the caller once, and the digest the
/// database keeps. The secret itself is never stored.
#[derive(Debug)]
pub struct NewToken {
    pub secret: String,
    pub digest: String,
}

/// Makes a new random token (256 bits from the operating system).
pub fn new_token() -> NewToken {
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system provides randomness");
    let secret = format!("anju_{}", hex::encode(bytes));
    let digest = token_digest(&secret);
    NewToken { secret, digest }
}

/// The digest under which a token is stored and looked up.
pub fn token_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(party: Option<i64>, dept: Option<i64>) -> Place<'static> {
        Place {
            district_code: "440106",
            street_id: Some(StreetId(7)),
            grid_id: Some(GridId(70)),
            party_id: party.map(PartyId),
            department_id: dept.map(DepartmentId),
        }
    }

    #[test]
    fn scopes_cover_what_they_should() {
        let p = |scope| Principal {
            role: Role::Supervisor,
            subject: 1,
            scope,
            account: None,
        };
        let here = place(Some(5), Some(9));
        assert!(p(Scope::City).covers(here));
        assert!(p(Scope::District("440106".into())).covers(here));
        assert!(!p(Scope::District("440104".into())).covers(here));
        assert!(p(Scope::Street(StreetId(7))).covers(here));
        assert!(!p(Scope::Street(StreetId(8))).covers(here));
        assert!(p(Scope::Grids([GridId(70)].into())).covers(here));
        assert!(!p(Scope::Grids([GridId(71)].into())).covers(here));
        assert!(p(Scope::Party(PartyId(5))).covers(here));
        assert!(!p(Scope::Party(PartyId(6))).covers(here));
        assert!(!p(Scope::Party(PartyId(6))).covers(place(None, None)));
        assert!(p(Scope::Department(DepartmentId(9))).covers(here));
        assert!(!p(Scope::Department(DepartmentId(9))).covers(place(Some(5), None)));
    }

    #[test]
    fn tokens_are_random_and_only_their_digest_is_kept() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a.secret, b.secret);
        assert_eq!(token_digest(&a.secret), a.digest);
        assert!(!a.digest.contains(&a.secret[5..]));
        assert_eq!(a.secret.len(), 5 + 64);
    }
}
