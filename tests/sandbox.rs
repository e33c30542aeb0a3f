//! The sandbox (a local Meta) against the gateway's real pieces, with this test playing the
//! call logic: whatsip's webhook server takes the sandbox's signed webhooks, our Graph client
//! acts on the sandbox's Graph API, and our WebRTC leg answers the WhatsApp user's offer.
//! All on 127.0.0.1.
//!
//! A user calls → the Connect event arrives → our leg answers → pre_accept → accept → the user
//! talks only after accept → the user hangs up → the Terminate event arrives, answered. Then
//! Meta's rules: accept with another SDP, a wrong token, an unknown call id, a wrong sdp_type;
//! and the webhook side: a badly signed webhook takes nothing, a duplicated connect is delivered
//! twice, and a reordered terminate overtakes its connect.
//!
//! Waits have generous limits that only guard against hangs; nothing asserts a duration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::timeout;
use whatsip::ids::{CallId, PhoneNumberId, WaId};
use whatsip::media::opus::{OpusEncoder, MAX_PACKET};
use whatsip::media::tone::{dominant_frequency, sine};
use whatsip::media::webrtc_leg::{answer_offer, WebRtcConfig, WebRtcEvent, WebRtcLeg};
use whatsip::sandbox::webhooks::{connect_body, terminate_body, ConnectWebhook, TerminateWebhook};
use whatsip::sandbox::{
    AudioSource, CallSpec, CallState, Party, Rule, Sandbox, SandboxCall, SandboxConfig, SandboxNumber,
};
use whatsip::whatsapp::webhook::{server_with, WebhookConfig};
use whatsip::whatsapp::{
    Action, CallAnswer, CallConnect, ErrorCode, GraphClient, GraphConfig, GraphError, IngressConfig, Sdp, SdpType,
    TerminateStatus, WaEvent,
};

mod common;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const VERIFY: &str = "verify-me-please";
const TOKEN: &str = "EAAG-sandbox-test-token";
const NUMBER: &str = "106540352242922";
const DISPLAY: &str = "+1 555 000 9999";
const STEP: Duration = Duration::from_secs(15);
const OPUS_PT: u8 = 111;
const USER_HZ: f32 = 1000.0;
const BUSINESS_HZ: f32 = 440.0;

/// The gateway's side, minus the call logic: the webhook server's events and a Graph client.
struct Gateway {
    events: mpsc::Receiver<WaEvent>,
    webhook: actix_web::dev::ServerHandle,
    graph: GraphClient,
}

impl Gateway {
    async fn next_event(&mut self) -> WaEvent {
        timeout(STEP, self.events.recv()).await.expect("a webhook event").expect("the sink is open")
    }

    async fn next_connect(&mut self) -> CallConnect {
        match self.next_event().await {
            WaEvent::Connect(c) => c,
            other => panic!("expected a connect, got {other:?}"),
        }
    }

    async fn stop(self) {
        self.webhook.stop(true).await;
    }
}

fn phone() -> PhoneNumberId {
    PhoneNumberId::new(NUMBER)
}

fn graph_client(base_url: String, token: &str) -> GraphClient {
    GraphClient::new(GraphConfig {
        base_url,
        api_version: "v23.0".into(),
        access_token: token.into(),
        timeout: Duration::from_secs(10),
        retries: 0,
        retry_backoff: Duration::from_millis(100),
    })
    .unwrap()
}

async fn start() -> (Sandbox, Gateway) {
    let (tx, events) = mpsc::channel(64);
    let server = server_with(
        WebhookConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            path: "/webhook".into(),
            app_secret: SECRET.into(),
            verify_token: VERIFY.into(),
            tls: None,
            numbers: [phone()].into_iter().collect(),
            ingress: IngressConfig::default(),
            queue: 64,
        },
        tx,
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/webhook", server.local_addr().port());
    let webhook = server.handle();
    tokio::spawn(server.run());
    let numbers = vec![SandboxNumber { phone_number_id: phone(), display_number: DISPLAY.into() }];
    let sandbox = Sandbox::start(SandboxConfig::local(url, SECRET, TOKEN, numbers)).await.unwrap();
    let graph = graph_client(sandbox.graph_base_url(), TOKEN);
    (sandbox, Gateway { events, webhook, graph })
}

fn leg_cfg() -> WebRtcConfig {
    let base = common::ports::free_udp_block(10);
    WebRtcConfig { bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), public_ip: None, port_min: base, port_max: base + 9 }
}

/// Our leg's answer to the user's offer in `connect`, ready for pre_accept/accept.
async fn answer(connect: &CallConnect) -> (WebRtcLeg, CallAnswer) {
    let (kind, offer) = connect.session.as_ref().expect("the user's offer");
    assert_eq!(*kind, SdpType::Offer);
    let (leg, sdp) = answer_offer(offer.as_str(), &leg_cfg()).await.expect("our leg answers");
    let answer = CallAnswer::new(connect.phone_number_id.clone(), connect.call_id.clone(), Sdp::new(sdp)).unwrap();
    (leg, answer)
}

fn user_calls() -> CallSpec {
    CallSpec { source: AudioSource::Tone { hz: USER_HZ, amplitude: 0.3 }, ..CallSpec::new(phone()) }
}

async fn placed(sandbox: &Sandbox, gateway: &mut Gateway, spec: CallSpec) -> (SandboxCall, CallConnect) {
    let call = sandbox.place_call(spec).await.expect("the gateway takes the connect webhook");
    let connect = gateway.next_connect().await;
    assert_eq!(&connect.call_id, call.call_id());
    (call, connect)
}

/// 1 s of a tone from our leg, paced at 20 ms.
async fn talk(leg: &WebRtcLeg) {
    let mut encoder = OpusEncoder::new(48_000, 1, 5, true, 5).unwrap();
    let tone = sine(BUSINESS_HZ, 48_000, 1.0, 0.3);
    let mut packet = [0u8; MAX_PACKET];
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for (i, pcm) in tone.chunks_exact(960).enumerate() {
        ticks.tick().await;
        let n = encoder.encode(pcm, &mut packet).unwrap();
        leg.send_audio(&packet[..n], 1000 + i as u32 * 960, i == 0).await.unwrap();
    }
}

fn meta_error(e: GraphError) -> (u16, whatsip::whatsapp::MetaError) {
    match e {
        GraphError::Meta { status, error, .. } => (status, *error),
        other => panic!("expected Meta's error envelope, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_call_from_connect_to_hang_up() {
    let (sandbox, mut gateway) = start().await;
    let (call, connect) = placed(&sandbox, &mut gateway, user_calls()).await;
    assert_eq!(connect.from, WaId::new("15550001111"));
    assert_eq!(connect.to, WaId::new("15550009999"));
    assert_eq!(connect.caller_name.as_deref(), Some("Sandbox User"));
    assert_eq!(connect.display_phone_number.as_deref(), Some("15550009999"));

    let (mut leg, answer) = answer(&connect).await;
    gateway.graph.pre_accept(&answer).await.expect("pre_accept");
    call.wait_for_state(CallState::PreAccepted, STEP).await.unwrap();
    match timeout(STEP, leg.events().recv()).await {
        Ok(Some(WebRtcEvent::Connected)) => {}
        other => panic!("our leg did not connect: {other:?}"),
    }
    call.wait_for_peer_connected(STEP).await.unwrap();
    // The user's peer sends nothing at all until accept (it is muted, not silent).
    assert!(leg.incoming().try_recv().is_err(), "the user talked before accept");

    gateway.graph.accept(&answer, Some("cdr-1")).await.expect("accept");
    call.wait_for_state(CallState::Accepted, STEP).await.unwrap();
    let first = timeout(STEP, leg.incoming().recv()).await.expect("the user talks after accept").unwrap();
    assert_eq!(first.payload_type, OPUS_PT);
    talk(&leg).await;

    let report = call.hang_up().await.unwrap();
    let heard = &report.heard;
    let (hz, dbfs) = dominant_frequency(&heard.pcm, heard.rate, 100.0, 3800.0).expect("the user heard something");
    println!("the user heard {hz:.1} Hz at {dbfs:.1} dBFS in {} packets", heard.audio_packets);
    assert!((hz - BUSINESS_HZ).abs() < 5.0 && dbfs > -30.0, "{hz} Hz at {dbfs} dBFS");
    assert!(report.sent.frames > 0);

    let WaEvent::Terminate(end) = gateway.next_event().await else { panic!("expected the terminate") };
    assert_eq!(&end.call_id, call.call_id());
    assert!(end.answered(), "start_time and duration, since it was answered");
    assert_eq!(end.status, Some(TerminateStatus::Completed));
    assert_eq!(end.biz_opaque_callback_data.as_deref(), Some("cdr-1"));

    let actions = call.actions();
    let kinds: Vec<_> = actions.iter().map(|a| a.action).collect();
    assert_eq!(kinds, vec![Some(Action::PreAccept), Some(Action::Accept)]);
    assert!(actions.iter().all(|a| a.succeeded() && a.sdp.as_deref() == Some(answer.sdp().as_str())));
    assert_eq!(call.progress().ended_by, Some(Party::User));
    assert_eq!(call.state(), CallState::Terminated);
    assert!(sandbox.violations().is_empty(), "{:?}", sandbox.violations());
    let labels: Vec<_> = sandbox.webhooks().deliveries().iter().map(|d| (d.label.clone(), d.status)).collect();
    let id = call.call_id().as_str();
    assert_eq!(labels, vec![(format!("connect {id}"), Some(200)), (format!("terminate {id}"), Some(200))]);

    // The call is over at Meta: no more accepting it.
    let e = gateway.graph.accept(&answer, None).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidParameter));
    leg.close().await;
    sandbox.stop().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_must_repeat_the_pre_accept_sdp_and_the_business_can_terminate() {
    let (sandbox, mut gateway) = start().await;
    let (call, connect) = placed(&sandbox, &mut gateway, user_calls()).await;
    let (leg, answer) = answer(&connect).await;
    gateway.graph.pre_accept(&answer).await.expect("pre_accept");

    // Same answer but for the session version on the o= line: still a valid answer, not the same.
    let text = answer.sdp().as_str();
    let o_line = text.lines().find(|l| l.starts_with("o=")).unwrap();
    let mut fields: Vec<String> = o_line.split(' ').map(str::to_owned).collect();
    fields[2] = (fields[2].parse::<u64>().unwrap() + 1).to_string();
    let bumped = fields.join(" ");
    let changed = CallAnswer::new(phone(), connect.call_id.clone(), Sdp::new(text.replacen(o_line, &bumped, 1))).unwrap();
    let (status, error) = meta_error(gateway.graph.accept(&changed, None).await.unwrap_err());
    assert_eq!((status, error.code), (400, ErrorCode::InvalidParameter));
    assert!(error.details.as_deref().unwrap_or_default().contains("differs from the pre_accept"), "{error}");
    assert!(error.fbtrace_id.is_some());
    assert_eq!(call.state(), CallState::PreAccepted);
    let rules: Vec<_> = call.violations().iter().map(|v| v.rule).collect();
    assert_eq!(rules, vec![Rule::AnswerChanged]);

    // The right SDP still works, and the business ends the call.
    gateway.graph.accept(&answer, None).await.expect("accept with the pre_accept's SDP");
    gateway.graph.terminate(&phone(), &connect.call_id).await.expect("terminate");
    call.wait_for_state(CallState::Terminated, STEP).await.unwrap();
    let WaEvent::Terminate(end) = gateway.next_event().await else { panic!("expected the terminate") };
    assert!(end.answered());
    call.wait_for_closed(STEP).await.unwrap();
    assert_eq!(call.progress().ended_by, Some(Party::Business));
    let kinds: Vec<_> = call.actions().iter().map(|a| (a.action, a.succeeded())).collect();
    assert_eq!(
        kinds,
        vec![
            (Some(Action::PreAccept), true),
            (Some(Action::Accept), false),
            (Some(Action::Accept), true),
            (Some(Action::Terminate), true)
        ]
    );
    leg.close().await;
    sandbox.stop().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_refuses_a_wrong_token_an_unknown_call_and_a_wrong_sdp_type() {
    let (sandbox, mut gateway) = start().await;
    let (call, connect) = placed(&sandbox, &mut gateway, user_calls()).await;

    let intruder = graph_client(sandbox.graph_base_url(), "EAAG-not-the-token");
    let (status, error) = meta_error(intruder.reject(&phone(), &connect.call_id).await.unwrap_err());
    assert_eq!((status, error.code), (401, ErrorCode::Other(190)));
    assert_eq!(error.error_type.as_deref(), Some("OAuthException"));

    let (status, error) = meta_error(gateway.graph.terminate(&phone(), &CallId::new("wacid.NOPE")).await.unwrap_err());
    assert_eq!((status, error.code), (400, ErrorCode::InvalidParameter));
    assert!(error.details.unwrap_or_default().contains("wacid.NOPE"));

    let (status, error) = meta_error(gateway.graph.terminate(&PhoneNumberId::new("999"), &connect.call_id).await.unwrap_err());
    assert_eq!((status, error.code, error.subcode), (400, ErrorCode::InvalidParameter, Some(33)));

    // sdp_type "offer" on pre_accept (the doc tables' mistake, §1.2): GraphClient cannot send
    // it, so a raw request does.
    let (_leg, answer) = answer(&connect).await;
    let url = format!("{}/v23.0/{NUMBER}/calls", sandbox.graph_base_url());
    let body = json!({ "messaging_product": "whatsapp", "call_id": connect.call_id.as_str(), "action": "pre_accept",
                       "session": { "sdp_type": "offer", "sdp": answer.sdp().as_str() } });
    let resp = reqwest::Client::new().post(&url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let envelope: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(envelope["error"]["code"], 100);

    assert_eq!(call.state(), CallState::Offered, "nothing was applied");
    let rules: Vec<_> = sandbox.violations().iter().map(|v| v.rule).collect();
    assert_eq!(rules, vec![Rule::Unauthorized, Rule::UnknownCall, Rule::UnknownNumber, Rule::WrongSdpType]);
    assert_eq!(sandbox.stray_requests().len(), 1, "only the unknown call id is about no known call");

    gateway.graph.reject(&phone(), &connect.call_id).await.expect("reject");
    call.wait_for_state(CallState::Rejected, STEP).await.unwrap();
    let WaEvent::Terminate(end) = gateway.next_event().await else { panic!("expected the terminate") };
    assert!(!end.answered());
    assert!(matches!(
        call.wait_for_state(CallState::Accepted, STEP).await,
        Err(whatsip::sandbox::SandboxError::Ended { state: CallState::Rejected, .. })
    ));
    sandbox.stop().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_ends_a_call_nobody_accepts() {
    let (sandbox, mut gateway) = start().await;
    let spec = CallSpec { answer_window: Duration::from_secs(2), ..user_calls() };
    let (call, connect) = placed(&sandbox, &mut gateway, spec).await;
    // The business never answers; Meta gives up (§1.3) and says so.
    let WaEvent::Terminate(end) = gateway.next_event().await else { panic!("expected the terminate") };
    assert_eq!(end.call_id, connect.call_id);
    assert!(!end.answered());
    call.wait_for_closed(STEP).await.unwrap();
    assert_eq!((call.state(), call.progress().ended_by), (CallState::Terminated, Some(Party::Meta)));

    // Too late to accept; refused, but the business could not have known.
    let late = CallAnswer::new(phone(), connect.call_id.clone(), Sdp::new("v=0\r\n")).unwrap();
    let (status, error) = meta_error(gateway.graph.accept(&late, None).await.unwrap_err());
    assert_eq!((status, error.code), (400, ErrorCode::InvalidParameter));
    assert!(sandbox.violations().is_empty(), "{:?}", sandbox.violations());
    assert!(call.report().await.unwrap().heard.audio_packets == 0);
    sandbox.stop().await;
    gateway.stop().await;
}

fn now() -> SystemTime {
    SystemTime::now()
}

/// A status webhook for `id`: the ingress hands it on whatever came before, so the events up to
/// it are all that earlier POSTs produced.
fn marker(id: &str) -> String {
    let ts = now().duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
    json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1", "changes": [{ "field": "calls", "value": {
        "messaging_product": "whatsapp", "metadata": { "display_phone_number": "15550009999", "phone_number_id": NUMBER },
        "statuses": [{ "id": id, "timestamp": ts, "type": "call", "status": "RINGING", "recipient_id": "15550001111" }] } }] }] })
    .to_string()
}

async fn events_until_marker(sandbox: &Sandbox, gateway: &mut Gateway, id: &str) -> Vec<WaEvent> {
    sandbox.webhooks().send(&marker(id)).await.unwrap();
    let mut seen = Vec::new();
    loop {
        let e = gateway.next_event().await;
        if e.call_id() == Some(&CallId::new(id)) {
            return seen;
        }
        seen.push(e);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_badly_signed_duplicated_and_reordered() {
    let (sandbox, mut gateway) = start().await;
    let (id, user) = (CallId::new("wacid.FORGED"), WaId::new("15550002222"));
    let forged = connect_body(&ConnectWebhook {
        phone_number_id: &phone(),
        display_phone_number: "15550009999",
        call_id: &id,
        from: &user,
        name: None,
        timestamp: now(),
        sdp: "v=0\r\n",
        deeplink_payload: None,
        cta_payload: None,
    });
    assert_eq!(sandbox.webhooks().send_badly_signed(&forged).await, Some(401));
    assert!(events_until_marker(&sandbox, &mut gateway, "wacid.MARK1").await.is_empty(), "a forged webhook emitted events");

    // Meta redelivers the connect: two 200s on the wire, one Connect out of the ingress.
    let spec = CallSpec { connect_copies: 2, ..user_calls() };
    let (call, _connect) = placed(&sandbox, &mut gateway, spec).await;
    let label = format!("connect {}", call.call_id());
    let ok = sandbox.webhooks().deliveries().iter().filter(|d| d.label == label && d.ok()).count();
    assert_eq!(ok, 2);
    call.hang_up().await.unwrap();
    let rest = events_until_marker(&sandbox, &mut gateway, "wacid.MARK2").await;
    let kinds: Vec<_> = rest.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, vec!["terminate"], "the second connect was deduplicated");
    let WaEvent::Terminate(end) = &rest[0] else { unreachable!() };
    assert!(!end.answered(), "never accepted");

    // A terminate that overtakes its connect (§2.1): the connect then starts nothing.
    let early = CallId::new("wacid.EARLY");
    let connect = connect_body(&ConnectWebhook {
        phone_number_id: &phone(),
        display_phone_number: "15550009999",
        call_id: &early,
        from: &user,
        name: None,
        timestamp: now(),
        sdp: "v=0\r\n",
        deeplink_payload: None,
        cta_payload: None,
    });
    let terminate = terminate_body(&TerminateWebhook {
        phone_number_id: &phone(),
        display_phone_number: "15550009999",
        call_id: &early,
        user: &user,
        user_initiated: true,
        timestamp: now(),
        status: "COMPLETED",
        answered: None,
        error: None,
        biz_opaque_callback_data: None,
    });
    sandbox.webhooks().send_reordered(&[connect, terminate]).await.unwrap();
    let labels: Vec<_> = sandbox.webhooks().deliveries().iter().rev().take(2).map(|d| d.label.clone()).collect();
    assert_eq!(labels, vec!["connect wacid.EARLY", "terminate wacid.EARLY"]);
    let rest = events_until_marker(&sandbox, &mut gateway, "wacid.MARK3").await;
    let kinds: Vec<_> = rest.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, vec!["terminate"]);
    sandbox.stop().await;
    gateway.stop().await;
}
