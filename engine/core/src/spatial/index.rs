//! The spatial index of units: an R-tree over points on the unit sphere, so that radius and nearest-neighbour queries are exact great-circle queries.

use rstar::{AABB, PointDistance, RStarInsertionStrategy, RTree, RTreeObject, RTreeParams};

use crate::domain::{Point, UnitId};
use crate::spatial::crs::{Crs, gcj02_from_wgs84};
use crate::spatial::shape::Area;

/// The mean Earth radius the haversine distance uses, in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A unit in the index: its id, its stored coordinates, and its position as a point on
/// the unit sphere. Box and polygon queries test the stored coordinates, never ones
/// recomputed from the sphere (which differ in the last bits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Located {
    pub id: UnitId,
    lon: f64,
    lat: f64,
    xyz: [f64; 3],
}

fn to_xyz(lon: f64, lat: f64) -> [f64; 3] {
    let (lon, lat) = (lon.to_radians(), lat.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// The straight-line (chord) distance through the unit sphere between two points that
/// are `metres` apart on its surface; monotonic in the great-circle distance.
fn chord(metres: f64) -> f64 {
    let angle = (metres / EARTH_RADIUS_M).min(std::f64::consts::PI);
    2.0 * (angle / 2.0).sin()
}

/// The great-circle distance in metres of a chord.
fn arc_m(chord: f64) -> f64 {
    2.0 * EARTH_RADIUS_M * (chord / 2.0).clamp(0.0, 1.0).asin()
}

impl Located {
    pub fn new(id: UnitId, lon: f64, lat: f64) -> Located {
        Located {
            id,
            lon,
            lat,
            xyz: to_xyz(lon, lat),
        }
    }

    /// Longitude and latitude, in degrees, as stored.
    pub fn lon_lat(&self) -> (f64, f64) {
        (self.lon, self.lat)
    }
}

impl RTreeObject for Located {
    type Envelope = AABB<[f64; 3]>;

    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.xyz)
    }
}

impl PointDistance for Located {
    fn distance_2(&self, p: &[f64; 3]) -> f64 {
        let d = [self.xyz[0] - p[0], self.xyz[1] - p[1], self.xyz[2] - p[2]];
        d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    }
}

/// The range of `f` over an angle interval [a, b] (radians, b - a < 2π), given the
/// angles in it where `f` has its extremes.
fn trig_range(a: f64, b: f64, f: fn(f64) -> f64, extremes: &[f64]) -> (f64, f64) {
    let (mut lo, mut hi) = (f(a).min(f(b)), f(a).max(f(b)));
    for &e in extremes {
        // Every angle congruent to `e` that falls in [a, b].
        let mut t = e + (((a - e) / std::f64::consts::TAU).ceil()) * std::f64::consts::TAU;
        while t <= b {
            lo = lo.min(f(t));
            hi = hi.max(f(t));
            t += std::f64::consts::TAU;
        }
    }
    (lo, hi)
}

fn mul_range(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let p = [a.0 * b.0, a.0 * b.1, a.1 * b.0, a.1 * b.1];
    (
        p.iter().copied().fold(f64::INFINITY, f64::min),
        p.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    )
}

/// The box in sphere coordinates that holds every point of a longitude–latitude box.
fn sphere_envelope(min_lon: f64, min_lat: f64, max_lon: f64, max_lat: f64) -> AABB<[f64; 3]> {
    use std::f64::consts::{FRAC_PI_2, PI};
    let (l0, l1) = (min_lon.to_radians(), max_lon.to_radians());
    let (p0, p1) = (min_lat.to_radians(), max_lat.to_radians());
    let cos_lat = trig_range(p0, p1, f64::cos, &[0.0, PI]);
    let cos_lon = trig_range(l0, l1, f64::cos, &[0.0, PI]);
    let sin_lon = trig_range(l0, l1, f64::sin, &[FRAC_PI_2, -FRAC_PI_2]);
    let x = mul_range(cos_lat, cos_lon);
    let y = mul_range(cos_lat, sin_lon);
    let z = (p0.sin(), p1.sin());
    // A hair of slack for rounding: candidates are filtered exactly afterwards.
    let e = 1e-12;
    AABB::from_corners([x.0 - e, y.0 - e, z.0 - e], [x.1 + e, y.1 + e, z.1 + e])
}

/// A unit found by a query, with its distance from the query point where there is one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub id: UnitId,
    pub distance_m: Option<f64>,
}

/// Wider nodes than rstar's default (6): a dense city's radius queries return
/// thousands of units, and visit fewer nodes for them.
#[derive(Debug, Clone, Copy)]
pub struct Params;

impl RTreeParams for Params {
    const MIN_SIZE: usize = 6;
    const MAX_SIZE: usize = 16;
    const REINSERTION_COUNT: usize = 4;
    type DefaultInsertionStrategy = RStarInsertionStrategy;
}

/// Every unit's position, for radius, box, polygon and nearest queries.
#[derive(Debug)]
pub struct UnitIndex {
    tree: RTree<Located, Params>,
}

impl Default for UnitIndex {
    fn default() -> UnitIndex {
        UnitIndex {
            tree: RTree::new_with_params(),
        }
    }
}

impl UnitIndex {
    /// Builds the index in one pass (bulk loading packs the tree far better than
    /// inserting one by one).
    pub fn bulk(units: Vec<Located>) -> UnitIndex {
        UnitIndex {
            tree: RTree::bulk_load_with_params(units),
        }
    }

    pub fn len(&self) -> usize {
        self.tree.size()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }

    pub fn insert(&mut self, id: UnitId, lon: f64, lat: f64) {
        self.tree.insert(Located::new(id, lon, lat));
    }

    /// Moves a unit (or adds it, if it was not indexed).
    pub fn relocate(&mut self, id: UnitId, from: Option<(f64, f64)>, to: (f64, f64)) {
        if let Some((lon, lat)) = from {
            self.tree.remove(&Located::new(id, lon, lat));
        }
        self.insert(id, to.0, to.1);
    }

    /// Units within `metres` of `center`, in no particular order.
    pub fn within_radius_unordered(&self, center: Point, metres: f64) -> Vec<Hit> {
        let q = to_xyz(center.lon(), center.lat());
        let c = chord(metres);
        self.tree
            .locate_within_distance(q, c * c)
            .map(|u| Hit {
                id: u.id,
                distance_m: Some(arc_m(u.distance_2(&q).sqrt())),
            })
            .collect()
    }

    /// Units within `metres` of `center`, nearest first (ties by id).
    pub fn within_radius(&self, center: Point, metres: f64) -> Vec<Hit> {
        let q = to_xyz(center.lon(), center.lat());
        let c2 = chord(metres).powi(2);
        let found: Vec<(f64, UnitId)> = self
            .tree
            .locate_within_distance(q, c2)
            .map(|u| (u.distance_2(&q), u.id))
            .collect();
        // A dense area returns thousands of units. Sort them on one integer each (the
        // squared chord scaled to 32 bits, then the unit's position in `found`), which
        // is much faster than comparing pairs; then put the few that share a scaled
        // value in exact order, which takes one pass over an almost sorted list.
        let scale = f64::from(u32::MAX) / c2.max(f64::MIN_POSITIVE);
        let mut keys: Vec<u64> = found
            .iter()
            .enumerate()
            .map(|(i, (d2, _))| (((d2 * scale).min(f64::from(u32::MAX)) as u64) << 32) | i as u64)
            .collect();
        keys.sort_unstable();
        let mut sorted: Vec<(f64, UnitId)> = keys
            .iter()
            .map(|k| found[(k & 0xffff_ffff) as usize])
            .collect();
        for i in 1..sorted.len() {
            let mut j = i;
            while j > 0 && (sorted[j].0, sorted[j].1) < (sorted[j - 1].0, sorted[j - 1].1) {
                sorted.swap(j, j - 1);
                j -= 1;
            }
        }
        sorted
            .into_iter()
            .map(|(d2, id)| Hit {
                id,
                distance_m: Some(arc_m(d2.sqrt())),
            })
            .collect()
    }

    /// The `k` units nearest to `center`, nearest first.
    pub fn nearest(&self, center: Point, k: usize) -> Vec<Hit> {
        let q = to_xyz(center.lon(), center.lat());
        self.tree
            .nearest_neighbor_iter_with_distance_2(&q)
            .take(k)
            .map(|(u, d2)| Hit {
                id: u.id,
                distance_m: Some(arc_m(d2.sqrt())),
            })
            .collect()
    }

    /// Units inside a WGS-84 longitude–latitude box (edges included), by id.
    pub fn within_bbox(&self, min_lon: f64, min_lat: f64, max_lon: f64, max_lat: f64) -> Vec<Hit> {
        let area = Area::Box {
            min: (min_lon, min_lat),
            max: (max_lon, max_lat),
        };
        self.within_area(&area, Crs::Wgs84)
    }

    /// Units inside a WGS-84 polygon (edges included, holes excluded), by id.
    pub fn within_polygon(&self, shape: &geo::MultiPolygon<f64>) -> Vec<Hit> {
        self.within_area(&Area::Shape(shape.clone()), Crs::Wgs84)
    }

    /// Units inside an area given in `crs` (edges included), by id. Each unit is tested
    /// at its stored coordinates, converted into the area's datum: a GCJ-02 area holds
    /// exactly the units whose GCJ-02 position it holds.
    pub fn within_area(&self, area: &Area, crs: Crs) -> Vec<Hit> {
        let Some((lo, hi)) = area.wgs84_envelope(crs) else {
            return Vec::new();
        };
        let mut hits: Vec<Hit> = self
            .candidates(lo.0, lo.1, hi.0, hi.1)
            .filter(|u| {
                let (lon, lat) = match crs {
                    Crs::Wgs84 => (u.lon, u.lat),
                    Crs::Gcj02 => gcj02_from_wgs84(u.lon, u.lat),
                };
                area.holds(lon, lat)
            })
            .map(|u| Hit {
                id: u.id,
                distance_m: None,
            })
            .collect();
        hits.sort_unstable_by_key(|h| h.id);
        hits
    }

    fn candidates(
        &self,
        min_lon: f64,
        min_lat: f64,
        max_lon: f64,
        max_lat: f64,
    ) -> impl Iterator<Item = &Located> {
        let envelope = sphere_envelope(min_lon, min_lat, max_lon, max_lat);
        self.tree
            .locate_in_envelope_intersecting(&envelope)
            .collect::<Vec<_>>()
            .into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};
    use rstar::Envelope;

    fn random_city(n: usize, seed: u64) -> Vec<(UnitId, f64, f64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (1..=n as i64)
            .map(|i| {
                (
                    UnitId(i),
                    rng.random_range(113.0..113.8),
                    rng.random_range(22.6..23.6),
                )
            })
            .collect()
    }

    fn index(units: &[(UnitId, f64, f64)]) -> UnitIndex {
        UnitIndex::bulk(
            units
                .iter()
                .map(|(id, lon, lat)| Located::new(*id, *lon, *lat))
                .collect(),
        )
    }

    fn p(lon: f64, lat: f64) -> Point {
        Point::parse(lon, lat, "p").unwrap()
    }

    #[test]
    fn radius_queries_equal_a_brute_force_scan() {
        let units = random_city(20_000, 1);
        let idx = index(&units);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..50 {
            let c = p(rng.random_range(113.0..113.8), rng.random_range(22.6..23.6));
            let r = rng.random_range(50.0..3000.0);
            let mut expect: Vec<UnitId> = units
                .iter()
                .filter(|(_, lon, lat)| c.distance_m(p(*lon, *lat)) <= r)
                .map(|(id, _, _)| *id)
                .collect();
            let mut got: Vec<UnitId> = idx.within_radius(c, r).iter().map(|h| h.id).collect();
            expect.sort();
            got.sort();
            assert_eq!(got, expect, "radius {r} around {c:?}");
        }
    }

    #[test]
    fn radius_hits_come_nearest_first_with_true_distances() {
        let units = random_city(5_000, 3);
        let idx = index(&units);
        let c = p(113.4, 23.1);
        let hits = idx.within_radius(c, 5_000.0);
        assert!(hits.len() > 10);
        for pair in hits.windows(2) {
            assert!(pair[0].distance_m <= pair[1].distance_m);
        }
        for h in &hits {
            let (_, lon, lat) = units[(h.id.0 - 1) as usize];
            assert!((h.distance_m.unwrap() - c.distance_m(p(lon, lat))).abs() < 0.01);
        }
    }

    #[test]
    fn nearest_equals_a_brute_force_scan() {
        let units = random_city(10_000, 4);
        let idx = index(&units);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..50 {
            let c = p(rng.random_range(112.9..113.9), rng.random_range(22.5..23.7));
            let k = rng.random_range(1..40);
            let mut all: Vec<(f64, UnitId)> = units
                .iter()
                .map(|(id, lon, lat)| (c.distance_m(p(*lon, *lat)), *id))
                .collect();
            all.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let got = idx.nearest(c, k);
            assert_eq!(got.len(), k);
            for (h, (d, _)) in got.iter().zip(&all) {
                // Ties aside, the k-th distance must match exactly.
                assert!((h.distance_m.unwrap() - d).abs() < 0.01);
            }
        }
    }

    #[test]
    fn bbox_and_polygon_queries_equal_a_brute_force_scan() {
        use geo::Intersects;
        let units = random_city(20_000, 6);
        let idx = index(&units);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..30 {
            let (lon0, lat0) = (rng.random_range(113.0..113.7), rng.random_range(22.6..23.5));
            let (lon1, lat1) = (
                lon0 + rng.random_range(0.001..0.2),
                lat0 + rng.random_range(0.001..0.2),
            );
            let mut expect: Vec<UnitId> = units
                .iter()
                .filter(|(_, lon, lat)| (lon0..=lon1).contains(lon) && (lat0..=lat1).contains(lat))
                .map(|(id, _, _)| *id)
                .collect();
            let mut got: Vec<UnitId> = idx
                .within_bbox(lon0, lat0, lon1, lat1)
                .iter()
                .map(|h| h.id)
                .collect();
            expect.sort();
            got.sort();
            assert_eq!(got, expect);
            // A triangle with a hole.
            let outer = vec![(lon0, lat0), (lon1, lat0), (lon0, lat1), (lon0, lat0)];
            let (hx, hy) = (lon0 + (lon1 - lon0) * 0.1, lat0 + (lat1 - lat0) * 0.1);
            let (hw, hh) = ((lon1 - lon0) * 0.2, (lat1 - lat0) * 0.2);
            let hole = vec![
                (hx, hy),
                (hx + hw, hy),
                (hx + hw, hy + hh),
                (hx, hy + hh),
                (hx, hy),
            ];
            let shape =
                geo::MultiPolygon::new(vec![geo::Polygon::new(outer.into(), vec![hole.into()])]);
            let mut expect: Vec<UnitId> = units
                .iter()
                .filter(|(_, lon, lat)| shape.intersects(&geo::Point::new(*lon, *lat)))
                .map(|(id, _, _)| *id)
                .collect();
            let mut got: Vec<UnitId> = idx.within_polygon(&shape).iter().map(|h| h.id).collect();
            expect.sort();
            got.sort();
            assert_eq!(got, expect);
        }
    }

    /// Units lying exactly on a box's edges are in it, whatever their coordinates'
    /// last bits; the stored coordinates are tested, not ones recomputed from the sphere.
    #[test]
    fn units_on_a_box_edge_are_in_the_box() {
        let units = random_city(2_000, 10);
        let idx = index(&units);
        for (id, lon, lat) in units.iter().take(300) {
            for (min, max) in [
                ((*lon, *lat), (lon + 0.01, lat + 0.01)),
                ((lon - 0.01, lat - 0.01), (*lon, *lat)),
                ((*lon, lat - 0.01), (lon + 0.01, *lat)),
            ] {
                let hits = idx.within_bbox(min.0, min.1, max.0, max.1);
                assert!(hits.iter().any(|h| h.id == *id), "unit {id} at {lon},{lat}");
            }
        }
    }

    /// An area given in GCJ-02 holds exactly the units whose GCJ-02 position it holds.
    #[test]
    fn gcj02_areas_hold_the_units_whose_gcj02_position_they_hold() {
        let units = random_city(20_000, 11);
        let idx = index(&units);
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        for _ in 0..20 {
            let (lon0, lat0) = (rng.random_range(113.0..113.7), rng.random_range(22.7..23.5));
            let (lon1, lat1) = (
                lon0 + rng.random_range(0.001..0.1),
                lat0 + rng.random_range(0.001..0.1),
            );
            let area = Area::Box {
                min: (lon0, lat0),
                max: (lon1, lat1),
            };
            let mut expect: Vec<UnitId> = units
                .iter()
                .filter(|(_, lon, lat)| {
                    let (g0, g1) = gcj02_from_wgs84(*lon, *lat);
                    (lon0..=lon1).contains(&g0) && (lat0..=lat1).contains(&g1)
                })
                .map(|(id, _, _)| *id)
                .collect();
            expect.sort();
            let got: Vec<UnitId> = idx
                .within_area(&area, Crs::Gcj02)
                .iter()
                .map(|h| h.id)
                .collect();
            assert_eq!(got, expect);
            // The WGS-84 box of the same numbers is another set: the datum matters.
            let wgs: Vec<UnitId> = idx
                .within_area(&area, Crs::Wgs84)
                .iter()
                .map(|h| h.id)
                .collect();
            if expect.len() > 20 {
                assert_ne!(wgs, expect);
            }
        }
    }

    #[test]
    fn units_move_and_are_found_where_they_are() {
        let mut idx = index(&random_city(1_000, 8));
        let here = (113.9, 23.9);
        idx.relocate(UnitId(5000), None, here);
        assert_eq!(idx.nearest(p(here.0, here.1), 1)[0].id, UnitId(5000));
        idx.relocate(UnitId(5000), Some(here), (113.95, 23.95));
        assert!(idx.within_radius(p(here.0, here.1), 10.0).is_empty());
        assert_eq!(idx.len(), 1_001);
    }

    #[test]
    fn sphere_envelopes_hold_their_boxes_even_across_special_meridians() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for (lon0, lon1) in [(-10.0, 10.0), (80.0, 100.0), (170.0, 179.9), (113.0, 113.5)] {
            let env = sphere_envelope(lon0, -5.0, lon1, 5.0);
            for _ in 0..1000 {
                let q = to_xyz(rng.random_range(lon0..lon1), rng.random_range(-5.0..5.0));
                assert!(env.contains_point(&q), "{lon0}..{lon1}");
            }
        }
    }
}
