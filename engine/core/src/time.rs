//! Time: where it comes from (the system clock in production, a manual clock in tests), and the one definition of China time (UTC+8), its day bounds and how times are shown to people.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, Utc};

/// A source of the current time. The engine never reads the system time directly, so
/// that tests can move time past deadlines instead of sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until it is moved. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            micros: Arc::new(AtomicI64::new(start.timestamp_micros())),
        }
    }

    /// Sets the clock to `to`. Moving it backwards is allowed (tests of clock skew).
    pub fn set(&self, to: DateTime<Utc>) {
        self.micros.store(to.timestamp_micros(), Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: TimeDelta) {
        self.micros
            .fetch_add(by.num_microseconds().unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros.load(Ordering::SeqCst))
            .expect("manual clock holds a representable time")
    }
}

/// A shared, dynamically chosen clock.
pub type SharedClock = Arc<dyn Clock>;

/// Milliseconds since the Unix epoch: the form every timestamp takes in the database,
/// identical on SQLite and PostgreSQL.
pub fn to_millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// `t` cut to whole milliseconds, the precision the database keeps, so that a time
/// read back equals the time written.
pub fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    from_millis(to_millis(t))
}

/// The inverse of [`to_millis`]; out-of-range values clamp to the epoch.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Guangzhou's offset from UTC: days start at midnight China Standard Time.
pub fn china_time() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

/// The first and last instants of a calendar day in China (end exclusive).
pub fn day_bounds(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_local_timezone(china_time())
        .single()
        .expect("a fixed offset has no gaps")
        .to_utc();
    (start, start + TimeDelta::days(1))
}

/// Formats a time for people in Guangzhou: Beijing time, to the minute.
pub fn local_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&china_time())
        .format("%Y-%m-%d %H:%M (UTC+8)")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let start = DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .unwrap()
            .to_utc();
        let clock = ManualClock::new(start);
        let twin = clock.clone();
        assert_eq!(clock.now(), start);
        twin.advance(TimeDelta::hours(25));
        assert_eq!(clock.now(), start + TimeDelta::hours(25));
        clock.set(start);
        assert_eq!(twin.now(), start);
    }

    #[test]
    fn millis_round_trip() {
        let t = DateTime::parse_from_rfc3339("2026-11-26T12:34:56.789Z")
            .unwrap()
            .to_utc();
        assert_eq!(from_millis(to_millis(t)), t);
    }
}
