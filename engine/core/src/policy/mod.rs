//! Who may do what, pure and in one place: the acts beyond a case's commands (whose roles each workflow names) that a role may or may never do, the objects a caller may ask for by id, and (`history`) which events, messages and referrals of a case each role sees. The engine asks this module before every read and write; the HTTP layer never checks a role.

pub mod history;

use crate::auth::{Place, Principal, Scope};
use crate::domain::{DepartmentId, InspectorId, PartyId, Role};
use crate::error::Error;

/// Something a caller asks to do, beyond issuing a command to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    RecordInspection,
    /// The inspections list, of one inspector when named.
    ListInspections(Option<InspectorId>),
    RegisterUnit,
    CorrectPoint,
    ListUngridded,
    ChangeUnitParty,
    RegisterParty,
    ListParties,
    ProposeBlacklist,
    RecordAgreement,
    RecordPolicy,
    ReadRules,
    PublishRule,
    DryRunRule,
    ReadRuleJobs,
    ReadRouting,
    ReadDepartmentDirectory,
    ReadInspectorDirectory,
    ReadSupervisorDirectory,
    ReadPlanningBacklog,
    CreateCampaign,
    ReadCampaigns,
    /// A landlord's units, by the landlord's party id.
    ReadPartyUnits(PartyId),
    /// A landlord's rectification orders, by the landlord's party id.
    ReadPartyOrders(PartyId),
    /// A department's referrals, by the department's id.
    ReadDepartmentReferrals(DepartmentId),
    /// The dead letters of the caller's area, and sending one again.
    HandleDeadLetters,
    /// Uploading a photo or document to reference as evidence.
    UploadEvidence,
    /// Statistics of notification and disposal (of the area the caller oversees:
    /// `stats::scope_area`).
    ReadStatistics,
    /// Tips from outside (with the reporters' contacts) and resolving them.
    HandleTips,
    /// A landlord's own declaration about their unit (occupancy, self-inspection).
    DeclareUnit,
    /// The working-day calendar: importing a version, and being warned that it nears
    /// its end (the city's supervisors, and the operator's command line).
    ManageCalendar,
}

/// The answer to an act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The object named is not the caller's to know of: answered exactly as an object
    /// that does not exist (404).
    Hidden {
        what: &'static str,
        id: i64,
    },
    /// The caller's role can never do this (403).
    Forbidden(&'static str),
}

const STAFF: &[Role] = &[Role::Inspector, Role::Supervisor];
const SUPERVISORS: &[Role] = &[Role::Supervisor];
const SUPERVISORS_AND_SYSTEM: &[Role] = &[Role::Supervisor, Role::System];
const STAFF_AND_SYSTEM: &[Role] = &[Role::Inspector, Role::Supervisor, Role::System];

/// Which roles may do an act that depends on the role alone, and what the others are
/// told. `None` for acts that depend on the object (see [`judge`]).
fn roles_for(act: Act) -> Option<(&'static [Role], &'static str)> {
    use Act::*;
    Some(match act {
        RecordInspection => (
            STAFF,
            "inspections are recorded by inspectors and supervisors",
        ),
        RegisterUnit => (STAFF, "units are registered by inspectors and supervisors"),
        CorrectPoint => (STAFF, "points are corrected by inspectors and supervisors"),
        ChangeUnitParty => (
            STAFF,
            "responsible parties are recorded by inspectors and supervisors",
        ),
        RegisterParty => (
            STAFF,
            "parties are registered by inspectors and supervisors",
        ),
        ListParties => (SUPERVISORS, "the register of parties is for supervisors"),
        ProposeBlacklist => (SUPERVISORS, "supervisors propose blacklistings"),
        RecordAgreement => (
            STAFF,
            "agreements are recorded by inspectors and supervisors",
        ),
        RecordPolicy => (
            &[Role::Inspector, Role::Supervisor, Role::Landlord],
            "policies are recorded by the unit's party, inspectors and supervisors",
        ),
        ReadRules => (SUPERVISORS_AND_SYSTEM, "the rules are for supervisors"),
        DryRunRule => (SUPERVISORS, "dry runs of rules are for supervisors"),
        ReadRuleJobs => (STAFF, "rule jobs are for inspectors and supervisors"),
        ReadRouting => (STAFF, "the routing table is for supervisors and inspectors"),
        ReadDepartmentDirectory => (
            &[
                Role::Inspector,
                Role::Supervisor,
                Role::Department,
                Role::System,
            ],
            "the department directory is for staff and departments",
        ),
        ReadInspectorDirectory => (
            STAFF_AND_SYSTEM,
            "the inspector directory is for supervisors and inspectors",
        ),
        ReadSupervisorDirectory => (
            STAFF_AND_SYSTEM,
            "the supervisor directory is for supervisors and inspectors",
        ),
        ReadPlanningBacklog => (
            SUPERVISORS_AND_SYSTEM,
            "the planning backlog is for supervisors",
        ),
        CreateCampaign => (
            SUPERVISORS_AND_SYSTEM,
            "creating a campaign is for supervisors",
        ),
        ReadCampaigns => (
            STAFF_AND_SYSTEM,
            "campaigns are for inspectors and supervisors",
        ),
        HandleDeadLetters => (
            SUPERVISORS_AND_SYSTEM,
            "undelivered messages are for supervisors",
        ),
        ReadStatistics => (
            &[
                Role::Inspector,
                Role::Supervisor,
                Role::Department,
                Role::System,
            ],
            "statistics are for inspectors, supervisors and departments",
        ),
        DeclareUnit => (
            &[Role::Landlord],
            "landlords declare their own units; inspectors record inspections",
        ),
        HandleTips => (STAFF_AND_SYSTEM, "tips are for inspectors and supervisors"),
        UploadEvidence => (
            &[
                Role::Inspector,
                Role::Supervisor,
                Role::Landlord,
                Role::Department,
            ],
            "evidence is uploaded by inspectors, supervisors, landlords and departments",
        ),
        ListInspections(_)
        | ListUngridded
        | PublishRule
        | ManageCalendar
        | ReadPartyUnits(_)
        | ReadPartyOrders(_)
        | ReadDepartmentReferrals(_) => return None,
    })
}

/// Whether `principal` may do `act`.
pub fn judge(principal: &Principal, act: Act) -> Verdict {
    use Act::*;
    if let Some((roles, why)) = roles_for(act) {
        return if roles.contains(&principal.role) {
            Verdict::Allowed
        } else {
            Verdict::Forbidden(why)
        };
    }
    let role = principal.role;
    match act {
        ListUngridded if role == Role::Supervisor || principal.scope == Scope::System => {
            Verdict::Allowed
        }
        ListUngridded => {
            Verdict::Forbidden("the list of units outside every grid is for supervisors")
        }
        ListInspections(of) => match role {
            Role::Supervisor => Verdict::Allowed,
            Role::Inspector if of.is_none_or(|i| i.0 == principal.subject) => Verdict::Allowed,
            Role::Inspector => Verdict::Forbidden("an inspector sees their own inspections"),
            _ => Verdict::Forbidden("inspections are listed for supervisors and inspectors"),
        },
        PublishRule if role == Role::Supervisor && principal.scope == Scope::City => {
            Verdict::Allowed
        }
        PublishRule => Verdict::Forbidden("rules are published by city-level supervisors"),
        ManageCalendar
            if (role == Role::Supervisor && principal.scope == Scope::City)
                || principal.scope == Scope::System =>
        {
            Verdict::Allowed
        }
        ManageCalendar => {
            Verdict::Forbidden("the working-day calendar is kept by city-level supervisors")
        }
        ReadPartyUnits(party) | ReadPartyOrders(party) => match role {
            Role::Landlord if principal.subject == party.0 => Verdict::Allowed,
            Role::Landlord => Verdict::Hidden {
                what: if matches!(act, ReadPartyUnits(_)) {
                    "party"
                } else {
                    "landlord"
                },
                id: party.0,
            },
            Role::Department if matches!(act, ReadPartyUnits(_)) => {
                Verdict::Forbidden("departments see referrals, not landlords' units")
            }
            Role::Department => {
                Verdict::Forbidden("departments see referrals, not landlords' orders")
            }
            _ => Verdict::Allowed,
        },
        ReadDepartmentReferrals(department) => match role {
            Role::Department if principal.subject == department.0 => Verdict::Allowed,
            Role::Department => Verdict::Hidden {
                what: "department",
                id: department.0,
            },
            Role::Supervisor => Verdict::Allowed,
            _ => Verdict::Forbidden("referral lists are for departments and supervisors"),
        },
        _ => unreachable_act(act),
    }
}

/// Whether `principal` may learn where and when a photo was taken (its EXIF, and how
/// far from the unit): inspectors and supervisors, and whoever uploaded it; a landlord
/// or a department sees the photo without it, as they do not see where the inspector
/// stood (see `history`).
pub fn sees_where_photos_were_taken(principal: &Principal, uploader: (Role, i64)) -> bool {
    matches!(
        principal.role,
        Role::Inspector | Role::Supervisor | Role::System
    ) || (principal.role, principal.subject) == uploader
}

/// Whose inspections a caller's list is cut to: an inspector sees their own.
pub fn own_inspections(principal: &Principal) -> Option<InspectorId> {
    (principal.role == Role::Inspector).then_some(InspectorId(principal.subject))
}

/// Whether `principal` may read a case at `place` that was referred to the departments
/// `referred_to` (at any time, in any status): staff and landlords by their scope over
/// the case's place; a department by a referral to it, which it keeps seeing after it
/// returned the case (up to the return: see `history`). The SQL filters of case lists
/// are the same rule (a conformance test holds them to it).
pub fn reads_case(principal: &Principal, place: Place<'_>, referred_to: &[DepartmentId]) -> bool {
    match &principal.scope {
        Scope::Department(d) => referred_to.contains(d),
        _ => principal.covers(place),
    }
}

/// Every act has an answer above; an act without one is refused.
fn unreachable_act(act: Act) -> Verdict {
    debug_assert!(false, "no rule for {act:?}");
    Verdict::Forbidden("not allowed")
}

/// [`judge`] as a result: `Hidden` is "not found", `Forbidden` is forbidden.
pub fn check(principal: &Principal, act: Act) -> Result<(), Error> {
    match judge(principal, act) {
        Verdict::Allowed => Ok(()),
        Verdict::Hidden { what, id } => Err(Error::not_found(what, id)),
        Verdict::Forbidden(why) => Err(Error::Forbidden(why.into())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::{GridId, StreetId};

    fn who(role: Role) -> Principal {
        let scope = match role {
            Role::Inspector => Scope::Grids(BTreeSet::from([GridId(1)])),
            Role::Supervisor => Scope::Street(StreetId(1)),
            Role::Landlord => Scope::Party(PartyId(7)),
            Role::Department => Scope::Department(DepartmentId(3)),
            Role::System => Scope::System,
        };
        let subject = match role {
            Role::Landlord => 7,
            Role::Department => 3,
            _ => 1,
        };
        Principal {
            role,
            subject,
            scope,
            account: None,
        }
    }

    const ROLES: [Role; 5] = [
        Role::Inspector,
        Role::Supervisor,
        Role::Landlord,
        Role::Department,
        Role::System,
    ];

    /// The table, role by role: `I` inspector, `S` supervisor, `L` landlord (agents and
    /// sub-landlords sign in as landlords), `D` department, `Y` the system; `+` allowed,
    /// `-` forbidden, `0` hidden (answered as not found).
    #[test]
    fn the_policy_table() {
        use Act::*;
        let mine = PartyId(7);
        let theirs = PartyId(8);
        let table: &[(Act, &str)] = &[
            (RecordInspection, "I+ S+ L- D- Y-"),
            (ListInspections(None), "I+ S+ L- D- Y-"),
            (ListInspections(Some(InspectorId(1))), "I+ S+ L- D- Y-"),
            (ListInspections(Some(InspectorId(2))), "I- S+ L- D- Y-"),
            (RegisterUnit, "I+ S+ L- D- Y-"),
            (CorrectPoint, "I+ S+ L- D- Y-"),
            (ListUngridded, "I- S+ L- D- Y+"),
            (ChangeUnitParty, "I+ S+ L- D- Y-"),
            (RegisterParty, "I+ S+ L- D- Y-"),
            (ListParties, "I- S+ L- D- Y-"),
            (ProposeBlacklist, "I- S+ L- D- Y-"),
            (RecordAgreement, "I+ S+ L- D- Y-"),
            (RecordPolicy, "I+ S+ L+ D- Y-"),
            (ReadRules, "I- S+ L- D- Y+"),
            (PublishRule, "I- S- L- D- Y-"),
            (ManageCalendar, "I- S- L- D- Y+"),
            (DryRunRule, "I- S+ L- D- Y-"),
            (ReadRuleJobs, "I+ S+ L- D- Y-"),
            (ReadRouting, "I+ S+ L- D- Y-"),
            (ReadDepartmentDirectory, "I+ S+ L- D+ Y+"),
            (ReadInspectorDirectory, "I+ S+ L- D- Y+"),
            (ReadSupervisorDirectory, "I+ S+ L- D- Y+"),
            (ReadPlanningBacklog, "I- S+ L- D- Y+"),
            (CreateCampaign, "I- S+ L- D- Y+"),
            (ReadCampaigns, "I+ S+ L- D- Y+"),
            (ReadPartyUnits(mine), "I+ S+ L+ D- Y+"),
            (ReadPartyUnits(theirs), "I+ S+ L0 D- Y+"),
            (ReadPartyOrders(mine), "I+ S+ L+ D- Y+"),
            (ReadPartyOrders(theirs), "I+ S+ L0 D- Y+"),
            (ReadDepartmentReferrals(DepartmentId(3)), "I- S+ L- D+ Y-"),
            (ReadDepartmentReferrals(DepartmentId(4)), "I- S+ L- D0 Y-"),
        ];
        for (act, expected) in table {
            let got: Vec<String> = ROLES
                .iter()
                .zip("ISLDY".chars())
                .map(|(role, letter)| {
                    let mark = match judge(&who(*role), *act) {
                        Verdict::Allowed => '+',
                        Verdict::Hidden { .. } => '0',
                        Verdict::Forbidden(_) => '-',
                    };
                    format!("{letter}{mark}")
                })
                .collect();
            assert_eq!(got.join(" "), *expected, "{act:?}");
        }
    }

    /// Only a city-level supervisor publishes rules; a hidden object is "not found"
    /// with the object's kind and id, as if it did not exist.
    #[test]
    fn scope_matters_where_the_table_says_so() {
        let city = Principal {
            scope: Scope::City,
            ..who(Role::Supervisor)
        };
        assert_eq!(judge(&city, Act::PublishRule), Verdict::Allowed);
        assert_eq!(judge(&city, Act::ManageCalendar), Verdict::Allowed);
        let district = Principal {
            scope: Scope::District("440103".into()),
            ..who(Role::Supervisor)
        };
        assert!(matches!(
            judge(&district, Act::PublishRule),
            Verdict::Forbidden(_)
        ));
        let err = check(&who(Role::Landlord), Act::ReadPartyOrders(PartyId(8))).unwrap_err();
        assert_eq!(err.to_string(), "landlord 8 not found");
        let err = check(
            &who(Role::Department),
            Act::ReadDepartmentReferrals(DepartmentId(4)),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "department 4 not found");
    }
}
