//! Every strategy, delay, timeout and race of a ring group, in virtual time.

use super::*;
use Command as C;
use Event as E;

const SEC: Duration = Duration::from_secs(1);

fn user(name: &str) -> MemberTarget {
    MemberTarget::User(UserName::new(name))
}

fn member(name: &str, ring_for: u64, start_after: u64) -> Member {
    Member {
        target: user(name),
        ring_for: Duration::from_secs(ring_for),
        start_after: Duration::from_secs(start_after),
    }
}

fn group(strategy: Strategy, members: Vec<Member>) -> RingGroup {
    RingGroup {
        name: GroupName::new("sales"),
        strategy,
        members,
        ring_timeout: 30 * SEC,
        skip_busy: false,
        allow_call_waiting: false,
    }
}

/// Every member of `g` available.
fn everyone(g: &RingGroup) -> AvailabilitySnapshot {
    g.members
        .iter()
        .map(|m| (m.target.clone(), Availability::AVAILABLE))
        .collect()
}

fn ring(leg: usize, name: &str) -> Command {
    C::Ring {
        leg: LegIndex(leg),
        target: user(name),
    }
}

fn cancel(leg: usize) -> Command {
    C::Cancel { leg: LegIndex(leg) }
}

fn answered(leg: usize, name: &str) -> Command {
    C::Done(Outcome::Answered {
        leg: LegIndex(leg),
        target: user(name),
    })
}

fn leg(i: usize) -> LegIndex {
    LegIndex(i)
}

struct Driver {
    run: RingRun,
    t0: Instant,
    now: Instant,
}

impl Driver {
    /// Starts `g` at t0 with everyone available and fresh memory.
    fn start(g: &RingGroup) -> (Driver, Vec<Command>) {
        Driver::start_with(g, &everyone(g), &mut RingMemory::new(), 0)
    }

    fn start_with(
        g: &RingGroup,
        snap: &AvailabilitySnapshot,
        memory: &mut RingMemory,
        seed: u64,
    ) -> (Driver, Vec<Command>) {
        let t0 = Instant::now();
        let mut d = Driver {
            run: RingRun::start(g, snap, memory, t0, seed),
            t0,
            now: t0,
        };
        let first = d.drain();
        (d, first)
    }

    fn at(&mut self, secs: u64) -> &mut Self {
        self.now = self.t0 + Duration::from_secs(secs);
        self
    }

    fn on(&mut self, e: Event) -> Vec<Command> {
        self.run.handle(self.now, e);
        self.drain()
    }

    /// The shell's timer fired at the current time.
    fn tick(&mut self) -> Vec<Command> {
        self.run.handle_timeout(self.now);
        self.drain()
    }

    fn drain(&mut self) -> Vec<Command> {
        let mut cmds = Vec::new();
        while let Output::Command(c) = self.run.poll_output() {
            cmds.push(c);
        }
        cmds
    }

    /// The next deadline, in seconds after t0.
    fn next_timeout(&mut self) -> Option<u64> {
        match self.run.poll_output() {
            Output::Timeout(t) => Some((t - self.t0).as_secs()),
            Output::Idle => None,
            Output::Command(c) => panic!("undrained command {c:?}"),
        }
    }
}

/// The order in which a hunt group rings its members, learned by letting each ring out.
fn hunt_order(d: &mut Driver, first: Vec<Command>) -> Vec<MemberTarget> {
    let mut order = Vec::new();
    let mut cmds = first;
    for _ in 0..20 {
        for c in &cmds {
            if let C::Ring { target, .. } = c {
                order.push(target.clone());
            }
        }
        let Some(t) = d.next_timeout() else { break };
        cmds = d.at(t).tick();
    }
    order
}

// ---- simultaneous, first answer wins ----

#[test]
fn simultaneous_rings_everyone_and_the_first_answer_cancels_the_others() {
    let g = group(
        Strategy::Simultaneous,
        vec![member("a", 20, 0), member("b", 20, 0), member("c", 20, 0)],
    );
    let (mut d, first) = Driver::start(&g);
    assert_eq!(first, [ring(0, "a"), ring(1, "b"), ring(2, "c")]);
    assert_eq!(d.next_timeout(), Some(20));
    assert_eq!(d.at(1).on(E::Ringing(leg(1))), []);
    assert_eq!(
        d.at(4).on(E::Answered(leg(1))),
        [cancel(0), cancel(2), answered(1, "b")]
    );
    assert!(d.run.is_done());
    // Two phones answered at once: the second 200 is the SIP layer's to BYE.
    assert_eq!(d.on(E::Answered(leg(2))), []);
    assert_eq!(d.run.poll_output(), Output::Idle);
}

#[test]
fn simultaneous_where_nobody_answers_is_no_answer_even_if_one_was_busy() {
    let g = group(
        Strategy::Simultaneous,
        vec![member("a", 10, 0), member("b", 15, 0)],
    );
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.at(2).on(E::Busy(leg(0))), []);
    assert_eq!(d.next_timeout(), Some(15));
    assert_eq!(d.at(15).tick(), [cancel(1), C::Done(Outcome::NoAnswer)]);
}

#[test]
fn every_leg_declining_reports_the_strongest_reason() {
    let g = group(
        Strategy::Simultaneous,
        vec![member("a", 10, 0), member("b", 10, 0), member("c", 10, 0)],
    );
    let (mut d, _) = Driver::start(&g);
    d.on(E::Failed(leg(0)));
    d.on(E::Busy(leg(1)));
    assert_eq!(
        d.on(E::Rejected(leg(2), 603)),
        [C::Done(Outcome::Rejected { code: 603 })]
    );

    let (mut d, _) = Driver::start(&g);
    d.on(E::Failed(leg(0)));
    d.on(E::Failed(leg(1)));
    assert_eq!(d.on(E::Busy(leg(2))), [C::Done(Outcome::Busy)]);

    let (mut d, _) = Driver::start(&g);
    d.on(E::Failed(leg(0)));
    d.on(E::Failed(leg(1)));
    assert_eq!(d.on(E::Failed(leg(2))), [C::Done(Outcome::Unreachable)]);
}

#[test]
fn a_far_side_that_stops_ringing_by_itself_counts_as_no_answer() {
    let g = group(Strategy::Sequential, vec![member("queue", 30, 0), member("b", 10, 0)]);
    let (mut d, _) = Driver::start(&g);
    // The PBX queue gave up after 5 s (480): the next member's turn begins at once.
    assert_eq!(d.at(5).on(E::NoAnswer(leg(0))), [ring(1, "b")]);
    assert_eq!(d.at(6).on(E::Rejected(leg(1), 603)), [C::Done(Outcome::NoAnswer)]);
}

// ---- start delays: primary first, backups join ----

#[test]
fn backup_joins_after_its_start_delay_and_can_win() {
    let g = group(
        Strategy::Simultaneous,
        vec![member("primary", 25, 0), member("backup", 15, 10)],
    );
    let (mut d, first) = Driver::start(&g);
    assert_eq!(first, [ring(0, "primary")]);
    assert_eq!(d.next_timeout(), Some(10));
    assert_eq!(d.at(9).tick(), [], "not yet");
    assert_eq!(d.at(10).tick(), [ring(1, "backup")]);
    // The backup's own ring time counts from when it joined: 10 + 15 = 25.
    assert_eq!(d.next_timeout(), Some(25));
    assert_eq!(
        d.at(12).on(E::Answered(leg(1))),
        [cancel(0), answered(1, "backup")]
    );
}

#[test]
fn primary_answering_before_the_backup_joins_never_rings_the_backup() {
    let g = group(
        Strategy::Simultaneous,
        vec![member("primary", 25, 0), member("backup", 15, 10)],
    );
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.at(3).on(E::Answered(leg(0))), [answered(0, "primary")]);
    assert_eq!(d.at(10).tick(), []);
}

#[test]
fn a_busy_primary_leaves_the_run_waiting_for_the_backup() {
    let g = group(
        Strategy::Simultaneous,
        vec![member("primary", 25, 0), member("backup", 15, 10)],
    );
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.at(1).on(E::Busy(leg(0))), [], "the backup is still due");
    assert_eq!(d.at(10).tick(), [ring(1, "backup")]);
    assert_eq!(d.at(25).tick(), [cancel(1), C::Done(Outcome::NoAnswer)]);
}

// ---- sequential ----

#[test]
fn sequential_gives_each_member_its_own_ring_time() {
    let g = group(
        Strategy::Sequential,
        vec![member("a", 5, 0), member("b", 8, 0), member("c", 5, 0)],
    );
    let (mut d, first) = Driver::start(&g);
    assert_eq!(first, [ring(0, "a")]);
    assert_eq!(d.next_timeout(), Some(5));
    assert_eq!(d.at(5).tick(), [cancel(0), ring(1, "b")]);
    assert_eq!(d.next_timeout(), Some(13));
    assert_eq!(d.at(13).tick(), [cancel(1), ring(2, "c")]);
    assert_eq!(d.at(18).tick(), [cancel(2), C::Done(Outcome::NoAnswer)]);
    assert_eq!(d.run.poll_output(), Output::Idle);
}

#[test]
fn sequential_moves_on_at_once_when_a_member_is_busy_rejects_or_fails() {
    let g = group(
        Strategy::Sequential,
        vec![
            member("a", 10, 0),
            member("b", 10, 0),
            member("c", 10, 0),
            member("d", 10, 0),
        ],
    );
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.at(1).on(E::Busy(leg(0))), [ring(1, "b")]);
    assert_eq!(d.at(2).on(E::Rejected(leg(1), 603)), [ring(2, "c")]);
    assert_eq!(d.at(3).on(E::Failed(leg(2))), [ring(3, "d")]);
    assert_eq!(d.at(4).on(E::Answered(leg(3))), [answered(3, "d")]);
}

#[test]
fn sequential_start_delay_is_a_pause_before_that_members_turn() {
    let g = group(
        Strategy::Sequential,
        vec![member("a", 5, 0), member("b", 5, 3)],
    );
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.at(5).tick(), [cancel(0)]);
    assert_eq!(d.next_timeout(), Some(8));
    assert_eq!(d.at(8).tick(), [ring(1, "b")]);
}

#[test]
fn a_late_timer_catches_up_every_step_it_missed() {
    let g = group(
        Strategy::Sequential,
        vec![member("a", 5, 0), member("b", 5, 0), member("c", 5, 0)],
    );
    let (mut d, _) = Driver::start(&g);
    // The shell woke at 11 s instead of 5 s: a rings out and b rings for its full time from now.
    assert_eq!(d.at(11).tick(), [cancel(0), ring(1, "b")]);
    assert_eq!(d.next_timeout(), Some(16));
}

// ---- group timeout ----

#[test]
fn group_timeout_caps_member_ring_times() {
    let g = group(
        Strategy::Sequential,
        vec![member("a", 20, 0), member("b", 20, 0)],
    );
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.at(20).tick(), [cancel(0), ring(1, "b")]);
    assert_eq!(d.next_timeout(), Some(30), "the group's 30 s, not b's 40 s");
    assert_eq!(d.at(30).tick(), [cancel(1), C::Done(Outcome::NoAnswer)]);
}

#[test]
fn group_timeout_stops_members_still_waiting_for_their_delay() {
    let mut g = group(
        Strategy::Simultaneous,
        vec![member("a", 30, 0), member("late", 10, 25)],
    );
    g.ring_timeout = 20 * SEC;
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.at(20).tick(), [cancel(0), C::Done(Outcome::NoAnswer)]);
    assert_eq!(d.at(25).tick(), []);
}

#[test]
fn an_answer_exactly_at_the_deadline_still_wins() {
    let g = group(Strategy::Simultaneous, vec![member("a", 40, 0)]);
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.at(30).on(E::Answered(leg(0))), [answered(0, "a")]);
}

#[test]
fn zero_group_timeout_rings_nobody() {
    let mut g = group(Strategy::Simultaneous, vec![member("a", 10, 0)]);
    g.ring_timeout = Duration::ZERO;
    let (_, first) = Driver::start(&g);
    assert_eq!(first, [C::Done(Outcome::NoAnswer)]);
}

#[test]
fn absurd_durations_do_not_panic() {
    let mut g = group(
        Strategy::Sequential,
        vec![Member {
            target: user("a"),
            ring_for: Duration::MAX,
            start_after: Duration::MAX,
        }],
    );
    g.ring_timeout = Duration::MAX;
    let (mut d, first) = Driver::start(&g);
    assert_eq!(first, []);
    assert!(d.next_timeout().is_some());
    assert_eq!(
        max_ring_time(&g),
        Duration::MAX,
        "saturates; the validator refuses it"
    );
}

// ---- busy and availability ----

fn busy_pair(skip_busy: bool, allow_call_waiting: bool) -> Vec<Command> {
    let mut g = group(
        Strategy::Simultaneous,
        vec![member("busy", 10, 0), member("idle", 10, 0)],
    );
    g.skip_busy = skip_busy;
    g.allow_call_waiting = allow_call_waiting;
    let mut snap = everyone(&g);
    snap.insert(
        user("busy"),
        Availability {
            busy: true,
            ..Availability::AVAILABLE
        },
    );
    Driver::start_with(&g, &snap, &mut RingMemory::new(), 0).1
}

#[test]
fn busy_member_rings_only_with_call_waiting_and_without_skip_busy() {
    assert_eq!(busy_pair(false, true), [ring(0, "busy"), ring(1, "idle")]);
    assert_eq!(busy_pair(true, true), [ring(0, "idle")], "skip_busy wins");
    assert_eq!(
        busy_pair(false, false),
        [ring(0, "idle")],
        "no call waiting"
    );
    assert_eq!(busy_pair(true, false), [ring(0, "idle")]);
}

#[test]
fn unavailable_members_are_skipped_with_their_reasons() {
    let g = group(
        Strategy::Sequential,
        vec![
            member("unregistered", 10, 0),
            member("dnd", 10, 0),
            member("off_hours", 10, 0),
            member("unknown", 10, 0),
            member("silent", 0, 0),
            Member {
                target: MemberTarget::Group(GroupName::new("support")),
                ring_for: 10 * SEC,
                start_after: Duration::ZERO,
            },
            member("ok", 10, 0),
        ],
    );
    let a = Availability::AVAILABLE;
    let snap: AvailabilitySnapshot = [
        (
            user("unregistered"),
            Availability {
                registered: false,
                ..a
            },
        ),
        (user("dnd"), Availability { dnd: true, ..a }),
        (
            user("off_hours"),
            Availability {
                in_hours: false,
                ..a
            },
        ),
        (user("silent"), a),
        (MemberTarget::Group(GroupName::new("support")), a),
        (user("ok"), a),
    ]
    .into_iter()
    .collect();
    let (d, first) = Driver::start_with(&g, &snap, &mut RingMemory::new(), 0);
    assert_eq!(
        first,
        [ring(0, "ok")],
        "legs are numbered among those that ring"
    );
    let reasons: Vec<SkipReason> = d.run.skipped().iter().map(|s| s.reason).collect();
    assert_eq!(
        reasons,
        [
            SkipReason::NotRegistered,
            SkipReason::Dnd,
            SkipReason::OutOfHours,
            SkipReason::NoStatus,
            SkipReason::NoRingTime,
            SkipReason::NestedGroup,
        ]
    );
    assert_eq!(d.run.skipped()[0].target, user("unregistered"));
}

#[test]
fn nobody_available_finishes_at_once_saying_why_per_member() {
    let g = group(
        Strategy::Simultaneous,
        vec![member("a", 10, 0), member("b", 10, 0)],
    );
    let snap: AvailabilitySnapshot = [
        (
            user("a"),
            Availability {
                dnd: true,
                ..Availability::AVAILABLE
            },
        ),
        (
            user("b"),
            Availability {
                busy: true,
                ..Availability::AVAILABLE
            },
        ),
    ]
    .into_iter()
    .collect();
    let (mut d, first) = Driver::start_with(&g, &snap, &mut RingMemory::new(), 0);
    assert_eq!(
        first,
        [C::Done(Outcome::NoneAvailable(vec![
            Skipped {
                target: user("a"),
                reason: SkipReason::Dnd
            },
            Skipped {
                target: user("b"),
                reason: SkipReason::Busy
            },
        ]))]
    );
    assert_eq!(d.run.poll_output(), Output::Idle);

    let (_, first) = Driver::start(&group(Strategy::Sequential, vec![]));
    assert_eq!(first, [C::Done(Outcome::NoneAvailable(vec![]))]);
}

#[test]
fn trunk_extensions_ring_like_users() {
    let trunk = MemberTarget::Trunk {
        trunk: TrunkId::new("pbx"),
        extension: "201".into(),
    };
    let g = group(
        Strategy::Simultaneous,
        vec![Member {
            target: trunk.clone(),
            ring_for: 10 * SEC,
            start_after: Duration::ZERO,
        }],
    );
    let (_, first) = Driver::start(&g);
    assert_eq!(
        first,
        [C::Ring {
            leg: leg(0),
            target: trunk
        }]
    );
}

// ---- the caller gives up; stray events ----

#[test]
fn caller_cancelling_mid_ring_cancels_every_ringing_leg_and_finishes_once() {
    let g = group(
        Strategy::Simultaneous,
        vec![
            member("a", 20, 0),
            member("b", 20, 0),
            member("late", 10, 10),
        ],
    );
    let (mut d, _) = Driver::start(&g);
    assert_eq!(
        d.at(5).on(E::Cancelled),
        [cancel(0), cancel(1), C::Done(Outcome::CallerCancelled)],
        "the member still waiting for its delay is never rung"
    );
    assert_eq!(d.run.poll_output(), Output::Idle);
    assert_eq!(d.on(E::Cancelled), []);
    assert_eq!(d.on(E::Answered(leg(0))), []);
    assert_eq!(d.at(10).tick(), []);
}

#[test]
fn events_for_legs_that_are_not_ringing_change_nothing() {
    let g = group(
        Strategy::Sequential,
        vec![member("a", 5, 0), member("b", 5, 0)],
    );
    let (mut d, _) = Driver::start(&g);
    assert_eq!(d.on(E::Answered(leg(7))), [], "unknown leg");
    assert_eq!(d.on(E::Busy(leg(1))), [], "not rung yet");
    assert_eq!(d.at(5).tick(), [cancel(0), ring(1, "b")]);
    // a's 200 crossed our CANCEL: the SIP layer BYEs it; b keeps ringing.
    assert_eq!(d.at(6).on(E::Answered(leg(0))), []);
    assert_eq!(d.on(E::Rejected(leg(0), 487)), []);
    assert_eq!(d.next_timeout(), Some(10));
}

// ---- round robin, longest idle, random ----

#[test]
fn round_robin_starts_one_further_on_each_call() {
    let g = group(
        Strategy::RoundRobin,
        vec![member("a", 5, 0), member("b", 5, 0), member("c", 5, 0)],
    );
    let snap = everyone(&g);
    let mut memory = RingMemory::new();
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let (_, first) = Driver::start_with(&g, &snap, &mut memory, 0);
        firsts.extend(first);
    }
    assert_eq!(
        firsts,
        [ring(0, "a"), ring(0, "b"), ring(0, "c"), ring(0, "a")]
    );
    assert_eq!(memory.cursor(&g.name), 1);
}

#[test]
fn round_robin_hunts_on_from_the_cursor_and_skips_the_unavailable() {
    let g = group(
        Strategy::RoundRobin,
        vec![member("a", 5, 0), member("b", 5, 0), member("c", 5, 0)],
    );
    let mut snap = everyone(&g);
    snap.insert(
        user("b"),
        Availability {
            dnd: true,
            ..Availability::AVAILABLE
        },
    );
    let mut memory = RingMemory::new();
    Driver::start_with(&g, &snap, &mut memory, 0);
    // This call's turn is b's, who is on DND: c, then wrap around to a.
    let (mut d, first) = Driver::start_with(&g, &snap, &mut memory, 0);
    assert_eq!(hunt_order(&mut d, first), [user("c"), user("a")]);
    assert_eq!(
        memory.cursor(&g.name),
        2,
        "b keeps its place in the rotation"
    );
}

#[test]
fn round_robin_cursor_survives_a_group_that_shrank() {
    let mut memory = RingMemory::new();
    memory.cursors.insert(GroupName::new("sales"), 5);
    let g = group(
        Strategy::RoundRobin,
        vec![member("a", 5, 0), member("b", 5, 0)],
    );
    let (_, first) = Driver::start_with(&g, &everyone(&g), &mut memory, 0);
    assert_eq!(first, [ring(0, "b")], "5 mod 2");
}

#[test]
fn longest_idle_rings_the_member_idle_longest_first() {
    let g = group(
        Strategy::LongestIdle,
        vec![
            member("recent", 5, 0),
            member("earlier", 5, 0),
            member("never", 5, 0),
        ],
    );
    let t0 = Instant::now();
    let mut memory = RingMemory::new();
    memory.call_ended(user("recent"), t0 + 50 * SEC);
    memory.call_ended(user("earlier"), t0 + 10 * SEC);
    let (mut d, first) = Driver::start_with(&g, &everyone(&g), &mut memory, 0);
    assert_eq!(
        hunt_order(&mut d, first),
        [user("never"), user("earlier"), user("recent")]
    );
}

#[test]
fn random_order_is_a_shuffle_fixed_by_the_seed() {
    let names = ["a", "b", "c", "d", "e"];
    let g = group(
        Strategy::Random,
        names.iter().map(|n| member(n, 5, 0)).collect(),
    );
    let mut g = g;
    g.ring_timeout = 60 * SEC;
    let order_for = |seed| {
        let (mut d, first) = Driver::start_with(&g, &everyone(&g), &mut RingMemory::new(), seed);
        hunt_order(&mut d, first)
    };
    let listed: Vec<MemberTarget> = names.iter().map(|n| user(n)).collect();
    for seed in 0..10 {
        let order = order_for(seed);
        assert_eq!(order, order_for(seed), "same seed, same order");
        let mut sorted = order.clone();
        sorted.sort_by_key(|t| format!("{t:?}"));
        assert_eq!(sorted, listed, "every member exactly once");
    }
    let distinct: std::collections::HashSet<_> =
        (0..10).map(|s| format!("{:?}", order_for(s))).collect();
    assert!(distinct.len() > 1, "seeds change the order");
}

// ---- max_ring_time ----

#[test]
fn max_ring_time_of_simultaneous_is_the_latest_member_to_stop() {
    let mut g = group(
        Strategy::Simultaneous,
        vec![member("primary", 25, 0), member("backup", 15, 10)],
    );
    g.ring_timeout = 60 * SEC;
    assert_eq!(max_ring_time(&g), 25 * SEC);
    g.members.push(member("late", 20, 15));
    assert_eq!(max_ring_time(&g), 35 * SEC);
    g.ring_timeout = 30 * SEC;
    assert_eq!(max_ring_time(&g), 30 * SEC, "capped by the group");
}

#[test]
fn max_ring_time_of_a_hunt_is_the_sum_of_turns() {
    for strategy in [
        Strategy::Sequential,
        Strategy::RoundRobin,
        Strategy::LongestIdle,
        Strategy::Random,
    ] {
        let mut g = group(strategy, vec![member("a", 10, 0), member("b", 10, 2)]);
        g.ring_timeout = 60 * SEC;
        assert_eq!(max_ring_time(&g), 22 * SEC, "{strategy:?}");
        g.members.push(member("c", 20, 0));
        g.ring_timeout = 30 * SEC;
        assert_eq!(max_ring_time(&g), 30 * SEC, "{strategy:?} capped");
    }
}

#[test]
fn max_ring_time_of_an_empty_group_is_zero() {
    assert_eq!(
        max_ring_time(&group(Strategy::Simultaneous, vec![])),
        Duration::ZERO
    );
    assert_eq!(
        max_ring_time(&group(Strategy::Sequential, vec![])),
        Duration::ZERO
    );
}

#[test]
fn max_ring_time_matches_a_run_where_nobody_answers() {
    let g = group(
        Strategy::Sequential,
        vec![member("a", 5, 1), member("b", 8, 2)],
    );
    let (mut d, _) = Driver::start(&g);
    let mut last = 0;
    while let Some(t) = d.next_timeout() {
        last = t;
        d.at(t).tick();
    }
    assert_eq!(Duration::from_secs(last), max_ring_time(&g));
}
