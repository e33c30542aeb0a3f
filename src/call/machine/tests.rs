//! Every transition of a call, including the races the issue names, in virtual time.

use super::*;
use crate::routing::dialplan::Branches;
use Command as C;
use Event as E;

const SEC: Duration = Duration::from_secs(1);

struct Driver {
    m: CallMachine,
    t0: Instant,
    now: Instant,
}

fn g(name: &str) -> GroupName {
    GroupName::new(name)
}

fn branches(no_answer: Action, busy: Action, reject: Action, error: Action) -> Branches {
    Branches { on_no_answer: no_answer, on_busy: busy, on_reject: reject, on_error: error }
}

/// Ring group `name`; every failure ends the call (the plan of a number with one target).
fn ring_then_end(name: &str) -> Step {
    Step::Ring { group: g(name), branches: branches(Action::End, Action::End, Action::End, Action::End) }
}

impl Driver {
    fn new() -> (Driver, Vec<Command>) {
        Driver::with_route(vec![ring_then_end("desk")])
    }

    fn with_route(steps: Vec<Step>) -> (Driver, Vec<Command>) {
        let t0 = Instant::now();
        let mut d = Driver {
            m: CallMachine::new(CallConfig::default(), steps, t0),
            t0,
            now: t0,
        };
        let first = d.drain();
        (d, first)
    }

    fn at(&mut self, secs: f32) -> &mut Self {
        self.now = self.t0 + Duration::from_secs_f32(secs);
        self
    }

    /// Feed an event, return the commands it produced.
    fn on(&mut self, e: Event) -> Vec<Command> {
        self.m.handle(self.now, e);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Command> {
        let mut cmds = Vec::new();
        while let Output::Command(c) = self.m.poll_output() {
            cmds.push(c);
        }
        cmds
    }

    /// Offer answered, pre_accepted, phone ringing.
    fn ringing() -> Driver {
        let (mut d, _) = Driver::new();
        d.on(E::AnswerReady);
        d.on(E::PreAccepted);
        d.at(1.0).on(E::Ringing);
        d
    }

    fn connected() -> Driver {
        let mut d = Driver::ringing();
        d.at(5.0).on(E::PhoneAnswered);
        d.at(5.2).on(E::Accepted);
        d
    }
}

/// Splits off the final `Finished` and returns its summary.
fn finished(mut cmds: Vec<Command>) -> (Vec<Command>, Summary) {
    match cmds.pop() {
        Some(C::Finished(s)) => (cmds, s),
        other => panic!("last command is not Finished: {other:?} in {cmds:?}"),
    }
}

fn secs(d: &Driver, t: Instant) -> f32 {
    (t - d.t0).as_secs_f32()
}

#[test]
fn offer_answers_and_rings_at_once_then_pre_accepts() {
    let (mut d, first) = Driver::new();
    assert_eq!(first, [C::AnswerOffer, C::Ring(g("desk"))]);
    assert_eq!(d.on(E::AnswerReady), [C::PreAccept]);
    assert_eq!(d.on(E::PreAccepted), []);
    assert_eq!(d.m.poll_output(), Output::Timeout(d.t0 + 30 * SEC));
}

#[test]
fn answered_call_bridges_after_accept_and_ends_when_the_phone_hangs_up() {
    let mut d = Driver::ringing();
    assert_eq!(d.at(5.0).on(E::PhoneAnswered), [C::AttachPhone, C::Accept]);
    assert_eq!(d.m.state(), State::Accepting);
    // No answer window while accept is in flight: the phone has answered.
    assert_eq!(d.m.poll_output(), Output::Idle);
    assert_eq!(d.at(5.2).on(E::Accepted), [C::StartMedia]);
    assert_eq!(d.m.state(), State::Connected);
    let (cmds, s) = finished(d.at(65.0).on(E::PhoneHungUp));
    assert_eq!(cmds, [C::StopMedia, C::Terminate]);
    assert_eq!((s.outcome, s.ended_by), (Outcome::Answered, EndedBy::Phone));
    assert_eq!(secs(&d, s.ringing_at.unwrap()), 1.0);
    assert_eq!(secs(&d, s.answered_at.unwrap()), 5.2);
    assert_eq!(secs(&d, s.ended_at), 65.0);
}

#[test]
fn phone_answering_before_pre_accept_lands_waits_attached_then_accepts() {
    let (mut d, _) = Driver::new();
    assert_eq!(d.at(0.5).on(E::PhoneAnswered), [C::AttachPhone]);
    assert_eq!(d.on(E::PhoneAnswered), [], "a repeated answer changes nothing");
    assert_eq!(d.on(E::AnswerReady), [C::PreAccept]);
    assert_eq!(d.on(E::PreAccepted), [C::Accept]);
    assert_eq!(d.on(E::Accepted), [C::StartMedia]);
}

#[test]
fn caller_hanging_up_while_phones_ring_cancels_them_and_is_missed() {
    let mut d = Driver::ringing();
    let (cmds, s) = finished(d.at(8.0).on(E::UserHungUp));
    // Meta ended the call itself: no reject or terminate to send.
    assert_eq!(cmds, [C::CancelRing, C::StopMedia]);
    assert_eq!(s.outcome, Outcome::Missed(MissedReason::CallerHungUp));
    assert_eq!(s.ended_by, EndedBy::Caller);
    assert_eq!(d.m.poll_output(), Output::Idle);
}

#[test]
fn phone_answering_as_the_caller_hangs_up_gets_a_bye_and_no_bridge() {
    // The user hangs up while accept is in flight.
    let mut d = Driver::ringing();
    d.at(5.0).on(E::PhoneAnswered);
    let (cmds, s) = finished(d.at(5.1).on(E::UserHungUp));
    assert_eq!(cmds, [C::HangUpPhone, C::StopMedia]);
    assert_eq!(s.outcome, Outcome::Missed(MissedReason::CallerHungUpAsAnswered));
    // Accept's late answer, either way, starts nothing.
    assert_eq!(d.on(E::Accepted), []);
    assert_eq!(d.on(E::AcceptFailed(GraphFailure { code: Some(138_006) })), []);

    // The user hangs up while the answered phone waits for pre_accept.
    let (mut d, _) = Driver::new();
    d.on(E::PhoneAnswered);
    let (cmds, s) = finished(d.on(E::UserHungUp));
    assert_eq!(cmds, [C::HangUpPhone, C::StopMedia]);
    assert_eq!(s.outcome, Outcome::Missed(MissedReason::CallerHungUpAsAnswered));
}

#[test]
fn answer_window_running_out_rejects_and_is_missed() {
    let mut d = Driver::ringing();
    d.at(29.9);
    d.m.handle_timeout(d.now);
    assert_eq!(d.drain(), [], "not yet");
    d.at(30.0);
    d.m.handle_timeout(d.now);
    let (cmds, s) = finished(d.drain());
    assert_eq!(cmds, [C::CancelRing, C::StopMedia, C::Reject]);
    assert_eq!((s.outcome, s.ended_by), (Outcome::Missed(MissedReason::NoAnswer), EndedBy::Gateway));
    // A phone answering a moment later changes nothing (the SIP layer ends that leg).
    assert_eq!(d.on(E::PhoneAnswered), []);
}

#[test]
fn graph_error_on_accept_hangs_up_the_phone_and_rejects() {
    let mut d = Driver::ringing();
    d.at(5.0).on(E::PhoneAnswered);
    let failure = GraphFailure { code: Some(138_006) };
    let (cmds, s) = finished(d.on(E::AcceptFailed(failure)));
    assert_eq!(cmds, [C::HangUpPhone, C::StopMedia, C::Reject]);
    assert_eq!(s.outcome, Outcome::Failed(Failure::Accept(failure)));
    assert_eq!(s.answered_at, None);
}

#[test]
fn graph_error_on_pre_accept_ends_the_call() {
    let (mut d, _) = Driver::new();
    d.on(E::AnswerReady);
    let failure = GraphFailure { code: None };
    let (cmds, s) = finished(d.on(E::PreAcceptFailed(failure)));
    assert_eq!(cmds, [C::CancelRing, C::StopMedia, C::Reject]);
    assert_eq!(s.outcome, Outcome::Failed(Failure::PreAccept(failure)));
}

#[test]
fn an_offer_we_cannot_answer_is_rejected() {
    let (mut d, _) = Driver::new();
    let (cmds, s) = finished(d.on(E::AnswerFailed));
    assert_eq!(cmds, [C::CancelRing, C::StopMedia, C::Reject]);
    assert_eq!(s.outcome, Outcome::Failed(Failure::Answer));
}

#[test]
fn busy_declined_and_unanswered_phones_are_told_apart() {
    let cases = [
        (RingFailure::Busy, Outcome::Rejected(RingFailure::Busy)),
        (RingFailure::Declined(603), Outcome::Rejected(RingFailure::Declined(603))),
        (RingFailure::NoAnswer, Outcome::Missed(MissedReason::NoAnswer)),
        (RingFailure::Unreachable, Outcome::Missed(MissedReason::Unreachable)),
    ];
    for (failure, outcome) in cases {
        let mut d = Driver::ringing();
        let (cmds, s) = finished(d.at(3.0).on(E::PhoneFailed(failure)));
        assert_eq!(cmds, [C::StopMedia, C::Reject], "{failure:?}");
        assert_eq!(s.outcome, outcome);
    }
}

#[test]
fn phone_hanging_up_while_accept_is_in_flight_terminates_once_it_lands() {
    let mut d = Driver::ringing();
    d.at(5.0).on(E::PhoneAnswered);
    assert_eq!(d.on(E::PhoneHungUp), []);
    let (cmds, s) = finished(d.at(5.3).on(E::Accepted));
    assert_eq!(cmds, [C::StopMedia, C::Terminate]);
    assert_eq!((s.outcome, s.ended_by), (Outcome::Answered, EndedBy::Phone));

    let mut d = Driver::ringing();
    d.at(5.0).on(E::PhoneAnswered);
    d.on(E::PhoneHungUp);
    let (cmds, _) = finished(d.on(E::AcceptFailed(GraphFailure { code: None })));
    assert_eq!(cmds, [C::StopMedia, C::Reject], "no BYE to a phone that left");
}

#[test]
fn connected_call_ends_cleanly_from_every_side() {
    let cases = [
        (E::UserHungUp, vec![C::HangUpPhone, C::StopMedia], EndedBy::Caller),
        (E::PhoneHungUp, vec![C::StopMedia, C::Terminate], EndedBy::Phone),
        (E::MediaFailed, vec![C::HangUpPhone, C::StopMedia, C::Terminate], EndedBy::Media),
        (E::Hangup, vec![C::HangUpPhone, C::StopMedia, C::Terminate], EndedBy::Gateway),
    ];
    for (event, want, by) in cases {
        let mut d = Driver::connected();
        let (cmds, s) = finished(d.at(20.0).on(event.clone()));
        assert_eq!(cmds, want, "{event:?}");
        assert_eq!((s.outcome, s.ended_by), (Outcome::Answered, by));
        // Nothing after the end, whatever arrives.
        for late in [E::UserHungUp, E::PhoneHungUp, E::MediaFailed, E::Hangup, E::Accepted] {
            assert_eq!(d.on(late), []);
        }
        d.at(100.0);
        d.m.handle_timeout(d.now);
        assert_eq!(d.drain(), []);
        assert_eq!(d.m.state(), State::Ended);
    }
}

#[test]
fn media_failing_before_the_answer_ends_the_call_as_failed() {
    let mut d = Driver::ringing();
    let (cmds, s) = finished(d.on(E::MediaFailed));
    assert_eq!(cmds, [C::CancelRing, C::StopMedia, C::Reject]);
    assert_eq!((s.outcome, s.ended_by), (Outcome::Failed(Failure::Media), EndedBy::Media));
}

#[test]
fn gateway_hangup_before_answer_cancels_and_rejects() {
    let mut d = Driver::ringing();
    let (cmds, s) = finished(d.on(E::Hangup));
    assert_eq!(cmds, [C::CancelRing, C::StopMedia, C::Reject]);
    assert_eq!(s.outcome, Outcome::Failed(Failure::Aborted));
}

// ---- The route: branches, announcements, callbacks --------------------------------------

fn wav(name: &str) -> PathBuf {
    PathBuf::from(name)
}

#[test]
fn each_failure_takes_its_own_branch() {
    let route = || {
        vec![
            Step::Ring {
                group: g("first"),
                branches: branches(Action::Next, Action::Ring(g("busy-backup")), Action::Reject, Action::Callback),
            },
            ring_then_end("second"),
        ]
    };
    // No answer: the next step rings the second group, the call stays offered.
    let (mut d, first) = Driver::with_route(route());
    assert_eq!(first, [C::AnswerOffer, C::Ring(g("first"))]);
    d.on(E::AnswerReady);
    d.on(E::PreAccepted);
    assert_eq!(d.at(10.0).on(E::PhoneFailed(RingFailure::NoAnswer)), [C::Ring(g("second"))]);
    assert_eq!(d.m.state(), State::Routing);
    assert_eq!(d.at(12.0).on(E::PhoneAnswered), [C::AttachPhone, C::Accept]);

    // Busy: ring:<group> is a last try; its failure ends the call whatever its kind.
    let (mut d, _) = Driver::with_route(route());
    assert_eq!(d.on(E::PhoneFailed(RingFailure::Busy)), [C::Ring(g("busy-backup"))]);
    let (cmds, s) = finished(d.on(E::PhoneFailed(RingFailure::Declined(603))));
    assert_eq!(cmds, [C::StopMedia, C::Reject]);
    assert_eq!(s.outcome, Outcome::Rejected(RingFailure::Declined(603)));

    // Declined: the plan rejects.
    let (mut d, _) = Driver::with_route(route());
    let (cmds, s) = finished(d.on(E::PhoneFailed(RingFailure::Declined(603))));
    assert_eq!(cmds, [C::StopMedia, C::Reject]);
    assert_eq!((s.outcome, s.callback), (Outcome::RejectedByPlan, false));

    // Error: marked for a callback, rejected, missed.
    let (mut d, _) = Driver::with_route(route());
    let (cmds, s) = finished(d.on(E::PhoneFailed(RingFailure::Unreachable)));
    assert_eq!(cmds, [C::StopMedia, C::Reject]);
    assert_eq!((s.outcome, s.callback), (Outcome::Missed(MissedReason::Callback), true));
    assert!(s.outcome.is_missed());
}

#[test]
fn an_announcement_accepts_plays_then_follows_its_then() {
    let steps = vec![Step::Announce { file: wav("closed.wav"), then: Action::Callback }];
    let (mut d, first) = Driver::with_route(steps);
    // Nothing to ring; the accept waits for the answer and pre_accept (§8.1).
    assert_eq!(first, [C::AnswerOffer]);
    assert_eq!(d.on(E::AnswerReady), [C::PreAccept]);
    assert_eq!(d.on(E::PreAccepted), [C::Accept]);
    assert_eq!(d.m.state(), State::AcceptingToAnnounce);
    assert_eq!(d.m.poll_output(), Output::Idle, "no answer window once accept is sent");
    assert_eq!(d.at(0.5).on(E::Accepted), [C::StartMedia, C::Play(wav("closed.wav"))]);
    assert_eq!(d.m.state(), State::Announcing);
    let (cmds, s) = finished(d.at(6.0).on(E::PlayFinished));
    assert_eq!(cmds, [C::StopMedia, C::Terminate], "accepted calls end with terminate");
    assert_eq!((s.outcome, s.callback, s.ended_by), (Outcome::Announced, true, EndedBy::Gateway));
    assert_eq!(s.answered_at, None, "no agent answered");
    assert!(s.outcome.is_missed());
}

#[test]
fn a_failed_group_can_announce_and_the_caller_may_hang_up_during_it() {
    let steps = vec![Step::Ring {
        group: g("office"),
        branches: branches(Action::Announce(wav("closed.wav")), Action::End, Action::End, Action::End),
    }];
    let (mut d, _) = Driver::with_route(steps);
    d.on(E::AnswerReady);
    d.on(E::PreAccepted);
    assert_eq!(d.at(12.0).on(E::PhoneFailed(RingFailure::NoAnswer)), [C::Accept]);
    assert_eq!(d.on(E::Accepted), [C::StartMedia, C::Play(wav("closed.wav"))]);
    let (cmds, s) = finished(d.at(14.0).on(E::UserHungUp));
    assert_eq!(cmds, [C::StopMedia]);
    assert_eq!((s.outcome, s.ended_by), (Outcome::Announced, EndedBy::Caller));
}

#[test]
fn after_an_announcement_the_route_can_ring_and_an_answer_connects_without_a_second_accept() {
    let steps = vec![Step::Announce { file: wav("hello.wav"), then: Action::Next }, ring_then_end("desk")];
    let (mut d, _) = Driver::with_route(steps);
    d.on(E::AnswerReady);
    d.on(E::PreAccepted);
    d.on(E::Accepted);
    assert_eq!(d.at(3.0).on(E::PlayFinished), [C::Ring(g("desk"))]);
    assert_eq!(d.m.poll_output(), Output::Idle, "accepted: the answer window no longer applies");
    assert_eq!(d.at(5.0).on(E::PhoneAnswered), [C::AttachPhone]);
    assert_eq!(d.m.state(), State::Connected);
    let (_, s) = finished(d.at(9.0).on(E::PhoneHungUp));
    assert_eq!(s.outcome, Outcome::Answered);
    assert_eq!(secs(&d, s.answered_at.unwrap()), 5.0);

    // Nobody answers after the announcement: terminate, announced.
    let steps = vec![Step::Announce { file: wav("hello.wav"), then: Action::Next }, ring_then_end("desk")];
    let (mut d, _) = Driver::with_route(steps);
    d.on(E::AnswerReady);
    d.on(E::PreAccepted);
    d.on(E::Accepted);
    d.on(E::PlayFinished);
    let (cmds, s) = finished(d.on(E::PhoneFailed(RingFailure::NoAnswer)));
    assert_eq!(cmds, [C::StopMedia, C::Terminate]);
    assert_eq!(s.outcome, Outcome::Announced);
}

#[test]
fn callback_and_reject_steps_end_without_ringing_and_no_route_rejects() {
    let (mut d, first) = Driver::with_route(vec![Step::Callback]);
    let (cmds, s) = finished(first);
    assert_eq!(cmds, [C::AnswerOffer, C::StopMedia, C::Reject]);
    assert_eq!((s.outcome, s.callback), (Outcome::Missed(MissedReason::Callback), true));
    assert_eq!(d.on(E::AnswerReady), [], "nothing after the end");

    let (_, first) = Driver::with_route(vec![Step::Reject]);
    let (_, s) = finished(first);
    assert_eq!(s.outcome, Outcome::RejectedByPlan);

    let (_, first) = Driver::with_route(vec![]);
    let (cmds, s) = finished(first);
    assert_eq!(cmds, [C::Reject]);
    assert_eq!(s.outcome, Outcome::NoRoute);
}

#[test]
fn the_answer_window_ending_marks_a_callback_when_no_answer_would_have() {
    let steps = vec![Step::Ring {
        group: g("slow"),
        branches: branches(Action::Callback, Action::End, Action::End, Action::End),
    }];
    let (mut d, _) = Driver::with_route(steps);
    d.on(E::AnswerReady);
    d.on(E::PreAccepted);
    d.at(30.0);
    d.m.handle_timeout(d.now);
    let (cmds, s) = finished(d.drain());
    assert_eq!(cmds, [C::CancelRing, C::StopMedia, C::Reject]);
    assert_eq!((s.outcome, s.callback), (Outcome::Missed(MissedReason::NoAnswer), true));
}

#[test]
fn an_announcement_due_after_the_window_ends_is_not_played() {
    let steps = vec![Step::Ring {
        group: g("slow"),
        branches: branches(Action::Announce(wav("closed.wav")), Action::End, Action::End, Action::End),
    }];
    let (mut d, _) = Driver::with_route(steps);
    // Meta never answered our pre_accept, and the group rang out at the window's end.
    d.on(E::AnswerReady);
    let (cmds, s) = finished(d.at(31.0).on(E::PhoneFailed(RingFailure::NoAnswer)));
    assert_eq!(cmds, [C::StopMedia, C::Reject]);
    assert_eq!(s.outcome, Outcome::Missed(MissedReason::NoAnswer));
}
