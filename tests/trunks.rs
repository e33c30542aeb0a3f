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

fn invite(from: &RawSip, call_id: &str, auth: Option<&str>) -> String {
    let auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
    let sdp = "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:+447700900123@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK{b:x}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:2001@{local}>;tag={t:x}\r\n\
         To: <sip:+447700900123@{server}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:2001@{local}>\r\n\
         {auth}\
         Content-Type: application/sdp\r\n\
         Content-Length: {len}\r\n\r\n{sdp}",
        server = from.server,
        local = from.local,
        b = common::sip_client::rand_u64(),
        t = common::sip_client::rand_u64(),
        len = sdp.len(),
    )
}

#[test]
fn invites_from_the_pbx_are_authenticated_by_source_or_digest() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.extra = trunk_toml("trusted", 5999, "accept_inbound = true\ninbound_sources = [\"127.0.0.1\"]\n");
    let gw = Gateway::start(&cfg);
    let pbx = RawSip::new(gw.sip);
    pbx.send(&invite(&pbx, "in-1", None));
    let r = pbx.recv_final("in-1").unwrap();
    assert_eq!(r.code, 480, "trusted source is accepted, then told outbound calling is off: {}", r.text);
    drop(gw);

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.extra = trunk_toml("digest", 5999, "accept_inbound = true\ninbound_username = \"pbx-in\"\ninbound_password = \"pbx-in-secret\"\n");
    let gw = Gateway::start(&cfg);
    let pbx = RawSip::new(gw.sip);
    pbx.send(&invite(&pbx, "in-2", None));
    let r = pbx.recv_final("in-2").unwrap();
    assert_eq!(r.code, 407, "{}", r.text);
    let challenge = r.header("Proxy-Authenticate")[0].clone();
    let nonce = challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
    let uri = format!("sip:+447700900123@{}", gw.sip);
    let answer = |password: &str| {
        let resp = whatsip::sip::digest::client_response(whatsip::sip::digest::Algorithm::Md5, "pbx-in", "whatsip", password, "INVITE", &uri, nonce, None);
        format!("Digest username=\"pbx-in\", realm=\"whatsip\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\", algorithm=MD5")
    };
    pbx.send(&invite(&pbx, "in-3", Some(&answer("pbx-in-secret"))));
    assert_eq!(pbx.recv_final("in-3").unwrap().code, 480);
    pbx.send(&invite(&pbx, "in-4", Some(&answer("wrong"))));
    assert_eq!(pbx.recv_final("in-4").unwrap().code, 403);
}
