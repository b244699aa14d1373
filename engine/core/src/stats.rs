//! **Pure** statistics of notification and disposal: what each case event, visit, planned stop and grade change adds to the rollups (China-time day and month × area level × category × severity × department × inspector), how a period is cut into the rollup rows that answer it, and the figures read back (percentiles by nearest rank over whole days).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::auth::{Principal, Scope};
use crate::domain::{CommunityId, GridId, StreetId};
use crate::error::{Error, FieldError};
use crate::records::EventRecord;
use crate::spatial::grids::GridPlace;
use crate::time::china_time;

/// The names of the rollups' metrics, as stored.
pub mod metric {
    pub const FOUND: &str = "found";
    pub const ORDERS: &str = "orders";
    pub const FIXED: &str = "fixed";
    pub const FIXED_ON_TIME: &str = "fixed_on_time";
    pub const FIX_DAYS: &str = "fix_days";
    pub const OVERDUE: &str = "overdue";
    pub const REFERRED: &str = "referred";
    pub const ACCEPTED: &str = "accepted";
    pub const ACCEPTED_IN_SLA: &str = "accepted_in_sla";
    pub const SLA_BREACHED: &str = "sla_breached";
    pub const RETURNED: &str = "returned";
    pub const RESULT: &str = "result";
    pub const CLOSED_NOT_FIXED: &str = "closed_not_fixed";
    pub const DISMISSED: &str = "dismissed";
    pub const DUPLICATE: &str = "duplicate";
    pub const CANCELLED: &str = "cancelled";
    pub const REOPENED: &str = "reopened";
    pub const OBJECTED: &str = "objected";
    pub const OBJECTION_GRANTED: &str = "objection_granted";
    pub const OBJECTION_REFUSED: &str = "objection_refused";
    pub const VISITS: &str = "visits";
    pub const ATTEMPTS: &str = "attempts";
    pub const OFF_SITE: &str = "off_site";
    pub const UNLOCATED: &str = "unlocated";
    pub const PLANNED: &str = "planned";
    pub const PLANNED_DONE: &str = "planned_done";
    pub const STARS_GAINED: &str = "stars_gained";
    pub const STARS_LOST: &str = "stars_lost";
}

/// Longest a fix is counted as taking; longer ones land in this bucket.
pub const MAX_FIX_DAYS: i64 = 3650;

/// The place a rollup row is attributed to: the case's (or unit's) grid, street and
/// district when the event happened (0 for none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub grid: i64,
    pub street: i64,
    pub district: String,
}

/// One addition to the rollups, before it is spread over area levels and time grains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub metric: &'static str,
    pub bucket: String,
    pub category: String,
    pub severity: String,
    pub department: i64,
    pub inspector: i64,
    pub n: i64,
    /// Money in fen (fines).
    pub amount: i64,
}

impl Tally {
    fn new(metric: &'static str, category: &str, severity: &str) -> Tally {
        Tally {
            metric,
            bucket: String::new(),
            category: category.to_string(),
            severity: severity.to_string(),
            department: 0,
            inspector: 0,
            n: 1,
            amount: 0,
        }
    }
    fn of_department(mut self, department: i64) -> Tally {
        self.department = department;
        self
    }
    fn in_bucket(mut self, bucket: impl Into<String>) -> Tally {
        self.bucket = bucket.into();
        self
    }
}

/// The key of a rollup row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellKey {
    /// `d` (a China day, `YYYY-MM-DD`) or `m` (a month, `YYYY-MM`).
    pub grain: &'static str,
    pub period: String,
    /// `g` grid, `s` street, `d` district, `c` city.
    pub level: &'static str,
    /// The grid or street id, the district code, or empty for the city.
    pub area: String,
    pub category: String,
    pub severity: String,
    pub department: i64,
    pub inspector: i64,
    pub metric: &'static str,
    pub bucket: String,
}

/// Additions to the rollups gathered over a batch, summed per row.
#[derive(Debug, Default)]
pub struct Rollup {
    pub cells: BTreeMap<CellKey, (i64, i64)>,
}

impl Rollup {
    /// Adds a tally on `day` at `place` to every row that covers it: the day at the
    /// grid, street, district and city, and the month at the street, district and city.
    pub fn add(&mut self, day: NaiveDate, place: &Place, tally: &Tally) {
        let days = day.format("%Y-%m-%d").to_string();
        let month = day.format("%Y-%m").to_string();
        let mut areas: Vec<(&'static str, String)> = Vec::with_capacity(4);
        if place.grid != 0 {
            areas.push(("g", place.grid.to_string()));
        }
        if place.street != 0 {
            areas.push(("s", place.street.to_string()));
        }
        areas.push(("d", place.district.clone()));
        areas.push(("c", String::new()));
        for (level, area) in areas {
            let grains: &[(&'static str, &String)] = if level == "g" {
                &[("d", &days)]
            } else {
                &[("d", &days), ("m", &month)]
            };
            for (grain, period) in grains {
                let key = CellKey {
                    grain,
                    period: (*period).clone(),
                    level,
                    area: area.clone(),
                    category: tally.category.clone(),
                    severity: tally.severity.clone(),
                    department: tally.department,
                    inspector: tally.inspector,
                    metric: tally.metric,
                    bucket: tally.bucket.clone(),
                };
                let cell = self.cells.entry(key).or_default();
                cell.0 += tally.n;
                cell.1 += tally.amount;
            }
        }
    }
}

/// The China day of an instant.
pub fn china_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&china_time()).date_naive()
}

/// The department a case was last referred to, as of `history[..=upto]`.
fn department_then(history: &[EventRecord], upto: usize) -> i64 {
    history[..=upto]
        .iter()
        .rev()
        .find(|e| is_referral(e))
        .and_then(|e| e.data.get("department_id").and_then(Value::as_i64))
        .unwrap_or(0)
}

fn is_referral(e: &EventRecord) -> bool {
    e.to_state == "referred" && e.data.get("department_id").is_some()
}

fn issues_order(e: &EventRecord) -> bool {
    e.data.get("order_no").is_some()
}

/// Whether an event put the case overdue: its order's deadline passed
/// (`deadline_passed`), or a decision on an objection came after it had (version 6).
pub fn enters_overdue(e: &EventRecord) -> bool {
    e.to_state == "overdue" && e.from_state.as_deref().is_some_and(|s| s != "overdue")
}

/// What event `index` of a case's history (in order; the first is the case's opening)
/// adds to the rollups. The history before it tells whether a fix came before the
/// deadline of its order and whether a referral was accepted within its time.
pub fn case_tallies(
    history: &[EventRecord],
    index: usize,
    category: &str,
    severity: &str,
) -> Vec<Tally> {
    use metric::*;
    let Some(e) = history.get(index) else {
        return Vec::new();
    };
    let t = |m| Tally::new(m, category, severity);
    let mut out = Vec::new();
    if e.from_state.is_none() && index == 0 {
        out.push(t(FOUND));
    }
    if e.command == "reopen" {
        out.push(t(REOPENED));
    }
    if issues_order(e) {
        out.push(t(ORDERS));
    }
    if enters_overdue(e) {
        out.push(t(OVERDUE));
    }
    let changed = e.from_state.as_deref() != Some(e.to_state.as_str());
    if changed {
        match e.to_state.as_str() {
            "fixed" => {
                out.push(t(FIXED));
                let before = &history[..index];
                let on_time = before
                    .iter()
                    .rposition(issues_order)
                    .is_some_and(|o| !before[o..].iter().any(enters_overdue));
                if on_time {
                    out.push(t(FIXED_ON_TIME));
                }
                let days = (e.at - history[0].at).num_days().clamp(0, MAX_FIX_DAYS);
                out.push(t(FIX_DAYS).in_bucket(days.to_string()));
            }
            "closed_not_fixed" => out.push(t(CLOSED_NOT_FIXED)),
            "not_a_hazard" => out.push(t(DISMISSED)),
            "duplicate" => out.push(t(DUPLICATE)),
            "cancelled" => out.push(t(CANCELLED)),
            _ => {}
        }
    }
    let department = department_then(history, index);
    if is_referral(e) {
        out.push(t(REFERRED).of_department(department));
    }
    match e.command.as_str() {
        "acceptance_overdue" => out.push(t(SLA_BREACHED).of_department(department)),
        "accept" => {
            out.push(t(ACCEPTED).of_department(department));
            let since = history[..index].iter().rposition(is_referral).unwrap_or(0);
            if !history[since..index]
                .iter()
                .any(|x| x.command == "acceptance_overdue")
            {
                out.push(t(ACCEPTED_IN_SLA).of_department(department));
            }
        }
        "return_referral" => out.push(t(RETURNED).of_department(department)),
        "record_result" => {
            let result = e.data.get("result").and_then(Value::as_str).unwrap_or("");
            let mut r = t(RESULT).of_department(department).in_bucket(result);
            if let Some(yuan) = e.data.get("fine_amount").and_then(Value::as_f64) {
                r.amount = (yuan * 100.0).round() as i64;
            }
            out.push(r);
        }
        "object" => out.push(t(OBJECTED)),
        "decide_objection" => {
            let granted = e.data.get("granted").and_then(Value::as_bool) == Some(true);
            out.push(t(if granted {
                OBJECTION_GRANTED
            } else {
                OBJECTION_REFUSED
            }));
        }
        _ => {}
    }
    out
}

/// A visit as the rollups see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Visit {
    pub inspector: i64,
    /// `inspected`, or an attempt (`not_home`, `refused`).
    pub outcome: String,
    pub off_site: bool,
    pub located: bool,
    /// The first visit that day of a unit on that day's plan.
    pub planned_first: bool,
}

/// What a visit adds to the rollups.
pub fn visit_tallies(v: &Visit) -> Vec<Tally> {
    use metric::*;
    let t = |m| Tally {
        inspector: v.inspector,
        ..Tally::new(m, "", "")
    };
    let mut out = vec![t(if v.outcome == "inspected" {
        VISITS
    } else {
        ATTEMPTS
    })];
    if !v.located {
        out.push(t(UNLOCATED));
    } else if v.off_site {
        out.push(t(OFF_SITE));
    }
    if v.planned_first {
        out.push(t(PLANNED_DONE));
    }
    out
}

/// What a stop on an inspector's plan adds.
pub fn stop_tally(inspector: i64) -> Tally {
    Tally {
        inspector,
        ..Tally::new(metric::PLANNED, "", "")
    }
}

/// What a change of a unit's grade adds: a star gained or lost (a first grade or a
/// grade withdrawn is neither).
pub fn grade_tally(before: Option<u8>, after: Option<u8>) -> Option<Tally> {
    match (before, after) {
        (Some(b), Some(a)) if a > b => Some(Tally::new(metric::STARS_GAINED, "", "")),
        (Some(b), Some(a)) if a < b => Some(Tally::new(metric::STARS_LOST, "", "")),
        _ => None,
    }
}

/// The rows that answer a period (inclusive China days): whole months read from the
/// month rows where the level has them, the rest from the day rows. Each range is
/// (grain, first period, last period), as stored.
pub fn period_ranges(
    from: NaiveDate,
    to: NaiveDate,
    months: bool,
) -> Vec<(&'static str, String, String)> {
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let month = |d: NaiveDate| d.format("%Y-%m").to_string();
    if !months || from > to {
        return vec![("d", day(from), day(to))];
    }
    // The first whole month in the period and the first day after its last whole month.
    let first_of = |d: NaiveDate| d.with_day(1).expect("day 1 exists");
    let next_month = |d: NaiveDate| {
        let f = first_of(d);
        if f.month() == 12 {
            NaiveDate::from_ymd_opt(f.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(f.year(), f.month() + 1, 1)
        }
        .expect("a month follows")
    };
    let start = if from.day() == 1 {
        from
    } else {
        next_month(from)
    };
    let after = to + TimeDelta::days(1);
    let end = first_of(after); // whole months end before this day
    if start >= end {
        return vec![("d", day(from), day(to))];
    }
    let mut out = Vec::new();
    if from < start {
        out.push(("d", day(from), day(start - TimeDelta::days(1))));
    }
    out.push(("m", month(start), month(end - TimeDelta::days(1))));
    if end <= to {
        out.push(("d", day(end), day(to)));
    }
    out
}

/// A rollup row summed over an area and period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summed {
    pub category: String,
    pub severity: String,
    pub department: i64,
    pub inspector: i64,
    pub metric: String,
    pub bucket: String,
    pub n: i64,
    pub amount: i64,
}

/// The figures of cases: counts, results by type, fines and days to fix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseFigures {
    pub found: i64,
    pub orders_issued: i64,
    pub fixed: i64,
    pub fixed_on_time: i64,
    pub overdue: i64,
    pub referred: i64,
    pub accepted: i64,
    pub accepted_in_sla: i64,
    pub sla_breached: i64,
    pub returned: i64,
    pub closed_not_fixed: i64,
    pub dismissed: i64,
    pub duplicates: i64,
    pub cancelled: i64,
    pub reopened: i64,
    pub objections: i64,
    pub objections_granted: i64,
    pub objections_refused: i64,
    /// Enforcement results by type (`warning`, `fine`, `sealing`, …).
    pub results: BTreeMap<String, i64>,
    /// The sum of fines, in yuan.
    pub fines_yuan: f64,
    pub median_days_to_fix: Option<i64>,
    pub p90_days_to_fix: Option<i64>,
    /// Whole days from discovery to fix → fixes.
    #[serde(skip)]
    pub fix_days: BTreeMap<i64, i64>,
    #[serde(skip)]
    pub fines_fen: i64,
}

impl CaseFigures {
    /// Adds one summed row; returns whether the metric is a case figure.
    pub fn add(&mut self, metric: &str, bucket: &str, n: i64, amount: i64) -> bool {
        use metric::*;
        let slot = match metric {
            FOUND => &mut self.found,
            ORDERS => &mut self.orders_issued,
            FIXED => &mut self.fixed,
            FIXED_ON_TIME => &mut self.fixed_on_time,
            OVERDUE => &mut self.overdue,
            REFERRED => &mut self.referred,
            ACCEPTED => &mut self.accepted,
            ACCEPTED_IN_SLA => &mut self.accepted_in_sla,
            SLA_BREACHED => &mut self.sla_breached,
            RETURNED => &mut self.returned,
            CLOSED_NOT_FIXED => &mut self.closed_not_fixed,
            DISMISSED => &mut self.dismissed,
            DUPLICATE => &mut self.duplicates,
            CANCELLED => &mut self.cancelled,
            REOPENED => &mut self.reopened,
            OBJECTED => &mut self.objections,
            OBJECTION_GRANTED => &mut self.objections_granted,
            OBJECTION_REFUSED => &mut self.objections_refused,
            RESULT => {
                *self.results.entry(bucket.to_string()).or_default() += n;
                self.fines_fen += amount;
                return true;
            }
            FIX_DAYS => {
                if let Ok(days) = bucket.parse::<i64>() {
                    *self.fix_days.entry(days).or_default() += n;
                }
                return true;
            }
            _ => return false,
        };
        *slot += n;
        true
    }

    /// Fills the derived figures (fines in yuan, percentiles) once every row is added.
    pub fn finish(&mut self) {
        self.fines_yuan = self.fines_fen as f64 / 100.0;
        self.median_days_to_fix = nearest_rank(&self.fix_days, 50);
        self.p90_days_to_fix = nearest_rank(&self.fix_days, 90);
    }

    /// The share of referrals accepted within their time, of those accepted or breached.
    pub fn sla_rate(&self) -> Option<f64> {
        rate(
            self.accepted_in_sla,
            self.accepted_in_sla + self.sla_breached,
        )
    }
}

/// The `p`th percentile of a histogram by nearest rank: the smallest value with at
/// least `p`% of the observations at or below it.
pub fn nearest_rank(histogram: &BTreeMap<i64, i64>, p: u32) -> Option<i64> {
    let total: i64 = histogram.values().sum();
    if total <= 0 {
        return None;
    }
    let rank = (i64::from(p) * total + 99) / 100; // ceil(p/100 × N)
    let rank = rank.max(1);
    let mut seen = 0;
    for (value, n) in histogram {
        seen += n;
        if seen >= rank {
            return Some(*value);
        }
    }
    histogram.keys().next_back().copied()
}

fn rate(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

/// The figures of visits and plans.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VisitFigures {
    pub visits: i64,
    pub attempts: i64,
    pub off_site: i64,
    pub unlocated: i64,
    pub planned: i64,
    pub planned_done: i64,
    /// Off-site visits and attempts over all those with a position.
    pub off_site_rate: Option<f64>,
    /// Planned stops visited (or attempted) on their day over planned stops.
    pub plan_completion: Option<f64>,
}

impl VisitFigures {
    pub fn add(&mut self, metric: &str, n: i64) -> bool {
        use metric::*;
        let slot = match metric {
            VISITS => &mut self.visits,
            ATTEMPTS => &mut self.attempts,
            OFF_SITE => &mut self.off_site,
            UNLOCATED => &mut self.unlocated,
            PLANNED => &mut self.planned,
            PLANNED_DONE => &mut self.planned_done,
            _ => return false,
        };
        *slot += n;
        true
    }

    pub fn finish(&mut self) {
        self.off_site_rate = rate(self.off_site, self.visits + self.attempts - self.unlocated);
        self.plan_completion = rate(self.planned_done, self.planned);
    }
}

/// A breakdown row of case figures (a category, a severity or a department).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub cases: CaseFigures,
    pub visits: VisitFigures,
    pub stars_gained: i64,
    pub stars_lost: i64,
}

/// The figures of an area and period, whole and broken down.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Breakdown {
    pub total: Figures,
    pub by_category: BTreeMap<String, CaseFigures>,
    pub by_severity: BTreeMap<String, CaseFigures>,
    pub by_department: BTreeMap<i64, CaseFigures>,
    pub by_inspector: BTreeMap<i64, VisitFigures>,
}

impl Breakdown {
    /// Folds summed rows into the figures.
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = &'a Summed>) -> Breakdown {
        let mut b = Breakdown::default();
        for r in rows {
            let (m, k, n, a) = (r.metric.as_str(), r.bucket.as_str(), r.n, r.amount);
            if b.total.cases.add(m, k, n, a) {
                if !r.category.is_empty() {
                    b.by_category
                        .entry(r.category.clone())
                        .or_default()
                        .add(m, k, n, a);
                }
                if !r.severity.is_empty() {
                    b.by_severity
                        .entry(r.severity.clone())
                        .or_default()
                        .add(m, k, n, a);
                }
                if r.department != 0 {
                    b.by_department
                        .entry(r.department)
                        .or_default()
                        .add(m, k, n, a);
                }
            } else if b.total.visits.add(m, n) {
                if r.inspector != 0 {
                    b.by_inspector.entry(r.inspector).or_default().add(m, n);
                }
            } else if m == metric::STARS_GAINED {
                b.total.stars_gained += n;
            } else if m == metric::STARS_LOST {
                b.total.stars_lost += n;
            }
        }
        b.total.cases.finish();
        b.total.visits.finish();
        for f in b
            .by_category
            .values_mut()
            .chain(b.by_severity.values_mut())
            .chain(b.by_department.values_mut())
        {
            f.finish();
        }
        for v in b.by_inspector.values_mut() {
            v.finish();
        }
        b
    }
}

/// The area a statistics query is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Area {
    City,
    District(String),
    Street(StreetId),
    Community(CommunityId),
    Grid(GridId),
    /// An inspector's grids.
    Grids(BTreeSet<GridId>),
}

impl Area {
    /// Parses `city`, `district:<code>`, `street:<id>`, `community:<id>` or `grid:<id>`.
    pub fn parse(text: &str) -> Result<Area, FieldError> {
        let bad = || {
            FieldError::new(
                "area",
                "city, district:<code>, street:<id>, community:<id> or grid:<id>",
            )
        };
        if text == "city" {
            return Ok(Area::City);
        }
        let (kind, id) = text.split_once(':').ok_or_else(bad)?;
        if kind == "district" {
            return if id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit()) {
                Ok(Area::District(id.to_string()))
            } else {
                Err(bad())
            };
        }
        let id: i64 = id.parse().ok().filter(|v| *v > 0).ok_or_else(bad)?;
        match kind {
            "street" => Ok(Area::Street(StreetId(id))),
            "community" => Ok(Area::Community(CommunityId(id))),
            "grid" => Ok(Area::Grid(GridId(id))),
            _ => Err(bad()),
        }
    }

    /// The area as written in a query (`district:440106`); an inspector's grids as `grids`.
    pub fn label(&self) -> String {
        match self {
            Area::City => "city".into(),
            Area::District(d) => format!("district:{d}"),
            Area::Street(s) => format!("street:{}", s.0),
            Area::Community(c) => format!("community:{}", c.0),
            Area::Grid(g) => format!("grid:{}", g.0),
            Area::Grids(_) => "grids".into(),
        }
    }

    /// The grids of the area, where it is made of grids.
    pub fn grids(&self, places: &BTreeMap<GridId, GridPlace>) -> BTreeSet<GridId> {
        places
            .iter()
            .filter(|(g, p)| match self {
                Area::City => true,
                Area::District(d) => &p.district_code == d,
                Area::Street(s) => p.street_id == *s,
                Area::Community(c) => p.community_id == *c,
                Area::Grid(x) => *g == x,
                Area::Grids(set) => set.contains(g),
            })
            .map(|(g, _)| *g)
            .collect()
    }
}

/// The rollup level and areas that answer a query, and the department whose own rows
/// alone it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scoped {
    pub area: Area,
    pub level: &'static str,
    pub areas: Vec<String>,
    pub department: Option<i64>,
}

/// The area a caller asked about (or their own by default), if they oversee it: a city
/// supervisor any area; a district or street supervisor their own, and any area whose
/// grids they all cover ([`Principal::covers`]); an inspector their grids, or an area
/// whose grids are all theirs; a department the figures of its own referrals in any
/// area. Anything else is "not found", as an area the caller cannot see; landlords see
/// no statistics (the policy refuses them first).
pub fn scope_area(
    principal: &Principal,
    asked: Option<Area>,
    places: &BTreeMap<GridId, GridPlace>,
) -> Result<Scoped, Error> {
    let unseen = |a: &Option<Area>| {
        Error::not_found("area", a.as_ref().map_or("statistics".into(), Area::label))
    };
    let (area, department) = match (&principal.scope, asked) {
        (Scope::City | Scope::System, asked) => (asked.unwrap_or(Area::City), None),
        (Scope::Department(d), asked) => (asked.unwrap_or(Area::City), Some(d.0)),
        (Scope::District(d), None) => (Area::District(d.clone()), None),
        (Scope::Street(s), None) => (Area::Street(*s), None),
        (Scope::Grids(g), None) => (Area::Grids(g.clone()), None),
        (Scope::Party(_), asked) => return Err(unseen(&asked)),
        (scope, Some(asked)) => {
            let inside = match (&asked, scope) {
                (Area::District(a), Scope::District(d)) => a == d,
                (Area::Street(a), Scope::Street(s)) => a == s,
                // A district's rows also count its units outside every grid.
                (Area::City | Area::Grids(_) | Area::District(_), _) => false,
                (area, _) => {
                    let grids = area.grids(places);
                    !grids.is_empty()
                        && grids.iter().all(|g| {
                            let p = &places[g];
                            principal.covers(crate::auth::Place {
                                district_code: &p.district_code,
                                street_id: Some(p.street_id),
                                grid_id: Some(*g),
                                party_id: None,
                                department_id: None,
                            })
                        })
                }
            };
            if !inside {
                return Err(unseen(&Some(asked)));
            }
            (asked, None)
        }
    };
    let (level, areas) = match &area {
        Area::City => ("c", vec![String::new()]),
        Area::District(d) => ("d", vec![d.clone()]),
        Area::Street(s) => ("s", vec![s.0.to_string()]),
        area => (
            "g",
            area.grids(places).iter().map(|g| g.0.to_string()).collect(),
        ),
    };
    if level == "g" && areas.is_empty() && !matches!(area, Area::Grids(_)) {
        return Err(unseen(&Some(area)));
    }
    Ok(Scoped {
        area,
        level,
        areas,
        department,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Actor;
    use serde_json::json;

    fn ev(
        seq: i64,
        hours: i64,
        command: &str,
        from: Option<&str>,
        to: &str,
        data: Value,
    ) -> EventRecord {
        EventRecord {
            seq,
            at: DateTime::from_timestamp(1_790_000_000 + hours * 3600, 0).unwrap(),
            actor: Actor::system("test"),
            command: command.into(),
            from_state: from.map(str::to_string),
            to_state: to.into(),
            reason: None,
            data,
        }
    }

    fn metrics(history: &[EventRecord]) -> Vec<String> {
        (0..history.len())
            .flat_map(|i| case_tallies(history, i, "ebike", "major"))
            .map(|t| {
                format!(
                    "{}{}{}",
                    t.metric,
                    if t.bucket.is_empty() { "" } else { ":" },
                    t.bucket
                )
            })
            .collect()
    }

    #[test]
    fn a_fix_before_the_deadline_and_one_after() {
        let on_time = vec![
            ev(1, 0, "open", None, "discovered", json!({})),
            ev(
                2,
                1,
                "notify",
                Some("discovered"),
                "notified",
                json!({"order_no": 1}),
            ),
            ev(
                3,
                30,
                "report_fix",
                Some("notified"),
                "rectification_reported",
                json!({}),
            ),
            ev(
                4,
                50,
                "reinspect",
                Some("rectification_reported"),
                "fixed",
                json!({"passed": true}),
            ),
        ];
        assert_eq!(
            metrics(&on_time),
            ["found", "orders", "fixed", "fixed_on_time", "fix_days:2"]
        );
        let late = vec![
            ev(1, 0, "open", None, "discovered", json!({})),
            ev(
                2,
                1,
                "notify",
                Some("discovered"),
                "notified",
                json!({"order_no": 1}),
            ),
            ev(
                3,
                80,
                "deadline_passed",
                Some("notified"),
                "overdue",
                json!({}),
            ),
            ev(
                4,
                90,
                "refer",
                Some("overdue"),
                "referred",
                json!({"department_id": 7}),
            ),
            ev(
                5,
                100,
                "acceptance_overdue",
                Some("referred"),
                "referred",
                json!({}),
            ),
            ev(6, 120, "accept", Some("referred"), "accepted", json!({})),
            ev(
                7,
                130,
                "record_result",
                Some("accepted"),
                "enforced",
                json!({"result": "fine", "fine_amount": 500.25}),
            ),
            ev(
                8,
                140,
                "close",
                Some("enforced"),
                "fixed",
                json!({"outcome": "fixed"}),
            ),
        ];
        assert_eq!(
            metrics(&late),
            [
                "found",
                "orders",
                "overdue",
                "referred",
                "sla_breached",
                "accepted",
                "result:fine",
                "fixed",
                "fix_days:5"
            ]
        );
        let t = case_tallies(&late, 6, "ebike", "major");
        assert_eq!((t[0].department, t[0].amount), (7, 50_025));
    }

    #[test]
    fn a_second_order_after_a_failed_reinspection_restarts_the_clock() {
        let h = vec![
            ev(1, 0, "open", None, "discovered", json!({})),
            ev(
                2,
                1,
                "notify",
                Some("discovered"),
                "notified",
                json!({"order_no": 1}),
            ),
            ev(
                3,
                80,
                "deadline_passed",
                Some("notified"),
                "overdue",
                json!({}),
            ),
            ev(
                4,
                81,
                "report_fix",
                Some("overdue"),
                "rectification_reported",
                json!({}),
            ),
            ev(
                5,
                82,
                "reinspect",
                Some("rectification_reported"),
                "notified",
                json!({"order_no": 2}),
            ),
            ev(6, 90, "reinspect", Some("notified"), "fixed", json!({})),
        ];
        assert!(metrics(&h).contains(&"fixed_on_time".to_string()));
        assert_eq!(metrics(&h).iter().filter(|m| *m == "orders").count(), 2);
    }

    #[test]
    fn accepted_in_time_without_a_breach_since_the_last_referral() {
        let h = vec![
            ev(1, 0, "open", None, "discovered", json!({})),
            ev(
                2,
                1,
                "refer",
                Some("discovered"),
                "referred",
                json!({"department_id": 3}),
            ),
            ev(
                3,
                90,
                "acceptance_overdue",
                Some("referred"),
                "referred",
                json!({}),
            ),
            ev(
                4,
                91,
                "return_referral",
                Some("referred"),
                "returned",
                json!({}),
            ),
            ev(
                5,
                92,
                "reroute",
                Some("returned"),
                "referred",
                json!({"department_id": 4}),
            ),
            ev(6, 93, "accept", Some("referred"), "accepted", json!({})),
        ];
        let m = metrics(&h);
        assert!(m.contains(&"accepted_in_sla".to_string()), "{m:?}");
        let t = case_tallies(&h, 3, "c", "s");
        assert_eq!(
            t[0].department, 3,
            "a return counts for the department that returned it"
        );
        assert_eq!(case_tallies(&h, 5, "c", "s")[0].department, 4);
    }

    #[test]
    fn nearest_rank_on_whole_days() {
        let h: BTreeMap<i64, i64> = [(1, 3), (2, 1), (10, 1)].into();
        assert_eq!(nearest_rank(&h, 50), Some(1));
        assert_eq!(nearest_rank(&h, 90), Some(10));
        assert_eq!(nearest_rank(&h, 80), Some(2));
        assert_eq!(nearest_rank(&BTreeMap::new(), 50), None);
    }

    #[test]
    fn periods_cut_into_months_and_days() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let r = period_ranges(d("2026-01-15"), d("2026-04-10"), true);
        assert_eq!(
            r,
            [
                ("d", "2026-01-15".into(), "2026-01-31".into()),
                ("m", "2026-02".into(), "2026-03".into()),
                ("d", "2026-04-01".into(), "2026-04-10".into()),
            ]
        );
        assert_eq!(
            period_ranges(d("2026-11-01"), d("2026-11-30"), true),
            [("m", "2026-11".into(), "2026-11".into())]
        );
        assert_eq!(
            period_ranges(d("2025-12-01"), d("2026-11-30"), true),
            [("m", "2025-12".into(), "2026-11".into())]
        );
        assert_eq!(
            period_ranges(d("2026-11-03"), d("2026-11-05"), true),
            [("d", "2026-11-03".into(), "2026-11-05".into())]
        );
        assert_eq!(
            period_ranges(d("2026-11-01"), d("2026-11-30"), false),
            [("d", "2026-11-01".into(), "2026-11-30".into())]
        );
    }

    #[test]
    fn a_tally_lands_on_each_level_and_grain() {
        let mut r = Rollup::default();
        let place = Place {
            grid: 5,
            street: 2,
            district: "440106".into(),
        };
        let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        r.add(day, &place, &Tally::new(metric::FOUND, "ebike", "major"));
        r.add(day, &place, &Tally::new(metric::FOUND, "ebike", "major"));
        assert_eq!(r.cells.len(), 7);
        assert!(r.cells.values().all(|c| *c == (2, 0)));
        let unplaced = Place {
            grid: 0,
            street: 0,
            district: "440106".into(),
        };
        let mut r = Rollup::default();
        r.add(day, &unplaced, &Tally::new(metric::FOUND, "ebike", "major"));
        assert_eq!(r.cells.len(), 4);
    }
}
