//! Daily patrol plans, pure: which due units each inspector visits on a day (most overdue and riskiest first, within capacity and shift), in what order (a nearest-neighbour route improved by 2-opt), and what is left over per grid.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::time::day_bounds;
use serde::{Deserialize, Serialize};

use crate::domain::{GridId, InspectorId, UnitId};
use crate::spatial::index::EARTH_RADIUS_M;

/// Visits an inspector makes in a day unless their record says otherwise.
pub const DEFAULT_CAPACITY: u32 = 25;

/// A unit that may be visited on the day.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: UnitId,
    pub grid_id: GridId,
    pub lon: f64,
    pub lat: f64,
    /// The next patrol from the grade; `None` for a unit never graded (due at once).
    pub next_due_at: Option<DateTime<Utc>>,
    pub stars: Option<u8>,
    pub evening_only: bool,
    /// The start of the earliest running campaign that has not visited the unit yet.
    pub campaign_from: Option<DateTime<Utc>>,
    /// An open tip lies on the unit.
    pub tip: bool,
}

/// An inspector as the planner sees them.
#[derive(Debug, Clone, PartialEq)]
pub struct Planner {
    pub id: InspectorId,
    /// `morning`, `afternoon` or `evening`.
    pub shift: String,
    pub capacity: u32,
    pub grids: Vec<GridId>,
}

/// Why a unit is in a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Never graded: nothing is known of it, so it goes first.
    Never,
    /// A campaign covers it and it has not been visited in the campaign yet.
    Campaign,
    /// Its patrol (or return visit) is due.
    Due,
    /// Someone reported a hazard in it (a tip from the hotline or its placard): a
    /// priority visit, appended to the day's stops.
    Tip,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Never => "never",
            Reason::Campaign => "campaign",
            Reason::Due => "due",
            Reason::Tip => "tip",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        match s {
            "never" => Some(Reason::Never),
            "campaign" => Some(Reason::Campaign),
            "due" => Some(Reason::Due),
            "tip" => Some(Reason::Tip),
            _ => None,
        }
    }
}

/// One visit of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub unit_id: UnitId,
    pub grid_id: GridId,
    pub lon: f64,
    pub lat: f64,
    pub reason: Reason,
    /// Whole days the visit is overdue at the end of the day (0 if due that day).
    pub overdue_days: i64,
    pub stars: Option<u8>,
    pub evening_only: bool,
    /// Metres walked from the previous stop (0 for the first).
    pub leg_m: f64,
}

impl Stop {
    /// The stop of a candidate on a day ending at `day_end`, walked to from `prev`.
    fn of(c: &Candidate, day_end: DateTime<Utc>, prev: Option<(f64, f64)>) -> Stop {
        let (reason, overdue_days) = reason_and_overdue(c, day_end);
        Stop {
            unit_id: c.id,
            grid_id: c.grid_id,
            lon: c.lon,
            lat: c.lat,
            reason,
            overdue_days,
            stars: c.stars,
            evening_only: c.evening_only,
            leg_m: prev.map_or(0.0, |p| metres(p, (c.lon, c.lat))),
        }
    }
}

/// One inspector's day.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub inspector_id: InspectorId,
    pub shift: String,
    pub capacity: u32,
    pub stops: Vec<Stop>,
    /// The walking route's length, in metres.
    pub length_m: f64,
    /// The length of the nearest-neighbour route over the same stops, before 2-opt.
    pub nn_length_m: f64,
}

/// Due units of a grid, and how many could not be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    pub grid_id: GridId,
    pub due: u32,
    pub planned: u32,
    /// Due but in nobody's plan: no inspector covers the grid on a fitting shift, or
    /// they are full.
    pub left: u32,
}

/// A day's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct DayPlan {
    pub date: NaiveDate,
    pub routes: Vec<Route>,
    /// Grids with due units, by grid id.
    pub backlog: Vec<Backlog>,
}

impl DayPlan {
    pub fn planned(&self) -> usize {
        self.routes.iter().map(|r| r.stops.len()).sum()
    }

    pub fn due(&self) -> usize {
        self.backlog.iter().map(|b| b.due as usize).sum()
    }
}

/// Sort key: never-graded first, then most overdue, then fewest stars, then id.
fn priority(c: &Candidate, day_end: DateTime<Utc>) -> (bool, i64, u8, UnitId) {
    let (reason, overdue) = reason_and_overdue(c, day_end);
    (
        reason != Reason::Never,
        -overdue,
        c.stars.unwrap_or(0),
        c.id,
    )
}

fn reason_and_overdue(c: &Candidate, day_end: DateTime<Utc>) -> (Reason, i64) {
    if c.tip {
        return (Reason::Tip, 0);
    }
    let Some(next) = c.next_due_at else {
        return (Reason::Never, 0);
    };
    let (reason, due) = match c.campaign_from {
        Some(from) if from < next => (Reason::Campaign, from),
        _ => (Reason::Due, next),
    };
    // A day ending at `day_end` sees a unit due at `due` as overdue by the whole days
    // between them, rounded down (a unit due during the day is 0 days overdue).
    let overdue = ((day_end - due).num_seconds() - 1).max(0) / 86_400;
    (reason, overdue)
}

/// Plans a day. `candidates` are the units due by the end of the day or in a running
/// campaign; each unit is planned at most once.
pub fn plan_day(date: NaiveDate, mut candidates: Vec<Candidate>, planners: &[Planner]) -> DayPlan {
    let (_, day_end) = day_bounds(date);
    candidates.sort_by_cached_key(|c| priority(c, day_end));
    candidates.dedup_by_key(|c| c.id);

    let mut by_grid: HashMap<GridId, Vec<usize>> = HashMap::new();
    for (i, p) in planners.iter().enumerate() {
        for g in &p.grids {
            by_grid.entry(*g).or_default().push(i);
        }
    }
    let mut left: Vec<u32> = planners.iter().map(|p| p.capacity).collect();
    let mut assigned: Vec<Vec<usize>> = vec![Vec::new(); planners.len()];
    let mut backlog: BTreeMap<GridId, Backlog> = BTreeMap::new();
    let evening = |i: &usize| planners[*i].shift == "evening";

    // The inspector with the most room among those that fit, lowest id first on ties.
    let pick = |left: &[u32], options: &mut dyn Iterator<Item = usize>| -> Option<usize> {
        options
            .filter(|i| left[*i] > 0)
            .max_by_key(|i| (left[*i], std::cmp::Reverse(planners[*i].id)))
    };

    // Evening-only units first claim the evening shifts; the other units then go to the
    // day shifts, and to what room the evening shifts have left.
    for pass_evening in [true, false] {
        for (k, c) in candidates.iter().enumerate() {
            if c.evening_only != pass_evening {
                continue;
            }
            let entry = backlog.entry(c.grid_id).or_insert(Backlog {
                grid_id: c.grid_id,
                due: 0,
                planned: 0,
                left: 0,
            });
            entry.due += 1;
            let options = by_grid.get(&c.grid_id).map(Vec::as_slice).unwrap_or(&[]);
            let chosen = if pass_evening {
                pick(&left, &mut options.iter().copied().filter(evening))
            } else {
                pick(&left, &mut options.iter().copied().filter(|i| !evening(i)))
                    .or_else(|| pick(&left, &mut options.iter().copied().filter(evening)))
            };
            match chosen {
                Some(i) => {
                    left[i] -= 1;
                    assigned[i].push(k);
                    entry.planned += 1;
                }
                None => entry.left += 1,
            }
        }
    }

    // Routes are independent: order them on every core.
    let jobs: Vec<(&Planner, Vec<usize>)> = planners
        .iter()
        .zip(assigned)
        .filter(|(_, a)| !a.is_empty())
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().div_ceil(64).max(1));
    let per = jobs.len().div_ceil(threads).max(1);
    let candidates = &candidates;
    let routes: Vec<Route> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|(p, a)| route(p, a, candidates, day_end))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a route thread does not panic"))
            .collect()
    });
    DayPlan {
        date,
        routes,
        backlog: backlog.into_values().collect(),
    }
}

/// One inspector's visits in walking order.
fn route(p: &Planner, a: &[usize], candidates: &[Candidate], day_end: DateTime<Utc>) -> Route {
    let points: Vec<(f64, f64)> = a
        .iter()
        .map(|k| (candidates[*k].lon, candidates[*k].lat))
        .collect();
    let (order, length_m, nn_length_m) = walking_route(&points);
    let mut prev: Option<(f64, f64)> = None;
    let stops = order
        .into_iter()
        .map(|j| {
            let c = &candidates[a[j]];
            let stop = Stop::of(c, day_end, prev);
            prev = Some((c.lon, c.lat));
            stop
        })
        .collect();
    Route {
        inspector_id: p.id,
        shift: p.shift.clone(),
        capacity: p.capacity,
        stops,
        length_m,
        nn_length_m,
    }
}

/// Stops for units that came up after a route was planned, to append to it: nearest
/// first from `from` (the route's last stop), each with why it is due.
pub fn extra_stops(
    date: NaiveDate,
    from: Option<(f64, f64)>,
    mut found: Vec<Candidate>,
) -> Vec<Stop> {
    let (_, day_end) = day_bounds(date);
    let mut out = Vec::with_capacity(found.len());
    let mut here = from;
    while !found.is_empty() {
        let next = match here {
            Some(p) => found
                .iter()
                .enumerate()
                .min_by(|a, b| {
                    metres(p, (a.1.lon, a.1.lat))
                        .total_cmp(&metres(p, (b.1.lon, b.1.lat)))
                        .then(a.1.id.cmp(&b.1.id))
                })
                .map_or(0, |(i, _)| i),
            None => 0,
        };
        let c = found.swap_remove(next);
        let stop = Stop::of(&c, day_end, here);
        here = Some((c.lon, c.lat));
        out.push(stop);
    }
    out
}

/// Walking distance between two points in metres (equirectangular: exact enough within
/// a grid, and cheap).
pub fn metres(a: (f64, f64), b: (f64, f64)) -> f64 {
    let k = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
    let mid = ((a.1 + b.1) / 2.0).to_radians().cos();
    let dx = (a.0 - b.0) * k * mid;
    let dy = (a.1 - b.1) * k;
    (dx * dx + dy * dy).sqrt()
}

/// Distances between every pair of stops, in metres, row by row.
struct Matrix {
    n: usize,
    d: Vec<f64>,
}

impl Matrix {
    fn new(points: &[(f64, f64)]) -> Matrix {
        let n = points.len();
        let mut d = vec![0.0; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let m = metres(points[i], points[j]);
                d[i * n + j] = m;
                d[j * n + i] = m;
            }
        }
        Matrix { n, d }
    }

    fn get(&self, a: usize, b: usize) -> f64 {
        self.d[a * self.n + b]
    }

    fn length(&self, order: &[usize]) -> f64 {
        order.windows(2).map(|w| self.get(w[0], w[1])).sum()
    }
}

/// The nearest-neighbour path from `start`.
fn nearest_neighbour(m: &Matrix, start: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(m.n);
    let mut visited = vec![false; m.n];
    let mut here = start;
    visited[here] = true;
    order.push(here);
    for _ in 1..m.n {
        let next = (0..m.n)
            .filter(|j| !visited[*j])
            .min_by(|a, b| m.get(here, *a).total_cmp(&m.get(here, *b)))
            .expect("an unvisited point remains");
        visited[next] = true;
        order.push(next);
        here = next;
    }
    order
}

/// Improves an open path by 2-opt (reversing a stretch whenever that shortens it) until
/// no reversal helps.
fn two_opt(m: &Matrix, order: &mut [usize]) {
    let n = order.len();
    if n < 3 {
        return;
    }
    let mut improved = true;
    let mut rounds = 0;
    while improved && rounds < 100 {
        improved = false;
        rounds += 1;
        for i in 0..n - 1 {
            for j in i + 1..n {
                // Reversing order[i..=j] swaps the edges (i-1, i) and (j, j+1) for
                // (i-1, j) and (i, j+1); an open path has no edge before 0 or after n-1.
                let d = |a: usize, b: usize| m.get(order[a], order[b]);
                let before = if i > 0 { d(i - 1, i) } else { 0.0 }
                    + if j + 1 < n { d(j, j + 1) } else { 0.0 };
                let after = if i > 0 { d(i - 1, j) } else { 0.0 }
                    + if j + 1 < n { d(i, j + 1) } else { 0.0 };
                if after < before - 1e-9 {
                    order[i..=j].reverse();
                    improved = true;
                }
            }
        }
    }
}

/// A walking order over `points`: the shortest of the nearest-neighbour paths from
/// each start, improved by 2-opt. Returns the order, its length and the
/// nearest-neighbour length.
pub fn walking_route(points: &[(f64, f64)]) -> (Vec<usize>, f64, f64) {
    if points.is_empty() {
        return (Vec::new(), 0.0, 0.0);
    }
    let m = Matrix::new(points);
    let (mut order, nn_length) = (0..points.len())
        .map(|s| {
            let o = nearest_neighbour(&m, s);
            let l = m.length(&o);
            (o, l)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one point");
    two_opt(&m, &mut order);
    let length = m.length(&order);
    (order, length, nn_length)
}

/// How a visit ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitOutcome {
    /// The unit was inspected.
    #[default]
    Inspected,
    /// Nobody opened the door: an attempt; the unit comes back soon.
    NoOneHome,
    /// Entry was refused (拒绝入户): an attempt; the unit comes back soon.
    EntryRefused,
}

impl VisitOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            VisitOutcome::Inspected => "inspected",
            VisitOutcome::NoOneHome => "no_one_home",
            VisitOutcome::EntryRefused => "entry_refused",
        }
    }
}

/// After a visit attempt (no one home, entry refused), the unit is due again this soon.
pub const ATTEMPT_RETRY: TimeDelta = TimeDelta::days(2);

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::rngs::ChaCha8Rng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    fn date() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid date")
    }

    fn city(units: usize, grids: i64, seed: u64) -> Vec<Candidate> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (_, end) = day_bounds(date());
        (0..units)
            .map(|i| Candidate {
                id: UnitId(i as i64 + 1),
                grid_id: GridId(rng.random_range(1..=grids)),
                lon: 113.3 + rng.random_range(0.0..0.02),
                lat: 23.1 + rng.random_range(0.0..0.02),
                next_due_at: (!rng.random_bool(0.1))
                    .then(|| end - TimeDelta::hours(rng.random_range(1..24 * 40))),
                stars: Some(rng.random_range(1..=5)),
                evening_only: rng.random_bool(0.2),
                campaign_from: None,
                tip: false,
            })
            .collect()
    }

    fn planners(grids: i64) -> Vec<Planner> {
        let shifts = ["morning", "afternoon", "evening"];
        (1..=grids)
            .map(|g| Planner {
                id: InspectorId(g),
                shift: shifts[(g % 3) as usize].into(),
                capacity: DEFAULT_CAPACITY,
                grids: vec![GridId(g), GridId(g % grids + 1)],
            })
            .collect()
    }

    #[test]
    fn capacity_shift_and_no_unit_twice() {
        let units = city(3000, 12, 7);
        let planners = planners(12);
        let plan = plan_day(date(), units.clone(), &planners);
        let by_id: HashMap<UnitId, &Candidate> = units.iter().map(|c| (c.id, c)).collect();
        let mut seen = HashSet::new();
        for r in &plan.routes {
            let p = planners.iter().find(|p| p.id == r.inspector_id).unwrap();
            assert!(r.stops.len() <= p.capacity as usize);
            for s in &r.stops {
                assert!(seen.insert(s.unit_id), "unit {} planned twice", s.unit_id);
                assert!(p.grids.contains(&s.grid_id), "unit outside the grids");
                if by_id[&s.unit_id].evening_only {
                    assert_eq!(r.shift, "evening", "an evening-only unit by day");
                }
            }
        }
        // Every inspector is full: there are far more due units than room.
        assert_eq!(plan.planned(), 12 * DEFAULT_CAPACITY as usize);
        let left: u32 = plan.backlog.iter().map(|b| b.left).sum();
        assert_eq!(plan.planned() + left as usize, plan.due());
        assert_eq!(plan.due(), units.len());
    }

    #[test]
    fn most_overdue_first_within_a_grid() {
        // One grid, one day inspector with room for 5: the five never-graded units, then
        // by overdue days.
        let (_, end) = day_bounds(date());
        let units: Vec<Candidate> = (0..20)
            .map(|i| Candidate {
                id: UnitId(i + 1),
                grid_id: GridId(1),
                lon: 113.3 + i as f64 * 1e-4,
                lat: 23.1,
                next_due_at: (i >= 2).then(|| end - TimeDelta::days(i)),
                stars: Some(3),
                evening_only: false,
                campaign_from: None,
                tip: false,
            })
            .collect();
        let planner = Planner {
            id: InspectorId(1),
            shift: "morning".into(),
            capacity: 5,
            grids: vec![GridId(1)],
        };
        let plan = plan_day(date(), units, &[planner]);
        let mut ids: Vec<i64> = plan.routes[0].stops.iter().map(|s| s.unit_id.0).collect();
        ids.sort();
        assert_eq!(ids, vec![1, 2, 18, 19, 20]);
        assert_eq!(
            plan.backlog,
            vec![Backlog {
                grid_id: GridId(1),
                due: 20,
                planned: 5,
                left: 15
            }]
        );
    }

    #[test]
    fn evening_only_units_wait_for_an_evening_shift() {
        let mut units = city(50, 1, 3);
        for u in &mut units {
            u.evening_only = true;
        }
        let day = Planner {
            id: InspectorId(1),
            shift: "morning".into(),
            capacity: 25,
            grids: vec![GridId(1)],
        };
        let plan = plan_day(date(), units.clone(), std::slice::from_ref(&day));
        assert_eq!(plan.planned(), 0);
        assert_eq!(plan.backlog[0].left, 50);
        let evening = Planner {
            id: InspectorId(2),
            shift: "evening".into(),
            ..day.clone()
        };
        let plan = plan_day(date(), units, &[day, evening]);
        assert_eq!(plan.routes.len(), 1);
        assert_eq!(plan.routes[0].inspector_id, InspectorId(2));
        assert_eq!(plan.planned(), 25);
    }

    #[test]
    fn two_opt_never_lengthens_and_usually_shortens_the_route() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let (mut nn_total, mut total) = (0.0, 0.0);
        for _ in 0..50 {
            let points: Vec<(f64, f64)> = (0..25)
                .map(|_| {
                    (
                        113.3 + rng.random_range(0.0..0.01),
                        23.1 + rng.random_range(0.0..0.01),
                    )
                })
                .collect();
            let (order, length, nn) = walking_route(&points);
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, (0..25).collect::<Vec<_>>(), "every stop once");
            let walked: f64 = order
                .windows(2)
                .map(|w| metres(points[w[0]], points[w[1]]))
                .sum();
            assert!((walked - length).abs() < 1e-6);
            assert!(length <= nn + 1e-6);
            nn_total += nn;
            total += length;
        }
        assert!(total < nn_total * 0.99, "2-opt gained less than 1%");
    }

    #[test]
    fn campaigns_bring_units_forward() {
        let (start, end) = day_bounds(date());
        let mut units = city(2, 1, 5);
        units[0].next_due_at = Some(end + TimeDelta::days(30));
        units[0].campaign_from = Some(start - TimeDelta::days(2));
        units[0].evening_only = false;
        let plan = plan_day(date(), units, &planners(1));
        let stop = plan.routes[0]
            .stops
            .iter()
            .find(|s| s.unit_id == UnitId(1))
            .expect("the campaign unit is planned");
        assert_eq!((stop.reason, stop.overdue_days), (Reason::Campaign, 2));
    }

    #[test]
    fn metres_are_metres() {
        // One thousandth of a degree of latitude is about 111 m.
        let d = metres((113.3, 23.1), (113.3, 23.101));
        assert!((d - 111.19).abs() < 0.1, "{d}");
    }
}
