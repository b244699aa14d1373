//! Parties (landlords, agents, sub-landlords), their units and records, the blacklist, responsibility agreements and insurance policies.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::Scope;
use crate::domain::{PartyId, UnitId};
use crate::model::*;
use crate::store::Error;

/// Parties (landlords, agents, sub-landlords), their units and records, the blacklist,
/// responsibility agreements and insurance policies.
#[async_trait]
pub trait PartyStore: Send + Sync + 'static {
    async fn party_exists(&self, id: PartyId) -> Result<bool, Error>;

    /// The kind of a party (`landlord`, `agent`, `sublandlord`), if it exists.
    async fn party_kind(&self, id: PartyId) -> Result<Option<String>, Error>;

    /// Registers a party (a landlord, an agent or a sub-landlord).
    async fn add_party(
        &self,
        kind: &str,
        name: &str,
        phone: Option<&str>,
        email: Option<&str>,
        now: DateTime<Utc>,
    ) -> crate::Result<PartyId>;

    /// Registered parties with units in `scope` (all, city-wide), by id after `after`.
    async fn parties(
        &self,
        kind: Option<&str>,
        scope: &Scope,
        after: PartyId,
        limit: u32,
    ) -> Result<Vec<PartyListing>, Error>;

    /// Hands a unit to another responsible party (or to nobody): the current entry of
    /// its responsibility history is closed and a new one opened, in one transaction.
    /// Cases already opened stay attributed to the party responsible when they were
    /// found.
    async fn set_unit_party(
        &self,
        unit: UnitId,
        party: Option<(PartyId, String)>,
        now: DateTime<Utc>,
    ) -> Result<(), Error>;

    /// Who answered for a unit, and when, oldest first.
    async fn unit_parties(&self, unit: UnitId) -> Result<Vec<UnitPartyRecord>, Error>;

    /// Every party with cases (or only `only`): cases by severity, and the orders that
    /// went overdue, the referrals and the enforcement results since `since`; whether a
    /// blacklisting is in force at `now`.
    async fn party_records(
        &self,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
        only: Option<PartyId>,
    ) -> Result<Vec<PartyRecord>, Error>;

    /// Proposes a party for the blacklist (by a person); a conflict if an entry is open.
    async fn propose_blacklist(
        &self,
        party: PartyId,
        reason: &str,
        source: &str,
        district_code: &str,
        at: DateTime<Utc>,
    ) -> crate::Result<i64>;

    /// Blacklist entries, newest first: of one party, or within `scope` (by district),
    /// in a status as it reads at `now` (`active` is in force, `expired` is an active
    /// entry past its end).
    async fn blacklist(
        &self,
        party: Option<PartyId>,
        scope: &Scope,
        status: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<BlacklistEntry>, Error>;

    async fn blacklist_entry(&self, id: i64) -> Result<Option<BlacklistEntry>, Error>;

    /// Applies a change if the entry is in a status it applies from; `false` otherwise.
    async fn change_blacklist(
        &self,
        id: i64,
        change: &BlacklistChange,
        at: DateTime<Utc>,
    ) -> Result<bool, Error>;

    /// Approved, published entries in force at `now` (the public list).
    async fn published_blacklist(&self, now: DateTime<Utc>) -> Result<Vec<BlacklistEntry>, Error>;

    async fn add_agreement(&self, a: &Agreement) -> crate::Result<i64>;

    /// Signs a demo agreement (this year and next) for every unit with a party except
    /// every `gap`-th; returns how many.
    async fn seed_agreements(&self, gap: i64, at: DateTime<Utc>) -> Result<u64, Error>;

    async fn agreements(&self, unit: UnitId) -> Result<Vec<Agreement>, Error>;

    async fn add_policy(&self, p: &InsurancePolicy) -> crate::Result<i64>;

    async fn policies(&self, unit: UnitId) -> Result<Vec<InsurancePolicy>, Error>;

    /// The units a party currently answers for (at most 5,000), by id.
    async fn party_units(&self, party: PartyId) -> Result<Vec<PartyUnit>, Error>;
}
