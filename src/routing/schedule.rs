//! Named, timezone-aware weekly opening hours with holidays, used by routes and ring-group
//! members ("route to the sales desk when `office_hours` is open").
//!
//! A [`Schedule`] is plain data as written in a dialplan file. [`Schedule::compile`] checks it
//! once (rule 7: configuration is validated before anything runs) and gives a
//! [`CompiledSchedule`] that answers [`is_open`](CompiledSchedule::is_open) and
//! [`next_change`](CompiledSchedule::next_change) for an instant passed in by the caller; nothing
//! here reads the clock (ARCHITECTURE.md rule 1).
//!
//! # Semantics
//!
//! - Times are local wall-clock times in the schedule's IANA timezone, `HH:MM`; `end` may be
//!   `24:00` (midnight at the end of the day).
//! - `end` before `start` means the range crosses midnight: `fri 22:00–06:00` is open from Friday
//!   22:00 to Saturday 06:00. `start == end` is refused: it is unclear whether the writer meant
//!   "never" or "all day" (write `00:00`–`24:00` for the latter).
//! - Ranges may overlap; the schedule is open when any range is.
//! - A holiday owns its whole local calendar day: its hours (none = closed all day) replace the
//!   weekly hours of that date, including the spill-over of a range that crossed midnight the
//!   evening before. A holiday's own range may cross midnight into a normal day.
//! - DST. A boundary is the first instant at which the wall clock shows that time or later:
//!   * in a spring-forward gap (Berlin 02:00–03:00 does not exist) a `02:30` boundary falls on the
//!     jump itself, 03:00 local; a range lying wholly inside the gap never opens;
//!   * in a fall-back fold (01:00–02:00 or 02:00–03:00 happens twice) a boundary is the *first*
//!     occurrence, so a range ending at `02:30` closes once and does not reopen when the clock
//!     shows 02:00 again.
//!
//!   Ranges keep their wall-clock meaning, so `09:00`–`17:00` lasts 8 hours on every day,
//!   including the two days a year with 23 or 25 hours.

use std::collections::{BTreeMap, BTreeSet};

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Minutes in a civil day; a boundary is stored as minutes from the start of its day.
const DAY: u16 = 24 * 60;

/// Longest holiday range accepted. Holidays are expanded to one entry per date, and a range of
/// years is almost certainly a typo in `until`.
const MAX_HOLIDAY_DAYS: i32 = 366;

/// How far [`CompiledSchedule::next_change`] looks past the last holiday (or `at`) before
/// concluding the schedule never changes: one week repeats the weekly pattern, plus a day for a
/// range crossing midnight.
const SETTLE_DAYS: i32 = 8;

/// Upper bound on the days [`CompiledSchedule::next_change`] walks, so a holiday written far in
/// the future cannot make a simulation walk for centuries.
const MAX_SCAN_DAYS: i32 = 5 * 366;

/// A named schedule as written in a dialplan file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    /// IANA name, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// No ranges means closed except on holidays with special hours.
    #[serde(default)]
    pub weekly: Vec<WeeklyRange>,
    #[serde(default)]
    pub holidays: Vec<Holiday>,
}

/// Opening hours on some days of the week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyRange {
    pub days: BTreeSet<Day>,
    /// `HH:MM`, local time.
    pub start: String,
    /// `HH:MM` or `24:00`; before `start` when the range crosses midnight.
    pub end: String,
}

/// A day of the week, written `mon` … `sun` (or in full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    #[serde(alias = "monday")]
    Mon,
    #[serde(alias = "tuesday")]
    Tue,
    #[serde(alias = "wednesday")]
    Wed,
    #[serde(alias = "thursday")]
    Thu,
    #[serde(alias = "friday")]
    Fri,
    #[serde(alias = "saturday")]
    Sat,
    #[serde(alias = "sunday")]
    Sun,
}

/// A date (or an inclusive range of dates) whose hours replace the weekly ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holiday {
    /// `YYYY-MM-DD`, the first (or only) day.
    pub date: String,
    /// `YYYY-MM-DD`, the last day of a multi-day holiday, inclusive. Two fields rather than a
    /// range syntax inside one string, so each can be reported on its own when it is wrong.
    #[serde(default)]
    pub until: Option<String>,
    pub name: String,
    /// Special hours for each day of the holiday; none means closed all day.
    #[serde(default)]
    pub hours: Vec<DailyRange>,
}

/// Opening hours within a holiday; same rules as [`WeeklyRange`] without the days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyRange {
    pub start: String,
    pub end: String,
}

/// Why a [`Schedule`] was refused. Each variant names the schedule and carries the offending
/// value, so `dialplan check` can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("a schedule needs a name")]
    EmptyName,
    #[error("schedule {schedule}: unknown timezone {timezone:?}{}", suggestion_text(.suggestion))]
    UnknownTimezone {
        schedule: String,
        timezone: String,
        suggestion: Option<String>,
    },
    #[error("schedule {schedule}: bad time {value:?}: {reason}")]
    BadTime {
        schedule: String,
        value: String,
        reason: &'static str,
    },
    #[error(
        "schedule {schedule}: range {start}–{end} is empty; write 00:00–24:00 for a whole day"
    )]
    EmptyRange {
        schedule: String,
        start: String,
        end: String,
    },
    #[error("schedule {schedule}: range {start}–{end} names no days")]
    NoDays {
        schedule: String,
        start: String,
        end: String,
    },
    #[error("schedule {schedule}: bad date {value:?}, expected YYYY-MM-DD")]
    BadDate { schedule: String, value: String },
    #[error("schedule {schedule}: holiday {holiday:?} ends ({until}) before it starts ({date})")]
    HolidayReversed {
        schedule: String,
        holiday: String,
        date: String,
        until: String,
    },
    #[error("schedule {schedule}: holiday {holiday:?} from {date} to {until} is longer than {MAX_HOLIDAY_DAYS} days")]
    HolidayTooLong {
        schedule: String,
        holiday: String,
        date: String,
        until: String,
    },
    #[error("schedule {schedule}: {date} is both holiday {first:?} and holiday {second:?}")]
    DuplicateHolidayDate {
        schedule: String,
        date: String,
        first: String,
        second: String,
    },
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean {name:?}?)"),
        None => String::new(),
    }
}

/// A validated schedule, ready to answer questions about instants.
#[derive(Debug, Clone)]
pub struct CompiledSchedule {
    name: String,
    tz: TimeZone,
    /// Indexed by [`weekday_index`], Monday first.
    weekly: [Vec<Span>; 7],
    holidays: BTreeMap<Date, HolidayDay>,
}

/// The moment a schedule opens or closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub at: Timestamp,
    /// The state from `at` on.
    pub open: bool,
}

/// Minutes from the start of the day it belongs to: `start < DAY`, `start < end`, and
/// `end > DAY` when the range crosses midnight into the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u16,
    end: u16,
}

#[derive(Debug, Clone)]
struct HolidayDay {
    name: String,
    spans: Vec<Span>,
}

impl Schedule {
    /// Checks everything once; the result cannot fail later.
    pub fn compile(&self) -> Result<CompiledSchedule, ScheduleError> {
        let schedule = self.name.trim();
        if schedule.is_empty() {
            return Err(ScheduleError::EmptyName);
        }
        let tz = resolve_timezone(schedule, &self.timezone)?;

        let mut weekly: [Vec<Span>; 7] = Default::default();
        for range in &self.weekly {
            let span = parse_span(schedule, &range.start, &range.end)?;
            if range.days.is_empty() {
                return Err(ScheduleError::NoDays {
                    schedule: schedule.to_owned(),
                    start: range.start.clone(),
                    end: range.end.clone(),
                });
            }
            for day in &range.days {
                weekly[*day as usize].push(span);
            }
        }

        let mut holidays = BTreeMap::new();
        for holiday in &self.holidays {
            let first = parse_date(schedule, &holiday.date)?;
            let last = match &holiday.until {
                Some(until) => parse_date(schedule, until)?,
                None => first,
            };
            let range_error = |too_long: bool| {
                let (schedule, holiday, date, until) = (
                    schedule.to_owned(),
                    holiday.name.clone(),
                    holiday.date.clone(),
                    holiday.until.clone().unwrap_or_default(),
                );
                if too_long {
                    ScheduleError::HolidayTooLong {
                        schedule,
                        holiday,
                        date,
                        until,
                    }
                } else {
                    ScheduleError::HolidayReversed {
                        schedule,
                        holiday,
                        date,
                        until,
                    }
                }
            };
            if last < first {
                return Err(range_error(false));
            }
            let days = first
                .until(last)
                .map(|span| span.get_days())
                .unwrap_or(i32::MAX);
            if days >= MAX_HOLIDAY_DAYS {
                return Err(range_error(true));
            }
            let spans = holiday
                .hours
                .iter()
                .map(|r| parse_span(schedule, &r.start, &r.end))
                .collect::<Result<Vec<_>, _>>()?;

            let mut date = first;
            loop {
                let day = HolidayDay {
                    name: holiday.name.clone(),
                    spans: spans.clone(),
                };
                if let Some(earlier) = holidays.insert(date, day) {
                    return Err(ScheduleError::DuplicateHolidayDate {
                        schedule: schedule.to_owned(),
                        date: date.to_string(),
                        first: earlier.name,
                        second: holiday.name.clone(),
                    });
                }
                if date >= last {
                    break;
                }
                // `last` is a valid date after `date`, so there is a tomorrow; stop rather than
                // panic if jiff ever disagrees.
                match date.tomorrow() {
                    Ok(next) => date = next,
                    Err(_) => break,
                }
            }
        }

        Ok(CompiledSchedule {
            name: schedule.to_owned(),
            tz,
            weekly,
            holidays,
        })
    }
}

impl CompiledSchedule {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the schedule is open at `at`. Boundaries are half-open: open at `start`, closed
    /// at `end`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let today = self.tz.to_datetime(at).date();
        // A range belongs to the day it starts and lasts under 48 civil hours, so only yesterday's
        // and today's can cover `at`; tomorrow's too when a fold at midnight shows tomorrow's
        // date before some of today's instants end.
        [today.yesterday().ok(), Some(today), today.tomorrow().ok()]
            .into_iter()
            .flatten()
            .any(|date| {
                self.intervals(date)
                    .into_iter()
                    .any(|(open, close)| open <= at && at < close)
            })
    }

    /// The holiday that governs the local date of `at`, for logs and `dialplan simulate`.
    pub fn holiday(&self, at: Timestamp) -> Option<&str> {
        let date = self.tz.to_datetime(at).date();
        self.holidays.get(&date).map(|day| day.name.as_str())
    }

    /// The first instant after `at` at which the schedule opens or closes. `None` when it never
    /// changes again: always open, never open, or not within about five years.
    pub fn next_change(&self, at: Timestamp) -> Option<Change> {
        let open_now = self.is_open(at);
        let today = self.tz.to_datetime(at).date();
        let settle_from = match self.holidays.last_key_value() {
            Some((last, _)) if *last > today => *last,
            _ => today,
        };
        let horizon = settle_from
            .checked_add(jiff::Span::new().days(SETTLE_DAYS))
            .ok()
            .filter(|h| {
                today
                    .until(*h)
                    .map(|s| s.get_days() <= MAX_SCAN_DAYS)
                    .unwrap_or(false)
            })
            .or_else(|| {
                today
                    .checked_add(jiff::Span::new().days(MAX_SCAN_DAYS))
                    .ok()
            })?;

        // Boundaries come in order of day, except that a range crossing midnight ends after the
        // next day's first ranges start. Everything before the next day's midnight is final once
        // that day is collected, because later days' ranges start at or after it.
        let mut pending = BTreeSet::new();
        let mut date = today.yesterday().unwrap_or(today);
        while date <= horizon {
            for (open, close) in self.intervals(date) {
                pending.insert(open);
                pending.insert(close);
            }
            let next = date.tomorrow().ok()?;
            let settled = self.boundary(next, 0)?;
            while let Some(&candidate) = pending.first() {
                if candidate >= settled {
                    break;
                }
                pending.pop_first();
                if candidate > at && self.is_open(candidate) != open_now {
                    return Some(Change {
                        at: candidate,
                        open: !open_now,
                    });
                }
            }
            date = next;
        }
        None
    }

    /// The open intervals of the ranges starting on local `date`, as instants `[open, close)`.
    fn intervals(&self, date: Date) -> Vec<(Timestamp, Timestamp)> {
        let next_is_holiday = date
            .tomorrow()
            .map(|next| self.holidays.contains_key(&next))
            .unwrap_or(false);
        self.spans(date)
            .iter()
            .filter_map(|span| {
                // A holiday owns its whole day, so a range spilling into it stops at midnight.
                let end = if span.end > DAY && next_is_holiday {
                    DAY
                } else {
                    span.end
                };
                let open = self.boundary(date, span.start)?;
                let close = self.boundary(date, end)?;
                // Empty when both ends fall in the same DST gap.
                (open < close).then_some((open, close))
            })
            .collect()
    }

    fn spans(&self, date: Date) -> &[Span] {
        match self.holidays.get(&date) {
            Some(day) => &day.spans,
            None => &self.weekly[weekday_index(date.weekday())],
        }
    }

    /// The first instant at which the wall clock shows `minutes` after the start of `date`, or
    /// later (see the module docs on DST). `None` only at the edges of jiff's supported range.
    fn boundary(&self, date: Date, minutes: u16) -> Option<Timestamp> {
        let date = if minutes >= DAY {
            date.tomorrow().ok()?
        } else {
            date
        };
        let minutes = minutes % DAY;
        let time = Time::new((minutes / 60) as i8, (minutes % 60) as i8, 0, 0).ok()?;
        let local = DateTime::from_parts(date, time);
        match self.tz.to_ambiguous_timestamp(local).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(local).ok(),
            AmbiguousOffset::Fold { before, .. } => before.to_timestamp(local).ok(),
            AmbiguousOffset::Gap { after, .. } => {
                // `local` read with the later offset lands just before the jump; the jump is the
                // next transition from there.
                let probe = after.to_timestamp(local).ok()?;
                self.tz
                    .following(probe)
                    .next()
                    .map(|transition| transition.timestamp())
            }
        }
    }
}

fn weekday_index(day: Weekday) -> usize {
    match day {
        Weekday::Monday => Day::Mon as usize,
        Weekday::Tuesday => Day::Tue as usize,
        Weekday::Wednesday => Day::Wed as usize,
        Weekday::Thursday => Day::Thu as usize,
        Weekday::Friday => Day::Fri as usize,
        Weekday::Saturday => Day::Sat as usize,
        Weekday::Sunday => Day::Sun as usize,
    }
}

/// Looks the name up in the tzdb bundled into the binary. Suggests the canonical spelling for a
/// wrong case (`europe/berlin`) or a bare city (`Berlin`), the two mistakes seen in practice.
fn resolve_timezone(schedule: &str, name: &str) -> Result<TimeZone, ScheduleError> {
    let db = jiff::tz::db();
    if let Ok(tz) = db.get(name) {
        // jiff matches case-insensitively; insist on the canonical spelling so a dialplan reads
        // the same everywhere it is shown.
        if tz.iana_name() == Some(name) {
            return Ok(tz);
        }
    }
    let wanted = name.trim().to_ascii_lowercase().replace(' ', "_");
    let suggestion = db
        .available()
        .map(|n| n.as_str().to_owned())
        .find(|candidate| {
            let lower = candidate.to_ascii_lowercase();
            lower == wanted || lower.rsplit('/').next() == Some(wanted.as_str())
        });
    Err(ScheduleError::UnknownTimezone {
        schedule: schedule.to_owned(),
        timezone: name.to_owned(),
        suggestion,
    })
}

fn parse_span(schedule: &str, start: &str, end: &str) -> Result<Span, ScheduleError> {
    let start_minutes = parse_time(schedule, start, false)?;
    let mut end_minutes = parse_time(schedule, end, true)?;
    if start_minutes == end_minutes {
        return Err(ScheduleError::EmptyRange {
            schedule: schedule.to_owned(),
            start: start.to_owned(),
            end: end.to_owned(),
        });
    }
    if end_minutes < start_minutes {
        end_minutes += DAY;
    }
    Ok(Span {
        start: start_minutes,
        end: end_minutes,
    })
}

/// `H:MM` or `HH:MM` to minutes after midnight; `24:00` only where an end is allowed.
fn parse_time(schedule: &str, value: &str, is_end: bool) -> Result<u16, ScheduleError> {
    let bad = |reason| ScheduleError::BadTime {
        schedule: schedule.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let (hours, minutes) = value.split_once(':').ok_or_else(|| bad("expected HH:MM"))?;
    let digits = |s: &str, max_len| {
        !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(hours, 2) || minutes.len() != 2 || !digits(minutes, 2) {
        return Err(bad("expected HH:MM"));
    }
    // Both are one or two ASCII digits, checked above.
    let hours: u16 = hours.parse().map_err(|_| bad("expected HH:MM"))?;
    let minutes: u16 = minutes.parse().map_err(|_| bad("expected HH:MM"))?;
    if minutes > 59 {
        return Err(bad("minutes must be 00–59"));
    }
    match hours {
        0..=23 => Ok(hours * 60 + minutes),
        24 if minutes == 0 && is_end => Ok(DAY),
        24 if minutes == 0 => Err(bad("24:00 can only end a range")),
        _ => Err(bad("hours must be 00–23, or 24:00 for the end of the day")),
    }
}

/// Strict `YYYY-MM-DD`: jiff's parser also takes other ISO 8601 forms, which would make the same
/// holiday look different in two files.
fn parse_date(schedule: &str, value: &str) -> Result<Date, ScheduleError> {
    let bad = || ScheduleError::BadDate {
        schedule: schedule.to_owned(),
        value: value.to_owned(),
    };
    let bytes = value.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return Err(bad());
    }
    let year: i16 = value[0..4].parse().map_err(|_| bad())?;
    let month: i8 = value[5..7].parse().map_err(|_| bad())?;
    let day: i8 = value[8..10].parse().map_err(|_| bad())?;
    Date::new(year, month, day).map_err(|_| bad())
}

#[cfg(test)]
mod tests;
