//! End to end with real baresip desk phones: they register with digest auth, `whatsip ring`
//! rings them through the running gateway, tones cross both ways and are measured, DTMF goes
//! both ways, and either side can hang up.

mod common;

use common::audio::{assert_tone, make_tone_wav};
use common::baresip::{AnswerMode, Baresip, BaresipOpts};
use common::gateway::{Gateway, GatewayConfig};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

struct Setup {
    dir: tempfile::TempDir,
    gw: Gateway,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&GatewayConfig::new(&dir.path().join("data")));
    Setup { dir, gw }
}

async fn phone(s: &Setup, user: &str, password: &str, hz: f64, mode: AnswerMode) -> Baresip {
    let wav = s.dir.path().join(format!("{user}-{hz}-{}.wav", rand_suffix()));
    make_tone_wav(&wav, hz, 60.0).unwrap();
    let workdir = s.dir.path().join(format!("phone-{user}-{}", rand_suffix()));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut p = Baresip::start(
        BaresipOpts::new(user, &wav)
            .registrar(&s.gw.sip.to_string(), password)
            .answermode(mode)
            .workdir(&workdir),
    )
    .await
    .unwrap();
    p.wait_registered(WAIT).await.unwrap();
    p
}

fn rand_suffix() -> u64 {
    common::sip_client::rand_u64() % 1_000_000
}

fn ring(gw: &Gateway, args: &[&str]) -> tokio::task::JoinHandle<(i32, String, String)> {
    gw.ring(args)
}

async fn join(h: tokio::task::JoinHandle<(i32, String, String)>) -> (i32, String, String) {
    h.await.unwrap()
}

fn heard_hz(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("heard: ")?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no 'heard:' line in {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_a_phone_tones_both_ways_dtmf_both_ways_gateway_hangs_up() {
    let s = setup();
    let mut desk = phone(&s, "1001", "secret1001", 440.0, AnswerMode::Auto).await;
    let heard = s.dir.path().join("heard.wav");
    let call = ring(&s.gw, &["1001", "--seconds", "5", "--tone", "1000", "--dtmf", "5#", "--record", heard.to_str().unwrap()]);

    desk.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    desk.send_dtmf("7").await.unwrap();
    // Digits from the gateway arrive at the phone.
    let first = desk.wait_dtmf(WAIT).await.unwrap();
    let second = desk.wait_dtmf(WAIT).await.unwrap();
    assert_eq!((first, second), ('5', '#'));
    desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();

    let (code, out, err) = join(call).await;
    assert_eq!(code, 0, "ring failed:\n{out}\n{err}\n{}", s.gw.log_tail());
    assert!(out.contains("outcome: answered"), "{out}");
    assert!(out.contains("ended by gateway"), "{out}");
    assert!(out.contains("dtmf from phone: 7"), "{out}");
    // The gateway heard the phone's 440 Hz tone, and so does its recording.
    let hz = heard_hz(&out);
    assert!((hz - 440.0).abs() < 440.0 * 0.03, "gateway heard {hz} Hz: {out}");
    assert_tone(&heard, 440.0);
    // The phone heard the gateway's 1000 Hz tone.
    assert_tone(&desk.received_wav().unwrap(), 1000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_hangs_up_and_the_call_ends_at_once() {
    let s = setup();
    let mut desk = phone(&s, "1001", "secret1001", 700.0, AnswerMode::Auto).await;
    let started = std::time::Instant::now();
    let call = ring(&s.gw, &["1001", "--seconds", "60", "--tone", "1200"]);
    desk.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    desk.hangup().await.unwrap();
    let (code, out, err) = join(call).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("ended by phone"), "{out}");
    assert!(started.elapsed() < Duration::from_secs(30), "call did not end with the phone's BYE");
    assert!((heard_hz(&out) - 700.0).abs() < 21.0, "{out}");
    assert_tone(&desk.received_wav().unwrap(), 1200.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_contacts_ring_first_answer_wins_the_other_is_cancelled() {
    let s = setup();
    let mut ringing_only = phone(&s, "1002", "secret1002", 500.0, AnswerMode::Manual).await;
    let mut answering = phone(&s, "1002", "secret1002", 900.0, AnswerMode::Manual).await;
    assert_eq!(s.gw.api_get("/api/registrations").as_array().unwrap().len(), 2);
    let call = ring(&s.gw, &["1002", "--seconds", "3"]);
    ringing_only.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    answering.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    answering.accept().await.unwrap();
    // The phone that did not answer stops ringing (CANCEL).
    ringing_only.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    let (code, out, err) = join(call).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!((heard_hz(&out) - 900.0).abs() < 27.0, "answered by the 900 Hz phone: {out}");
    assert_eq!(out.matches("rang: ").count(), 2, "both phones rang: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_and_unregistered_are_reported() {
    let s = setup();
    let (code, out, _) = join(ring(&s.gw, &["1001", "--seconds", "1"])).await;
    assert_eq!(code, 1);
    assert!(out.contains("outcome: failed") && out.contains("no registered phone"), "{out}");

    let (code, out, _) = join(ring(&s.gw, &["nobody", "--seconds", "1"])).await;
    assert_eq!(code, 1);
    assert!(out.contains("no such user or trunk: nobody"), "{out}");

    let mut desk = phone(&s, "1001", "secret1001", 440.0, AnswerMode::Manual).await;
    let call = ring(&s.gw, &["1001", "--seconds", "1", "--ring-timeout", "3"]);
    desk.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    let (code, out, _) = join(call).await;
    assert_eq!(code, 1);
    assert!(out.contains("outcome: no_answer"), "{out}");
}

