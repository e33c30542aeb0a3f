//! The registrar against raw SIP over UDP: digest auth, several contacts, expiry rules,
//! throttling, malformed input, and registrations surviving a restart.

mod common;

use common::gateway::{Gateway, GatewayConfig};
use common::sip_client::RawSip;

fn gateway() -> (tempfile::TempDir, Gateway) {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&GatewayConfig::new(&dir.path().join("data")));
    (dir, gw)
}

#[test]
fn register_with_digest_lists_contacts_and_survives_restart() {
    let (_dir, mut gw) = gateway();
    let phone_a = RawSip::new(gw.sip);
    let phone_b = RawSip::new(gw.sip);
    let r = phone_a.register("1001", "secret1001", 300).expect("answer");
    assert_eq!(r.code, 200, "{}", r.text);
    let r = phone_b.register("1001", "secret1001", 600).expect("answer");
    assert_eq!(r.code, 200, "{}", r.text);
    let contacts = r.header("Contact").join(",");
    assert!(contacts.contains(&phone_a.local.to_string()) && contacts.contains(&phone_b.local.to_string()), "both contacts listed: {contacts}");
    assert_eq!(gw.api_get("/api/registrations").as_array().unwrap().len(), 2);

    gw.restart();
    assert_eq!(gw.registered_users(), ["1001"], "registrations kept across a restart");
    assert_eq!(gw.api_get("/api/registrations").as_array().unwrap().len(), 2);

    let r = phone_a.register("1001", "secret1001", 0).expect("answer");
    assert_eq!(r.code, 200);
    let list = gw.api_get("/api/registrations");
    assert_eq!(list.as_array().unwrap().len(), 1, "Expires: 0 removed one contact: {list}");
    let (code, out, _) = gw.cli(&["registrations"]);
    assert_eq!(code, 0);
    assert!(out.contains("1001") && out.contains(&phone_b.local.to_string()), "{out}");
}

#[test]
fn wrong_password_is_refused_then_the_source_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.sip_extra = "auth_block_seconds = 2\n".into();
    let gw = Gateway::start(&cfg);
    let phone = RawSip::new(gw.sip);
    for _ in 0..3 {
        let r = phone.register("1001", "guess", 300).expect("answer");
        assert_eq!(r.code, 403, "{}", r.text);
    }
    // Blocked now, even with the right password, and told when to come back.
    let r = phone.register("1001", "secret1001", 300).expect("answer");
    assert_eq!(r.code, 403, "{}", r.text);
    assert!(!r.header("Retry-After").is_empty(), "{}", r.text);
    assert!(gw.registered_users().is_empty());
    assert!(gw.log().contains("authentication failed"));
    // The block lifts after auth_block_seconds (2 s in this test).
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(phone.register("1002", "secret1002", 300).unwrap().code, 200);
}

#[test]
fn sha256_digest_registers_when_offered_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.sip_extra = "auth_algorithms = [\"SHA-256\"]\n".into();
    let gw = Gateway::start(&cfg);
    let phone = RawSip::new(gw.sip);
    let r = phone.register("1001", "secret1001", 300).unwrap();
    assert_eq!(r.code, 200, "{}", r.text);
    assert!(gw.log().contains("registered"));
}

#[test]
fn unknown_user_and_too_short_expiry() {
    let (_dir, gw) = gateway();
    let phone = RawSip::new(gw.sip);
    assert_eq!(phone.register("9999", "whatever", 300).unwrap().code, 403);
    let r = phone.register("1002", "secret1002", 10).unwrap();
    assert_eq!(r.code, 423, "{}", r.text);
    assert_eq!(r.header("Min-Expires"), ["60"]);
}

#[test]
fn options_is_answered_and_malformed_requests_get_400() {
    let (_dir, mut gw) = gateway();
    let probe = RawSip::new(gw.sip);
    let r = probe.options().expect("OPTIONS answered");
    assert_eq!(r.code, 200);
    assert!(r.header("Allow").join(",").contains("INVITE"), "{}", r.text);

    // Garbage that is not SIP at all: dropped, and the gateway keeps serving.
    probe.send("\u{1}\u{2}garbage\r\n\r\n");
    probe.send("INVITE\r\n\r\n");

    let bad = format!(
        "INVITE sip:1001@{server} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bKbad1\r\n\
         Max-Forwards: abc\r\n\
         From: <sip:x@{local}>;tag=1\r\n\
         To: <sip:1001@{server}>\r\n\
         Call-ID: malformed-1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <<<sip:nothing\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: 9\r\n\r\nnot sdp!!",
        server = gw.sip,
        local = probe.local
    );
    probe.send(&bad);
    let r = probe.recv_final("malformed-1").expect("malformed INVITE answered");
    assert_eq!(r.code, 400, "{}", r.text);

    let no_contact = bad.replace("Max-Forwards: abc", "Max-Forwards: 70").replace("Contact: <<<sip:nothing\r\n", "").replace("malformed-1", "malformed-2").replace("z9hG4bKbad1", "z9hG4bKbad2");
    probe.send(&no_contact);
    assert_eq!(probe.recv_final("malformed-2").unwrap().code, 400);

    assert_eq!(probe.options().expect("still serving").code, 200);
    assert!(gw.is_running());
}

#[test]
fn json_logs_carry_the_sip_span() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.env = vec![("WHATSIP_LOG__FORMAT".into(), "json".into())];
    let gw = Gateway::start(&cfg);
    assert_eq!(RawSip::new(gw.sip).register("1001", "secret1001", 300).unwrap().code, 200);
    let log = gw.log();
    let registered = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "registered")
        .unwrap_or_else(|| panic!("no JSON 'registered' line in:\n{log}"));
    assert_eq!(registered["fields"]["user"], "1001");
    assert_eq!(registered["span"]["method"], "REGISTER", "{registered}");
}
