//! Each test writes a small plan into a temporary folder and checks what `load_dir` says,
//! line and column included. Instants are fixed UTC with the Berlin time beside them.

use super::*;
use crate::ids::UserName;

fn plan_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write plan file");
    }
    dir
}

fn load(files: &[(&str, &str)]) -> Result<Dialplan, Vec<PlanProblem>> {
    let dir = plan_dir(files);
    load_dir(dir.path(), &CheckOptions::default())
}

fn problems(files: &[(&str, &str)]) -> Vec<PlanProblem> {
    match load(files) {
        Ok(_) => panic!("the plan should have been refused"),
        Err(p) => p,
    }
}

/// The one problem whose text contains `needle`, as (file name, line, column).
fn at(problems: &[PlanProblem], needle: &str) -> (String, usize, usize) {
    let hits: Vec<&PlanProblem> = problems.iter().filter(|p| p.what.contains(needle)).collect();
    assert_eq!(hits.len(), 1, "expected one problem with {needle:?} in {problems:#?}");
    let p = hits[0];
    let name = Path::new(&p.file).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    (name, p.line, p.column)
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test instants are valid RFC 3339")
}

const GROUPS: &str = r#"
[[group]]
name = "sales"
members = ["1001", "1002"]
ring_for = 15

[[group]]
name = "backup"
strategy = "sequential"
members = ["2001@pbx", { target = "1003", ring_for = 5 }]
ring_for = 5
"#;

const ROUTES: &str = r#"
[[schedule]]
name = "office"
timezone = "Europe/Berlin"
weekly = [{ days = ["mon", "tue", "wed", "thu", "fri"], start = "09:00", end = "17:00" }]

[[route]]
name = "vip"
match = { number = "+49 30 1234567", caller_prefix = ["+4917"] }
[[route.step]]
ring = "sales"
otherwise = "end"

[[route]]
name = "day"
match = { number = "+4930 1234567", schedule = "office" }
[[route.step]]
ring = "sales"
on_no_answer = "next"
on_busy = "next"
on_reject = "end"
on_error = "next"
[[route.step]]
ring = "backup"
otherwise = "callback"

[[route]]
name = "night"
match = { number = "4930 1234567", schedule = "office", out_of_hours = true }
[[route.step]]
callback = true

[[route]]
name = "promo"
match = { payload_prefix = "promo-" }
[[route.step]]
reject = true
"#;

#[test]
fn files_merge_and_routes_are_picked_in_order() {
    let plan = load(&[("a-groups.toml", GROUPS), ("b-routes.toml", ROUTES)]).expect("valid plan");
    let names: Vec<&str> = plan.routes().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["vip", "day", "night", "promo"]);
    let day = &plan.routes()[1];
    // 15 s sales, then backup: 5 s + 5 s one after the other.
    assert_eq!(day.max_ring, Duration::from_secs(25));
    assert_eq!(plan.group(&GroupName::new("backup")).map(|g| g.max_ring), Some(Duration::from_secs(10)));

    let call = |caller, cta| CallFacts { business_number: "+4930 1234567", phone_number_id: "555", caller, cta_payload: cta, deeplink_payload: None };
    // Tuesday 2026-11-24 10:00 Berlin (09:00 UTC); 20:00 Berlin (19:00 UTC).
    let open = ts("2026-11-24T09:00:00Z");
    let closed = ts("2026-11-24T19:00:00Z");
    let pick = |facts: CallFacts<'_>, at| plan.route_for(&facts, at).map(|r| r.name.clone());
    assert_eq!(pick(call("4917612345", None), closed).as_deref(), Some("vip"));
    assert_eq!(pick(call("4930999", None), open).as_deref(), Some("day"));
    assert_eq!(pick(call("4930999", None), closed).as_deref(), Some("night"));
    let other_number = CallFacts { business_number: "+441234567", phone_number_id: "777", caller: "1", cta_payload: None, deeplink_payload: Some("promo-x") };
    assert_eq!(pick(other_number, open).as_deref(), Some("promo"));
    let by_id = CallFacts { business_number: "", phone_number_id: "777", caller: "1", cta_payload: Some("nothing"), deeplink_payload: None };
    assert_eq!(pick(by_id, open), None);
}

#[test]
fn number_matches_phone_number_id() {
    let plan = load(&[("p.toml", "[[group]]\nname = \"g\"\nmembers = [\"1001\"]\n[[route]]\nname = \"r\"\nmatch = { number = \"106540352242922\" }\n[[route.step]]\nring = \"g\"\notherwise = \"end\"\n")]).expect("valid");
    let call = CallFacts { business_number: "+15550001111", phone_number_id: "106540352242922", caller: "1", ..CallFacts::default() };
    assert!(plan.route_for(&call, ts("2026-01-01T00:00:00Z")).is_some());
}

#[test]
fn syntax_errors_point_at_line_and_column() {
    let p = problems(&[("bad.toml", "[[group]]\nname = \"g\"\nmembers = [\"1001\" \"1002\"]\n")]);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].line, 3, "{p:?}");
    let p = problems(&[("bad.toml", "[[group]]\nname = \"g\"\nmembers = [\"1001\"]\ncolour = \"red\"\n")]);
    assert!(p[0].what.contains("colour"), "{p:?}");
    assert_eq!((p[0].line, p[0].column), (4, 1));
}

#[test]
fn unknown_references_are_named() {
    let text = "[[group]]\nname = \"g\"\nmembers = [\"group:nope\"]\n[[route]]\nname = \"r\"\nmatch = { schedule = \"hours\" }\n[[route.step]]\nring = \"ghost\"\notherwise = \"end\"\n";
    let p = problems(&[("p.toml", text)]);
    assert_eq!(at(&p, "\"nope\", which is not defined"), ("p.toml".into(), 3, 12));
    assert_eq!(at(&p, "schedule \"hours\""), ("p.toml".into(), 6, 22));
    assert_eq!(at(&p, "group \"ghost\""), ("p.toml".into(), 8, 8));
}

#[test]
fn duplicates_across_files_are_refused() {
    let a = "[[group]]\nname = \"g\"\nmembers = [\"1001\"]\n";
    let b = "\n[[group]]\nname = \"g\"\nmembers = [\"1002\"]\n";
    let p = problems(&[("a.toml", a), ("b.toml", b)]);
    assert_eq!(at(&p, "defined twice"), ("b.toml".into(), 3, 8));
}

#[test]
fn nested_group_cycles_are_refused_once() {
    let text = "[[group]]\nname = \"a\"\nmembers = [\"1001\", \"group:b\"]\n[[group]]\nname = \"b\"\nmembers = [\"group:a\"]\n";
    let p = problems(&[("p.toml", text)]);
    let (_, line, _) = at(&p, "circle");
    assert_eq!(line, 6, "{p:?}");
}

fn member(target: MemberTarget, start_after: u64, ring_for: u64) -> Member {
    Member { target, start_after: Duration::from_secs(start_after), ring_for: Duration::from_secs(ring_for) }
}

fn user(name: &str) -> MemberTarget {
    MemberTarget::User(UserName::new(name))
}

#[test]
fn nested_members_ring_by_the_outer_strategy() {
    // Inner is sequential, but nested it is shorthand: its members ring with 1003, at once.
    let text = r#"
[[group]]
name = "inner"
strategy = "sequential"
members = ["1001", "1002"]
ring_for = 10
[[group]]
name = "outer"
members = ["1003", { target = "group:inner", start_after = 5 }]
ring_for = 10
"#;
    let plan = load(&[("p.toml", text)]).expect("valid");
    let outer = GroupName::new("outer");
    assert_eq!(plan.group(&outer).map(|g| g.max_ring), Some(Duration::from_secs(15)));
    let flat = plan.ring_group(&outer).expect("outer");
    assert_eq!(flat.strategy, Strategy::Simultaneous);
    assert_eq!(flat.members, [member(user("1003"), 0, 10), member(user("1001"), 5, 10), member(user("1002"), 5, 10)]);
    // Rung directly, inner keeps its own strategy and times.
    assert_eq!(plan.group(&GroupName::new("inner")).map(|g| g.max_ring), Some(Duration::from_secs(20)));
}

#[test]
fn nested_groups_flatten_in_place_with_offsets_caps_and_first_places() {
    let text = r#"
[[group]]
name = "top"
strategy = "sequential"
ring_for = 30
members = ["1001", { target = "group:mid", start_after = 3, ring_for = 12 }, "1009", "1005"]
[[group]]
name = "mid"
strategy = "random"
timeout = 5
skip_busy = true
ring_for = 20
members = ["1002", { target = "group:low", start_after = 4 }, "1001"]
[[group]]
name = "low"
members = [{ target = "1003", start_after = 1, ring_for = 8 }, "1004", "1005"]
ring_for = 25
"#;
    let plan = load(&[("p.toml", text)]).expect("valid");
    let top = plan.ring_group(&GroupName::new("top")).expect("top");
    // mid's members sit where group:mid was, low's where group:low was, each offset by the
    // lines above it and capped by the shortest ring_for on the way; 1001 and 1005 keep their
    // first places (top's own 1001, low's 1005).
    assert_eq!(
        top.members,
        [
            member(user("1001"), 0, 30),
            member(user("1002"), 3, 12),
            member(user("1003"), 8, 8),
            member(user("1004"), 7, 12),
            member(user("1005"), 7, 12),
            member(user("1009"), 0, 30),
        ]
    );
    assert!(!top.members.iter().any(|m| matches!(m.target, MemberTarget::Group(_))));
    // top's rules, not mid's: sequential, no timeout of its own, busy members per top.
    assert_eq!(top.strategy, Strategy::Sequential);
    assert!(!top.skip_busy);
    let sum = 30 + 15 + 16 + 19 + 19 + 30;
    assert_eq!(top.ring_timeout, Duration::from_secs(sum));
    assert_eq!(plan.group(&GroupName::new("top")).map(|g| g.max_ring), Some(Duration::from_secs(sum)));
    // mid rung directly keeps its own strategy and timeout.
    let mid = plan.ring_group(&GroupName::new("mid")).expect("mid");
    assert_eq!((mid.strategy, mid.ring_timeout, mid.skip_busy), (Strategy::Random, Duration::from_secs(5), true));
    assert_eq!(mid.members.len(), 5);
    assert_eq!(plan.ring_group(&GroupName::new("nope")), None);
}

#[test]
fn a_sequential_group_nesting_a_simultaneous_one_is_checked_as_it_rings() {
    let text = r#"
[[group]]
name = "outer"
strategy = "sequential"
ring_for = 10
members = ["1001", { target = "group:inner", start_after = 2, ring_for = 8 }]
[[group]]
name = "inner"
ring_for = 15
members = ["1002", { target = "1003", start_after = 5 }]
[[route]]
name = "r"
[[route.step]]
ring = "outer"
otherwise = "end"
"#;
    // Flattened: 1001 for 10 s, then 1002 after 2 s for 8 s, then 1003 after 7 s for 8 s, one
    // after another: 35 s. Counting inner as one member ringing its own 20 s would say 32 s.
    let p = problems(&[("p.toml", text)]);
    let (_, line, _) = at(&p, "answer window");
    assert_eq!(line, 12, "{p:?}");
    assert!(p[0].what.contains("can ring for 35 s") && p[0].what.contains("step 1 ring outer 35 s"), "{p:?}");
    let dir = plan_dir(&[("p.toml", text)]);
    let plan = load_dir(dir.path(), &CheckOptions { answer_window: Duration::from_secs(40), settings: None }).expect("fits 40 s");
    let outer = GroupName::new("outer");
    assert_eq!(plan.group(&outer).map(|g| g.max_ring), Some(Duration::from_secs(35)));
    assert_eq!(plan.routes()[0].max_ring, Duration::from_secs(35));
    let flat = plan.ring_group(&outer).expect("outer");
    assert_eq!(flat.members, [member(user("1001"), 0, 10), member(user("1002"), 2, 8), member(user("1003"), 7, 8)]);
    // The outer group's timeout caps what was checked.
    let capped = text.replace("strategy = \"sequential\"\n", "strategy = \"sequential\"\ntimeout = 25\n");
    let plan = load(&[("p.toml", &capped)]).expect("valid with the timeout");
    assert_eq!(plan.group(&outer).map(|g| g.max_ring), Some(Duration::from_secs(25)));
    assert_eq!(plan.ring_group(&outer).map(|g| g.ring_timeout), Some(Duration::from_secs(25)));
}

#[test]
fn member_hours_need_every_schedule_on_the_path_open() {
    let text = r#"
[[schedule]]
name = "weekdays"
timezone = "UTC"
weekly = [{ days = ["mon", "tue", "wed", "thu", "fri"], start = "00:00", end = "24:00" }]
[[schedule]]
name = "mornings"
timezone = "UTC"
weekly = [{ days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "08:00", end = "12:00" }]
[[group]]
name = "desk"
members = ["1001", { target = "group:part-time", schedule = "weekdays" }, { target = "1004", schedule = "mornings" }]
[[group]]
name = "part-time"
members = [{ target = "1002", schedule = "mornings" }, "1003"]
"#;
    let plan = load(&[("p.toml", text)]).expect("valid");
    let desk = GroupName::new("desk");
    let hours = |target: &str, at: &str| plan.in_hours(&desk, &user(target), ts(at));
    // Tuesday 2026-11-24.
    let tue_morning = "2026-11-24T10:00:00Z";
    let tue_afternoon = "2026-11-24T14:00:00Z";
    let sat_morning = "2026-11-28T10:00:00Z";
    assert!(hours("1001", tue_morning) && hours("1001", sat_morning), "no schedule on its line: always");
    // Outer line's and its own, both open.
    assert!(hours("1002", tue_morning));
    assert!(!hours("1002", tue_afternoon), "its own schedule is closed");
    assert!(!hours("1002", sat_morning), "the group:part-time line's schedule is closed");
    // Only the outer line's.
    assert!(hours("1003", tue_afternoon));
    assert!(!hours("1003", sat_morning));
    // Only its own, at the top level.
    assert!(hours("1004", sat_morning) && !hours("1004", tue_afternoon));
    // Not a member of this group, or no such group: not in hours there.
    assert!(!hours("1999", tue_morning));
    assert!(!plan.in_hours(&GroupName::new("nope"), &user("1001"), ts(tue_morning)));
    assert!(!plan.in_hours(&desk, &MemberTarget::Group(GroupName::new("part-time")), ts(tue_morning)));
    // Rung directly, part-time has only its own lines' schedules.
    let part_time = GroupName::new("part-time");
    assert!(plan.in_hours(&part_time, &user("1003"), ts(sat_morning)));
    assert!(plan.in_hours(&part_time, &user("1002"), ts(sat_morning)));
    assert!(!plan.in_hours(&part_time, &user("1002"), ts(tue_afternoon)));
}

#[test]
fn unknown_member_schedule_is_named_with_line_and_column() {
    let text = "[[schedule]]\nname = \"office\"\ntimezone = \"UTC\"\n[[group]]\nname = \"g\"\nmembers = [\n  \"1001\",\n  { target = \"offce\", schedule = \"offce\" },\n  { target = \"1003\", schedule = \"office\" },\n]\n";
    let p = problems(&[("p.toml", text)]);
    // At the schedule's value, not at the target of the same spelling.
    assert_eq!(at(&p, "names schedule \"offce\""), ("p.toml".into(), 8, 34));
    assert!(p[0].what.contains("group \"g\": member offce") && p[0].fix.contains("[[schedule]]"), "{p:?}");
    assert_eq!(p.len(), 1, "{p:#?}");
    // Members as [[group.members]] tables are found the same way.
    let tables = "[[group]]\nname = \"g\"\n[[group.members]]\ntarget = \"1001\"\nschedule   =   \"night\"\n";
    let p = problems(&[("p.toml", tables)]);
    assert_eq!(at(&p, "names schedule \"night\""), ("p.toml".into(), 5, 16));
}

/// `samples` as an 8 kHz mono WAV file's bytes.
fn wav(samples: usize) -> Vec<u8> {
    crate::media::wav::wav_bytes_8k_mono(&vec![1000; samples])
}

/// A WAV file at any rate and channel count, as an admin's editor might save it.
fn wav_file(path: &Path, rate: u32, channels: u16, frames: usize) {
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).expect("create WAV");
    for i in 0..frames * usize::from(channels) {
        w.write_sample(((i % 50) as i16 - 25) * 400).expect("write sample");
    }
    w.finalize().expect("finish WAV");
}

#[test]
fn missing_announcement_file_is_refused() {
    let text = "[[route]]\nname = \"r\"\n[[route.step]]\nannounce = \"sounds/closed.wav\"\nthen = \"end\"\n";
    let p = problems(&[("p.toml", text)]);
    assert_eq!(at(&p, "does not exist"), ("p.toml".into(), 4, 12));
    // Present, it is accepted; a path out of the folder never is.
    let dir = plan_dir(&[("p.toml", text)]);
    std::fs::create_dir(dir.path().join("sounds")).expect("mkdir");
    std::fs::write(dir.path().join("sounds/closed.wav"), wav(800)).expect("write WAV");
    assert!(load_dir(dir.path(), &CheckOptions::default()).is_ok());
    let p = problems(&[("p.toml", &text.replace("sounds/closed.wav", "../etc/x.wav"))]);
    at(&p, "not a path inside");
}

#[test]
fn missing_branches_and_unreachable_steps() {
    let text = "[[group]]\nname = \"g\"\nmembers = [\"1001\"]\n[[route]]\nname = \"r\"\n[[route.step]]\nring = \"g\"\non_no_answer = \"end\"\non_busy = \"end\"\non_reject = \"end\"\n[[route.step]]\nreject = true\n";
    let p = problems(&[("p.toml", text)]);
    assert_eq!(at(&p, "what happens on_error"), ("p.toml".into(), 6, 1));
    // With every branch given and none saying next, the second step can never run.
    let text = text.replace("on_reject = \"end\"\n", "on_reject = \"end\"\non_error = \"end\"\n");
    let p = problems(&[("p.toml", &text)]);
    assert_eq!(at(&p, "step 2 can never run"), ("p.toml".into(), 12, 1));
}

#[test]
fn next_out_of_the_last_step_is_refused() {
    let text = "[[group]]\nname = \"g\"\nmembers = [\"1001\"]\n[[route]]\nname = \"r\"\n[[route.step]]\nring = \"g\"\notherwise = \"next\"\n";
    let p = problems(&[("p.toml", text)]);
    assert_eq!(at(&p, "there is none"), ("p.toml".into(), 6, 1));
}

#[test]
fn bad_schedules_are_reported() {
    let text = "[[schedule]]\nname = \"office\"\ntimezone = \"Europe/Berlni\"\n";
    let p = problems(&[("p.toml", text)]);
    assert_eq!(at(&p, "unknown timezone"), ("p.toml".into(), 3, 12));
}

#[test]
fn shadowed_routes_can_never_match() {
    let text = "[[route]]\nname = \"all\"\n[[route.step]]\nreject = true\n[[route]]\nname = \"de\"\nmatch = { caller_prefix = [\"+49\"] }\n[[route.step]]\nreject = true\n";
    let p = problems(&[("p.toml", text)]);
    assert_eq!(at(&p, "can never match"), ("p.toml".into(), 6, 8));
    // The narrower route first is fine.
    let swapped = "[[route]]\nname = \"de\"\nmatch = { caller_prefix = [\"+49\"] }\n[[route.step]]\nreject = true\n[[route]]\nname = \"all\"\n[[route.step]]\nreject = true\n";
    assert!(load(&[("p.toml", swapped)]).is_ok());
}

#[test]
fn answer_window_names_the_route_and_steps() {
    let text = r#"[[group]]
name = "a"
members = ["1001"]
ring_for = 20
[[group]]
name = "b"
members = ["1002"]
ring_for = 15
[[route]]
name = "long"
[[route.step]]
ring = "a"
otherwise = "next"
[[route.step]]
ring = "b"
otherwise = "end"
"#;
    let p = problems(&[("p.toml", text)]);
    assert_eq!(at(&p, "answer window"), ("p.toml".into(), 10, 8));
    let what = &p[0].what;
    assert!(what.contains("\"long\"") && what.contains("35 s") && what.contains("step 1 ring a 20 s") && what.contains("step 2 ring b 15 s"), "{what}");
    // A 40 s window takes it.
    let dir = plan_dir(&[("p.toml", text)]);
    let plan = load_dir(dir.path(), &CheckOptions { answer_window: Duration::from_secs(40), settings: None }).expect("fits 40 s");
    assert_eq!(plan.routes()[0].max_ring, Duration::from_secs(35));
}

#[test]
fn a_branch_ring_counts_toward_the_window() {
    let text = "[[group]]\nname = \"a\"\nmembers = [\"1001\"]\nring_for = 20\n[[route]]\nname = \"r\"\n[[route.step]]\nring = \"a\"\non_no_answer = \"ring:a\"\notherwise = \"end\"\n";
    let p = problems(&[("p.toml", text)]);
    assert!(at(&p, "answer window").1 == 6 && p[0].what.contains("on_no_answer ring:a 20 s"), "{p:?}");
}

#[test]
fn users_and_trunks_must_exist_in_the_settings() {
    let settings_text = "[whatsapp]\napp_secret = \"0123456789abcdef0123\"\nverify_token = \"verify-token-1\"\naccess_token = \"access-token-0123456789\"\n[[sip.users]]\nname = \"1001\"\npassword = \"secret\"\n[[sip.trunks]]\nname = \"pbx\"\naddress = \"127.0.0.1:5080\"\n[[whatsapp.numbers]]\nphone_number_id = \"555\"\ndisplay_number = \"+4930123456\"\ntarget = \"1001\"\n";
    let cfg = plan_dir(&[("whatsip.toml", settings_text)]);
    let settings = Settings::load_with_env(Some(&cfg.path().join("whatsip.toml")), Vec::new()).expect("valid settings");
    let text = "[[group]]\nname = \"g\"\nmembers = [\"1001\", \"1009\", \"2001@pbx\", \"2001@pbx2\"]\n[[route]]\nname = \"r\"\nmatch = { number = \"+4930999999\" }\n[[route.step]]\nring = \"g\"\notherwise = \"end\"\n";
    let dir = plan_dir(&[("p.toml", text)]);
    let options = CheckOptions { answer_window: DEFAULT_ANSWER_WINDOW, settings: Some(&settings) };
    let p = load_dir(dir.path(), &options).expect_err("unknown user and trunk");
    assert_eq!(at(&p, "no [[sip.users]]"), ("p.toml".into(), 3, 20));
    assert_eq!(at(&p, "no [[sip.trunks]]"), ("p.toml".into(), 3, 40));
    assert_eq!(at(&p, "no [[whatsapp.numbers]]"), ("p.toml".into(), 6, 20));
    assert_eq!(p.len(), 3, "{p:#?}");
}

#[test]
fn on_answer_is_end_only() {
    let text = "[[group]]\nname = \"g\"\nmembers = [\"1001\"]\n[[route]]\nname = \"r\"\n[[route.step]]\nring = \"g\"\non_answer = \"next\"\notherwise = \"end\"\n";
    let p = problems(&[("p.toml", text)]);
    assert_eq!(at(&p, "on_answer"), ("p.toml".into(), 8, 13));
}

#[test]
fn problems_print_as_file_line_column() {
    let p = PlanProblem { file: "dialplans/x.toml".into(), line: 3, column: 7, what: "bad".into(), fix: "fix it".into() };
    assert_eq!(p.to_string(), "dialplans/x.toml:3:7: bad — fix it");
}

#[test]
fn the_examples_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans");
    let plan = load_dir(&dir, &CheckOptions::default()).unwrap_or_else(|p| panic!("{p:#?}"));
    assert!(plan.routes().len() >= 5);
    assert!(plan.routes().iter().all(|r| r.max_ring <= DEFAULT_ANSWER_WINDOW));
}

#[test]
fn schema_names_every_top_level_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/schema.json");
    let text = std::fs::read_to_string(path).expect("schema.json");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    let props = schema["properties"].as_object().expect("properties");
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["group", "route", "schedule"]);
    assert_eq!(schema["additionalProperties"], serde_json::Value::Bool(false));
}

#[test]
fn announcements_that_cannot_play_are_named_where_they_are_used() {
    let text = r#"[[group]]
name = "g"
members = ["1001"]
[[route]]
name = "other"
match = { caller_prefix = ["+49"] }
[[route.step]]
announce = "sounds/bad.wav"
then = "end"
[[route]]
name = "r"
[[route.step]]
ring = "g"
on_no_answer = "announce:sounds/bad.wav"
on_busy = "announce:sounds/empty.wav"
on_reject = "announce:sounds/long.wav"
on_error = "end"
"#;
    let dir = plan_dir(&[("p.toml", text), ("sounds/bad.wav", "RIFF not really")]);
    std::fs::write(dir.path().join("sounds/empty.wav"), wav(0)).expect("write WAV");
    // Ten minutes and a second at a low rate: a small file that still plays too long.
    wav_file(&dir.path().join("sounds/long.wav"), 100, 1, 601 * 100);
    let p = load_dir(dir.path(), &CheckOptions::default()).expect_err("the files cannot play");
    let bad: Vec<(usize, usize)> = p.iter().filter(|p| p.what.contains("bad.wav is not a WAV whatsip can read")).map(|p| (p.line, p.column)).collect();
    // Decoded once, reported at both places that name it.
    assert_eq!(bad, [(8, 12), (14, 16)], "{p:#?}");
    assert!(p.iter().all(|p| !p.what.contains("bad.wav") || p.fix.contains("PCM WAV")), "{p:#?}");
    assert_eq!(at(&p, "empty.wav holds no audio"), ("p.toml".into(), 15, 11));
    assert_eq!(at(&p, "long.wav is 601 s long"), ("p.toml".into(), 16, 13));
    assert!(p.iter().any(|p| p.what.contains("long.wav") && p.fix.contains("10 minutes")), "{p:#?}");
    assert_eq!(p.len(), 4, "{p:#?}");
}

#[test]
fn announcements_are_decoded_once_to_8k_mono_and_shared() {
    let text = r#"[[group]]
name = "g"
members = ["1001"]
[[route]]
name = "r"
[[route.step]]
ring = "g"
on_no_answer = "announce:sounds/closed.wav"
otherwise = "next"
[[route.step]]
announce = "sounds/closed.wav"
then = "announce:sounds/bye.wav"
"#;
    let dir = plan_dir(&[("p.toml", text)]);
    std::fs::create_dir(dir.path().join("sounds")).expect("mkdir");
    // Half a second of 16 kHz stereo: 4000 samples at 8 kHz mono.
    wav_file(&dir.path().join("sounds/closed.wav"), 16_000, 2, 8000);
    std::fs::write(dir.path().join("sounds/bye.wav"), wav(1234)).expect("write WAV");
    let plan = load_dir(dir.path(), &CheckOptions::default()).unwrap_or_else(|p| panic!("{p:#?}"));
    let route = &plan.routes()[0];
    let (Step::Ring { branches, .. }, Step::Announce { file, then }) = (&route.steps[0], &route.steps[1]) else { panic!("{route:?}") };
    let Action::Announce(from_branch) = &branches.on_no_answer else { panic!("{branches:?}") };
    let Action::Announce(bye) = then else { panic!("{then:?}") };
    let closed = plan.announcement(file).expect("decoded");
    assert_eq!(closed.len(), 4000);
    // One decode, shared by every place that names the file.
    assert!(Arc::ptr_eq(&closed, &plan.announcement(from_branch).expect("decoded")));
    assert_eq!(plan.announcement(bye).map(|a| a.len()), Some(1234));
    assert_eq!(plan.announcement(Path::new("sounds/closed.wav")), None, "keyed by the stored path");
    // Debug names files and lengths, not samples.
    let shown = format!("{plan:?}");
    assert!(shown.contains("closed.wav\": 4000"), "{shown}");
}

#[test]
fn the_examples_decode_their_announcement() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans");
    let plan = load_dir(&dir, &CheckOptions::default()).unwrap_or_else(|p| panic!("{p:#?}"));
    let closed = plan.announcement(&dir.join("sounds/closed.wav")).expect("closed.wav decoded");
    assert_eq!(closed.len(), 4000);
}
