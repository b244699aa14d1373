//! The registry: districts, streets, communities, grids, buildings, units, responsible parties, inspectors, departments, supervisors and departments' officers, their accounts, and their JSON-lines import format.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    BuildingId, CommunityId, DepartmentId, GridId, InspectorId, PartyId, Point, StreetId,
    SupervisorId, UnitId,
};
use crate::error::FieldError;

/// Kinds of responsible party (一房一责任人).
pub const PARTY_KINDS: [&str; 3] = ["landlord", "agent", "sublandlord"];

/// Checks that `kind` is one of [`PARTY_KINDS`], naming `field` if not.
pub fn check_party_kind(field: &str, kind: &str) -> Result<(), FieldError> {
    if PARTY_KINDS.contains(&kind) {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!("must be one of {}", PARTY_KINDS.join(", ")),
        ))
    }
}
/// Supervisor levels (市、区、镇街).
pub const SUPERVISOR_LEVELS: [&str; 3] = ["city", "district", "street"];
/// Inspector shifts (错峰上班).
pub const SHIFTS: [&str; 3] = ["morning", "afternoon", "evening"];

/// One line of a registry import (`anju import FILE.jsonl`), tagged by `type`. Ids are
/// the source system's; records refer to each other by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    District {
        code: String,
        name_zh: String,
        name_en: String,
    },
    Street {
        id: StreetId,
        code: String,
        district_code: String,
        name: String,
    },
    Community {
        id: CommunityId,
        code: String,
        street_id: StreetId,
        name: String,
    },
    Grid {
        id: GridId,
        code: String,
        community_id: CommunityId,
        name: String,
        /// The grid's shape: a GeoJSON Polygon or MultiPolygon in WGS-84.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        geometry: Option<serde_json::Value>,
    },
    Building {
        id: BuildingId,
        grid_id: GridId,
        address: String,
        lon: f64,
        lat: f64,
    },
    Party {
        id: PartyId,
        kind: String,
        name: String,
        #[serde(default)]
        phone: Option<String>,
        #[serde(default)]
        email: Option<String>,
    },
    Unit {
        id: UnitId,
        address_code: String,
        building_id: BuildingId,
        address: String,
        lon: f64,
        lat: f64,
        floor_area: f64,
        occupants: i64,
        #[serde(default)]
        party_id: Option<PartyId>,
        /// Occupants are out by day: visited on the evening shift.
        #[serde(default)]
        evening_only: bool,
        /// A grade carried over from an earlier system (1 to 5), with the date of the
        /// last inspection and the next patrol. Left out, the unit is due at once.
        #[serde(default)]
        stars: Option<u8>,
        /// The grading checklist behind `stars` (every item of the rubric); when given,
        /// it must grade `stars`, so that the unit's next inspection starts from it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checklist: Option<crate::grading::Checklist>,
        #[serde(default)]
        last_inspected_at: Option<DateTime<Utc>>,
        #[serde(default)]
        next_due_at: Option<DateTime<Utc>>,
    },
    Inspector {
        id: InspectorId,
        name: String,
        #[serde(default)]
        phone: Option<String>,
        #[serde(default)]
        email: Option<String>,
        #[serde(default = "default_shift")]
        shift: String,
        /// Visits a day, when not the planner's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capacity: Option<u32>,
        #[serde(default)]
        grids: Vec<GridId>,
    },
    Department {
        id: DepartmentId,
        name: String,
        kind: String,
        #[serde(default)]
        district_code: Option<String>,
        #[serde(default)]
        email: Option<String>,
    },
    Supervisor {
        id: SupervisorId,
        name: String,
        level: String,
        #[serde(default)]
        district_code: Option<String>,
        #[serde(default)]
        street_id: Option<StreetId>,
        #[serde(default)]
        email: Option<String>,
    },
    /// An officer of a department (执法人员): a person who signs in for the department
    /// and records its acts. At least a phone or an e-mail address.
    Officer {
        department_id: DepartmentId,
        name: String,
        #[serde(default)]
        phone: Option<String>,
        #[serde(default)]
        email: Option<String>,
    },
}

/// A person's account as an import writes it: who they act as, and their addresses in
/// normal form.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccount {
    pub name: String,
    pub role: crate::domain::Role,
    pub subject: i64,
    pub email: Option<String>,
    pub phone: Option<String>,
}

fn default_shift() -> String {
    "morning".into()
}

impl Record {
    /// The order in which kinds must be written so that references resolve.
    pub fn rank(&self) -> u8 {
        match self {
            Record::District { .. } => 0,
            Record::Street { .. } => 1,
            Record::Community { .. } => 2,
            Record::Grid { .. } => 3,
            Record::Building { .. } => 4,
            Record::Party { .. } => 5,
            Record::Unit { .. } => 6,
            Record::Inspector { .. } => 7,
            Record::Department { .. } => 8,
            Record::Supervisor { .. } => 9,
            Record::Officer { .. } => 10,
        }
    }

    /// The account of the person a record names, if it is a person with an address:
    /// a party (a landlord, agent or sub-landlord acts as `landlord`), an inspector, a
    /// supervisor, a department's officer.
    pub fn account(&self) -> Option<NewAccount> {
        use crate::domain::Role;
        let (name, role, subject, phone, email) = match self {
            Record::Party {
                id,
                name,
                phone,
                email,
                ..
            } => (name, Role::Landlord, id.0, phone, email),
            Record::Inspector {
                id,
                name,
                phone,
                email,
                ..
            } => (name, Role::Inspector, id.0, phone, email),
            Record::Supervisor {
                id, name, email, ..
            } => (name, Role::Supervisor, id.0, &None, email),
            Record::Officer {
                department_id,
                name,
                phone,
                email,
            } => (name, Role::Department, department_id.0, phone, email),
            _ => return None,
        };
        let email = email.as_deref().and_then(crate::signin::email);
        let phone = phone.as_deref().and_then(crate::signin::phone);
        (email.is_some() || phone.is_some()).then(|| NewAccount {
            name: name.clone(),
            role,
            subject,
            email,
            phone,
        })
    }

    /// Checks what can be checked without the database: coordinates, enumerations,
    /// sizes. References are checked by the store when the records are written.
    pub fn check(&self, taxonomy: &crate::taxonomy::Taxonomy) -> Result<(), FieldError> {
        let nonempty = |field: &str, s: &str| {
            if s.trim().is_empty() {
                Err(FieldError::new(field, "cannot be empty"))
            } else {
                Ok(())
            }
        };
        match self {
            Record::District { code, name_zh, .. } => {
                if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(FieldError::new("code", "a GB/T 2260 code has six digits"));
                }
                nonempty("name_zh", name_zh)
            }
            Record::Street { code, name, .. } | Record::Community { code, name, .. } => {
                nonempty("code", code)?;
                nonempty("name", name)
            }
            Record::Grid {
                code,
                name,
                geometry,
                ..
            } => {
                nonempty("code", code)?;
                if let Some(g) = geometry {
                    crate::spatial::grids::parse_area(g, "geometry")?;
                }
                nonempty("name", name)
            }
            Record::Building {
                address, lon, lat, ..
            } => {
                nonempty("address", address)?;
                Point::parse(*lon, *lat, "point").map(|_| ())
            }
            Record::Party {
                kind,
                name,
                phone,
                email,
                ..
            } => {
                check_party_kind("kind", kind)?;
                check_contact(phone, email)?;
                nonempty("name", name)
            }
            Record::Unit {
                address_code,
                address,
                lon,
                lat,
                floor_area,
                occupants,
                stars,
                checklist,
                ..
            } => {
                if stars.is_some_and(|s| !(1..=5).contains(&s)) {
                    return Err(FieldError::new("stars", "from 1 to 5"));
                }
                if let Some(list) = checklist {
                    let rubric = crate::grading::Rubric::builtin();
                    if let Err(errors) = rubric.parse_checklist(list, "checklist") {
                        return Err(errors.into_iter().next().expect("an error"));
                    }
                    let graded = rubric.grade(Some(list), &[]).stars;
                    if graded != *stars {
                        return Err(FieldError::new(
                            "checklist",
                            format!("grades {graded:?} stars, not the {stars:?} given"),
                        ));
                    }
                }
                parse_unit_values(address_code, address, *lon, *lat, *floor_area, *occupants)
                    .map(|_| ())
            }
            Record::Inspector {
                name,
                shift,
                capacity,
                phone,
                email,
                ..
            } => {
                check_contact(phone, email)?;
                if capacity.is_some_and(|c| !(1..=200).contains(&c)) {
                    return Err(FieldError::new("capacity", "from 1 to 200 visits a day"));
                }
                if !SHIFTS.contains(&shift.as_str()) {
                    return Err(FieldError::new(
                        "shift",
                        format!("must be one of {}", SHIFTS.join(", ")),
                    ));
                }
                nonempty("name", name)
            }
            Record::Department { name, kind, .. } => {
                if !taxonomy.departments.contains_key(kind) {
                    return Err(FieldError::new(
                        "kind",
                        format!(
                            "unknown department kind; known: {}",
                            taxonomy
                                .departments
                                .keys()
                                .map(String::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
                nonempty("name", name)
            }
            Record::Supervisor {
                name,
                level,
                district_code,
                street_id,
                ..
            } => {
                match (level.as_str(), district_code, street_id) {
                    ("city", None, None) | ("district", Some(_), None) | ("street", _, Some(_)) => {
                    }
                    ("city" | "district" | "street", _, _) => {
                        return Err(FieldError::new(
                            "level",
                            "a city supervisor has no area, a district one a district_code, a street one a street_id",
                        ));
                    }
                    _ => {
                        return Err(FieldError::new(
                            "level",
                            format!("must be one of {}", SUPERVISOR_LEVELS.join(", ")),
                        ));
                    }
                }
                nonempty("name", name)
            }
            Record::Officer {
                name, phone, email, ..
            } => {
                check_officer(phone, email)?;
                nonempty("name", name)
            }
        }
    }
}

/// An officer's addresses: at least one, since an officer signs in with it.
fn check_officer(phone: &Option<String>, email: &Option<String>) -> Result<(), FieldError> {
    check_contact(phone, email)?;
    if phone.is_none() && email.is_none() {
        return Err(FieldError::new(
            "email",
            "an officer signs in with a phone number or an e-mail address: give one",
        ));
    }
    Ok(())
}

/// A phone number and an e-mail address, each optional but never blank.
fn check_contact(phone: &Option<String>, email: &Option<String>) -> Result<(), FieldError> {
    if let Some(p) = phone {
        crate::text::phone("phone", p)?;
    }
    if let Some(e) = email {
        crate::text::email("email", e)?;
    }
    Ok(())
}

/// Checks the values of a unit; shared by the import and the HTTP registration.
pub fn parse_unit_values(
    address_code: &str,
    address: &str,
    lon: f64,
    lat: f64,
    floor_area: f64,
    occupants: i64,
) -> Result<Point, FieldError> {
    if address_code.trim().is_empty() || address_code.len() > 64 {
        return Err(FieldError::new(
            "address_code",
            "a standard address code of 1 to 64 characters",
        ));
    }
    if address.trim().is_empty() || address.chars().count() > 200 {
        return Err(FieldError::new(
            "address",
            "an address of 1 to 200 characters",
        ));
    }
    let point = Point::parse(lon, lat, "point")?;
    if !floor_area.is_finite() || !(1.0..=100_000.0).contains(&floor_area) {
        return Err(FieldError::new(
            "floor_area",
            "floor area in m² from 1 to 100000",
        ));
    }
    if !(0..=10_000).contains(&occupants) {
        return Err(FieldError::new("occupants", "from 0 to 10000 occupants"));
    }
    Ok(point)
}

/// Where a building sits, for placing a new unit in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildingPlace {
    pub building_id: BuildingId,
    pub grid_id: GridId,
    pub community_id: CommunityId,
    pub street_id: StreetId,
    pub district_code: String,
    /// The building's point.
    pub lon: f64,
    pub lat: f64,
}

/// A unit ready to be written: its values and its place.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitRow {
    pub address_code: String,
    pub address: String,
    pub point: Point,
    pub floor_area: f64,
    pub occupants: i64,
    pub building_id: BuildingId,
    /// The unit's place, from its point.
    pub place: crate::spatial::grids::PointPlace,
    pub party_id: Option<PartyId>,
}

/// A rental unit as stored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Unit {
    pub id: UnitId,
    pub address_code: String,
    pub building_id: BuildingId,
    pub address: String,
    pub lon: f64,
    pub lat: f64,
    pub floor_area: f64,
    pub occupants: i64,
    /// The grid whose polygon holds the unit's point; `None` outside every grid.
    pub grid_id: Option<GridId>,
    pub community_id: Option<CommunityId>,
    pub street_id: Option<StreetId>,
    pub district_code: String,
    pub party_id: Option<PartyId>,
    pub created_at: DateTime<Utc>,
    /// 1 to 5 stars; `None` until graded.
    pub stars: Option<u8>,
    pub score: Option<f64>,
    /// The latest grading checklist.
    pub checklist: Option<crate::grading::Checklist>,
    pub last_inspected_at: Option<DateTime<Utc>>,
    /// When a case of the unit was last closed.
    pub last_closed_at: Option<DateTime<Utc>>,
    /// The next patrol; `None` means due now.
    pub next_due_at: Option<DateTime<Utc>>,
    pub evening_only: bool,
    /// The code on the unit's public placard (`/u/{public_code}`).
    pub public_code: String,
}

impl Unit {
    pub fn place(&self) -> crate::auth::Place<'_> {
        crate::auth::Place {
            district_code: &self.district_code,
            street_id: self.street_id,
            grid_id: self.grid_id,
            party_id: self.party_id,
            department_id: None,
        }
    }

    pub fn point(&self) -> Point {
        Point::parse(self.lon, self.lat, "unit").unwrap_or_else(|_| {
            Point::parse(0.0, 0.0, "unit").expect("the origin is a valid point")
        })
    }
}

/// Codes for units' public placards, in Crockford base32: the unit's id (at least six
/// characters) and then eight random characters. Unique because ids are, in id order
/// (so that a large import appends to the index of codes instead of writing all over
/// it), and not to be found by counting: a guess for a given unit succeeds with odds of
/// one in 2^40.
pub struct PublicCodes(rand::rngs::ChaCha8Rng);

const CODE_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

impl PublicCodes {
    /// A generator seeded from the operating system.
    pub fn new() -> PublicCodes {
        use rand::SeedableRng;
        PublicCodes(
            rand::rngs::ChaCha8Rng::try_from_rng(&mut rand::rngs::SysRng)
                .expect("the operating system provides randomness"),
        )
    }

    pub fn code_for(&mut self, id: UnitId) -> String {
        use rand::RngExt;
        let id = id.0.max(0) as u64;
        let digits = (1..=13u32)
            .find(|k| id.checked_shr(5 * k).unwrap_or(0) == 0)
            .unwrap_or(13)
            .max(6);
        let mut code: String = (0..digits)
            .rev()
            .map(|k| char::from(CODE_ALPHABET[((id >> (5 * k)) & 31) as usize]))
            .collect();
        code.extend((0..8).map(|_| char::from(CODE_ALPHABET[self.0.random_range(0..32usize)])));
        code
    }

    /// Whether `code` could be a placard code (before looking it up). Codes given by
    /// migration 0004 to units registered before it are 12 random characters.
    pub fn plausible(code: &str) -> bool {
        (12..=21).contains(&code.len()) && code.bytes().all(|b| CODE_ALPHABET.contains(&b))
    }
}

impl Default for PublicCodes {
    fn default() -> PublicCodes {
        PublicCodes::new()
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn placard_codes_are_unique_ordered_and_unguessable() {
        let mut codes = PublicCodes::new();
        let a = codes.code_for(UnitId(1));
        let b = codes.code_for(UnitId(1));
        assert_eq!(a.len(), 14);
        assert_eq!(&a[..6], "000001");
        assert_ne!(a[6..], b[6..], "the random part differs");
        let ids = [
            1,
            31,
            32,
            1_000,
            4_800_000,
            (1 << 30) - 1,
            1 << 30,
            i64::MAX,
        ];
        let made: Vec<String> = ids.iter().map(|i| codes.code_for(UnitId(*i))).collect();
        for (i, code) in ids.iter().zip(&made) {
            assert!(PublicCodes::plausible(code), "{i}: {code}");
        }
        // In id order while the ids fit six characters.
        assert!(made[..6].windows(2).all(|w| w[0] < w[1]));
        assert_eq!(made[6].len(), 15);
        assert!(!PublicCodes::plausible("<script>alert"));
        assert!(!PublicCodes::plausible("0000"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::taxonomy::Taxonomy;

    #[test]
    fn records_parse_from_json_lines_and_are_checked() {
        let t = Taxonomy::builtin();
        let r: Record = serde_json::from_str(
            r#"{"type":"unit","id":1,"address_code":"4401060010010101","building_id":3,"address":"天河区 1 号 101","lon":113.36,"lat":23.12,"floor_area":35.5,"occupants":2}"#,
        )
        .unwrap();
        assert!(r.check(&t).is_ok());
        let bad: Record = serde_json::from_str(
            r#"{"type":"unit","id":1,"address_code":"x","building_id":3,"address":"a","lon":113.36,"lat":99,"floor_area":35.5,"occupants":2}"#,
        )
        .unwrap();
        assert_eq!(bad.check(&t).unwrap_err().field, "point.lat");
        assert!(
            serde_json::from_str::<Record>(r#"{"type":"unit","id":1,"colour":"red"}"#).is_err()
        );
        let dept: Record =
            serde_json::from_str(r#"{"type":"department","id":1,"name":"x","kind":"navy"}"#)
                .unwrap();
        assert_eq!(dept.check(&t).unwrap_err().field, "kind");
        let sup: Record =
            serde_json::from_str(r#"{"type":"supervisor","id":1,"name":"x","level":"district"}"#)
                .unwrap();
        assert_eq!(sup.check(&t).unwrap_err().field, "level");
    }
}
