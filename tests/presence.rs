//! Do-not-disturb against the real gateway: a baresip phone dials *78 / *79 and sees the new
//! state, feature codes are digest-authenticated like any INVITE (never trusted by source), and
//! the admin API and CLI set it, list it, refuse unknown users and bad bodies, and the mark
//! survives a restart.

mod common;

use common::audio::make_tone_wav;
use common::baresip::{Baresip, BaresipOpts};
use common::gateway::{Gateway, GatewayConfig, TOKEN};
use common::sip_client::{rand_u64, RawSip, SipResponse};
use serde_json::Value;
use std::time::Duration;
use whatsip::sip::digest::{client_response, Algorithm};

const WAIT: Duration = Duration::from_secs(15);

/// The `/api/users` entry for `user`.
fn user_entry(gw: &Gateway, user: &str) -> Value {
    let list = gw.api_get("/api/users");
    list.as_array()
        .unwrap()
        .iter()
        .find(|u| u["user"] == user)
        .unwrap_or_else(|| panic!("{user} not in {list}"))
        .clone()
}

#[tokio::test]
async fn a_phone_dials_star_78_and_star_79() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&GatewayConfig::new(&dir.path().join("data")));
    let before = user_entry(&gw, "1001");
    assert_eq!((before["registered"].clone(), before["dnd"].clone()), (Value::Bool(false), Value::Bool(false)), "{before}");

    let wav = dir.path().join("mic.wav");
    make_tone_wav(&wav, 440.0, 60.0).unwrap();
    let mut desk = Baresip::start(BaresipOpts::new("1001", &wav).registrar(&gw.sip.to_string(), "secret1001")).await.unwrap();
    desk.wait_registered(WAIT).await.unwrap();
    let registered = user_entry(&gw, "1001");
    assert_eq!(registered["registered"], true, "{registered}");
    assert_eq!(registered["contacts"].as_array().unwrap().len(), 1, "{registered}");

    // baresip answers the gateway's 407 with the account's password, as for any call.
    desk.dial(&format!("sip:*78@{}", gw.sip)).await.unwrap();
    let closed = desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    assert_eq!(closed.param.as_deref(), Some("480 Do Not Disturb On"), "the phone shows the new state: {}", closed.raw);
    let on = user_entry(&gw, "1001");
    assert_eq!((on["dnd"].clone(), on["registered"].clone()), (Value::Bool(true), Value::Bool(true)), "{on}");
    assert_eq!(user_entry(&gw, "1002")["dnd"], false, "only the caller's own DND changes");

    desk.dial(&format!("sip:*79@{}", gw.sip)).await.unwrap();
    let closed = desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    assert_eq!(closed.param.as_deref(), Some("480 Do Not Disturb Off"), "{}", closed.raw);
    assert_eq!(user_entry(&gw, "1001")["dnd"], false);
    let log = gw.log();
    assert_eq!(log.matches("do-not-disturb set from the phone").count(), 2, "each change is logged");
    desk.stop().await.unwrap();
}

/// Sends an unauthenticated INVITE to `target`, expects the 407, answers it as `user` with
/// `password`, and returns the final response to that second INVITE.
fn invite_with_digest(sip: &RawSip, target: &str, user: &str, password: &str) -> SipResponse {
    let call_id = format!("{:x}@test", rand_u64());
    sip.send(&sip.invite_msg("1001", target, &call_id, None));
    let challenge = sip.recv_final(&call_id).expect("answer");
    assert_eq!(challenge.code, 407, "challenged, whatever the source address: {}", challenge.text);
    let header = challenge.header("Proxy-Authenticate")[0].clone();
    let nonce = header.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap();
    let uri = format!("sip:{target}@{}", sip.server);
    let response = client_response(Algorithm::Md5, user, "whatsip", password, "INVITE", &uri, nonce, None);
    let auth = format!("Digest username=\"{user}\", realm=\"whatsip\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5");
    let call_id = format!("{:x}@test", rand_u64());
    sip.send(&sip.invite_msg("1001", target, &call_id, Some(&auth)));
    sip.recv_final(&call_id).expect("answer")
}

#[test]
fn feature_codes_are_digest_authenticated_even_from_a_trusted_pbx_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    // A PBX trusted by address on 127.0.0.1, where the "phone" below also sends from: the
    // address vouches for the PBX, not for user 1001, so the feature code is still challenged.
    cfg.extra = "[[sip.trunks]]\nname = \"pbx\"\naddress = \"127.0.0.1:5999\"\naccept_inbound = true\n\
                 inbound_sources = [\"127.0.0.1\"]\ninbound_username = \"pbx-in\"\ninbound_password = \"pbx-in-secret\"\n"
        .into();
    let gw = Gateway::start(&cfg);
    let phone = RawSip::new(gw.sip);

    let r = invite_with_digest(&phone, "*78", "1001", "wrong-password");
    assert_eq!(r.code, 403, "{}", r.text);
    assert_eq!(user_entry(&gw, "1001")["dnd"], false, "not applied without the right password");

    let r = invite_with_digest(&phone, "*78", "pbx-in", "pbx-in-secret");
    assert_eq!(r.code, 403, "a trunk is not a user: {}", r.text);
    assert!(r.text.starts_with("SIP/2.0 403 Feature codes are for whatsip users"), "{}", r.text);

    let r = invite_with_digest(&phone, "*78", "1001", "secret1001");
    assert_eq!(r.code, 480, "{}", r.text);
    assert!(r.text.starts_with("SIP/2.0 480 Do Not Disturb On\r\n"), "{}", r.text);
    assert_eq!(user_entry(&gw, "1001")["dnd"], true);

    // Other numbers from the trusted address are still taken on trust, as before.
    let call_id = format!("{:x}@test", rand_u64());
    phone.send(&phone.invite_msg("1001", "+447700900123", &call_id, None));
    let r = phone.recv_final(&call_id).unwrap();
    assert!(r.text.starts_with("SIP/2.0 480 WhatsApp calling from phones is not enabled"), "{}", r.text);
}

#[test]
fn admin_sets_dnd_from_the_cli_it_survives_a_restart_and_mistakes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(&GatewayConfig::new(&dir.path().join("data")));

    let (code, out, err) = gw.cli(&["dnd", "1001", "on"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1001: do-not-disturb on"), "{out}");
    let (code, out, err) = gw.cli(&["users"]);
    assert_eq!(code, 0, "{out}{err}");
    let row = |user: &str| out.lines().find(|l| l.starts_with(user)).unwrap_or_else(|| panic!("no {user} in {out}")).split_whitespace().collect::<Vec<_>>();
    assert_eq!(row("1001"), ["1001", "no", "yes", "no", "-"], "user, registered, dnd, busy, contacts:\n{out}");
    assert_eq!(row("1002"), ["1002", "no", "no", "no", "-"], "{out}");

    gw.restart();
    assert_eq!(user_entry(&gw, "1001")["dnd"], true, "kept across a restart");
    let (code, out, _) = gw.cli(&["dnd", "1001", "off"]);
    assert_eq!((code, out.trim()), (0, "1001: do-not-disturb off: this user rings again"));
    assert_eq!(user_entry(&gw, "1001")["dnd"], false);

    let (code, out, err) = gw.cli(&["dnd", "9999", "on"]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("no user 9999"), "{err}");
    let (status, body) = gw.api_request("PUT", "/api/users/9999/dnd", Some(r#"{"on": true}"#), Some(TOKEN));
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("9999"), "{body}");

    for bad in [r#"{"on": "yes"}"#, "not json", "{}", r#"{"on": true, "for": 60}"#] {
        let (status, body) = gw.api_request("PUT", "/api/users/1001/dnd", Some(bad), Some(TOKEN));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
    let (status, body) = gw.api_request("PUT", "/api/users/1001/dnd", Some(r#"{"on": true}"#), Some(TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, serde_json::json!({"user": "1001", "registered": false, "contacts": [], "dnd": true, "busy": false}));

    for (method, path) in [("GET", "/api/users"), ("PUT", "/api/users/1001/dnd")] {
        let (status, _) = gw.api_request(method, path, Some(r#"{"on": false}"#), None);
        assert_eq!(status, 401, "{method} {path} without the token");
        let (status, _) = gw.api_request(method, path, Some(r#"{"on": false}"#), Some("wrong-token-0123456789"));
        assert_eq!(status, 401, "{method} {path} with a wrong token");
    }
    assert_eq!(user_entry(&gw, "1001")["dnd"], true, "refused requests changed nothing");
}
