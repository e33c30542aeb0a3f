//! The shell around one call's [`CallMachine`]: an actix actor that owns the call, turns what
//! Meta, the phone and the media task report into machine events, and carries out the
//! machine's commands.
//!
//! Work that waits on the network (the WebRTC answer, Graph requests, ringing the phone) runs
//! as tasks on the media runtime, next to SIP and media; each reports back with a message.
//! Media itself never passes through here (ARCHITECTURE rule 3): the bridge task gets commands
//! and sends events, nothing more.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::machine::{
    CallConfig, CallMachine, Command, EndedBy, Event, Failure, GraphFailure, MissedReason,
    Outcome, Output, RingFailure, Summary,
};
use super::ringing::{self, DialTemplate, GroupRing, LegReport, LegSink, RingNews};
use crate::config::Settings;
use crate::ids::CallId;
use crate::media::bridge::{spawn_bridge, BridgeCommand, PhoneMedia};
use crate::media::bridge_core::BridgeEvent;
use crate::media::ports::PortPool;
use crate::media::webrtc_leg::answer_offer;
use crate::routing::dialplan::{CallFacts, Dialplan};
use crate::routing::live::LivePlan;
use crate::routing::presence::Presence;
use crate::routing::ring::{AvailabilitySnapshot, GroupName, MemberTarget, RingGroup, RingRun};
use crate::sip::SipStack;
use crate::store::{unix_ms, CallDirection, CallRecord, CallbackRequest, LegAttempt, Store};
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
    /// The dialplan new calls route by (each call keeps the plan it started with).
    pub plan: Arc<LivePlan>,
    /// Who is registered, busy, on do-not-disturb; ring-group memory.
    pub presence: Arc<Presence>,
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
    /// Who of the group can ring, taken when its ring starts.
    Snapshot {
        ring: u32,
        group: RingGroup,
        snapshot: AvailabilitySnapshot,
    },
    Leg(LegReport),
    Bridge(BridgeEvent),
    /// Meta's terminate webhook.
    UserHungUp,
    /// Ended from our side (admin, shutdown).
    Hangup,
}

/// One Graph request of the call.
enum GraphJob {
    PreAccept(CallAnswer),
    Accept(CallAnswer, Option<String>),
    Reject,
    Terminate,
}

/// Sent to whoever started the call once its record is written.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallEnded(pub CallId);

pub struct CallActor {
    deps: Arc<CallDeps>,
    connect: CallConnect,
    number: BusinessNumber,
    /// The plan as it was when the call came in: a reload does not change a call in progress.
    plan: Arc<Dialplan>,
    route: Option<String>,
    machine: CallMachine,
    answer: Option<CallAnswer>,
    bridge: Option<mpsc::Sender<BridgeCommand>>,
    phone_media: Option<PhoneMedia>,
    /// Ends the answered phone's dialog (BYE) when used or dropped.
    phone_stop: Option<oneshot::Sender<()>>,
    /// The member that took the call, busy until it ends.
    answered_target: Option<MemberTarget>,
    answered_by: Option<String>,
    /// The group ringing now, and how many the call has rung (ids for their legs' reports).
    ring: Option<GroupRing>,
    rings: u32,
    ring_timer: Option<SpawnHandle>,
    /// Call record lines of the groups rung before this one.
    legs: Vec<LegAttempt>,
    meta_error_code: Option<u32>,
    /// This call's Graph requests, in order (see [`CallActor::graph`]).
    graph_jobs: Option<mpsc::UnboundedSender<GraphJob>>,
    timer: Option<SpawnHandle>,
    /// The wall clock at the machine's start, to turn its `Instant`s into record times.
    wall_start: (Instant, SystemTime),
    on_end: Recipient<CallEnded>,
}

impl CallActor {
    pub fn new(deps: Arc<CallDeps>, connect: CallConnect, number: BusinessNumber, on_end: Recipient<CallEnded>) -> CallActor {
        let now = Instant::now();
        // The same window `dialplan check` holds routes to.
        let cfg = CallConfig { answer_window: deps.settings.answer_window() };
        let plan = deps.plan.current();
        let facts = CallFacts {
            business_number: &number.display_number,
            phone_number_id: number.phone_number_id.as_str(),
            caller: connect.from.as_str(),
            cta_payload: connect.cta_payload.as_deref(),
            deeplink_payload: connect.deeplink_payload.as_deref(),
        };
        let route = plan.route_for(&facts, jiff::Timestamp::now());
        let (route, steps) = match route {
            Some(r) => (Some(r.name.clone()), r.steps.clone()),
            None => (None, Vec::new()),
        };
        CallActor {
            machine: CallMachine::new(cfg, steps, now),
            deps,
            connect,
            number,
            plan,
            route,
            answer: None,
            bridge: None,
            phone_media: None,
            phone_stop: None,
            answered_target: None,
            answered_by: None,
            ring: None,
            rings: 0,
            ring_timer: None,
            legs: Vec::new(),
            meta_error_code: None,
            graph_jobs: None,
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
            Command::Ring(group) => self.ring(group, me),
            Command::CancelRing => {
                if let Some(ring) = &mut self.ring {
                    ring.cancel(Instant::now());
                }
                self.drive_ring(ctx);
                self.close_ring(ctx);
            }
            Command::HangUpPhone => {
                if let Some(stop) = self.phone_stop.take() {
                    let _ = stop.send(());
                }
            }
            Command::PreAccept => {
                let Some(answer) = self.answer.clone() else { return };
                self.graph(GraphJob::PreAccept(answer), me);
            }
            Command::Accept => {
                let Some(answer) = self.answer.clone() else { return };
                let opaque = self.connect.biz_opaque_callback_data.clone();
                self.graph(GraphJob::Accept(answer, opaque), me);
            }
            // A phone can answer before our WebRTC answer (and so the bridge) exists; the
            // media then waits here and is attached when the bridge arrives.
            Command::AttachPhone => self.attach_phone(),
            Command::StartMedia => {
                if let Some(bridge) = &self.bridge {
                    self.bridge_command(bridge.clone(), BridgeCommand::Accept);
                }
            }
            Command::Play(file) => match (self.plan.announcement(&file), &self.bridge) {
                (Some(samples), Some(bridge)) => {
                    tracing::info!(file = %file.display(), seconds = samples.len() / 8000, "playing the announcement");
                    self.bridge_command(bridge.clone(), BridgeCommand::Play(samples));
                }
                _ => {
                    // The plan decoded every announcement at load and accept needs the
                    // bridge, so this is a bug; going on keeps the call's route intact.
                    tracing::error!(file = %file.display(), "announcement not loaded; skipped");
                    me.do_send(CallMsg::Bridge(BridgeEvent::PlayFinished));
                }
            },
            Command::StopMedia => {
                if let Some(bridge) = self.bridge.take() {
                    self.bridge_command(bridge, BridgeCommand::Hangup);
                }
            }
            Command::Reject => self.graph(GraphJob::Reject, me),
            Command::Terminate => self.graph(GraphJob::Terminate, me),
            Command::Finished(summary) => self.finish(summary, ctx),
        }
    }

    /// Queues a Graph request. A call's requests go out one after another, in the order the
    /// machine asked for them: a `reject` must never overtake the `pre_accept` before it, or
    /// Meta sees a pre_accept on a call that has ended.
    fn graph(&mut self, job: GraphJob, me: Addr<CallActor>) {
        let queue = self.graph_jobs.get_or_insert_with(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<GraphJob>();
            let graph = self.deps.graph.clone();
            let (phone, call) = (self.number.phone_number_id.clone(), self.connect.call_id.clone());
            self.deps.media_rt.spawn(async move {
                // Drains what was queued even after the call ended (its final reject/terminate).
                while let Some(job) = rx.recv().await {
                    match job {
                        GraphJob::PreAccept(answer) => {
                            let result = graph.pre_accept(&answer).await;
                            me.do_send(CallMsg::PreAccept(result.map_err(failure("pre_accept"))));
                        }
                        GraphJob::Accept(answer, opaque) => {
                            let result = graph.accept(&answer, opaque.as_deref()).await;
                            me.do_send(CallMsg::Accept(result.map_err(failure("accept"))));
                        }
                        GraphJob::Reject => {
                            if let Err(e) = graph.reject(&phone, &call).await {
                                tracing::warn!(error = %e, %call, "Graph reject failed");
                            }
                        }
                        GraphJob::Terminate => {
                            if let Err(e) = graph.terminate(&phone, &call).await {
                                tracing::warn!(error = %e, %call, "Graph terminate failed");
                            }
                        }
                    }
                }
            });
            tx
        });
        let _ = queue.send(job);
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

    /// Starts ringing `group`: availability first (registrations are async), then the engine.
    fn ring(&mut self, group: GroupName, me: Addr<CallActor>) {
        self.close_ring_records();
        self.rings += 1;
        let id = self.rings;
        self.ring = Some(GroupRing::new(id, group.clone()));
        // The checker makes sure every group a route names exists; should one not, it rings
        // nobody and the route takes its no-answer branch.
        let flat = self.plan.ring_group(&group).unwrap_or_else(|| {
            tracing::error!(%group, "the route rings a group the plan does not have");
            RingGroup { name: group.clone(), ..empty_group() }
        });
        let now = jiff::Timestamp::now();
        let members: Vec<(MemberTarget, bool)> = flat.members.iter().map(|m| (m.target.clone(), self.plan.in_hours(&group, &m.target, now))).collect();
        let (presence, deps) = (self.deps.presence.clone(), self.deps.clone());
        self.deps.media_rt.spawn(async move {
            let snapshot = presence.snapshot(&members, &deps.sip).await;
            me.do_send(CallMsg::Snapshot { ring: id, group: flat, snapshot });
        });
    }

    fn start_ring(&mut self, id: u32, group: RingGroup, snapshot: AvailabilitySnapshot, ctx: &mut Context<Self>) {
        let Some(ring) = self.ring.as_mut().filter(|r| r.id == id && !r.is_started() && !r.over) else { return };
        let now = Instant::now();
        let seed = rand::random();
        let run = self.deps.presence.with_memory(|memory| RingRun::start(&group, &snapshot, memory, now, seed));
        for s in run.skipped() {
            tracing::info!(member = %s.target, reason = ?s.reason, group = %group.name, "member skipped");
        }
        ring.start(run);
        self.drive_ring(ctx);
    }

    /// Carries out what the ring engine says and hands its news to the call machine.
    fn drive_ring(&mut self, ctx: &mut Context<Self>) {
        let dial = self.dial_template();
        let Some(ring) = self.ring.as_mut() else { return };
        let me = ctx.address();
        let sink: LegSink = Arc::new(move |report| me.do_send(CallMsg::Leg(report)));
        let (deadline, news) = ring.drive(&self.deps, &dial, &sink);
        if let Some(h) = self.ring_timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = deadline {
            let id = ring.id;
            let wait = at.saturating_duration_since(Instant::now());
            self.ring_timer = Some(ctx.run_later(wait, move |act, ctx| {
                act.ring_timer = None;
                if let Some(ring) = act.ring.as_mut().filter(|r| r.id == id) {
                    ring.timeout(Instant::now());
                    act.drive_ring(ctx);
                }
            }));
        }
        self.ring_news(news, ctx);
    }

    fn ring_news(&mut self, news: RingNews, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let event = match news {
            RingNews::Quiet => return,
            RingNews::Ringing => Event::Ringing,
            RingNews::Answered { target, contact, media, stop } => {
                tracing::info!(%contact, member = %target, "phone answered");
                self.deps.presence.call_started(&target);
                self.answered_target = Some(target);
                self.answered_by = Some(contact);
                self.phone_media = Some(media);
                self.phone_stop = Some(stop);
                Event::PhoneAnswered
            }
            RingNews::Failed(outcome) => {
                tracing::info!(?outcome, "the group did not answer");
                let failure = ringing::ring_failure(&outcome);
                self.close_ring(ctx);
                Event::PhoneFailed(failure)
            }
            RingNews::HungUp => {
                self.phone_stop = None;
                Event::PhoneHungUp
            }
        };
        self.machine.handle(now, event);
        self.drive(ctx);
    }

    /// The ring is over unanswered (or cancelled): its legs are dropped (CANCEL or BYE for any
    /// still alive) and its record lines kept.
    fn close_ring(&mut self, ctx: &mut Context<Self>) {
        if self.ring.as_ref().is_some_and(|r| r.over || !r.is_started()) {
            if let Some(h) = self.ring_timer.take() {
                ctx.cancel_future(h);
            }
            self.close_ring_records();
        }
    }

    fn close_ring_records(&mut self) {
        if let Some(ring) = self.ring.take() {
            self.legs.extend(ring.records.iter().cloned());
            // An answered ring stays referenced by its winner's stop handle, held in
            // `phone_stop`; dropping the rest ends their legs.
            drop(ring);
        }
    }

    fn dial_template(&self) -> DialTemplate {
        // The desk phone shows who calls: the WhatsApp profile name and number (the user part).
        DialTemplate {
            caller: self.connect.from.to_string(),
            caller_name: self.connect.caller_name.clone(),
            headers: self.invite_headers(),
            ring_timeout: self.deps.settings.answer_window() + Duration::from_secs(30),
        }
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
        if let Some(target) = self.answered_target.take() {
            self.deps.presence.call_ended(&target, Instant::now());
        }
        if let Some(ring) = &mut self.ring {
            ring.answered_call_ended();
        }
        self.close_ring_records();
        let record = self.record(&summary);
        tracing::info!(
            call_id = %record.call_id, outcome = %record.outcome, reason = ?record.reason, route = ?record.route,
            callback = record.callback.is_some(), ended_by = %record.ended_by, talk_seconds = record.talk_seconds(), "call ended"
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
            unix_ms(if t >= i0 { w0 + (t - i0) } else { w0 - (i0 - t) })
        };
        let (outcome, reason) = outcome_text(s.outcome);
        let ended_by = match s.ended_by {
            EndedBy::Caller => "caller",
            EndedBy::Phone => "phone",
            EndedBy::Media => "media",
            EndedBy::Gateway => "gateway",
        };
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
            missed: s.outcome.is_missed(),
            route: self.route.clone(),
            callback: s.callback.then(|| CallbackRequest { requested_at: wall(s.ended_at), status: "pending".into() }),
            reason,
            meta_error_code: self.meta_error_code,
            ended_by: ended_by.into(),
            answered_by: self.answered_by.clone(),
            legs: self.legs.clone(),
        }
    }
}

/// The record's outcome and reason words.
fn outcome_text(o: Outcome) -> (&'static str, Option<String>) {
    match o {
        Outcome::Answered => ("answered", None),
        Outcome::Announced => ("announced", None),
        Outcome::Missed(r) => ("missed", Some(match r {
            MissedReason::CallerHungUp => "caller_hung_up",
            MissedReason::CallerHungUpAsAnswered => "caller_hung_up_as_answered",
            MissedReason::NoAnswer => "no_answer",
            MissedReason::Unreachable => "unreachable",
            MissedReason::Callback => "callback",
        }.to_owned())),
        Outcome::Rejected(RingFailure::Busy) => ("rejected", Some("busy".to_owned())),
        Outcome::Rejected(RingFailure::Declined(code)) => ("rejected", Some(format!("declined_{code}"))),
        Outcome::Rejected(other) => ("rejected", Some(format!("{other:?}").to_lowercase())),
        Outcome::RejectedByPlan => ("rejected", Some("dialplan".to_owned())),
        Outcome::NoRoute => ("rejected", Some("no_route".to_owned())),
        Outcome::Failed(f) => ("failed", Some(match f {
            Failure::Answer => "webrtc_answer",
            Failure::PreAccept(_) => "pre_accept",
            Failure::Accept(_) => "accept",
            Failure::Media => "media",
            Failure::Aborted => "aborted",
        }.to_owned())),
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
            to = %self.number.display_number, route = ?self.route, "WhatsApp call offered"
        );
        if self.route.is_none() {
            tracing::warn!(call_id = %self.connect.call_id, "no dialplan route matches the call; rejecting it");
        }
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
            CallMsg::Snapshot { ring, group, snapshot } => return self.start_ring(ring, group, snapshot, ctx),
            CallMsg::Leg(LegReport { ring, leg, what }) => {
                let Some(current) = self.ring.as_mut().filter(|r| r.id == ring) else {
                    // A leg of a ring that is over: dropping the report drops nothing we hold;
                    // its task already lost its stop handle and ends its dialog by itself.
                    tracing::debug!(ring, ?leg, "report from a finished ring");
                    return;
                };
                let (drive, news) = current.report(now, leg, what);
                if drive {
                    self.drive_ring(ctx);
                } else {
                    self.ring_news(news, ctx);
                }
                return;
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
                BridgeEvent::PlayFinished => Event::PlayFinished,
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

fn empty_group() -> RingGroup {
    RingGroup {
        name: GroupName::new(""),
        strategy: crate::routing::ring::Strategy::Simultaneous,
        members: Vec::new(),
        ring_timeout: Duration::ZERO,
        skip_busy: false,
        allow_call_waiting: false,
    }
}
