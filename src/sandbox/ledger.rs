//! What the sandbox's Meta knows about calls, and the rules it holds the business to: a pure
//! state machine. Graph requests (`POST /{version}/{PHONE_NUMBER_ID}/calls`, §1.2) and the user's
//! doings (hanging up, the answer window running out) go in with the time; a reply in Meta's
//! shape and [`Effect`]s come out, for the shell to carry out (answer the user's peer, start it
//! talking, end the call, send the terminate webhook). Every request is recorded on its call,
//! and every broken rule is counted as a [`Violation`].
//!
//! Refusals use Meta's error envelope (§1.4): 401 with Graph's code 190 for a bad token, HTTP 400
//! with code 100 ("invalid parameter", details in `error_data`) for everything about a request
//! itself, 138003 for a second call to a user already on one. §1.4 has no code for "accept after
//! terminate" or "accept SDP differs"; real Meta's exact codes there are not documented, so 100
//! with a precise `details` stands in.
//!
//! A request refused only because the user or Meta ended the call first (a terminate racing the
//! user's hang-up) is refused as Meta would, but is not a violation: the business could not
//! have known.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::ids::{CallId, PhoneNumberId, WaId};
use crate::media::wa_sdp::{check_local_sdp, parse_meta_offer, LocalRole, MetaOffer, WaSdpError};
use crate::whatsapp::{Action, ErrorCode};

/// §1.2: `biz_opaque_callback_data` is at most 512 characters.
const MAX_OPAQUE: usize = 512;
/// §1.1: Calling needs Graph v17.0 or newer.
const MIN_GRAPH_MAJOR: u32 = 17;
/// Graph's code for a missing or invalid access token.
const INVALID_TOKEN: i64 = 190;
/// Graph's subcode for "object does not exist" (an unknown id in the path).
const NO_SUCH_OBJECT: i64 = 33;

/// Where a call stands, as the sandbox's Meta sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// The user's phone rings (user-initiated), or the user's does (business-initiated).
    Offered,
    /// The business pre-accepted with its answer; the caller sees "Ringing" (§1.3).
    PreAccepted,
    /// Answered: the user talks.
    Accepted,
    /// The business declined it.
    Rejected,
    /// Ended, by anyone, after or without an answer.
    Terminated,
}

impl CallState {
    pub fn is_final(self) -> bool {
        matches!(self, CallState::Rejected | CallState::Terminated)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Offered => "offered",
            CallState::PreAccepted => "pre_accepted",
            CallState::Accepted => "accepted",
            CallState::Rejected => "rejected",
            CallState::Terminated => "terminated",
        }
    }
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The gateway, by `reject` or `terminate`.
    Business,
    /// The WhatsApp user hung up.
    User,
    /// Meta itself: the answer window ran out, or the call failed.
    Meta,
}

/// Who placed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    ByUser,
    ByBusiness,
}

/// The rule a refused request (or the business's media) broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// No bearer token, or not the configured one.
    Unauthorized,
    /// The path's version is not `vNN.N` of v17.0 or newer (§1.1).
    BadVersion,
    /// The path's phone number id is not a configured number.
    UnknownNumber,
    /// Not JSON, `messaging_product` not `whatsapp`, unknown or missing `action`, a missing
    /// field, `biz_opaque_callback_data` too long.
    MalformedRequest,
    /// `call_id` names no call Meta knows.
    UnknownCall,
    /// The call belongs to another business number than the path's.
    WrongNumber,
    /// pre_accept/accept/reject on a call the business placed itself.
    NotUserInitiated,
    /// `sdp_type` is not `answer` for pre_accept/accept (§1.2, §8.11) or `offer` for connect.
    WrongSdpType,
    /// SDP lines must end with CRLF (§1.2).
    SdpNotCrlf,
    /// The SDP breaks Meta's SDP rules (§5.2) or does not answer the user's offer.
    SdpInvalid,
    /// accept's SDP differs from pre_accept's, or a repeated pre_accept changed it (§1.2).
    AnswerChanged,
    /// A second accept, or pre_accept/reject of an accepted call.
    AlreadyAccepted,
    /// Any action on a call that has ended (no accept after terminate or reject).
    CallEnded,
    /// connect to a user who is already on a call with this number (138003).
    DuplicateCall,
    /// The user heard the business before accept: the WhatsApp client counts that as answered
    /// (§1.3, §8.1).
    MediaBeforeAccept,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Unauthorized => "unauthorized",
            Rule::BadVersion => "bad Graph version",
            Rule::UnknownNumber => "unknown phone number id",
            Rule::MalformedRequest => "malformed request",
            Rule::UnknownCall => "unknown call id",
            Rule::WrongNumber => "call of another number",
            Rule::NotUserInitiated => "not a user-initiated call",
            Rule::WrongSdpType => "wrong sdp_type",
            Rule::SdpNotCrlf => "SDP not CRLF",
            Rule::SdpInvalid => "invalid SDP",
            Rule::AnswerChanged => "answer SDP changed",
            Rule::AlreadyAccepted => "already accepted",
            Rule::CallEnded => "call already ended",
            Rule::DuplicateCall => "duplicate call",
            Rule::MediaBeforeAccept => "media before accept",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request refused, as Meta's error envelope will carry it (§1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    pub http_status: u16,
    pub code: ErrorCode,
    pub subcode: Option<i64>,
    pub error_type: &'static str,
    pub message: String,
    /// `error_data.details`: what exactly was wrong.
    pub details: String,
}

impl Refusal {
    fn new(rule: Rule, details: impl Into<String>) -> Refusal {
        let (http_status, code, error_type, message) = match rule {
            Rule::Unauthorized => (
                401,
                ErrorCode::Other(INVALID_TOKEN),
                "OAuthException",
                "Invalid OAuth access token - Cannot parse access token".to_owned(),
            ),
            Rule::DuplicateCall => (
                400,
                ErrorCode::DuplicateCall,
                "OAuthException",
                "(#138003) Duplicate call".to_owned(),
            ),
            Rule::UnknownNumber => (
                400,
                ErrorCode::InvalidParameter,
                "GraphMethodException",
                "Unsupported post request. Object does not exist, cannot be loaded due to \
                 missing permissions, or does not support this operation"
                    .to_owned(),
            ),
            _ => (400, ErrorCode::InvalidParameter, "OAuthException", "(#100) Invalid parameter".to_owned()),
        };
        Refusal {
            rule,
            http_status,
            code,
            subcode: (rule == Rule::UnknownNumber).then_some(NO_SUCH_OBJECT),
            error_type,
            message,
            details: details.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {} code {} ({}): {}", self.http_status, self.code.code(), self.rule, self.details)
    }
}

/// One `/calls` request as it arrived, and what came of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAction {
    pub at: SystemTime,
    /// `None` for an `action` value Meta does not know (`raw_action` has it).
    pub action: Option<Action>,
    pub raw_action: String,
    pub sdp_type: Option<String>,
    pub sdp: Option<String>,
    pub biz_opaque_callback_data: Option<String>,
    /// The call it was about (for connect: the call it placed).
    pub call_id: Option<CallId>,
    pub outcome: Result<(), Refusal>,
}

impl RecordedAction {
    pub fn succeeded(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// A broken rule: a refused request, or media the user heard before accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub at: SystemTime,
    pub call_id: Option<CallId>,
    pub action: Option<Action>,
    pub rule: Rule,
    pub details: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = self.action.map(|a| a.as_str()).unwrap_or("-");
        let call = self.call_id.as_ref().map(CallId::as_str).unwrap_or("-");
        write!(f, "{} ({action} on {call}): {}", self.rule, self.details)
    }
}

/// How a call ended, for the terminate webhook (§2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub call_id: CallId,
    pub by: Party,
    pub state: CallState,
    /// `(start, end)` of the answered part: present only if the call was answered (§2.5).
    pub answered: Option<(SystemTime, SystemTime)>,
    /// Meta's reason for a failed call (`errors[]`, §2.5).
    pub error: Option<ErrorCode>,
    pub biz_opaque_callback_data: Option<String>,
    pub at: SystemTime,
}

impl Ending {
    /// §2.5: `FAILED` when Meta has an error to report, otherwise `COMPLETED`.
    pub fn status(&self) -> &'static str {
        if self.error.is_some() {
            "FAILED"
        } else {
            "COMPLETED"
        }
    }

    /// Whole seconds answered, as `duration` carries them.
    pub fn duration(&self) -> Option<Duration> {
        self.answered.map(|(start, end)| end.duration_since(start).unwrap_or_default())
    }
}

/// What the shell must do after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Give the business's answer to the user's peer; once per call.
    Answer { call_id: CallId, sdp: String },
    /// The call is accepted: the user starts talking (never before, §1.3).
    Talk { call_id: CallId },
    /// The call ended: close the user's peer and send the terminate webhook.
    End(Ending),
    /// The business placed a call (connect) to `to` with its offer.
    Placed { call_id: CallId, phone_number_id: PhoneNumberId, to: WaId, offer: String },
}

/// A `/calls` request as the shell hands it over.
#[derive(Debug, Clone, Copy)]
pub struct GraphRequest<'a> {
    pub version: &'a str,
    pub phone_number_id: &'a str,
    /// The `Authorization: Bearer` token, if any.
    pub bearer: Option<&'a str>,
    pub body: &'a [u8],
}

/// The success bodies of §1.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `{"messaging_product":"whatsapp","success":true}`
    Success,
    /// `{"messaging_product":"whatsapp","calls":[{"id":…}]}`
    Placed(CallId),
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub reply: Reply,
    pub effects: Vec<Effect>,
    /// The record of this request, with the call it belongs to (if a known one).
    pub recorded: RecordedAction,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("{0} is not a configured business number")]
    UnknownNumber(PhoneNumberId),
    #[error("call id {0} is already in use")]
    DuplicateCallId(CallId),
    #[error("the user's offer does not read as Meta's: {0}")]
    BadOffer(#[from] WaSdpError),
}

/// One call as Meta keeps it.
#[derive(Debug, Clone)]
struct CallRecord {
    phone_number_id: PhoneNumberId,
    user: WaId,
    placed: Placed,
    state: CallState,
    /// The user's offer, to check the business's answer against.
    offer: Option<MetaOffer>,
    /// The SDP of the first successful pre_accept or accept.
    answer: Option<String>,
    accepted_at: Option<SystemTime>,
    ended_by: Option<Party>,
    biz_opaque_callback_data: Option<String>,
    actions: Vec<RecordedAction>,
}

/// The sandbox's Meta: configured numbers and token, every call, every request.
#[derive(Debug, Clone)]
pub struct Ledger {
    access_token: String,
    numbers: BTreeMap<PhoneNumberId, String>,
    calls: BTreeMap<CallId, CallRecord>,
    /// Requests about no known call (bad token, unknown number or call id, malformed).
    stray: Vec<RecordedAction>,
    violations: Vec<Violation>,
}

impl Ledger {
    /// `numbers`: phone number id → display number.
    pub fn new(access_token: impl Into<String>, numbers: impl IntoIterator<Item = (PhoneNumberId, String)>) -> Ledger {
        Ledger {
            access_token: access_token.into(),
            numbers: numbers.into_iter().collect(),
            calls: BTreeMap::new(),
            stray: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// The display number of a configured number.
    pub fn display_number(&self, id: &PhoneNumberId) -> Option<&str> {
        self.numbers.get(id).map(String::as_str)
    }

    /// A user calls a business number with `offer_sdp`; the connect webhook goes out next.
    pub fn offer(
        &mut self,
        call_id: CallId,
        phone_number_id: PhoneNumberId,
        user: WaId,
        offer_sdp: &str,
    ) -> Result<(), LedgerError> {
        if !self.numbers.contains_key(&phone_number_id) {
            return Err(LedgerError::UnknownNumber(phone_number_id));
        }
        if self.calls.contains_key(&call_id) {
            return Err(LedgerError::DuplicateCallId(call_id));
        }
        let offer = parse_meta_offer(offer_sdp)?;
        self.calls.insert(call_id, CallRecord::new(phone_number_id, user, Placed::ByUser, Some(offer)));
        Ok(())
    }

    /// One Graph request. `fresh_call_id` names the call a `connect` would place.
    pub fn handle(&mut self, now: SystemTime, req: GraphRequest<'_>, fresh_call_id: CallId) -> Handled {
        let parsed = Body::parse(req.body);
        let mut recorded = RecordedAction {
            at: now,
            action: parsed.as_ref().ok().and_then(|b| b.action),
            raw_action: parsed.as_ref().map(|b| b.raw_action.clone()).unwrap_or_default(),
            sdp_type: parsed.as_ref().ok().and_then(|b| b.sdp_type.clone()),
            sdp: parsed.as_ref().ok().and_then(|b| b.sdp.clone()),
            biz_opaque_callback_data: parsed.as_ref().ok().and_then(|b| b.opaque.clone()),
            call_id: parsed
                .as_ref()
                .ok()
                .and_then(|b| b.call_id.clone())
                .map(CallId::new)
                .filter(|id| self.calls.contains_key(id)),
            outcome: Ok(()),
        };
        let decided = self.decide(now, req, parsed, fresh_call_id);
        let (reply, effects, race) = match decided {
            Ok((reply, effects)) => (reply, effects, false),
            Err((refusal, race)) => (Reply::Refused(refusal), Vec::new(), race),
        };
        if let Reply::Placed(id) = &reply {
            recorded.call_id = Some(id.clone());
        }
        if let Reply::Refused(refusal) = &reply {
            recorded.outcome = Err(refusal.clone());
            if !race {
                self.violations.push(Violation {
                    at: now,
                    call_id: recorded.call_id.clone(),
                    action: recorded.action,
                    rule: refusal.rule,
                    details: refusal.details.clone(),
                });
            }
        }
        match recorded.call_id.as_ref().and_then(|id| self.calls.get_mut(id)) {
            Some(call) => call.actions.push(recorded.clone()),
            None => self.stray.push(recorded.clone()),
        }
        Handled { reply, effects, recorded }
    }

    /// The user hangs up. `None` if the call had already ended (or is unknown).
    pub fn user_hangs_up(&mut self, now: SystemTime, call_id: &CallId) -> Option<Ending> {
        self.end(now, call_id, Party::User, None, false)
    }

    /// The business did not accept in time: Meta ends the call ("Not Answered", §1.3).
    /// `None` if it was accepted or had ended.
    pub fn answer_window_passed(&mut self, now: SystemTime, call_id: &CallId) -> Option<Ending> {
        let call = self.calls.get(call_id)?;
        if call.state == CallState::Accepted {
            return None;
        }
        self.end(now, call_id, Party::Meta, None, false)
    }

    /// The call failed on Meta's or the user's side (e.g. the peer could not use the business's
    /// answer: 138019). `None` if it had ended.
    pub fn fail(&mut self, now: SystemTime, call_id: &CallId, error: ErrorCode) -> Option<Ending> {
        self.end(now, call_id, Party::Meta, Some(error), false)
    }

    /// The user heard the business before accept.
    pub fn media_before_accept(&mut self, now: SystemTime, call_id: &CallId, details: impl Into<String>) {
        self.violations.push(Violation {
            at: now,
            call_id: Some(call_id.clone()),
            action: None,
            rule: Rule::MediaBeforeAccept,
            details: details.into(),
        });
    }

    pub fn state(&self, call_id: &CallId) -> Option<CallState> {
        self.calls.get(call_id).map(|c| c.state)
    }

    pub fn ended_by(&self, call_id: &CallId) -> Option<Party> {
        self.calls.get(call_id).and_then(|c| c.ended_by)
    }

    /// Every request about this call, in arrival order.
    pub fn actions(&self, call_id: &CallId) -> Vec<RecordedAction> {
        self.calls.get(call_id).map(|c| c.actions.clone()).unwrap_or_default()
    }

    /// Requests about no known call.
    pub fn stray(&self) -> &[RecordedAction] {
        &self.stray
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    pub fn violations_of(&self, call_id: &CallId) -> Vec<Violation> {
        self.violations.iter().filter(|v| v.call_id.as_ref() == Some(call_id)).cloned().collect()
    }

    /// The reply and effects of one request, or its refusal and whether the refusal is only a
    /// race with the user or Meta (then not a violation).
    fn decide(
        &mut self,
        now: SystemTime,
        req: GraphRequest<'_>,
        parsed: Result<Body, Refusal>,
        fresh_call_id: CallId,
    ) -> Result<(Reply, Vec<Effect>), (Refusal, bool)> {
        let refuse = |rule: Rule, details: String| (Refusal::new(rule, details), false);
        match req.bearer {
            Some(t) if constant_time_eq(t.as_bytes(), self.access_token.as_bytes()) => {}
            Some(_) => return Err(refuse(Rule::Unauthorized, "the bearer token is not the configured access_token".into())),
            None => return Err(refuse(Rule::Unauthorized, "no Authorization: Bearer header".into())),
        }
        if graph_major(req.version).is_none_or(|m| m < MIN_GRAPH_MAJOR) {
            return Err(refuse(Rule::BadVersion, format!("version {:?}: Calling needs vNN.N of v17.0 or newer (§1.1)", req.version)));
        }
        let phone = PhoneNumberId::new(req.phone_number_id);
        if !self.numbers.contains_key(&phone) {
            return Err(refuse(Rule::UnknownNumber, format!("Object with ID '{}' does not exist", req.phone_number_id)));
        }
        let body = parsed.map_err(|refusal| (refusal, false))?;
        if body.messaging_product.as_deref() != Some("whatsapp") {
            return Err(refuse(Rule::MalformedRequest, "messaging_product must be \"whatsapp\"".into()));
        }
        let Some(action) = body.action else {
            return Err(refuse(
                Rule::MalformedRequest,
                format!("action {:?} is not one of connect, pre_accept, accept, reject, terminate", body.raw_action),
            ));
        };
        if body.opaque.as_ref().is_some_and(|o| o.chars().count() > MAX_OPAQUE) {
            return Err(refuse(Rule::MalformedRequest, "biz_opaque_callback_data is longer than 512 characters (§1.2)".into()));
        }
        if action == Action::Connect {
            return self.connect(phone, body, fresh_call_id).map_err(|r| (r, false));
        }
        let Some(call_id) = body.call_id.clone().map(CallId::new) else {
            return Err(refuse(Rule::MalformedRequest, format!("{action} needs call_id")));
        };
        let Some(call) = self.calls.get_mut(&call_id) else {
            return Err(refuse(Rule::UnknownCall, format!("call_id {call_id} is not a call of this account")));
        };
        if call.phone_number_id != phone {
            return Err(refuse(Rule::WrongNumber, format!("call {call_id} is a call of {}, not of {phone}", call.phone_number_id)));
        }
        if !call.live() {
            // The user or Meta ended it first: the business could not have known.
            let race = call.ended_by != Some(Party::Business);
            let how = match call.ended_by {
                Some(Party::Business) => "the business already ended it",
                Some(Party::User) => "the user hung up",
                Some(Party::Meta) | None => "Meta ended it",
            };
            return Err((Refusal::new(Rule::CallEnded, format!("{action} on call {call_id}, which has ended ({how})")), race));
        }
        if action != Action::Terminate && call.placed == Placed::ByBusiness {
            return Err(refuse(Rule::NotUserInitiated, format!("{action} is for user-initiated calls; {call_id} was placed by the business")));
        }
        match action {
            Action::PreAccept | Action::Accept => {
                let sdp = answer_sdp(action, &body, call.offer.as_ref()).map_err(|r| (r, false))?;
                call.answer_action(now, action, sdp, body.opaque, &call_id).map_err(|r| (r, false))
            }
            Action::Reject => {
                if call.state == CallState::Accepted {
                    return Err(refuse(Rule::AlreadyAccepted, format!("call {call_id} is accepted: end it with terminate")));
                }
                let ending = self.end(now, &call_id, Party::Business, None, true).expect("the call is live");
                Ok((Reply::Success, vec![Effect::End(ending)]))
            }
            Action::Terminate => {
                let ending = self.end(now, &call_id, Party::Business, None, false).expect("the call is live");
                Ok((Reply::Success, vec![Effect::End(ending)]))
            }
            Action::Connect => unreachable!("handled above"),
        }
    }

    /// A business-initiated call (§1.2 connect): recorded and given an id; the user's side of
    /// it is up to the shell.
    fn connect(&mut self, phone: PhoneNumberId, body: Body, call_id: CallId) -> Result<(Reply, Vec<Effect>), Refusal> {
        let Some(to) = body.to.filter(|t| !t.is_empty()) else {
            return Err(Refusal::new(Rule::MalformedRequest, "connect needs to (the user's wa_id)"));
        };
        if !to.chars().all(|c| c.is_ascii_digit()) {
            return Err(Refusal::new(Rule::MalformedRequest, format!("to {to:?} must be digits, without + (a wa_id)")));
        }
        let to = WaId::new(to);
        if body.sdp_type.as_deref() != Some("offer") {
            return Err(Refusal::new(Rule::WrongSdpType, format!("connect carries sdp_type \"offer\", not {:?}", body.sdp_type)));
        }
        let sdp = body.sdp.ok_or_else(|| Refusal::new(Rule::MalformedRequest, "connect needs session.sdp"))?;
        check_sdp_text(&sdp, LocalRole::Offer)?;
        if self.calls.values().any(|c| c.live() && c.user == to && c.phone_number_id == phone) {
            return Err(Refusal::new(Rule::DuplicateCall, format!("{to} is already on a call with {phone}")));
        }
        let mut call = CallRecord::new(phone.clone(), to.clone(), Placed::ByBusiness, None);
        call.biz_opaque_callback_data = body.opaque;
        self.calls.insert(call_id.clone(), call);
        let placed = Effect::Placed { call_id: call_id.clone(), phone_number_id: phone, to, offer: sdp };
        Ok((Reply::Placed(call_id), vec![placed]))
    }

    fn end(&mut self, now: SystemTime, call_id: &CallId, by: Party, error: Option<ErrorCode>, rejected: bool) -> Option<Ending> {
        let call = self.calls.get_mut(call_id).filter(|c| c.live())?;
        let answered = call.accepted_at.map(|start| (start, now.max(start)));
        call.state = if rejected { CallState::Rejected } else { CallState::Terminated };
        call.ended_by = Some(by);
        Some(Ending {
            call_id: call_id.clone(),
            by,
            state: call.state,
            answered,
            error,
            biz_opaque_callback_data: call.biz_opaque_callback_data.clone(),
            at: now,
        })
    }
}

impl CallRecord {
    fn new(phone_number_id: PhoneNumberId, user: WaId, placed: Placed, offer: Option<MetaOffer>) -> CallRecord {
        CallRecord {
            phone_number_id,
            user,
            placed,
            state: CallState::Offered,
            offer,
            answer: None,
            accepted_at: None,
            ended_by: None,
            biz_opaque_callback_data: None,
            actions: Vec::new(),
        }
    }

    fn live(&self) -> bool {
        !self.state.is_final()
    }

    /// pre_accept or accept with an SDP already checked against the offer.
    fn answer_action(
        &mut self,
        now: SystemTime,
        action: Action,
        sdp: String,
        opaque: Option<String>,
        call_id: &CallId,
    ) -> Result<(Reply, Vec<Effect>), Refusal> {
        if self.state == CallState::Accepted {
            return Err(Refusal::new(Rule::AlreadyAccepted, format!("{action} on call {call_id}, which is already accepted")));
        }
        if let Some(earlier) = &self.answer {
            if *earlier != sdp {
                return Err(Refusal::new(
                    Rule::AnswerChanged,
                    format!("the SDP of this {action} differs from the pre_accept's ({}); it must be byte for byte the same (§1.2)", first_difference(earlier, &sdp)),
                ));
            }
        }
        let mut effects = Vec::new();
        if self.answer.is_none() {
            effects.push(Effect::Answer { call_id: call_id.clone(), sdp: sdp.clone() });
            self.answer = Some(sdp);
        }
        if action == Action::Accept {
            self.state = CallState::Accepted;
            self.accepted_at = Some(now);
            if opaque.is_some() {
                self.biz_opaque_callback_data = opaque;
            }
            effects.push(Effect::Talk { call_id: call_id.clone() });
        } else {
            // A repeated pre_accept with the same SDP (a retry) changes nothing.
            self.state = CallState::PreAccepted;
        }
        Ok((Reply::Success, effects))
    }
}

/// The answer SDP of a pre_accept or accept, checked: `sdp_type` answer, CRLF, Meta's rules and
/// a fit to the user's offer.
fn answer_sdp(action: Action, body: &Body, offer: Option<&MetaOffer>) -> Result<String, Refusal> {
    if body.sdp_type.as_deref() != Some("answer") {
        return Err(Refusal::new(
            Rule::WrongSdpType,
            format!("{action} carries sdp_type \"answer\", not {:?} (§1.2, whatsapp-api-js PR #522)", body.sdp_type),
        ));
    }
    let sdp = body.sdp.clone().ok_or_else(|| Refusal::new(Rule::MalformedRequest, format!("{action} needs session.sdp")))?;
    let role = match offer {
        Some(offer) => LocalRole::AnswerTo(offer),
        None => unreachable!("user-initiated calls always have the user's offer"),
    };
    check_sdp_text(&sdp, role)?;
    Ok(sdp)
}

fn check_sdp_text(sdp: &str, role: LocalRole<'_>) -> Result<(), Refusal> {
    let lone = sdp.replace("\r\n", "");
    if lone.contains('\n') || lone.contains('\r') || !sdp.ends_with("\r\n") {
        return Err(Refusal::new(Rule::SdpNotCrlf, "SDP lines must end with CRLF (\\r\\n), the last one too (§1.2)"));
    }
    check_local_sdp(sdp, role).map_err(|problems| Refusal::new(Rule::SdpInvalid, problems.join("; ")))
}

/// Where two SDPs first differ, for a refusal a person can act on.
fn first_difference(a: &str, b: &str) -> String {
    let line = a.split("\r\n").zip(b.split("\r\n")).position(|(x, y)| x != y);
    match line {
        Some(i) => format!(
            "line {}: {:?} vs {:?}",
            i + 1,
            a.split("\r\n").nth(i).unwrap_or_default(),
            b.split("\r\n").nth(i).unwrap_or_default()
        ),
        None => format!("{} vs {} bytes", a.len(), b.len()),
    }
}

/// `vNN.N` → NN.
fn graph_major(version: &str) -> Option<u32> {
    let (major, minor) = version.strip_prefix('v')?.split_once('.')?;
    minor.parse::<u32>().ok()?;
    major.parse().ok()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A `/calls` body, read as Meta reads it: exact lower-case action names, the fields of §1.2.
#[derive(Debug)]
struct Body {
    messaging_product: Option<String>,
    action: Option<Action>,
    raw_action: String,
    call_id: Option<String>,
    to: Option<String>,
    sdp_type: Option<String>,
    sdp: Option<String>,
    opaque: Option<String>,
}

impl Body {
    /// A body that is not a JSON object is refused whole.
    fn parse(bytes: &[u8]) -> Result<Body, Refusal> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| Refusal::new(Rule::MalformedRequest, format!("the body is not JSON: {e}")))?;
        if !value.is_object() {
            return Err(Refusal::new(Rule::MalformedRequest, "the body is not a JSON object"));
        }
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        let raw_action = text(&value, "action").unwrap_or_default();
        // §1.2 spells actions in lower case; whether Meta takes upper case is unconfirmed (§10),
        // so the sandbox does not.
        let action = [Action::Connect, Action::PreAccept, Action::Accept, Action::Reject, Action::Terminate]
            .into_iter()
            .find(|a| a.as_str() == raw_action);
        let session = value.get("session");
        Ok(Body {
            messaging_product: text(&value, "messaging_product"),
            action,
            raw_action,
            call_id: text(&value, "call_id"),
            to: text(&value, "to"),
            sdp_type: session.and_then(|s| text(s, "sdp_type")),
            sdp: session.and_then(|s| text(s, "sdp")),
            opaque: text(&value, "biz_opaque_callback_data"),
        })
    }
}

#[cfg(test)]
mod tests;
