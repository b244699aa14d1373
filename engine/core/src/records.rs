//! The records of a case's history the policy judges: its events, its outgoing messages and its referrals, as stored.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{Actor, CaseId, DepartmentId};

/// One entry of a case's history.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    pub command: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: Option<String>,
    pub data: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    pub id: i64,
    pub case_id: CaseId,
    pub event_seq: i64,
    pub recipient_kind: String,
    pub recipient_id: Option<i64>,
    pub template: String,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub attempts: i64,
    pub delivered_at: Option<DateTime<Utc>>,
    pub channel: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReferralRecord {
    pub id: i64,
    pub case_id: CaseId,
    pub department_id: DepartmentId,
    pub status: String,
    pub referred_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
    pub reason_code: Option<String>,
    pub result: Option<Value>,
}
