//! The supervisor's dashboard on the runtime: every street's outline (the union of its grids' shapes, computed when the grids change and kept in the store) and the open cases of an area the caller oversees counted by street, for the map of open hazards.

use std::collections::{BTreeMap, BTreeSet};

use crate::auth::Principal;
use crate::domain::StreetId;
use crate::error::{Error, Result};
use crate::model::StreetRecord;
use crate::policy::{self, Act};
use crate::runtime::Runtime;
use crate::spatial::shape::to_geojson;
use crate::stats::{Area, scope_area};

/// A street on the map of open hazards: the street with its outline, and its open
/// cases (within what the caller sees) by severity.
#[derive(Debug, Clone, PartialEq)]
pub struct StreetHazards {
    pub street: StreetRecord,
    pub open: BTreeMap<String, i64>,
    pub total: i64,
}

/// The map of open hazards of an area: its streets, each with its open cases.
#[derive(Debug, Clone, PartialEq)]
pub struct HazardMap {
    pub area: Area,
    pub streets: Vec<StreetHazards>,
}

impl Runtime {
    /// Computes every street's outline from the grid index and stores it, unless the
    /// stored outlines were computed at the grids' present stamp. Returns whether it
    /// computed them. Run after a grid import, and before the map is drawn (grids
    /// written by a seed or an older version get their outlines then).
    pub async fn refresh_street_outlines(&self) -> Result<bool> {
        let stamp = self.store().grid_stamp().await?;
        let stored = self.store().outline_stamp().await?;
        if stored.map(|(at, _)| at) == Some(stamp) || (stamp.0 == 0 && stored.is_none()) {
            return Ok(false);
        }
        let index = self.grid_index().await?;
        let outlines = tokio::task::spawn_blocking(move || {
            index
                .street_outlines()
                .into_iter()
                .map(|(street, shape)| (street, to_geojson(&shape).to_string()))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Internal(format!("computing street outlines: {e}")))?;
        self.store().save_outlines(stamp, &outlines).await?;
        Ok(true)
    }

    /// The open cases of an area the caller oversees (their own by default; see
    /// `stats::scope_area`), counted by street, with each street's outline. Cases are
    /// those the caller sees (a department's referrals, an inspector's grids); the
    /// streets are those of the area (every street of the city or of a district, the
    /// streets holding the area's grids otherwise).
    pub async fn hazard_map(&self, principal: &Principal, area: Option<Area>) -> Result<HazardMap> {
        policy::check(principal, Act::ReadStatistics)?;
        let places = self.grid_places().await?;
        let scoped = scope_area(principal, area, &places)?;
        self.refresh_street_outlines().await?;
        let district = match &scoped.area {
            Area::District(d) => Some(d.as_str()),
            _ => None,
        };
        let wanted: Option<BTreeSet<StreetId>> = match &scoped.area {
            Area::City | Area::District(_) => None,
            area => Some(
                area.grids(&places)
                    .iter()
                    .map(|g| places[g].street_id)
                    .collect(),
            ),
        };
        let mut counts: BTreeMap<StreetId, BTreeMap<String, i64>> = BTreeMap::new();
        for (street, severity, n) in self
            .store()
            .open_by_street(&principal.scope, district)
            .await?
        {
            counts.entry(street).or_default().insert(severity, n);
        }
        let streets = self
            .store()
            .streets()
            .await?
            .into_iter()
            .filter(|s| match (&wanted, district) {
                (Some(set), _) => set.contains(&s.id),
                (None, Some(d)) => s.district_code == d,
                (None, None) => true,
            })
            .map(|street| {
                let open = counts.remove(&street.id).unwrap_or_default();
                StreetHazards {
                    total: open.values().sum(),
                    open,
                    street,
                }
            })
            .collect();
        Ok(HazardMap {
            area: scoped.area,
            streets,
        })
    }
}
