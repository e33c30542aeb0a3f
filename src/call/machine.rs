//! One user-initiated WhatsApp call as a pure state machine: events in, commands out, the clock
//! passed in. The CallActor feeds it what Meta, the phones and the media task report, and
//! carries out what [`CallMachine::poll_output`] says.
//!
//! The flow (whatsapp-calling-api.md §8.1): on Meta's offer, make the WebRTC answer and ring
//! the target at once; `pre_accept` with the answer as soon as it exists, so ICE and DTLS finish
//! while the phone rings; when the phone answers, attach it to the bridge and `accept` with the
//! same SDP; only after accept's 200 does audio flow to WhatsApp. Every way out ends in exactly
//! one [`Command::Finished`] carrying the outcome for the call record.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
    /// The first phone answered (SIP 200, ACKed). Later answers are the SIP layer's to end.
    PhoneAnswered,
    /// Every target ended without answering.
    PhoneFailed(RingFailure),
    Accepted,
    AcceptFailed(GraphFailure),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingFailure {
    Busy,
    /// Declined with this SIP status (603, 486 counted as busy above, 480...).
    Declined(u16),
    /// Rang out on the SIP side (its own ring timeout).
    NoAnswer,
    /// Unreachable: not registered, transport error, trunk down.
    Unreachable,
}

/// What the actor does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Media: answer Meta's offer with a WebRTC leg (and start its bridge task).
    AnswerOffer,
    /// SIP: ring the call's target.
    Ring,
    /// SIP: stop ringing (CANCEL every fork).
    CancelRing,
    /// Graph: pre_accept with our answer.
    PreAccept,
    /// Media: attach the answered phone to the bridge. WhatsApp still gets no audio.
    AttachPhone,
    /// Graph: accept with the byte-identical answer.
    Accept,
    /// Media: accept's 200 came; audio may flow to WhatsApp now (§8.1).
    StartMedia,
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
    /// Nobody took it: the caller gave up, or the answer window ran out.
    Missed(MissedReason),
    /// The business side declined it (busy, 603...).
    Rejected(RingFailure),
    Failed(Failure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedReason {
    CallerHungUp,
    /// The phone answered just as the caller hung up: too late to bridge.
    CallerHungUpAsAnswered,
    NoAnswer,
    Unreachable,
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
    pub offered_at: Instant,
    pub ringing_at: Option<Instant>,
    pub answered_at: Option<Instant>,
    pub ended_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Ringing the target; pre_accept in flight or done.
    Offered,
    /// The phone answered; accept in flight.
    Accepting,
    /// Accepted: media flows both ways.
    Connected,
    Ended,
}

pub struct CallMachine {
    cfg: CallConfig,
    state: State,
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
    /// Meta's offer arrived at `now`: answer it and ring at once.
    pub fn new(cfg: CallConfig, now: Instant) -> CallMachine {
        let window_ends = Some(now + cfg.answer_window);
        let mut m = CallMachine {
            cfg,
            state: State::Offered,
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
        m.out.extend([Command::AnswerOffer, Command::Ring]);
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
            (Offered, Event::AnswerReady) => {
                self.answer_ready = true;
                self.out.push_back(Command::PreAccept);
            }
            (Offered, Event::AnswerFailed) => {
                self.finish(now, &[Command::CancelRing, Command::StopMedia, Command::Reject], Outcome::Failed(Failure::Answer), EndedBy::Gateway);
            }
            (Offered, Event::PreAccepted) => {
                self.pre_accepted = true;
                if std::mem::take(&mut self.phone_waiting) {
                    self.start_accept(now);
                }
            }
            (Offered, Event::PreAcceptFailed(f)) => {
                let cmds = [self.stop_phone(), Command::StopMedia, Command::Reject];
                self.finish(now, &cmds, Outcome::Failed(Failure::PreAccept(f)), EndedBy::Gateway);
            }
            (Offered, Event::Ringing) => {
                self.ringing_at.get_or_insert(now);
            }
            (Offered, Event::PhoneAnswered) => {
                if self.phone_waiting {
                    return;
                }
                // Accept needs the answer SDP and, to keep the one SDP Meta has seen, a
                // finished pre_accept (§8.1); until then the phone waits, attached.
                self.out.push_back(Command::AttachPhone);
                if self.pre_accepted {
                    self.start_accept(now);
                } else {
                    self.phone_waiting = true;
                }
            }
            (Offered, Event::PhoneFailed(f)) => {
                let outcome = match f {
                    RingFailure::NoAnswer => Outcome::Missed(MissedReason::NoAnswer),
                    RingFailure::Unreachable => Outcome::Missed(MissedReason::Unreachable),
                    busy_or_declined => Outcome::Rejected(busy_or_declined),
                };
                self.finish(now, &[Command::StopMedia, Command::Reject], outcome, EndedBy::Phone);
            }
            (Offered, Event::UserHungUp) => {
                let (cmds, reason): (&[Command], _) = if self.phone_waiting {
                    (&[Command::HangUpPhone, Command::StopMedia], MissedReason::CallerHungUpAsAnswered)
                } else {
                    (&[Command::CancelRing, Command::StopMedia], MissedReason::CallerHungUp)
                };
                self.finish(now, cmds, Outcome::Missed(reason), EndedBy::Caller);
            }
            (Offered, Event::PhoneHungUp) => {
                // Answered and gone before accept was even sent: Meta never saw an answer.
                if self.phone_waiting {
                    self.finish(now, &[Command::StopMedia, Command::Reject], Outcome::Missed(MissedReason::NoAnswer), EndedBy::Phone);
                }
            }
            (Offered, Event::MediaFailed) => {
                let cmds = [self.stop_phone(), Command::StopMedia, Command::Reject];
                self.finish(now, &cmds, Outcome::Failed(Failure::Media), EndedBy::Media);
            }
            (Offered, Event::Hangup) => {
                let cmds = [self.stop_phone(), Command::StopMedia, Command::Reject];
                self.finish(now, &cmds, Outcome::Failed(Failure::Aborted), EndedBy::Gateway);
            }
            (Accepting, Event::Accepted) => {
                if self.phone_gone {
                    self.answered_at = Some(now);
                    self.finish(now, &[Command::StopMedia, Command::Terminate], Outcome::Answered, EndedBy::Phone);
                } else {
                    self.state = Connected;
                    self.answered_at = Some(now);
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
            // Late or duplicate reports: a second answer (the SIP layer ends it), a ringing
            // after answer, a pre_accept result after the phone answered...
            (_, other) => tracing::debug!(state = ?self.state, event = ?other, "event ignored"),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Offered && self.window_ends.is_some_and(|t| now >= t) {
            let cmds = [self.stop_phone(), Command::StopMedia, Command::Reject];
            self.finish(now, &cmds, Outcome::Missed(MissedReason::NoAnswer), EndedBy::Gateway);
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(c) = self.out.pop_front() {
            return Output::Command(c);
        }
        match (self.state, self.window_ends) {
            (State::Offered, Some(t)) => Output::Timeout(t),
            _ => Output::Idle,
        }
    }

    /// Before accept, the business side stops with a CANCEL while it rings, or a BYE once the
    /// phone answered and waits for pre_accept.
    fn stop_phone(&self) -> Command {
        if self.phone_waiting {
            Command::HangUpPhone
        } else {
            Command::CancelRing
        }
    }

    fn start_accept(&mut self, _now: Instant) {
        debug_assert!(self.answer_ready && self.pre_accepted);
        self.state = State::Accepting;
        self.window_ends = None;
        self.out.push_back(Command::Accept);
    }

    fn finish(&mut self, now: Instant, cmds: &[Command], outcome: Outcome, ended_by: EndedBy) {
        self.out.extend(cmds.iter().cloned());
        self.out.push_back(Command::Finished(Summary {
            outcome,
            ended_by,
            offered_at: self.offered_at,
            ringing_at: self.ringing_at,
            answered_at: self.answered_at,
            ended_at: now,
        }));
        self.state = State::Ended;
        self.window_ends = None;
    }
}

#[cfg(test)]
mod tests;
