//! The registry on the runtime: units and their parties, units near a point, nearest, in an area (paged, scoped), grids and their units, grade histories.

use chrono::{DateTime, Utc};

use crate::auth::{Principal, Scope};
use crate::domain::{PartyId, Point, UnitId};
use crate::error::{Error, Result};
use crate::registry::Unit;
use crate::spatial::crs::Crs;
use crate::spatial::index::Hit;

use super::Runtime;

/// A unit registration as submitted.
#[derive(Debug, Clone)]
pub struct UnitInput {
    pub building_id: i64,
    pub address_code: String,
    pub address: String,
    pub lon: f64,
    pub lat: f64,
    pub floor_area: f64,
    pub occupants: i64,
    pub party_id: Option<PartyId>,
}

/// A unit's grade as a caller sees it after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct GradeView {
    pub stars: Option<u8>,
    pub score: Option<f64>,
    pub reasons: Vec<String>,
    /// The stars changed.
    pub changed: bool,
    /// The next patrol.
    pub next_due_at: Option<DateTime<Utc>>,
}

/// A page of units found by a query: the units, how many the caller may see in all,
/// and the id after which the next page starts (if there is one).
#[derive(Debug, Clone)]
pub struct UnitPage {
    pub units: Vec<(Unit, Option<f64>)>,
    pub total: usize,
    pub next_after: Option<UnitId>,
}

impl Runtime {
    // ----- registry ---------------------------------------------------------------------

    /// A unit, if the caller may see it.
    pub async fn unit(&self, principal: &Principal, id: UnitId) -> Result<Unit> {
        match self.shared.store.unit(id).await? {
            Some(u) if principal.covers(u.place()) => Ok(u),
            _ => Err(Error::not_found("unit", id)),
        }
    }

    /// Hands a unit to another responsible party (or to nobody). Inspectors and
    /// supervisors do this for units in their jurisdiction; the new party must exist,
    /// and its role defaults to the party's kind.
    pub async fn change_unit_party(
        &self,
        principal: &Principal,
        id: UnitId,
        party: Option<PartyId>,
        role: Option<String>,
    ) -> Result<Unit> {
        crate::policy::check(principal, crate::policy::Act::ChangeUnitParty)?;
        let unit = self.unit(principal, id).await?;
        let store = &self.shared.store;
        let party = match party {
            Some(p) => {
                let kind = store
                    .party_kind(p)
                    .await?
                    .ok_or_else(|| Error::invalid("party_id", format!("no party {p}")))?;
                let role = role.unwrap_or(kind);
                crate::registry::check_party_kind("role", &role)?;
                Some((p, role))
            }
            None => None,
        };
        if party.as_ref().map(|(p, _)| *p) == unit.party_id {
            return Err(Error::Conflict(format!(
                "unit {id} already has this responsible party"
            )));
        }
        // A blacklisted party takes on no more units while the entry is in force.
        if let Some((p, _)) = &party
            && self.is_blacklisted(*p).await?
        {
            return Err(Error::Conflict(format!(
                "party {p} is on the blacklist and cannot take on units"
            )));
        }
        store.set_unit_party(id, party, self.now()).await?;
        self.unit(principal, id).await
    }

    /// A unit's responsibility history, for callers who may see the unit.
    pub async fn unit_parties(
        &self,
        principal: &Principal,
        id: UnitId,
    ) -> Result<Vec<crate::store::UnitPartyRecord>> {
        self.unit(principal, id).await?;
        Ok(self.shared.store.unit_parties(id).await?)
    }

    // ----- geography --------------------------------------------------------------------

    /// Resolves index hits to the units the caller may see, keeping the hits' order,
    /// at most `limit` of them.
    async fn visible_units(
        &self,
        principal: &Principal,
        hits: Vec<Hit>,
        limit: usize,
    ) -> Result<Vec<(Unit, Option<f64>)>> {
        let mut out = Vec::new();
        // Look units up a page at a time, so that a query over a dense area does not
        // load every unit in it when the caller sees few of them.
        for page in hits.chunks(500) {
            let ids: Vec<UnitId> = page.iter().map(|h| h.id).collect();
            let mut units: std::collections::HashMap<UnitId, Unit> = self
                .shared
                .store
                .units_by_ids(&ids)
                .await?
                .into_iter()
                .map(|u| (u.id, u))
                .collect();
            for h in page {
                if let Some(u) = units.remove(&h.id)
                    && principal.covers(u.place())
                {
                    out.push((u, h.distance_m));
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Units within `radius_m` of `center` that the caller may see, nearest first (at
    /// most `limit`), and how many the caller may see in the circle.
    pub async fn units_near(
        &self,
        principal: &Principal,
        center: Point,
        radius_m: f64,
        limit: usize,
    ) -> Result<(Vec<(Unit, Option<f64>)>, usize)> {
        let hits = self
            .shared
            .index
            .read()
            .expect("index lock")
            .within_radius(center, radius_m);
        let units = self.visible_units(principal, hits.clone(), limit).await?;
        let total = if units.len() < limit {
            units.len()
        } else if matches!(principal.scope, Scope::City | Scope::System) {
            hits.len()
        } else {
            self.count_visible(principal, &hits).await?
        };
        Ok((units, total))
    }

    /// The `k` units nearest to `center` among those the caller may see.
    pub async fn units_nearest(
        &self,
        principal: &Principal,
        center: Point,
        k: usize,
    ) -> Result<Vec<(Unit, Option<f64>)>> {
        // Ask the index for more than k when the caller sees only part of the city, and
        // widen until k visible units are found or the city is exhausted.
        let total = self.indexed_units();
        let mut want = k;
        loop {
            let hits = self
                .shared
                .index
                .read()
                .expect("index lock")
                .nearest(center, want);
            let found = self.visible_units(principal, hits, k).await?;
            if found.len() >= k || want >= total {
                return Ok(found);
            }
            want = (want * 8).min(total);
        }
    }

    /// The units inside an area (given in `crs`, edges included) that the caller may
    /// see, by id: at most `limit` after `after`, with the total and where the next page
    /// starts.
    pub async fn units_in_area(
        &self,
        principal: &Principal,
        area: &crate::spatial::shape::Area,
        crs: Crs,
        after: Option<UnitId>,
        limit: usize,
    ) -> Result<UnitPage> {
        let hits = self
            .shared
            .index
            .read()
            .expect("index lock")
            .within_area(area, crs);
        self.page_of_units(principal, hits, after, limit).await
    }

    /// A page of the visible units among `hits` (sorted by id), with their total.
    pub(super) async fn page_of_units(
        &self,
        principal: &Principal,
        hits: Vec<Hit>,
        after: Option<UnitId>,
        limit: usize,
    ) -> Result<UnitPage> {
        let start = after.map_or(0, |a| hits.partition_point(|h| h.id <= a));
        let before = &hits[..start];
        let rest = &hits[start..];
        let units = self.visible_units(principal, rest.to_vec(), limit).await?;
        // The total counts every visible hit; a caller who sees the whole city sees
        // them all, anyone else has them checked against the store.
        let total = if matches!(principal.scope, Scope::City | Scope::System) {
            hits.len()
        } else {
            let counted = self.count_visible(principal, before).await?;
            let beyond = match units.last() {
                Some((last, _)) if units.len() == limit => {
                    let i = rest.partition_point(|h| h.id <= last.id);
                    self.count_visible(principal, &rest[i..]).await?
                }
                _ => 0,
            };
            counted + units.len() + beyond
        };
        let next_after = (units.len() == limit && start + units.len() < hits.len())
            .then(|| units.last().map(|(u, _)| u.id))
            .flatten();
        Ok(UnitPage {
            total,
            next_after,
            units,
        })
    }

    /// How many of `hits` the caller may see.
    pub(super) async fn count_visible(&self, principal: &Principal, hits: &[Hit]) -> Result<usize> {
        let mut n = 0;
        for page in hits.chunks(1000) {
            let ids: Vec<UnitId> = page.iter().map(|h| h.id).collect();
            n += self
                .shared
                .store
                .units_by_ids(&ids)
                .await?
                .iter()
                .filter(|u| principal.covers(u.place()))
                .count();
        }
        Ok(n)
    }

    /// Every unit inside a polygon, by the index alone (the caller scopes them).
    pub fn unit_ids_in_polygon(&self, shape: &geo::MultiPolygon<f64>) -> Vec<UnitId> {
        let index = self.shared.index.read().expect("index lock");
        index
            .within_polygon(shape)
            .into_iter()
            .map(|h| h.id)
            .collect()
    }

    /// A grid, if the caller may see it.
    pub async fn grid(
        &self,
        principal: &Principal,
        id: crate::domain::GridId,
    ) -> Result<crate::store::GridRecord> {
        let grid = self.shared.store.grid(id).await?;
        match grid {
            Some(g) if principal.covers(g.place()) => Ok(g),
            _ => Err(Error::not_found("grid", id)),
        }
    }

    /// The units of a grid the caller may see, by id after `after`.
    pub async fn grid_units(
        &self,
        principal: &Principal,
        id: crate::domain::GridId,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>> {
        self.grid(principal, id).await?;
        Ok(self.shared.store.grid_units(id, after, limit).await?)
    }

    /// A unit's grade history, for callers who may see the unit.
    pub async fn unit_grades(
        &self,
        principal: &Principal,
        id: UnitId,
    ) -> Result<Vec<crate::store::GradeRecord>> {
        self.unit(principal, id).await?;
        Ok(self.shared.store.unit_grades(id).await?)
    }
}
