//! The working-day calendar's versions as stored: each file imported, with when it took effect and who imported it.

use chrono::{DateTime, Utc};

/// A version of the working-day calendar, as stored: the file imported, its digest and
/// years, and when it took effect, by whom.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarVersion {
    pub version: i64,
    pub source: String,
    pub sha256: String,
    pub years: String,
    pub test_data: bool,
    pub imported_at: DateTime<Utc>,
    pub imported_by: String,
}
