//! Landlords' responsibility (压实主体责任): the register of landlords, agents and sub-landlords, a party's record and score, the blacklist with its proposals, approvals, appeals and expiry, the public list of named parties, responsibility agreements and rental-insurance policies.

use chrono::{DateTime, Months, NaiveDate, Utc};

use crate::auth::{Principal, Scope};
use crate::domain::{PartyId, Role, UnitId};
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::store::{
    Agreement, BlacklistChange, BlacklistEntry, InsurancePolicy, PartyListing, PartyRecord,
    PartyUnit,
};
use crate::text;

/// Points a party loses per case, by severity, per overdue order, per referral, per
/// enforcement result, and while blacklisted. A party starts at 100; the score is not
/// below 0.
const LOSS_PER_CASE: [(&str, u32); 3] = [("general", 2), ("major", 5), ("critical", 10)];
const LOSS_PER_OVERDUE: u32 = 5;
const LOSS_PER_REFERRAL: u32 = 5;
const LOSS_PER_RESULT: u32 = 5;
const LOSS_BLACKLISTED: u32 = 30;

/// A party's responsibility score from its record: 100 is a clean record.
pub fn score(record: &PartyRecord) -> u32 {
    let mut loss: u64 = 0;
    for (severity, n) in &record.cases_by_severity {
        let per = LOSS_PER_CASE
            .iter()
            .find(|(s, _)| s == severity)
            .map_or(2, |(_, p)| *p);
        loss += u64::from(per) * (*n).max(0) as u64;
    }
    loss += u64::from(LOSS_PER_OVERDUE) * record.overdue_since.max(0) as u64;
    loss += u64::from(LOSS_PER_REFERRAL) * record.referrals_since.max(0) as u64;
    loss += u64::from(LOSS_PER_RESULT) * record.results_since.max(0) as u64;
    if record.blacklisted {
        loss += u64::from(LOSS_BLACKLISTED);
    }
    100u64.saturating_sub(loss) as u32
}

/// Whether one of `agreements`, signed by `party`, covers `today`.
pub fn agreement_in_force(agreements: &[Agreement], party: PartyId, today: NaiveDate) -> bool {
    agreements
        .iter()
        .any(|a| a.party_id == party && a.signed_on <= today && today <= a.expires_on)
}

/// How an entry reads at `now`: an active entry past its expiry has expired.
pub fn effective_status(entry: &BlacklistEntry, now: DateTime<Utc>) -> &str {
    match entry.expires_at {
        Some(end) if end <= now && entry.status == "active" => "expired",
        _ => entry.status.as_str(),
    }
}

/// A party's record as the API shows it.
#[derive(Debug, Clone)]
pub struct PartyView {
    pub party_id: PartyId,
    pub kind: String,
    pub cases_by_severity: std::collections::BTreeMap<String, i64>,
    pub overdue_12m: i64,
    pub referrals_12m: i64,
    pub results_12m: i64,
    pub blacklisted: bool,
    pub score: u32,
    pub blacklist: Vec<BlacklistEntry>,
}

/// A supervisor's decision on a proposal.
#[derive(Debug, Clone)]
pub enum Decision {
    Approve {
        note: String,
        months: u32,
        publish: bool,
    },
    Reject {
        note: String,
    },
}

impl Runtime {
    /// Whether `principal` may see `party`: the party itself; a supervisor if one of the
    /// party's units is in their jurisdiction (a city supervisor always).
    async fn may_see_party(&self, principal: &Principal, party: PartyId) -> Result<Vec<PartyUnit>> {
        let units = self.store().party_units(party).await?;
        let allowed = match (&principal.role, &principal.scope) {
            (Role::Landlord, Scope::Party(p)) => *p == party,
            (Role::Supervisor, Scope::City) | (Role::System, _) => true,
            (Role::Supervisor, _) => units.iter().any(|u| principal.covers(u.unit.place())),
            _ => false,
        };
        if allowed {
            Ok(units)
        } else if principal.role == Role::Supervisor || principal.role == Role::Landlord {
            Err(Error::not_found("party", party))
        } else {
            Err(Error::Forbidden(
                "parties' records are for supervisors and the party itself".into(),
            ))
        }
    }

    /// Registers a landlord, agent or sub-landlord (二房东登记); inspectors and
    /// supervisors. The party then answers for units handed to it.
    pub async fn register_party(
        &self,
        principal: &Principal,
        kind: &str,
        name: &str,
        phone: Option<&str>,
        email: Option<&str>,
    ) -> Result<PartyListing> {
        crate::policy::check(principal, crate::policy::Act::RegisterParty)?;
        crate::registry::check_party_kind("kind", kind)?;
        let name = text::required("name", name, 100)?;
        let phone = phone.map(|p| text::phone("phone", p)).transpose()?;
        let email = email.map(|e| text::email("email", e)).transpose()?;
        let id = self
            .store()
            .add_party(kind, name, phone, email, self.now())
            .await?;
        Ok(PartyListing {
            id,
            kind: kind.to_string(),
            name: name.to_string(),
            phone: phone.map(str::to_string),
            units: 0,
        })
    }

    /// The register of parties with units in the caller's jurisdiction (supervisors).
    pub async fn parties(
        &self,
        principal: &Principal,
        kind: Option<&str>,
        after: PartyId,
        limit: u32,
    ) -> Result<Vec<PartyListing>> {
        crate::policy::check(principal, crate::policy::Act::ListParties)?;
        if let Some(k) = kind {
            crate::registry::check_party_kind("kind", k)?;
        }
        Ok(self
            .store()
            .parties(kind, &principal.scope, after, limit.clamp(1, 1000))
            .await?)
    }

    /// A party's record over the last 12 months, its score and its blacklist entries.
    pub async fn party_view(&self, principal: &Principal, party: PartyId) -> Result<PartyView> {
        self.may_see_party(principal, party).await?;
        let record = self
            .party_record(party)
            .await?
            .unwrap_or_else(|| PartyRecord::empty(party, String::new()));
        let blacklist = self.blacklist_of(Some(party), &Scope::System, None).await?;
        Ok(PartyView {
            party_id: party,
            kind: record.kind.clone(),
            score: score(&record),
            cases_by_severity: record.cases_by_severity,
            overdue_12m: record.overdue_since,
            referrals_12m: record.referrals_since,
            results_12m: record.results_since,
            blacklisted: record.blacklisted,
            blacklist,
        })
    }

    async fn blacklist_of(
        &self,
        party: Option<PartyId>,
        scope: &Scope,
        status: Option<&str>,
    ) -> Result<Vec<BlacklistEntry>> {
        let now = self.now();
        let mut entries = self.store().blacklist(party, scope, status, now).await?;
        for e in &mut entries {
            e.status = effective_status(e, now).to_string();
        }
        Ok(entries)
    }

    /// Whether a blacklisting of the party is in force (approved or under appeal, not
    /// expired).
    pub async fn is_blacklisted(&self, party: PartyId) -> Result<bool> {
        Ok(self
            .blacklist_of(Some(party), &Scope::System, None)
            .await?
            .iter()
            .any(|e| matches!(e.status.as_str(), "active" | "appealed")))
    }

    /// Blacklist entries: a supervisor's jurisdiction (by district), or a party's own.
    pub async fn blacklist(
        &self,
        principal: &Principal,
        status: Option<&str>,
    ) -> Result<Vec<BlacklistEntry>> {
        const STATUSES: [&str; 6] = [
            "proposed", "active", "appealed", "rejected", "lifted", "expired",
        ];
        if let Some(s) = status
            && !STATUSES.contains(&s)
        {
            return Err(Error::invalid(
                "status",
                format!("one of {}", STATUSES.join(", ")),
            ));
        }
        let scope = match (&principal.role, &principal.scope) {
            (Role::Supervisor, Scope::Street(_)) => {
                return Err(Error::Forbidden(
                    "the blacklist is kept by district and city supervisors".into(),
                ));
            }
            (Role::Supervisor | Role::Landlord, scope) => scope.clone(),
            _ => {
                return Err(Error::Forbidden(
                    "the blacklist is for supervisors and the parties on it".into(),
                ));
            }
        };
        self.blacklist_of(None, &scope, status).await
    }

    /// An entry the principal may act on as a supervisor (city, or the entry's district).
    async fn entry_for_supervisor(&self, principal: &Principal, id: i64) -> Result<BlacklistEntry> {
        let entry = self
            .store()
            .blacklist_entry(id)
            .await?
            .ok_or_else(|| Error::not_found("blacklist entry", id))?;
        match (&principal.role, &principal.scope) {
            (Role::Supervisor, Scope::City) => Ok(entry),
            (Role::Supervisor, Scope::District(code)) if *code == entry.district_code => Ok(entry),
            (Role::Supervisor, Scope::District(_)) => Err(Error::not_found("blacklist entry", id)),
            _ => Err(Error::Forbidden(
                "blacklist decisions are for district and city supervisors".into(),
            )),
        }
    }

    /// A supervisor proposes a party for the blacklist.
    pub async fn propose_blacklist(
        &self,
        principal: &Principal,
        party: PartyId,
        reason: &str,
    ) -> Result<BlacklistEntry> {
        let reason = text::required("reason", reason, 2000)?;
        crate::policy::check(principal, crate::policy::Act::ProposeBlacklist)?;
        let units = self.may_see_party(principal, party).await?;
        let district = match &principal.scope {
            Scope::District(code) => code.clone(),
            _ => units
                .iter()
                .find(|u| principal.covers(u.unit.place()))
                .map(|u| u.unit.district_code.clone())
                .ok_or_else(|| Error::invalid("party_id", "the party answers for no unit"))?,
        };
        let id = self
            .store()
            .propose_blacklist(
                party,
                reason,
                &format!("supervisor:{}", principal.subject),
                &district,
                self.now(),
            )
            .await?;
        self.blacklist_entry_now(id).await
    }

    async fn blacklist_entry_now(&self, id: i64) -> Result<BlacklistEntry> {
        let mut entry = self
            .store()
            .blacklist_entry(id)
            .await?
            .ok_or_else(|| Error::not_found("blacklist entry", id))?;
        entry.status = effective_status(&entry, self.now()).to_string();
        Ok(entry)
    }

    /// Applies a change to an entry, or says why it does not apply.
    async fn change_entry(
        &self,
        entry: &BlacklistEntry,
        change: BlacklistChange,
    ) -> Result<BlacklistEntry> {
        if !self
            .store()
            .change_blacklist(entry.id, &change, self.now())
            .await?
        {
            return Err(Error::Conflict(format!(
                "blacklist entry {} is {}; that cannot be done now",
                entry.id,
                effective_status(entry, self.now())
            )));
        }
        self.blacklist_entry_now(entry.id).await
    }

    /// A supervisor approves (for `months`, named publicly or not) or rejects a proposal.
    pub async fn decide_blacklist(
        &self,
        principal: &Principal,
        id: i64,
        decision: Decision,
    ) -> Result<BlacklistEntry> {
        let entry = self.entry_for_supervisor(principal, id).await?;
        let by = format!("supervisor:{}", principal.subject);
        let change = match decision {
            Decision::Approve {
                note,
                months,
                publish,
            } => {
                if !(1..=60).contains(&months) {
                    return Err(Error::invalid("months", "from 1 to 60"));
                }
                BlacklistChange::Approve {
                    by,
                    note: text::optional("note", &note, 2000)?.to_string(),
                    expires_at: self.now() + Months::new(months),
                    publish,
                }
            }
            Decision::Reject { note } => BlacklistChange::Reject {
                by,
                note: text::required("note", &note, 2000)?.to_string(),
            },
        };
        self.change_entry(&entry, change).await
    }

    /// The party appeals an active blacklisting (once).
    pub async fn appeal_blacklist(
        &self,
        principal: &Principal,
        id: i64,
        text: &str,
    ) -> Result<BlacklistEntry> {
        let text = text::required("appeal", text, 4000)?;
        let entry = self
            .store()
            .blacklist_entry(id)
            .await?
            .filter(|e| principal.scope == Scope::Party(e.party_id))
            .ok_or_else(|| Error::not_found("blacklist entry", id))?;
        self.change_entry(
            &entry,
            BlacklistChange::Appeal {
                text: text.to_string(),
            },
        )
        .await
    }

    /// A supervisor decides an appeal: upheld keeps the entry in force, granted lifts it.
    pub async fn decide_appeal(
        &self,
        principal: &Principal,
        id: i64,
        upheld: bool,
        note: &str,
    ) -> Result<BlacklistEntry> {
        self.supervisor_change(principal, id, note, |by, note| {
            BlacklistChange::DecideAppeal { by, upheld, note }
        })
        .await
    }

    /// A supervisor lifts an entry in force.
    pub async fn lift_blacklist(
        &self,
        principal: &Principal,
        id: i64,
        note: &str,
    ) -> Result<BlacklistEntry> {
        self.supervisor_change(principal, id, note, |by, note| BlacklistChange::Lift {
            by,
            note,
        })
        .await
    }

    /// A change a supervisor makes with a note (required), signed with their id.
    async fn supervisor_change(
        &self,
        principal: &Principal,
        id: i64,
        note: &str,
        change: impl FnOnce(String, String) -> BlacklistChange,
    ) -> Result<BlacklistEntry> {
        let note = text::required("note", note, 2000)?;
        let entry = self.entry_for_supervisor(principal, id).await?;
        let by = format!("supervisor:{}", principal.subject);
        self.change_entry(&entry, change(by, note.to_string()))
            .await
    }

    /// The public list of named parties (通报曝光): approved, published, in force.
    pub async fn named_parties(&self) -> Result<Vec<BlacklistEntry>> {
        Ok(self.store().published_blacklist(self.now()).await?)
    }

    /// Records a responsibility agreement for a unit (an inspector or supervisor who
    /// covers the unit). The signer is the unit's responsible party.
    pub async fn record_agreement(
        &self,
        principal: &Principal,
        unit: UnitId,
        signer: &str,
        signed_on: NaiveDate,
        expires_on: NaiveDate,
        document: Option<String>,
    ) -> Result<Agreement> {
        crate::policy::check(principal, crate::policy::Act::RecordAgreement)?;
        let found = self.unit(principal, unit).await?;
        let party = found
            .party_id
            .ok_or_else(|| Error::invalid("unit_id", "the unit has no responsible party"))?;
        let signer = text::required("signer", signer, 100)?;
        text::check_day("signed_on", signed_on)?;
        text::check_day("expires_on", expires_on)?;
        if expires_on <= signed_on {
            return Err(Error::invalid("expires_on", "must be after signed_on"));
        }
        if signed_on > self.today() {
            return Err(Error::invalid("signed_on", "cannot be in the future"));
        }
        if let Some(d) = &document {
            text::optional("document", d, 500)?;
        }
        let mut agreement = Agreement {
            id: 0,
            unit_id: unit,
            party_id: party,
            signer: signer.to_string(),
            signed_on,
            expires_on,
            document,
            recorded_by: format!("{}:{}", principal.role, principal.subject),
            recorded_at: self.now(),
        };
        agreement.id = self.store().add_agreement(&agreement).await?;
        Ok(agreement)
    }

    /// Records a rental-insurance policy of a unit (the unit's party, an inspector or a
    /// supervisor who covers it).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_policy(
        &self,
        principal: &Principal,
        unit: UnitId,
        insurer: &str,
        policy_no: &str,
        coverage_yuan: f64,
        starts_on: NaiveDate,
        ends_on: NaiveDate,
    ) -> Result<InsurancePolicy> {
        crate::policy::check(principal, crate::policy::Act::RecordPolicy)?;
        self.unit(principal, unit).await?;
        let insurer = text::required("insurer", insurer, 100)?;
        let policy_no = text::required("policy_no", policy_no, 64)?;
        if !(coverage_yuan.is_finite() && coverage_yuan > 0.0 && coverage_yuan <= 1e9) {
            return Err(Error::invalid(
                "coverage_yuan",
                "a positive amount up to 1,000,000,000",
            ));
        }
        text::check_day("starts_on", starts_on)?;
        text::check_day("ends_on", ends_on)?;
        if ends_on <= starts_on {
            return Err(Error::invalid("ends_on", "must be after starts_on"));
        }
        let mut policy = InsurancePolicy {
            id: 0,
            unit_id: unit,
            insurer: insurer.to_string(),
            policy_no: policy_no.to_string(),
            coverage_yuan,
            starts_on,
            ends_on,
            recorded_by: format!("{}:{}", principal.role, principal.subject),
            recorded_at: self.now(),
        };
        policy.id = self.store().add_policy(&policy).await?;
        Ok(policy)
    }

    /// A unit's agreements and policies, with whether each is valid today.
    pub async fn unit_responsibility(
        &self,
        principal: &Principal,
        unit: UnitId,
    ) -> Result<UnitResponsibility> {
        let found = self.unit(principal, unit).await?;
        let today = self.today();
        let agreements = self.store().agreements(unit).await?;
        let policies = self.store().policies(unit).await?;
        Ok(UnitResponsibility {
            unit_id: unit,
            party_id: found.party_id,
            agreement_valid: agreements.iter().any(|a| {
                Some(a.party_id) == found.party_id && a.signed_on <= today && today <= a.expires_on
            }),
            insured: policies
                .iter()
                .any(|p| p.starts_on <= today && today <= p.ends_on),
            agreements,
            policies,
        })
    }

    /// Today in China.
    pub fn today(&self) -> NaiveDate {
        self.now()
            .with_timezone(&crate::time::china_time())
            .date_naive()
    }
}

/// A unit's agreements and insurance.
#[derive(Debug, Clone)]
pub struct UnitResponsibility {
    pub unit_id: UnitId,
    pub party_id: Option<PartyId>,
    /// A signed agreement of the current party covers today.
    pub agreement_valid: bool,
    /// A policy covers today.
    pub insured: bool,
    pub agreements: Vec<Agreement>,
    pub policies: Vec<InsurancePolicy>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cases: &[(&str, i64)], overdue: i64, blacklisted: bool) -> PartyRecord {
        PartyRecord {
            cases_by_severity: cases.iter().map(|(s, n)| (s.to_string(), *n)).collect(),
            overdue_since: overdue,
            blacklisted,
            ..PartyRecord::empty(PartyId(1), "landlord".into())
        }
    }

    #[test]
    fn a_clean_record_scores_100_and_losses_add_up() {
        assert_eq!(score(&record(&[], 0, false)), 100);
        // 2 general (4) + 1 critical (10) + 2 overdue (10) = 24.
        assert_eq!(
            score(&record(&[("general", 2), ("critical", 1)], 2, false)),
            76
        );
        assert_eq!(
            score(&record(&[("general", 2), ("critical", 1)], 2, true)),
            46
        );
        assert_eq!(score(&record(&[("critical", 50)], 0, false)), 0);
    }
}
