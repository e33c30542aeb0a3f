//! TEMPORARY in-memory stand-in with the agreed API; replaced by the h-presence branch at merge.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::ring::{Availability, AvailabilitySnapshot, MemberTarget, RingMemory};
use crate::ids::UserName;

pub struct Presence {
    dnd: Mutex<HashSet<UserName>>,
    busy: Mutex<HashMap<MemberTarget, u32>>,
    memory: Mutex<RingMemory>,
}

impl Presence {
    pub fn load(_store: crate::store::Store) -> Result<Arc<Presence>, crate::store::StoreError> {
        Ok(Arc::new(Presence { dnd: Mutex::default(), busy: Mutex::default(), memory: Mutex::default() }))
    }
    pub async fn set_dnd(&self, user: &UserName, on: bool) -> Result<(), crate::store::StoreError> {
        let mut d = self.dnd.lock().unwrap();
        if on { d.insert(user.clone()); } else { d.remove(user); }
        Ok(())
    }
    pub fn dnd(&self, user: &UserName) -> bool { self.dnd.lock().unwrap().contains(user) }
    pub fn call_started(&self, target: &MemberTarget) { *self.busy.lock().unwrap().entry(target.clone()).or_default() += 1; }
    pub fn call_ended(&self, target: &MemberTarget, at: Instant) {
        if let Some(n) = self.busy.lock().unwrap().get_mut(target) { *n = n.saturating_sub(1); }
        self.memory.lock().unwrap().call_ended(target.clone(), at);
    }
    pub fn busy(&self, target: &MemberTarget) -> bool { self.busy.lock().unwrap().get(target).is_some_and(|n| *n > 0) }
    pub fn with_memory<R>(&self, f: impl FnOnce(&mut RingMemory) -> R) -> R { f(&mut self.memory.lock().unwrap()) }
    pub async fn snapshot(&self, members: &[(MemberTarget, bool)], sip: &crate::sip::SipStack) -> AvailabilitySnapshot {
        let mut snap = AvailabilitySnapshot::new();
        for (t, in_hours) in members {
            let (registered, dnd) = match t {
                MemberTarget::User(u) => (!sip.registrar.bindings(u).await.is_empty(), self.dnd(u)),
                _ => (true, false),
            };
            snap.insert(t.clone(), Availability { registered, busy: self.busy(t), dnd, in_hours: *in_hours });
        }
        snap
    }
}
