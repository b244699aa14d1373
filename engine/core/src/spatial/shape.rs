//! GeoJSON areas (a Polygon, a MultiPolygon, or a Feature holding one) read into checked shapes: every position two or three finite numbers in range, every ring closed with at least four positions, no ring crossing itself or another. Never a panic, whatever the input.

use geo::{Coord, Intersects, LineString, MultiPolygon, Polygon, Validation};
use serde_json::Value;

use crate::domain::Point;
use crate::error::FieldError;

/// An area to find units in, in the datum it was given in. Edges belong to the area.
#[derive(Debug, Clone, PartialEq)]
pub enum Area {
    /// A longitude–latitude box: (min lon, min lat) to (max lon, max lat).
    Box {
        min: (f64, f64),
        max: (f64, f64),
    },
    Shape(MultiPolygon<f64>),
}

impl Area {
    /// Whether the point (in the area's datum) is inside or on the edge.
    pub fn holds(&self, lon: f64, lat: f64) -> bool {
        match self {
            Area::Box { min, max } => {
                (min.0..=max.0).contains(&lon) && (min.1..=max.1).contains(&lat)
            }
            Area::Shape(shape) => shape.intersects(&geo::Point::new(lon, lat)),
        }
    }

    /// The area as polygons.
    pub fn shape(&self) -> MultiPolygon<f64> {
        match self {
            Area::Box { min, max } => MultiPolygon::new(vec![
                geo::Rect::new(Coord { x: min.0, y: min.1 }, Coord { x: max.0, y: max.1 })
                    .to_polygon(),
            ]),
            Area::Shape(shape) => shape.clone(),
        }
    }
}

/// Reads a GeoJSON Polygon or MultiPolygon (bare, or as a Feature's geometry) into a
/// shape in the coordinates given (no datum change). Errors name `field` and, in the
/// message, the position at fault.
pub fn parse_area(value: &Value, field: &str) -> Result<MultiPolygon<f64>, FieldError> {
    read_area(value, field, true)
}

/// Reads an area as [`parse_area`] does, without the check that rings do not cross
/// (which costs seconds on a country's outline): for outlines shipped with Anju and
/// checked when they were built.
pub fn parse_trusted_area(value: &Value, field: &str) -> Result<MultiPolygon<f64>, FieldError> {
    read_area(value, field, false)
}

fn read_area(value: &Value, field: &str, validate: bool) -> Result<MultiPolygon<f64>, FieldError> {
    let bad = |message: String| FieldError::new(field, message);
    let Some(object) = value.as_object() else {
        return Err(bad("a GeoJSON Polygon or MultiPolygon object".into()));
    };
    let kind = object.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "Feature" => {
            let geometry = object
                .get("geometry")
                .filter(|g| g.is_object())
                .ok_or_else(|| bad("the feature has no geometry".into()))?;
            read_area(geometry, field, validate)
        }
        "FeatureCollection" | "GeometryCollection" => Err(bad(
            "send one Polygon or MultiPolygon, not a collection".into(),
        )),
        "Polygon" | "MultiPolygon" => {
            let coordinates = object
                .get("coordinates")
                .ok_or_else(|| bad("a geometry needs `coordinates`".into()))?;
            let polygons = if kind == "Polygon" {
                vec![polygon(coordinates, field, "coordinates")?]
            } else {
                let parts = coordinates.as_array().ok_or_else(|| {
                    bad("coordinates of a MultiPolygon are an array of polygons".into())
                })?;
                if parts.is_empty() {
                    return Err(bad("a MultiPolygon needs at least one polygon".into()));
                }
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| polygon(p, field, &format!("coordinates[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let shape = MultiPolygon::new(polygons);
            if validate {
                shape
                    .check_validation()
                    .map_err(|e| bad(format!("not a valid area: {e}")))?;
            }
            Ok(shape)
        }
        "" => Err(bad("a GeoJSON geometry needs a `type`".into())),
        other => Err(bad(format!(
            "must be a Polygon or MultiPolygon, not `{other}`"
        ))),
    }
}

fn polygon(value: &Value, field: &str, at: &str) -> Result<Polygon<f64>, FieldError> {
    let rings = value
        .as_array()
        .ok_or_else(|| FieldError::new(field, format!("{at}: a polygon is an array of rings")))?;
    if rings.is_empty() {
        return Err(FieldError::new(
            field,
            format!("{at}: a polygon needs an exterior ring"),
        ));
    }
    let mut rings = rings
        .iter()
        .enumerate()
        .map(|(i, r)| ring(r, field, &format!("{at}[{i}]")));
    let exterior = rings.next().expect("at least one ring")?;
    let interiors = rings.collect::<Result<Vec<_>, _>>()?;
    Ok(Polygon::new(exterior, interiors))
}

fn ring(value: &Value, field: &str, at: &str) -> Result<LineString<f64>, FieldError> {
    let positions = value
        .as_array()
        .ok_or_else(|| FieldError::new(field, format!("{at}: a ring is an array of positions")))?;
    let coords = positions
        .iter()
        .enumerate()
        .map(|(i, p)| position(p, field, &format!("{at}[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    if coords.len() < 4 {
        return Err(FieldError::new(
            field,
            format!("{at}: a ring needs at least 4 positions, the last equal to the first"),
        ));
    }
    if coords.first() != coords.last() {
        return Err(FieldError::new(
            field,
            format!("{at}: the ring is not closed (its last position must equal its first)"),
        ));
    }
    Ok(LineString::new(coords))
}

fn position(value: &Value, field: &str, at: &str) -> Result<Coord<f64>, FieldError> {
    let numbers: Option<Vec<f64>> = value
        .as_array()
        .filter(|a| (2..=3).contains(&a.len()))
        .and_then(|a| a.iter().map(Value::as_f64).collect());
    let numbers = numbers.ok_or_else(|| {
        FieldError::new(
            field,
            format!("{at}: a position is [longitude, latitude] (an altitude may follow)"),
        )
    })?;
    let (x, y) = (numbers[0], numbers[1]);
    Point::parse(x, y, field)
        .map_err(|e| FieldError::new(e.field, format!("{at}: {}", e.message)))?;
    Ok(Coord { x, y })
}

/// The GeoJSON geometry of a shape: a Polygon if it has one part, else a MultiPolygon.
pub fn to_geojson(shape: &MultiPolygon<f64>) -> Value {
    let ring = |r: &LineString<f64>| -> Vec<[f64; 2]> { r.0.iter().map(|c| [c.x, c.y]).collect() };
    let polygon = |p: &Polygon<f64>| -> Vec<Vec<[f64; 2]>> {
        std::iter::once(p.exterior())
            .chain(p.interiors())
            .map(ring)
            .collect()
    };
    if shape.0.len() == 1 {
        serde_json::json!({ "type": "Polygon", "coordinates": polygon(&shape.0[0]) })
    } else {
        serde_json::json!({
            "type": "MultiPolygon",
            "coordinates": shape.0.iter().map(polygon).collect::<Vec<_>>(),
        })
    }
}

/// The GeoJSON geometry of a longitude–latitude rectangle.
pub fn rectangle(min: (f64, f64), max: (f64, f64)) -> Value {
    serde_json::json!({
        "type": "Polygon",
        "coordinates": [[[min.0, min.1], [max.0, min.1], [max.0, max.1], [min.0, max.1], [min.0, min.1]]],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_and_message(v: Value) -> (String, String) {
        let e = parse_area(&v, "body").unwrap_err();
        (e.field, e.message)
    }

    #[test]
    fn good_shapes_parse() {
        let square = rectangle((113.0, 23.0), (113.1, 23.1));
        assert_eq!(parse_area(&square, "g").unwrap().0.len(), 1);
        let feature = json!({"type": "Feature", "properties": {}, "geometry": square});
        assert_eq!(parse_area(&feature, "g").unwrap().0.len(), 1);
        let multi = json!({"type": "MultiPolygon", "coordinates": [
            [[[113.0, 23.0], [113.1, 23.0], [113.1, 23.1], [113.0, 23.0]]],
            [[[114.0, 23.0], [114.1, 23.0, 5.0], [114.1, 23.1], [114.0, 23.0]]]
        ]});
        assert_eq!(parse_area(&multi, "g").unwrap().0.len(), 2);
    }

    #[test]
    fn every_malformed_shape_names_what_is_wrong() {
        let ring = |r: Value| json!({"type": "Polygon", "coordinates": [r]});
        let cases = [
            (
                ring(json!([
                    [113.0],
                    [113.1, 23.0],
                    [113.1, 23.1],
                    [113.0, 23.0]
                ])),
                "coordinates[0][0]",
            ),
            (
                ring(json!([
                    [113.0, 23.0],
                    [113.1, 23.0],
                    [113.1, 23.1],
                    [113.0, 23.1]
                ])),
                "not closed",
            ),
            (
                ring(json!([[113.0, 23.0], [113.1, 23.0], [113.0, 23.0]])),
                "at least 4",
            ),
            (
                ring(json!([
                    [113.0, 23.0],
                    [113.1, 23.1],
                    [113.1, 23.0],
                    [113.0, 23.1],
                    [113.0, 23.0]
                ])),
                "self-intersection",
            ),
            (
                ring(json!([
                    [113.0, 23.0],
                    [113.1, 95.0],
                    [113.1, 23.1],
                    [113.0, 23.0]
                ])),
                "coordinates[0][1]",
            ),
            (
                ring(json!([
                    [113.0, 23.0],
                    ["x", 23.0],
                    [113.1, 23.1],
                    [113.0, 23.0]
                ])),
                "coordinates[0][1]",
            ),
            (
                json!({"type": "Polygon", "coordinates": []}),
                "exterior ring",
            ),
            (
                json!({"type": "MultiPolygon", "coordinates": []}),
                "at least one polygon",
            ),
            (
                json!({"type": "Point", "coordinates": [1, 2]}),
                "not `Point`",
            ),
            (
                json!({"type": "FeatureCollection", "features": []}),
                "collection",
            ),
            (json!({"type": "Feature", "geometry": null}), "no geometry"),
            (json!([1]), "object"),
        ];
        for (shape, want) in cases {
            let (field, message) = field_and_message(shape.clone());
            assert!(field.starts_with("body"), "{shape}: {field}");
            assert!(message.contains(want), "{shape}: {message}");
        }
    }
}
