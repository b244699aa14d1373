//! The working-day calendar in force: loaded at start (the seed compiled in, or the newest version imported), refreshed in every process within seconds of an import, imported by operators (audited: each version kept with when and by whom), working-day timers re-dated by system events when a version changes their due time, and the warnings that the calendar nears its end.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::NaiveDate;
use serde_json::{Map, json};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::calendar::{self, Calendar};
use crate::domain::CaseId;
use crate::error::{Error, Result};
use crate::machine::{self, MessageDraft};
use crate::policy::{self, Act};
use crate::store::{Applied, CalendarVersion, SharedStore};
use crate::workflow::Recipient;

use super::Runtime;

/// How often a process looks for a newer calendar version.
pub(super) const CALENDAR_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Days left at which the city's supervisors are told (each once per version): the
/// first at `calendar::WARN_DAYS`.
const WARN_AT: [i64; 5] = [calendar::WARN_DAYS, 30, 14, 7, 1];

/// How many timers a re-dating pass reads at a time.
const REDATE_BATCH: u32 = 500;

/// Where the calendar in force stands, for a page, `/metrics` and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarStatus {
    pub version: u32,
    pub years: Vec<i32>,
    /// The last day whose holidays are known.
    pub last_day: Option<NaiveDate>,
    /// Whole days from today to it.
    pub days_left: Option<i64>,
    /// Within `calendar::WARN_DAYS` of the end (or past it).
    pub ending: bool,
}

/// What one step of the calendar's work did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CalendarTick {
    pub version: u32,
    /// A newer version was taken up by this process.
    pub refreshed: bool,
    /// Timers re-dated by this process.
    pub redated: usize,
    /// A warning to the city's supervisors was queued by this process.
    pub warned: bool,
}

/// The calendar a store holds: its newest version, or the seed compiled in (stored as
/// version 1's record the first time, so that every version in force is kept).
pub(super) async fn load_calendar(
    store: &SharedStore,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Calendar> {
    let seed = Calendar::builtin();
    let stored = store.latest_calendar().await?;
    match stored {
        Some(v) if v.version >= i64::from(seed.version) => {
            Calendar::parse(&v.source).map_err(|e| {
                Error::Internal(format!(
                    "stored calendar version {} does not parse: {e}",
                    v.version
                ))
            })
        }
        _ => {
            let record = record_of(&seed, calendar::BUILTIN, "seed", now);
            match store.import_calendar(&record).await {
                Ok(()) | Err(Error::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
            Ok(seed)
        }
    }
}

fn record_of(
    calendar: &Calendar,
    source: &str,
    by: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> CalendarVersion {
    CalendarVersion {
        version: i64::from(calendar.version),
        source: source.to_string(),
        sha256: hex::encode(Sha256::digest(source.as_bytes())),
        years: calendar
            .years
            .iter()
            .map(i32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        test_data: calendar.test_data,
        imported_at: now,
        imported_by: by.to_string(),
    }
}

/// Takes up a newer stored calendar version into `shared`, if there is one.
pub(super) async fn refresh(shared: &super::Shared) -> Result<bool> {
    let Some(latest) = shared.store.latest_calendar().await? else {
        return Ok(false);
    };
    let held = shared.calendar.read().expect("calendar lock").version;
    if latest.version <= i64::from(held) {
        return Ok(false);
    }
    let taken = Calendar::parse(&latest.source).map_err(|e| {
        Error::Internal(format!(
            "stored calendar version {} does not parse: {e}",
            latest.version
        ))
    })?;
    tracing::info!(version = taken.version, years = ?taken.years, "working-day calendar in force");
    *shared.calendar.write().expect("calendar lock") = Arc::new(taken);
    Ok(true)
}

impl Runtime {
    /// The calendar in force in this process.
    pub fn calendar(&self) -> Arc<Calendar> {
        self.shared.calendar.read().expect("calendar lock").clone()
    }

    /// Takes up a newer stored version, if there is one; `true` if it did.
    pub async fn refresh_calendar(&self) -> Result<bool> {
        refresh(&self.shared).await
    }

    /// Imports a calendar version (the TOML of `workflows/calendar.toml`, with a
    /// higher `version` and each year's notice cited), in force at once in this
    /// process and within seconds in every other; `by` is recorded with it. A file
    /// marked as test data is refused unless `test_data` allows it.
    pub async fn import_calendar(
        &self,
        principal: &Principal,
        text: &str,
        by: &str,
        test_data: bool,
    ) -> Result<CalendarStatus> {
        policy::check(principal, Act::ManageCalendar)?;
        let parsed = Calendar::parse(text).map_err(|e| Error::invalid("file", e))?;
        if parsed.test_data && !test_data {
            return Err(Error::invalid(
                "test_data",
                "this file is marked as test data (not from a published notice); it is imported only when asked for",
            ));
        }
        let current = self.calendar();
        if parsed.version <= current.version {
            return Err(Error::Conflict(format!(
                "calendar version {} is not above the version in force ({}): raise `version`",
                parsed.version, current.version
            )));
        }
        self.shared
            .store
            .import_calendar(&record_of(&parsed, text, by, self.now()))
            .await?;
        self.refresh_calendar().await?;
        Ok(self.calendar_status())
    }

    /// Every version kept, oldest first, with when it took effect and by whom.
    pub async fn calendar_versions(&self, principal: &Principal) -> Result<Vec<CalendarVersion>> {
        policy::check(principal, Act::ManageCalendar)?;
        Ok(self.shared.store.calendar_versions().await?)
    }

    /// Where the calendar in force stands today.
    pub fn calendar_status(&self) -> CalendarStatus {
        let calendar = self.calendar();
        let days_left = calendar.days_left(self.today());
        CalendarStatus {
            version: calendar.version,
            years: calendar.years.iter().copied().collect(),
            last_day: calendar.last_day(),
            days_left,
            ending: days_left.is_none_or(|d| d <= calendar::WARN_DAYS),
        }
    }

    /// The warning that the calendar nears its end, for those who keep it (the city's
    /// supervisors): `None` for anyone else, or when it is not near.
    pub fn calendar_warning(&self, principal: &Principal) -> Option<CalendarStatus> {
        policy::check(principal, Act::ManageCalendar).ok()?;
        Some(self.calendar_status()).filter(|s| s.ending)
    }

    /// Whether a running timer's due time reached past the published years (counted as
    /// weekdays there): for working-day timers only.
    pub fn provisional(
        &self,
        definition_id: i64,
        kind: &str,
        due: chrono::DateTime<chrono::Utc>,
    ) -> bool {
        self.definition(definition_id)
            .and_then(|d| d.timers.get(kind).map(|t| t.after_working_days.is_some()))
            .unwrap_or(false)
            && self.calendar().provisional(due)
    }

    /// One step of the calendar's work: take up a newer version; when the version in
    /// force differs from the one this process last re-dated under, date every running
    /// working-day timer again (a system event on each whose due time moves; the
    /// writer decides again under the case's lock, so a timer is re-dated once per
    /// version however many processes do this); and, near the calendar's end, queue the
    /// warning to the city's supervisors (once per version and threshold, in whichever
    /// process comes first).
    pub async fn calendar_step(&self) -> Result<CalendarTick> {
        let refreshed = self.refresh_calendar().await?;
        let calendar = self.calendar();
        let mut tick = CalendarTick {
            version: calendar.version,
            refreshed,
            ..CalendarTick::default()
        };
        if self.shared.redated_under.load(Ordering::Relaxed) != calendar.version {
            tick.redated = self.redate_timers().await?;
            self.shared
                .redated_under
                .store(calendar.version, Ordering::Relaxed);
        }
        // The end is checked once a day (and again when the version changes).
        let today = self.today();
        let due = {
            let mut checked = self.shared.end_checked.lock().expect("calendar check lock");
            let due = *checked != Some((calendar.version, today));
            *checked = Some((calendar.version, today));
            due
        };
        if due {
            tick.warned = self.warn_calendar_end().await?;
        }
        Ok(tick)
    }

    /// Dates every running timer that counts working days again under the calendar in
    /// force; returns how many moved.
    pub async fn redate_timers(&self) -> Result<usize> {
        let calendar = self.calendar();
        let mut kinds: Vec<String> = Vec::new();
        for def in self
            .shared
            .workflows
            .read()
            .expect("workflow lock")
            .by_id
            .values()
        {
            for (kind, t) in &def.timers {
                if t.after_working_days.is_some() && !kinds.contains(kind) {
                    kinds.push(kind.clone());
                }
            }
        }
        let mut redated = 0;
        let mut after = CaseId(0);
        loop {
            let page = self
                .shared
                .store
                .working_day_timers(&kinds, after, REDATE_BATCH)
                .await?;
            let Some((last, _, _)) = page.last() else {
                break;
            };
            after = *last;
            let mut requests = Vec::new();
            for (case, definition_id, timer) in &page {
                let (Some(def), Some(from)) = (self.definition(*definition_id), timer.from_at)
                else {
                    continue;
                };
                // Only timers whose due time moves are sent to the writer (which
                // decides again, under the case's lock).
                let moves = def
                    .timers
                    .get(&timer.kind)
                    .and_then(|t| t.after_working_days)
                    .is_some_and(|days| calendar.add_working_days(from, days) != timer.due_at);
                if moves {
                    let mut data = Map::new();
                    data.insert("calendar_version".into(), json!(calendar.version));
                    requests.push(super::places::system_request(
                        *case,
                        machine::REDATE,
                        data,
                        Some(format!(
                            "工作日历第 {} 版 / working-day calendar version {}",
                            calendar.version, calendar.version
                        )),
                        "system:calendar",
                    ));
                }
            }
            for r in self.submit_in_order(requests).await? {
                match r {
                    Ok(Applied::Done { .. }) => redated += 1,
                    Ok(_) | Err(Error::Conflict(_)) => {}
                    Err(Error::Store(e)) => return Err(Error::Store(e)),
                    Err(e) => tracing::warn!(error = %e, "a timer could not be re-dated"),
                }
            }
            if page.len() < REDATE_BATCH as usize {
                break;
            }
        }
        if redated > 0 {
            tracing::info!(
                redated,
                version = calendar.version,
                "working-day timers re-dated"
            );
        }
        Ok(redated)
    }

    /// Near the calendar's end, queues the warning to the city's supervisors for the
    /// nearest threshold passed, once per calendar version and threshold; `true` if
    /// this call queued it.
    pub async fn warn_calendar_end(&self) -> Result<bool> {
        let status = self.calendar_status();
        let Some(days) = status.days_left.filter(|_| status.ending) else {
            return Ok(false);
        };
        let Some(threshold) = WARN_AT.iter().rev().find(|t| days <= **t).copied() else {
            return Ok(false);
        };
        let last = status
            .last_day
            .map(|d| d.to_string())
            .unwrap_or_else(|| "—".into());
        let next_year = status.years.last().map_or(0, |y| y + 1);
        let years: Vec<String> = status.years.iter().map(i32::to_string).collect();
        let notice = MessageDraft {
            recipient: Recipient::Supervisor,
            recipient_id: None,
            template: "calendar_ending".into(),
            subject: format!(
                "工作日历将于 {last} 到期（剩余 {days} 天） / The working-day calendar ends on {last} ({days} days left)"
            ),
            body: format!(
                "安居的工作日历（第 {} 版）只包含 {} 年的法定节假日和调休安排，将于 {last} 到期，剩余 {days} 天。\
                 {next_year} 年的安排尚未导入：在此之前，跨入 {next_year} 年的工作日期限（部门受理、异议决定）按仅周末休息计算，\
                 页面上标为“暂定”。国务院办公厅公布 {next_year} 年部分节假日安排的通知后，请按通知录入并导入新版本（anju calendar import），\
                 已在运行的期限将自动重新计算。\n\n\
                 Anju's working-day calendar (version {}) holds the public holidays of {} only and ends on {last}, in {days} days. \
                 {next_year} is not yet imported: until it is, working-day deadlines reaching into {next_year} (departments' acceptance, \
                 objections' decisions) count weekends only and are shown as provisional. When the State Council's notice for \
                 {next_year} is published, enter it and import the new version (anju calendar import); running deadlines are re-dated.",
                status.version,
                years.join("、"),
                status.version,
                years.join(", "),
            ),
        };
        let queued = self
            .shared
            .store
            .claim_calendar_warning(i64::from(status.version), threshold, &notice, self.now())
            .await?;
        if queued {
            tracing::warn!(days, last_day = %last, "the working-day calendar nears its end: the city's supervisors were told");
        }
        Ok(queued)
    }
}
