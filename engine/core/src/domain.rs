//! Domain value types: typed ids, roles and actors, and WGS-84 points that parse rather than validate.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A hazard case.
    CaseId
);
id_type!(
    /// A rental unit (套).
    UnitId
);
id_type!(
    /// A building (栋).
    BuildingId
);
id_type!(
    /// A street or town (镇街).
    StreetId
);
id_type!(
    /// A village or community (村居).
    CommunityId
);
id_type!(
    /// A grid (网格).
    GridId
);
id_type!(
    /// A landlord, agent or sub-landlord.
    PartyId
);
id_type!(
    /// An inspector (出租屋管理员).
    InspectorId
);
id_type!(
    /// An enforcement department.
    DepartmentId
);
id_type!(
    /// A supervisor at street, district or city level.
    SupervisorId
);
id_type!(
    /// An inspection (a visit that records findings).
    InspectionId
);

/// Who may issue a command. `System` is the engine itself (timers, rules); it can never
/// be named by an API caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Inspector,
    Landlord,
    Department,
    Supervisor,
    System,
}

impl Role {
    pub const CALLER_ROLES: [Role; 4] = [
        Role::Inspector,
        Role::Landlord,
        Role::Department,
        Role::Supervisor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inspector => "inspector",
            Role::Landlord => "landlord",
            Role::Department => "department",
            Role::Supervisor => "supervisor",
            Role::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "inspector" => Some(Role::Inspector),
            "landlord" => Some(Role::Landlord),
            "department" => Some(Role::Department),
            "supervisor" => Some(Role::Supervisor),
            "system" => Some(Role::System),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The author of an event: a role and the id of the person or department acting, or the
/// name of the engine component (`timer:order_deadline`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub role: Role,
    pub id: String,
}

impl Actor {
    pub fn system(component: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            id: component.into(),
        }
    }
}

/// A WGS-84 point. The only way to make one is [`Point::parse`], so a `Point` is always
/// finite and within the valid ranges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    lon: f64,
    lat: f64,
}

impl Point {
    /// Parses longitude and latitude in degrees. `field` names the place in the request,
    /// so that an error can say which value was wrong.
    pub fn parse(lon: f64, lat: f64, field: &str) -> Result<Point, FieldError> {
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(FieldError::new(
                format!("{field}.lon"),
                format!("longitude must be a number from -180 to 180, got {lon}"),
            ));
        }
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(FieldError::new(
                format!("{field}.lat"),
                format!("latitude must be a number from -90 to 90, got {lat}"),
            ));
        }
        Ok(Point { lon, lat })
    }

    pub fn lon(self) -> f64 {
        self.lon
    }

    pub fn lat(self) -> f64 {
        self.lat
    }

    /// Great-circle distance in metres (haversine on a sphere of the WGS-84 mean radius).
    pub fn distance_m(self, other: Point) -> f64 {
        const R: f64 = 6_371_008.8;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * R * a.sqrt().asin()
    }
}

impl<'de> Deserialize<'de> for Point {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            lon: f64,
            lat: f64,
        }
        let raw = Raw::deserialize(d)?;
        Point::parse(raw.lon, raw.lat, "point").map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_only_within_range() {
        assert!(Point::parse(113.36, 23.12, "p").is_ok());
        assert_eq!(Point::parse(181.0, 0.0, "p").unwrap_err().field, "p.lon");
        assert_eq!(Point::parse(0.0, -90.5, "p").unwrap_err().field, "p.lat");
        assert!(Point::parse(f64::NAN, 0.0, "p").is_err());
    }

    #[test]
    fn distance_of_one_degree_of_latitude_is_about_111_km() {
        let a = Point::parse(113.0, 23.0, "a").unwrap();
        let b = Point::parse(113.0, 24.0, "b").unwrap();
        let d = a.distance_m(b);
        assert!((d - 111_195.0).abs() < 100.0, "{d}");
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::CALLER_ROLES.into_iter().chain([Role::System]) {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }
}
