//! The WhatsApp webhook server on 127.0.0.1, driven like Meta drives it (§2.1): the GET
//! handshake, signed, unsigned and badly signed POSTs, batches and redeliveries, with the sample
//! payloads of the calling doc (§2.2–§2.6) as fixtures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use whatsip::config::{Settings, UserSettings, WhatsAppNumberSettings};
use whatsip::ids::{CallId, PhoneNumberId};
use whatsip::whatsapp::signature::sign;
use whatsip::whatsapp::{self, CallStatus, PermissionResponse, SdpType, WaEvent};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const VERIFY: &str = "verify-me-please";
const NUMBER: &str = "106540352242922";
/// The doc's samples are from 2022; events that old are stale, so they are re-dated to now.
const SAMPLE_TIME: &str = "1671644824";

fn fixture(name: &str) -> String {
    let text = std::fs::read_to_string(format!("{}/tests/fixtures/whatsapp/{name}.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    text.replace(SAMPLE_TIME, &now.to_string()).replace("1671644944", &(now + 1).to_string())
}

fn settings(tls: Option<(String, String)>) -> Settings {
    let mut s = Settings::default();
    s.sip.users.push(UserSettings { name: "1001".into(), password: "secret-1001".into(), display_name: None });
    let w = &mut s.whatsapp;
    w.app_secret = SECRET.into();
    w.verify_token = VERIFY.into();
    w.access_token = "not-a-real-graph-token".into();
    w.webhook_listen = "127.0.0.1:0".into();
    w.webhook_path = "/hooks/meta".into();
    if let Some((cert, key)) = tls {
        w.webhook_tls_cert = cert;
        w.webhook_tls_key = key;
    }
    w.numbers.push(WhatsAppNumberSettings {
        phone_number_id: NUMBER.into(),
        display_number: "+16315553601".into(),
        target: "1001".into(),
    });
    s.validate().unwrap();
    s
}

struct Running {
    url: String,
    events: mpsc::Receiver<WaEvent>,
    handle: actix_web::dev::ServerHandle,
    http: reqwest::Client,
}

impl Running {
    fn start() -> Running {
        Self::start_with(settings(None), reqwest::Client::new(), "http")
    }

    fn start_with(settings: Settings, http: reqwest::Client, scheme: &str) -> Running {
        let (tx, events) = mpsc::channel(64);
        let server = whatsapp::server(&settings, tx).unwrap();
        let url = format!("{scheme}://localhost:{}/hooks/meta", server.local_addr().port());
        let handle = server.handle();
        actix_web::rt::spawn(server.run());
        Running { url, events, handle, http }
    }

    async fn post(&self, body: &str, signature: Option<String>) -> u16 {
        let mut req = self.http.post(&self.url).header("content-type", "application/json").body(body.to_string());
        if let Some(sig) = signature {
            req = req.header("X-Hub-Signature-256", sig);
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn post_signed(&self, body: &str) -> u16 {
        self.post(body, Some(sign(SECRET.as_bytes(), body.as_bytes()))).await
    }

    async fn get(&self, query: &str) -> (u16, String) {
        let resp = self.http.get(format!("{}?{query}", self.url)).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Posts a status for `marker` and returns every event up to it: since the pump keeps
    /// arrival order, whatever earlier POSTs produced comes first, and nothing else will.
    async fn events_until_marker(&mut self, marker: &str) -> Vec<WaEvent> {
        let body = fixture("status").replace("wacid.ABGGFjFVU2AfAgo6V", marker);
        assert_eq!(self.post_signed(&body).await, 200);
        let mut seen = Vec::new();
        loop {
            // A guard against a hang, not a timing assertion.
            let event = tokio::time::timeout(Duration::from_secs(20), self.events.recv()).await.expect("events").expect("open");
            if event.call_id() == Some(&CallId::new(marker)) {
                return seen;
            }
            seen.push(event);
        }
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

fn summary(events: &[WaEvent]) -> Vec<String> {
    events.iter().map(|e| format!("{} {}", e.call_id().map(|c| c.to_string()).unwrap_or_default(), e.kind())).collect()
}

#[actix_web::test]
async fn verification_handshake() {
    let w = Running::start();
    let ok = w.get(&format!("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={VERIFY}")).await;
    assert_eq!(ok, (200, "1158201444".to_string()));
    let wrong_token = w.get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess").await;
    assert_eq!(wrong_token.0, 403);
    assert!(!wrong_token.1.contains("1158201444"));
    let wrong_mode = w.get(&format!("hub.mode=unsubscribe&hub.challenge=1&hub.verify_token={VERIFY}")).await;
    assert_eq!(wrong_mode.0, 403);
    assert_eq!(w.get("").await.0, 403);
    w.stop().await;
}

#[actix_web::test]
async fn bad_or_missing_signatures_get_401_and_nothing_is_processed() {
    let mut w = Running::start();
    let connect = fixture("connect");
    assert_eq!(w.post(&connect, None).await, 401);
    assert_eq!(w.post(&connect, Some(sign(b"someone else's secret", connect.as_bytes()))).await, 401);
    assert_eq!(w.post(&connect, Some("sha256=nothex".into())).await, 401);
    assert_eq!(w.post(&connect, Some(sign(SECRET.as_bytes(), connect.as_bytes())[7..].to_string())).await, 401);
    let altered = connect.replace("Jane Caller", "Mallory");
    assert_eq!(w.post(&altered, Some(sign(SECRET.as_bytes(), connect.as_bytes()))).await, 401);
    // Signed but not JSON: refused too, and nothing comes out of it.
    assert_eq!(w.post_signed("not json").await, 400);

    assert!(w.events_until_marker("wacid.marker").await.is_empty());

    // The very same connect, signed, goes through: it was refused for its signature alone.
    assert_eq!(w.post_signed(&connect).await, 200);
    let events = w.events_until_marker("wacid.marker2").await;
    assert_eq!(summary(&events), ["wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh connect"]);
    w.stop().await;
}

#[actix_web::test]
async fn the_docs_samples_become_typed_events() {
    let mut w = Running::start();
    for name in ["connect", "status", "terminate", "permission_reply"] {
        assert_eq!(w.post_signed(&fixture(name)).await, 200, "{name}");
    }
    let events = w.events_until_marker("wacid.marker").await;
    let [WaEvent::Connect(c), WaEvent::Status(s), WaEvent::Terminate(t), WaEvent::PermissionReply(p)] = &events[..] else {
        panic!("{events:#?}")
    };
    assert_eq!(c.phone_number_id, PhoneNumberId::new(NUMBER));
    assert_eq!(c.caller_name.as_deref(), Some("Jane Caller"));
    let (kind, sdp) = c.session.as_ref().unwrap();
    assert_eq!(*kind, SdpType::Offer);
    assert!(sdp.as_str().starts_with("v=0\r\n") && sdp.as_str().contains("a=fingerprint:"));
    assert_eq!(s.status, CallStatus::Ringing);
    assert_eq!(t.call_id, c.call_id);
    assert_eq!(t.errors[0].code, whatsapp::ErrorCode::MediaReceiveTimeout);
    assert_eq!(p.response, PermissionResponse::Accept);
    w.stop().await;
}

#[actix_web::test]
async fn batches_redeliveries_and_reordering() {
    let mut w = Running::start();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs().to_string();
    let call = |id: &str, event: &str| {
        serde_json::json!({ "id": id, "from": "16315553602", "to": "16315553601", "event": event,
                            "timestamp": now, "direction": "USER_INITIATED",
                            "session": { "sdp_type": "offer", "sdp": "v=0\r\n" } })
    };
    let change = |number: &str, calls: Vec<serde_json::Value>| {
        serde_json::json!({ "field": "calls", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "16315553601", "phone_number_id": number },
            "calls": calls } })
    };
    // Two entries, three changes: B hangs up before its connect arrives; a call for a number
    // that is not ours; an event kind nobody knows; C rings.
    let batch = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [
            { "id": "1", "changes": [
                change(NUMBER, vec![call("wacid.A", "connect"), call("wacid.B", "terminate"), call("wacid.X", "call_created")]),
                change("999999", vec![call("wacid.Other", "connect")]),
            ]},
            { "id": "2", "changes": [ change(NUMBER, vec![call("wacid.B", "connect"), call("wacid.C", "connect")]) ]},
        ]
    })
    .to_string();
    assert_eq!(w.post_signed(&batch).await, 200);
    // Meta timed out on us and delivers the whole batch again, and A's connect once more.
    assert_eq!(w.post_signed(&batch).await, 200);
    let again = serde_json::json!({ "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [change(NUMBER, vec![call("wacid.A", "connect")])] }] })
    .to_string();
    assert_eq!(w.post_signed(&again).await, 200);

    let events = w.events_until_marker("wacid.marker").await;
    assert_eq!(summary(&events), ["wacid.A connect", "wacid.B terminate", "wacid.C connect"]);

    // Statuses out of order (§2.4): ACCEPTED first, then the RINGING it overtook, in any case.
    let status = |st: &str, seconds_ago: u64| {
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() - seconds_ago;
        serde_json::json!({ "object": "whatsapp_business_account", "entry": [{ "id": "1", "changes": [{
            "field": "calls", "value": { "metadata": { "phone_number_id": NUMBER },
            "statuses": [{ "id": "wacid.D", "type": "call", "status": st, "timestamp": ts, "recipient_id": "16315553602" }] } }] }] })
        .to_string()
    };
    assert_eq!(w.post_signed(&status("accepted", 0)).await, 200);
    assert_eq!(w.post_signed(&status("RINGING", 5)).await, 200);
    let events = w.events_until_marker("wacid.marker2").await;
    assert_eq!(summary(&events), ["wacid.D status ACCEPTED"]);
    w.stop().await;
}

#[actix_web::test]
async fn serves_https_with_its_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let settings = settings(Some((cert_path.display().to_string(), key_path.display().to_string())));
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let mut w = Running::start_with(settings, http, "https");
    let ok = w.get(&format!("hub.mode=subscribe&hub.challenge=42&hub.verify_token={VERIFY}")).await;
    assert_eq!(ok, (200, "42".to_string()));
    assert_eq!(w.post(&fixture("connect"), None).await, 401);
    assert_eq!(w.post_signed(&fixture("connect")).await, 200);
    assert_eq!(summary(&w.events_until_marker("wacid.marker").await), ["wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh connect"]);
    w.stop().await;
}

#[actix_web::test]
async fn a_full_queue_gets_503_and_the_redelivery_is_not_lost() {
    let mut config = whatsapp::WebhookConfig::from_settings(&settings(None)).unwrap();
    config.queue = 1;
    // The sink holds one event and nobody reads it yet: the pump stalls behind it.
    let (tx, mut events) = mpsc::channel(1);
    let server = whatsapp::webhook::server_with(config, tx).unwrap();
    let url = format!("http://127.0.0.1:{}/hooks/meta", server.local_addr().port());
    let handle = server.handle();
    actix_web::rt::spawn(server.run());
    let http = reqwest::Client::new();
    let post = |call: String| {
        let body = fixture("connect").replace("wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh", &call);
        let req = http.post(&url).header("X-Hub-Signature-256", sign(SECRET.as_bytes(), body.as_bytes())).body(body);
        async move { req.send().await.unwrap().status().as_u16() }
    };

    let mut accepted = Vec::new();
    let mut refused = None;
    // Sink, pump and queue hold one batch each: the fourth POST cannot be taken.
    for i in 0..4 {
        let call = format!("wacid.Q{i}");
        match post(call.clone()).await {
            200 => accepted.push(call),
            503 => {
                refused = Some(call);
                break;
            }
            other => panic!("{other}"),
        }
    }
    let refused = refused.expect("a POST was refused while the queue was full");

    for call in &accepted {
        assert_eq!(next(&mut events).await.call_id(), Some(&CallId::new(call.as_str())));
    }
    // Meta delivers the refused POST again: nothing of it was taken the first time.
    assert_eq!(post(refused.clone()).await, 200);
    assert_eq!(next(&mut events).await.call_id(), Some(&CallId::new(refused.as_str())));
    handle.stop(true).await;
}

async fn next(events: &mut mpsc::Receiver<WaEvent>) -> WaEvent {
    // A guard against a hang, not a timing assertion.
    tokio::time::timeout(Duration::from_secs(20), events.recv()).await.expect("event").expect("open")
}
