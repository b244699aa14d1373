//! The working-day calendar, pure: weekends, public holidays and make-up working days (调休) as the State Council publishes them each year (the seed in `workflows/calendar.toml`; later versions imported by operators), each year cited; deadlines counted in working days, whether such a deadline is provisional (it reaches past the last published year), and how near the calendar's end is.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use serde::Deserialize;

use crate::time::{china_time, day_bounds};

/// The calendar shipped with this build.
pub const BUILTIN: &str = include_str!("../../../workflows/calendar.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    years: Vec<i32>,
    holidays: Vec<NaiveDate>,
    make_up_workdays: Vec<NaiveDate>,
    /// The notice each year comes from.
    #[serde(default)]
    sources: Vec<Source>,
    /// A file made for tests, not from a published notice: refused by the import
    /// unless asked for.
    #[serde(default)]
    test_data: bool,
}

/// Where a year's holidays come from: the General Office of the State Council's notice
/// (国务院办公厅关于某年部分节假日安排的通知), as published.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub year: i32,
    pub notice: String,
    #[serde(default)]
    pub url: Option<String>,
}

/// How many days before the calendar's last published day city supervisors are warned
/// that working-day deadlines will soon reach past it.
pub const WARN_DAYS: i64 = 60;

/// Which days are worked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    pub version: u32,
    /// Years whose holidays are known.
    pub years: BTreeSet<i32>,
    holidays: BTreeSet<NaiveDate>,
    make_up: BTreeSet<NaiveDate>,
    /// The notice of each year.
    pub sources: Vec<Source>,
    /// Made for tests, not from a published notice.
    pub test_data: bool,
}

impl Calendar {
    pub fn builtin() -> Calendar {
        Calendar::parse(BUILTIN).expect("the built-in calendar is valid")
    }

    pub fn parse(text: &str) -> Result<Calendar, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let years: BTreeSet<i32> = file.years.iter().copied().collect();
        let holidays: BTreeSet<NaiveDate> = file.holidays.iter().copied().collect();
        let make_up: BTreeSet<NaiveDate> = file.make_up_workdays.iter().copied().collect();
        for d in holidays.iter().chain(&make_up) {
            if !years.contains(&d.year()) {
                return Err(format!("{d} is outside the years the calendar covers"));
            }
        }
        if let Some(d) = holidays.intersection(&make_up).next() {
            return Err(format!("{d} is both a holiday and a make-up working day"));
        }
        if let Some(d) = make_up.iter().find(|d| !is_weekend(**d)) {
            return Err(format!("make-up working day {d} is not a weekend day"));
        }
        if file.version == 0 {
            return Err("a calendar's version is at least 1".into());
        }
        // A year is added only from its published notice, cited.
        if let Some(y) = years.iter().find(|y| {
            !file
                .sources
                .iter()
                .any(|s| s.year == **y && !s.notice.trim().is_empty())
        }) {
            return Err(format!(
                "year {y} cites no notice: add `[[sources]] year = {y}, notice = \"国务院办公厅关于{y}年部分节假日安排的通知 …\"`"
            ));
        }
        if let Some(s) = file.sources.iter().find(|s| !years.contains(&s.year)) {
            return Err(format!(
                "a source for {}, a year the calendar does not list",
                s.year
            ));
        }
        Ok(Calendar {
            version: file.version,
            years,
            holidays,
            make_up,
            sources: file.sources,
            test_data: file.test_data,
        })
    }

    /// The last day whose holidays are known: 31 December of the last year listed
    /// (years after a gap are not counted on).
    pub fn last_day(&self) -> Option<NaiveDate> {
        self.years
            .last()
            .and_then(|y| NaiveDate::from_ymd_opt(*y, 12, 31))
    }

    /// Whole days from `today` to the calendar's last day (0 on that day, negative
    /// after it); `None` for a calendar with no year.
    pub fn days_left(&self, today: NaiveDate) -> Option<i64> {
        self.last_day().map(|last| (last - today).num_days())
    }

    /// Whether a deadline counted in working days (falling due at the end of its last
    /// working day, as `add_working_days` gives it) reached past the published years:
    /// its days there were counted as weekdays only, so it may move when that year is
    /// published.
    pub fn provisional(&self, due: DateTime<Utc>) -> bool {
        let last_counted = (due - chrono::TimeDelta::milliseconds(1))
            .with_timezone(&china_time())
            .date_naive();
        !self.covers(last_counted)
    }

    /// Whether `day` is worked: a weekday that is not a holiday, or a make-up day.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.make_up.contains(&day) {
            return true;
        }
        !is_weekend(day) && !self.holidays.contains(&day)
    }

    /// Whether the calendar knows the holidays of `day`'s year.
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.years.contains(&day.year())
    }

    /// The deadline `n` working days after `from` (China time): the end of the n-th
    /// working day after the day of `from`. Three working days from a Friday morning
    /// end on Wednesday at midnight, unless a holiday or a make-up day is in between.
    pub fn add_working_days(&self, from: DateTime<Utc>, n: u32) -> DateTime<Utc> {
        if n == 0 {
            return from;
        }
        let mut day = from.with_timezone(&china_time()).date_naive();
        let mut left = n;
        while left > 0 {
            day = day.succ_opt().expect("dates this near are representable");
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day_bounds(day).1
    }
}

fn is_weekend(day: NaiveDate) -> bool {
    matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn weekends_holidays_and_make_up_days() {
        let c = Calendar::builtin();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert!(c.is_working_day(d("2026-09-18"))); // a Friday
        assert!(!c.is_working_day(d("2026-09-19"))); // a Saturday
        assert!(c.is_working_day(d("2026-09-20"))); // a Sunday worked for National Day
        assert!(!c.is_working_day(d("2026-09-25"))); // Mid-Autumn, a Friday
        assert!(!c.is_working_day(d("2026-10-05"))); // National Day, a Monday
        assert!(c.is_working_day(d("2026-10-10"))); // a Saturday worked
        assert!(c.covers(d("2026-12-31")) && !c.covers(d("2027-01-04")));
    }

    #[test]
    fn three_working_days() {
        let c = Calendar::builtin();
        // An ordinary week: Friday → Monday, Tuesday, Wednesday; ends at midnight.
        assert_eq!(
            c.add_working_days(at("2026-03-06T10:00:00+08:00"), 3),
            at("2026-03-12T00:00:00+08:00")
        );
        // Across a make-up Sunday: Friday 18 Sep → Sun 20, Mon 21, Tue 22.
        assert_eq!(
            c.add_working_days(at("2026-09-18T10:00:00+08:00"), 3),
            at("2026-09-23T00:00:00+08:00")
        );
        // Across Mid-Autumn: Thursday 24 Sep → Mon 28, Tue 29, Wed 30.
        assert_eq!(
            c.add_working_days(at("2026-09-24T16:00:00+08:00"), 3),
            at("2026-10-01T00:00:00+08:00")
        );
        // Across National Day: Wednesday 30 Sep → Thu 8, Fri 9, Sat 10 (worked).
        assert_eq!(
            c.add_working_days(at("2026-09-30T09:00:00+08:00"), 3),
            at("2026-10-11T00:00:00+08:00")
        );
        // Late in the evening in China is already the next day in UTC's eyes; the count
        // starts from the day in China.
        assert_eq!(
            c.add_working_days(at("2026-03-06T23:30:00+08:00"), 1),
            at("2026-03-10T00:00:00+08:00")
        );
    }

    #[test]
    fn the_end_of_the_calendar_and_provisional_deadlines() {
        let c = Calendar::builtin();
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(c.last_day(), Some(d("2026-12-31")));
        assert_eq!(c.days_left(d("2026-11-01")), Some(60));
        assert_eq!(c.days_left(d("2026-12-31")), Some(0));
        // Three working days from 30 December reach 4 January 2027, a year not
        // published: New Year's Day counted as a working day, so provisional.
        let due = c.add_working_days(at("2026-12-30T10:00:00+08:00"), 3);
        assert_eq!(due, at("2027-01-05T00:00:00+08:00"));
        assert!(c.provisional(due));
        // Ending on the last day of 2026 is not.
        let due = c.add_working_days(at("2026-12-28T10:00:00+08:00"), 3);
        assert_eq!(due, at("2027-01-01T00:00:00+08:00"));
        assert!(!c.provisional(due));
        // The seed cites the notice of each year.
        assert!(
            c.sources
                .iter()
                .any(|s| s.year == 2026 && s.notice.contains("2026年部分节假日安排"))
        );
        assert!(!c.test_data);
    }

    #[test]
    fn bad_calendars_are_refused() {
        let list = |days: &str| {
            days.split_whitespace()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let bad = |holidays: &str, make_up: &str| {
            Calendar::parse(&format!(
                "version = 1\nyears = [2026]\nholidays = [{}]\nmake_up_workdays = [{}]\n\
                 [[sources]]\nyear = 2026\nnotice = \"国务院办公厅关于2026年部分节假日安排的通知\"",
                list(holidays),
                list(make_up)
            ))
        };
        assert!(bad("2027-01-01", "").is_err());
        assert!(bad("2026-01-04", "2026-01-04").is_err());
        assert!(
            bad("", "2026-03-04").is_err(),
            "a Wednesday cannot be made up"
        );
        assert!(bad("2026-01-01", "2026-01-04").is_ok());
        // A year without its notice is refused.
        let uncited =
            Calendar::parse("version = 2\nyears = [2026]\nholidays = []\nmake_up_workdays = []");
        assert!(uncited.unwrap_err().contains("cites no notice"));
    }
}
