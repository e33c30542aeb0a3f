//! Meta's side of the webhooks (§2): bodies shaped like Meta's `calls` notifications, signed
//! with `X-Hub-Signature-256` (§2.1) and POSTed to the gateway's callback URL.
//!
//! The bodies are built by pure functions ([`connect_body`], [`terminate_body`]) that the
//! gateway's own parser reads back in the tests below. [`WebhookSender`] delivers them like
//! Meta: any answer but 200 is a failure, retried with a doubling back-off a few times
//! (§2.1). For tests it can also deliver a body twice, deliver several in reverse order, or
//! sign one with the wrong secret — the things Meta does by accident (§2.1, §8.8).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::ids::{CallId, PhoneNumberId, WaId};
use crate::whatsapp::signature::{sign, SIGNATURE_HEADER};
use crate::whatsapp::ErrorCode;

/// A WhatsApp Business Account id for the envelope's `entry[].id`; the gateway ignores it.
pub const SANDBOX_WABA_ID: &str = "100000000000001";

/// A user-initiated connect (§2.2).
#[derive(Debug, Clone)]
pub struct ConnectWebhook<'a> {
    pub phone_number_id: &'a PhoneNumberId,
    /// The business number as Meta shows it: digits, no `+` (`metadata.display_phone_number`).
    pub display_phone_number: &'a str,
    pub call_id: &'a CallId,
    pub from: &'a WaId,
    /// `contacts[].profile.name`; no `contacts` at all without it.
    pub name: Option<&'a str>,
    pub timestamp: SystemTime,
    /// The user's SDP offer.
    pub sdp: &'a str,
    pub deeplink_payload: Option<&'a str>,
    pub cta_payload: Option<&'a str>,
}

/// A terminate (§2.5).
#[derive(Debug, Clone)]
pub struct TerminateWebhook<'a> {
    pub phone_number_id: &'a PhoneNumberId,
    pub display_phone_number: &'a str,
    pub call_id: &'a CallId,
    pub user: &'a WaId,
    pub user_initiated: bool,
    pub timestamp: SystemTime,
    /// `COMPLETED` or `FAILED`.
    pub status: &'a str,
    /// `(start_time, end_time)`: only for answered calls (§2.5); `duration` follows from them.
    pub answered: Option<(SystemTime, SystemTime)>,
    /// `errors[]` of a failed call.
    pub error: Option<ErrorCode>,
    pub biz_opaque_callback_data: Option<&'a str>,
}

/// The body of a user-initiated connect webhook.
pub fn connect_body(w: &ConnectWebhook<'_>) -> String {
    let mut call = json!({
        "id": w.call_id.as_str(),
        "to": w.display_phone_number,
        "from": w.from.as_str(),
        "event": "connect",
        "timestamp": unix(w.timestamp).to_string(),
        "direction": "USER_INITIATED",
        "session": { "sdp_type": "offer", "sdp": w.sdp },
    });
    if let Some(p) = w.deeplink_payload {
        call["deeplink_payload"] = json!(p);
    }
    if let Some(p) = w.cta_payload {
        call["cta_payload"] = json!(p);
    }
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(w.phone_number_id, w.display_phone_number),
        "calls": [call],
    });
    if let Some(name) = w.name {
        value["contacts"] = json!([{ "profile": { "name": name }, "wa_id": w.from.as_str() }]);
    }
    envelope(value)
}

/// The body of a terminate webhook.
pub fn terminate_body(w: &TerminateWebhook<'_>) -> String {
    let (from, to) = if w.user_initiated {
        (w.user.as_str(), w.display_phone_number)
    } else {
        (w.display_phone_number, w.user.as_str())
    };
    let mut call = json!({
        "id": w.call_id.as_str(),
        "to": to,
        "from": from,
        "event": "terminate",
        "direction": if w.user_initiated { "USER_INITIATED" } else { "BUSINESS_INITIATED" },
        "timestamp": unix(w.timestamp).to_string(),
        "status": w.status,
    });
    if let Some((start, end)) = w.answered {
        call["start_time"] = json!(unix(start).to_string());
        call["end_time"] = json!(unix(end).to_string());
        call["duration"] = json!(unix(end).saturating_sub(unix(start)));
    }
    if let Some(data) = w.biz_opaque_callback_data {
        call["biz_opaque_callback_data"] = json!(data);
    }
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": metadata(w.phone_number_id, w.display_phone_number),
        "calls": [call],
    });
    if let Some(code) = w.error {
        // §2.5: errors[] sits beside calls[], not inside the call.
        let title = code.meaning().unwrap_or("call failed");
        value["errors"] = json!([{ "code": code.code(), "message": title, "error_data": { "details": title } }]);
    }
    envelope(value)
}

fn envelope(value: Value) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": SANDBOX_WABA_ID, "changes": [{ "field": "calls", "value": value }] }],
    })
    .to_string()
}

fn metadata(id: &PhoneNumberId, display: &str) -> Value {
    json!({ "display_phone_number": display, "phone_number_id": id.as_str() })
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// How a POST is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// With the app secret, as Meta does.
    AppSecret,
    /// With another secret: a forged or misconfigured sender.
    WrongSecret,
    /// No `X-Hub-Signature-256` at all.
    Unsigned,
    /// This exact header value.
    Header(String),
}

/// How hard to try, like Meta's delivery (§2.1) on a much shorter clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// POSTs in all, the first included.
    pub attempts: u32,
    /// Wait before the second POST; doubled before each next one.
    pub first_backoff: Duration,
    /// One POST, connection included. Meta waits about 20 s (§2.1).
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { attempts: 4, first_backoff: Duration::from_millis(250), timeout: Duration::from_secs(20) }
    }
}

/// One POST as it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `connect wacid.…`, `terminate wacid.…`, or `raw` for a body of another shape.
    pub label: String,
    /// 1 for the first POST of a body, 2 for its first retry, …
    pub attempt: u32,
    pub signing: Signing,
    /// The gateway's HTTP status; `None` when the POST failed before an answer.
    pub status: Option<u16>,
    pub error: Option<String>,
}

impl Delivery {
    pub fn ok(&self) -> bool {
        self.status == Some(200)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error("webhook {label} not delivered after {attempts} POSTs to {url}: {last}")]
    Undelivered { label: String, url: String, attempts: u32, last: String },
    #[error("webhook client: {0}")]
    Client(String),
}

/// Sends webhooks to one callback URL and keeps a log of every POST.
#[derive(Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    url: String,
    app_secret: Arc<[u8]>,
    retry: Retry,
    log: Arc<Mutex<Vec<Delivery>>>,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender").field("url", &self.url).field("retry", &self.retry).finish()
    }
}

impl WebhookSender {
    /// `accept_invalid_certs`: for an `https://` gateway on loopback with a self-made
    /// certificate; never for anything else.
    pub fn new(url: impl Into<String>, app_secret: &str, retry: Retry, accept_invalid_certs: bool) -> Result<WebhookSender, SendError> {
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            .connect_timeout(retry.timeout)
            .user_agent("facebookexternalua")
            .danger_accept_invalid_certs(accept_invalid_certs)
            .build()
            .map_err(|e| SendError::Client(e.to_string()))?;
        Ok(WebhookSender {
            http,
            url: url.into(),
            app_secret: Arc::from(app_secret.as_bytes()),
            retry,
            log: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Delivers a body as Meta does: signed, retried until the gateway answers 200. Returns the
    /// number of POSTs it took.
    pub async fn send(&self, body: &str) -> Result<u32, SendError> {
        let mut backoff = self.retry.first_backoff;
        let mut last = String::new();
        let attempts = self.retry.attempts.max(1);
        for attempt in 1..=attempts {
            let d = self.post(body, Signing::AppSecret, attempt).await;
            if d.ok() {
                return Ok(attempt);
            }
            last = d.error.unwrap_or_else(|| format!("HTTP {}", d.status.unwrap_or_default()));
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(SendError::Undelivered { label: label(body), url: self.url.clone(), attempts, last })
    }

    /// One POST signed as `signing` says, no retry; the gateway's status, or `None` when no
    /// answer came.
    pub async fn send_once(&self, body: &str, signing: Signing) -> Option<u16> {
        self.post(body, signing, 1).await.status
    }

    /// One POST signed with a wrong secret: the gateway must answer 401 and take nothing.
    pub async fn send_badly_signed(&self, body: &str) -> Option<u16> {
        self.send_once(body, Signing::WrongSecret).await
    }

    /// The same body delivered `copies` times in a row, each as [`WebhookSender::send`] does
    /// (Meta's redelivery after a timeout, §2.1).
    pub async fn send_duplicated(&self, body: &str, copies: u32) -> Result<(), SendError> {
        for _ in 0..copies {
            self.send(body).await?;
        }
        Ok(())
    }

    /// Several bodies delivered last first (ordering is not guaranteed, §2.1: a terminate can
    /// come before its connect).
    pub async fn send_reordered(&self, bodies: &[String]) -> Result<(), SendError> {
        for body in bodies.iter().rev() {
            self.send(body).await?;
        }
        Ok(())
    }

    /// Every POST so far, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        // Poisoning cannot happen: nothing panics while holding this lock.
        self.log.lock().expect("unpoisoned").clone()
    }

    async fn post(&self, body: &str, signing: Signing, attempt: u32) -> Delivery {
        let header = match &signing {
            Signing::AppSecret => Some(sign(&self.app_secret, body.as_bytes())),
            Signing::WrongSecret => Some(sign(b"not-the-app-secret", body.as_bytes())),
            Signing::Unsigned => None,
            Signing::Header(h) => Some(h.clone()),
        };
        let mut req = self.http.post(&self.url).header("content-type", "application/json").body(body.to_owned());
        if let Some(h) = header {
            req = req.header(SIGNATURE_HEADER, h);
        }
        let (status, error) = match req.send().await {
            Ok(resp) => (Some(resp.status().as_u16()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let delivery = Delivery { label: label(body), attempt, signing, status, error };
        tracing::debug!(label = %delivery.label, attempt, status = ?delivery.status, error = ?delivery.error, "sandbox webhook POST");
        self.log.lock().expect("unpoisoned").push(delivery.clone());
        delivery
    }
}

/// `connect wacid.…` for a one-call body, `raw` otherwise.
fn label(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_default();
    let call = &value["entry"][0]["changes"][0]["value"]["calls"][0];
    match (call["event"].as_str(), call["id"].as_str()) {
        (Some(event), Some(id)) => format!("{event} {id}"),
        _ => "raw".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whatsapp::model::parse_notification;
    use crate::whatsapp::{Direction, SdpType, TerminateStatus, WaEvent};

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n";

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn connect_reads_back_as_the_gateway_parses_it() {
        let (id, phone, from) = (CallId::new("wacid.AbC"), PhoneNumberId::new("106"), WaId::new("15550001111"));
        let body = connect_body(&ConnectWebhook {
            phone_number_id: &phone,
            display_phone_number: "15550009999",
            call_id: &id,
            from: &from,
            name: Some("Sandbox User"),
            timestamp: at(1_700_000_000),
            sdp: SDP,
            deeplink_payload: None,
            cta_payload: Some("cta"),
        });
        let n = parse_notification(body.as_bytes()).unwrap();
        assert!(n.skipped.is_empty() && n.ignored.is_empty(), "{:?} {:?}", n.skipped, n.ignored);
        let [WaEvent::Connect(c)] = n.events.as_slice() else { panic!("{:?}", n.events) };
        assert_eq!((&c.call_id, &c.phone_number_id, &c.from, c.to.as_str()), (&id, &phone, &from, "15550009999"));
        assert_eq!(c.direction, Direction::UserInitiated);
        assert_eq!(c.timestamp, at(1_700_000_000));
        assert_eq!(c.caller_name.as_deref(), Some("Sandbox User"));
        assert_eq!(c.display_phone_number.as_deref(), Some("15550009999"));
        assert_eq!(c.cta_payload.as_deref(), Some("cta"));
        assert_eq!(c.deeplink_payload, None);
        let (kind, sdp) = c.session.as_ref().unwrap();
        assert_eq!((*kind, sdp.as_str()), (SdpType::Offer, SDP));
        assert_eq!(label(&body), "connect wacid.AbC");

        // No name, no contacts.
        let anonymous = connect_body(&ConnectWebhook {
            phone_number_id: &phone,
            display_phone_number: "1",
            call_id: &id,
            from: &from,
            name: None,
            timestamp: at(1),
            sdp: SDP,
            deeplink_payload: None,
            cta_payload: None,
        });
        assert!(!anonymous.contains("contacts"));
    }

    #[test]
    fn terminate_says_answered_only_with_times() {
        let (id, phone, user) = (CallId::new("wacid.AbC"), PhoneNumberId::new("106"), WaId::new("15550001111"));
        let answered = TerminateWebhook {
            phone_number_id: &phone,
            display_phone_number: "15550009999",
            call_id: &id,
            user: &user,
            user_initiated: true,
            timestamp: at(1_700_000_100),
            status: "COMPLETED",
            answered: Some((at(1_700_000_010), at(1_700_000_100))),
            error: None,
            biz_opaque_callback_data: Some("cdr-7"),
        };
        let n = parse_notification(terminate_body(&answered).as_bytes()).unwrap();
        let [WaEvent::Terminate(t)] = n.events.as_slice() else { panic!("{:?}", n.events) };
        assert!(t.answered());
        assert_eq!((t.duration_seconds, t.status.clone()), (Some(90), Some(TerminateStatus::Completed)));
        assert_eq!((t.start_time, t.end_time), (Some(at(1_700_000_010)), Some(at(1_700_000_100))));
        assert_eq!(t.from.as_ref(), Some(&user));
        assert_eq!(t.biz_opaque_callback_data.as_deref(), Some("cdr-7"));
        assert!(t.errors.is_empty());

        let failed = TerminateWebhook { answered: None, status: "FAILED", error: Some(ErrorCode::CallSetupFailed), biz_opaque_callback_data: None, ..answered };
        let n = parse_notification(terminate_body(&failed).as_bytes()).unwrap();
        let [WaEvent::Terminate(t)] = n.events.as_slice() else { panic!("{:?}", n.events) };
        assert!(!t.answered());
        assert_eq!(t.status, Some(TerminateStatus::Failed));
        assert_eq!(t.errors.iter().map(|e| e.code).collect::<Vec<_>>(), vec![ErrorCode::CallSetupFailed]);
    }

    #[test]
    fn labels() {
        assert_eq!(label("{}"), "raw");
        assert_eq!(label("not json"), "raw");
    }
}
