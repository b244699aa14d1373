//! Tips from outside (the 12345 hotline through Open311 GeoReport v2, tenants through a placard), pure: where a tip lies (the unit of its address code, the nearest unit within 30 m, or only the grid), its Open311 status, and the limits on how many a key or a client may send.

use chrono::TimeDelta;

use crate::domain::UnitId;

/// The farthest a reported point may lie from a unit to be placed on that unit's
/// building.
pub const NEAREST_BUILDING_M: f64 = 30.0;

/// The window of the rate limits.
pub const RATE_WINDOW: TimeDelta = TimeDelta::hours(1);

/// Tips an integration's key may send in [`RATE_WINDOW`].
pub const TIPS_PER_KEY: i64 = 600;

/// Tips one client (an address) may send in [`RATE_WINDOW`]: a tenant on a placard, or
/// any caller without a key.
pub const TIPS_PER_CLIENT: i64 = 5;

/// The longest description kept, in characters.
pub const MAX_DESCRIPTION: usize = 2000;

/// How a tip was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The unit whose address code was given.
    AddressCode(UnitId),
    /// The unit nearest the point, within [`NEAREST_BUILDING_M`].
    NearestBuilding(UnitId),
    /// No unit: the grid (or only the district) the point lies in.
    Grid,
}

impl Placement {
    /// Where a tip lies: the unit of the address code if one was found, else the
    /// nearest unit if it is close enough, else only the grid.
    pub fn decide(by_code: Option<UnitId>, nearest: Option<(UnitId, f64)>) -> Placement {
        match (by_code, nearest) {
            (Some(unit), _) => Placement::AddressCode(unit),
            (None, Some((unit, d))) if d <= NEAREST_BUILDING_M => Placement::NearestBuilding(unit),
            _ => Placement::Grid,
        }
    }

    pub fn unit(self) -> Option<UnitId> {
        match self {
            Placement::AddressCode(u) | Placement::NearestBuilding(u) => Some(u),
            Placement::Grid => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Placement::AddressCode(_) => "address_code",
            Placement::NearestBuilding(_) => "nearest_building",
            Placement::Grid => "grid",
        }
    }
}

/// A tip's own state: waiting for the visit, confirmed as a case, or dismissed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TipStatus {
    Open,
    Confirmed,
    Dismissed,
}

impl TipStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TipStatus::Open => "open",
            TipStatus::Confirmed => "confirmed",
            TipStatus::Dismissed => "dismissed",
        }
    }

    pub fn parse(s: &str) -> Option<TipStatus> {
        match s {
            "open" => Some(TipStatus::Open),
            "confirmed" => Some(TipStatus::Confirmed),
            "dismissed" => Some(TipStatus::Dismissed),
            _ => None,
        }
    }

    /// The Open311 status a reporter reads: `closed` once dismissed, or once its case
    /// is closed; `open` before.
    pub fn open311(self, case_closed: bool) -> &'static str {
        match self {
            TipStatus::Dismissed => "closed",
            TipStatus::Confirmed if case_closed => "closed",
            _ => "open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tip_lies_on_the_code_then_the_nearest_building_then_the_grid() {
        let (a, b) = (UnitId(1), UnitId(2));
        assert_eq!(
            Placement::decide(Some(a), Some((b, 3.0))),
            Placement::AddressCode(a)
        );
        assert_eq!(
            Placement::decide(None, Some((b, 30.0))),
            Placement::NearestBuilding(b)
        );
        assert_eq!(Placement::decide(None, Some((b, 30.1))), Placement::Grid);
        assert_eq!(Placement::decide(None, None), Placement::Grid);
        assert_eq!(Placement::Grid.unit(), None);
    }

    #[test]
    fn open311_status_closes_with_the_case_or_the_dismissal() {
        assert_eq!(TipStatus::Open.open311(false), "open");
        assert_eq!(TipStatus::Confirmed.open311(false), "open");
        assert_eq!(TipStatus::Confirmed.open311(true), "closed");
        assert_eq!(TipStatus::Dismissed.open311(false), "closed");
        for s in [TipStatus::Open, TipStatus::Confirmed, TipStatus::Dismissed] {
            assert_eq!(TipStatus::parse(s.as_str()), Some(s));
        }
    }
}
