//! Outlines a point is tested against many times (mainland China, where GCJ-02 applies; Guangzhou and its districts): polygons cut into horizontal bands so that a test reads only the edges of its band, with the outlines shipped in `workflows/boundaries/`.

use std::sync::OnceLock;

use serde_json::Value;

use crate::spatial::shape::parse_trusted_area;

/// Band height in degrees: a band holds the few edges that cross its latitudes.
const BAND_DEG: f64 = 0.05;

#[derive(Debug, Clone, Copy)]
struct Edge {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

/// A (multi)polygon ready for fast point-in-polygon tests: even–odd over all its rings,
/// so holes and separate parts need no special case.
#[derive(Debug)]
pub struct Outline {
    min: (f64, f64),
    max: (f64, f64),
    bands: Vec<Vec<Edge>>,
    shape: geo::MultiPolygon<f64>,
}

impl Outline {
    pub fn new(shape: geo::MultiPolygon<f64>) -> Outline {
        use geo::BoundingRect;
        let rect = shape.bounding_rect().unwrap_or(geo::Rect::new(
            geo::Coord { x: 0.0, y: 0.0 },
            geo::Coord { x: 0.0, y: 0.0 },
        ));
        let (min, max) = ((rect.min().x, rect.min().y), (rect.max().x, rect.max().y));
        let count = (((max.1 - min.1) / BAND_DEG).ceil() as usize).max(1);
        let mut bands = vec![Vec::new(); count];
        let band_of = |lat: f64| (((lat - min.1) / BAND_DEG) as usize).min(count - 1);
        for polygon in &shape.0 {
            for ring in std::iter::once(polygon.exterior()).chain(polygon.interiors()) {
                for line in ring.lines() {
                    let e = Edge {
                        x0: line.start.x,
                        y0: line.start.y,
                        x1: line.end.x,
                        y1: line.end.y,
                    };
                    for band in bands
                        .iter_mut()
                        .take(band_of(e.y0.max(e.y1)) + 1)
                        .skip(band_of(e.y0.min(e.y1)))
                    {
                        band.push(e);
                    }
                }
            }
        }
        Outline {
            min,
            max,
            bands,
            shape,
        }
    }

    /// Reads a GeoJSON geometry, Feature, or FeatureCollection of one Feature.
    pub fn from_geojson(text: &str) -> Outline {
        let value: Value = serde_json::from_str(text).expect("a shipped outline is JSON");
        let value = match value["features"].as_array() {
            Some(features) if features.len() == 1 => features[0].clone(),
            _ => value,
        };
        Outline::new(parse_trusted_area(&value, "outline").expect("a shipped outline is valid"))
    }

    /// Whether the point lies inside (a point exactly on an edge may go either way).
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        if !(self.min.0..=self.max.0).contains(&lon) || !(self.min.1..=self.max.1).contains(&lat) {
            return false;
        }
        let band = (((lat - self.min.1) / BAND_DEG) as usize).min(self.bands.len() - 1);
        let mut inside = false;
        for e in &self.bands[band] {
            if (e.y0 > lat) != (e.y1 > lat) {
                let x = e.x0 + (lat - e.y0) * (e.x1 - e.x0) / (e.y1 - e.y0);
                if x > lon {
                    inside = !inside;
                }
            }
        }
        inside
    }

    pub fn shape(&self) -> &geo::MultiPolygon<f64> {
        &self.shape
    }

    /// Whether the point lies inside, and so do the points `metres` from it in eight
    /// directions: it is about that far from the outline at least.
    pub fn inside_by(&self, lon: f64, lat: f64, metres: f64) -> bool {
        let dlat = metres / 111_320.0;
        let dlon = dlat / lat.to_radians().cos().max(0.01);
        let d = std::f64::consts::FRAC_1_SQRT_2;
        self.contains(lon, lat)
            && [
                (1.0, 0.0),
                (-1.0, 0.0),
                (0.0, 1.0),
                (0.0, -1.0),
                (d, d),
                (d, -d),
                (-d, d),
                (-d, -d),
            ]
            .iter()
            .all(|(x, y)| self.contains(lon + x * dlon, lat + y * dlat))
    }

    /// Whether an edge of the outline may cross the box (`min`, `max`): true for every
    /// edge whose own box overlaps it.
    pub fn crosses(&self, min: (f64, f64), max: (f64, f64)) -> bool {
        if max.0 < self.min.0 || min.0 > self.max.0 || max.1 < self.min.1 || min.1 > self.max.1 {
            return false;
        }
        let band = |lat: f64| {
            (((lat - self.min.1) / BAND_DEG).max(0.0) as usize).min(self.bands.len() - 1)
        };
        self.bands[band(min.1)..=band(max.1)]
            .iter()
            .flatten()
            .any(|e| {
                e.x0.min(e.x1) <= max.0
                    && e.x0.max(e.x1) >= min.0
                    && e.y0.min(e.y1) <= max.1
                    && e.y0.max(e.y1) >= min.1
            })
    }
}

/// Mainland China (without Hong Kong, Macau and Taiwan), where the GCJ-02 datum
/// applies.
pub fn mainland_china() -> &'static Outline {
    static OUTLINE: OnceLock<Outline> = OnceLock::new();
    OUTLINE.get_or_init(|| {
        Outline::from_geojson(include_str!(
            "../../../../workflows/boundaries/mainland-china.geojson"
        ))
    })
}

/// Guangzhou's city boundary: the union of its districts.
pub fn guangzhou() -> &'static Outline {
    static OUTLINE: OnceLock<Outline> = OnceLock::new();
    OUTLINE.get_or_init(|| {
        Outline::from_geojson(include_str!(
            "../../../../workflows/boundaries/guangzhou.geojson"
        ))
    })
}

/// A district of Guangzhou: its code, names and outline.
#[derive(Debug)]
pub struct District {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub outline: Outline,
}

/// Guangzhou's eleven districts, by code.
pub fn guangzhou_districts() -> &'static [District] {
    static DISTRICTS: OnceLock<Vec<District>> = OnceLock::new();
    DISTRICTS.get_or_init(|| {
        let text = include_str!("../../../../workflows/boundaries/guangzhou-districts.geojson");
        let value: Value = serde_json::from_str(text).expect("a shipped outline is JSON");
        let features = value["features"].as_array().expect("a FeatureCollection");
        features
            .iter()
            .map(|f| {
                let prop = |k: &str| f["properties"][k].as_str().unwrap_or("").to_string();
                District {
                    code: prop("code"),
                    name_zh: prop("name_zh"),
                    name_en: prop("name_en"),
                    outline: Outline::new(
                        parse_trusted_area(f, "district").expect("a shipped outline is valid"),
                    ),
                }
            })
            .collect()
    })
}

/// The Guangzhou district whose outline holds the point, if any.
pub fn district_at(lon: f64, lat: f64) -> Option<&'static District> {
    guangzhou_districts()
        .iter()
        .find(|d| d.outline.contains(lon, lat))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mainland_china_holds_its_cities_and_not_its_neighbours() {
        let inside = [
            ("Beijing", 116.397, 39.909),
            ("Shanghai", 121.4737, 31.2304),
            ("Guangzhou", 113.2644, 23.1291),
            ("Shenzhen Futian", 114.0579, 22.5431),
            ("Urumqi", 87.6168, 43.8256),
            ("Lhasa", 91.1409, 29.6456),
            ("Harbin", 126.535, 45.803),
            ("Sanya", 109.5119, 18.2528),
            ("Zhuhai Gongbei", 113.5540, 22.2200),
            ("Dandong", 124.383, 40.1245),
        ];
        let outside = [
            ("Hong Kong", 114.1694, 22.2808),
            ("Kowloon", 114.1747, 22.3193),
            ("Macau", 113.5439, 22.1987),
            ("Taipei", 121.5654, 25.0330),
            ("Kinmen", 118.3171, 24.4326),
            ("Seoul", 126.978, 37.5665),
            ("Pyongyang", 125.7625, 39.0392),
            ("Osaka", 135.5023, 34.6937),
            ("Hanoi", 105.8342, 21.0278),
            ("Bangkok", 100.5018, 13.7563),
            ("Ulaanbaatar", 106.9057, 47.8864),
            ("Sinuiju", 124.3981, 40.1006),
            ("Singapore", 103.8198, 1.3521),
        ];
        let m = mainland_china();
        for (name, lon, lat) in inside {
            assert!(m.contains(lon, lat), "{name}");
        }
        for (name, lon, lat) in outside {
            assert!(!m.contains(lon, lat), "{name}");
        }
    }

    #[test]
    fn the_band_test_agrees_with_geo() {
        use geo::Contains;
        use rand::rngs::ChaCha8Rng;
        use rand::{RngExt, SeedableRng};
        let city = guangzhou();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..20_000 {
            let (lon, lat) = (
                rng.random_range(112.9..114.1),
                rng.random_range(22.5..23.95),
            );
            assert_eq!(
                city.contains(lon, lat),
                city.shape().contains(&geo::Point::new(lon, lat)),
                "{lon},{lat}"
            );
        }
    }

    #[test]
    fn guangzhou_has_eleven_districts_that_tile_it() {
        let districts = guangzhou_districts();
        assert_eq!(districts.len(), 11);
        assert_eq!(
            district_at(113.3246, 23.1375).map(|d| d.code.as_str()),
            Some("440106")
        );
        assert_eq!(
            district_at(113.2644, 23.1291).map(|d| d.code.as_str()),
            Some("440104")
        );
        // The Canton Tower stands south of the river, in Haizhu.
        assert_eq!(
            district_at(113.3245, 23.1066).map(|d| d.code.as_str()),
            Some("440105")
        );
        assert!(district_at(113.1, 23.02).is_none(), "Foshan");
    }
}
