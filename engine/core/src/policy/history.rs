//! What each role sees of a case, pure: which events of its history (a landlord sees those that concern them, not the office's internal ones), and up to when (a department sees a case it returned only up to its return). ARCHITECTURE.md holds the same table in prose; every later notice, page and public answer follows it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::auth::{Principal, Scope};
use crate::domain::Role;
use crate::records::{EventRecord, OutboxMessage, ReferralRecord};

/// The events a landlord (or agent, or sub-landlord) sees on a case of theirs: the
/// finding, the order and its deadline, their own acts, the re-inspection and its
/// result, the overdue notice, the referral's outcome, how the case ended, their
/// objection or request for more time and its decision, and notices addressed to them. Not: referrals and their handling between the office and the
/// departments, escalations, priorities, reviews, blacklist proposals, notices to
/// others, or the system's corrections of a case's place or workflow version.
const LANDLORD_EVENTS: &[&str] = &[
    "open",
    "attach_finding",
    "notify",
    "record_service",
    "acknowledge",
    "report_fix",
    "object",
    "decide_objection",
    "reinspect",
    "deadline_passed",
    "rule_move_deadline",
    "record_result",
    "close",
    "dismiss",
    "mark_duplicate",
    "cancel",
    "reopen",
];

/// Keys of an event's data that only the office sees: which rule acted, where the
/// inspector stood, which department and officer handled it.
const INTERNAL_KEYS: &[&str] = &["rule", "point", "department_id", "department", "findings"];

/// Whether a landlord sees an event.
pub fn landlord_sees(event: &EventRecord) -> bool {
    if event.command == "rule_notice" {
        return event.data.get("to").and_then(Value::as_str) == Some("landlord");
    }
    LANDLORD_EVENTS.contains(&event.command.as_str())
}

/// The moment after which a department no longer sees a case: when its last referral
/// was returned or withdrawn, unless the case is (again) with the department or its
/// referral was completed. `None` means it sees the case as it is now.
pub fn department_cutoff(
    department: crate::domain::DepartmentId,
    current: Option<crate::domain::DepartmentId>,
    referrals: &[ReferralRecord],
) -> Option<DateTime<Utc>> {
    if current == Some(department) {
        return None;
    }
    let mine: Vec<&ReferralRecord> = referrals
        .iter()
        .filter(|r| r.department_id == department)
        .collect();
    if mine.iter().any(|r| r.status == "completed") {
        return None;
    }
    mine.iter()
        .filter(|r| matches!(r.status.as_str(), "returned" | "withdrawn"))
        .filter_map(|r| r.responded_at)
        .max()
}

/// A case's history as `principal` may see it.
pub fn visible_history(
    principal: &Principal,
    events: Vec<EventRecord>,
    cutoff: Option<DateTime<Utc>>,
) -> Vec<EventRecord> {
    match principal.role {
        Role::Landlord => events
            .into_iter()
            .filter(landlord_sees)
            .map(|mut e| {
                if let Value::Object(data) = &mut e.data {
                    for key in INTERNAL_KEYS {
                        data.remove(*key);
                    }
                }
                // Who in the office acted is not the landlord's business; their role is.
                if e.actor.role != Role::Landlord {
                    e.actor.id = String::new();
                }
                e
            })
            .collect(),
        Role::Department => events
            .into_iter()
            .filter(|e| cutoff.is_none_or(|c| e.at <= c))
            .collect(),
        _ => events,
    }
}

/// The referrals of a case `principal` may see: a department its own, a landlord none.
pub fn visible_referrals(
    principal: &Principal,
    referrals: Vec<ReferralRecord>,
) -> Vec<ReferralRecord> {
    match &principal.scope {
        Scope::Department(d) => referrals
            .into_iter()
            .filter(|r| r.department_id == *d)
            .collect(),
        Scope::Party(_) => Vec::new(),
        _ => referrals,
    }
}

/// The messages of a case `principal` may see: those addressed to them (a landlord, a
/// department up to its cutoff), or all (the office).
pub fn visible_messages(
    principal: &Principal,
    messages: Vec<OutboxMessage>,
    cutoff: Option<DateTime<Utc>>,
) -> Vec<OutboxMessage> {
    fn to(kind: &'static str, id: i64) -> impl Fn(&OutboxMessage) -> bool {
        move |m| m.recipient_kind == kind && m.recipient_id == Some(id)
    }
    match &principal.scope {
        Scope::Party(p) => messages.into_iter().filter(to("landlord", p.0)).collect(),
        Scope::Department(d) => messages
            .into_iter()
            .filter(to("department", d.0))
            .filter(|m| cutoff.is_none_or(|c| m.created_at <= c))
            .collect(),
        _ => messages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Actor, CaseId, DepartmentId, PartyId};
    use chrono::TimeZone;
    use serde_json::json;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, minute, 0).unwrap()
    }

    fn event(seq: i64, command: &str, role: Role, data: Value) -> EventRecord {
        EventRecord {
            seq,
            at: at(seq as u32),
            actor: Actor {
                role,
                id: "7".into(),
            },
            command: command.into(),
            from_state: None,
            to_state: "x".into(),
            reason: None,
            data,
        }
    }

    fn principal(role: Role, scope: Scope) -> Principal {
        Principal {
            role,
            subject: 1,
            scope,
            account: None,
        }
    }

    fn history() -> Vec<EventRecord> {
        vec![
            event(
                1,
                "open",
                Role::Inspector,
                json!({"point": {"lon": 1}, "category": "wiring"}),
            ),
            event(2, "notify", Role::Inspector, json!({"deadline_at": "x"})),
            event(
                3,
                "rule_require_review",
                Role::System,
                json!({"rule": {"name": "r"}}),
            ),
            event(4, "rule_notice", Role::System, json!({"to": "supervisor"})),
            event(5, "rule_notice", Role::System, json!({"to": "landlord"})),
            event(6, "acknowledge", Role::Landlord, json!({})),
            event(7, "deadline_passed", Role::System, json!({})),
            event(8, "refer", Role::Inspector, json!({"department_id": 3})),
            event(9, "return_referral", Role::Department, json!({})),
            event(
                10,
                "rule_escalate",
                Role::System,
                json!({"level": "district"}),
            ),
            event(11, "reroute", Role::Supervisor, json!({"department_id": 4})),
            event(
                12,
                "record_result",
                Role::Department,
                json!({"result": "fine", "department": "消防"}),
            ),
            event(13, "close", Role::Inspector, json!({"outcome": "fixed"})),
        ]
    }

    #[test]
    fn a_landlord_sees_what_concerns_them_without_the_office_internals() {
        let p = principal(Role::Landlord, Scope::Party(PartyId(1)));
        let seen = visible_history(&p, history(), None);
        let seqs: Vec<i64> = seen.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 5, 6, 7, 12, 13]);
        assert!(seen[0].data.get("point").is_none());
        assert_eq!(seen[0].data["category"], "wiring");
        assert!(seen[5].data.get("department").is_none());
        assert_eq!(seen[5].data["result"], "fine");
        assert_eq!(seen[0].actor.id, "");
        assert_eq!(seen[3].actor.id, "7", "their own acts keep their id");
    }

    #[test]
    fn a_department_sees_a_returned_case_up_to_its_return() {
        let referral = |dept: i64, status: &str, minute: u32| ReferralRecord {
            id: dept,
            case_id: CaseId(1),
            department_id: DepartmentId(dept),
            status: status.into(),
            referred_at: at(minute - 1),
            responded_at: Some(at(minute)),
            reason_code: None,
            result: None,
        };
        let referrals = vec![referral(3, "returned", 9), referral(4, "completed", 12)];
        let cutoff = department_cutoff(DepartmentId(3), Some(DepartmentId(4)), &referrals);
        assert_eq!(cutoff, Some(at(9)));
        let p = principal(Role::Department, Scope::Department(DepartmentId(3)));
        let seen = visible_history(&p, history(), cutoff);
        assert_eq!(seen.last().unwrap().seq, 9);
        assert_eq!(visible_referrals(&p, referrals.clone()).len(), 1);
        // The department that completed its referral, and one holding the case now,
        // see all of it.
        assert_eq!(department_cutoff(DepartmentId(4), None, &referrals), None);
        assert_eq!(
            department_cutoff(DepartmentId(3), Some(DepartmentId(3)), &referrals),
            None
        );
    }

    #[test]
    fn the_office_sees_everything() {
        for (role, scope) in [
            (Role::Inspector, Scope::City),
            (Role::Supervisor, Scope::City),
        ] {
            assert_eq!(
                visible_history(&principal(role, scope), history(), None).len(),
                13
            );
        }
    }
}
