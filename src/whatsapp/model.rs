//! Meta's webhook JSON (§2) turned into [`WaEvent`]s.
//!
//! Lenient where Meta is inconsistent: numbers may come as strings or numbers, status and event
//! names in any case, unknown fields are ignored, and one malformed or unknown item is skipped
//! (and reported) without losing the rest of a batch (§2.1: up to 1000 updates per POST).
//! Strict where it matters: an item without its call id, number id or timestamp is skipped,
//! since dedupe and routing cannot work without them.

use super::codes::ErrorCode;
use super::event::*;
use crate::ids::{CallId, MessageId, PhoneNumberId, WaId};
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one POST carried.
#[derive(Debug, Default)]
pub struct Notification {
    /// Events about calls and call permissions, in the order Meta listed them.
    pub events: Vec<WaEvent>,
    /// Calling items that could not be used: malformed, or of a kind we do not know. Worth a
    /// warning, never an error for the whole batch.
    pub skipped: Vec<Skipped>,
    /// Ordinary traffic on a shared callback URL that is not about calls (text messages,
    /// message delivery statuses, other fields). Worth a debug line at most.
    pub ignored: Vec<Skipped>,
}

/// One item left out, where it was in the body and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// A JSON path such as `entry[0].changes[1].value.calls[2]`.
    pub place: String,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.reason)
    }
}

/// A body that is not a webhook notification at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object with an entry list")]
    NotANotification,
}

/// Parses a webhook POST body (already checked against its signature).
pub fn parse_notification(body: &[u8]) -> Result<Notification, ParseError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| ParseError::NotJson(e.to_string()))?;
    let Some(entries) = root.get("entry").and_then(Value::as_array) else {
        return Err(ParseError::NotANotification);
    };
    let mut out = Notification::default();
    let object = root.get("object").and_then(Value::as_str).unwrap_or_default();
    if !object.eq_ignore_ascii_case("whatsapp_business_account") {
        out.ignored.push(Skipped { place: "object".into(), reason: format!("object {object:?} is not whatsapp_business_account") });
        return Ok(out);
    }
    for (i, entry) in entries.iter().enumerate() {
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            out.skipped.push(Skipped { place: format!("entry[{i}]"), reason: "no changes list".into() });
            continue;
        };
        for (j, change) in changes.iter().enumerate() {
            let place = format!("entry[{i}].changes[{j}]");
            let field = change.get("field").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
            let Some(value) = change.get("value").filter(|v| v.is_object()) else {
                out.skipped.push(Skipped { place, reason: "no value object".into() });
                continue;
            };
            match field.as_str() {
                "calls" | "messages" => parse_value(&place, &field, value, &mut out),
                other => out.ignored.push(Skipped { place, reason: format!("field {other:?} is not about calls") }),
            }
        }
    }
    Ok(out)
}

/// One `changes[].value` of the `calls` or `messages` field.
fn parse_value(place: &str, field: &str, value: &Value, out: &mut Notification) {
    let place = format!("{place}.value");
    let meta: RawMetadata = value.get("metadata").and_then(|m| RawMetadata::deserialize(m).ok()).unwrap_or_default();
    let contacts: Vec<RawContact> = list(value, "contacts").filter_map(|c| RawContact::deserialize(c).ok()).collect();
    // §2.5: the errors of a failed call come beside `calls`, not inside the call object.
    let change_errors: Vec<ReportedError> = list(value, "errors").filter_map(reported_error).collect();
    let Some(phone_number_id) = meta.phone_number_id.clone().filter(|s| !s.is_empty()).map(PhoneNumberId::new) else {
        if value.get("calls").is_some() || value.get("statuses").is_some() || value.get("messages").is_some() {
            out.skipped.push(Skipped { place, reason: "no metadata.phone_number_id: cannot tell which number it is for".into() });
        }
        return;
    };
    let ctx = Ctx { phone_number_id, meta: &meta, contacts: &contacts, change_errors: &change_errors };

    let mut about_calls = false;
    for (k, call) in list(value, "calls").enumerate() {
        about_calls = true;
        let place = format!("{place}.calls[{k}]");
        match RawCall::deserialize(call).map_err(|e| e.to_string()).and_then(|raw| ctx.call(raw)) {
            Ok(event) => out.events.push(event),
            Err(reason) => out.skipped.push(Skipped { place, reason }),
        }
    }
    for (k, status) in list(value, "statuses").enumerate() {
        let place = format!("{place}.statuses[{k}]");
        let raw = match RawStatus::deserialize(status) {
            Ok(raw) => raw,
            Err(e) if field == "calls" => {
                out.skipped.push(Skipped { place, reason: e.to_string() });
                continue;
            }
            Err(_) => continue,
        };
        // §2.4: call statuses are told apart by `type: "call"`; message delivery statuses share
        // the list on the messages field. On the calls field an untyped status is a call's.
        let is_call = match raw.kind.as_deref() {
            Some(t) => t.eq_ignore_ascii_case("call"),
            None => field == "calls",
        };
        if !is_call {
            out.ignored.push(Skipped { place, reason: "a message status, not a call's".into() });
            continue;
        }
        about_calls = true;
        match ctx.status(raw) {
            Ok(event) => out.events.push(event),
            Err(reason) => out.skipped.push(Skipped { place, reason }),
        }
    }
    for (k, message) in list(value, "messages").enumerate() {
        let place = format!("{place}.messages[{k}]");
        let raw = match RawMessage::deserialize(message) {
            Ok(raw) => raw,
            Err(e) => {
                out.ignored.push(Skipped { place, reason: format!("unreadable message: {e}") });
                continue;
            }
        };
        let Some(reply) = raw.interactive.as_ref().and_then(RawInteractive::permission_reply) else {
            out.ignored.push(Skipped { place, reason: "a message, not a call_permission_reply".into() });
            continue;
        };
        match ctx.permission_reply(&raw, reply) {
            Ok(event) => out.events.push(event),
            Err(reason) => out.skipped.push(Skipped { place, reason }),
        }
    }
    if !about_calls && !change_errors.is_empty() {
        // e.g. 131044 (no payment method) comes as an error webhook on a user-initiated call.
        let codes: Vec<String> = change_errors.iter().map(|e| e.code.to_string()).collect();
        out.skipped.push(Skipped { place: format!("{place}.errors"), reason: format!("errors without a call: {}", codes.join(", ")) });
    }
}

fn list<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value.get(key).and_then(Value::as_array).into_iter().flatten()
}

struct Ctx<'a> {
    phone_number_id: PhoneNumberId,
    meta: &'a RawMetadata,
    contacts: &'a [RawContact],
    change_errors: &'a [ReportedError],
}

impl Ctx<'_> {
    fn call(&self, raw: RawCall) -> Result<WaEvent, String> {
        let call_id = required(raw.id, "id").map(CallId::new)?;
        let timestamp = unix(required(raw.timestamp, "timestamp")?);
        let direction = raw.direction.as_deref().map(Direction::parse).unwrap_or(Direction::Other(String::new()));
        let event = required(raw.event, "event")?;
        match event.to_ascii_lowercase().as_str() {
            "connect" => {
                let from = required(raw.from, "from").map(WaId::new)?;
                let to = required(raw.to, "to").map(WaId::new)?;
                let session = raw.session.and_then(|s| {
                    let sdp = s.sdp.filter(|sdp| !sdp.is_empty())?;
                    let kind = match s.sdp_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
                        Some("offer") => SdpType::Offer,
                        Some("answer") => SdpType::Answer,
                        // §2.2/§2.3: a user's call carries an offer, an answered call of ours an answer.
                        _ => match direction {
                            Direction::UserInitiated => SdpType::Offer,
                            Direction::BusinessInitiated => SdpType::Answer,
                            Direction::Other(_) => return None,
                        },
                    };
                    Some((kind, Sdp::new(sdp)))
                });
                let mut connect = CallConnect {
                    call_id,
                    phone_number_id: self.phone_number_id.clone(),
                    display_phone_number: self.meta.display_phone_number.clone(),
                    from,
                    to,
                    direction,
                    timestamp,
                    session,
                    caller_name: None,
                    deeplink_payload: raw.deeplink_payload,
                    cta_payload: raw.cta_payload,
                    biz_opaque_callback_data: raw.biz_opaque_callback_data,
                };
                connect.caller_name = self.name_of(connect.user());
                Ok(WaEvent::Connect(connect))
            }
            "terminate" => {
                let mut errors: Vec<ReportedError> = raw.errors.iter().filter_map(reported_error).collect();
                if errors.is_empty() {
                    errors = self.change_errors.to_vec();
                }
                Ok(WaEvent::Terminate(CallTerminate {
                    call_id,
                    phone_number_id: self.phone_number_id.clone(),
                    from: raw.from.map(WaId::new),
                    to: raw.to.map(WaId::new),
                    direction,
                    timestamp,
                    status: raw.status.as_deref().map(TerminateStatus::parse),
                    start_time: raw.start_time.map(unix),
                    end_time: raw.end_time.map(unix),
                    duration_seconds: raw.duration,
                    errors,
                    biz_opaque_callback_data: raw.biz_opaque_callback_data,
                }))
            }
            other => Err(format!("unknown call event {other:?}")),
        }
    }

    fn status(&self, raw: RawStatus) -> Result<WaEvent, String> {
        Ok(WaEvent::Status(CallStatusUpdate {
            call_id: required(raw.id, "id").map(CallId::new)?,
            phone_number_id: self.phone_number_id.clone(),
            timestamp: unix(required(raw.timestamp, "timestamp")?),
            status: CallStatus::parse(&required(raw.status, "status")?),
            recipient: raw.recipient_id.map(WaId::new),
            biz_opaque_callback_data: raw.biz_opaque_callback_data,
        }))
    }

    fn permission_reply(&self, raw: &RawMessage, reply: &RawPermissionReply) -> Result<WaEvent, String> {
        let response = match required(reply.response.clone(), "response")?.to_ascii_lowercase().as_str() {
            "accept" => PermissionResponse::Accept,
            "reject" => PermissionResponse::Reject,
            other => PermissionResponse::Other(other.to_string()),
        };
        let source = reply.response_source.as_deref().map(|s| match s.to_ascii_lowercase().as_str() {
            "user_action" => PermissionSource::UserAction,
            "automatic" => PermissionSource::Automatic,
            other => PermissionSource::Other(other.to_string()),
        });
        // §2.6: context.id is the request's wamid, or a wacid for an automatic callback grant.
        let context = raw.context.as_ref().and_then(|c| c.id.clone()).filter(|id| !id.is_empty()).map(|id| {
            if id.starts_with("wacid.") {
                PermissionContext::Call(CallId::new(id))
            } else {
                PermissionContext::Request(MessageId::new(id))
            }
        });
        Ok(WaEvent::PermissionReply(PermissionReply {
            phone_number_id: self.phone_number_id.clone(),
            user: required(raw.from.clone(), "from").map(WaId::new)?,
            message_id: required(raw.id.clone(), "id").map(MessageId::new)?,
            timestamp: unix(required(raw.timestamp, "timestamp")?),
            response,
            is_permanent: reply.is_permanent.unwrap_or(false),
            expires: reply.expiration_timestamp.map(unix),
            source,
            context,
        }))
    }

    fn name_of(&self, user: &WaId) -> Option<String> {
        let named = |c: &RawContact| c.profile.as_ref().and_then(|p| p.name.clone());
        self.contacts
            .iter()
            .find(|c| c.wa_id.as_deref() == Some(user.as_str()))
            .and_then(named)
            .or_else(|| if self.contacts.len() == 1 { named(&self.contacts[0]) } else { None })
    }
}

fn required<T>(v: Option<T>, name: &str) -> Result<T, String> {
    v.ok_or_else(|| format!("no {name}"))
}

fn unix(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn reported_error(v: &Value) -> Option<ReportedError> {
    let raw = RawError::deserialize(v).ok()?;
    Some(ReportedError {
        code: ErrorCode::from_code(raw.code?),
        message: raw.message.or(raw.title),
        details: raw.error_data.and_then(|d| d.details),
    })
}

#[derive(Debug, Default, Deserialize)]
struct RawMetadata {
    #[serde(default, deserialize_with = "lenient_string")]
    phone_number_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    display_phone_number: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawContact {
    #[serde(default, deserialize_with = "lenient_string")]
    wa_id: Option<String>,
    #[serde(default)]
    profile: Option<RawProfile>,
}

#[derive(Debug, Deserialize)]
struct RawProfile {
    #[serde(default, deserialize_with = "lenient_string")]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawCall {
    #[serde(default, deserialize_with = "lenient_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    event: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    timestamp: Option<u64>,
    #[serde(default, deserialize_with = "lenient_string")]
    from: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    to: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    direction: Option<String>,
    #[serde(default)]
    session: Option<RawSession>,
    #[serde(default, deserialize_with = "lenient_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    start_time: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    end_time: Option<u64>,
    #[serde(default, deserialize_with = "lenient_u64")]
    duration: Option<u64>,
    #[serde(default, deserialize_with = "lenient_string")]
    deeplink_payload: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    cta_payload: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct RawSession {
    #[serde(default, deserialize_with = "lenient_string")]
    sdp_type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    sdp: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawStatus {
    #[serde(default, deserialize_with = "lenient_string")]
    id: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    status: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    timestamp: Option<u64>,
    #[serde(default, deserialize_with = "lenient_string")]
    recipient_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    biz_opaque_callback_data: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawMessage {
    #[serde(default, deserialize_with = "lenient_string")]
    from: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient_u64")]
    timestamp: Option<u64>,
    #[serde(default)]
    context: Option<RawContext>,
    #[serde(default)]
    interactive: Option<RawInteractive>,
}

#[derive(Debug, Deserialize)]
struct RawContext {
    #[serde(default, deserialize_with = "lenient_string")]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawInteractive {
    #[serde(default, rename = "type", deserialize_with = "lenient_string")]
    kind: Option<String>,
    #[serde(default)]
    call_permission_reply: Option<RawPermissionReply>,
}

impl RawInteractive {
    fn permission_reply(&self) -> Option<&RawPermissionReply> {
        let typed = self.kind.as_deref().is_none_or(|k| k.eq_ignore_ascii_case("call_permission_reply"));
        self.call_permission_reply.as_ref().filter(|_| typed)
    }
}

#[derive(Debug, Deserialize)]
struct RawPermissionReply {
    #[serde(default, deserialize_with = "lenient_string")]
    response: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    is_permanent: Option<bool>,
    #[serde(default, deserialize_with = "lenient_u64")]
    expiration_timestamp: Option<u64>,
    #[serde(default, deserialize_with = "lenient_string")]
    response_source: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawError {
    #[serde(default, deserialize_with = "lenient_i64")]
    code: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    message: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    title: Option<String>,
    #[serde(default)]
    error_data: Option<RawErrorData>,
}

/// `error_data` of an error object, in webhooks and in Graph API responses alike.
#[derive(Debug, Deserialize)]
pub(crate) struct RawErrorData {
    #[serde(default, deserialize_with = "lenient_string")]
    pub(crate) details: Option<String>,
}

/// A string, or a number written as one (ids and phone numbers have come both ways).
pub(crate) fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => None,
        other => return Err(de::Error::custom(format!("expected a string, found {other}"))),
    })
}

/// A non-negative whole number, as a JSON number or a string of digits (§2.2: `timestamp` is a
/// string, `duration` a number).
pub(crate) fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => Some(n.as_u64().ok_or_else(|| de::Error::custom(format!("expected a whole number, found {n}")))?),
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().parse().map_err(|_| de::Error::custom(format!("expected a whole number, found {s:?}")))?),
        Value::Null => None,
        other => return Err(de::Error::custom(format!("expected a whole number, found {other}"))),
    })
}

pub(crate) fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => Some(n.as_i64().ok_or_else(|| de::Error::custom(format!("expected an integer, found {n}")))?),
        Value::String(s) => Some(s.trim().parse().map_err(|_| de::Error::custom(format!("expected an integer, found {s:?}")))?),
        Value::Null => None,
        other => return Err(de::Error::custom(format!("expected an integer, found {other}"))),
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Value::Null => None,
        other => return Err(de::Error::custom(format!("expected true or false, found {other}"))),
    })
}

#[cfg(test)]
mod tests;
