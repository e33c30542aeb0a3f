//! One user-initiated WhatsApp call as a pure state machine: events in, commands out, the clock
//! passed in. The CallActor feeds it what Meta, the phones and the media task report, and
//! carries out what [`CallMachine::poll_output`] says.
//!
//! The flow (whatsapp-calling-api.md §8.1): on Meta's offer, make the WebRTC answer and start
//! the call's route at once; `pre_accept` with the answer as soon as it exists, so ICE and DTLS
//! finish while the phones ring; when a phone answers, attach it to the bridge and `accept` with
//! the same SDP; only after accept's 200 does audio flow to WhatsApp. Every way out ends in
//! exactly one [`Command::Finished`] carrying the outcome for the call record.
//!
//! The route (the dialplan's steps for this call) is walked here too, because what a failed
//! ring leads to decides Graph actions: ringing the next group keeps the call offered, an
//! announcement accepts it, a callback mark or a reject ends it. Rules this module settles:
//! - **Ringing a group** is one [`Command::Ring`]; the actor runs the ring-group engine over
//!   the SIP legs and reports the first answer ([`Event::PhoneAnswered`]) or the group's
//!   failure ([`Event::PhoneFailed`]). The failure picks the step's branch.
//! - **An announcement accepts the call** (Meta has no early media), plays, then follows its
//!   `then`. The call is then "announced": not answered by an agent, so still a missed call for
//!   callbacks. After an accept, ending the call is `terminate`, never `reject`.
//! - **The answer window** bounds ringing before an accept; when it runs out the ringing stops
//!   and the call is rejected as missed, marked for a callback if the step's no-answer branch
//!   says so (there is no time left for anything else).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::routing::dialplan::{Action, Step};
use crate::routing::ring::GroupName;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallConfig {
    /// How long we let the phones ring. Meta's connect webhook arrives while the user's phone
    /// already rings, and the user gives up after about 30-60 s (§1.3, §8.3); past this we
    /// reject so the caller hears a clear end instead of ringing into nothing.
    pub answer_window: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            answer_window: Duration::from_secs(30),
        }
    }
}

/// What happened, as the actor learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The WebRTC leg answered Meta's offer; the answer SDP is held by the actor.
    AnswerReady,
    /// Meta's offer could not be answered (unsupported SDP, no ports).
    AnswerFailed,
    PreAccepted,
    PreAcceptFailed(GraphFailure),
    /// A phone rings (SIP 180/183), for the record.
    Ringing,
    /// The group's first answer (SIP 200, ACKed). Later answers are the actor's to end.
    PhoneAnswered,
    /// The group ended without an answer.
    PhoneFailed(RingFailure),
    Accepted,
    AcceptFailed(GraphFailure),
    /// The announcement played to its end.
    PlayFinished,
    /// Meta's terminate webhook: the WhatsApp user hung up (or Meta ended the call).
    UserHungUp,
    /// The answered phone hung up (BYE).
    PhoneHungUp,
    /// The media bridge ended on its own: WebRTC failed, or no media for too long.
    MediaFailed,
    /// Ended from our side (admin, shutdown).
    Hangup,
}

/// Why a Graph action failed: Meta's error code when it sent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphFailure {
    pub code: Option<u32>,
}

/// How a ring group ended without an answer; picks the step's `on_*` branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingFailure {
    /// `on_busy`.
    Busy,
    /// Declined with this SIP status (603, 404...): `on_reject`.
    Declined(u16),
    /// Rang out, or nobody could be rung: `on_no_answer`.
    NoAnswer,
    /// Transport error, trunk down, no response: `on_error`.
    Unreachable,
}

/// What the actor does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Media: answer Meta's offer with a WebRTC leg (and start its bridge task).
    AnswerOffer,
    /// SIP: ring this group (the ring-group engine decides who, when).
    Ring(GroupName),
    /// SIP: stop ringing (CANCEL every leg).
    CancelRing,
    /// Graph: pre_accept with our answer.
    PreAccept,
    /// Media: attach the answered phone to the bridge. WhatsApp still gets no audio.
    AttachPhone,
    /// Graph: accept with the byte-identical answer.
    Accept,
    /// Media: accept's 200 came; audio may flow to WhatsApp now (§8.1).
    StartMedia,
    /// Media: play this announcement (a dialplan file) to the WhatsApp user.
    Play(PathBuf),
    /// Graph: reject (the call was never accepted).
    Reject,
    /// Graph: terminate (the call was accepted; always sent when we end it, §8.7).
    Terminate,
    /// SIP: BYE to the answered phone.
    HangUpPhone,
    /// Media: stop the bridge and close the WebRTC leg.
    StopMedia,
    /// The call is over: write its record. Emitted exactly once, last.
    Finished(Summary),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Command(Command),
    Timeout(Instant),
    Idle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    /// Accepted to play an announcement; no agent took it.
    Announced,
    /// Nobody took it: the caller gave up, or the answer window ran out.
    Missed(MissedReason),
    /// The business side declined it (busy, 603...).
    Rejected(RingFailure),
    /// The dialplan said reject.
    RejectedByPlan,
    /// No route of the dialplan matches the call.
    NoRoute,
    Failed(Failure),
}

impl Outcome {
    /// No agent talked to the caller: the call counts for missed-call lists and callbacks.
    pub fn is_missed(self) -> bool {
        self != Outcome::Answered
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedReason {
    CallerHungUp,
    /// The phone answered just as the caller hung up: too late to bridge.
    CallerHungUpAsAnswered,
    NoAnswer,
    Unreachable,
    /// The route marked the caller for a callback without ringing anyone.
    Callback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Answer,
    PreAccept(GraphFailure),
    Accept(GraphFailure),
    Media,
    /// We ended it (admin or shutdown) before it was answered.
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Caller,
    Phone,
    Media,
    Gateway,
}

/// What the call record needs from the machine; ids, numbers and names are the actor's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub outcome: Outcome,
    pub ended_by: EndedBy,
    /// The route asked for a callback.
    pub callback: bool,
    pub offered_at: Instant,
    pub ringing_at: Option<Instant>,
    /// When an agent's answer was accepted (not set for announcements).
    pub answered_at: Option<Instant>,
    pub ended_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Walking the route: ringing a group, or waiting to accept for an announcement.
    Routing,
    /// A phone answered; accept in flight.
    Accepting,
    /// Accept in flight to play an announcement.
    AcceptingToAnnounce,
    /// Accepted, playing an announcement.
    Announcing,
    /// Accepted and bridged to a phone: media flows both ways.
    Connected,
    Ended,
}

pub struct CallMachine {
    cfg: CallConfig,
    state: State,
    steps: Vec<Step>,
    /// The step being carried out.
    step: usize,
    /// Ringing a branch's `ring:<group>`: whatever it does is the end of the route.
    last_try: bool,
    /// A [`Command::Ring`] is out and has not ended.
    ringing: bool,
    /// Meta's accept returned 200: media may flow, ending is `terminate`.
    accepted: bool,
    /// The announcement to play once the call is accepted, and what follows it.
    announcement: Option<(PathBuf, Action)>,
    /// What follows the announcement playing now.
    after_play: Action,
    callback: bool,
    last_failure: Option<RingFailure>,
    offered_at: Instant,
    ringing_at: Option<Instant>,
    answered_at: Option<Instant>,
    answer_ready: bool,
    pre_accepted: bool,
    /// The phone answered before pre_accept finished: accept follows pre_accept's 200.
    phone_waiting: bool,
    /// The phone hung up while accept was in flight: terminate once it lands.
    phone_gone: bool,
    window_ends: Option<Instant>,
    out: VecDeque<Command>,
}

impl CallMachine {
    /// Meta's offer arrived at `now`: answer it and start the route at once. No route (no
    /// steps) rejects the call.
    pub fn new(cfg: CallConfig, steps: Vec<Step>, now: Instant) -> CallMachine {
        let window_ends = Some(now + cfg.answer_window);
        let mut m = CallMachine {
            cfg,
            state: State::Routing,
            steps,
            step: 0,
            last_try: false,
            ringing: false,
            accepted: false,
            announcement: None,
            after_play: Action::End,
            callback: false,
            last_failure: None,
            offered_at: now,
            ringing_at: None,
            answered_at: None,
            answer_ready: false,
            pre_accepted: false,
            phone_waiting: false,
            phone_gone: false,
            window_ends,
            out: VecDeque::new(),
        };
        if m.steps.is_empty() {
            m.finish(now, &[Command::Reject], Outcome::NoRoute, EndedBy::Gateway);
        } else {
            m.out.push_back(Command::AnswerOffer);
            m.run_step(now, 0);
        }
        m
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &CallConfig {
        &self.cfg
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        use State::*;
        match (self.state, event) {
            (Ended, _) => {}
            (_, Event::AnswerReady) if !self.answer_ready => {
                self.answer_ready = true;
                self.out.push_back(Command::PreAccept);
            }
            (Routing, Event::AnswerFailed) => {
                let cmds = [self.stop_phone(), Some(Command::StopMedia), Some(Command::Reject)];
                self.finish_some(now, cmds, Outcome::Failed(Failure::Answer), EndedBy::Gateway);
            }
            (Routing, Event::PreAccepted) => {
                self.pre_accepted = true;
                if std::mem::take(&mut self.phone_waiting) {
                    self.start_accept(State::Accepting);
                } else if self.announcement.is_some() {
                    self.start_accept(State::AcceptingToAnnounce);
                }
            }
            (Routing, Event::PreAcceptFailed(f)) => {
                let cmds = [self.stop_phone(), Some(Command::StopMedia), Some(Command::Reject)];
                self.finish_some(now, cmds, Outcome::Failed(Failure::PreAccept(f)), EndedBy::Gateway);
            }
            (Routing, Event::Ringing) => {
                self.ringing_at.get_or_insert(now);
            }
            (Routing, Event::PhoneAnswered) if self.ringing => {
                self.ringing = false;
                self.out.push_back(Command::AttachPhone);
                if self.accepted {
                    // After an announcement: the bridge already sends to WhatsApp.
                    self.state = Connected;
                    self.answered_at = Some(now);
                } else if self.pre_accepted {
                    // Accept needs the answer SDP and, to keep the one SDP Meta has seen, a
                    // finished pre_accept (§8.1); until then the phone waits, attached.
                    self.start_accept(State::Accepting);
                } else {
                    self.phone_waiting = true;
                }
            }
            (Routing, Event::PhoneFailed(f)) if self.ringing => {
                self.ringing = false;
                self.last_failure = Some(f);
                if std::mem::take(&mut self.last_try) {
                    self.apply(now, Action::End);
                } else {
                    let action = match self.steps.get(self.step) {
                        Some(Step::Ring { branches, .. }) => match f {
                            RingFailure::NoAnswer => branches.on_no_answer.clone(),
                            RingFailure::Busy => branches.on_busy.clone(),
                            RingFailure::Declined(_) => branches.on_reject.clone(),
                            RingFailure::Unreachable => branches.on_error.clone(),
                        },
                        _ => Action::End,
                    };
                    self.apply(now, action);
                }
            }
            (Routing, Event::UserHungUp) => {
                let (cmds, outcome) = if self.phone_waiting {
                    ([Some(Command::HangUpPhone), Some(Command::StopMedia)], Outcome::Missed(MissedReason::CallerHungUpAsAnswered))
                } else {
                    ([self.cancel_ring(), Some(Command::StopMedia)], self.unanswered(MissedReason::CallerHungUp))
                };
                self.finish_some(now, cmds, outcome, EndedBy::Caller);
            }
            (Routing, Event::PhoneHungUp) => {
                // Answered and gone before accept was even sent: Meta never saw an answer.
                if self.phone_waiting {
                    self.finish(now, &[Command::StopMedia, Command::Reject], Outcome::Missed(MissedReason::NoAnswer), EndedBy::Phone);
                }
            }
            (Routing, Event::MediaFailed) => {
                let cmds = [self.stop_phone(), Some(Command::StopMedia), Some(self.end_command())];
                let outcome = if self.accepted { Outcome::Announced } else { Outcome::Failed(Failure::Media) };
                self.finish_some(now, cmds, outcome, EndedBy::Media);
            }
            (Routing, Event::Hangup) => {
                let cmds = [self.stop_phone(), Some(Command::StopMedia), Some(self.end_command())];
                let outcome = if self.accepted { Outcome::Announced } else { Outcome::Failed(Failure::Aborted) };
                self.finish_some(now, cmds, outcome, EndedBy::Gateway);
            }
            (Accepting, Event::Accepted) => {
                self.accepted = true;
                self.answered_at = Some(now);
                if self.phone_gone {
                    self.finish(now, &[Command::StopMedia, Command::Terminate], Outcome::Answered, EndedBy::Phone);
                } else {
                    self.state = Connected;
                    self.out.push_back(Command::StartMedia);
                }
            }
            (Accepting, Event::AcceptFailed(f)) => {
                let cmds: &[Command] = if self.phone_gone {
                    &[Command::StopMedia, Command::Reject]
                } else {
                    &[Command::HangUpPhone, Command::StopMedia, Command::Reject]
                };
                self.finish(now, cmds, Outcome::Failed(Failure::Accept(f)), EndedBy::Gateway);
            }
            (Accepting, Event::PhoneHungUp) => self.phone_gone = true,
            (Accepting, Event::UserHungUp) => {
                let cmds: &[Command] = if self.phone_gone {
                    &[Command::StopMedia]
                } else {
                    &[Command::HangUpPhone, Command::StopMedia]
                };
                self.finish(now, cmds, Outcome::Missed(MissedReason::CallerHungUpAsAnswered), EndedBy::Caller);
            }
            (Accepting, Event::MediaFailed | Event::Hangup) => {
                let by = if self.phone_gone { EndedBy::Phone } else { EndedBy::Gateway };
                let cmds: &[Command] = if self.phone_gone {
                    &[Command::StopMedia, Command::Terminate]
                } else {
                    &[Command::HangUpPhone, Command::StopMedia, Command::Terminate]
                };
                self.finish(now, cmds, Outcome::Failed(Failure::Aborted), by);
            }
            (AcceptingToAnnounce, Event::Accepted) => {
                self.accepted = true;
                if let Some((file, then)) = self.announcement.take() {
                    self.after_play = then;
                    self.state = Announcing;
                    self.out.extend([Command::StartMedia, Command::Play(file)]);
                }
            }
            (AcceptingToAnnounce, Event::AcceptFailed(f)) => {
                self.finish(now, &[Command::StopMedia, Command::Reject], Outcome::Failed(Failure::Accept(f)), EndedBy::Gateway);
            }
            (AcceptingToAnnounce, Event::UserHungUp) => {
                self.finish(now, &[Command::StopMedia], Outcome::Missed(MissedReason::CallerHungUp), EndedBy::Caller);
            }
            (AcceptingToAnnounce, Event::MediaFailed | Event::Hangup) => {
                self.finish(now, &[Command::StopMedia, Command::Terminate], Outcome::Failed(Failure::Aborted), EndedBy::Gateway);
            }
            (Announcing, Event::PlayFinished) => {
                self.state = Routing;
                let then = std::mem::replace(&mut self.after_play, Action::End);
                self.apply(now, then);
            }
            (Announcing, Event::UserHungUp) => {
                self.finish(now, &[Command::StopMedia], Outcome::Announced, EndedBy::Caller);
            }
            (Announcing, Event::MediaFailed) => {
                self.finish(now, &[Command::StopMedia, Command::Terminate], Outcome::Announced, EndedBy::Media);
            }
            (Announcing, Event::Hangup) => {
                self.finish(now, &[Command::StopMedia, Command::Terminate], Outcome::Announced, EndedBy::Gateway);
            }
            (Connected, Event::UserHungUp) => {
                self.finish(now, &[Command::HangUpPhone, Command::StopMedia], Outcome::Answered, EndedBy::Caller);
            }
            (Connected, Event::PhoneHungUp) => {
                self.finish(now, &[Command::StopMedia, Command::Terminate], Outcome::Answered, EndedBy::Phone);
            }
            (Connected, Event::MediaFailed) => {
                self.finish(now, &[Command::HangUpPhone, Command::StopMedia, Command::Terminate], Outcome::Answered, EndedBy::Media);
            }
            (Connected, Event::Hangup) => {
                self.finish(now, &[Command::HangUpPhone, Command::StopMedia, Command::Terminate], Outcome::Answered, EndedBy::Gateway);
            }
            // Late or duplicate reports: a second answer (the actor ends it), a ringing after
            // answer, a pre_accept result after the phone answered...
            (_, other) => tracing::debug!(state = ?self.state, event = ?other, "event ignored"),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let waiting = matches!(self.state, State::Routing) && !self.accepted;
        if waiting && self.window_ends.is_some_and(|t| now >= t) {
            // Too late to ring anyone else or accept: only a callback mark is still possible.
            if let Some(Step::Ring { branches, .. }) = self.steps.get(self.step) {
                if branches.on_no_answer == Action::Callback && self.ringing && !self.last_try {
                    self.callback = true;
                }
            }
            let cmds = [self.stop_phone(), Some(Command::StopMedia), Some(Command::Reject)];
            self.finish_some(now, cmds, Outcome::Missed(MissedReason::NoAnswer), EndedBy::Gateway);
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(c) = self.out.pop_front() {
            return Output::Command(c);
        }
        match (self.state, self.window_ends) {
            (State::Routing, Some(t)) if !self.accepted => Output::Timeout(t),
            _ => Output::Idle,
        }
    }

    /// Carries out step `i` of the route.
    fn run_step(&mut self, now: Instant, i: usize) {
        self.step = i;
        match self.steps.get(i).cloned() {
            Some(Step::Ring { group, .. }) => self.ring(group),
            Some(Step::Announce { file, then }) => self.announce(now, file, then),
            Some(Step::Callback) => self.apply(now, Action::Callback),
            Some(Step::Reject) => self.apply(now, Action::Reject),
            // The validator refuses a `next` with no step after it; should one slip through,
            // ending is the only safe reading.
            None => self.apply(now, Action::End),
        }
    }

    fn apply(&mut self, now: Instant, action: Action) {
        match action {
            Action::Next => self.run_step(now, self.step + 1),
            Action::Ring(group) => {
                self.last_try = true;
                self.ring(group);
            }
            Action::Announce(file) => self.announce(now, file, Action::End),
            Action::Callback => {
                self.callback = true;
                let outcome = self.unanswered(MissedReason::Callback);
                self.end_unanswered(now, outcome);
            }
            Action::End => {
                let outcome = match self.last_failure {
                    _ if self.accepted => Outcome::Announced,
                    Some(RingFailure::NoAnswer) | None => Outcome::Missed(MissedReason::NoAnswer),
                    Some(RingFailure::Unreachable) => Outcome::Missed(MissedReason::Unreachable),
                    Some(busy_or_declined) => Outcome::Rejected(busy_or_declined),
                };
                self.end_unanswered(now, outcome);
            }
            Action::Reject => {
                let outcome = if self.accepted { Outcome::Announced } else { Outcome::RejectedByPlan };
                self.end_unanswered(now, outcome);
            }
        }
    }

    fn ring(&mut self, group: GroupName) {
        self.ringing = true;
        self.out.push_back(Command::Ring(group));
    }

    fn announce(&mut self, now: Instant, file: PathBuf, then: Action) {
        if self.accepted {
            self.after_play = then;
            self.state = State::Announcing;
            self.out.push_back(Command::Play(file));
            return;
        }
        if self.window_ends.is_some_and(|t| now >= t) {
            self.apply(now, Action::End);
            return;
        }
        self.announcement = Some((file, then));
        if self.answer_ready && self.pre_accepted {
            self.start_accept(State::AcceptingToAnnounce);
        }
    }

    /// Nobody answered and the route says stop: reject an offered call, terminate an accepted
    /// one (after an announcement).
    fn end_unanswered(&mut self, now: Instant, outcome: Outcome) {
        let end = self.end_command();
        self.finish(now, &[Command::StopMedia, end], outcome, EndedBy::Gateway);
    }

    fn unanswered(&self, reason: MissedReason) -> Outcome {
        if self.accepted {
            Outcome::Announced
        } else {
            Outcome::Missed(reason)
        }
    }

    fn end_command(&self) -> Command {
        if self.accepted {
            Command::Terminate
        } else {
            Command::Reject
        }
    }

    fn cancel_ring(&self) -> Option<Command> {
        self.ringing.then_some(Command::CancelRing)
    }

    /// Before accept, the business side stops with a CANCEL while it rings, or a BYE once the
    /// phone answered and waits for pre_accept.
    fn stop_phone(&self) -> Option<Command> {
        if self.phone_waiting {
            Some(Command::HangUpPhone)
        } else {
            self.cancel_ring()
        }
    }

    fn start_accept(&mut self, state: State) {
        debug_assert!(self.answer_ready && self.pre_accepted);
        self.state = state;
        self.window_ends = None;
        self.out.push_back(Command::Accept);
    }

    fn finish_some<const N: usize>(&mut self, now: Instant, cmds: [Option<Command>; N], outcome: Outcome, ended_by: EndedBy) {
        let cmds: Vec<Command> = cmds.into_iter().flatten().collect();
        self.finish(now, &cmds, outcome, ended_by);
    }

    fn finish(&mut self, now: Instant, cmds: &[Command], outcome: Outcome, ended_by: EndedBy) {
        self.out.extend(cmds.iter().cloned());
        self.out.push_back(Command::Finished(Summary {
            outcome,
            ended_by,
            callback: self.callback,
            offered_at: self.offered_at,
            ringing_at: self.ringing_at,
            answered_at: self.answered_at,
            ended_at: now,
        }));
        self.state = State::Ended;
        self.window_ends = None;
        self.ringing = false;
    }
}

#[cfg(test)]
mod tests;
