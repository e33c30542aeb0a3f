//! The webhook reorder/dedupe core (§2.1, §8.8): Meta delivers at least once and in no
//! particular order. Pure: the shell passes in the time and each event, and gets back whether to
//! hand it on. Memory is bounded: entries expire after a window and are capped in number.
//!
//! The rules:
//! - An event seen before (same call or message, same event, same timestamp) is a duplicate.
//! - A call connects at most once and terminates at most once: a second `connect` or
//!   `terminate` for a call id is dropped whatever its timestamp.
//! - A terminated call id is remembered (a tombstone), so a `connect` that arrives after its
//!   `terminate` (the user hung up at once, or the connect delivery was retried) starts no call.
//! - Call statuses only move forward: RINGING after ACCEPTED/REJECTED or after the terminate is
//!   dropped. ACCEPTED and REJECTED after the terminate still go through: they are outcomes
//!   (§2.4: ACCEPTED arrives late; REJECTED precedes a terminate and may be overtaken by it).
//! - Events older than the window are stale and dropped; a `connect` already when older than
//!   Meta's answer window (§1.3: 30–60 s), since the user has stopped ringing. Permission replies
//!   are never stale: they record a grant that lasts days, and Meta retries messaging webhooks for
//!   up to 7 days (§2.1); whoever stores them keeps the newest by timestamp.
//!
//! Seen-events expire one window after the later of arrival and their own timestamp, so a
//! redelivery late enough to miss them is older than the window and dropped as stale instead.

use super::event::{CallStatus, WaEvent};
use crate::ids::{CallId, MessageId};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressConfig {
    /// How long events are remembered, and how old an event may be before it is stale.
    pub window: Duration,
    /// How old a `connect` may be: beyond Meta's answer window the caller has given up.
    pub connect_max_age: Duration,
    /// At most this many remembered events, and as many remembered calls; the oldest go first.
    pub max_entries: usize,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            window: Duration::from_secs(600),
            // §1.3: "about 30–60 s" to accept; take the long end so a slow first delivery counts.
            connect_max_age: Duration::from_secs(60),
            max_entries: 50_000,
        }
    }
}

/// What to do with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// The same event was delivered already.
    Duplicate,
    /// A second `connect` for a call (with another timestamp).
    RepeatedConnect,
    /// A second `terminate` for a call.
    RepeatedTerminate,
    /// A `connect` for a call whose `terminate` came first: no call is started.
    ConnectAfterTerminate,
    /// A status behind what the call has already reached.
    StatusRegressed,
    /// Older than allowed.
    Stale { age: Duration, max_age: Duration },
}

impl Verdict {
    pub fn is_deliver(&self) -> bool {
        matches!(self, Verdict::Deliver)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Deliver => f.write_str("delivered"),
            Verdict::Duplicate => f.write_str("duplicate delivery"),
            Verdict::RepeatedConnect => f.write_str("the call was connected already"),
            Verdict::RepeatedTerminate => f.write_str("the call was terminated already"),
            Verdict::ConnectAfterTerminate => f.write_str("connect after the call's terminate: no call started"),
            Verdict::StatusRegressed => f.write_str("status older than what the call has reached"),
            Verdict::Stale { age, max_age } => {
                write!(f, "stale: {} s old, at most {} s allowed (check the clock if this repeats)", age.as_secs(), max_age.as_secs())
            }
        }
    }
}

/// The reorder/dedupe state; see the module docs for the rules.
#[derive(Debug)]
pub struct Ingress {
    config: IngressConfig,
    seen: Expiring<EventKey, ()>,
    calls: Expiring<CallId, CallTrack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    Call(CallId),
    Message(MessageId),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    subject: Subject,
    kind: String,
    timestamp: SystemTime,
}

#[derive(Debug, Default, Clone, Copy)]
struct CallTrack {
    connected: bool,
    terminated: bool,
    /// The least status rank still deliverable (see [`status_rank`]).
    status_floor: u8,
}

impl Ingress {
    pub fn new(config: IngressConfig) -> Ingress {
        Ingress { config, seen: Expiring::new(config.max_entries), calls: Expiring::new(config.max_entries) }
    }

    /// Decides about one event and remembers it.
    pub fn admit(&mut self, now: SystemTime, event: &WaEvent) -> Verdict {
        self.seen.prune(now);
        self.calls.prune(now);

        let timestamp = event.timestamp();
        let key = EventKey {
            subject: match event {
                WaEvent::PermissionReply(p) => Subject::Message(p.message_id.clone()),
                other => Subject::Call(other.call_id().expect("every call event has a call id").clone()),
            },
            kind: event.kind(),
            timestamp,
        };
        if self.seen.contains(&key) {
            return Verdict::Duplicate;
        }
        let max_age = match event {
            WaEvent::PermissionReply(_) => None,
            WaEvent::Connect(_) => Some(self.config.connect_max_age),
            _ => Some(self.config.window),
        };
        let age = now.duration_since(timestamp).unwrap_or_default();
        if let Some(max_age) = max_age.filter(|max| age > *max) {
            return Verdict::Stale { age, max_age };
        }

        let verdict = match event {
            WaEvent::PermissionReply(_) => Verdict::Deliver,
            call_event => {
                let id = call_event.call_id().expect("every call event has a call id").clone();
                let track = self.calls.entry(id, now + self.config.window);
                decide(track, call_event)
            }
        };
        if verdict.is_deliver() {
            let until = now.max(timestamp) + self.config.window;
            self.seen.insert(key, (), until);
        }
        verdict
    }

    /// Events and calls remembered.
    pub fn len(&self) -> usize {
        self.seen.len() + self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn decide(track: &mut CallTrack, event: &WaEvent) -> Verdict {
    match event {
        WaEvent::Connect(_) if track.terminated => Verdict::ConnectAfterTerminate,
        WaEvent::Connect(_) if track.connected => Verdict::RepeatedConnect,
        WaEvent::Connect(_) => {
            track.connected = true;
            Verdict::Deliver
        }
        WaEvent::Terminate(_) if track.terminated => Verdict::RepeatedTerminate,
        WaEvent::Terminate(_) => {
            track.terminated = true;
            track.status_floor = track.status_floor.max(OUTCOME);
            Verdict::Deliver
        }
        WaEvent::Status(s) => match status_rank(&s.status) {
            Some(rank) if rank < track.status_floor => Verdict::StatusRegressed,
            Some(rank) => {
                track.status_floor = rank;
                Verdict::Deliver
            }
            // Statuses §2.4 does not name have no known place in the order: hand them on.
            None => Verdict::Deliver,
        },
        WaEvent::PermissionReply(_) => Verdict::Deliver,
    }
}

const OUTCOME: u8 = 1;

/// Where a status stands in a call's progress: ringing, then an outcome.
fn status_rank(status: &CallStatus) -> Option<u8> {
    match status {
        CallStatus::Ringing => Some(0),
        CallStatus::Accepted | CallStatus::Rejected => Some(OUTCOME),
        CallStatus::Other(_) => None,
    }
}

/// A map whose entries expire at a given time, and which drops the soonest-expiring entries
/// when it grows past its cap.
#[derive(Debug)]
struct Expiring<K, V> {
    entries: HashMap<K, (V, (SystemTime, u64))>,
    /// Expiry order; the counter keeps equal times apart.
    queue: BTreeMap<(SystemTime, u64), K>,
    next: u64,
    cap: usize,
}

impl<K: Clone + Eq + Hash, V> Expiring<K, V> {
    fn new(cap: usize) -> Self {
        Expiring { entries: HashMap::new(), queue: BTreeMap::new(), next: 0, cap: cap.max(1) }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    fn prune(&mut self, now: SystemTime) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }

    fn insert(&mut self, key: K, value: V, until: SystemTime) {
        if !self.entries.contains_key(&key) {
            self.make_room();
        }
        let slot = self.slot(until);
        if let Some((_, old)) = self.entries.insert(key.clone(), (value, slot)) {
            self.queue.remove(&old);
        }
        self.queue.insert(slot, key);
    }

    /// The entry for `key` (made with the default value if new), living until `until` at least.
    fn entry(&mut self, key: K, until: SystemTime) -> &mut V
    where
        V: Default,
    {
        match self.entries.get(&key).map(|(_, slot)| *slot) {
            Some(old) if old.0 >= until => {}
            Some(old) => {
                let slot = self.slot(until);
                self.queue.remove(&old);
                self.queue.insert(slot, key.clone());
                self.entries.get_mut(&key).expect("present").1 = slot;
            }
            None => {
                self.make_room();
                let slot = self.slot(until);
                self.queue.insert(slot, key.clone());
                self.entries.insert(key.clone(), (V::default(), slot));
            }
        }
        &mut self.entries.get_mut(&key).expect("present or just inserted").0
    }

    fn slot(&mut self, until: SystemTime) -> (SystemTime, u64) {
        self.next += 1;
        (until, self.next)
    }

    /// Drops the soonest-expiring entries until one more fits under the cap.
    fn make_room(&mut self) {
        while self.entries.len() >= self.cap {
            let Some((_, key)) = self.queue.pop_first() else { break };
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests;
