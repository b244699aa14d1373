//! Grids and the directory: grid shapes and places, communities, departments, inspectors and supervisors.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::domain::{CommunityId, DepartmentId, GridId, InspectorId, SupervisorId, UnitId};
use crate::model::*;
use crate::registry::Unit;
use crate::routing::DepartmentInfo;
use crate::spatial::grids::GridPlace;
use crate::store::Error;

/// Grids and the directory: grid shapes and places, communities, departments, inspectors
/// and supervisors.
#[async_trait]
pub trait GridStore: Send + Sync + 'static {
    // ----- grids ----------------------------------------------------------------------

    /// The grids with these codes: (code, id).
    async fn grids_by_code(&self, codes: &[String]) -> Result<Vec<(String, GridId)>, Error>;

    async fn community_by_code(&self, code: &str) -> Result<Option<CommunityId>, Error>;

    /// Writes grid shapes in one transaction: `updates` give existing grids a new
    /// geometry (and name, if one is given); `creates` are (code, name, community,
    /// geometry). Returns the ids of the created grids, in order.
    async fn save_grids(
        &self,
        updates: &[(GridId, Option<String>, String)],
        creates: &[(String, String, CommunityId, String)],
    ) -> crate::Result<Vec<GridId>>;

    async fn grid(&self, id: GridId) -> Result<Option<GridRecord>, Error>;

    /// The units of a grid, by id, after `after`.
    async fn grid_units(
        &self,
        id: GridId,
        after: Option<UnitId>,
        limit: u32,
    ) -> Result<Vec<Unit>, Error>;

    /// Every grid that has a shape: (id, GeoJSON geometry).
    async fn grid_shapes(&self) -> Result<Vec<(GridId, String)>, Error>;

    /// Every grid's community, street and district.
    async fn grid_places(&self) -> Result<Vec<(GridId, GridPlace)>, Error>;

    /// How many grids have shapes, and when a shape last changed: a process whose grid
    /// index was built at another stamp reloads it.
    async fn grid_stamp(&self) -> Result<(i64, i64), Error>;

    /// Every street, by id, with its stored outline.
    async fn streets(&self) -> Result<Vec<StreetRecord>, Error>;

    /// The grid stamp the stored street outlines were computed at, and how many there
    /// are (`None` if none are stored).
    async fn outline_stamp(&self) -> Result<Option<((i64, i64), i64)>, Error>;

    /// Replaces every street outline, computed at grid stamp `stamp`, in one
    /// transaction.
    async fn save_outlines(
        &self,
        stamp: (i64, i64),
        outlines: &[(crate::domain::StreetId, String)],
    ) -> Result<(), Error>;

    async fn departments(&self) -> Result<Vec<DepartmentInfo>, Error>;

    async fn inspector_grids(&self, id: InspectorId) -> Result<Option<BTreeSet<GridId>>, Error>;

    /// The inspectors covering a grid, lowest id first.
    async fn grid_inspectors(&self, grid: GridId) -> Result<Vec<InspectorId>, Error>;

    async fn supervisor(&self, id: SupervisorId) -> Result<Option<SupervisorRecord>, Error>;

    /// Every supervisor, by id.
    async fn supervisors(&self) -> Result<Vec<SupervisorRecord>, Error>;

    /// Every inspector with name, shift and grids, by id.
    async fn inspectors(&self) -> Result<Vec<InspectorListing>, Error>;

    async fn department_exists(&self, id: DepartmentId) -> Result<bool, Error>;
}
