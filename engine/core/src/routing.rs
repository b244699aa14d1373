//! The department directory held in memory: names for messages and the routing of a referral by department kind and district.

use std::collections::BTreeMap;

use crate::domain::DepartmentId;

#[derive(Debug, Clone, PartialEq)]
pub struct DepartmentInfo {
    pub id: DepartmentId,
    pub name: String,
    /// A department kind of the taxonomy (`fire`, `gas`, …).
    pub kind: String,
    /// The district it serves; `None` for a city-level department.
    pub district_code: Option<String>,
}

/// One row of the routing table; `department` is `None` where no department of the
/// kind serves the district (a referral then has to name one).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub category: String,
    pub district_code: String,
    pub department_kind: String,
    pub department: Option<DepartmentInfo>,
}

/// Every enforcement department, indexed for routing. Departments are few (tens to a few
/// hundred), so the whole directory lives in memory and is replaced when it changes.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    by_id: BTreeMap<DepartmentId, DepartmentInfo>,
    by_kind_district: BTreeMap<(String, Option<String>), DepartmentId>,
    /// The streets that have a supervisor of their own: their objections are decided
    /// there, the others' by the district's supervisors.
    supervised_streets: std::collections::BTreeSet<crate::domain::StreetId>,
}

impl Routing {
    pub fn new(departments: impl IntoIterator<Item = DepartmentInfo>) -> Routing {
        let mut routing = Routing::default();
        for d in departments {
            // The lowest id wins when two departments claim the same kind and district,
            // so routing does not depend on load order.
            routing
                .by_kind_district
                .entry((d.kind.clone(), d.district_code.clone()))
                .and_modify(|id| *id = (*id).min(d.id))
                .or_insert(d.id);
            routing.by_id.insert(d.id, d);
        }
        routing
    }

    /// The same directory, with the streets that have a supervisor of their own.
    pub fn with_supervised_streets(
        mut self,
        streets: impl IntoIterator<Item = crate::domain::StreetId>,
    ) -> Routing {
        self.supervised_streets = streets.into_iter().collect();
        self
    }

    /// Whether `principal` decides the objections of a case at `place`: a supervisor of
    /// the case's street, or of its district where the street has no supervisor of its
    /// own (or the case lies in no street). The city's supervisors do not.
    pub fn decides_objections(
        &self,
        principal: &crate::auth::Principal,
        place: &crate::auth::Place<'_>,
    ) -> bool {
        use crate::auth::Scope;
        match &principal.scope {
            Scope::Street(s) => place.street_id == Some(*s),
            Scope::District(d) => {
                d == place.district_code
                    && place
                        .street_id
                        .is_none_or(|s| s.0 == 0 || !self.supervised_streets.contains(&s))
            }
            Scope::System => true,
            _ => false,
        }
    }

    pub fn get(&self, id: DepartmentId) -> Option<&DepartmentInfo> {
        self.by_id.get(&id)
    }

    /// The department of `kind` serving `district_code`, or the city-level one.
    pub fn route(&self, kind: &str, district_code: &str) -> Option<&DepartmentInfo> {
        self.by_kind_district
            .get(&(kind.to_string(), Some(district_code.to_string())))
            .or_else(|| self.by_kind_district.get(&(kind.to_string(), None)))
            .and_then(|id| self.by_id.get(id))
    }

    /// The districts that have a department of their own.
    pub fn districts(&self) -> Vec<String> {
        let mut districts: Vec<String> = self
            .by_id
            .values()
            .filter_map(|d| d.district_code.clone())
            .collect();
        districts.sort_unstable();
        districts.dedup();
        districts
    }

    /// The routing table (转办路由) for these districts: where a referral of each
    /// hazard category goes, by the category's department kind (the taxonomy) and the
    /// department of that kind serving the district (the directory).
    pub fn table(&self, taxonomy: &crate::taxonomy::Taxonomy, districts: &[String]) -> Vec<Route> {
        let mut rows = Vec::with_capacity(taxonomy.categories.len() * districts.len());
        for district in districts {
            for c in &taxonomy.categories {
                rows.push(Route {
                    category: c.code.clone(),
                    district_code: district.clone(),
                    department_kind: c.department.clone(),
                    department: self.route(&c.department, district).cloned(),
                });
            }
        }
        rows
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dept(id: i64, kind: &str, district: Option<&str>) -> DepartmentInfo {
        DepartmentInfo {
            id: DepartmentId(id),
            name: format!("d{id}"),
            kind: kind.into(),
            district_code: district.map(Into::into),
        }
    }

    #[test]
    fn routes_to_the_district_department_then_the_city_one() {
        let r = Routing::new([
            dept(1, "fire", Some("440106")),
            dept(2, "fire", None),
            dept(3, "gas", None),
        ]);
        assert_eq!(r.route("fire", "440106").unwrap().id, DepartmentId(1));
        assert_eq!(r.route("fire", "440104").unwrap().id, DepartmentId(2));
        assert_eq!(r.route("gas", "440106").unwrap().id, DepartmentId(3));
        assert!(r.route("police", "440106").is_none());
    }

    #[test]
    fn duplicate_claims_route_to_the_lowest_id_whatever_the_order() {
        let a = Routing::new([dept(9, "fire", None), dept(4, "fire", None)]);
        let b = Routing::new([dept(4, "fire", None), dept(9, "fire", None)]);
        assert_eq!(a.route("fire", "x").unwrap().id, DepartmentId(4));
        assert_eq!(b.route("fire", "x").unwrap().id, DepartmentId(4));
    }
}
