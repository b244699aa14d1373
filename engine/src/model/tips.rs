//! Reports from outside as stored: integrations, a tip to store, why one was refused, a tip with what its case says now, which tips to list; and landlords' own declarations (occupancy, self-inspection).

use chrono::{DateTime, Utc};

use crate::domain::{CaseId, DepartmentId, GridId, PartyId, StreetId, UnitId};

/// An integration that reports tips (the 12345 hotline, a street platform).
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    pub id: i64,
    pub name: String,
    /// Where status changes of its requests are pushed (signed POSTs).
    pub webhook_url: Option<String>,
    /// The SHA-256 of its key: what the pushes are signed with.
    pub key_digest: String,
}

/// A tip to store, placed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTip {
    pub source: &'static str,
    pub integration_id: Option<i64>,
    pub client: String,
    pub category: String,
    pub description: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub address: Option<String>,
    pub placed_by: &'static str,
    pub unit_id: Option<UnitId>,
    pub grid_id: Option<GridId>,
    pub street_id: Option<StreetId>,
    pub district_code: String,
    pub reporter_name: Option<String>,
    pub reporter_email: Option<String>,
    pub reporter_phone: Option<String>,
    pub at: DateTime<Utc>,
}

/// Why a tip was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipRefusal {
    /// The integration's key sent its limit in the window.
    KeyLimited,
    /// The client sent its limit in the window.
    ClientLimited,
}

/// A tip as stored, with what its case says now (if it became one).
#[derive(Debug, Clone, PartialEq)]
pub struct TipRecord {
    pub id: i64,
    pub source: String,
    pub integration_id: Option<i64>,
    pub category: String,
    pub description: String,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub address: Option<String>,
    pub placed_by: String,
    pub unit_id: Option<UnitId>,
    pub grid_id: Option<GridId>,
    pub street_id: Option<StreetId>,
    pub district_code: String,
    pub reporter_name: Option<String>,
    pub reporter_email: Option<String>,
    pub reporter_phone: Option<String>,
    pub status: String,
    pub case_id: Option<CaseId>,
    pub public_note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The case's close, department and last change, when the tip became a case.
    pub case_closed_at: Option<DateTime<Utc>>,
    pub case_department_id: Option<DepartmentId>,
    pub case_updated_at: Option<DateTime<Utc>>,
    /// What was last pushed to the integration, and when (or when a push was claimed).
    pub pushed: Option<String>,
    pub pushed_at: Option<DateTime<Utc>>,
}

impl TipRecord {
    /// The tip's place, for jurisdiction checks.
    pub fn place(&self) -> crate::auth::Place<'_> {
        crate::auth::Place {
            district_code: &self.district_code,
            street_id: self.street_id,
            grid_id: self.grid_id,
            party_id: None,
            department_id: None,
        }
    }
}

/// Which tips to list: an integration's own, by ids, by status, in a scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TipFilter {
    pub integration_id: Option<i64>,
    pub ids: Option<Vec<i64>>,
    /// Only tips created at or after / before.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub categories: Option<Vec<String>>,
    pub limit: u32,
}

/// A landlord's own declaration about a unit: its occupancy, or a self-inspection
/// against the grading checklist. Never a grade.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    pub id: i64,
    pub unit_id: UnitId,
    pub party_id: PartyId,
    /// `occupancy` or `self_inspection`.
    pub kind: String,
    pub rooms: Option<i64>,
    pub occupants: Option<i64>,
    /// The self-inspection's answers, by checklist item.
    pub checklist: Option<std::collections::BTreeMap<String, bool>>,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
}
