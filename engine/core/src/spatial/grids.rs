//! Grids (网格) as polygons: an R-tree of their bounding boxes to find the grid that contains a point, and the plan of a GeoJSON grid import.

use geo::{BoundingRect, Intersects};
use rstar::{AABB, RTree, RTreeObject};
use serde::Serialize;
use serde_json::Value;

use std::collections::HashMap;

use crate::domain::{CommunityId, GridId, StreetId, UnitId};
use crate::error::FieldError;
use crate::spatial::index::Located;
pub use crate::spatial::shape::{parse_area, rectangle};

/// A grid's shape in the index.
#[derive(Debug, Clone)]
pub struct GridShape {
    pub id: GridId,
    pub shape: geo::MultiPolygon<f64>,
    envelope: AABB<[f64; 2]>,
}

impl GridShape {
    pub fn new(id: GridId, shape: geo::MultiPolygon<f64>) -> Option<GridShape> {
        let rect = shape.bounding_rect()?;
        Some(GridShape {
            id,
            envelope: AABB::from_corners(
                [rect.min().x, rect.min().y],
                [rect.max().x, rect.max().y],
            ),
            shape,
        })
    }
}

impl RTreeObject for GridShape {
    type Envelope = AABB<[f64; 2]>;

    fn envelope(&self) -> Self::Envelope {
        self.envelope
    }
}

/// A grid's community, street and district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridPlace {
    pub community_id: CommunityId,
    pub street_id: StreetId,
    pub district_code: String,
}

/// Where a point lies: in the grid whose polygon holds it (with the grid's community,
/// street and district), or, outside every grid, only in the district whose outline
/// holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointPlace {
    pub grid_id: Option<GridId>,
    pub community_id: Option<CommunityId>,
    pub street_id: Option<StreetId>,
    pub district_code: String,
}

/// Every grid with a shape (and, when loaded from the store, its place), to place
/// points in grids.
#[derive(Debug, Default)]
pub struct GridIndex {
    tree: RTree<GridShape>,
    places: HashMap<GridId, GridPlace>,
}

impl GridIndex {
    pub fn new(shapes: Vec<GridShape>) -> GridIndex {
        GridIndex {
            tree: RTree::bulk_load(shapes),
            places: HashMap::new(),
        }
    }

    pub fn with_places(shapes: Vec<GridShape>, places: HashMap<GridId, GridPlace>) -> GridIndex {
        GridIndex {
            tree: RTree::bulk_load(shapes),
            places,
        }
    }

    /// Every street's outline: the union of its grids' shapes (grids loaded with
    /// places only), by street.
    pub fn street_outlines(&self) -> std::collections::BTreeMap<StreetId, geo::MultiPolygon<f64>> {
        let mut by_street: std::collections::BTreeMap<StreetId, Vec<&geo::MultiPolygon<f64>>> =
            Default::default();
        for g in self.tree.iter() {
            if let Some(p) = self.places.get(&g.id) {
                by_street.entry(p.street_id).or_default().push(&g.shape);
            }
        }
        by_street
            .into_iter()
            .map(|(street, shapes)| (street, geo::unary_union(shapes)))
            .collect()
    }

    /// Every grid's place (of grids loaded with places).
    pub fn places(&self) -> impl Iterator<Item = (&GridId, &GridPlace)> {
        self.places.iter()
    }

    /// Where a point lies: its grid and the grid's place, or, outside every grid, its
    /// district by the district outlines; `None` outside the city.
    pub fn place_of(&self, lon: f64, lat: f64) -> Option<PointPlace> {
        if let Some(grid) = self.grid_at(lon, lat)
            && let Some(p) = self.places.get(&grid)
        {
            return Some(PointPlace {
                grid_id: Some(grid),
                community_id: Some(p.community_id),
                street_id: Some(p.street_id),
                district_code: p.district_code.clone(),
            });
        }
        crate::spatial::outline::district_at(lon, lat).map(|d| PointPlace {
            grid_id: None,
            community_id: None,
            street_id: None,
            district_code: d.code.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.tree.size()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }

    /// The grid a point belongs to. A grid holds the points inside its polygon and on
    /// its edges; a point on an edge or vertex that grids share (or where grids
    /// overlap, which they should not) belongs to the one with the lowest id. So every
    /// point of the grids' union belongs to exactly one grid, whatever the tree's layout.
    pub fn grid_at(&self, lon: f64, lat: f64) -> Option<GridId> {
        let point = geo::Point::new(lon, lat);
        self.tree
            .locate_in_envelope_intersecting(&AABB::from_point([lon, lat]))
            .filter(|g| g.shape.intersects(&point))
            .map(|g| g.id)
            .min()
    }
}

/// One grid of a GeoJSON import, parsed.
#[derive(Debug, Clone)]
pub struct GridFeature {
    pub code: String,
    pub name: Option<String>,
    /// For a grid not yet in the registry: the community it belongs to, by code.
    pub community_code: Option<String>,
    pub geometry: Value,
    pub shape: geo::MultiPolygon<f64>,
}

/// Parses an RFC 7946 FeatureCollection of grids: each feature a Polygon or
/// MultiPolygon with `properties.code` (and, for a new grid, `name` and
/// `community_code`). Errors name the feature.
pub fn parse_grid_collection(text: &str) -> Result<Vec<GridFeature>, FieldError> {
    let root: Value = serde_json::from_str(text)
        .map_err(|e| FieldError::new("file", format!("not GeoJSON: {e}")))?;
    if let Some((path, c)) = crate::text::find_forbidden(&root) {
        return Err(FieldError::new(
            path,
            format!("holds the control character U+{:04X}", c as u32),
        ));
    }
    let features = match (
        root.get("type").and_then(Value::as_str),
        root.get("features"),
    ) {
        (Some("FeatureCollection"), Some(Value::Array(features))) => features,
        _ => {
            return Err(FieldError::new(
                "file",
                "a grid file is a FeatureCollection",
            ));
        }
    };
    let mut out = Vec::with_capacity(features.len());
    let mut codes = std::collections::BTreeSet::new();
    for (i, f) in features.iter().enumerate() {
        let at = |what: &str| format!("features[{i}].{what}");
        let prop = |name: &str| {
            f.get("properties")
                .and_then(|p| p.get(name))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let code = prop("code")
            .ok_or_else(|| FieldError::new(at("properties.code"), "every grid needs a code"))?;
        if !codes.insert(code.clone()) {
            return Err(FieldError::new(
                at("properties.code"),
                format!("grid {code} appears twice"),
            ));
        }
        let geometry = f
            .get("geometry")
            .filter(|g| g.is_object())
            .cloned()
            .ok_or_else(|| FieldError::new(at("geometry"), "a grid needs a geometry"))?;
        let shape = parse_area(&geometry, &at("geometry"))?;
        out.push(GridFeature {
            name: prop("name"),
            community_code: prop("community_code"),
            code,
            geometry,
            shape,
        });
    }
    Ok(out)
}

/// What a grid import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GridImportReport {
    pub grids_created: u64,
    pub grids_updated: u64,
    pub units_checked: u64,
    pub units_moved: u64,
    /// Units inside no grid (they keep their district, by its outline, and have no
    /// grid); `anju units ungridded` and `GET /units/ungridded` list them.
    pub units_outside: u64,
    pub outside_sample: Vec<UnitId>,
    /// Units outside the city's outline as well: they keep their place.
    pub units_outside_city: u64,
    /// Open cases that followed their unit (as `relocate` events).
    pub cases_relocated: u64,
}

/// A unit to move to another place.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub unit: UnitId,
    pub place: PointPlace,
}

/// Places every unit in the grid whose polygon holds its point (or in no grid, in the
/// district whose outline holds it). Returns the units whose place changes, and the
/// report's counts. `units` are (unit, its grid, its district) now.
pub fn assign(
    index: &GridIndex,
    units: &[(Located, Option<GridId>, String)],
    report: &mut GridImportReport,
) -> Vec<Move> {
    let mut moves = Vec::new();
    for (u, grid, district) in units {
        report.units_checked += 1;
        let (lon, lat) = u.lon_lat();
        match index.place_of(lon, lat) {
            Some(place) => {
                if place.grid_id.is_none() {
                    report.units_outside += 1;
                    if report.outside_sample.len() < 20 {
                        report.outside_sample.push(u.id);
                    }
                }
                if (place.grid_id, &place.district_code) != (*grid, district) {
                    moves.push(Move { unit: u.id, place });
                }
            }
            None => report.units_outside_city += 1,
        }
    }
    report.units_moved = moves.len() as u64;
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(id: i64, x: f64, y: f64, size: f64) -> GridShape {
        let g = rectangle((x, y), (x + size, y + size));
        GridShape::new(GridId(id), parse_area(&g, "g").unwrap()).unwrap()
    }

    #[test]
    fn points_fall_in_the_grid_that_contains_them() {
        let idx = GridIndex::new(vec![
            square(1, 113.0, 23.0, 0.01),
            square(2, 113.01, 23.0, 0.01),
        ]);
        assert_eq!(idx.grid_at(113.005, 23.005), Some(GridId(1)));
        assert_eq!(idx.grid_at(113.015, 23.005), Some(GridId(2)));
        assert_eq!(idx.grid_at(113.025, 23.005), None);
    }

    /// A street's outline is the union of its grids: neighbours merge into one polygon
    /// of their summed area, a grid apart stays a polygon of its own, and another
    /// street's grid is not in it.
    #[test]
    fn a_streets_outline_is_the_union_of_its_grids() {
        use geo::Area;
        let place = |street| GridPlace {
            community_id: CommunityId(1),
            street_id: StreetId(street),
            district_code: "440106".into(),
        };
        let idx = GridIndex::with_places(
            vec![
                square(1, 113.0, 23.0, 0.01),
                square(2, 113.01, 23.0, 0.01),
                square(3, 113.05, 23.0, 0.01),
                square(4, 113.0, 23.01, 0.01),
            ],
            [(1, 7), (2, 7), (3, 7), (4, 8)]
                .into_iter()
                .map(|(g, s)| (GridId(g), place(s)))
                .collect(),
        );
        let outlines = idx.street_outlines();
        assert_eq!(outlines.len(), 2);
        let seven = &outlines[&StreetId(7)];
        assert_eq!(seven.0.len(), 2, "grids 1 and 2 merge; grid 3 stands apart");
        assert!((seven.unsigned_area() - 3.0e-4).abs() < 1e-12);
        let eight = &outlines[&StreetId(8)];
        assert_eq!(eight.0.len(), 1);
        assert!((eight.unsigned_area() - 1.0e-4).abs() < 1e-12);
        // The merged polygon of grids 1 and 2 has one ring of 4 corners (closed: 5).
        let merged = seven
            .0
            .iter()
            .max_by(|a, b| a.unsigned_area().total_cmp(&b.unsigned_area()))
            .unwrap();
        assert_eq!(merged.exterior().0.len(), 5);
        assert!(merged.interiors().is_empty());
    }

    /// Points on shared edges and vertices, and on the outer edge, belong to exactly
    /// one grid: the lowest id among those whose closed polygon holds them.
    #[test]
    fn border_points_belong_to_exactly_one_grid() {
        // Four squares meeting at (113.01, 23.01).
        let idx = GridIndex::new(vec![
            square(4, 113.01, 23.01, 0.01),
            square(2, 113.01, 23.0, 0.01),
            square(3, 113.0, 23.01, 0.01),
            square(1, 113.0, 23.0, 0.01),
        ]);
        let g = |lon, lat| idx.grid_at(lon, lat).map(|g| g.0);
        assert_eq!(g(113.01, 23.01), Some(1), "the shared vertex");
        assert_eq!(g(113.01, 23.005), Some(1), "edge of 1 and 2");
        assert_eq!(g(113.015, 23.01), Some(2), "edge of 2 and 4");
        assert_eq!(g(113.005, 23.01), Some(1), "edge of 1 and 3");
        assert_eq!(g(113.01, 23.015), Some(3), "edge of 3 and 4");
        assert_eq!(g(113.02, 23.015), Some(4), "outer edge");
        assert_eq!(g(113.0, 23.0), Some(1), "outer corner");
        assert_eq!(g(113.02, 23.02), Some(4), "outer corner");
        assert_eq!(g(113.0201, 23.02), None);
        // Many points along every edge: each is placed, and in a grid whose closed
        // polygon holds it.
        for i in 0..=100 {
            let t = 113.0 + 0.02 * f64::from(i) / 100.0;
            let u = 23.0 + 0.02 * f64::from(i) / 100.0;
            for (lon, lat) in [
                (t, 23.0),
                (t, 23.01),
                (t, 23.02),
                (113.0, u),
                (113.01, u),
                (113.02, u),
            ] {
                let got = idx.grid_at(lon, lat);
                assert!(got.is_some(), "{lon},{lat}");
            }
        }
    }

    #[test]
    fn assignment_moves_units_and_reports_those_outside() {
        // Two grids in Tianhe (440106); a unit moves between them, one is outside every
        // grid but in Tianhe, one is outside the city.
        let place = |street: i64| GridPlace {
            community_id: CommunityId(street),
            street_id: StreetId(street),
            district_code: "440106".into(),
        };
        let idx = GridIndex::with_places(
            vec![
                square(1, 113.35, 23.13, 0.01),
                square(2, 113.36, 23.13, 0.01),
            ],
            [(GridId(1), place(1)), (GridId(2), place(2))].into(),
        );
        let tianhe = || "440106".to_string();
        let units = vec![
            (
                Located::new(UnitId(1), 113.355, 23.135),
                Some(GridId(1)),
                tianhe(),
            ),
            (
                Located::new(UnitId(2), 113.365, 23.135),
                Some(GridId(1)),
                tianhe(),
            ),
            (
                Located::new(UnitId(3), 113.3246, 23.1375),
                Some(GridId(2)),
                tianhe(),
            ),
            (
                Located::new(UnitId(4), 100.0, 10.0),
                Some(GridId(2)),
                tianhe(),
            ),
        ];
        let mut report = GridImportReport::default();
        let moves = assign(&idx, &units, &mut report);
        assert_eq!(
            moves,
            [
                Move {
                    unit: UnitId(2),
                    place: PointPlace {
                        grid_id: Some(GridId(2)),
                        community_id: Some(CommunityId(2)),
                        street_id: Some(StreetId(2)),
                        district_code: "440106".into(),
                    }
                },
                Move {
                    unit: UnitId(3),
                    place: PointPlace {
                        grid_id: None,
                        community_id: None,
                        street_id: None,
                        district_code: "440106".into(),
                    }
                }
            ]
        );
        assert_eq!(
            (
                report.units_checked,
                report.units_moved,
                report.units_outside,
                report.units_outside_city
            ),
            (4, 2, 1, 1)
        );
        assert_eq!(report.outside_sample, [UnitId(3)]);
    }

    #[test]
    fn grid_files_are_checked_feature_by_feature() {
        let ok = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"code":"G1","name":"第1网格"},"geometry":{"type":"Polygon","coordinates":[[[113,23],[113.01,23],[113.01,23.01],[113,23]]]}}]}"#;
        let grids = parse_grid_collection(ok).unwrap();
        assert_eq!(grids[0].code, "G1");
        let no_code = ok.replace(r#""code":"G1","#, "");
        assert_eq!(
            parse_grid_collection(&no_code).unwrap_err().field,
            "features[0].properties.code"
        );
        let point = ok.replace(
            r#"{"type":"Polygon","coordinates":[[[113,23],[113.01,23],[113.01,23.01],[113,23]]]}"#,
            r#"{"type":"Point","coordinates":[113,23]}"#,
        );
        assert_eq!(
            parse_grid_collection(&point).unwrap_err().field,
            "features[0].geometry"
        );
        let bad_lat = ok.replace("23.01]", "93.01]");
        assert_eq!(
            parse_grid_collection(&bad_lat).unwrap_err().field,
            "features[0].geometry.lat"
        );
        assert_eq!(parse_grid_collection("{}").unwrap_err().field, "file");
    }
}
