//! The Graph API client for calls (§1): `POST {base}/{version}/{PHONE_NUMBER_ID}/calls` with a
//! bearer token and one JSON body per action (§1.2). Meta's error envelope becomes a typed
//! [`GraphError`] carrying the calling error code (§1.4).
//!
//! Retries: only the actions that are idempotent are retried, and only when the failure says
//! nothing reached Meta or Meta failed on its side (transport errors, timeouts, HTTP 5xx,
//! 138004). `reject` and `terminate` end a call; ending an ended call changes nothing, and the
//! business must terminate even after an RTCP BYE for billing to be right (§1.2), so they are
//! worth retrying. `pre_accept` and `accept` set the call's answer to the same SDP each time
//! (accept must repeat pre_accept's SDP, §1.2), so a repeat cannot change the outcome; they are
//! retried quickly, as Meta's answer window is short (§1.3). `connect` is never retried: a repeat
//! may place a second call (138003), counts against the number's call limits (§1.2: 10,000 a
//! day), and an unanswered second call burns the user's call permission (§8.13).

use super::codes::ErrorCode;
use super::event::Sdp;
use super::model::{lenient_i64, lenient_string, RawErrorData};
use crate::config::Settings;
use crate::ids::{CallId, PhoneNumberId, WaId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Where and how to reach Graph.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.facebook.com`, or a local stand-in.
    pub base_url: String,
    pub api_version: String,
    pub access_token: String,
    /// For one HTTP exchange, connection included.
    pub timeout: Duration,
    /// Extra attempts for the idempotent actions.
    pub retries: u32,
    /// Wait before the first retry; doubled before each next one.
    pub retry_backoff: Duration,
}

impl GraphConfig {
    pub fn from_settings(settings: &Settings) -> GraphConfig {
        let w = &settings.whatsapp;
        GraphConfig {
            base_url: w.graph_base_url.clone(),
            api_version: w.graph_api_version.clone(),
            access_token: w.access_token.clone(),
            ..GraphConfig::default()
        }
    }
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            base_url: "https://graph.facebook.com".into(),
            api_version: "v23.0".into(),
            access_token: String::new(),
            // Well inside the 30–60 s answer window (§1.3), with room for a retry.
            timeout: Duration::from_secs(8),
            retries: 2,
            retry_backoff: Duration::from_millis(300),
        }
    }
}

/// One action on `/calls` (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Connect,
    PreAccept,
    Accept,
    Reject,
    Terminate,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Connect => "connect",
            Action::PreAccept => "pre_accept",
            Action::Accept => "accept",
            Action::Reject => "reject",
            Action::Terminate => "terminate",
        }
    }

    /// Whether repeating the action cannot do more than doing it once (see the module docs).
    pub fn idempotent(self) -> bool {
        !matches!(self, Action::Connect)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Meta's error envelope (§1.4): `{"error":{"message","type","code","fbtrace_id","error_data"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaError {
    pub code: ErrorCode,
    pub subcode: Option<i64>,
    pub message: String,
    pub error_type: Option<String>,
    /// `error_data.details`: e.g. what is wrong with an SDP (code 100).
    pub details: Option<String>,
    /// Quote it to Meta's support.
    pub fbtrace_id: Option<String>,
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {}: {}", self.code, self.message)?;
        if let Some(details) = &self.details {
            write!(f, " ({details})")?;
        }
        if let Some(trace) = &self.fbtrace_id {
            write!(f, " [fbtrace_id {trace}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("Graph {action}: Meta refused it with HTTP {status}, {error}")]
    Meta { action: Action, status: u16, error: Box<MetaError> },
    #[error("Graph {action}: HTTP {status} without Meta's error envelope: {body}")]
    Http { action: Action, status: u16, body: String },
    #[error("Graph {action}: no answer within {after:?}")]
    Timeout { action: Action, after: Duration },
    #[error("Graph {action}: {reason}")]
    Transport { action: Action, reason: String },
    #[error("Graph {action}: unexpected answer: {reason}")]
    BadResponse { action: Action, reason: String },
    #[error("Graph {action}: {reason}")]
    InvalidRequest { action: Action, reason: String },
    #[error("Graph client: {0}")]
    Setup(String),
}

impl GraphError {
    /// Meta's error code, when Meta sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            GraphError::Meta { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// Whether the failure may be gone on a second try of the same request (see the module docs).
    fn transient(&self) -> bool {
        match self {
            GraphError::Timeout { .. } | GraphError::Transport { .. } => true,
            GraphError::Http { status, .. } => *status >= 500,
            GraphError::Meta { status, error, .. } => *status >= 500 || error.code == ErrorCode::ConnectionError,
            _ => false,
        }
    }
}

/// Our SDP answer for one user-initiated call. `pre_accept` and `accept` both take this one
/// value, so the SDP of the accept is byte for byte the pre_accept's, as Meta requires (§1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallAnswer {
    phone_number_id: PhoneNumberId,
    call_id: CallId,
    sdp: Sdp,
}

impl CallAnswer {
    /// The SDP must use CRLF line endings (§1.2, FAQ); it is sent as it is, never rewritten.
    pub fn new(phone_number_id: PhoneNumberId, call_id: CallId, sdp: Sdp) -> Result<CallAnswer, GraphError> {
        check_sdp(Action::PreAccept, &sdp)?;
        Ok(CallAnswer { phone_number_id, call_id, sdp })
    }

    pub fn phone_number_id(&self) -> &PhoneNumberId {
        &self.phone_number_id
    }

    pub fn call_id(&self) -> &CallId {
        &self.call_id
    }

    pub fn sdp(&self) -> &Sdp {
        &self.sdp
    }
}

/// A Graph client; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    config: std::sync::Arc<GraphConfig>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient").field("base_url", &self.config.base_url).field("api_version", &self.config.api_version).finish()
    }
}

impl GraphClient {
    pub fn new(config: GraphConfig) -> Result<GraphClient, GraphError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("whatsip/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::Setup(e.to_string()))?;
        Ok(GraphClient { http, config: std::sync::Arc::new(config) })
    }

    /// Tells Meta our answer while the phones ring, so ICE and DTLS finish early (§1.2, §8.1).
    pub async fn pre_accept(&self, answer: &CallAnswer) -> Result<(), GraphError> {
        let body = CallsRequest::answer(Action::PreAccept, answer, None);
        self.success(Action::PreAccept, &answer.phone_number_id, &body).await
    }

    /// Answers the call; media may flow once this returns (§1.2: not before).
    pub async fn accept(&self, answer: &CallAnswer, biz_opaque_callback_data: Option<&str>) -> Result<(), GraphError> {
        check_opaque(Action::Accept, biz_opaque_callback_data)?;
        let body = CallsRequest::answer(Action::Accept, answer, biz_opaque_callback_data);
        self.success(Action::Accept, &answer.phone_number_id, &body).await
    }

    /// Declines a user-initiated call.
    pub async fn reject(&self, phone_number_id: &PhoneNumberId, call_id: &CallId) -> Result<(), GraphError> {
        let body = CallsRequest::bare(Action::Reject, call_id);
        self.success(Action::Reject, phone_number_id, &body).await
    }

    /// Ends a call; needed whenever the business ends it, even after an RTCP BYE (§1.2).
    pub async fn terminate(&self, phone_number_id: &PhoneNumberId, call_id: &CallId) -> Result<(), GraphError> {
        let body = CallsRequest::bare(Action::Terminate, call_id);
        self.success(Action::Terminate, phone_number_id, &body).await
    }

    /// Places a business-initiated call with our SDP offer; Meta's answer comes in the connect
    /// webhook (§2.3). Needs the user's call permission (138006 otherwise).
    pub async fn connect(
        &self,
        phone_number_id: &PhoneNumberId,
        to: &WaId,
        offer: &Sdp,
        biz_opaque_callback_data: Option<&str>,
    ) -> Result<CallId, GraphError> {
        check_sdp(Action::Connect, offer)?;
        check_opaque(Action::Connect, biz_opaque_callback_data)?;
        let body = CallsRequest {
            messaging_product: "whatsapp",
            call_id: None,
            to: Some(to.as_str()),
            action: Action::Connect.as_str(),
            session: Some(Session { sdp_type: "offer", sdp: offer.as_str() }),
            biz_opaque_callback_data,
        };
        let answer: ConnectResponse = self.post(Action::Connect, phone_number_id, &body).await?;
        answer
            .calls
            .into_iter()
            .find_map(|c| c.id.filter(|id| !id.is_empty()))
            .map(CallId::new)
            .ok_or_else(|| GraphError::BadResponse { action: Action::Connect, reason: "no calls[0].id".into() })
    }

    async fn success(&self, action: Action, phone: &PhoneNumberId, body: &CallsRequest<'_>) -> Result<(), GraphError> {
        let answer: SuccessResponse = self.post(action, phone, body).await?;
        match answer.success {
            Some(false) => Err(GraphError::BadResponse { action, reason: "success: false".into() }),
            // Some samples show only messaging_product; a 2xx without an error is success (§1.2).
            _ => Ok(()),
        }
    }

    async fn post<T: for<'de> Deserialize<'de>>(
        &self,
        action: Action,
        phone: &PhoneNumberId,
        body: &CallsRequest<'_>,
    ) -> Result<T, GraphError> {
        let url = self.calls_url(phone);
        let attempts = if action.idempotent() { 1 + self.config.retries } else { 1 };
        let mut backoff = self.config.retry_backoff;
        let mut attempt = 1;
        loop {
            let result = self.post_once(action, &url, body).await;
            match result {
                Err(e) if attempt < attempts && e.transient() => {
                    tracing::warn!(call_id = body.call_id.unwrap_or_default(), %action, attempt, error = %e, "Graph request failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn post_once<T: for<'de> Deserialize<'de>>(
        &self,
        action: Action,
        url: &str,
        body: &CallsRequest<'_>,
    ) -> Result<T, GraphError> {
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.config.access_token)
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport_error(action, e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| self.transport_error(action, e))?;
        if !(200..300).contains(&status) {
            return Err(error_from_response(action, status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| GraphError::BadResponse { action, reason: format!("{e}: {}", excerpt(&bytes)) })
    }

    fn calls_url(&self, phone: &PhoneNumberId) -> String {
        format!("{}/{}/{}/calls", self.config.base_url.trim_end_matches('/'), self.config.api_version, phone)
    }

    fn transport_error(&self, action: Action, e: reqwest::Error) -> GraphError {
        if e.is_timeout() {
            GraphError::Timeout { action, after: self.config.timeout }
        } else {
            // The source chain says what went wrong (refused, DNS, TLS); the top line rarely does.
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = format!("{reason}: {s}");
                source = s.source();
            }
            GraphError::Transport { action, reason }
        }
    }
}

/// Turns a non-2xx answer into a typed error: Meta's envelope when there is one.
pub fn error_from_response(action: Action, status: u16, body: &[u8]) -> GraphError {
    match serde_json::from_slice::<ErrorEnvelope>(body).ok().and_then(|e| e.error).filter(|e| e.code.is_some()) {
        Some(e) => GraphError::Meta {
            action,
            status,
            error: Box::new(MetaError {
                code: ErrorCode::from_code(e.code.expect("filtered")),
                subcode: e.error_subcode,
                message: e.message.or(e.error_user_msg).unwrap_or_default(),
                error_type: e.kind,
                details: e.error_data.and_then(|d| d.details),
                fbtrace_id: e.fbtrace_id,
            }),
        },
        None => GraphError::Http { action, status, body: excerpt(body) },
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.into_owned(),
    }
}

fn check_sdp(action: Action, sdp: &Sdp) -> Result<(), GraphError> {
    let text = sdp.as_str();
    let bare_lf = text.bytes().enumerate().any(|(i, b)| b == b'\n' && (i == 0 || text.as_bytes()[i - 1] != b'\r'));
    let reason = if !text.starts_with("v=0") {
        "SDP must start with v=0"
    } else if bare_lf || !text.ends_with("\r\n") {
        "SDP lines must end with CRLF (§1.2)"
    } else {
        return Ok(());
    };
    Err(GraphError::InvalidRequest { action, reason: reason.into() })
}

fn check_opaque(action: Action, data: Option<&str>) -> Result<(), GraphError> {
    match data {
        Some(d) if d.chars().count() > 512 => {
            Err(GraphError::InvalidRequest { action, reason: "biz_opaque_callback_data is limited to 512 characters (§1.2)".into() })
        }
        _ => Ok(()),
    }
}

/// A `/calls` request body, exactly the fields §1.2 shows for each action.
#[derive(Debug, Serialize)]
struct CallsRequest<'a> {
    messaging_product: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Session<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Session<'a> {
    sdp_type: &'static str,
    sdp: &'a str,
}

impl<'a> CallsRequest<'a> {
    fn answer(action: Action, answer: &'a CallAnswer, biz_opaque_callback_data: Option<&'a str>) -> Self {
        CallsRequest {
            messaging_product: "whatsapp",
            call_id: Some(answer.call_id.as_str()),
            to: None,
            action: action.as_str(),
            // §1.2: "answer", whatever the parameter tables say (whatsapp-api-js PR #522).
            session: Some(Session { sdp_type: "answer", sdp: answer.sdp.as_str() }),
            biz_opaque_callback_data,
        }
    }

    fn bare(action: Action, call_id: &'a CallId) -> Self {
        CallsRequest {
            messaging_product: "whatsapp",
            call_id: Some(call_id.as_str()),
            to: None,
            action: action.as_str(),
            session: None,
            biz_opaque_callback_data: None,
        }
    }
}

#[derive(Debug, Deserialize)]
struct SuccessResponse {
    #[serde(default)]
    success: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ConnectResponse {
    #[serde(default)]
    calls: Vec<ConnectedCall>,
}

#[derive(Debug, Deserialize)]
struct ConnectedCall {
    #[serde(default, deserialize_with = "lenient_string")]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    error: Option<RawGraphError>,
}

#[derive(Debug, Deserialize)]
struct RawGraphError {
    #[serde(default, deserialize_with = "lenient_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    error_subcode: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    message: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    error_user_msg: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    fbtrace_id: Option<String>,
    #[serde(default)]
    error_data: Option<RawErrorData>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n";

    fn answer() -> CallAnswer {
        CallAnswer::new(PhoneNumberId::new("42"), CallId::new("wacid.X"), Sdp::new(SDP)).unwrap()
    }

    #[test]
    fn bodies_are_exactly_the_docs() {
        let a = answer();
        assert_eq!(
            serde_json::to_value(CallsRequest::answer(Action::PreAccept, &a, None)).unwrap(),
            serde_json::json!({ "messaging_product": "whatsapp", "call_id": "wacid.X", "action": "pre_accept",
                                "session": { "sdp_type": "answer", "sdp": SDP } })
        );
        assert_eq!(
            serde_json::to_value(CallsRequest::answer(Action::Accept, &a, Some("cdr-7"))).unwrap(),
            serde_json::json!({ "messaging_product": "whatsapp", "call_id": "wacid.X", "action": "accept",
                                "session": { "sdp_type": "answer", "sdp": SDP }, "biz_opaque_callback_data": "cdr-7" })
        );
        let id = CallId::new("wacid.Y");
        assert_eq!(
            serde_json::to_value(CallsRequest::bare(Action::Terminate, &id)).unwrap(),
            serde_json::json!({ "messaging_product": "whatsapp", "call_id": "wacid.Y", "action": "terminate" })
        );
    }

    #[test]
    fn sdp_must_be_crlf() {
        let bad = |sdp: &str| CallAnswer::new(PhoneNumberId::new("1"), CallId::new("wacid.X"), Sdp::new(sdp)).unwrap_err();
        assert!(bad("v=0\no=x\r\n").to_string().contains("CRLF"));
        assert!(bad("v=0\r\no=x").to_string().contains("CRLF"));
        assert!(bad("").to_string().contains("v=0"));
    }

    #[test]
    fn error_envelopes_become_typed_errors() {
        let body = br#"{"error":{"message":"(#138006) No approved call permission","type":"OAuthException","code":138006,
                        "error_data":{"messaging_product":"whatsapp","details":"ask the user first"},"fbtrace_id":"AbC"}}"#;
        let e = error_from_response(Action::Connect, 401, body);
        assert_eq!(e.code(), Some(ErrorCode::NoCallPermission));
        let GraphError::Meta { status, error, .. } = &e else { panic!("{e}") };
        assert_eq!(*status, 401);
        assert_eq!(error.details.as_deref(), Some("ask the user first"));
        assert_eq!(error.error_type.as_deref(), Some("OAuthException"));
        assert_eq!(
            e.to_string(),
            "Graph connect: Meta refused it with HTTP 401, error 138006 (no approved call permission from the user): \
             (#138006) No approved call permission (ask the user first) [fbtrace_id AbC]"
        );
        assert!(!e.transient());

        let e = error_from_response(Action::Terminate, 500, br#"{"error":{"code":"138004","message":"oops"}}"#);
        assert_eq!(e.code(), Some(ErrorCode::ConnectionError));
        assert!(e.transient());

        let e = error_from_response(Action::Accept, 502, b"<html>Bad gateway</html>");
        assert!(matches!(&e, GraphError::Http { status: 502, body, .. } if body.contains("Bad gateway")));
        assert!(e.transient());
        assert!(!error_from_response(Action::Accept, 404, b"").transient());
    }
}
