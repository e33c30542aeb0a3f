//! The shell around one call's [`CallMachine`]: an actix actor that owns the call, turns what
//! Meta, the phone and the media task report into machine events, and carries out the
//! machine's commands.
//!
//! Work that waits on the network (the WebRTC answer, Graph requests, ringing the phone) runs
//! as tasks on the media runtime, next to SIP and media; each reports back with a message.
//! Media itself never passes through here (ARCHITECTURE rule 3): the bridge task gets commands
//! and sends events, nothing more.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::machine::{
    CallConfig, CallMachine, Command, EndedBy, Event, Failure, GraphFailure, MissedReason,
    Outcome, Output, RingFailure, Summary,
};
use crate::config::Settings;
use crate::ids::CallId;
use crate::media::bridge::{spawn_bridge, BridgeCommand, PhoneMedia};
use crate::media::bridge_core::BridgeEvent;
use crate::media::ports::PortPool;
use crate::media::webrtc_leg::answer_offer;
use crate::sip::leg::{self, DialRequest, DialTarget, LegEnd, LegOutcome, Progress};
use crate::sip::sdp::AudioOffer;
use crate::sip::SipStack;
use crate::store::{CallDirection, CallRecord, LegAttempt, Store};
use crate::whatsapp::event::{CallConnect, Sdp};
use crate::whatsapp::graph::{CallAnswer, GraphClient, GraphError};
use crate::whatsapp::BusinessNumber;

/// What every call needs from the running gateway.
pub struct CallDeps {
    pub settings: Arc<Settings>,
    pub sip: SipStack,
    pub ports: Arc<PortPool>,
    pub graph: GraphClient,
    pub store: Store,
    /// SIP, media and Graph requests run here.
    pub media_rt: tokio::runtime::Handle,
}

/// Reports to the call, from its tasks and from the registry.
#[derive(Message)]
#[rtype(result = "()")]
pub enum CallMsg {
    AnswerReady {
        answer: CallAnswer,
        bridge: mpsc::Sender<BridgeCommand>,
    },
    AnswerFailed(String),
    PreAccept(Result<(), GraphFailure>),
    Accept(Result<(), GraphFailure>),
    Ringing {
        contact: String,
    },
    PhoneAnswered {
        contact: String,
        media: PhoneMedia,
    },
    PhoneFailed {
        failure: RingFailure,
        label: &'static str,
        detail: Option<String>,
    },
    PhoneHungUp,
    Bridge(BridgeEvent),
    /// Meta's terminate webhook.
    UserHungUp,
    /// Ended from our side (admin, shutdown).
    Hangup,
}

/// Sent to whoever started the call once its record is written.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallEnded(pub CallId);

pub struct CallActor {
    deps: Arc<CallDeps>,
    connect: CallConnect,
    number: BusinessNumber,
    machine: CallMachine,
    answer: Option<CallAnswer>,
    bridge: Option<mpsc::Sender<BridgeCommand>>,
    phone_media: Option<PhoneMedia>,
    /// Stops the ringing task: CANCEL while it rings, BYE once answered.
    phone_stop: Option<oneshot::Sender<()>>,
    leg: LegAttempt,
    answered_by: Option<String>,
    meta_error_code: Option<u32>,
    timer: Option<SpawnHandle>,
    /// The wall clock at the machine's start, to turn its `Instant`s into record times.
    wall_start: (Instant, SystemTime),
    on_end: Recipient<CallEnded>,
}

impl CallActor {
    pub fn new(
        deps: Arc<CallDeps>,
        connect: CallConnect,
        number: BusinessNumber,
        on_end: Recipient<CallEnded>,
    ) -> CallActor {
        let now = Instant::now();
        // The same window `dialplan check` holds routes to.
        let cfg = CallConfig {
            answer_window: Duration::from_secs(deps.settings.whatsapp.answer_window_seconds.into()),
        };
        CallActor {
            leg: LegAttempt {
                target: number.target.to_string(),
                rang: Vec::new(),
                outcome: "not_rung".into(),
                detail: None,
            },
            deps,
            connect,
            number,
            machine: CallMachine::new(cfg, now),
            answer: None,
            bridge: None,
            phone_media: None,
            phone_stop: None,
            answered_by: None,
            meta_error_code: None,
            timer: None,
            wall_start: (now, SystemTime::now()),
            on_end,
        }
    }

    fn drive(&mut self, ctx: &mut Context<Self>) {
        loop {
            match self.machine.poll_output() {
                Output::Command(cmd) => self.carry_out(cmd, ctx),
                Output::Timeout(at) => {
                    if let Some(h) = self.timer.take() {
                        ctx.cancel_future(h);
                    }
                    let wait = at.saturating_duration_since(Instant::now());
                    self.timer = Some(ctx.run_later(wait, |act, ctx| {
                        act.timer = None;
                        act.machine.handle_timeout(Instant::now());
                        act.drive(ctx);
                    }));
                    return;
                }
                Output::Idle => return,
            }
        }
    }

    fn carry_out(&mut self, cmd: Command, ctx: &mut Context<Self>) {
        tracing::debug!(command = ?cmd, "call command");
        let me = ctx.address();
        match cmd {
            Command::AnswerOffer => self.answer_offer(me),
            Command::Ring => self.ring(me),
            Command::CancelRing | Command::HangUpPhone => {
                if let Some(stop) = self.phone_stop.take() {
                    let _ = stop.send(());
                }
            }
            Command::PreAccept => {
                let Some(answer) = self.answer.clone() else { return };
                let graph = self.deps.graph.clone();
                self.deps.media_rt.spawn(async move {
                    let result = graph.pre_accept(&answer).await;
                    me.do_send(CallMsg::PreAccept(result.map_err(failure("pre_accept"))));
                });
            }
            Command::Accept => {
                let Some(answer) = self.answer.clone() else { return };
                let graph = self.deps.graph.clone();
                let opaque = self.connect.biz_opaque_callback_data.clone();
                self.deps.media_rt.spawn(async move {
                    let result = graph.accept(&answer, opaque.as_deref()).await;
                    me.do_send(CallMsg::Accept(result.map_err(failure("accept"))));
                });
            }
            // A phone can answer before our WebRTC answer (and so the bridge) exists; the
            // media then waits here and is attached when the bridge arrives.
            Command::AttachPhone => self.attach_phone(),
            Command::StartMedia => {
                if let Some(bridge) = &self.bridge {
                    self.bridge_command(bridge.clone(), BridgeCommand::Accept);
                }
            }
            Command::StopMedia => {
                if let Some(bridge) = self.bridge.take() {
                    self.bridge_command(bridge, BridgeCommand::Hangup);
                }
            }
            Command::Reject | Command::Terminate => {
                let graph = self.deps.graph.clone();
                let (phone, call) = (self.number.phone_number_id.clone(), self.connect.call_id.clone());
                let reject = cmd == Command::Reject;
                self.deps.media_rt.spawn(async move {
                    let result = if reject {
                        graph.reject(&phone, &call).await
                    } else {
                        graph.terminate(&phone, &call).await
                    };
                    if let Err(e) = result {
                        tracing::warn!(error = %e, %call, "Graph {} failed", if reject { "reject" } else { "terminate" });
                    }
                });
            }
            Command::Finished(summary) => self.finish(summary, ctx),
        }
    }

    fn attach_phone(&mut self) {
        if let Some(bridge) = self.bridge.clone() {
            if let Some(media) = self.phone_media.take() {
                self.bridge_command(bridge, BridgeCommand::AttachPhone(media));
            }
        }
    }

    fn bridge_command(&self, bridge: mpsc::Sender<BridgeCommand>, cmd: BridgeCommand) {
        self.deps.media_rt.spawn(async move {
            // A bridge that is gone has ended already; the call hears of it by its events.
            let _ = bridge.send(cmd).await;
        });
    }

    /// Answers Meta's offer with a WebRTC leg and starts the bridge, whose events come back here.
    fn answer_offer(&self, me: Addr<CallActor>) {
        let Some((_, offer)) = self.connect.session.clone() else {
            me.do_send(CallMsg::AnswerFailed("the connect webhook carried no SDP offer".into()));
            return;
        };
        let cfg = self.deps.settings.webrtc_config();
        let bridge_settings = self.deps.settings.bridge_settings();
        let (phone, call) = (self.number.phone_number_id.clone(), self.connect.call_id.clone());
        self.deps.media_rt.spawn(async move {
            let (leg, answer_sdp) = match answer_offer(offer.as_str(), &cfg).await {
                Ok(ok) => ok,
                Err(e) => return me.do_send(CallMsg::AnswerFailed(e.to_string())),
            };
            let answer = match CallAnswer::new(phone, call, Sdp::new(answer_sdp)) {
                Ok(a) => a,
                Err(e) => return me.do_send(CallMsg::AnswerFailed(e.to_string())),
            };
            let mut handle = spawn_bridge(leg, bridge_settings);
            me.do_send(CallMsg::AnswerReady { answer, bridge: handle.commands.clone() });
            drop(handle.commands);
            while let Some(e) = handle.events.recv().await {
                me.do_send(CallMsg::Bridge(e));
            }
            if let Ok(stats) = handle.task.await {
                tracing::info!(?stats, "media bridge ended");
            }
        });
    }

    /// Rings the number's target; on answer keeps the dialog until the phone or we hang up.
    fn ring(&mut self, me: Addr<CallActor>) {
        let (stop_tx, mut stop) = oneshot::channel();
        self.phone_stop = Some(stop_tx);
        let deps = self.deps.clone();
        let target: DialTarget = self.number.target.clone();
        // The desk phone shows who calls: the WhatsApp profile name and number (the user part).
        let caller = self.connect.from.to_string();
        let caller_name = self.connect.caller_name.clone();
        let headers = self.invite_headers();
        self.deps.media_rt.spawn(async move {
            let settings = &deps.settings;
            let ip = settings.rtp.bind.parse().expect("validated");
            let (rtp, rtcp, port) = match deps.ports.bind_pair(ip).await {
                Ok(p) => p,
                Err(e) => {
                    let detail = Some(format!("no RTP port: {e}"));
                    return me.do_send(CallMsg::PhoneFailed { failure: RingFailure::Unreachable, label: "failed", detail });
                }
            };
            let offer = AudioOffer { session_id: rand::random::<u32>().into(), address: settings.rtp_public_ip(), port };
            let request = DialRequest {
                target,
                caller,
                caller_name,
                sdp_offer: offer.to_sdp(),
                ring_timeout: Duration::from_secs(settings.sip.ring_timeout_seconds.into()),
                headers,
            };
            let (progress_tx, mut progress) = mpsc::channel(16);
            let progress_me = me.clone();
            tokio::spawn(async move {
                while let Some(Progress::Ringing { contact }) = progress.recv().await {
                    progress_me.do_send(CallMsg::Ringing { contact });
                }
            });
            let outcome = tokio::select! {
                outcome = leg::dial(&deps.sip, request, Some(progress_tx)) => outcome,
                // Dropping the dial cancels every fork (CANCEL; a late 200 gets ACK and BYE).
                _ = &mut stop => return,
            };
            let mut answered = match outcome {
                LegOutcome::Answered(a) => a,
                LegOutcome::Busy => return me.do_send(CallMsg::PhoneFailed { failure: RingFailure::Busy, label: "busy", detail: None }),
                LegOutcome::Rejected { code, reason } => {
                    let detail = Some(format!("{code} {reason}"));
                    return me.do_send(CallMsg::PhoneFailed { failure: RingFailure::Declined(code), label: "rejected", detail });
                }
                LegOutcome::NoAnswer => return me.do_send(CallMsg::PhoneFailed { failure: RingFailure::NoAnswer, label: "no_answer", detail: None }),
                LegOutcome::Failed(e) => {
                    let detail = Some(e.to_string());
                    return me.do_send(CallMsg::PhoneFailed { failure: RingFailure::Unreachable, label: "failed", detail });
                }
            };
            let audio = &answered.audio;
            let media = PhoneMedia {
                rtp,
                rtcp,
                remote_rtp: audio.remote_rtp,
                remote_rtcp: audio.remote_rtcp,
                codec: audio.codec,
                dtmf_pt: audio.dtmf_pt,
            };
            me.do_send(CallMsg::PhoneAnswered { contact: answered.contact.clone(), media });
            tokio::select! {
                end = answered.wait_end() => {
                    if end == LegEnd::Terminated {
                        tracing::info!("phone dialog ended without BYE");
                    }
                    me.do_send(CallMsg::PhoneHungUp);
                }
                _ = &mut stop => answered.hangup().await,
            }
        });
    }

    /// What travels with the INVITE for a PBX or phone to show or route on: the call, the
    /// business number, and the call-button and deep-link payloads the user's tap carried.
    fn invite_headers(&self) -> Vec<(String, String)> {
        let c = &self.connect;
        let mut headers = vec![
            ("X-WhatsApp-Call-Id".to_owned(), c.call_id.to_string()),
            ("X-WhatsApp-Business-Number".to_owned(), self.number.display_number.clone()),
        ];
        let optional = [("X-WhatsApp-Deeplink-Payload", &c.deeplink_payload), ("X-WhatsApp-CTA-Payload", &c.cta_payload)];
        for (name, value) in optional {
            if let Some(v) = value {
                headers.push((name.to_owned(), v.clone()));
            }
        }
        headers
    }

    fn finish(&mut self, summary: Summary, ctx: &mut Context<Self>) {
        let record = self.record(&summary);
        tracing::info!(
            call_id = %record.call_id, outcome = %record.outcome, reason = ?record.reason,
            ended_by = %record.ended_by, talk_seconds = record.talk_seconds(), "call ended"
        );
        let store = self.deps.store.clone();
        let on_end = self.on_end.clone();
        self.deps.media_rt.spawn(async move {
            if let Err(e) = store.put_call(&record).await {
                tracing::error!(error = %e, call_id = %record.call_id, "call record not stored");
            }
            on_end.do_send(CallEnded(record.call_id));
        });
        ctx.stop();
    }

    fn record(&self, s: &Summary) -> CallRecord {
        let wall = |t: Instant| -> u64 {
            let (i0, w0) = self.wall_start;
            let at = if t >= i0 { w0 + (t - i0) } else { w0 - (i0 - t) };
            at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
        };
        let (outcome, reason) = match s.outcome {
            Outcome::Answered => ("answered", None),
            Outcome::Missed(r) => ("missed", Some(match r {
                MissedReason::CallerHungUp => "caller_hung_up".to_owned(),
                MissedReason::CallerHungUpAsAnswered => "caller_hung_up_as_answered".to_owned(),
                MissedReason::NoAnswer => "no_answer".to_owned(),
                MissedReason::Unreachable => "unreachable".to_owned(),
            })),
            Outcome::Rejected(RingFailure::Busy) => ("rejected", Some("busy".to_owned())),
            Outcome::Rejected(RingFailure::Declined(code)) => ("rejected", Some(format!("declined_{code}"))),
            Outcome::Rejected(other) => ("rejected", Some(format!("{other:?}").to_lowercase())),
            Outcome::Failed(f) => ("failed", Some(match f {
                Failure::Answer => "webrtc_answer".to_owned(),
                Failure::PreAccept(_) => "pre_accept".to_owned(),
                Failure::Accept(_) => "accept".to_owned(),
                Failure::Media => "media".to_owned(),
                Failure::Aborted => "aborted".to_owned(),
            })),
        };
        let ended_by = match s.ended_by {
            EndedBy::Caller => "caller",
            EndedBy::Phone => "phone",
            EndedBy::Media => "media",
            EndedBy::Gateway => "gateway",
        };
        // An answer or a failure already set the leg's outcome; a leg that only rang was cancelled.
        let mut leg = self.leg.clone();
        if leg.outcome == "not_rung" && !leg.rang.is_empty() {
            leg.outcome = "cancelled".into();
        }
        CallRecord {
            call_id: self.connect.call_id.clone(),
            direction: CallDirection::Inbound,
            business_number_id: self.number.phone_number_id.clone(),
            business_number: self.number.display_number.clone(),
            user: self.connect.from.clone(),
            user_name: self.connect.caller_name.clone(),
            offered_at: wall(s.offered_at),
            ringing_at: s.ringing_at.map(wall),
            answered_at: s.answered_at.map(wall),
            ended_at: wall(s.ended_at),
            outcome: outcome.into(),
            reason,
            meta_error_code: self.meta_error_code,
            ended_by: ended_by.into(),
            answered_by: self.answered_by.clone(),
            legs: vec![leg],
        }
    }
}

/// A Graph error as the machine sees it: Meta's code, if Meta sent one.
fn failure(action: &'static str) -> impl Fn(GraphError) -> GraphFailure {
    move |e| {
        tracing::warn!(error = %e, action, "Graph request failed");
        GraphFailure { code: e.code().and_then(|c| u32::try_from(c.code()).ok()) }
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(
            call_id = %self.connect.call_id, from = %self.connect.from, name = ?self.connect.caller_name,
            to = %self.number.display_number, target = %self.number.target, "WhatsApp call offered"
        );
        self.drive(ctx);
    }
}

impl Handler<CallMsg> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: CallMsg, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let event = match msg {
            CallMsg::AnswerReady { answer, bridge } => {
                self.answer = Some(answer);
                self.bridge = Some(bridge);
                self.attach_phone();
                Event::AnswerReady
            }
            CallMsg::AnswerFailed(why) => {
                tracing::warn!(%why, "cannot answer Meta's offer");
                Event::AnswerFailed
            }
            CallMsg::PreAccept(Ok(())) => Event::PreAccepted,
            CallMsg::PreAccept(Err(f)) => {
                self.meta_error_code = f.code;
                Event::PreAcceptFailed(f)
            }
            CallMsg::Accept(Ok(())) => Event::Accepted,
            CallMsg::Accept(Err(f)) => {
                self.meta_error_code = f.code;
                Event::AcceptFailed(f)
            }
            CallMsg::Ringing { contact } => {
                if !self.leg.rang.contains(&contact) {
                    self.leg.rang.push(contact);
                }
                Event::Ringing
            }
            CallMsg::PhoneAnswered { contact, media } => {
                tracing::info!(%contact, "phone answered");
                self.leg.outcome = "answered".into();
                self.answered_by = Some(contact);
                self.phone_media = Some(media);
                Event::PhoneAnswered
            }
            CallMsg::PhoneFailed { failure, label, detail } => {
                tracing::info!(outcome = label, ?detail, "phone did not answer");
                self.phone_stop = None;
                self.leg.outcome = label.into();
                self.leg.detail = detail;
                Event::PhoneFailed(failure)
            }
            CallMsg::PhoneHungUp => {
                self.phone_stop = None;
                Event::PhoneHungUp
            }
            CallMsg::Bridge(e) => match e {
                BridgeEvent::WebRtcFailed { reason } => {
                    tracing::warn!(?reason, "WhatsApp media failed");
                    Event::MediaFailed
                }
                BridgeEvent::MediaTimeout { side } => {
                    tracing::warn!(?side, "no media");
                    Event::MediaFailed
                }
                other => {
                    tracing::debug!(event = ?other, "media");
                    return;
                }
            },
            CallMsg::UserHungUp => Event::UserHungUp,
            CallMsg::Hangup => Event::Hangup,
        };
        self.machine.handle(now, event);
        self.drive(ctx);
    }
}
