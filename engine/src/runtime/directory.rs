//! Directories, scoped: the departments, inspectors and supervisors a caller may look up (so that nobody finds ids by trial). Who sees whom follows the caller's jurisdiction.

use std::collections::BTreeSet;

use crate::auth::{Principal, Scope};
use crate::domain::{GridId, Role};
use crate::error::Result;
use crate::routing::DepartmentInfo;
use crate::runtime::Runtime;
use crate::store::{InspectorListing, SupervisorRecord};

impl Runtime {
    /// The districts (GB/T 2260 codes) a caller works in; `None` for the whole city.
    async fn districts_of(&self, principal: &Principal) -> Result<Option<BTreeSet<String>>> {
        let grids = self.grid_index().await?;
        Ok(match &principal.scope {
            Scope::City | Scope::System => None,
            Scope::District(code) => Some([code.clone()].into()),
            Scope::Street(street) => Some(
                grids
                    .places()
                    .filter(|(_, p)| p.street_id == *street)
                    .map(|(_, p)| p.district_code.clone())
                    .collect(),
            ),
            Scope::Grids(mine) => Some(
                grids
                    .places()
                    .filter(|(g, _)| mine.contains(g))
                    .map(|(_, p)| p.district_code.clone())
                    .collect(),
            ),
            Scope::Department(d) => Some(
                self.routing()
                    .get(*d)
                    .and_then(|d| d.district_code.clone())
                    .into_iter()
                    .collect(),
            ),
            Scope::Party(_) => Some(BTreeSet::new()),
        })
    }

    /// The departments a caller may refer to or work with: those serving the caller's
    /// districts, and the city-wide ones (staff and departments; not landlords).
    pub async fn department_directory(&self, principal: &Principal) -> Result<Vec<DepartmentInfo>> {
        crate::policy::check(principal, crate::policy::Act::ReadDepartmentDirectory)?;
        let districts = self.districts_of(principal).await?;
        Ok(self
            .store()
            .departments()
            .await?
            .into_iter()
            .filter(|d| match (&districts, &d.district_code) {
                (None, _) | (_, None) => true,
                (Some(mine), Some(code)) => mine.contains(code),
            })
            .collect())
    }

    /// The inspectors of the caller's area (supervisors); an inspector sees those who
    /// share a grid with them.
    pub async fn inspector_directory(
        &self,
        principal: &Principal,
    ) -> Result<Vec<InspectorListing>> {
        crate::policy::check(principal, crate::policy::Act::ReadInspectorDirectory)?;
        let all = self.store().inspectors().await?;
        let grids = self.grid_index().await?;
        let keep: Box<dyn Fn(&GridId) -> bool + Send> = match (&principal.scope, principal.role) {
            (Scope::City | Scope::System, _) => Box::new(|_| true),
            (Scope::Grids(mine), Role::Inspector) => {
                let mine = mine.clone();
                Box::new(move |g| mine.contains(g))
            }
            (Scope::District(_) | Scope::Street(_), Role::Supervisor) => {
                let inside: BTreeSet<GridId> = grids
                    .places()
                    .filter(|(_, p)| {
                        principal.covers(crate::auth::Place {
                            district_code: &p.district_code,
                            street_id: Some(p.street_id),
                            grid_id: None,
                            party_id: None,
                            department_id: None,
                        })
                    })
                    .map(|(g, _)| *g)
                    .collect();
                Box::new(move |g| inside.contains(g))
            }
            // Staff whose scope holds no grid see no inspector.
            _ => Box::new(|_| false),
        };
        Ok(all
            .into_iter()
            .filter(|i| i.grids.iter().any(&keep))
            .collect())
    }

    /// The supervisors over the caller's area: the city's, its districts' and streets'
    /// (staff only).
    pub async fn supervisor_directory(
        &self,
        principal: &Principal,
    ) -> Result<Vec<SupervisorRecord>> {
        crate::policy::check(principal, crate::policy::Act::ReadSupervisorDirectory)?;
        let districts = self.districts_of(principal).await?;
        let grids = self.grid_index().await?;
        let streets: BTreeSet<_> = match &principal.scope {
            Scope::Street(s) => [*s].into(),
            Scope::Grids(mine) => grids
                .places()
                .filter(|(g, _)| mine.contains(g))
                .map(|(_, p)| p.street_id)
                .collect(),
            _ => BTreeSet::new(),
        };
        Ok(self
            .store()
            .supervisors()
            .await?
            .into_iter()
            .filter(|s| match (&districts, s.level.as_str()) {
                (None, _) | (_, "city") => true,
                (Some(mine), "district") => {
                    s.district_code.as_ref().is_some_and(|d| mine.contains(d))
                }
                (Some(_), _) => match principal.scope {
                    Scope::District(ref code) => grids
                        .places()
                        .any(|(_, p)| Some(p.street_id) == s.street_id && &p.district_code == code),
                    _ => s.street_id.is_some_and(|st| streets.contains(&st)),
                },
            })
            .collect())
    }
}
