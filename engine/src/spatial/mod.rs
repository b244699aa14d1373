//! Geography: datums (WGS-84 and GCJ-02), the spatial index of units and the grid polygons.

pub mod crs;
pub mod grids;
pub mod index;
pub mod shape;
