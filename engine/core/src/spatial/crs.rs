//! China's GCJ-02 map datum and WGS-84: map apps give GCJ-02, phones' GPS gives WGS-84, and Anju stores WGS-84.

use serde::{Deserialize, Serialize};

use crate::domain::Point;
use crate::error::FieldError;

/// The datum a caller's coordinates are in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crs {
    /// GPS, and what Anju stores.
    #[default]
    Wgs84,
    /// The datum of maps published in China (Amap, Tencent Maps).
    Gcj02,
}

impl Crs {
    pub fn parse(s: &str, field: &str) -> Result<Crs, FieldError> {
        match s {
            "wgs84" => Ok(Crs::Wgs84),
            "gcj02" => Ok(Crs::Gcj02),
            _ => Err(FieldError::new(field, "must be wgs84 or gcj02")),
        }
    }

    /// The WGS-84 point for coordinates given in this datum.
    pub fn to_wgs84(self, lon: f64, lat: f64, field: &str) -> Result<Point, FieldError> {
        let p = Point::parse(lon, lat, field)?;
        Ok(match self {
            Crs::Wgs84 => p,
            Crs::Gcj02 => {
                let (lon, lat) = wgs84_from_gcj02(lon, lat);
                Point::parse(lon, lat, field)?
            }
        })
    }
}

/// Krasovsky 1940 semi-major axis and eccentricity squared, as GCJ-02 uses them.
const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;

/// GCJ-02 applies only in mainland China (not in Hong Kong, Macau or Taiwan, nor in
/// the neighbouring countries a rectangle around China would take in); elsewhere it
/// equals WGS-84.
fn out_of_china(lon: f64, lat: f64) -> bool {
    !crate::spatial::outline::mainland_china().contains(lon, lat)
}

fn offsets(lon: f64, lat: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    let (x, y) = (lon - 105.0, lat - 35.0);
    let common = (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    let mut dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    dlat += common;
    dlat += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlat += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    let mut dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    dlon += common;
    dlon += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlon += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    let rad = lat / 180.0 * PI;
    let magic = 1.0 - EE * rad.sin() * rad.sin();
    let sqrt_magic = magic.sqrt();
    let dlat = dlat * 180.0 / ((A * (1.0 - EE)) / (magic * sqrt_magic) * PI);
    let dlon = dlon * 180.0 / (A / sqrt_magic * rad.cos() * PI);
    (dlon, dlat)
}

/// The GCJ-02 coordinates of a WGS-84 point.
pub fn gcj02_from_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if out_of_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = offsets(lon, lat);
    (lon + dlon, lat + dlat)
}

/// The WGS-84 coordinates of a GCJ-02 point. The forward transform has no closed-form
/// inverse; this iterates it until the error is below a millimetre. Whether the datum
/// applies is decided at the WGS-84 point found, as the forward transform decides it,
/// so that a point converted there and back lands where it started.
pub fn wgs84_from_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if !(70.0..=140.0).contains(&lon) || !(0.0..=56.0).contains(&lat) {
        return (lon, lat);
    }
    let (mut wlon, mut wlat) = (lon, lat);
    for _ in 0..30 {
        let (dlon, dlat) = offsets(wlon, wlat);
        let (elon, elat) = (wlon + dlon - lon, wlat + dlat - lat);
        wlon -= elon;
        wlat -= elat;
        if elon.abs() < 1e-10 && elat.abs() < 1e-10 {
            break;
        }
    }
    if out_of_china(wlon, wlat) {
        (lon, lat)
    } else {
        (wlon, wlat)
    }
}

/// The longest edge, in degrees (about 100 m), that a shape keeps when it changes
/// datum: the GCJ-02 offset bends straight edges, and over 100 m the bend is under a
/// millimetre.
const DENSIFY_DEG: f64 = 0.001;

/// A GCJ-02 shape in WGS-84: its edges are cut into pieces of at most 100 m, then every
/// vertex is converted, so that the converted edges stay within a millimetre of the
/// true curve.
pub fn shape_to_wgs84(shape: &geo::MultiPolygon<f64>) -> geo::MultiPolygon<f64> {
    use geo::{Densify, Euclidean, MapCoords};
    Euclidean.densify(shape, DENSIFY_DEG).map_coords(|c| {
        let (x, y) = wgs84_from_gcj02(c.x, c.y);
        geo::Coord { x, y }
    })
}

impl crate::spatial::shape::Area {
    /// A WGS-84 box that holds every point whose coordinates in `crs` lie in the area:
    /// the candidates of a query, tested exactly afterwards.
    pub fn wgs84_envelope(&self, crs: Crs) -> Option<((f64, f64), (f64, f64))> {
        let shape = match crs {
            Crs::Wgs84 => self.shape(),
            Crs::Gcj02 => shape_to_wgs84(&self.shape()),
        };
        let rect = geo::BoundingRect::bounding_rect(&shape)?;
        // Slack for the datum's conversion (well under a metre) and rounding.
        let e = if crs == Crs::Wgs84 { 0.0 } else { 1e-5 };
        Some((
            (rect.min().x - e, rect.min().y - e),
            (rect.max().x + e, rect.max().y + e),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published reference pairs (WGS-84 → GCJ-02), as used by the test suites of the
    /// common open-source implementations: Shanghai, Shenzhen, Beijing.
    const REFERENCE: [((f64, f64), (f64, f64)); 3] = [
        (
            (121.5272106, 31.1774276),
            (121.531541859215, 31.17530398364597),
        ),
        (
            (113.912316, 22.543847),
            (113.9171764808363, 22.540796131694766),
        ),
        (
            (116.377817, 39.911954),
            (116.38404722455657, 39.91334545536069),
        ),
    ];

    fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
        Point::parse(a.0, a.1, "a")
            .unwrap()
            .distance_m(Point::parse(b.0, b.1, "b").unwrap())
    }

    #[test]
    fn forward_transform_matches_the_reference_points() {
        for (wgs, gcj) in REFERENCE {
            let got = gcj02_from_wgs84(wgs.0, wgs.1);
            assert!(
                metres(got, gcj) < 0.01,
                "{wgs:?} → {got:?}, expected {gcj:?}"
            );
            // The datum shifts points by hundreds of metres: the test would notice a
            // transform that did nothing.
            assert!(metres(wgs, gcj) > 100.0);
        }
    }

    /// Over Guangzhou's land (where units are), a point converted there and back lands
    /// where it started. The datum applies on mainland China's land and inland waters;
    /// out at sea, past the coastline, points are not moved.
    #[test]
    fn round_trips_are_under_a_metre_across_guangzhou() {
        let city = crate::spatial::outline::guangzhou();
        let mut worst: f64 = 0.0;
        let mut tried = 0;
        for i in 0..=40 {
            for j in 0..=40 {
                let (lon, lat) = (
                    112.95 + 1.1 * f64::from(i) / 40.0,
                    22.5 + 1.45 * f64::from(j) / 40.0,
                );
                if !city.contains(lon, lat) {
                    continue;
                }
                tried += 1;
                let (glon, glat) = gcj02_from_wgs84(lon, lat);
                assert!(metres((lon, lat), (glon, glat)) > 100.0);
                let back = wgs84_from_gcj02(glon, glat);
                worst = worst.max(metres((lon, lat), back));
            }
        }
        assert!(tried > 500, "{tried}");
        assert!(worst < 0.01, "worst round trip {worst} m");
        for (wgs, gcj) in REFERENCE {
            assert!(metres(wgs84_from_gcj02(gcj.0, gcj.1), wgs) < 1.0);
        }
    }

    #[test]
    fn outside_mainland_china_nothing_moves() {
        assert_eq!(gcj02_from_wgs84(2.35, 48.85), (2.35, 48.85));
        assert_eq!(wgs84_from_gcj02(-74.0, 40.7), (-74.0, 40.7));
        // Inside the rectangle that once stood in for China's border.
        for (name, lon, lat) in [
            ("Seoul", 126.978, 37.5665),
            ("Osaka", 135.5023, 34.6937),
            ("Hanoi", 105.8342, 21.0278),
            ("Bangkok", 100.5018, 13.7563),
            ("Hong Kong", 114.1694, 22.2808),
            ("Taipei", 121.5654, 25.0330),
            ("Macau", 113.5439, 22.1987),
        ] {
            assert_eq!(gcj02_from_wgs84(lon, lat), (lon, lat), "{name}");
            assert_eq!(wgs84_from_gcj02(lon, lat), (lon, lat), "{name}");
        }
        // Across the border from Hong Kong, points move.
        assert!(metres(gcj02_from_wgs84(114.0579, 22.5431), (114.0579, 22.5431)) > 100.0);
    }

    /// A GCJ-02 shape converted with its edges densified stays within 0.1 m of the
    /// true WGS-84 outline: every point along a GCJ-02 edge, converted on its own, lies
    /// that close to the converted shape's boundary.
    #[test]
    fn converted_shapes_follow_the_true_curve() {
        use geo::{Distance, Euclidean};
        let square = geo::MultiPolygon::new(vec![
            geo::Rect::new(
                geo::Coord { x: 113.0, y: 22.8 },
                geo::Coord { x: 113.6, y: 23.4 },
            )
            .to_polygon(),
        ]);
        let converted = shape_to_wgs84(&square);
        let boundary = converted.0[0].exterior();
        let mut worst: f64 = 0.0;
        for i in 0..=600 {
            let t = f64::from(i) / 600.0;
            for (lon, lat) in [(113.0 + 0.6 * t, 22.8), (113.6, 22.8 + 0.6 * t)] {
                let (x, y) = wgs84_from_gcj02(lon, lat);
                let d_deg = Euclidean.distance(&geo::Point::new(x, y), boundary);
                worst = worst.max(d_deg * 111_320.0);
            }
        }
        assert!(worst < 0.1, "worst {worst} m");
        // Converting the corners alone would be metres off.
        let corners = square.map_coords_corners();
        let mut worst_corners: f64 = 0.0;
        for i in 0..=600 {
            let t = f64::from(i) / 600.0;
            let (x, y) = wgs84_from_gcj02(113.0 + 0.6 * t, 22.8);
            let d = Euclidean.distance(&geo::Point::new(x, y), corners.0[0].exterior());
            worst_corners = worst_corners.max(d * 111_320.0);
        }
        assert!(worst_corners > 1.0, "{worst_corners}");
    }

    trait CornersOnly {
        fn map_coords_corners(&self) -> geo::MultiPolygon<f64>;
    }

    impl CornersOnly for geo::MultiPolygon<f64> {
        fn map_coords_corners(&self) -> geo::MultiPolygon<f64> {
            use geo::MapCoords;
            self.map_coords(|c| {
                let (x, y) = wgs84_from_gcj02(c.x, c.y);
                geo::Coord { x, y }
            })
        }
    }

    #[test]
    fn crs_parses_and_converts() {
        assert_eq!(Crs::parse("gcj02", "crs").unwrap(), Crs::Gcj02);
        assert_eq!(Crs::parse("bd09", "crs").unwrap_err().field, "crs");
        let (wgs, gcj) = REFERENCE[1];
        let p = Crs::Gcj02.to_wgs84(gcj.0, gcj.1, "point").unwrap();
        assert!(metres((p.lon(), p.lat()), wgs) < 1.0);
        assert_eq!(
            Crs::Wgs84.to_wgs84(wgs.0, wgs.1, "point").unwrap().lon(),
            wgs.0
        );
        assert_eq!(
            Crs::Gcj02.to_wgs84(200.0, 0.0, "point").unwrap_err().field,
            "point.lon"
        );
    }
}
