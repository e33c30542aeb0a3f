//! Outgoing call legs (UAC): ring a registered user on all its contacts at once, or an
//! extension behind a trunk, and report one typed outcome.
//!
//! Each contact is a fork with its own INVITE transaction (RFC 3261 §16.6 done by the caller,
//! as a forking proxy would). The first 2xx wins; the other forks are cancelled, and a 2xx that
//! arrives after that is acknowledged and ended with BYE (§13.2.2.4).

use super::sdp::{self, NegotiatedAudio, SdpError};
use super::SipStack;
use crate::ids::{LegId, TrunkId, UserName};
use ezk_sip_auth::{ClientAuthenticator, DigestAuthenticator, DigestCredentials, RequestParts, ResponseParts};
use ezk_sip_core::transaction::TsxResponse;
use ezk_sip_core::transport::{OutgoingParts, OutgoingRequest};
use ezk_sip_core::{Endpoint, Request};
use ezk_sip_types::header::typed::{CSeq, Contact, ContentType};
use ezk_sip_types::print::AppendCtx;
use ezk_sip_types::uri::{NameAddr, SipUri};
use ezk_sip_types::{Method, Name, StatusCode};
use ezk_sip_ua::invite::initiator::{Early, EarlyResponse, InviteInitiator, Response};
use ezk_sip_ua::invite::session::{InviteSession, InviteSessionEvent};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tracing::Instrument;

/// Who to ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A user registered to whatsip: every live contact rings.
    User(UserName),
    /// An extension on a PBX behind a trunk: `2001@pbx`.
    Trunk { trunk: TrunkId, extension: String },
}

impl FromStr for DialTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<DialTarget, String> {
        let valid = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+*#".contains(c));
        match s.split_once('@') {
            Some((ext, trunk)) if valid(ext) && valid(trunk) => {
                Ok(DialTarget::Trunk { trunk: TrunkId::new(trunk), extension: ext.into() })
            }
            None if valid(s) => Ok(DialTarget::User(UserName::new(s))),
            _ => Err(format!("{s:?} is neither a user (1001) nor an extension on a trunk (2001@pbx)")),
        }
    }
}

impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialTarget::User(u) => write!(f, "{u}"),
            DialTarget::Trunk { trunk, extension } => write!(f, "{extension}@{trunk}"),
        }
    }
}

/// How a leg ended before (or instead of) being answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("no such user or trunk: {0}")]
    UnknownTarget(String),
    #[error("{0} has no registered phone")]
    NotRegistered(UserName),
    #[error("phone answered with unusable SDP: {0}")]
    BadAnswer(SdpError),
    #[error("SIP: {0}")]
    Sip(String),
}

/// The one result of ringing.
pub enum LegOutcome {
    Answered(Box<AnsweredLeg>),
    Busy,
    Rejected { code: u16, reason: String },
    NoAnswer,
    Failed(DialError),
}

impl LegOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            LegOutcome::Answered(_) => "answered",
            LegOutcome::Busy => "busy",
            LegOutcome::Rejected { .. } => "rejected",
            LegOutcome::NoAnswer => "no_answer",
            LegOutcome::Failed(_) => "failed",
        }
    }
}

impl fmt::Debug for LegOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LegOutcome::Answered(a) => write!(f, "Answered({})", a.contact),
            LegOutcome::Busy => f.write_str("Busy"),
            LegOutcome::Rejected { code, reason } => write!(f, "Rejected({code} {reason})"),
            LegOutcome::NoAnswer => f.write_str("NoAnswer"),
            LegOutcome::Failed(e) => write!(f, "Failed({e})"),
        }
    }
}

/// Progress a caller may want to show or log while phones ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Ringing { contact: String },
}

pub struct DialRequest {
    pub target: DialTarget,
    /// User part and display name of our From.
    pub caller: String,
    pub caller_name: Option<String>,
    pub sdp_offer: String,
    pub ring_timeout: Duration,
    /// Extra INVITE headers (`X-WhatsApp-...`) a phone or PBX may show or route on. Values
    /// are cleaned of control characters: they may carry text from outside (Meta, the user).
    pub headers: Vec<(String, String)>,
}

/// An answered leg: the INVITE session and the audio it agreed on.
pub struct AnsweredLeg {
    pub id: LegId,
    pub contact: String,
    pub audio: NegotiatedAudio,
    session: InviteSession,
    sdp_offer: String,
}

/// Why an answered leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEnd {
    /// The phone sent BYE.
    RemoteHangup,
    /// The dialog ended otherwise (session timer expiry, transport failure).
    Terminated,
}

impl AnsweredLeg {
    /// Runs the dialog until the phone hangs up; answers re-INVITEs (hold, refresh) with our
    /// original offer, which stays valid for the same RTP socket. Cancel-safe: dropping the
    /// future leaves the dialog as it was.
    pub async fn wait_end(&mut self) -> LegEnd {
        loop {
            match self.session.run().await {
                Ok(InviteSessionEvent::Bye(bye)) => {
                    if let Err(e) = self.session.handle_bye(bye).await {
                        tracing::warn!(error = %e, "could not answer BYE");
                    }
                    return LegEnd::RemoteHangup;
                }
                Ok(InviteSessionEvent::ReInviteReceived(reinvite)) => {
                    let response = self.session.dialog.create_response(&reinvite.invite, StatusCode::OK, None);
                    match response {
                        Ok(mut response) => {
                            response.msg.headers.insert(Name::CONTENT_TYPE, "application/sdp");
                            response.msg.body = self.sdp_offer.clone().into();
                            if let Err(e) = self.session.handle_reinvite_success(reinvite, response).await {
                                tracing::warn!(error = %e, "re-INVITE not acknowledged");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot answer re-INVITE"),
                    }
                }
                Ok(InviteSessionEvent::RefreshNeeded) => {
                    if let Err(e) = self.session.refresh().await {
                        tracing::warn!(error = %e, "session refresh failed");
                        return LegEnd::Terminated;
                    }
                }
                Ok(InviteSessionEvent::Notify(_)) => {}
                Ok(InviteSessionEvent::Terminated) | Err(_) => return LegEnd::Terminated,
            }
        }
    }

    /// Ends the call from our side with BYE.
    pub async fn hangup(mut self) {
        match self.session.terminate().await {
            Ok(r) => tracing::debug!(code = r.line.code.into_u16(), "BYE answered"),
            Err(e) => tracing::warn!(error = %e, "BYE not answered"),
        }
    }
}

/// A fork's verdict, as the aggregation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ForkEnd {
    Final { code: u16, reason: String },
    Unreachable(String),
    Cancelled,
}

enum ForkEvent {
    Ringing(String),
    Answered { session: Box<InviteSession>, response: Box<TsxResponse>, contact: String },
    Ended(ForkEnd),
}

/// Rings the target and returns once it answered, refused, or the ring timeout passed.
pub async fn dial(stack: &SipStack, request: DialRequest, progress: Option<mpsc::Sender<Progress>>) -> LegOutcome {
    let forks = match resolve(stack, &request.target).await {
        Ok(forks) => forks,
        Err(e) => return LegOutcome::Failed(e),
    };
    let from_uri: SipUri = match format!("sip:{}@{}", request.caller, stack.settings.sip.domain).parse() {
        Ok(u) => u,
        Err(_) => return LegOutcome::Failed(DialError::Sip("caller id does not form a SIP URI".into())),
    };
    let from = match &request.caller_name {
        Some(name) => NameAddr::new(name.clone(), from_uri),
        None => NameAddr::uri(from_uri),
    };
    let contact_uri: SipUri = format!("sip:{}@{}", request.caller, stack.contact_addr).parse().expect("contact URI");
    let contact = Contact::new(NameAddr::uri(contact_uri));

    let (cancel_tx, cancel_rx) = watch::channel(false);
    let (events_tx, events) = mpsc::channel(16);
    let mut events = LateAnswers(Some(events));
    let offer: Arc<str> = request.sdp_offer.clone().into();
    let headers: Arc<[(String, String)]> = request
        .headers
        .iter()
        .filter(|(name, _)| is_token(name))
        .map(|(name, value)| (name.clone(), header_value(value)))
        .collect();
    let fork_count = forks.len();
    for (uri, auth) in forks {
        let fork = Fork {
            endpoint: stack.endpoint.clone(),
            from: from.clone(),
            contact: contact.clone(),
            uri,
            auth,
            offer: offer.clone(),
            headers: headers.clone(),
            cancel: cancel_rx.clone(),
            events: events_tx.clone(),
        };
        let span = tracing::info_span!("fork", target = %fork.uri.default_print_ctx(), call_id = tracing::field::Empty);
        tokio::spawn(fork.run().instrument(span));
    }
    drop(events_tx);

    let deadline = Instant::now() + request.ring_timeout;
    // After the deadline, forks get a moment to report their CANCEL's 487; one that does not
    // (a phone gone silent) must not hold the caller for the 32 s of Timer B.
    let grace = deadline + CANCEL_GRACE;
    let mut ends = Vec::with_capacity(fork_count);
    let mut timed_out = false;
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = sleep_until(deadline), if !timed_out => {
                timed_out = true;
                cancel_tx.send_replace(true);
                continue;
            }
            _ = sleep_until(grace), if timed_out => break,
        };
        match event {
            Some(ForkEvent::Ringing(contact)) => {
                if let Some(p) = &progress {
                    let _ = p.try_send(Progress::Ringing { contact });
                }
            }
            Some(ForkEvent::Answered { session, response, contact }) => {
                cancel_tx.send_replace(true);
                // Late answers from the other forks are hung up by the drain task.
                drop(events);
                return answered(*session, *response, contact, request.sdp_offer).await;
            }
            Some(ForkEvent::Ended(end)) => ends.push(end),
            None => break,
        }
    }
    summarize(&ends, timed_out)
}

async fn answered(mut session: InviteSession, response: TsxResponse, contact: String, sdp_offer: String) -> LegOutcome {
    let has_sdp = response.headers.get_named::<ContentType>().is_ok_and(|ct| ct.0.eq_ignore_ascii_case("application/sdp"));
    let audio = if has_sdp { sdp::parse(&response.body).and_then(|s| sdp::negotiate(&s)) } else { Err(SdpError::NoAudio) };
    match audio {
        Ok(audio) => LegOutcome::Answered(Box::new(AnsweredLeg { id: LegId::random(), contact, audio, session, sdp_offer })),
        Err(e) => {
            tracing::warn!(error = %e, "answer unusable; hanging up");
            let _ = session.terminate().await;
            LegOutcome::Failed(DialError::BadAnswer(e))
        }
    }
}

/// The forks' reports, for as long as the dialer listens. When it stops — it returned, or its
/// future was dropped because the caller gave up — whatever the forks still report is drained
/// and every answer hung up: a 200 already queued would otherwise be dropped with the channel,
/// leaving that phone off-hook. (Dropping the dialer also drops its cancel sender, which
/// CANCELs the forks still ringing.)
struct LateAnswers(Option<mpsc::Receiver<ForkEvent>>);

impl LateAnswers {
    async fn recv(&mut self) -> Option<ForkEvent> {
        match &mut self.0 {
            Some(events) => events.recv().await,
            None => None,
        }
    }
}

impl Drop for LateAnswers {
    fn drop(&mut self) {
        if let (Some(events), Ok(rt)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(drain_late_answers(events));
        }
    }
}

async fn drain_late_answers(mut events: mpsc::Receiver<ForkEvent>) {
    while let Some(event) = events.recv().await {
        if let ForkEvent::Answered { mut session, contact, .. } = event {
            tracing::info!(%contact, "second phone answered after the first; sending BYE");
            let _ = session.terminate().await;
        }
    }
}

/// RFC 3261 §16.7 step 6 in spirit: busy beats other refusals, a global (6xx) refusal beats
/// request failures, and unanswered forks mean "no answer" only when ringing timed out.
fn summarize(ends: &[ForkEnd], timed_out: bool) -> LegOutcome {
    let finals = ends.iter().filter_map(|e| match e {
        ForkEnd::Final { code, reason } => Some((*code, reason.as_str())),
        _ => None,
    });
    let mut best: Option<(u16, &str)> = None;
    for (code, reason) in finals {
        if matches!(code, 486 | 600) {
            return LegOutcome::Busy;
        }
        let rank = |c: u16| match c {
            600..=699 => 0,
            487 => 9, // our own CANCEL, says nothing about the phone
            408 | 480 => 5,
            _ => 1,
        };
        if best.is_none_or(|(b, _)| rank(code) < rank(b)) {
            best = Some((code, reason));
        }
    }
    match best {
        Some((487 | 408 | 480, _)) | None if timed_out => LegOutcome::NoAnswer,
        Some((408 | 480, _)) => LegOutcome::NoAnswer,
        Some((code, reason)) if code != 487 => LegOutcome::Rejected { code, reason: reason.to_string() },
        _ => match ends.iter().find_map(|e| match e {
            ForkEnd::Unreachable(why) => Some(why.clone()),
            _ => None,
        }) {
            Some(why) => LegOutcome::Failed(DialError::Sip(why)),
            None => LegOutcome::NoAnswer,
        },
    }
}

async fn resolve(stack: &SipStack, target: &DialTarget) -> Result<Vec<(SipUri, Option<DigestAuthenticator>)>, DialError> {
    match target {
        DialTarget::User(user) => {
            if !stack.registrar.is_user(user) {
                return Err(DialError::UnknownTarget(user.to_string()));
            }
            let bindings = stack.registrar.bindings(user).await;
            let uris: Vec<_> = bindings
                .iter()
                .filter_map(|b| b.contact.parse::<SipUri>().ok())
                .map(|u| (u, None))
                .collect();
            if uris.is_empty() {
                return Err(DialError::NotRegistered(user.clone()));
            }
            Ok(uris)
        }
        DialTarget::Trunk { trunk, extension } => {
            let t = stack
                .trunks
                .iter()
                .find(|t| &t.id == trunk)
                .ok_or_else(|| DialError::UnknownTarget(trunk.to_string()))?;
            let uri = t.uri(Some(extension)).parse().map_err(|_| DialError::UnknownTarget(target.to_string()))?;
            Ok(vec![(uri, Some(t.authenticator()))])
        }
    }
}

struct Fork {
    endpoint: Endpoint,
    from: NameAddr,
    contact: Contact,
    uri: SipUri,
    auth: Option<DigestAuthenticator>,
    offer: Arc<str>,
    headers: Arc<[(String, String)]>,
    cancel: watch::Receiver<bool>,
    events: mpsc::Sender<ForkEvent>,
}

/// How long after the ring timeout the dialer waits for cancelled forks to confirm.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

/// Redirects followed per fork (3xx), so a loop of redirects cannot ring forever.
const MAX_REDIRECTS: usize = 3;
/// Challenges answered per INVITE: one per realm on the way is plenty.
const MAX_CHALLENGES: usize = 2;

impl Fork {
    async fn run(mut self) {
        let contact_text = self.uri.default_print_ctx().to_string();
        let mut auth = self.auth.take().unwrap_or_else(|| DigestAuthenticator::new(DigestCredentials::new()));
        let mut redirects = 0;
        let mut cancel = self.cancel.clone();
        'target: loop {
            let mut initiator = InviteInitiator::new(self.endpoint.clone(), self.from.clone(), self.contact.clone(), self.uri.clone());
            // No PRACK and no session timers: phones need neither, and each is one more way
            // for a call to fail on a PBX that implements it differently.
            initiator.support_100rel = false;
            initiator.support_timer = false;
            let mut challenges = 0;
            let mut earlies: Vec<Early> = Vec::new();
            let mut provisional = false;
            'invite: loop {
                let mut invite = initiator.create_invite();
                if let Some(call_id) = invite.headers.get_raw(&Name::CALL_ID).next() {
                    tracing::Span::current().record("call_id", call_id.as_str());
                }
                self.attach_offer(&mut invite);
                auth.authorize_request(&mut invite.headers);
                if let Err(e) = initiator.send_invite(invite).await {
                    return self.end(ForkEnd::Unreachable(e.to_string())).await;
                }
                loop {
                    let response = tokio::select! {
                        r = initiator.receive() => r,
                        _ = cancelled(&mut cancel) => {
                            return self.cancel_invite(initiator, earlies, provisional).await;
                        }
                    };
                    let response = match response {
                        Ok(r) => r,
                        Err(e) => return self.end(ForkEnd::Unreachable(e.to_string())).await,
                    };
                    match response {
                        Response::Provisional(r) => {
                            if r.line.code.into_u16() > 100 {
                                provisional = true;
                                self.ringing(&r, &contact_text).await;
                            }
                        }
                        Response::Early(early, r, _) => {
                            provisional = true;
                            earlies.push(early);
                            self.ringing(&r, &contact_text).await;
                        }
                        Response::EarlyEvent => {
                            if let Some((i, resp)) = poll_earlies(&mut earlies).await {
                                match resp {
                                    Ok(EarlyResponse::Success(session, r)) => {
                                        earlies.remove(i);
                                        return self.answer(initiator, session, r, &contact_text).await;
                                    }
                                    Ok(EarlyResponse::Provisional(r, _)) => self.ringing(&r, &contact_text).await,
                                    Ok(EarlyResponse::Terminated) => {
                                        earlies.remove(i);
                                    }
                                    Err(e) => tracing::debug!(error = %e, "early dialog error"),
                                }
                            }
                        }
                        Response::Session(session, r) => {
                            return self.answer(initiator, session, r, &contact_text).await;
                        }
                        Response::Failure(r) => {
                            let code = r.line.code.into_u16();
                            if matches!(code, 401 | 407) && challenges < MAX_CHALLENGES {
                                let tsx = initiator.transaction().expect("INVITE was sent");
                                let req = tsx.request();
                                let handled = auth.handle_rejection(
                                    RequestParts { line: &req.msg.line, headers: &req.msg.headers, body: &req.msg.body },
                                    ResponseParts { line: &r.line, headers: &r.headers, body: &r.body },
                                );
                                if handled.is_ok() {
                                    challenges += 1;
                                    continue 'invite;
                                }
                            }
                            if (300..400).contains(&code) && redirects < MAX_REDIRECTS {
                                if let Some(next) = redirect_target(&r) {
                                    tracing::info!(to = %next.default_print_ctx(), code, "following redirect");
                                    redirects += 1;
                                    self.uri = next;
                                    continue 'target;
                                }
                            }
                            let reason = r.line.reason.as_deref().unwrap_or("").to_string();
                            return self.end(ForkEnd::Final { code, reason }).await;
                        }
                        Response::Finished => {
                            return self.end(ForkEnd::Unreachable("INVITE transaction ended without a final response".into())).await;
                        }
                    }
                }
            }
        }
    }

    fn attach_offer(&self, invite: &mut Request) {
        for (name, value) in self.headers.iter() {
            invite.headers.insert(Name::unknown(bytesstr::BytesStr::from(name.as_str())), value.as_str());
        }
        invite.headers.insert(Name::CONTENT_TYPE, "application/sdp");
        invite.body = self.offer.to_string().into();
    }

    async fn ringing(&self, r: &TsxResponse, contact: &str) {
        tracing::debug!(code = r.line.code.into_u16(), "ringing");
        let _ = self.events.send(ForkEvent::Ringing(contact.to_string())).await;
    }

    async fn end(&self, end: ForkEnd) {
        tracing::debug!(?end, "fork ended");
        let _ = self.events.send(ForkEvent::Ended(end)).await;
    }

    /// ACKs the 2xx (§13.2.2.4), keeps the INVITE transaction's retransmitted 2xx answered,
    /// and hands the session to the dialer.
    async fn answer(self, mut initiator: InviteInitiator, mut session: InviteSession, response: TsxResponse, contact: &str) {
        // ezk keeps Record-Route in received order; a UAC's route set is the reverse (§12.1.2).
        if let Some(dialog) = Arc::get_mut(&mut session.dialog) {
            dialog.route_set.reverse();
        }
        match ezk_sip_ua::invite::create_ack(&session.dialog, response.base_headers.cseq.cseq).await {
            Ok(mut ack) => {
                if let Err(e) = self.endpoint.send_outgoing_request(&mut ack).await {
                    tracing::warn!(error = %e, "ACK not sent");
                }
                initiator.set_acknowledge(&session, ack);
            }
            Err(e) => tracing::warn!(error = %e, "cannot build ACK"),
        }
        tokio::spawn(async move {
            // Retransmitted 2xx get the stored ACK inside receive(); further dialogs created by
            // a forking proxy downstream are ended.
            while let Ok(r) = initiator.receive().await {
                match r {
                    Response::Session(mut extra, _) => {
                        let _ = extra.terminate().await;
                    }
                    Response::Failure(_) | Response::Finished => break,
                    _ => {}
                }
            }
        });
        let event = ForkEvent::Answered { session: Box::new(session), response: Box::new(response), contact: contact.to_string() };
        if let Err(mpsc::error::SendError(ForkEvent::Answered { mut session, .. })) = self.events.send(event).await {
            // The dialer is gone (its caller gave up): do not leave the phone off-hook.
            let _ = session.terminate().await;
        }
    }

    /// CANCEL only after a provisional response (RFC 3261 §9.1); before that, wait briefly for
    /// one, or for a final response that makes the CANCEL moot.
    async fn cancel_invite(self, mut initiator: InviteInitiator, mut earlies: Vec<Early>, provisional: bool) {
        if !provisional {
            match tokio::time::timeout(Duration::from_secs(4), initiator.receive()).await {
                Ok(Ok(Response::Session(session, r))) => return self.hang_up_late_answer(session, r).await,
                Ok(Ok(Response::Failure(r))) => {
                    let code = r.line.code.into_u16();
                    return self.end(ForkEnd::Final { code, reason: r.line.reason.as_deref().unwrap_or("").into() }).await;
                }
                Ok(Ok(Response::Early(early, _, _))) => earlies.push(early),
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => return self.end(ForkEnd::Cancelled).await,
            }
        }
        let Some(mut cancel) = initiator.transaction().map(|t| build_cancel(t.request())) else {
            return self.end(ForkEnd::Cancelled).await;
        };
        // Retransmitted on Timer E's schedule until the INVITE gets its final response (487, or
        // a 2xx that crossed the CANCEL), at most 64*T1 (§17.1.2.2).
        let reliable = !cancel.parts.transport.is_udp();
        let give_up = Instant::now() + Duration::from_secs(32);
        let mut interval = Duration::from_millis(500);
        loop {
            if let Err(e) = self.endpoint.send_outgoing_request(&mut cancel).await {
                tracing::debug!(error = %e, "CANCEL not sent");
            }
            let next = if reliable { give_up } else { (Instant::now() + interval).min(give_up) };
            interval = (interval * 2).min(Duration::from_secs(4));
            let outcome = tokio::select! {
                r = initiator.receive() => Some(r),
                _ = sleep_until(next) => None,
            };
            match outcome {
                None if Instant::now() >= give_up => return self.end(ForkEnd::Cancelled).await,
                None => continue,
                Some(Ok(Response::Session(session, r))) => return self.hang_up_late_answer(session, r).await,
                Some(Ok(Response::EarlyEvent)) => {
                    if let Some((_, Ok(EarlyResponse::Success(session, r)))) = poll_earlies(&mut earlies).await {
                        return self.hang_up_late_answer(session, r).await;
                    }
                }
                Some(Ok(Response::Provisional(_) | Response::Early(..))) => {}
                Some(Ok(Response::Failure(_) | Response::Finished)) | Some(Err(_)) => {
                    return self.end(ForkEnd::Cancelled).await;
                }
            }
        }
    }

    /// A 2xx that crossed our CANCEL: the dialog exists, so ACK it and end it (§9.1, §15).
    async fn hang_up_late_answer(&self, mut session: InviteSession, r: TsxResponse) {
        if let Ok(mut ack) = ezk_sip_ua::invite::create_ack(&session.dialog, r.base_headers.cseq.cseq).await {
            let _ = self.endpoint.send_outgoing_request(&mut ack).await;
        }
        let _ = session.terminate().await;
        self.end(ForkEnd::Cancelled).await
    }
}

/// The CANCEL for a sent INVITE: same Request-URI, top Via (branch included), From, To, Call-ID,
/// CSeq number and Route, sent where the INVITE went (RFC 3261 §9.1). ezk's own CANCEL opens a
/// new transaction with a new branch, which phones cannot match to the INVITE.
fn build_cancel(invite: &OutgoingRequest) -> OutgoingRequest {
    let inv = &invite.msg;
    let mut cancel = Request::new(Method::CANCEL, inv.line.uri.clone());
    if let Some(via) = inv.headers.get_raw(&Name::VIA).next() {
        cancel.headers.insert(Name::VIA, via.clone());
    }
    cancel.headers.insert(Name::MAX_FORWARDS, "70");
    for name in [Name::FROM, Name::TO, Name::CALL_ID, Name::ROUTE] {
        for value in inv.headers.get_raw(&name) {
            cancel.headers.insert(name.clone(), value.clone());
        }
    }
    let cseq = inv.headers.get_named::<CSeq>().map(|c| c.cseq).unwrap_or(1);
    cancel.headers.insert_named(&CSeq::new(cseq, Method::CANCEL));
    OutgoingRequest {
        msg: cancel,
        parts: OutgoingParts {
            transport: invite.parts.transport.clone(),
            destination: invite.parts.destination,
            buffer: Default::default(),
        },
    }
}

/// RFC 3261 §25.1 token: what a header name may be made of.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c))
}

/// A header value with control characters (CR, LF: header injection) turned into spaces.
fn header_value(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_owned()
}

/// Resolves once the dialer asked the forks to stop (or went away).
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await.is_ok();
}

/// Polls every early dialog once; the INVITE transaction just forwarded a response to one.
async fn poll_earlies(earlies: &mut [Early]) -> Option<(usize, Result<EarlyResponse, ezk_sip_core::Error>)> {
    std::future::poll_fn(|cx| {
        for (i, early) in earlies.iter_mut().enumerate() {
            if let std::task::Poll::Ready(r) = early.poll_receive(cx) {
                return std::task::Poll::Ready(Some((i, r)));
            }
        }
        std::task::Poll::Ready(None)
    })
    .await
}

fn redirect_target(r: &TsxResponse) -> Option<SipUri> {
    let contacts: Vec<Contact> = r.headers.get_named().ok()?;
    contacts.into_iter().next().map(|c| c.uri.uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fin(code: u16) -> ForkEnd {
        ForkEnd::Final { code, reason: String::new() }
    }

    #[test]
    fn extra_headers_cannot_inject_lines() {
        assert_eq!(header_value("promo\r\nBYE sip:x SIP/2.0"), "promo  BYE sip:x SIP/2.0");
        assert_eq!(header_value("  Grüße\t "), "Grüße");
        assert!(is_token("X-WhatsApp-Call-Id") && !is_token("X-Bad Name") && !is_token("X:y") && !is_token(""));
    }

    #[test]
    fn targets_parse() {
        assert_eq!("1001".parse(), Ok(DialTarget::User(UserName::new("1001"))));
        assert_eq!(
            "2001@pbx".parse(),
            Ok(DialTarget::Trunk { trunk: TrunkId::new("pbx"), extension: "2001".into() })
        );
        assert!("".parse::<DialTarget>().is_err());
        assert!("a@b@c".parse::<DialTarget>().is_err());
        assert!("<sip:x>".parse::<DialTarget>().is_err());
        assert_eq!(DialTarget::Trunk { trunk: TrunkId::new("pbx"), extension: "2001".into() }.to_string(), "2001@pbx");
    }

    #[test]
    fn busy_wins_over_other_refusals() {
        assert!(matches!(summarize(&[fin(404), fin(486)], false), LegOutcome::Busy));
        assert!(matches!(summarize(&[fin(600)], false), LegOutcome::Busy));
    }

    #[test]
    fn global_refusal_beats_request_failure() {
        match summarize(&[fin(404), fin(603)], false) {
            LegOutcome::Rejected { code, .. } => assert_eq!(code, 603),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeouts_and_cancels_are_no_answer() {
        assert!(matches!(summarize(&[fin(487), ForkEnd::Cancelled], true), LegOutcome::NoAnswer));
        assert!(matches!(summarize(&[fin(480)], false), LegOutcome::NoAnswer));
        assert!(matches!(summarize(&[fin(408)], false), LegOutcome::NoAnswer));
        assert!(matches!(summarize(&[], true), LegOutcome::NoAnswer));
    }

    #[test]
    fn a_real_refusal_is_reported_even_when_others_time_out() {
        match summarize(&[fin(487), fin(403)], true) {
            LegOutcome::Rejected { code, .. } => assert_eq!(code, 403),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreachable_phones_are_failures() {
        assert!(matches!(
            summarize(&[ForkEnd::Unreachable("timed out".into())], false),
            LegOutcome::Failed(DialError::Sip(_))
        ));
    }
}
