//! One ring group ringing for one WhatsApp call: the shell around the pure
//! [`RingRun`](crate::routing::ring::RingRun). It keeps a SIP leg task per member rung, turns
//! the engine's commands into INVITEs and CANCELs and the legs' reports into engine events, and
//! keeps each member's line for the call record.
//!
//! A leg task owns its dialog: it rings, and once answered waits until the phone hangs up or it
//! is told to stop. It is told to stop by its `stop` sender being used *or dropped*, so dropping
//! a [`GroupRing`] ends every leg it still holds: CANCEL while ringing, BYE once answered. That
//! is also how a second answer is ended: the engine ignores it, its leg is dropped, BYE.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use crate::media::bridge::PhoneMedia;
use crate::routing::ring::{self, GroupName, LegIndex, MemberTarget, RingRun, SkipReason};
use crate::sip::leg::{self, DialRequest, DialTarget, LegEnd, LegOutcome, Progress};
use crate::sip::sdp::AudioOffer;
use crate::store::{unix_ms, LegAttempt};

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

use super::actor::CallDeps;

/// What a leg task reports; `ring` says which of the call's group rings it belongs to.
#[derive(Debug)]
pub struct LegReport {
    pub ring: u32,
    pub leg: LegIndex,
    pub what: LegNews,
}

#[derive(Debug)]
pub enum LegNews {
    Ringing { contact: String },
    Answered { contact: String, media: PhoneMedia },
    /// The leg ended without an answer.
    Unanswered(Unanswered),
    /// The answered phone hung up (or its dialog ended).
    HungUp,
}

#[derive(Debug)]
pub enum Unanswered {
    Busy,
    /// 408/480: the phone or PBX stopped ringing by itself.
    NoAnswer { detail: String },
    Rejected { code: u16, detail: String },
    Failed { detail: String },
}

impl Unanswered {
    /// The leg record's outcome and detail, and the engine's event.
    fn parts(self, leg: LegIndex) -> (&'static str, Option<String>, ring::Event) {
        match self {
            Unanswered::Busy => ("busy", None, ring::Event::Busy(leg)),
            Unanswered::NoAnswer { detail } => ("no_answer", Some(detail), ring::Event::NoAnswer(leg)),
            Unanswered::Rejected { code, detail } => ("rejected", Some(detail), ring::Event::Rejected(leg, code)),
            Unanswered::Failed { detail } => ("failed", Some(detail), ring::Event::Failed(leg)),
        }
    }
}

/// Where a leg task sends its reports (the call actor).
pub type LegSink = Arc<dyn Fn(LegReport) + Send + Sync>;

/// What the call learns from one group ring.
#[derive(Debug)]
pub enum RingNews {
    /// Nothing for the call machine yet.
    Quiet,
    /// First 180/183 of the group.
    Ringing,
    /// The group's answer: its media, and the stop handle that keeps the dialog until used.
    Answered { target: MemberTarget, contact: String, media: PhoneMedia, stop: oneshot::Sender<()> },
    /// The group ended unanswered.
    Failed(ring::Outcome),
    /// The answered phone hung up.
    HungUp,
}

struct RingLeg {
    stop: Option<oneshot::Sender<()>>,
    /// Held between the leg's answer and the engine's verdict on it.
    answer: Option<(String, PhoneMedia)>,
    record: usize,
}

pub struct GroupRing {
    pub id: u32,
    pub group: GroupName,
    run: Option<RingRun>,
    legs: HashMap<LegIndex, RingLeg>,
    /// The call record's lines for this group, in the order members were rung or skipped.
    pub records: Vec<LegAttempt>,
    rang_any: bool,
    winner: Option<LegIndex>,
    /// The run has ended (or was cancelled before it began).
    pub over: bool,
}

impl GroupRing {
    /// A ring waiting for its availability snapshot.
    pub fn new(id: u32, group: GroupName) -> GroupRing {
        GroupRing { id, group, run: None, legs: HashMap::new(), records: Vec::new(), rang_any: false, winner: None, over: false }
    }

    /// The snapshot came: start the engine.
    pub fn start(&mut self, run: RingRun) {
        for s in run.skipped() {
            self.records.push(LegAttempt {
                target: s.target.to_string(),
                group: Some(self.group.to_string()),
                rang: Vec::new(),
                outcome: "skipped".into(),
                detail: Some(skip_text(s.reason).into()),
                invited_at: None,
                ended_at: None,
            });
        }
        self.run = Some(run);
    }

    pub fn is_started(&self) -> bool {
        self.run.is_some()
    }

    /// The caller left or the call ended: CANCEL what rings.
    pub fn cancel(&mut self, now: Instant) {
        match &mut self.run {
            Some(run) => run.handle(now, ring::Event::Cancelled),
            None => self.over = true,
        }
    }

    pub fn timeout(&mut self, now: Instant) {
        if let Some(run) = &mut self.run {
            run.handle_timeout(now);
        }
    }

    /// Carries out what the engine says until it waits; returns the next deadline and what the
    /// call should hear.
    pub fn drive(&mut self, deps: &Arc<CallDeps>, dial: &DialTemplate, sink: &LegSink) -> (Option<Instant>, RingNews) {
        let mut news = RingNews::Quiet;
        let Some(run) = &mut self.run else { return (None, news) };
        // Legs cancelled in this pass: rang out, unless the pass ends in an answer or the
        // caller leaving, which cancel the rest.
        let mut cancelled = Vec::new();
        loop {
            match run.poll_output() {
                ring::Output::Command(ring::Command::Ring { leg, target }) => {
                    let (stop_tx, stop_rx) = oneshot::channel();
                    self.records.push(LegAttempt {
                        target: target.to_string(),
                        group: Some(self.group.to_string()),
                        rang: Vec::new(),
                        outcome: "no_answer".into(),
                        detail: None,
                        invited_at: Some(now_ms()),
                        ended_at: None,
                    });
                    let record = self.records.len() - 1;
                    spawn_leg(deps.clone(), dial.clone(), self.id, leg, target, stop_rx, sink.clone());
                    self.legs.insert(leg, RingLeg { stop: Some(stop_tx), answer: None, record });
                }
                ring::Output::Command(ring::Command::Cancel { leg }) => {
                    if let Some(l) = self.legs.get_mut(&leg) {
                        if let Some(stop) = l.stop.take() {
                            let _ = stop.send(());
                        }
                        let r = &mut self.records[l.record];
                        if r.ended_at.is_none() {
                            r.ended_at = Some(now_ms());
                            cancelled.push(l.record);
                        }
                    }
                }
                ring::Output::Command(ring::Command::Done(outcome)) => {
                    self.over = true;
                    if matches!(outcome, ring::Outcome::Answered { .. } | ring::Outcome::CallerCancelled) {
                        for &r in &cancelled {
                            self.records[r].outcome = "cancelled".into();
                        }
                    }
                    news = match outcome {
                        ring::Outcome::Answered { leg, target } => {
                            self.winner = Some(leg);
                            match self.legs.get_mut(&leg).and_then(|l| Some((l.answer.take()?, l.stop.take()?, l.record))) {
                                Some(((contact, media), stop, record)) => {
                                    self.records[record].outcome = "answered".into();
                                    RingNews::Answered { target, contact, media, stop }
                                }
                                None => RingNews::Failed(ring::Outcome::Unreachable),
                            }
                        }
                        // The call machine asked for this; it has moved on already.
                        ring::Outcome::CallerCancelled => RingNews::Quiet,
                        other => RingNews::Failed(other),
                    };
                }
                ring::Output::Timeout(at) => return (Some(at), news),
                ring::Output::Idle => return (None, news),
            }
        }
    }

    /// A leg's report, into the engine. Returns whether the engine needs driving.
    pub fn report(&mut self, now: Instant, leg: LegIndex, what: LegNews) -> (bool, RingNews) {
        let Some(l) = self.legs.get_mut(&leg) else { return (false, RingNews::Quiet) };
        let record = &mut self.records[l.record];
        let Some(run) = &mut self.run else { return (false, RingNews::Quiet) };
        match what {
            LegNews::Ringing { contact } => {
                if !record.rang.contains(&contact) {
                    record.rang.push(contact);
                }
                run.handle(now, ring::Event::Ringing(leg));
                let first = !std::mem::replace(&mut self.rang_any, true);
                (false, if first { RingNews::Ringing } else { RingNews::Quiet })
            }
            LegNews::Answered { contact, media } => {
                if !record.rang.contains(&contact) {
                    record.rang.push(contact.clone());
                }
                if self.over {
                    // Answered after the winner or after the caller left: dropping the leg's
                    // stop handle makes its task send BYE (the 200 was already ACKed).
                    tracing::info!(%contact, "a second answer ended with BYE");
                    record.outcome = "answered_late".into();
                    record.ended_at = Some(now_ms());
                    l.stop.take();
                    return (false, RingNews::Quiet);
                }
                l.answer = Some((contact, media));
                run.handle(now, ring::Event::Answered(leg));
                (true, RingNews::Quiet)
            }
            LegNews::Unanswered(how) => {
                let (outcome, detail, event) = how.parts(leg);
                record.outcome = outcome.into();
                if detail.is_some() {
                    record.detail = detail;
                }
                record.ended_at = Some(now_ms());
                run.handle(now, event);
                (true, RingNews::Quiet)
            }
            LegNews::HungUp => {
                if self.winner == Some(leg) {
                    record.ended_at = Some(now_ms());
                    (false, RingNews::HungUp)
                } else {
                    (false, RingNews::Quiet)
                }
            }
        }
    }

    /// The winner's call ended: its line gets its end time.
    pub fn answered_call_ended(&mut self) {
        if let Some(l) = self.winner.and_then(|w| self.legs.get(&w)) {
            let r = &mut self.records[l.record];
            r.ended_at.get_or_insert_with(now_ms);
        }
    }
}

/// What every INVITE of the call carries.
#[derive(Debug, Clone)]
pub struct DialTemplate {
    pub caller: String,
    pub caller_name: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The SIP layer's own ring timeout: past the engine's, so the engine's CANCEL comes first
    /// and a leg's own timeout means the far side gave up.
    pub ring_timeout: Duration,
}

/// Rings one member; reports through `sink` until the dialog ends or `stop` fires (or drops).
fn spawn_leg(deps: Arc<CallDeps>, dial: DialTemplate, ring: u32, leg: LegIndex, target: MemberTarget, mut stop: oneshot::Receiver<()>, sink: LegSink) {
    let send = move |what: LegNews| sink(LegReport { ring, leg, what });
    deps.media_rt.clone().spawn(async move {
        let target = match target {
            MemberTarget::User(user) => DialTarget::User(user),
            MemberTarget::Trunk { trunk, extension } => DialTarget::Trunk { trunk, extension },
            MemberTarget::Group(g) => return send(LegNews::Unanswered(Unanswered::Failed { detail: format!("nested group {g} reached the dialer") })),
        };
        let settings = &deps.settings;
        let ip = settings.rtp.bind.parse().expect("validated");
        let (rtp, rtcp, port) = match deps.ports.bind_pair(ip).await {
            Ok(p) => p,
            Err(e) => return send(LegNews::Unanswered(Unanswered::Failed { detail: format!("no RTP port: {e}") })),
        };
        let offer = AudioOffer { session_id: rand::random::<u32>().into(), address: settings.rtp_public_ip(), port };
        let request = DialRequest {
            target,
            caller: dial.caller,
            caller_name: dial.caller_name,
            sdp_offer: offer.to_sdp(),
            ring_timeout: dial.ring_timeout,
            headers: dial.headers,
        };
        let (progress_tx, mut progress) = mpsc::channel(16);
        let outcome = {
            let dialing = leg::dial(&deps.sip, request, Some(progress_tx));
            tokio::pin!(dialing);
            loop {
                tokio::select! {
                    outcome = &mut dialing => break outcome,
                    Some(Progress::Ringing { contact }) = progress.recv() => send(LegNews::Ringing { contact }),
                    // Dropping the dial cancels every fork (CANCEL; a late 200 gets ACK and BYE).
                    _ = &mut stop => return,
                }
            }
        };
        let mut answered = match outcome {
            LegOutcome::Answered(a) => a,
            LegOutcome::Busy => return send(LegNews::Unanswered(Unanswered::Busy)),
            LegOutcome::Rejected { code, reason } => {
                return send(LegNews::Unanswered(Unanswered::Rejected { code, detail: format!("{code} {reason}") }))
            }
            // 408/480 (or the SIP layer's own timeout): the far side gave up ringing before the
            // engine's own timer for this member did.
            LegOutcome::NoAnswer => return send(LegNews::Unanswered(Unanswered::NoAnswer { detail: "stopped ringing by itself (408/480)".into() })),
            LegOutcome::Failed(e) => return send(LegNews::Unanswered(Unanswered::Failed { detail: e.to_string() })),
        };
        let audio = &answered.audio;
        let media = PhoneMedia { rtp, rtcp, remote_rtp: audio.remote_rtp, remote_rtcp: audio.remote_rtcp, codec: audio.codec, dtmf_pt: audio.dtmf_pt };
        send(LegNews::Answered { contact: answered.contact.clone(), media });
        tokio::select! {
            end = answered.wait_end() => {
                if end == LegEnd::Terminated {
                    tracing::info!("phone dialog ended without BYE");
                }
                send(LegNews::HungUp);
            }
            _ = &mut stop => answered.hangup().await,
        }
    });
}

fn skip_text(r: SkipReason) -> &'static str {
    match r {
        SkipReason::NotRegistered => "not_registered",
        SkipReason::Dnd => "dnd",
        SkipReason::OutOfHours => "out_of_hours",
        SkipReason::Busy => "busy",
        SkipReason::NoStatus => "no_status",
        SkipReason::NoRingTime => "no_ring_time",
        SkipReason::NestedGroup => "nested_group",
    }
}

/// How a group's failure reads to the route's branches. Nobody to ring reads as busy when
/// every member was on a call, and as no answer otherwise (off duty, not registered, out of
/// hours): "nobody picked up" is what the caller experienced.
pub fn ring_failure(outcome: &ring::Outcome) -> super::machine::RingFailure {
    use super::machine::RingFailure as F;
    match outcome {
        ring::Outcome::Busy => F::Busy,
        ring::Outcome::Rejected { code } => F::Declined(*code),
        ring::Outcome::Unreachable => F::Unreachable,
        ring::Outcome::NoneAvailable(skipped) if !skipped.is_empty() && skipped.iter().all(|s| s.reason == SkipReason::Busy) => F::Busy,
        ring::Outcome::NoAnswer | ring::Outcome::NoneAvailable(_) | ring::Outcome::CallerCancelled | ring::Outcome::Answered { .. } => F::NoAnswer,
    }
}
