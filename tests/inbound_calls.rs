//! Inbound WhatsApp calls end to end: the sandbox (a local Meta: signed webhooks, the Graph
//! calling endpoints with Meta's rules, a WhatsApp user's WebRTC peer) calls the real
//! `whatsip serve`, which rings a real baresip desk phone. Checked: the answered call's audio
//! both ways, the caller hanging up while the phone rings, the phone rejecting, and the call
//! records; Meta's rules must hold throughout (`sandbox.violations()` stays empty).

mod common;

use std::time::Duration;

use common::audio::{assert_tone, make_tone_wav};
use common::baresip::{AnswerMode, Baresip, BaresipOpts};
use common::gateway::{Gateway, GatewayConfig};
use whatsip::ids::{PhoneNumberId, WaId};
use whatsip::media::tone::dominant_frequency;
use whatsip::sandbox::{CallSpec, CallState, Sandbox, SandboxConfig, SandboxNumber};

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "sandbox-app-secret";
const ACCESS: &str = "sandbox-access-token";
const NUMBER_ID: &str = "106540352242922";
const USER_HZ: f64 = 1000.0;
const PHONE_HZ: f64 = 440.0;

struct Setup {
    dir: tempfile::TempDir,
    gw: Gateway,
    sandbox: Sandbox,
}

/// The sandbox first (its Graph URL goes into the gateway's config), then the gateway, whose
/// webhook port was chosen up front.
async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    let numbers = vec![SandboxNumber { phone_number_id: PhoneNumberId::new(NUMBER_ID), display_number: "+15550100".into() }];
    let webhook_url = format!("http://127.0.0.1:{}/webhook", cfg.webhook_port);
    let sandbox = Sandbox::start(SandboxConfig::local(webhook_url, SECRET, ACCESS, numbers)).await.expect("sandbox starts");
    cfg.whatsapp_extra = format!(
        "app_secret = \"{SECRET}\"\nverify_token = \"verify-me\"\naccess_token = \"{ACCESS}\"\ngraph_base_url = \"{}\"\n",
        sandbox.graph_base_url()
    );
    cfg.extra = format!("[[whatsapp.numbers]]\nphone_number_id = \"{NUMBER_ID}\"\ndisplay_number = \"+15550100\"\ntarget = \"1001\"\n");
    let gw = Gateway::start(&cfg);
    Setup { dir, gw, sandbox }
}

async fn desk_phone(s: &Setup, mode: AnswerMode) -> Baresip {
    let wav = s.dir.path().join("phone-tone.wav");
    make_tone_wav(&wav, PHONE_HZ, 60.0).unwrap();
    let workdir = s.dir.path().join("phone");
    std::fs::create_dir_all(&workdir).unwrap();
    let mut p = Baresip::start(BaresipOpts::new("1001", &wav).registrar(&s.gw.sip.to_string(), "secret1001").answermode(mode).workdir(&workdir))
        .await
        .unwrap();
    p.wait_registered(WAIT).await.unwrap();
    p
}

fn call_spec(name: &str) -> CallSpec {
    let mut spec = CallSpec::new(PhoneNumberId::new(NUMBER_ID));
    spec.from = WaId::new("15551234567");
    spec.name = Some(name.to_owned());
    spec
}

/// The newest call record, once the gateway has written it.
async fn last_call(gw: &Gateway) -> serde_json::Value {
    for _ in 0..100 {
        let calls = gw.api_get("/api/calls?limit=1");
        if let Some(c) = calls.as_array().and_then(|a| a.first()) {
            return c.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no call record\n{}", gw.log_tail());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whatsapp_call_rings_the_desk_phone_and_both_hear_each_other() {
    let s = setup().await;
    let mut desk = desk_phone(&s, AnswerMode::Auto).await;
    let call = s.sandbox.place_call(call_spec("Alice")).await.expect("call placed");

    let established = desk.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    // The desk phone shows who calls: the WhatsApp profile name and number.
    let shown = established.raw.to_string();
    assert!(shown.contains("15551234567") && shown.contains("Alice"), "{shown}");
    call.wait_for_state(CallState::Accepted, WAIT).await.unwrap_or_else(|e| panic!("not accepted: {e:?}\n{}", s.gw.log_tail()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = call.hang_up().await.expect("the user hangs up");
    desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();

    // The user heard the phone's 440 Hz; the phone heard the user's 1000 Hz.
    let heard = &report.heard;
    let (hz, dbfs) = dominant_frequency(&heard.pcm, heard.rate, 100.0, 3800.0).expect("the user heard something");
    eprintln!("user heard {hz:.1} Hz at {dbfs:.1} dBFS in {} packets", heard.audio_packets);
    assert!((f64::from(hz) - PHONE_HZ).abs() < PHONE_HZ * 0.03 && dbfs > -40.0, "user heard {hz} Hz at {dbfs} dBFS\n{}", s.gw.log_tail());
    assert_tone(&desk.received_wav().unwrap(), USER_HZ);

    let actions: Vec<String> = call.actions().iter().map(|a| format!("{:?}", a.action)).collect();
    eprintln!("Graph actions: {actions:?}");
    assert!(s.sandbox.violations().is_empty(), "Meta's rules broken: {:?}", s.sandbox.violations());

    let record = last_call(&s.gw).await;
    eprintln!("call record: {record}");
    assert_eq!(record["outcome"], "answered", "{record}");
    assert_eq!(record["ended_by"], "caller", "{record}");
    assert_eq!(record["user"], "15551234567");
    assert_eq!(record["user_name"], "Alice");
    assert!(record["answered_by"].as_str().unwrap().contains("1001"), "{record}");
    assert!(record["answered_at"].as_u64().unwrap() >= record["offered_at"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_hanging_up_while_the_phone_rings_stops_it_and_is_missed() {
    let s = setup().await;
    let mut desk = desk_phone(&s, AnswerMode::Manual).await;
    let call = s.sandbox.place_call(call_spec("Bob")).await.expect("call placed");
    desk.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    call.wait_for_state(CallState::PreAccepted, WAIT).await.expect("pre_accepted while ringing");
    call.hang_up().await.expect("the user hangs up");
    // The phone stops ringing (CANCEL).
    desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    let record = last_call(&s.gw).await;
    assert_eq!((record["outcome"].as_str(), record["reason"].as_str()), (Some("missed"), Some("caller_hung_up")), "{record}");
    assert!(record["answered_at"].is_null(), "{record}");
    assert!(s.sandbox.violations().is_empty(), "{:?}", s.sandbox.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_rejects_makes_the_gateway_reject_the_call() {
    let s = setup().await;
    let mut desk = desk_phone(&s, AnswerMode::Manual).await;
    let call = s.sandbox.place_call(call_spec("Carol")).await.expect("call placed");
    desk.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    // baresip's hangup on an incoming call answers it 486 Busy Here.
    desk.hangup().await.unwrap();
    call.wait_for_state(CallState::Rejected, WAIT).await.unwrap_or_else(|e| panic!("Meta got no reject: {e:?}\n{}", s.gw.log_tail()));
    let record = last_call(&s.gw).await;
    assert_eq!(record["outcome"], "rejected", "{record}");
    assert!(s.sandbox.violations().is_empty(), "{:?}", s.sandbox.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_badly_signed_webhook_is_refused_and_starts_nothing() {
    let s = setup().await;
    let sender = s.sandbox.webhooks();
    let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
    let status = sender.send_badly_signed(body).await.expect("the gateway answers");
    assert_eq!(status, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.gw.api_get("/api/calls").as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_delivered_twice_rings_once_and_makes_one_record() {
    let s = setup().await;
    let mut desk = desk_phone(&s, AnswerMode::Manual).await;
    let mut spec = call_spec("Dave");
    spec.connect_copies = 2;
    let call = s.sandbox.place_call(spec).await.expect("call placed");
    desk.wait_event("CALL_INCOMING", WAIT).await.unwrap();
    call.wait_for_state(CallState::PreAccepted, WAIT).await.expect("pre_accepted");
    // A second call from the duplicate would ring the phone again.
    assert!(desk.wait_event("CALL_INCOMING", Duration::from_secs(2)).await.is_err(), "the duplicate rang the phone again");
    desk.accept().await.unwrap();
    call.wait_for_state(CallState::Accepted, WAIT).await.expect("accepted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    desk.hangup().await.unwrap();
    call.wait_for_state(CallState::Terminated, WAIT).await.expect("the gateway terminated");
    let calls = {
        let mut calls = serde_json::Value::Null;
        for _ in 0..50 {
            calls = s.gw.api_get("/api/calls");
            if !calls.as_array().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        calls
    };
    let calls = calls.as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((calls[0]["outcome"].as_str(), calls[0]["ended_by"].as_str()), (Some("answered"), Some("phone")));
    let actions: Vec<String> = call.actions().iter().map(|a| format!("{:?}", a.action)).collect();
    assert_eq!(actions.iter().filter(|a| a.contains("Accept") && !a.contains("Pre")).count(), 1, "{actions:?}");
    assert!(s.sandbox.violations().is_empty(), "{:?}", s.sandbox.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_answering_at_once_only_one_gets_the_call() {
    let s = setup().await;
    let mut first = desk_phone(&s, AnswerMode::Auto).await;
    let wav = s.dir.path().join("second-tone.wav");
    make_tone_wav(&wav, 700.0, 60.0).unwrap();
    let workdir = s.dir.path().join("phone2");
    std::fs::create_dir_all(&workdir).unwrap();
    let mut second = Baresip::start(BaresipOpts::new("1001", &wav).registrar(&s.gw.sip.to_string(), "secret1001").answermode(AnswerMode::Auto).workdir(&workdir))
        .await
        .unwrap();
    second.wait_registered(WAIT).await.unwrap();

    let call = s.sandbox.place_call(call_spec("Erin")).await.expect("call placed");
    call.wait_for_state(CallState::Accepted, WAIT).await.expect("accepted");
    // Both auto-answer; the one whose 200 came second is ACKed and ended with BYE (RFC 3261
    // §13.2.2.4) and never bridged.
    let a = first.wait_event("CALL_ESTABLISHED", WAIT).await.is_ok();
    let b = second.wait_event("CALL_ESTABLISHED", WAIT).await.is_ok();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = call.hang_up().await.expect("the user hangs up");
    let record = last_call(&s.gw).await;
    let winner = record["answered_by"].as_str().unwrap().to_owned();
    eprintln!("established: {a} {b}; answered by {winner}");
    let (won, lost, won_hz) = if winner.contains(&first.sip_addr().port().to_string()) {
        (&mut first, &mut second, PHONE_HZ)
    } else {
        (&mut second, &mut first, 700.0)
    };
    // The loser's call closed long before the user hung up; the winner's with the hang-up.
    lost.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    won.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    let heard = &report.heard;
    let (hz, _) = dominant_frequency(&heard.pcm, heard.rate, 100.0, 3800.0).unwrap();
    assert!((f64::from(hz) - won_hz).abs() < won_hz * 0.03, "the user heard {hz} Hz, not the winner's {won_hz}");
    assert_eq!(record["outcome"], "answered");
    assert!(s.sandbox.violations().is_empty(), "{:?}", s.sandbox.violations());
}

/// A PBX behind a trunk: takes one INVITE, keeps its text, answers 486 Busy Here.
async fn busy_pbx(socket: tokio::net::UdpSocket) -> String {
    let mut buf = vec![0u8; 8192];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await.unwrap();
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        if !msg.starts_with("INVITE ") {
            continue;
        }
        let pick = |name: &str| -> Vec<String> {
            msg.lines()
                .filter(|l| l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase())))
                .map(|l| l.to_owned())
                .collect()
        };
        let mut reply = String::from("SIP/2.0 486 Busy Here\r\n");
        for line in pick("Via").iter().chain(&pick("From")).chain(&pick("Call-ID")).chain(&pick("CSeq")) {
            reply.push_str(line);
            reply.push_str("\r\n");
        }
        for to in pick("To") {
            reply.push_str(&format!("{to};tag=pbx\r\n"));
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        socket.send_to(reply.as_bytes(), from).await.unwrap();
        return msg;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_extension_gets_the_caller_and_the_payloads_and_its_busy_rejects_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let pbx = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pbx_addr = pbx.local_addr().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    let numbers = vec![SandboxNumber { phone_number_id: PhoneNumberId::new(NUMBER_ID), display_number: "+15550100".into() }];
    let webhook_url = format!("http://127.0.0.1:{}/webhook", cfg.webhook_port);
    let sandbox = Sandbox::start(SandboxConfig::local(webhook_url, SECRET, ACCESS, numbers)).await.unwrap();
    cfg.whatsapp_extra = format!(
        "app_secret = \"{SECRET}\"\nverify_token = \"verify-me\"\naccess_token = \"{ACCESS}\"\ngraph_base_url = \"{}\"\n",
        sandbox.graph_base_url()
    );
    cfg.extra = format!(
        "[[sip.trunks]]\nname = \"pbx\"\naddress = \"{pbx_addr}\"\n\
         [[whatsapp.numbers]]\nphone_number_id = \"{NUMBER_ID}\"\ndisplay_number = \"+15550100\"\ntarget = \"trunk:pbx/2001\"\n"
    );
    let gw = Gateway::start(&cfg);
    let invite = tokio::spawn(busy_pbx(pbx));

    let mut spec = call_spec("Frank");
    spec.deeplink_payload = Some("order-4711\r\nX-Injected: yes".into());
    spec.cta_payload = Some("support button".into());
    let call = sandbox.place_call(spec).await.expect("call placed");
    let invite = tokio::time::timeout(WAIT, invite).await.expect("INVITE at the PBX").unwrap();
    eprintln!("{invite}");
    assert!(invite.starts_with("INVITE sip:2001@"), "{invite}");
    let from = invite.lines().find(|l| l.starts_with("From:")).unwrap();
    assert!(from.contains("Frank") && from.contains("sip:15551234567@"), "{from}");
    assert!(invite.contains(&format!("X-WhatsApp-Call-Id: {}\r\n", call.call_id())), "{invite}");
    assert!(invite.contains("X-WhatsApp-CTA-Payload: support button\r\n"), "{invite}");
    // The payload comes from outside: its line break must not become a header of its own.
    assert!(invite.contains("X-WhatsApp-Deeplink-Payload: order-4711  X-Injected: yes\r\n"), "{invite}");
    assert!(!invite.contains("\r\nX-Injected"), "{invite}");

    call.wait_for_state(CallState::Rejected, WAIT).await.unwrap_or_else(|e| panic!("{e:?}\n{}", gw.log_tail()));
    let record = last_call(&gw).await;
    assert_eq!((record["outcome"].as_str(), record["reason"].as_str()), (Some("rejected"), Some("busy")), "{record}");
    assert!(sandbox.violations().is_empty(), "{:?}", sandbox.violations());
}

/// The same answered call with aiortc (a WebRTC stack we did not write) as the WhatsApp user:
/// the sandbox still plays Meta's signalling, aiortc's offer goes in the connect webhook and
/// our answer from `pre_accept` goes back to aiortc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_call_with_aiortc_as_the_whatsapp_user() {
    let s = setup().await;
    let mut desk = desk_phone(&s, AnswerMode::Auto).await;
    let heard_by_user = s.dir.path().join("aiortc-heard.wav");
    let mut user = common::meta_peer::MetaPeer::start();
    user.send(serde_json::json!({"cmd": "offer", "tone_hz": USER_HZ, "record": heard_by_user})).await;
    let offer = user.wait("offer", WAIT).await["sdp"].as_str().unwrap().to_string();

    let call = s.sandbox.place_call_with_offer(call_spec("Grace"), &offer).await.expect("call placed");
    let mut answer = None;
    for _ in 0..200 {
        answer = call.actions().into_iter().find(|a| a.succeeded() && a.sdp.is_some()).and_then(|a| a.sdp);
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = answer.unwrap_or_else(|| panic!("no pre_accept with our answer\n{}", s.gw.log_tail()));
    user.send(serde_json::json!({"cmd": "answer", "sdp": answer})).await;
    user.wait("connected", WAIT).await;
    desk.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    call.wait_for_state(CallState::Accepted, WAIT).await.expect("accepted");
    // The WhatsApp client talks once the call is accepted.
    user.send(serde_json::json!({"cmd": "unmute"})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    call.hang_up().await.expect("the user hangs up");
    desk.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    user.send(serde_json::json!({"cmd": "close"})).await;
    user.wait("closed", WAIT).await;
    let _ = user.child.wait().await;

    assert_tone(&heard_by_user, PHONE_HZ);
    assert_tone(&desk.received_wav().unwrap(), USER_HZ);
    let record = last_call(&s.gw).await;
    assert_eq!((record["outcome"].as_str(), record["ended_by"].as_str()), (Some("answered"), Some("caller")), "{record}");
    assert!(s.sandbox.violations().is_empty(), "{:?}", s.sandbox.violations());
}
