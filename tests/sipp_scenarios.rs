//! sipp against the gateway: a wrong password refused, a right one accepted and removed, a
//! malformed INVITE answered 400 while the gateway keeps serving, and sipp phones that are
//! busy, ring until cancelled, or answer and echo audio.

mod common;

use common::gateway::{Gateway, GatewayConfig};
use common::sipp::{scenario, Sipp};
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn gateway() -> (tempfile::TempDir, Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&GatewayConfig::new(&dir.path().join("data")));
    (dir, gw)
}

async fn ring(gw: &Gateway, args: &[&str]) -> (i32, String) {
    let (code, out, err) = gw.ring(args).await.unwrap();
    (code, format!("{out}{err}"))
}

#[tokio::test]
async fn wrong_password_is_refused_right_one_registers_and_unregisters() {
    let (_dir, gw) = gateway();
    let target = gw.sip.to_string();
    let r = Sipp::run(&scenario("register_wrong_password.xml"), &target, &["-s", "1001"], SECS(10)).await.unwrap();
    r.assert_success();
    assert!(r.messages_log.contains("SIP/2.0 403"), "{}", r.describe());
    assert!(gw.registered_users().is_empty());

    let r = Sipp::run(&scenario("register_ok.xml"), &target, &["-s", "1002", "-ap", "secret1002"], SECS(10)).await.unwrap();
    r.assert_success();
    assert!(gw.registered_users().is_empty(), "register_ok ends with Expires: 0");
}

#[tokio::test]
async fn malformed_invite_gets_400_and_the_gateway_keeps_serving() {
    let (_dir, mut gw) = gateway();
    let r = Sipp::run(&scenario("malformed_invite.xml"), &gw.sip.to_string(), &["-s", "1001"], SECS(10)).await.unwrap();
    r.assert_success();
    assert!(r.messages_log.contains("SIP/2.0 400"), "{}", r.describe());
    assert!(gw.is_running());
    assert!(gw.log().contains("refused malformed request"));
}

#[tokio::test]
async fn a_busy_phone_is_reported_busy() {
    let (_dir, gw) = gateway();
    let mut phone = Sipp::phone("uas_busy.xml", &gw.sip.to_string(), "1001", "secret1001", &[], SECS(30)).unwrap();
    phone.wait_registered(SECS(10)).await.unwrap();
    let (code, out) = ring(&gw, &["1001", "--seconds", "2"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("outcome: busy"), "{out}");
    phone.wait().await.unwrap().assert_success();
}

#[tokio::test]
async fn a_call_not_answered_in_time_is_cancelled() {
    let (_dir, gw) = gateway();
    let mut phone = Sipp::phone("uas_ring_then_cancel.xml", &gw.sip.to_string(), "1001", "secret1001", &[], SECS(30)).unwrap();
    phone.wait_registered(SECS(10)).await.unwrap();
    let (code, out) = ring(&gw, &["1001", "--seconds", "2", "--ring-timeout", "2"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("outcome: no_answer"), "{out}");
    let done = phone.wait().await.unwrap();
    done.assert_success();
    assert!(done.messages_log.contains("CANCEL sip:"), "{}", done.describe());
}

#[tokio::test]
async fn an_answering_phone_echoes_our_tone_and_gets_bye() {
    let (_dir, gw) = gateway();
    let mut phone = Sipp::phone("uas_answer.xml", &gw.sip.to_string(), "1001", "secret1001", &["-rtp_echo"], SECS(30)).unwrap();
    phone.wait_registered(SECS(10)).await.unwrap();
    let (code, out) = ring(&gw, &["1001", "--seconds", "3", "--tone", "800"]).await;
    assert_eq!(code, 0, "{out}\n{}", gw.log_tail());
    assert!(out.contains("codec PCMU"), "{out}");
    let hz: f64 = out.lines().find_map(|l| l.strip_prefix("heard: ")?.split(' ').next()?.parse().ok()).expect(&out);
    assert!((hz - 800.0).abs() < 24.0, "echo of our 800 Hz tone, heard {hz}: {out}");
    phone.wait().await.unwrap().assert_success();
}
