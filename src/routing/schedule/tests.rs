//! Every instant is fixed and written in UTC (`Z`), with the local time beside it, so a test
//! reads as "at this moment in Berlin…" and never depends on the machine's clock or zone.

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test instants are valid RFC 3339")
}

fn days(list: &[Day]) -> BTreeSet<Day> {
    list.iter().copied().collect()
}

const WEEKDAYS: &[Day] = &[Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri];
const ALL_DAYS: &[Day] = &[
    Day::Mon,
    Day::Tue,
    Day::Wed,
    Day::Thu,
    Day::Fri,
    Day::Sat,
    Day::Sun,
];

fn range(d: &[Day], start: &str, end: &str) -> WeeklyRange {
    WeeklyRange {
        days: days(d),
        start: start.into(),
        end: end.into(),
    }
}

fn schedule(timezone: &str, weekly: Vec<WeeklyRange>, holidays: Vec<Holiday>) -> Schedule {
    Schedule {
        name: "office".into(),
        timezone: timezone.into(),
        weekly,
        holidays,
    }
}

fn office(timezone: &str) -> Schedule {
    schedule(timezone, vec![range(WEEKDAYS, "09:00", "17:00")], vec![])
}

fn holiday(date: &str, until: Option<&str>, name: &str, hours: &[(&str, &str)]) -> Holiday {
    Holiday {
        date: date.into(),
        until: until.map(Into::into),
        name: name.into(),
        hours: hours
            .iter()
            .map(|(s, e)| DailyRange {
                start: (*s).into(),
                end: (*e).into(),
            })
            .collect(),
    }
}

fn compile(s: &Schedule) -> CompiledSchedule {
    s.compile().expect("test schedule is valid")
}

fn change(at: &str, open: bool) -> Option<Change> {
    Some(Change { at: ts(at), open })
}

#[test]
fn weekdays_nine_to_five_in_berlin_winter_and_summer() {
    let s = compile(&office("Europe/Berlin"));
    // Monday 2026-01-12, CET (+01:00).
    assert!(!s.is_open(ts("2026-01-12T07:59:59Z"))); // 08:59:59
    assert!(s.is_open(ts("2026-01-12T08:00:00Z"))); // 09:00
    assert!(s.is_open(ts("2026-01-12T15:59:59Z"))); // 16:59:59
    assert!(!s.is_open(ts("2026-01-12T16:00:00Z"))); // 17:00
                                                     // Monday 2026-06-15, CEST (+02:00): the same wall-clock hours are an hour earlier in UTC.
    assert!(!s.is_open(ts("2026-06-15T06:59:00Z"))); // 08:59
    assert!(s.is_open(ts("2026-06-15T07:00:00Z"))); // 09:00
    assert!(!s.is_open(ts("2026-06-15T15:00:00Z"))); // 17:00
                                                     // Saturday 2026-01-17 at noon.
    assert!(!s.is_open(ts("2026-01-17T11:00:00Z")));
}

#[test]
fn spring_forward_boundary_inside_the_gap_falls_on_the_jump() {
    // Berlin, Sunday 2026-03-29: at 01:00Z the clock jumps from 02:00 CET to 03:00 CEST.
    let s = compile(&schedule(
        "Europe/Berlin",
        vec![
            range(&[Day::Sun], "02:30", "05:00"),
            range(&[Day::Sat], "20:00", "02:30"),
        ],
        vec![],
    ));
    // The Saturday range that should end at 02:30 runs until the jump, the Sunday range that
    // should start at 02:30 opens at the jump: no gap, no overlap, no missing hour.
    assert!(s.is_open(ts("2026-03-29T00:59:59Z"))); // 01:59:59 CET, Saturday's range
    assert!(s.is_open(ts("2026-03-29T01:00:00Z"))); // 03:00 CEST, Sunday's range
    assert!(s.is_open(ts("2026-03-29T02:59:59Z"))); // 04:59:59 CEST
    assert!(!s.is_open(ts("2026-03-29T03:00:00Z"))); // 05:00 CEST

    // Alone, each behaves the same way: open exactly at the jump, closed exactly at the jump.
    let sunday = compile(&schedule(
        "Europe/Berlin",
        vec![range(&[Day::Sun], "02:30", "05:00")],
        vec![],
    ));
    assert_eq!(
        sunday.next_change(ts("2026-03-28T23:00:00Z")),
        change("2026-03-29T01:00:00Z", true)
    );
    let saturday = compile(&schedule(
        "Europe/Berlin",
        vec![range(&[Day::Sat], "20:00", "02:30")],
        vec![],
    ));
    assert_eq!(
        saturday.next_change(ts("2026-03-28T23:00:00Z")),
        change("2026-03-29T01:00:00Z", false)
    );
}

#[test]
fn spring_forward_day_keeps_wall_clock_hours_and_a_range_inside_the_gap_never_opens() {
    let s = compile(&schedule(
        "Europe/Berlin",
        vec![
            range(&[Day::Sun], "09:00", "17:00"),
            range(&[Day::Sun], "02:10", "02:50"),
        ],
        vec![],
    ));
    // From Saturday evening the first change is 09:00 CEST, not 02:10 (which never happens).
    assert_eq!(
        s.next_change(ts("2026-03-28T20:00:00Z")),
        change("2026-03-29T07:00:00Z", true)
    );
    assert_eq!(
        s.next_change(ts("2026-03-29T07:00:00Z")),
        change("2026-03-29T15:00:00Z", false)
    );
    assert!(!s.is_open(ts("2026-03-29T01:00:00Z")));
}

#[test]
fn fall_back_boundary_in_the_repeated_hour_is_its_first_occurrence() {
    // Berlin, Sunday 2026-10-25: at 01:00Z the clock goes back from 03:00 CEST to 02:00 CET,
    // so 02:00–02:59 local happens twice (00:00Z–00:59Z and 01:00Z–01:59Z).
    let s = compile(&schedule(
        "Europe/Berlin",
        vec![
            range(&[Day::Sat], "22:00", "02:30"),
            range(&[Day::Sun], "02:40", "02:50"),
        ],
        vec![],
    ));
    assert!(s.is_open(ts("2026-10-25T00:29:59Z"))); // first 02:29:59 (CEST)
    assert!(!s.is_open(ts("2026-10-25T00:30:00Z"))); // first 02:30: closes
    assert!(!s.is_open(ts("2026-10-25T01:10:00Z"))); // second 02:10 (CET): does not reopen
    assert!(s.is_open(ts("2026-10-25T00:45:00Z"))); // first 02:45: the short range
    assert!(!s.is_open(ts("2026-10-25T01:45:00Z"))); // second 02:45: not again
    assert_eq!(
        s.next_change(ts("2026-10-25T00:30:00Z")),
        change("2026-10-25T00:40:00Z", true)
    );
    assert_eq!(
        s.next_change(ts("2026-10-25T00:40:00Z")),
        change("2026-10-25T00:50:00Z", false)
    );
}

#[test]
fn fall_back_day_keeps_wall_clock_hours() {
    let s = compile(&schedule(
        "Europe/Berlin",
        vec![range(&[Day::Sun], "00:00", "24:00")],
        vec![],
    ));
    // The 25-hour day is open all 25 hours: 22:00Z Saturday to 23:00Z Sunday.
    assert_eq!(
        s.next_change(ts("2026-10-24T12:00:00Z")),
        change("2026-10-24T22:00:00Z", true)
    );
    assert_eq!(
        s.next_change(ts("2026-10-24T22:00:00Z")),
        change("2026-10-25T23:00:00Z", false)
    );
    let office = compile(&schedule(
        "Europe/Berlin",
        vec![range(&[Day::Sun], "09:00", "17:00")],
        vec![],
    ));
    assert_eq!(
        office.next_change(ts("2026-10-25T00:00:00Z")),
        change("2026-10-25T08:00:00Z", true)
    );
}

#[test]
fn range_crossing_midnight_spills_into_the_next_day() {
    let s = compile(&schedule(
        "Europe/Berlin",
        vec![range(&[Day::Fri], "22:00", "06:00")],
        vec![],
    ));
    // Friday 2026-01-16 and Saturday 2026-01-17, CET.
    assert!(!s.is_open(ts("2026-01-16T20:59:00Z"))); // Fri 21:59
    assert!(s.is_open(ts("2026-01-16T21:00:00Z"))); // Fri 22:00
    assert!(s.is_open(ts("2026-01-16T23:30:00Z"))); // Sat 00:30, Saturday has no range of its own
    assert!(s.is_open(ts("2026-01-17T04:59:00Z"))); // Sat 05:59
    assert!(!s.is_open(ts("2026-01-17T05:00:00Z"))); // Sat 06:00
    assert!(!s.is_open(ts("2026-01-15T23:30:00Z"))); // Fri 00:30: Thursday had no range
}

#[test]
fn sunday_night_range_crosses_into_the_next_week() {
    let s = compile(&schedule(
        "UTC",
        vec![range(&[Day::Sun], "23:00", "01:00")],
        vec![],
    ));
    assert!(s.is_open(ts("2026-01-19T00:30:00Z"))); // Monday 00:30
    assert_eq!(
        s.next_change(ts("2026-01-19T00:30:00Z")),
        change("2026-01-19T01:00:00Z", false)
    );
}

#[test]
fn overlapping_ranges_are_one_opening() {
    let s = compile(&schedule(
        "UTC",
        vec![
            range(WEEKDAYS, "09:00", "13:00"),
            range(WEEKDAYS, "12:00", "17:00"),
        ],
        vec![],
    ));
    // 13:00 ends one range inside the other: no change there.
    assert_eq!(
        s.next_change(ts("2026-01-12T10:00:00Z")),
        change("2026-01-12T17:00:00Z", false)
    );
}

#[test]
fn holiday_closes_a_normal_weekday() {
    let s = compile(&schedule(
        "Europe/Berlin",
        vec![range(WEEKDAYS, "09:00", "17:00")],
        vec![holiday("2026-12-25", None, "Christmas Day", &[])],
    ));
    assert!(!s.is_open(ts("2026-12-25T10:00:00Z"))); // Friday 11:00
    assert_eq!(s.holiday(ts("2026-12-25T10:00:00Z")), Some("Christmas Day"));
    assert!(s.is_open(ts("2026-12-24T10:00:00Z"))); // Thursday as usual
    assert_eq!(s.holiday(ts("2026-12-24T10:00:00Z")), None);
    // The holiday follows the local date: 23:30Z on the 24th is already the 25th in Berlin.
    assert_eq!(s.holiday(ts("2026-12-24T23:30:00Z")), Some("Christmas Day"));
}

#[test]
fn holiday_with_special_hours() {
    let s = compile(&schedule(
        "Europe/Berlin",
        vec![range(WEEKDAYS, "09:00", "17:00")],
        vec![holiday(
            "2026-12-24",
            None,
            "Christmas Eve",
            &[("09:00", "12:00")],
        )],
    ));
    assert!(s.is_open(ts("2026-12-24T10:59:00Z"))); // 11:59
    assert!(!s.is_open(ts("2026-12-24T11:00:00Z"))); // 12:00
    assert!(!s.is_open(ts("2026-12-24T13:00:00Z"))); // 14:00, open on a normal Thursday
}

#[test]
fn holiday_can_open_a_weekend_day() {
    let s = compile(&schedule(
        "UTC",
        vec![range(WEEKDAYS, "09:00", "17:00")],
        vec![holiday(
            "2026-01-17",
            None,
            "stock-take",
            &[("10:00", "14:00")],
        )],
    ));
    assert!(s.is_open(ts("2026-01-17T11:00:00Z"))); // Saturday
}

#[test]
fn holiday_cuts_the_overnight_spill_of_the_evening_before() {
    let s = compile(&schedule(
        "UTC",
        vec![range(ALL_DAYS, "22:00", "06:00")],
        vec![holiday("2026-12-25", None, "Christmas Day", &[])],
    ));
    assert!(s.is_open(ts("2026-12-24T23:59:00Z")));
    assert_eq!(
        s.next_change(ts("2026-12-24T23:00:00Z")),
        change("2026-12-25T00:00:00Z", false)
    );
    // The evening after the holiday opens as usual.
    assert_eq!(
        s.next_change(ts("2026-12-25T00:00:00Z")),
        change("2026-12-26T22:00:00Z", true)
    );
}

#[test]
fn multi_day_holiday_range() {
    let s = compile(&schedule(
        "UTC",
        vec![range(ALL_DAYS, "09:00", "17:00")],
        vec![holiday("2026-12-24", Some("2026-12-26"), "Christmas", &[])],
    ));
    for day in ["2026-12-24", "2026-12-25", "2026-12-26"] {
        assert!(!s.is_open(ts(&format!("{day}T12:00:00Z"))), "{day}");
    }
    assert!(s.is_open(ts("2026-12-23T12:00:00Z")));
    assert!(s.is_open(ts("2026-12-27T12:00:00Z")));
}

#[test]
fn same_instant_in_new_york_and_kolkata() {
    let new_york = compile(&office("America/New_York"));
    let kolkata = compile(&office("Asia/Kolkata"));
    // 03:45Z Monday 2026-06-15: 09:15 Monday in Kolkata (+05:30), 23:45 Sunday in New York (-04:00).
    let at = ts("2026-06-15T03:45:00Z");
    assert!(kolkata.is_open(at));
    assert!(!new_york.is_open(at));
    // The half-hour offset: Kolkata opens at 03:30Z, not on the hour.
    assert!(!kolkata.is_open(ts("2026-06-15T03:29:59Z")));
    assert_eq!(
        kolkata.next_change(ts("2026-06-15T00:00:00Z")),
        change("2026-06-15T03:30:00Z", true)
    );
    assert_eq!(
        kolkata.next_change(at),
        change("2026-06-15T11:30:00Z", false)
    );
    // New York opens at 09:00 EDT = 13:00Z, while Kolkata is already closed.
    assert_eq!(
        new_york.next_change(at),
        change("2026-06-15T13:00:00Z", true)
    );
    assert!(!kolkata.is_open(ts("2026-06-15T13:00:00Z")));
}

#[test]
fn next_change_across_a_weekend() {
    let s = compile(&office("Europe/Berlin"));
    // Friday 2026-01-16 18:00 CET → Monday 2026-01-19 09:00 CET.
    assert_eq!(
        s.next_change(ts("2026-01-16T17:00:00Z")),
        change("2026-01-19T08:00:00Z", true)
    );
    // Exactly at a boundary, the change is the next one, not this one.
    assert_eq!(
        s.next_change(ts("2026-01-19T08:00:00Z")),
        change("2026-01-19T16:00:00Z", false)
    );
}

#[test]
fn next_change_across_a_holiday() {
    let s = compile(&schedule(
        "Europe/Berlin",
        vec![range(WEEKDAYS, "09:00", "17:00")],
        vec![
            holiday("2026-12-24", None, "Christmas Eve", &[("09:00", "12:00")]),
            holiday("2026-12-25", None, "Christmas Day", &[]),
        ],
    ));
    // Thursday 24th 10:00 CET: closes at noon, then the holiday Friday and the weekend pass,
    // and it opens on Monday the 28th at 09:00.
    assert_eq!(
        s.next_change(ts("2026-12-24T09:00:00Z")),
        change("2026-12-24T11:00:00Z", false)
    );
    assert_eq!(
        s.next_change(ts("2026-12-24T11:00:00Z")),
        change("2026-12-28T08:00:00Z", true)
    );
}

#[test]
fn next_change_is_none_when_nothing_ever_changes() {
    let always = compile(&schedule(
        "Europe/Berlin",
        vec![range(ALL_DAYS, "00:00", "24:00")],
        vec![],
    ));
    assert!(always.is_open(ts("2026-03-29T01:30:00Z")));
    assert_eq!(always.next_change(ts("2026-03-29T01:30:00Z")), None);
    let never = compile(&schedule("Europe/Berlin", vec![], vec![]));
    assert!(!never.is_open(ts("2026-01-12T10:00:00Z")));
    assert_eq!(never.next_change(ts("2026-01-12T10:00:00Z")), None);
}

#[test]
fn next_change_finds_a_holiday_months_ahead() {
    let s = compile(&schedule(
        "UTC",
        vec![range(ALL_DAYS, "00:00", "24:00")],
        vec![holiday("2027-01-01", None, "New Year", &[])],
    ));
    assert_eq!(
        s.next_change(ts("2026-06-15T00:00:00Z")),
        change("2027-01-01T00:00:00Z", false)
    );
}

#[test]
fn deserialises_from_a_dialplan_file() {
    let s: Schedule = toml::from_str(
        r#"
        name = "office"
        timezone = "Europe/Berlin"
        weekly = [
            { days = ["mon", "tue", "wed", "thu", "friday"], start = "09:00", end = "17:00" },
            { days = ["sat"], start = "22:00", end = "24:00" },
        ]
        holidays = [
            { date = "2026-12-24", name = "Christmas Eve", hours = [{ start = "09:00", end = "12:00" }] },
            { date = "2026-12-25", until = "2026-12-26", name = "Christmas" },
        ]
        "#,
    )
    .expect("valid TOML schedule");
    assert_eq!(s.weekly[0].days, days(WEEKDAYS));
    assert_eq!(s.holidays[1].until.as_deref(), Some("2026-12-26"));
    assert!(s.holidays[1].hours.is_empty());
    let c = compile(&s);
    assert!(c.is_open(ts("2026-12-24T10:00:00Z")));
    assert!(!c.is_open(ts("2026-12-26T10:00:00Z")));

    let unknown_field =
        toml::from_str::<Schedule>("name = \"x\"\ntimezone = \"UTC\"\nweekley = []\n");
    assert!(unknown_field.is_err());
}

fn compile_err(s: Schedule) -> ScheduleError {
    s.compile().expect_err("test schedule is invalid")
}

#[test]
fn unknown_timezone_with_suggestion() {
    let err = compile_err(office("europe/berlin"));
    assert_eq!(
        err,
        ScheduleError::UnknownTimezone {
            schedule: "office".into(),
            timezone: "europe/berlin".into(),
            suggestion: Some("Europe/Berlin".into()),
        }
    );
    assert!(
        err.to_string().contains("did you mean \"Europe/Berlin\""),
        "{err}"
    );
    assert!(matches!(
        compile_err(office("Kolkata")),
        ScheduleError::UnknownTimezone { suggestion: Some(s), .. } if s == "Asia/Kolkata"
    ));
    assert!(matches!(
        compile_err(office("Mars/Olympus_Mons")),
        ScheduleError::UnknownTimezone { suggestion: None, timezone, .. } if timezone == "Mars/Olympus_Mons"
    ));
}

#[test]
fn bad_times_are_refused_with_the_value() {
    for (start, end) in [
        ("25:00", "17:00"),
        ("9", "17:00"),
        ("09:7", "17:00"),
        ("09:60", "17:00"),
        ("+9:00", "17:00"),
        ("24:00", "06:00"),
        ("09:00", "24:30"),
        ("09:00", "٠٩:00"),
        ("", "17:00"),
    ] {
        let err = compile_err(schedule("UTC", vec![range(WEEKDAYS, start, end)], vec![]));
        match err {
            ScheduleError::BadTime { value, .. } => {
                assert!(value == start || value == end, "{start}–{end}: {value}")
            }
            other => panic!("{start}–{end}: {other:?}"),
        }
    }
}

#[test]
fn empty_range_and_range_without_days_are_refused() {
    assert_eq!(
        compile_err(schedule(
            "UTC",
            vec![range(WEEKDAYS, "09:00", "09:00")],
            vec![]
        )),
        ScheduleError::EmptyRange {
            schedule: "office".into(),
            start: "09:00".into(),
            end: "09:00".into()
        }
    );
    assert_eq!(
        compile_err(schedule("UTC", vec![range(&[], "09:00", "17:00")], vec![])),
        ScheduleError::NoDays {
            schedule: "office".into(),
            start: "09:00".into(),
            end: "17:00".into()
        }
    );
    assert_eq!(
        compile_err(Schedule {
            name: "  ".into(),
            ..office("UTC")
        }),
        ScheduleError::EmptyName
    );
}

#[test]
fn bad_holidays_are_refused() {
    let with = |h: Holiday| compile_err(schedule("UTC", vec![], vec![h]));
    assert_eq!(
        with(holiday("2026-02-30", None, "x", &[])),
        ScheduleError::BadDate {
            schedule: "office".into(),
            value: "2026-02-30".into()
        }
    );
    assert!(matches!(
        with(holiday("26-12-25", None, "x", &[])),
        ScheduleError::BadDate { value, .. } if value == "26-12-25"
    ));
    assert!(matches!(
        with(holiday("2026-12-25", Some("2026-12-24"), "x", &[])),
        ScheduleError::HolidayReversed { until, .. } if until == "2026-12-24"
    ));
    assert!(matches!(
        with(holiday("2026-01-01", Some("2028-01-01"), "x", &[])),
        ScheduleError::HolidayTooLong { until, .. } if until == "2028-01-01"
    ));
    assert!(matches!(
        with(holiday("2026-12-24", None, "x", &[("12:00", "12:00")])),
        ScheduleError::EmptyRange { .. }
    ));
}

#[test]
fn duplicate_holiday_dates_are_refused() {
    let err = compile_err(schedule(
        "UTC",
        vec![],
        vec![
            holiday("2026-12-24", Some("2026-12-26"), "Christmas", &[]),
            holiday("2026-12-26", None, "Boxing Day", &[]),
        ],
    ));
    assert_eq!(
        err,
        ScheduleError::DuplicateHolidayDate {
            schedule: "office".into(),
            date: "2026-12-26".into(),
            first: "Christmas".into(),
            second: "Boxing Day".into(),
        }
    );
}

#[test]
fn midnight_that_does_not_exist() {
    // Chile moves clocks forward at 24:00: on Sunday 2026-09-06 the day starts at 01:00 (-03),
    // 04:00Z. A day starting at 00:00 starts at the jump; one ending at 24:00 ends there.
    let sunday = compile(&schedule(
        "America/Santiago",
        vec![range(&[Day::Sun], "00:00", "08:00")],
        vec![],
    ));
    assert_eq!(
        sunday.next_change(ts("2026-09-05T12:00:00Z")),
        change("2026-09-06T04:00:00Z", true)
    );
    assert_eq!(
        sunday.next_change(ts("2026-09-06T04:00:00Z")),
        change("2026-09-06T11:00:00Z", false)
    );
    let saturday = compile(&schedule(
        "America/Santiago",
        vec![range(&[Day::Sat], "20:00", "24:00")],
        vec![],
    ));
    assert_eq!(
        saturday.next_change(ts("2026-09-06T01:00:00Z")),
        change("2026-09-06T04:00:00Z", false)
    );
}

#[test]
fn timezone_links_are_accepted() {
    // Old names stay in the tzdb as links; a dialplan written years ago must still load.
    let s = compile(&office("Asia/Calcutta"));
    assert!(s.is_open(ts("2026-06-15T03:45:00Z")));
}
