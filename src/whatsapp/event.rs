//! What Meta tells us, typed: the events the webhook hands on ([`WaEvent`]). Built from Meta's
//! JSON by `model`; consumed by the call registry and, later, the permission ledger.

use super::codes::ErrorCode;
use crate::ids::{CallId, MessageId, PhoneNumberId, WaId};
use std::fmt;
use std::time::SystemTime;

/// One webhook event about a call or a call permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaEvent {
    /// A call starts ringing us (user-initiated, with Meta's offer) or a call we placed was
    /// answered (business-initiated, with Meta's answer) (§2.2, §2.3).
    Connect(CallConnect),
    /// A call ended, whoever ended it (§2.5).
    Terminate(CallTerminate),
    /// Progress of a call we placed: RINGING, ACCEPTED, REJECTED (§2.4).
    Status(CallStatusUpdate),
    /// A user answered a call-permission request, or a permission changed by itself (§2.6).
    PermissionReply(PermissionReply),
}

impl WaEvent {
    /// The business number the event is for.
    pub fn phone_number_id(&self) -> &PhoneNumberId {
        match self {
            WaEvent::Connect(e) => &e.phone_number_id,
            WaEvent::Terminate(e) => &e.phone_number_id,
            WaEvent::Status(e) => &e.phone_number_id,
            WaEvent::PermissionReply(e) => &e.phone_number_id,
        }
    }

    /// The call the event is about; permission replies are about a user, not a call.
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            WaEvent::Connect(e) => Some(&e.call_id),
            WaEvent::Terminate(e) => Some(&e.call_id),
            WaEvent::Status(e) => Some(&e.call_id),
            WaEvent::PermissionReply(_) => None,
        }
    }

    /// When Meta says it happened.
    pub fn timestamp(&self) -> SystemTime {
        match self {
            WaEvent::Connect(e) => e.timestamp,
            WaEvent::Terminate(e) => e.timestamp,
            WaEvent::Status(e) => e.timestamp,
            WaEvent::PermissionReply(e) => e.timestamp,
        }
    }

    /// A short name for logs: `connect`, `terminate`, `status RINGING`, `permission_reply`.
    pub fn kind(&self) -> String {
        match self {
            WaEvent::Connect(_) => "connect".into(),
            WaEvent::Terminate(_) => "terminate".into(),
            WaEvent::Status(s) => format!("status {}", s.status),
            WaEvent::PermissionReply(_) => "permission_reply".into(),
        }
    }
}

/// Who placed the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Direction {
    UserInitiated,
    BusinessInitiated,
    /// A value Meta has not documented, kept for logs.
    Other(String),
}

impl Direction {
    pub(crate) fn parse(s: &str) -> Direction {
        match s.to_ascii_uppercase().as_str() {
            "USER_INITIATED" => Direction::UserInitiated,
            "BUSINESS_INITIATED" => Direction::BusinessInitiated,
            _ => Direction::Other(s.to_string()),
        }
    }
}

/// SDP text exactly as it travels in Meta's JSON (`session.sdp`): never rewritten, so what we
/// send in `accept` is byte for byte what we sent in `pre_accept` (§1.2).
#[derive(Clone, PartialEq, Eq)]
pub struct Sdp(String);

impl Sdp {
    pub fn new(text: impl Into<String>) -> Sdp {
        Sdp(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sdp {
    // A whole SDP in every debug print of an event buries the rest; its size says enough.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sdp({} bytes)", self.0.len())
    }
}

/// Whether a session description is an offer or an answer (`session.sdp_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpType {
    Offer,
    Answer,
}

impl SdpType {
    pub fn as_str(self) -> &'static str {
        match self {
            SdpType::Offer => "offer",
            SdpType::Answer => "answer",
        }
    }
}

/// `calls[].event = "connect"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallConnect {
    pub call_id: CallId,
    pub phone_number_id: PhoneNumberId,
    /// `metadata.display_phone_number`: the business number as Meta shows it.
    pub display_phone_number: Option<String>,
    pub from: WaId,
    pub to: WaId,
    pub direction: Direction,
    pub timestamp: SystemTime,
    /// Meta's offer (user-initiated) or answer (business-initiated). `None` when Meta sent
    /// none, which the call cannot go on without.
    pub session: Option<(SdpType, Sdp)>,
    /// `contacts[].profile.name` of the user, when Meta sends it.
    pub caller_name: Option<String>,
    /// Set when the call came from a `wa.me/call` deep link with `biz_payload` (§2.2).
    pub deeplink_payload: Option<String>,
    /// Set when the call came from a call button carrying a `payload` (§2.2).
    pub cta_payload: Option<String>,
    pub biz_opaque_callback_data: Option<String>,
}

impl CallConnect {
    /// The WhatsApp user on the call: the caller of a user-initiated call, the callee of one we
    /// placed.
    pub fn user(&self) -> &WaId {
        match self.direction {
            Direction::BusinessInitiated => &self.to,
            _ => &self.from,
        }
    }
}

/// How Meta says a call ended. Samples disagree on case (§2.5); read case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminateStatus {
    Completed,
    Failed,
    Rejected,
    Other(String),
}

impl TerminateStatus {
    pub(crate) fn parse(s: &str) -> TerminateStatus {
        match s.to_ascii_uppercase().as_str() {
            "COMPLETED" => TerminateStatus::Completed,
            "FAILED" => TerminateStatus::Failed,
            "REJECTED" => TerminateStatus::Rejected,
            _ => TerminateStatus::Other(s.to_string()),
        }
    }
}

/// One entry of a webhook's `errors[]` (§2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedError {
    pub code: ErrorCode,
    pub message: Option<String>,
    pub details: Option<String>,
}

/// `calls[].event = "terminate"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTerminate {
    pub call_id: CallId,
    pub phone_number_id: PhoneNumberId,
    pub from: Option<WaId>,
    pub to: Option<WaId>,
    pub direction: Direction,
    pub timestamp: SystemTime,
    /// `None` when Meta sent no status.
    pub status: Option<TerminateStatus>,
    pub start_time: Option<SystemTime>,
    pub end_time: Option<SystemTime>,
    pub duration_seconds: Option<u64>,
    pub errors: Vec<ReportedError>,
    pub biz_opaque_callback_data: Option<String>,
}

impl CallTerminate {
    /// Whether the call was ever answered. `status` cannot tell (an unanswered business-initiated
    /// call may come as COMPLETED); `start_time`/`duration` are sent only for answered calls (§2.5).
    pub fn answered(&self) -> bool {
        self.start_time.is_some() || self.duration_seconds.is_some()
    }
}

/// `statuses[].status` of a call (§2.4), case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallStatus {
    Ringing,
    Accepted,
    Rejected,
    Other(String),
}

impl CallStatus {
    pub(crate) fn parse(s: &str) -> CallStatus {
        match s.to_ascii_uppercase().as_str() {
            "RINGING" => CallStatus::Ringing,
            "ACCEPTED" => CallStatus::Accepted,
            "REJECTED" => CallStatus::Rejected,
            _ => CallStatus::Other(s.to_string()),
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallStatus::Ringing => f.write_str("RINGING"),
            CallStatus::Accepted => f.write_str("ACCEPTED"),
            CallStatus::Rejected => f.write_str("REJECTED"),
            CallStatus::Other(s) => f.write_str(s),
        }
    }
}

/// `statuses[]` with `type: "call"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStatusUpdate {
    pub call_id: CallId,
    pub phone_number_id: PhoneNumberId,
    pub timestamp: SystemTime,
    pub status: CallStatus,
    pub recipient: Option<WaId>,
    pub biz_opaque_callback_data: Option<String>,
}

/// The user's answer to a permission request (`response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionResponse {
    Accept,
    Reject,
    Other(String),
}

/// What caused the reply (`response_source`, §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionSource {
    /// The user chose.
    UserAction,
    /// Granted by a user-initiated call with callback permission enabled, or revoked after
    /// unanswered calls.
    Automatic,
    Other(String),
}

/// What a permission reply refers to (`context.id`, §2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionContext {
    /// The permission-request message the user answered.
    Request(MessageId),
    /// The call that granted an automatic callback permission.
    Call(CallId),
}

/// `messages[].interactive.call_permission_reply` on the `messages` field (§2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionReply {
    pub phone_number_id: PhoneNumberId,
    pub user: WaId,
    pub message_id: MessageId,
    pub timestamp: SystemTime,
    pub response: PermissionResponse,
    pub is_permanent: bool,
    /// End of a temporary grant; no webhook comes when it passes (§2.6).
    pub expires: Option<SystemTime>,
    pub source: Option<PermissionSource>,
    pub context: Option<PermissionContext>,
}
