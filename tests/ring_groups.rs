//! Dialplans and ring groups end to end: the sandbox (a local Meta) calls the real
//! `whatsip serve`, which routes by a dialplan folder and rings several real baresip desk
//! phones. Checked: a primary that does not answer and a backup that joins after its delay and
//! takes the call (audio both ways); simultaneous ringing where the first answer wins and the
//! others stop; a member on a call skipped; an out-of-hours call that hears the announcement
//! and is logged as missed with a callback request; a queue that stops ringing by itself (480)
//! taking the no-answer branch; and a broken edit of the running plan refused while calls keep
//! routing by the old one. Meta's rules must hold throughout.

mod common;

use std::time::Duration;

use common::audio::{assert_tone, make_tone_wav};
use common::baresip::{AnswerMode, Baresip, BaresipOpts};
use common::gateway::{Gateway, GatewayConfig};
use common::sipp::Sipp;
use whatsip::ids::{PhoneNumberId, WaId};
use whatsip::media::tone::dominant_frequency;
use whatsip::sandbox::{CallSpec, CallState, Sandbox, SandboxConfig, SandboxNumber};

const WAIT: Duration = Duration::from_secs(25);
const SECRET: &str = "sandbox-app-secret";
const ACCESS: &str = "sandbox-access-token";
const NUMBER_ID: &str = "106540352242922";
const NUMBER: &str = "+15550100";
const USER_HZ: f64 = 1000.0;
const PHONE_HZ: f64 = 440.0;
const ANNOUNCEMENT_HZ: f64 = 660.0;

struct Setup {
    dir: tempfile::TempDir,
    plan_dir: std::path::PathBuf,
    gw: Gateway,
    sandbox: Sandbox,
}

/// The sandbox, then the gateway routing by a dialplan folder holding `plan` as `plan.toml`
/// (and a 660 Hz announcement in `sounds/closed.wav`).
async fn setup(plan: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("dialplans");
    std::fs::create_dir_all(plan_dir.join("sounds")).unwrap();
    make_tone_wav(&plan_dir.join("sounds/closed.wav"), ANNOUNCEMENT_HZ, 3.0).unwrap();
    std::fs::write(plan_dir.join("plan.toml"), plan).unwrap();

    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.users.push(("1003".into(), "secret1003".into()));
    let numbers = vec![SandboxNumber { phone_number_id: PhoneNumberId::new(NUMBER_ID), display_number: NUMBER.into() }];
    let webhook_url = format!("http://127.0.0.1:{}/webhook", cfg.webhook_port);
    let sandbox = Sandbox::start(SandboxConfig::local(webhook_url, SECRET, ACCESS, numbers)).await.expect("sandbox starts");
    cfg.whatsapp_extra = format!(
        "app_secret = \"{SECRET}\"\nverify_token = \"verify-me\"\naccess_token = \"{ACCESS}\"\ngraph_base_url = \"{}\"\n",
        sandbox.graph_base_url()
    );
    cfg.extra = format!(
        "[[whatsapp.numbers]]\nphone_number_id = \"{NUMBER_ID}\"\ndisplay_number = \"{NUMBER}\"\n[routing]\ndialplan_dir = \"{}\"\n",
        plan_dir.display()
    );
    let gw = Gateway::start(&cfg);
    Setup { dir, plan_dir, gw, sandbox }
}

async fn phone(s: &Setup, user: &str, mode: AnswerMode) -> Baresip {
    let wav = s.dir.path().join(format!("tone-{user}.wav"));
    make_tone_wav(&wav, PHONE_HZ, 90.0).unwrap();
    let workdir = s.dir.path().join(format!("phone-{user}"));
    std::fs::create_dir_all(&workdir).unwrap();
    let opts = BaresipOpts::new(user, &wav).registrar(&s.gw.sip.to_string(), &format!("secret{user}")).answermode(mode).workdir(&workdir);
    let mut p = Baresip::start(opts).await.unwrap();
    p.wait_registered(WAIT).await.unwrap();
    p
}

fn call_from(number: &str) -> CallSpec {
    let mut spec = CallSpec::new(PhoneNumberId::new(NUMBER_ID));
    spec.from = WaId::new(number);
    spec.name = Some("Dana".to_owned());
    spec
}

/// The call record of `call_id`, once the gateway has written it.
async fn record_of(gw: &Gateway, call_id: &str) -> serde_json::Value {
    for _ in 0..150 {
        let calls = gw.api_get("/api/calls?limit=10");
        if let Some(c) = calls.as_array().and_then(|a| a.iter().find(|c| c["call_id"] == call_id)) {
            return c.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no call record for {call_id}\n{}", gw.log_tail());
}

/// The record's line for member `target`.
fn leg<'a>(record: &'a serde_json::Value, target: &str) -> &'a serde_json::Value {
    record["legs"].as_array().unwrap().iter().find(|l| l["target"] == target).unwrap_or_else(|| panic!("no leg for {target} in {record}"))
}

fn no_violations(s: &Setup) {
    assert!(s.sandbox.violations().is_empty(), "Meta's rules broken: {:?}", s.sandbox.violations());
}

const PRIMARY_BACKUP: &str = r#"
[[group]]
name = "support"
strategy = "simultaneous"
members = [
  { target = "1001", ring_for = 14 },
  { target = "1002", start_after = 4, ring_for = 10 },
]

[[route]]
name = "support"
match = { number = "+15550100" }

[[route.step]]
ring = "support"
otherwise = "callback"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_does_not_answer_and_the_backup_joins_after_its_delay_and_takes_the_call() {
    let s = setup(PRIMARY_BACKUP).await;
    let mut primary = phone(&s, "1001", AnswerMode::Manual).await;
    let mut backup = phone(&s, "1002", AnswerMode::Auto).await;
    let call = s.sandbox.place_call(call_from("15551234567")).await.expect("call placed");

    primary.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    backup.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    // The primary stops ringing the moment the backup answers (CANCEL).
    primary.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap_or_else(|e| panic!("not accepted: {e:?}\n{}", s.gw.log_tail()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = call.hang_up().await.expect("the user hangs up");
    backup.wait_event("CALL_CLOSED", WAIT).await.unwrap();

    let heard = &report.heard;
    let (hz, dbfs) = dominant_frequency(&heard.pcm, heard.rate, 100.0, 3800.0).expect("the user heard something");
    assert!((f64::from(hz) - PHONE_HZ).abs() < PHONE_HZ * 0.03 && dbfs > -40.0, "user heard {hz} Hz at {dbfs} dBFS");
    assert_tone(&backup.received_wav().unwrap(), USER_HZ);
    no_violations(&s);

    let record = record_of(&s.gw, call.call_id().as_str()).await;
    eprintln!("call record: {record}");
    assert_eq!((record["outcome"].as_str(), record["route"].as_str()), (Some("answered"), Some("support")), "{record}");
    assert_eq!(record["missed"], false);
    assert!(record["callback"].is_null(), "{record}");
    assert!(record["answered_by"].as_str().unwrap().contains("1002"), "{record}");
    let (first, second) = (leg(&record, "1001"), leg(&record, "1002"));
    assert_eq!((first["outcome"].as_str(), second["outcome"].as_str()), (Some("cancelled"), Some("answered")), "{record}");
    // The backup's INVITE went out no sooner than its start_after (a lower bound only).
    let delay = second["invited_at"].as_u64().unwrap() - first["invited_at"].as_u64().unwrap();
    assert!(delay >= 3_800, "backup invited {delay} ms after the primary: {record}");
    primary.stop().await.unwrap();
    backup.stop().await.unwrap();
}

const EVERYONE: &str = r#"
[[group]]
name = "everyone"
strategy = "simultaneous"
ring_for = 20
members = ["1001", "1002", "1003"]

[[route]]
name = "everyone"

[[route.step]]
ring = "everyone"
otherwise = "end"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_ringing_the_first_answer_wins_and_every_other_phone_stops() {
    let s = setup(EVERYONE).await;
    // Two phones answer at once; the third only rings.
    let mut a = phone(&s, "1001", AnswerMode::Auto).await;
    let mut b = phone(&s, "1002", AnswerMode::Auto).await;
    let mut c = phone(&s, "1003", AnswerMode::Manual).await;
    let call = s.sandbox.place_call(call_from("15551234567")).await.expect("call placed");

    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap_or_else(|e| panic!("not accepted: {e:?}\n{}", s.gw.log_tail()));
    c.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    c.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    // Let the loser's BYE or CANCEL land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Exactly one of the two answering phones still has the call; the other was ended (BYE
    // after its 200, or CANCEL before it).
    let (a_calls, b_calls) = (a.list_calls().await.unwrap(), b.list_calls().await.unwrap());
    let a_has = a_calls.contains("ESTABLISHED");
    let b_has = b_calls.contains("ESTABLISHED");
    assert!(a_has ^ b_has, "exactly one phone keeps the call:\n1001: {a_calls}\n1002: {b_calls}");
    call.hang_up().await.expect("the user hangs up");
    let (winner, loser) = if a_has { (&mut a, "1002") } else { (&mut b, "1001") };
    winner.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    no_violations(&s);

    let record = record_of(&s.gw, call.call_id().as_str()).await;
    eprintln!("call record: {record}");
    assert_eq!(record["outcome"], "answered", "{record}");
    let winner_name = if a_has { "1001" } else { "1002" };
    assert!(record["answered_by"].as_str().unwrap().contains(winner_name), "{record}");
    assert_eq!(leg(&record, winner_name)["outcome"], "answered", "{record}");
    let lost = leg(&record, loser)["outcome"].as_str().unwrap().to_owned();
    assert!(lost == "cancelled" || lost == "answered_late", "{record}");
    assert_eq!(leg(&record, "1003")["outcome"], "cancelled", "{record}");
    for p in [a, b, c] {
        p.stop().await.unwrap();
    }
}

const BUSY_SKIP: &str = r#"
[[group]]
name = "first-line"
members = ["1001"]
ring_for = 15

[[group]]
name = "desk"
strategy = "sequential"
skip_busy = true
ring_for = 10
members = ["1001", "1002"]

[[route]]
name = "us-callers"
match = { caller_prefix = ["+1"] }

[[route.step]]
ring = "first-line"
otherwise = "end"

[[route]]
name = "uk-callers"
match = { caller_prefix = ["+44"] }

[[route.step]]
ring = "desk"
otherwise = "end"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_already_on_a_call_is_skipped() {
    let s = setup(BUSY_SKIP).await;
    let mut busy = phone(&s, "1001", AnswerMode::Auto).await;
    let mut free = phone(&s, "1002", AnswerMode::Auto).await;
    // 1001 takes a first call and stays on it.
    let first = s.sandbox.place_call(call_from("15551234567")).await.expect("first call");
    busy.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    first.wait_for_state(CallState::Accepted, WAIT).await.unwrap();
    busy.clear_events();

    // The second call's group lists 1001 first; it is on a call, so 1002 rings at once.
    let second = s.sandbox.place_call(call_from("447700900123")).await.expect("second call");
    free.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    second.wait_for_state(CallState::Accepted, WAIT).await.unwrap();
    // Talk a moment: hanging up the instant Meta accepts can beat accept's 200 to the gateway,
    // which then (rightly) logs the call as missed as it was answered.
    tokio::time::sleep(Duration::from_secs(1)).await;
    second.hang_up().await.unwrap();
    first.hang_up().await.unwrap();
    busy.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    assert!(busy.take_event("CALL_INCOMING").is_none(), "the busy phone was rung again");
    no_violations(&s);

    let record = record_of(&s.gw, second.call_id().as_str()).await;
    eprintln!("call record: {record}");
    assert_eq!((record["outcome"].as_str(), record["route"].as_str()), (Some("answered"), Some("uk-callers")), "{record}");
    let skipped = leg(&record, "1001");
    assert_eq!((skipped["outcome"].as_str(), skipped["detail"].as_str()), (Some("skipped"), Some("busy")), "{record}");
    assert!(record["answered_by"].as_str().unwrap().contains("1002"), "{record}");
    busy.stop().await.unwrap();
    free.stop().await.unwrap();
}

const QUEUE_OVERFLOW: &str = r#"
[[group]]
name = "queue"
members = [{ target = "1003", ring_for = 12 }]

[[group]]
name = "desk"
members = [{ target = "1001", ring_for = 12 }]

[[route]]
name = "queue-first"
match = { number = "+15550100" }

[[route.step]]
ring = "queue"
on_no_answer = "ring:desk"
otherwise = "reject"
"#;

/// A PBX queue (sipp, registered as 1003) rings, then gives up by itself with 480 long before
/// its `ring_for`: that is no answer, not a decline, so the call overflows to the desk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_stops_ringing_by_itself_takes_the_no_answer_branch() {
    let s = setup(QUEUE_OVERFLOW).await;
    let mut queue = Sipp::phone("uas_unavailable.xml", &s.gw.sip.to_string(), "1003", "secret1003", &[], WAIT).unwrap();
    queue.wait_registered(WAIT).await.unwrap();
    let mut desk = phone(&s, "1001", AnswerMode::Auto).await;

    let call = s.sandbox.place_call(call_from("15551234567")).await.expect("call");
    desk.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    call.hang_up().await.unwrap();
    desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    queue.wait().await.unwrap().assert_success();
    no_violations(&s);

    let record = record_of(&s.gw, call.call_id().as_str()).await;
    eprintln!("call record: {record}");
    assert_eq!(record["outcome"].as_str(), Some("answered"), "{record}");
    let gave_up = leg(&record, "1003");
    assert_eq!(gave_up["outcome"].as_str(), Some("no_answer"), "{record}");
    assert!(gave_up["detail"].as_str().unwrap_or("").contains("480"), "{record}");
    assert!(record["answered_by"].as_str().unwrap().contains("1001"), "{record}");
    desk.stop().await.unwrap();
}

/// Closed from yesterday to tomorrow (UTC), whatever the time the test runs.
fn closed_today() -> String {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let (from, until) = (today.yesterday().unwrap(), today.tomorrow().unwrap());
    format!(
        r#"
[[schedule]]
name = "office"
timezone = "UTC"
weekly = [{{ days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "00:00", end = "24:00" }}]
holidays = [{{ date = "{from}", until = "{until}", name = "Test closure" }}]

[[group]]
name = "office"
members = ["1001"]

[[route]]
name = "open"
match = {{ schedule = "office" }}

[[route.step]]
ring = "office"
otherwise = "end"

[[route]]
name = "closed"
match = {{ schedule = "office", out_of_hours = true }}

[[route.step]]
announce = "sounds/closed.wav"
then = "callback"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_hours_the_caller_hears_the_announcement_and_is_logged_missed_with_a_callback() {
    let s = setup(&closed_today()).await;
    let mut desk = phone(&s, "1001", AnswerMode::Auto).await;
    let call = s.sandbox.place_call(call_from("15551234567")).await.expect("call placed");
    // Accepted to play, then ended by the gateway once the 3 s file has played.
    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap_or_else(|e| panic!("not accepted: {e:?}\n{}", s.gw.log_tail()));
    call.wait_for_state(CallState::Terminated, WAIT).await.unwrap_or_else(|e| panic!("not ended: {e:?}\n{}", s.gw.log_tail()));
    let report = call.report().await.expect("report");
    let heard = &report.heard;
    let (hz, dbfs) = dominant_frequency(&heard.pcm, heard.rate, 100.0, 3800.0).expect("the user heard something");
    assert!((f64::from(hz) - ANNOUNCEMENT_HZ).abs() < ANNOUNCEMENT_HZ * 0.03 && dbfs > -40.0, "user heard {hz} Hz at {dbfs} dBFS");
    assert!(desk.take_event("CALL_INCOMING").is_none(), "no phone rings out of hours");
    no_violations(&s);

    let record = record_of(&s.gw, call.call_id().as_str()).await;
    eprintln!("call record: {record}");
    assert_eq!((record["outcome"].as_str(), record["route"].as_str()), (Some("announced"), Some("closed")), "{record}");
    assert_eq!(record["missed"], true, "announced is not answered by an agent: {record}");
    assert_eq!(record["callback"]["status"], "pending", "{record}");
    assert!(record["answered_by"].is_null() && record["answered_at"].is_null(), "{record}");
    assert_eq!(record["ended_by"], "gateway", "{record}");
    desk.stop().await.unwrap();
}

const TO_1001: &str = r#"
[[group]]
name = "desk"
members = ["1001"]

[[route]]
name = "desk"

[[route.step]]
ring = "desk"
otherwise = "end"
"#;

async fn wait_plan(gw: &Gateway, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    for _ in 0..100 {
        let status = gw.api_get("/api/dialplan");
        if done(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("dialplan never {what}: {}\n{}", gw.api_get("/api/dialplan"), gw.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_is_refused_while_running_and_calls_keep_the_old_plan() {
    let s = setup(TO_1001).await;
    let mut one = phone(&s, "1001", AnswerMode::Auto).await;
    let mut two = phone(&s, "1002", AnswerMode::Auto).await;
    let file = s.plan_dir.join("plan.toml");

    // A typo in the group name: refused with file, line and the fix; the old plan stays.
    std::fs::write(&file, TO_1001.replace("ring = \"desk\"", "ring = \"dsek\"")).unwrap();
    let status = wait_plan(&s.gw, "refused the edit", |st| !st["refused"].is_null()).await;
    let problem = status["refused"]["problems"][0].as_str().unwrap().to_owned();
    assert!(problem.contains("plan.toml:10:") && problem.contains("dsek"), "{problem}");
    assert!(s.gw.log().contains("dialplan edit refused"), "{}", s.gw.log_tail());
    assert_eq!(status["loads"], 1);
    // The CLI says the same and exits 2.
    let (code, _, err) = s.gw.cli(&["dialplan", "reload"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("plan.toml:10:"), "{err}");

    let call = s.sandbox.place_call(call_from("15551234567")).await.expect("call placed");
    one.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap();
    call.hang_up().await.unwrap();
    one.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    assert_eq!(record_of(&s.gw, call.call_id().as_str()).await["route"], "desk");

    // A valid edit (ring 1002 instead) is picked up by itself; SIGHUP reloads too.
    std::fs::write(&file, TO_1001.replace("members = [\"1001\"]", "members = [\"1002\"]")).unwrap();
    wait_plan(&s.gw, "loaded the fix", |st| st["loads"] == 2 && st["refused"].is_null()).await;
    s.gw.signal("HUP");
    wait_plan(&s.gw, "reloaded on SIGHUP", |st| st["loads"] == 3).await;
    let call = s.sandbox.place_call(call_from("15551234567")).await.expect("call placed");
    two.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap();
    call.hang_up().await.unwrap();
    two.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    no_violations(&s);
    one.stop().await.unwrap();
    two.stop().await.unwrap();
}

#[test]
fn a_broken_plan_stops_startup_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let plan_dir = dir.path().join("plans");
    std::fs::create_dir_all(&plan_dir).unwrap();
    std::fs::write(plan_dir.join("plan.toml"), TO_1001.replace("members = [\"1001\"]", "members = [\"9999\"]")).unwrap();
    let config = dir.path().join("whatsip.toml");
    let text = format!(
        "data_dir = \"{}\"\n[[sip.users]]\nname = \"1001\"\npassword = \"secret1001\"\n[routing]\ndialplan_dir = \"{}\"\n",
        dir.path().join("data").display(),
        plan_dir.display()
    );
    std::fs::write(&config, text).unwrap();
    for command in ["check", "serve"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_whatsip")).args([command, "--config"]).arg(&config).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(err.contains("plan.toml:4:") && err.contains("9999"), "{command}: {err}");
    }
}

const PAIR: &str = r#"
[[group]]
name = "pair"
strategy = "simultaneous"
ring_for = 15
members = ["1001", "1002"]

[[route]]
name = "pair"

[[route.step]]
ring = "pair"
otherwise = "end"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_on_do_not_disturb_from_the_phone_is_skipped_until_it_turns_it_off() {
    let s = setup(PAIR).await;
    let mut away = phone(&s, "1001", AnswerMode::Auto).await;
    let mut desk = phone(&s, "1002", AnswerMode::Manual).await;
    // *78 from the phone itself; the gateway answers with the new state.
    away.dial(&format!("sip:*78@{}", s.gw.sip)).await.unwrap();
    let closed = away.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    assert_eq!(closed.param.as_deref(), Some("480 Do Not Disturb On"), "{}", closed.raw);
    away.clear_events();

    let call = s.sandbox.place_call(call_from("15551234567")).await.expect("call placed");
    desk.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    desk.accept().await.unwrap();
    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap();
    call.hang_up().await.unwrap();
    desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    assert!(away.take_event("CALL_INCOMING").is_none(), "a phone on do-not-disturb does not ring");
    let record = record_of(&s.gw, call.call_id().as_str()).await;
    let skipped = leg(&record, "1001");
    assert_eq!((skipped["outcome"].as_str(), skipped["detail"].as_str()), (Some("skipped"), Some("dnd")), "{record}");

    // *79 and it rings again (and, answering at once, takes the call).
    away.dial(&format!("sip:*79@{}", s.gw.sip)).await.unwrap();
    away.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    let call = s.sandbox.place_call(call_from("15551234567")).await.expect("call placed");
    away.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap();
    call.hang_up().await.unwrap();
    no_violations(&s);
    away.stop().await.unwrap();
    desk.stop().await.unwrap();
}
