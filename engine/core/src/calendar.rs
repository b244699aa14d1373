//! The working-day calendar, pure: weekends, public holidays and make-up working days (调休) from `workflows/calendar.toml`, and deadlines counted in working days.

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
}

/// Which days are worked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    pub version: u32,
    /// Years whose holidays are known.
    pub years: BTreeSet<i32>,
    holidays: BTreeSet<NaiveDate>,
    make_up: BTreeSet<NaiveDate>,
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
        Ok(Calendar {
            version: file.version,
            years,
            holidays,
            make_up,
        })
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
    fn bad_calendars_are_refused() {
        let list = |days: &str| {
            days.split_whitespace()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let bad = |holidays: &str, make_up: &str| {
            Calendar::parse(&format!(
                "version = 1\nyears = [2026]\nholidays = [{}]\nmake_up_workdays = [{}]",
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
    }
}
