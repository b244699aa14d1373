//! Units: registration, points and places, corrections, grades, and the public placards.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::auth::Scope;
use crate::domain::{GridId, UnitId};
use crate::model::*;
use crate::registry::{BuildingPlace, Unit, UnitRow};
use crate::spatial::grids::Move;
use crate::spatial::index::Located;
use crate::store::Error;

/// Units: registration, points and places, corrections, grades, and the public placards.
#[async_trait]
pub trait UnitStore: Send + Sync + 'static {
    async fn create_unit(
        &self,
        unit: &UnitRow,
        idem: Option<&IdempotencyKey>,
        respond: &Respond<'_, Unit>,
        now: DateTime<Utc>,
    ) -> crate::Result<Idempotent<Unit>>;

    async fn unit(&self, id: UnitId) -> Result<Option<Unit>, Error>;

    /// The units with these ids (those that exist), in no particular order.
    async fn units_by_ids(&self, ids: &[UnitId]) -> Result<Vec<Unit>, Error>;

    /// Every unit's position, for building the spatial index.
    async fn unit_points(&self) -> Result<Vec<Located>, Error>;

    /// Every unit's position, current grid and district.
    async fn unit_grids(&self) -> Result<Vec<(Located, Option<GridId>, String)>, Error>;

    /// Units outside every grid, in the caller's scope, by id after `after`.
    async fn ungridded_units(
        &self,
        scope: &Scope,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>, Error>;

    /// Corrects a unit's or building's point (and a unit's place), with its audit row,
    /// in one transaction.
    async fn correct_location(&self, c: &LocationCorrection) -> crate::Result<()>;

    /// A unit's or building's point corrections, oldest first.
    async fn location_corrections(
        &self,
        kind: &str,
        id: i64,
    ) -> Result<Vec<LocationCorrection>, Error>;

    /// Moves units to other places (grid, community, street, district) in one
    /// transaction. Their open cases are moved by the runtime, as events.
    async fn move_units(&self, moves: &[Move]) -> Result<u64, Error>;

    async fn building_place(&self, id: i64) -> Result<Option<BuildingPlace>, Error>;

    /// A unit's grade history, oldest first.
    async fn unit_grades(&self, unit: UnitId) -> Result<Vec<GradeRecord>, Error>;

    /// A unit's public placard.
    async fn placard(&self, public_code: &str) -> Result<Option<Placard>, Error>;

    /// The units of a community graded `max_stars` or lower, lowest first.
    async fn low_grade_placards(
        &self,
        community_code: &str,
        max_stars: u8,
    ) -> Result<Option<(String, Vec<Placard>)>, Error>;
}
