//! Messages on their way: who they are for, each delivery to a channel, how it settled, and the in-app inbox.

use chrono::{DateTime, Utc};

use crate::domain::CaseId;

/// Who a message is for (`party:12`, `supervisor:3`, …), with the addresses on record.
#[derive(Debug, Clone, PartialEq)]
pub struct Addressee {
    pub recipient: String,
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// The channels the person wants (their account's preferences); `None`: all.
    pub channels: Option<Vec<String>>,
    /// They want a daily digest instead of single messages.
    pub digest: bool,
}

/// A delivery written when a message fans out: queued to send, or dead at once when the
/// person has no address for any channel (so that supervisors see who was never told).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub outbox_id: i64,
    pub recipient: String,
    pub channel: String,
    pub address: String,
    pub message_id: String,
    pub dead: Option<String>,
    /// Kept in the person's inbox only (their preferences exclude every channel that
    /// reaches them), with why.
    pub kept: Option<String>,
    /// Held for the daily digest that goes out then.
    pub digest_at: Option<DateTime<Utc>>,
}

/// A delivery claimed to be sent, with its message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryJob {
    pub id: i64,
    pub outbox_id: i64,
    pub case_id: CaseId,
    pub recipient: String,
    pub channel: String,
    pub address: String,
    /// Attempts before this one.
    pub attempts: i64,
    pub message_id: String,
    pub template: String,
    pub subject: String,
    pub body: String,
    /// The case's facts the channels' templates fill in.
    pub order_no: i64,
    pub unit_address: String,
    pub severity: String,
    pub deadline_at: Option<DateTime<Utc>>,
    pub inspector: Option<String>,
    /// A sign-in code (sent at once, outside the outbox).
    pub code: Option<String>,
    /// Goes out in the person's daily digest.
    pub digest: bool,
}

impl DeliveryJob {
    /// The link to the delivery's case under the public address; none for a message
    /// about no case (a sign-in code, whose body carries its own link).
    pub fn link(&self, public_url: Option<&str>) -> Option<String> {
        public_url
            .filter(|_| self.case_id.0 > 0)
            .map(|u| crate::notices::case_link(u, self.case_id.0))
    }

    /// The delivery as the pure templates read it, with the case's link.
    pub fn notice<'a>(&'a self, link: Option<&'a str>) -> crate::notices::Notice<'a> {
        crate::notices::Notice {
            template: &self.template,
            subject: &self.subject,
            body: &self.body,
            case: self.case_id.0,
            order_no: self.order_no,
            address: &self.unit_address,
            severity: &self.severity,
            deadline_at: self.deadline_at,
            inspector: self.inspector.as_deref(),
            link,
            code: self.code.as_deref(),
        }
    }
}

/// How an attempt at a delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled {
    Sent {
        id: i64,
        answer: String,
    },
    Failed {
        id: i64,
        answer: String,
        retry_at: DateTime<Utc>,
    },
    Dead {
        id: i64,
        answer: String,
    },
    /// Not sent yet, and not an attempt: held until `until` (an SMS in quiet hours).
    Held {
        id: i64,
        until: DateTime<Utc>,
    },
}

/// A delivery as a case's messages and the dead letters show it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub outbox_id: i64,
    pub case_id: CaseId,
    pub recipient: String,
    pub channel: String,
    pub address: String,
    /// `queued`, `sent`, `failed` (to be tried again) or `dead`.
    pub state: String,
    pub attempts: i64,
    /// The server's last answer.
    pub answer: Option<String>,
    pub message_id: String,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A message in a person's inbox: what it says, and whether they have read it.
#[derive(Debug, Clone, PartialEq)]
pub struct InboxItem {
    /// The outbox message's id.
    pub id: i64,
    pub case_id: CaseId,
    pub template: String,
    pub subject: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}
