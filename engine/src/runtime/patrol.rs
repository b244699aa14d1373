//! Patrol work on the runtime: planning a day for the whole city or for one inspector, campaigns and their progress, and the public placards of units.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::auth::{Principal, Scope};
use crate::domain::{GridId, InspectorId, Role, UnitId};
use crate::planning::{self, Backlog, DayPlan, Planner};
use crate::runtime::Runtime;
use crate::store::{
    CampaignArea, CampaignProgress, CampaignRecord, CheckItem, NewCampaign, Placard, PlanSave,
    StoredRoute,
};
use crate::{Error, Result};

/// What planning a whole day took.
#[derive(Debug, Clone, Serialize)]
pub struct CityPlanReport {
    pub date: NaiveDate,
    pub inspectors: usize,
    pub routes: usize,
    pub candidates: usize,
    pub planned: usize,
    pub backlog: usize,
    pub length_m: f64,
    pub nn_length_m: f64,
    #[serde(skip)]
    pub load: Duration,
    #[serde(skip)]
    pub plan: Duration,
    #[serde(skip)]
    pub save: Duration,
}

/// One inspector's plan of a day, as they see it on their phone.
#[derive(Debug, Clone)]
pub struct InspectorPlan {
    pub date: NaiveDate,
    /// Always true: a plan shown is stored, and the same all day.
    pub stored: bool,
    pub planned_at: DateTime<Utc>,
    pub route: StoredRoute,
}

/// A campaign as submitted.
#[derive(Debug, Clone)]
pub struct CampaignInput {
    pub name: String,
    pub area: CampaignAreaInput,
    pub area_json: serde_json::Value,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub checklist: Vec<CheckItem>,
}

#[derive(Debug, Clone)]
pub enum CampaignAreaInput {
    District(String),
    Street(i64),
    Grid(GridId),
    Polygon(geo::MultiPolygon<f64>),
}

/// The eight checks (八查) of a building sweep, the checklist a campaign gets when it
/// brings none of its own.
pub fn eight_checks() -> Vec<CheckItem> {
    [
        ("occupants_registered", "查人员登记", "Occupants registered"),
        (
            "ebike_charging",
            "查电动自行车违规停放充电",
            "E-bikes parked or charged indoors",
        ),
        (
            "gas_heater",
            "查燃气热水器违规安装",
            "Gas water heaters installed against code",
        ),
        ("wiring", "查电气线路私拉乱接", "Makeshift wiring"),
        (
            "escape_route",
            "查疏散通道和安全出口",
            "Escape routes and exits",
        ),
        (
            "fire_equipment",
            "查消防器材配置",
            "Extinguishers and smoke alarms",
        ),
        (
            "three_in_one",
            "查“三合一”场所",
            "Living, working and storage in one place",
        ),
        (
            "group_rental",
            "查群租和违规改建",
            "Overcrowding and illegal partitioning",
        ),
    ]
    .into_iter()
    .map(|(code, zh, en)| CheckItem {
        code: code.into(),
        zh: zh.into(),
        en: en.into(),
    })
    .collect()
}

/// The longest campaign window, in days.
pub const MAX_CAMPAIGN_DAYS: i64 = 366;

impl Runtime {
    /// Plans a day for the whole city and stores it, keeping the routes stored already
    /// (with their visits) unless `replace`. Stages are timed for the benchmark.
    pub async fn plan_city(&self, date: NaiveDate, replace: bool) -> Result<CityPlanReport> {
        let started = Instant::now();
        let (start, end) = crate::time::day_bounds(date);
        let planners = self.store().planners().await?;
        let candidates = self.store().plan_candidates(None, start, end).await?;
        let load = started.elapsed();
        let count = candidates.len();
        let inspectors = planners.len();
        let started = Instant::now();
        let plan =
            tokio::task::spawn_blocking(move || planning::plan_day(date, candidates, &planners))
                .await
                .map_err(|e| Error::Conflict(format!("planning failed: {e}")))?;
        let plan_time = started.elapsed();
        let started = Instant::now();
        let mode = if replace {
            PlanSave::ReplaceCity
        } else {
            PlanSave::City
        };
        self.store().save_plan(&plan, self.now(), mode).await?;
        Ok(CityPlanReport {
            date,
            inspectors,
            routes: plan.routes.len(),
            candidates: count,
            planned: plan.planned(),
            backlog: plan.backlog.iter().map(|b| b.left as usize).sum(),
            length_m: plan.routes.iter().map(|r| r.length_m).sum(),
            nn_length_m: plan.routes.iter().map(|r| r.nn_length_m).sum(),
            load,
            plan: plan_time,
            save: started.elapsed(),
        })
    }

    /// Plans a day for the inspectors connected to `inspector` through shared grids
    /// (planning them alone gives each the route the whole city's plan would), without
    /// storing it.
    pub async fn plan_around(&self, inspector: InspectorId, date: NaiveDate) -> Result<DayPlan> {
        Ok(self.plan_group(inspector, date).await?.0)
    }

    /// The plan of the inspectors connected to `inspector`, and those inspectors.
    async fn plan_group(
        &self,
        inspector: InspectorId,
        date: NaiveDate,
    ) -> Result<(DayPlan, Vec<Planner>)> {
        let planners = self.store().planners().await?;
        let group = connected(&planners, inspector);
        let grids: BTreeSet<GridId> = group.iter().flat_map(|p| p.grids.clone()).collect();
        let grids: Vec<GridId> = grids.into_iter().collect();
        let (start, end) = crate::time::day_bounds(date);
        let candidates = self
            .store()
            .plan_candidates(Some(&grids), start, end)
            .await?;
        Ok((planning::plan_day(date, candidates, &group), group))
    }

    /// Whether the caller may see an inspector's plan: the inspector, or a supervisor
    /// over one of the inspector's grids.
    async fn may_see_inspector(&self, principal: &Principal, id: InspectorId) -> Result<()> {
        let grids = self
            .store()
            .inspector_grids(id)
            .await?
            .ok_or_else(|| Error::not_found("inspector", id))?;
        let allowed = match (&principal.scope, principal.role) {
            (Scope::City | Scope::System, _) => true,
            (Scope::Grids(_), Role::Inspector) => principal.subject == id.0,
            (Scope::District(_) | Scope::Street(_), Role::Supervisor) => {
                let mut any = false;
                for g in grids {
                    if let Some(grid) = self.store().grid(g).await?
                        && principal.covers(grid.place())
                    {
                        any = true;
                        break;
                    }
                }
                any
            }
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::not_found("inspector", id))
        }
    }

    /// An inspector's plan of a day. The day is planned once: the city's run stores it,
    /// or, asked for before, the plan of the inspector's group is stored when first
    /// shown. Visits are marked on it; units that come up during the day (registered
    /// since, or brought in by a campaign created since) are appended as extra stops,
    /// never reordering the stops already there.
    pub async fn inspector_plan(
        &self,
        principal: &Principal,
        id: InspectorId,
        date: NaiveDate,
    ) -> Result<InspectorPlan> {
        self.may_see_inspector(principal, id).await?;
        let route = match self.store().stored_route(date, id).await? {
            Some(route) => route,
            None => {
                let (mut plan, group) = self.plan_group(id, date).await?;
                // Every inspector of the group gets a stored route, empty or not, so
                // that the day is planned once for all of them.
                for p in group {
                    if !plan.routes.iter().any(|r| r.inspector_id == p.id) {
                        plan.routes.push(planning::Route {
                            inspector_id: p.id,
                            shift: p.shift,
                            capacity: p.capacity,
                            stops: Vec::new(),
                            length_m: 0.0,
                            nn_length_m: 0.0,
                        });
                    }
                }
                self.store()
                    .save_plan(&plan, self.now(), PlanSave::Group)
                    .await?;
                self.store()
                    .stored_route(date, id)
                    .await?
                    .ok_or_else(|| Error::not_found("inspector", id))?
            }
        };
        let mut route = self.append_new_stops(date, id, route).await?;
        // A planned unit someone reported since is a priority visit too.
        let units: Vec<UnitId> = route.stops.iter().map(|s| s.unit_id).collect();
        let tipped = self.store().units_with_open_tips(&units).await?;
        for stop in route.stops.iter_mut() {
            if tipped.contains(&stop.unit_id) {
                stop.reason = planning::Reason::Tip;
            }
        }
        Ok(InspectorPlan {
            date,
            stored: true,
            planned_at: route.planned_at,
            route,
        })
    }

    /// Appends to a stored route the units of the inspector's grids that came up since
    /// it was planned, nearest first from its last stop.
    async fn append_new_stops(
        &self,
        date: NaiveDate,
        id: InspectorId,
        route: StoredRoute,
    ) -> Result<StoredRoute> {
        let Some(grids) = self.store().inspector_grids(id).await? else {
            return Ok(route);
        };
        let grids: Vec<GridId> = grids.into_iter().collect();
        let found = self
            .store()
            .new_candidates(date, &grids, route.planned_at)
            .await?;
        if found.is_empty() {
            return Ok(route);
        }
        let from = route.stops.last().map(|s| (s.lon, s.lat));
        let stops = planning::extra_stops(date, from, found);
        self.store().append_stops(date, id, &stops).await?;
        Ok(self.store().stored_route(date, id).await?.unwrap_or(route))
    }

    /// The backlog per grid of a stored day, in the caller's jurisdiction.
    pub async fn plan_backlog(
        &self,
        principal: &Principal,
        date: NaiveDate,
    ) -> Result<Vec<Backlog>> {
        crate::policy::check(principal, crate::policy::Act::ReadPlanningBacklog)?;
        self.store()
            .stored_backlog(date, &principal.scope)
            .await?
            .ok_or_else(|| Error::not_found("plan", date))
    }

    /// Creates a campaign over the units of its area in the caller's jurisdiction.
    pub async fn create_campaign(
        &self,
        principal: &Principal,
        input: CampaignInput,
    ) -> Result<CampaignRecord> {
        crate::policy::check(principal, crate::policy::Act::CreateCampaign)?;
        let mut errors = Vec::new();
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            errors.push(crate::error::FieldError::new("name", "1 to 200 characters"));
        }
        for (field, day) in [("starts_on", input.starts_on), ("ends_on", input.ends_on)] {
            if let Err(e) = crate::text::check_day(field, day) {
                errors.push(e);
            }
        }
        if input.ends_on < input.starts_on {
            errors.push(crate::error::FieldError::new(
                "ends_on",
                "must not be before starts_on",
            ));
        } else if (input.ends_on - input.starts_on).num_days() >= MAX_CAMPAIGN_DAYS {
            errors.push(crate::error::FieldError::new(
                "ends_on",
                format!("a campaign lasts at most {MAX_CAMPAIGN_DAYS} days"),
            ));
        }
        if input.checklist.len() > 50 {
            errors.push(crate::error::FieldError::new(
                "checklist",
                "at most 50 items",
            ));
        }
        let mut codes = BTreeSet::new();
        for (i, item) in input.checklist.iter().enumerate() {
            let bad = |s: &str| s.trim().is_empty() || s.chars().count() > 200;
            if bad(&item.code) || bad(&item.zh) || bad(&item.en) {
                errors.push(crate::error::FieldError::new(
                    format!("checklist[{i}]"),
                    "code, zh and en are 1 to 200 characters",
                ));
            } else if !codes.insert(item.code.clone()) {
                errors.push(crate::error::FieldError::new(
                    format!("checklist[{i}].code"),
                    "appears twice",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let area = match input.area {
            CampaignAreaInput::District(code) => CampaignArea::District(code),
            CampaignAreaInput::Street(id) => CampaignArea::Street(crate::domain::StreetId(id)),
            CampaignAreaInput::Grid(id) => CampaignArea::Grid(id),
            CampaignAreaInput::Polygon(shape) => {
                CampaignArea::Units(self.unit_ids_in_polygon(&shape))
            }
        };
        self.store()
            .create_campaign(
                &NewCampaign {
                    name: name.to_string(),
                    area,
                    area_json: input.area_json,
                    starts_on: input.starts_on,
                    ends_on: input.ends_on,
                    checklist: input.checklist,
                    created_by: format!("supervisor:{}", principal.subject),
                    at: self.now(),
                },
                &principal.scope,
            )
            .await
    }

    pub async fn campaigns(&self, principal: &Principal) -> Result<Vec<CampaignRecord>> {
        crate::policy::check(principal, crate::policy::Act::ReadCampaigns)?;
        Ok(self.store().campaigns(&principal.scope).await?)
    }

    pub async fn campaign(&self, principal: &Principal, id: i64) -> Result<CampaignRecord> {
        crate::policy::check(principal, crate::policy::Act::ReadCampaigns)?;
        self.store()
            .campaign(id, &principal.scope)
            .await?
            .ok_or_else(|| Error::not_found("campaign", id))
    }

    /// A campaign's progress by `district`, `street`, `community` or `grid`.
    pub async fn campaign_progress(
        &self,
        principal: &Principal,
        id: i64,
        by: &str,
    ) -> Result<Vec<CampaignProgress>> {
        if !["district", "street", "community", "grid"].contains(&by) {
            return Err(Error::invalid(
                "by",
                "one of district, street, community, grid",
            ));
        }
        self.campaign(principal, id).await?;
        Ok(self
            .store()
            .campaign_progress(id, by, &principal.scope)
            .await?)
    }

    /// The units a landlord, agent or sub-landlord answers for: their own only; a
    /// supervisor or inspector sees those in their jurisdiction.
    pub async fn party_units(
        &self,
        principal: &Principal,
        party: crate::domain::PartyId,
    ) -> Result<Vec<crate::store::PartyUnit>> {
        crate::policy::check(principal, crate::policy::Act::ReadPartyUnits(party))?;
        let units = self.store().party_units(party).await?;
        Ok(units
            .into_iter()
            .filter(|u| principal.covers(u.unit.place()))
            .collect())
    }

    /// A unit's public placard, for anyone.
    pub async fn placard(&self, public_code: &str) -> Result<Placard> {
        let found = if crate::registry::PublicCodes::plausible(public_code) {
            self.store().placard(public_code).await?
        } else {
            None
        };
        found.ok_or_else(|| Error::not_found("unit", public_code))
    }

    /// A community's units graded 2 stars or lower, for anyone.
    pub async fn low_grade_units(&self, community_code: &str) -> Result<(String, Vec<Placard>)> {
        let valid = !community_code.is_empty()
            && community_code.len() <= 32
            && community_code.bytes().all(|b| b.is_ascii_alphanumeric());
        let found = if valid {
            self.store().low_grade_placards(community_code, 2).await?
        } else {
            None
        };
        found.ok_or_else(|| Error::not_found("community", community_code))
    }
}

/// The inspectors reachable from `start` through grids they share.
fn connected(planners: &[Planner], start: InspectorId) -> Vec<Planner> {
    let mut by_grid: HashMap<GridId, Vec<usize>> = HashMap::new();
    for (i, p) in planners.iter().enumerate() {
        for g in &p.grids {
            by_grid.entry(*g).or_default().push(i);
        }
    }
    let mut seen = vec![false; planners.len()];
    let mut queue: VecDeque<usize> = planners
        .iter()
        .position(|p| p.id == start)
        .into_iter()
        .collect();
    for &i in &queue {
        seen[i] = true;
    }
    while let Some(i) = queue.pop_front() {
        for g in &planners[i].grids {
            for &j in &by_grid[g] {
                if !seen[j] {
                    seen[j] = true;
                    queue.push_back(j);
                }
            }
        }
    }
    planners
        .iter()
        .zip(seen)
        .filter(|(_, s)| *s)
        .map(|(p, _)| p.clone())
        .collect()
}
