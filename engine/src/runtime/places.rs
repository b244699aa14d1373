//! Where units are, on the runtime: a unit's place from its point (the grid whose polygon holds it, or only its district), registration checked against its building and the city's outline, audited point corrections, grid imports, units outside every grid, and open cases that follow their unit (and move to the newest workflow) through the writer.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::auth::Principal;
use crate::domain::{Actor, CaseId, Point, UnitId};
use crate::error::FieldError;
use crate::error::{Error, Result};
use crate::machine::{self, Command};
use crate::registry::{BuildingPlace, Unit, UnitRow, parse_unit_values};
use crate::runtime::{Runtime, UnitInput};
use crate::spatial::grids::{
    GridImportReport, GridIndex, GridShape, Move, PointPlace, parse_grid_collection,
};
use crate::spatial::shape::parse_trusted_area;
use crate::store::Error as StoreError;
use crate::store::{
    Applied, IdempotencyKey, Idempotent, LocationCorrection, Respond, TransitionRequest,
};
use crate::workflow::HAZARD_CASE;

/// The farthest a unit may lie from its building's point.
pub const MAX_FROM_BUILDING_M: f64 = 300.0;

/// The place-shaped view of a point's place, for jurisdiction checks.
fn auth_place(place: &PointPlace) -> crate::auth::Place<'_> {
    crate::auth::Place {
        district_code: &place.district_code,
        street_id: place.street_id,
        grid_id: place.grid_id,
        party_id: None,
        department_id: None,
    }
}

impl Runtime {
    /// The grid index, reloaded when another process (or `anju import grids`) changed
    /// the grids' shapes since it was built.
    pub async fn grid_index(&self) -> Result<Arc<GridIndex>> {
        let stamp = self.store().grid_stamp().await?;
        if let Some((built, index)) = self.grids_cache().read().expect("grid lock").as_ref()
            && *built == stamp
        {
            return Ok(index.clone());
        }
        let index = Arc::new(load_index(self.store().as_ref()).await?);
        *self.grids_cache().write().expect("grid lock") = Some((stamp, index.clone()));
        Ok(index)
    }

    /// Where a WGS-84 point lies; `None` outside the city.
    pub async fn place_of(&self, point: Point) -> Result<Option<PointPlace>> {
        Ok(self.grid_index().await?.place_of(point.lon(), point.lat()))
    }

    /// A place for a unit at `point` of the building at `building`: within
    /// [`MAX_FROM_BUILDING_M`] of it, inside the city, in the caller's jurisdiction.
    async fn place_for_unit(
        &self,
        principal: &Principal,
        point: Point,
        building: &BuildingPlace,
    ) -> Result<PointPlace> {
        let site = Point::parse(building.lon, building.lat, "building")?;
        let away = point.distance_m(site);
        if away > MAX_FROM_BUILDING_M {
            return Err(Error::invalid(
                "point",
                format!(
                    "{away:.0} m from its building {} (at most {MAX_FROM_BUILDING_M:.0} m); correct the point or the building",
                    building.building_id
                ),
            ));
        }
        self.place_in_jurisdiction(principal, point).await
    }

    /// The place of a point inside the city and the caller's jurisdiction.
    async fn place_in_jurisdiction(
        &self,
        principal: &Principal,
        point: Point,
    ) -> Result<PointPlace> {
        let place = self.place_of(point).await?.ok_or_else(|| {
            Error::invalid("point", "outside the city's boundary (广州市行政区域之外)")
        })?;
        if !principal.covers(auth_place(&place)) {
            return Err(Error::Forbidden(
                "the point lies outside your jurisdiction".into(),
            ));
        }
        Ok(place)
    }

    /// The building a caller names, if they may see it; otherwise "no building", as if
    /// it did not exist.
    async fn visible_building(&self, principal: &Principal, id: i64) -> Result<BuildingPlace> {
        let missing = || Error::invalid("building_id", format!("no building {id}"));
        let building = self.store().building_place(id).await?.ok_or_else(missing)?;
        let place = crate::auth::Place {
            district_code: &building.district_code,
            street_id: Some(building.street_id),
            grid_id: Some(building.grid_id),
            party_id: None,
            department_id: None,
        };
        if principal.covers(place) {
            Ok(building)
        } else {
            Err(missing())
        }
    }

    /// Registers a unit in a building (inspectors and supervisors). Its grid comes from
    /// its point, which lies within 300 m of the building and inside the city; outside
    /// every grid, the unit takes its district from the district outline.
    pub async fn register_unit(
        &self,
        principal: &Principal,
        input: UnitInput,
        idem: Option<&IdempotencyKey>,
        respond: &Respond<'_, Unit>,
    ) -> Result<Idempotent<Unit>> {
        crate::policy::check(principal, crate::policy::Act::RegisterUnit)?;
        let point = parse_unit_values(
            &input.address_code,
            &input.address,
            input.lon,
            input.lat,
            input.floor_area,
            input.occupants,
        )?;
        let building = self.visible_building(principal, input.building_id).await?;
        let place = self.place_for_unit(principal, point, &building).await?;
        let store = self.store();
        if let Some(party) = input.party_id
            && !store.party_exists(party).await?
        {
            return Err(Error::invalid("party_id", format!("no party {party}")));
        }
        let row = UnitRow {
            address_code: input.address_code.trim().to_string(),
            address: input.address.trim().to_string(),
            point,
            floor_area: input.floor_area,
            occupants: input.occupants,
            building_id: building.building_id,
            place,
            party_id: input.party_id,
        };
        let result = store.create_unit(&row, idem, respond, self.now()).await?;
        if let Idempotent::Created(unit) = &result {
            self.index_unit(unit.id, None, (unit.lon, unit.lat));
        }
        Ok(result)
    }

    /// Corrects a unit's point (inspectors and supervisors who see the unit, with a
    /// reason): audited, re-gridded, and its open cases follow it.
    pub async fn correct_unit_point(
        &self,
        principal: &Principal,
        id: UnitId,
        point: Point,
        reason: &str,
    ) -> Result<Unit> {
        let unit = self.unit(principal, id).await?;
        crate::policy::check(principal, crate::policy::Act::CorrectPoint)?;
        let reason = crate::text::required("reason", reason, 500)?;
        let building = self
            .store()
            .building_place(unit.building_id.0)
            .await?
            .ok_or_else(|| Error::not_found("building", unit.building_id))?;
        let place = self.place_for_unit(principal, point, &building).await?;
        self.store()
            .correct_location(&LocationCorrection {
                kind: "unit".into(),
                id: id.0,
                from: (unit.lon, unit.lat),
                to: (point.lon(), point.lat()),
                grid_before: unit.grid_id,
                place,
                actor: format!("{}:{}", principal.role, principal.subject),
                reason: reason.to_string(),
                at: self.now(),
            })
            .await?;
        self.index_unit(id, Some((unit.lon, unit.lat)), (point.lon(), point.lat()));
        self.relocate_cases(&[id]).await?;
        self.unit(&Principal::system(), id).await
    }

    /// The corrections of a unit's point, oldest first, for the callers who see the unit.
    pub async fn unit_corrections(
        &self,
        principal: &Principal,
        id: UnitId,
    ) -> Result<Vec<crate::store::LocationCorrection>> {
        self.unit(principal, id).await?;
        Ok(self.store().location_corrections("unit", id.0).await?)
    }

    /// Corrects a building's point (supervisors and the inspectors who see it, with a
    /// reason): audited, and the building takes the grid its new point lies in.
    pub async fn correct_building_point(
        &self,
        principal: &Principal,
        id: i64,
        point: Point,
        reason: &str,
    ) -> Result<BuildingPlace> {
        let building = match self.visible_building(principal, id).await {
            Ok(b) => b,
            Err(_) => return Err(Error::not_found("building", id)),
        };
        crate::policy::check(principal, crate::policy::Act::CorrectPoint)?;
        let reason = crate::text::required("reason", reason, 500)?;
        let place = self.place_in_jurisdiction(principal, point).await?;
        self.store()
            .correct_location(&LocationCorrection {
                kind: "building".into(),
                id,
                from: (building.lon, building.lat),
                to: (point.lon(), point.lat()),
                grid_before: Some(building.grid_id),
                place,
                actor: format!("{}:{}", principal.role, principal.subject),
                reason: reason.to_string(),
                at: self.now(),
            })
            .await?;
        self.store()
            .building_place(id)
            .await?
            .ok_or_else(|| Error::not_found("building", id))
    }

    /// Checks the sites of imported records: every building inside the city, every unit
    /// inside it and within 300 m of its building (from the same import or the
    /// registry). Returns every refusal with the record's line.
    pub async fn check_sites(
        &self,
        records: &[(usize, crate::registry::Record)],
    ) -> Result<Vec<(usize, crate::error::FieldError)>> {
        use crate::registry::Record;
        let index = self.grid_index().await?;
        let mut buildings = std::collections::HashMap::new();
        let mut refused = Vec::new();
        let outside = || {
            crate::error::FieldError::new(
                "point",
                "outside the city's boundary (广州市行政区域之外)",
            )
        };
        for (line, r) in records {
            if let Record::Building { id, lon, lat, .. } = r {
                buildings.insert(id.0, (*lon, *lat));
                if index.place_of(*lon, *lat).is_none() {
                    refused.push((*line, outside()));
                }
            }
        }
        for (line, r) in records {
            if let Record::Unit {
                building_id,
                lon,
                lat,
                ..
            } = r
            {
                let site = match buildings.get(&building_id.0) {
                    Some(site) => Some(*site),
                    None => self
                        .store()
                        .building_place(building_id.0)
                        .await?
                        .map(|b| (b.lon, b.lat)),
                };
                // A missing building is the import's to refuse, all or nothing.
                let Some(site) = site else { continue };
                let (here, there) = (
                    Point::parse(*lon, *lat, "point")?,
                    Point::parse(site.0, site.1, "building")?,
                );
                let away = here.distance_m(there);
                if away > MAX_FROM_BUILDING_M {
                    refused.push((
                        *line,
                        crate::error::FieldError::new(
                            "point",
                            format!(
                                "{away:.0} m from its building {building_id} (at most {MAX_FROM_BUILDING_M:.0} m)"
                            ),
                        ),
                    ));
                } else if index.place_of(*lon, *lat).is_none() {
                    refused.push((*line, outside()));
                }
            }
        }
        Ok(refused)
    }

    /// Units outside every grid, for supervisors: a district's, or the city's.
    pub async fn ungridded_units(
        &self,
        principal: &Principal,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>> {
        crate::policy::check(principal, crate::policy::Act::ListUngridded)?;
        Ok(self
            .store()
            .ungridded_units(&principal.scope, after, limit.clamp(1, 1000))
            .await?)
    }

    /// Imports grid shapes (a GeoJSON FeatureCollection), then places every unit in
    /// the grid its point lies in (or in none); open cases follow their units.
    pub async fn import_grids(&self, text: &str) -> Result<GridImportReport> {
        let report = save_grid_file(self.store().as_ref(), text).await?;
        let report = self.regrid(report).await?;
        self.refresh_street_outlines().await?;
        Ok(report)
    }

    /// Places every unit in the grid its point lies in (or in none, in the district
    /// whose outline holds it); open cases follow their units.
    pub async fn regrid(&self, mut report: GridImportReport) -> Result<GridImportReport> {
        let index = self.grid_index().await?;
        let units = self.store().unit_grids().await?;
        let (moves, counted): (Vec<Move>, GridImportReport) =
            tokio::task::spawn_blocking(move || {
                let mut counted = GridImportReport::default();
                (
                    crate::spatial::grids::assign(&index, &units, &mut counted),
                    counted,
                )
            })
            .await
            .map_err(|e| Error::Internal(format!("placing units in grids: {e}")))?;
        report.units_checked = counted.units_checked;
        report.units_moved = counted.units_moved;
        report.units_outside = counted.units_outside;
        report.outside_sample = counted.outside_sample;
        report.units_outside_city = counted.units_outside_city;
        self.store().move_units(&moves).await?;
        let moved: Vec<UnitId> = moves.iter().map(|m| m.unit).collect();
        report.cases_relocated = self.relocate_cases(&moved).await?;
        Ok(report)
    }

    /// Moves the open cases of these units to their unit's place, each by a `relocate`
    /// event of the system (after moving it to the newest workflow, which has the
    /// command). Returns how many cases moved.
    pub async fn relocate_cases(&self, units: &[UnitId]) -> Result<u64> {
        let store = self.store();
        let (latest, _) = self
            .latest_definition(HAZARD_CASE)
            .expect("the hazard case workflow is always loaded");
        let mut moved = 0;
        for chunk in units.chunks(500) {
            let places: std::collections::HashMap<UnitId, Unit> = store
                .units_by_ids(chunk)
                .await?
                .into_iter()
                .map(|u| (u.id, u))
                .collect();
            let cases = store.open_cases_of_units(chunk).await?;
            let mut requests = Vec::new();
            let mut counted = Vec::new();
            for case in cases {
                let Some(unit) = places.get(&case.unit_id) else {
                    continue;
                };
                let s = &case.snapshot;
                if (s.grid_id, &s.district_code, s.street_id)
                    == (unit.grid_id, &unit.district_code, unit.street_id)
                {
                    continue;
                }
                if case.definition_id != latest {
                    requests.push(upgrade_request(case.snapshot.id));
                }
                let mut data = Map::new();
                data.insert("grid_id".into(), json!(unit.grid_id.map_or(0, |g| g.0)));
                data.insert("street_id".into(), json!(unit.street_id.map_or(0, |g| g.0)));
                data.insert("district_code".into(), json!(unit.district_code));
                let reason = format!(
                    "随房屋调整网格 / Follows unit {} to {}",
                    unit.id,
                    unit.grid_id
                        .map_or_else(|| "no grid".to_string(), |g| format!("grid {g}"))
                );
                counted.push(requests.len());
                requests.push(system_request(
                    s.id,
                    "relocate",
                    data,
                    Some(reason),
                    "system:regrid",
                ));
            }
            let results = self.submit_in_order(requests).await?;
            for (i, result) in results.into_iter().enumerate() {
                match result {
                    Ok(Applied::Done { .. }) if counted.contains(&i) => moved += 1,
                    Ok(_) => {}
                    Err(Error::Store(e)) => return Err(Error::Store(e)),
                    Err(e) => tracing::warn!(error = %e, "a case could not follow its unit"),
                }
            }
        }
        Ok(moved)
    }

    /// Moves up to `limit` open hazard cases of older workflow versions to the newest,
    /// each by an `upgrade` event of the system. Returns how many moved.
    pub async fn upgrade_open_cases(&self, limit: u32) -> Result<usize> {
        let Some((latest, _)) = self.latest_definition(HAZARD_CASE) else {
            return Ok(0);
        };
        let older = self.definitions_of(HAZARD_CASE, latest);
        let cases = self.store().open_cases_on(&older, limit).await?;
        let requests: Vec<_> = cases.into_iter().map(upgrade_request).collect();
        let results = self.submit_in_order(requests).await?;
        let mut upgraded = 0;
        for r in results {
            match r {
                Ok(Applied::Done { .. }) => upgraded += 1,
                Ok(_) => {}
                Err(Error::Store(e)) => return Err(Error::Store(e)),
                Err(e) => tracing::warn!(error = %e, "a case could not be upgraded"),
            }
        }
        Ok(upgraded)
    }
}

/// A command of the system on a case.
pub(super) fn system_request(
    case: CaseId,
    name: &str,
    data: Map<String, serde_json::Value>,
    reason: Option<String>,
    actor: &str,
) -> (TransitionRequest, Principal, Command) {
    (
        TransitionRequest {
            case_id: case,
            expected_version: None,
            timer_seq: None,
            actor: Actor::system(actor),
            command: name.to_string(),
            reason: reason.clone(),
            rule: None,
        },
        Principal::system(),
        Command {
            name: name.to_string(),
            data,
            reason,
        },
    )
}

fn upgrade_request(case: CaseId) -> (TransitionRequest, Principal, Command) {
    system_request(case, machine::UPGRADE, Map::new(), None, "system:workflow")
}

/// Imports grid shapes from a GeoJSON FeatureCollection: grids whose code exists get
/// the new shape; new codes create grids in the named community. Returns the report so
/// far; the caller then places every unit (see `Runtime::import_grids`).
pub async fn save_grid_file(
    store: &dyn crate::store::Store,
    text: &str,
) -> crate::Result<GridImportReport> {
    let features = parse_grid_collection(text)?;
    let codes: Vec<String> = features.iter().map(|f| f.code.clone()).collect();
    let existing: std::collections::BTreeMap<String, crate::domain::GridId> =
        store.grids_by_code(&codes).await?.into_iter().collect();
    let mut updates = Vec::new();
    let mut creates = Vec::new();
    for (i, f) in features.iter().enumerate() {
        let geometry = f.geometry.to_string();
        match existing.get(&f.code) {
            Some(id) => updates.push((*id, f.name.clone(), geometry)),
            None => {
                let at = |what: &str| format!("features[{i}].properties.{what}");
                let community_code = f.community_code.as_deref().ok_or_else(|| {
                    FieldError::new(
                        at("community_code"),
                        format!("grid {} is new: name its community", f.code),
                    )
                })?;
                let community =
                    store
                        .community_by_code(community_code)
                        .await?
                        .ok_or_else(|| {
                            FieldError::new(
                                at("community_code"),
                                format!("no community {community_code}"),
                            )
                        })?;
                let name = f.name.clone().ok_or_else(|| {
                    FieldError::new(
                        at("name"),
                        format!("grid {} is new: give it a name", f.code),
                    )
                })?;
                creates.push((f.code.clone(), name, community, geometry));
            }
        }
    }
    store.save_grids(&updates, &creates).await?;
    Ok(GridImportReport {
        grids_created: creates.len() as u64,
        grids_updated: updates.len() as u64,
        ..GridImportReport::default()
    })
}

/// The grid index of every grid with a shape in the store, with the grids' places.
pub async fn load_index(store: &dyn crate::store::Store) -> crate::Result<GridIndex> {
    let mut shapes = Vec::new();
    for (id, text) in store.grid_shapes().await? {
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("grid {id} geometry: {e}")))?;
        let shape = parse_trusted_area(&value, "geometry")
            .map_err(|e| StoreError::Corrupt(format!("grid {id} geometry: {}", e.message)))?;
        shapes.extend(GridShape::new(id, shape));
    }
    let places = store.grid_places().await?.into_iter().collect();
    Ok(GridIndex::with_places(shapes, places))
}
