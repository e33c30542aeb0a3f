//! One ring group ringing for one call, as a pure state machine: events in, commands out, the
//! clock passed in. The CallActor starts a [`RingRun`], carries out what
//! [`RingRun::poll_output`] says (INVITE a member, CANCEL a leg), feeds back what the SIP legs
//! report, and calls [`RingRun::handle_timeout`] at the deadline it was given.
//!
//! The vocabulary is the one PBX admins know (routing-lessons.md §3.2.3): `simultaneous`,
//! `sequential`, `round_robin` (memory hunt), `longest_idle`, `random`; per-member ring time and
//! start delay, so "primary rings first, backups join after N seconds" is one member line with
//! `start_after`. Every run ends in exactly one [`Command::Done`], last.
//!
//! Rules this module settles:
//! - **Who is skipped.** Availability is a snapshot taken by the caller at start
//!   (routing-lessons.md §3.2.5). A member is skipped when it is not registered, on do-not-disturb,
//!   outside its own hours, or busy. A busy member rings only when the group allows call waiting
//!   and does not `skip_busy`: call waiting says the phones can take a second call, `skip_busy`
//!   says this group would rather roll over to an idle member anyway. A target with no entry in
//!   the snapshot is skipped too: ringing a phone we know nothing about is how calls vanish.
//! - **Nested groups** are flattened by the caller (the dialplan, `Dialplan::ring_group`) before
//!   start, because only it knows how the inner group's timing combines with the outer one; a
//!   [`MemberTarget::Group`] that reaches this engine is skipped as [`SkipReason::NestedGroup`].
//! - **Timing.** Each member rings `start_after` after its turn begins, for `ring_for`. In
//!   `simultaneous` every member's turn begins at start; in the other (hunt) strategies one member
//!   rings at a time and the next one's turn begins when the current leg ends (rang out, busy,
//!   rejected, failed). `ring_timeout` caps the whole run.
//! - **First answer wins.** Every other leg we rang gets a CANCEL at once; a later answer, from a
//!   leg we already cancelled or after the run is done, produces nothing here: the SIP layer ACKs
//!   and BYEs it (RFC 3261 §9.1: a 200 can cross our CANCEL).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::ids::{TrunkId, UserName};
use crate::sip::leg::DialTarget;

/// A ring group's name, as the dialplan names it; round-robin memory is kept per name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupName(String);

impl GroupName {
    pub fn new(s: impl Into<String>) -> Self {
        GroupName(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingGroup {
    pub name: GroupName,
    pub strategy: Strategy,
    pub members: Vec<Member>,
    /// The whole run ends this long after start, whatever the members' own times say.
    pub ring_timeout: Duration,
    /// Never ring a member that is on a call at start, even if it allows call waiting.
    pub skip_busy: bool,
    /// Members on a call may still ring (their phones take a second call), unless `skip_busy`.
    pub allow_call_waiting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Every member at once (each after its own `start_after`).
    Simultaneous,
    /// One at a time, in the listed order.
    Sequential,
    /// One at a time, starting one further down the list on each call (memory hunt).
    RoundRobin,
    /// One at a time, the member whose last call ended longest ago first.
    LongestIdle,
    /// One at a time, in an order shuffled by the run's seed.
    Random,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub target: MemberTarget,
    /// How long this member's phone rings before we move on.
    pub ring_for: Duration,
    /// Delay from the start of this member's turn to its INVITE.
    pub start_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MemberTarget {
    /// A phone registered to whatsip.
    User(UserName),
    /// An extension behind a configured PBX trunk (same shape as `sip::leg::DialTarget`).
    Trunk { trunk: TrunkId, extension: String },
    /// Another ring group; the caller flattens these before start (see the module docs).
    Group(GroupName),
}

/// As the dialplan writes it: `1001`, `2001@pbx`, `group:backup`.
impl fmt::Display for MemberTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberTarget::User(u) => write!(f, "{u}"),
            MemberTarget::Trunk { trunk, extension } => write!(f, "{extension}@{trunk}"),
            MemberTarget::Group(g) => write!(f, "group:{g}"),
        }
    }
}

impl From<DialTarget> for MemberTarget {
    fn from(t: DialTarget) -> MemberTarget {
        match t {
            DialTarget::User(user) => MemberTarget::User(user),
            DialTarget::Trunk { trunk, extension } => MemberTarget::Trunk { trunk, extension },
        }
    }
}

/// What the caller knows about one target at start. For a trunk extension, `registered` means
/// the trunk is up; the other flags are whatever the PBX or the admin told us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Availability {
    pub registered: bool,
    /// On a call.
    pub busy: bool,
    /// Marked unavailable (do-not-disturb).
    pub dnd: bool,
    /// Inside the member's own working hours.
    pub in_hours: bool,
}

impl Availability {
    /// Registered, idle, not on DND, in hours.
    pub const AVAILABLE: Availability = Availability {
        registered: true,
        busy: false,
        dnd: false,
        in_hours: true,
    };
}

/// Availability of every target the caller knows about, taken once at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvailabilitySnapshot {
    by_target: HashMap<MemberTarget, Availability>,
}

impl AvailabilitySnapshot {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, target: MemberTarget, availability: Availability) {
        self.by_target.insert(target, availability);
    }

    pub fn get(&self, target: &MemberTarget) -> Option<&Availability> {
        self.by_target.get(target)
    }
}

impl FromIterator<(MemberTarget, Availability)> for AvailabilitySnapshot {
    fn from_iter<I: IntoIterator<Item = (MemberTarget, Availability)>>(iter: I) -> Self {
        AvailabilitySnapshot {
            by_target: iter.into_iter().collect(),
        }
    }
}

/// Strategy state that outlives one call. The caller keeps one and lends it to each start, so
/// the engine stays pure and a test can set it up exactly. `Instant`s do not survive a restart,
/// which is fine: idle order and the cursor are preferences, not promises.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RingMemory {
    /// Round robin: the member position the next call starts at, per group.
    cursors: HashMap<GroupName, usize>,
    /// Longest idle: when each target's last call ended.
    last_call_end: HashMap<MemberTarget, Instant>,
}

impl RingMemory {
    pub fn new() -> Self {
        Self::default()
    }

    /// A call on `target` ended at `at` (the caller knows; a run ends at the answer).
    pub fn call_ended(&mut self, target: MemberTarget, at: Instant) {
        self.last_call_end.insert(target, at);
    }

    /// Where the next round-robin run of `group` starts (a position in its member list).
    pub fn cursor(&self, group: &GroupName) -> usize {
        self.cursors.get(group).copied().unwrap_or(0)
    }

    /// Returns the start position for a group of `len` members and moves the cursor one on.
    /// Taken modulo `len` so an edited group with fewer members still starts somewhere.
    fn take_cursor(&mut self, group: &GroupName, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        let at = self.cursor(group) % len;
        self.cursors.insert(group.clone(), (at + 1) % len);
        at
    }
}

/// A leg of this run: members that ring are numbered 0, 1, … in the order they are due to ring
/// (after the strategy's ordering). The shell maps it to its own `LegId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegIndex(usize);

impl LegIndex {
    pub fn get(self) -> usize {
        self.0
    }
}

/// What the SIP legs and the caller reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// 180/183. For the record only: `ring_for` counts from the INVITE, as Asterisk's Dial
    /// timeout does, so a phone slow to alert does not get extra time.
    Ringing(LegIndex),
    /// 200 OK (the SIP layer ACKs it).
    Answered(LegIndex),
    /// 486 / 600: the SIP layer maps these here rather than to `Rejected`.
    Busy(LegIndex),
    /// The far side stopped ringing by itself: 408/480 (a PBX queue or a phone that timed out,
    /// a phone set to do-not-disturb). Counts as ringing out, as Asterisk's Dial reads these
    /// (NOANSWER), so a queue overflowing back to us takes `on_no_answer`.
    NoAnswer(LegIndex),
    /// Any other final failure a human or PBX chose (603, 404...).
    Rejected(LegIndex, u16),
    /// Transport error, timeout without any response, trunk down.
    Failed(LegIndex),
    /// The WhatsApp caller gave up (or the call was ended) while we rang.
    Cancelled,
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Carry this out, then poll again.
    Command(Command),
    /// Nothing to do before this instant: call `handle_timeout` then (or earlier on an event).
    Timeout(Instant),
    /// The run is done.
    Idle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// INVITE this member.
    Ring { leg: LegIndex, target: MemberTarget },
    /// CANCEL this leg. Before a provisional response the SIP layer holds the CANCEL until one
    /// arrives (RFC 3261 §9.1).
    Cancel { leg: LegIndex },
    /// The run is over. Emitted exactly once, last.
    Done(Outcome),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered {
        leg: LegIndex,
        target: MemberTarget,
    },
    /// Something rang and nobody took it (a member rang out, or the group timeout came).
    NoAnswer,
    /// Every leg that rang declined; the first decline's code.
    Rejected {
        code: u16,
    },
    /// Every leg that rang was busy.
    Busy,
    /// Every leg failed before anyone could answer.
    Unreachable,
    /// The caller gave up first.
    CallerCancelled,
    /// Nobody could be rung: every member, and why.
    NoneAvailable(Vec<Skipped>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub target: MemberTarget,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    NotRegistered,
    Dnd,
    OutOfHours,
    /// On a call, and the group does not ring busy members (see the module docs).
    Busy,
    /// The snapshot had no entry for this target.
    NoStatus,
    /// `ring_for` is zero: it would be cancelled as soon as it rang.
    NoRingTime,
    /// Nested groups are the caller's to flatten.
    NestedGroup,
}

/// The longest a group can ring before someone answers, for the validator's answer-window check
/// (routing-lessons.md §3.2.7). Worst case: every member available and nobody answering. Delays
/// of members that will be skipped are still counted, which only errs on the safe side.
pub fn max_ring_time(group: &RingGroup) -> Duration {
    let turns = group
        .members
        .iter()
        .map(|m| m.start_after.saturating_add(m.ring_for));
    let plan = match group.strategy {
        Strategy::Simultaneous => turns.max().unwrap_or_default(),
        Strategy::Sequential | Strategy::RoundRobin | Strategy::LongestIdle | Strategy::Random => {
            turns.fold(Duration::ZERO, Duration::saturating_add)
        }
    };
    plan.min(group.ring_timeout)
}

pub struct RingRun {
    /// Hunt strategies: one member at a time.
    one_at_a_time: bool,
    legs: Vec<Leg>,
    skipped: Vec<Skipped>,
    /// `ring_timeout` after start.
    deadline: Instant,
    done: bool,
    out: VecDeque<Command>,
}

struct Leg {
    target: MemberTarget,
    ring_for: Duration,
    start_after: Duration,
    state: LegState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// Its turn has not begun (hunt strategies).
    Waiting,
    /// Its turn began; INVITE at this instant.
    Due(Instant),
    /// INVITE sent; we give up on it at `until`.
    Ringing {
        until: Instant,
    },
    Ended(LegEnd),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegEnd {
    Answered,
    RangOut,
    Busy,
    Rejected(u16),
    Failed,
    /// We cancelled it, or it never rang because the run ended first.
    Stopped,
}

impl RingRun {
    /// Starts ringing `group` at `now`. `seed` orders a `random` group; the shell draws it.
    pub fn start(
        group: &RingGroup,
        availability: &AvailabilitySnapshot,
        memory: &mut RingMemory,
        now: Instant,
        seed: u64,
    ) -> RingRun {
        let mut eligible = Vec::new();
        let mut skipped = Vec::new();
        for (pos, m) in group.members.iter().enumerate() {
            match check(group, m, availability) {
                Ok(()) => eligible.push(pos),
                Err(reason) => skipped.push(Skipped {
                    target: m.target.clone(),
                    reason,
                }),
            }
        }
        let order = order(group, eligible, memory, seed);
        let legs: Vec<Leg> = order
            .into_iter()
            .filter_map(|pos| group.members.get(pos))
            .map(|m| Leg {
                target: m.target.clone(),
                ring_for: m.ring_for,
                start_after: m.start_after,
                state: LegState::Waiting,
            })
            .collect();
        let mut run = RingRun {
            one_at_a_time: group.strategy != Strategy::Simultaneous,
            legs,
            skipped,
            deadline: later(now, group.ring_timeout),
            done: false,
            out: VecDeque::new(),
        };
        if run.legs.is_empty() {
            let why = run.skipped.clone();
            run.finish(Outcome::NoneAvailable(why));
            return run;
        }
        let first_turns = if run.one_at_a_time { 1 } else { run.legs.len() };
        for i in 0..first_turns {
            run.begin_turn(i, now);
        }
        run.advance(now);
        run
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        if self.done {
            // A late answer after the winner, or after the caller left: the SIP layer ends it.
            tracing::debug!(?event, "ring run done; event ignored");
            return;
        }
        match event {
            Event::Cancelled => {
                self.stop_all();
                self.finish(Outcome::CallerCancelled);
            }
            Event::Ringing(_) => {}
            Event::Answered(leg) => {
                if let Some(target) = self.ringing_target(leg) {
                    self.legs[leg.0].state = LegState::Ended(LegEnd::Answered);
                    self.stop_all();
                    self.finish(Outcome::Answered { leg, target });
                } else {
                    tracing::debug!(?leg, "answer from a leg not ringing; ignored");
                }
            }
            Event::Busy(leg) => self.leg_ended(leg, LegEnd::Busy, now),
            Event::NoAnswer(leg) => self.leg_ended(leg, LegEnd::RangOut, now),
            Event::Rejected(leg, code) => self.leg_ended(leg, LegEnd::Rejected(code), now),
            Event::Failed(leg) => self.leg_ended(leg, LegEnd::Failed, now),
        }
        // An answer that lands exactly at the deadline still wins: it was handled first.
        self.advance(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(c) = self.out.pop_front() {
            return Output::Command(c);
        }
        if self.done {
            return Output::Idle;
        }
        let next = self
            .legs
            .iter()
            .filter_map(|l| match l.state {
                LegState::Due(at) => Some(at),
                LegState::Ringing { until } => Some(until),
                LegState::Waiting | LegState::Ended(_) => None,
            })
            .fold(self.deadline, Instant::min);
        Output::Timeout(next)
    }

    /// Members skipped at start and why, for the call record.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    fn ringing_target(&self, leg: LegIndex) -> Option<MemberTarget> {
        match self.legs.get(leg.0) {
            Some(l) if matches!(l.state, LegState::Ringing { .. }) => Some(l.target.clone()),
            _ => None,
        }
    }

    /// A ringing leg ended without answering; in a hunt the next member's turn begins now.
    fn leg_ended(&mut self, leg: LegIndex, end: LegEnd, now: Instant) {
        if self.ringing_target(leg).is_none() {
            // Unknown index, or a final response racing our CANCEL: nothing left to decide.
            tracing::debug!(?leg, ?end, "leg not ringing; ignored");
            return;
        }
        self.end_leg(leg.0, end, now);
    }

    fn end_leg(&mut self, i: usize, end: LegEnd, now: Instant) {
        self.legs[i].state = LegState::Ended(end);
        if self.one_at_a_time {
            if let Some(next) = self.legs.iter().position(|l| l.state == LegState::Waiting) {
                self.begin_turn(next, now);
            }
        }
    }

    fn begin_turn(&mut self, i: usize, now: Instant) {
        let leg = &mut self.legs[i];
        leg.state = LegState::Due(later(now, leg.start_after));
    }

    /// Brings the run up to `now`: the group deadline first, then every INVITE that is due and
    /// every leg that rang out, until nothing changes (a late timer may cover several steps).
    fn advance(&mut self, now: Instant) {
        if self.done {
            return;
        }
        if now >= self.deadline {
            self.stop_all();
            self.finish(Outcome::NoAnswer);
            return;
        }
        loop {
            let mut changed = false;
            for i in 0..self.legs.len() {
                match self.legs[i].state {
                    LegState::Due(at) if at <= now => {
                        let leg = &mut self.legs[i];
                        leg.state = LegState::Ringing {
                            until: later(now, leg.ring_for),
                        };
                        self.out.push_back(Command::Ring {
                            leg: LegIndex(i),
                            target: leg.target.clone(),
                        });
                        changed = true;
                    }
                    LegState::Ringing { until } if until <= now => {
                        self.out.push_back(Command::Cancel { leg: LegIndex(i) });
                        self.end_leg(i, LegEnd::RangOut, now);
                        changed = true;
                    }
                    _ => {}
                }
            }
            if !changed {
                break;
            }
        }
        if self
            .legs
            .iter()
            .all(|l| matches!(l.state, LegState::Ended(_)))
        {
            let outcome = self.unanswered_outcome();
            self.finish(outcome);
        }
    }

    /// Every leg ended unanswered. Ringing out says the most about the caller's experience
    /// ("nobody picked up"), then a human's decline, then busy, then plain failure.
    fn unanswered_outcome(&self) -> Outcome {
        let ends: Vec<LegEnd> = self
            .legs
            .iter()
            .filter_map(|l| match l.state {
                LegState::Ended(e) => Some(e),
                _ => None,
            })
            .collect();
        if ends.contains(&LegEnd::RangOut) {
            return Outcome::NoAnswer;
        }
        if let Some(code) = ends.iter().find_map(|e| match e {
            LegEnd::Rejected(code) => Some(*code),
            _ => None,
        }) {
            return Outcome::Rejected { code };
        }
        if ends.contains(&LegEnd::Busy) {
            return Outcome::Busy;
        }
        Outcome::Unreachable
    }

    /// CANCEL every leg we rang that is still ringing; members not yet rung never will be.
    fn stop_all(&mut self) {
        for (i, leg) in self.legs.iter_mut().enumerate() {
            match leg.state {
                LegState::Ringing { .. } => {
                    self.out.push_back(Command::Cancel { leg: LegIndex(i) });
                    leg.state = LegState::Ended(LegEnd::Stopped);
                }
                LegState::Waiting | LegState::Due(_) => {
                    leg.state = LegState::Ended(LegEnd::Stopped)
                }
                LegState::Ended(_) => {}
            }
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        self.out.push_back(Command::Done(outcome));
        self.done = true;
    }
}

/// `now + d` without the overflow panic an absurd configured duration would cause. A year is
/// "never" for a ring; the validator refuses anything near it anyway.
fn later(now: Instant, d: Duration) -> Instant {
    const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(d.min(NEVER)).unwrap_or(now)
}

/// Whether `m` may ring, by the rules in the module docs.
fn check(group: &RingGroup, m: &Member, snapshot: &AvailabilitySnapshot) -> Result<(), SkipReason> {
    if matches!(m.target, MemberTarget::Group(_)) {
        return Err(SkipReason::NestedGroup);
    }
    if m.ring_for.is_zero() {
        return Err(SkipReason::NoRingTime);
    }
    let a = snapshot.get(&m.target).ok_or(SkipReason::NoStatus)?;
    if !a.registered {
        Err(SkipReason::NotRegistered)
    } else if a.dnd {
        Err(SkipReason::Dnd)
    } else if !a.in_hours {
        Err(SkipReason::OutOfHours)
    } else if a.busy && (group.skip_busy || !group.allow_call_waiting) {
        Err(SkipReason::Busy)
    } else {
        Ok(())
    }
}

/// The ring order of the eligible member positions.
fn order(
    group: &RingGroup,
    mut eligible: Vec<usize>,
    memory: &mut RingMemory,
    seed: u64,
) -> Vec<usize> {
    match group.strategy {
        Strategy::Simultaneous | Strategy::Sequential => {}
        Strategy::RoundRobin => {
            // The cursor walks the configured list, not the eligible one, so a member away for
            // one call keeps its place in the rotation.
            let n = group.members.len();
            let start = memory.take_cursor(&group.name, n);
            eligible.sort_by_key(|&pos| (pos + n - start) % n);
        }
        Strategy::LongestIdle => {
            // Never-called members (`None`) sort first; ties keep the listed order (stable sort).
            eligible.sort_by_key(|&pos| {
                group
                    .members
                    .get(pos)
                    .and_then(|m| memory.last_call_end.get(&m.target).copied())
            });
        }
        Strategy::Random => shuffle(&mut eligible, seed),
    }
    eligible
}

/// Fisher-Yates driven by splitmix64: a few lines, and the order for a seed never changes with
/// a dependency's version, so tests and `dialplan simulate` stay reproducible.
fn shuffle(v: &mut [usize], seed: u64) {
    let mut state = seed;
    for i in (1..v.len()).rev() {
        let j = (splitmix64(&mut state) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests;
