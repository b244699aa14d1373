//! Geography: datums (WGS-84 and GCJ-02), the spatial index of units, grid polygons, GeoJSON areas and the outlines of mainland China, Guangzhou and its districts.

pub mod crs;
pub mod grids;
pub mod index;
pub mod outline;
pub mod shape;
