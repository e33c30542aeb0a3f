//! Trunks to an existing PBX (played by sipp): ringing an extension with the PBX's 407
//! challenge answered, whatsip registering to the PBX, and INVITEs from the PBX accepted by
//! source address or digest.

mod common;

use common::gateway::{Gateway, GatewayConfig};
use common::sip_client::RawSip;
use common::sipp::{scenario, Sipp};
use std::time::Duration;

const SECS: fn(u64) -> Duration = Duration::from_secs;

fn trunk_toml(name: &str, port: u16, extra: &str) -> String {
    format!(
        "[[sip.trunks]]\nname = \"{name}\"\naddress = \"127.0.0.1:{port}\"\nusername = \"whatsip\"\npassword = \"trunk-secret\"\n{extra}"
    )
}

#[tokio::test]
async fn ringing_an_extension_answers_the_pbxs_challenge() {
    ring_pbx_extension("udp").await;
}

#[tokio::test]
async fn ringing_an_extension_over_a_tcp_trunk() {
    ring_pbx_extension("tcp").await;
}

async fn ring_pbx_extension(transport: &str) {
    let mut args = vec!["-key", "pbx_user", "whatsip", "-key", "pbx_pass", "trunk-secret", "-rtp_echo"];
    if transport == "tcp" {
        args.extend(["-t", "t1"]);
    }
    let pbx = Sipp::spawn(&scenario("pbx_challenge_answer.xml"), "", &args, SECS(30)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.extra = trunk_toml("pbx", pbx.local_port(), &format!("transport = \"{transport}\"\n"));
    let gw = Gateway::start(&cfg);
    let (code, stdout, stderr) = gw.ring(&["2001@pbx", "--seconds", "2", "--tone", "600"]).await.unwrap();
    if code != 0 {
        eprintln!("PBX side:\n{}", pbx.messages());
    }
    assert_eq!(code, 0, "{stdout}{stderr}\n{}", gw.log_tail());
    assert!(stdout.contains("outcome: answered") && stdout.contains("2001@127.0.0.1"), "{stdout}");
    let done = pbx.wait().await.unwrap();
    assert!(stdout.contains("heard: 6"), "the PBX echoed our 600 Hz: {stdout}\nPBX side:\n{}\n{}", done.describe(), gw.log_tail());
    done.assert_success();
    assert!(done.messages_log.contains("Authorization: Digest username=\"whatsip\""), "{}", done.describe());
}

#[tokio::test]
async fn whatsip_registers_to_the_pbx() {
    let pbx = Sipp::spawn(&scenario("pbx_registrar.xml"), "", &["-key", "reg_user", "whatsip", "-key", "reg_pass", "trunk-secret"], SECS(20)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.extra = trunk_toml("pbx", pbx.local_port(), "register = true\nregister_expires = 300\n");
    let gw = Gateway::start(&cfg);
    let state = gw.wait_trunk_state("registered", SECS(10)).await;
    assert_eq!(state["state"], "registered", "{state}\n{}", gw.log_tail());
    let (code, out, _) = gw.cli(&["trunks"]);
    assert_eq!(code, 0);
    assert!(out.contains("pbx") && out.contains("registered"), "{out}");
    drop(gw);
    pbx.wait().await.unwrap().assert_success();
}

#[tokio::test]
async fn a_refused_registration_backs_off_and_says_why() {
    // Nothing listens on the PBX's address: no answer, then back-off.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    let dead = common::ports::free_udp_port();
    cfg.extra = trunk_toml("pbx", dead, "register = true\n");
    let gw = Gateway::start(&cfg);
    let state = gw.wait_trunk_state("failed", SECS(40)).await;
    assert_eq!(state["state"], "failed", "{state}");
    assert_eq!(state["retry_in"], 5, "{state}");
}

#[test]
fn invites_from_the_pbx_are_authenticated_by_source_or_digest() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.extra = trunk_toml("trusted", 5999, "accept_inbound = true\ninbound_sources = [\"127.0.0.1\"]\n");
    let gw = Gateway::start(&cfg);
    let pbx = RawSip::new(gw.sip);
    pbx.send(&pbx.invite_msg("2001", "+447700900123", "in-1", None));
    let r = pbx.recv_final("in-1").unwrap();
    assert_eq!(r.code, 480, "trusted source is accepted, then told outbound calling is off: {}", r.text);
    drop(gw);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.extra = trunk_toml("digest", 5999, "accept_inbound = true\ninbound_username = \"pbx-in\"\ninbound_password = \"pbx-in-secret\"\n");
    let gw = Gateway::start(&cfg);
    let pbx = RawSip::new(gw.sip);
    pbx.send(&pbx.invite_msg("2001", "+447700900123", "in-2", None));
    let r = pbx.recv_final("in-2").unwrap();
    assert_eq!(r.code, 407, "{}", r.text);
    let challenge = r.header("Proxy-Authenticate")[0].clone();
    let nonce = challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
    let uri = format!("sip:+447700900123@{}", gw.sip);
    let answer = |password: &str| {
        let resp = whatsip::sip::digest::client_response(whatsip::sip::digest::Algorithm::Md5, "pbx-in", "whatsip", password, "INVITE", &uri, nonce, None);
        format!("Digest username=\"pbx-in\", realm=\"whatsip\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5")
    };
    pbx.send(&pbx.invite_msg("2001", "+447700900123", "in-3", Some(&answer("pbx-in-secret"))));
    assert_eq!(pbx.recv_final("in-3").unwrap().code, 480);
    pbx.send(&pbx.invite_msg("2001", "+447700900123", "in-4", Some(&answer("wrong"))));
    assert_eq!(pbx.recv_final("in-4").unwrap().code, 403);
}
