//! Who can ring: the facts a ring group's [`AvailabilitySnapshot`] is taken from, and the
//! [`RingMemory`] its strategies carry from one call to the next.
//!
//! Three sources, one owner each:
//! - **registered** is the registrar's (a live binding) or the trunk's (configured and, when
//!   whatsip registers to that PBX, registered right now); read when a snapshot is taken.
//! - **do-not-disturb** is the user's choice (`*78` on the phone, `whatsip dnd`), so it is
//!   persisted before it counts and survives restarts. Trunk extensions have none: the PBX
//!   behind the trunk keeps its own.
//! - **busy** counts the calls the call actors connected to a member and have not ended. Only
//!   this process's calls, so it starts at zero and is never stored.
//!
//! The snapshot is taken once, at the start of a run (ring.rs: "Who is skipped"); what changes
//! while phones ring is the next call's business.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::ring::{Availability, AvailabilitySnapshot, MemberTarget, RingMemory};
use crate::ids::UserName;
use crate::sip::trunk::TrunkRegistrationState;
use crate::sip::SipStack;
use crate::store::{PresenceRecord, Store, StoreError};

/// Presence of the gateway's members, shared by the SIP side, the call actors and the API.
pub struct Presence {
    store: Store,
    dnd: RwLock<HashSet<UserName>>,
    /// Held from a DND write to its in-memory update (and only there), so two changes racing
    /// (the phone's *78 and an admin's `whatsip dnd`) leave memory as the disk says. A tokio
    /// mutex because it is held across the flush.
    dnd_writes: tokio::sync::Mutex<()>,
    busy: Mutex<BusyCounts>,
    memory: Mutex<RingMemory>,
}

/// One configured user as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPresence {
    pub user: UserName,
    /// At least one live registration.
    pub registered: bool,
    /// The registered Contact URIs.
    pub contacts: Vec<String>,
    pub dnd: bool,
    /// On at least one call.
    pub busy: bool,
}

impl Presence {
    /// Reads the persisted do-not-disturb marks.
    pub fn load(store: Store) -> Result<Arc<Presence>, StoreError> {
        let dnd = store
            .presence_records()?
            .into_iter()
            .filter(|(_, record)| record.dnd)
            .map(|(user, _)| user)
            .collect();
        Ok(Arc::new(Presence {
            store,
            dnd: RwLock::new(dnd),
            dnd_writes: tokio::sync::Mutex::new(()),
            busy: Mutex::new(BusyCounts::default()),
            memory: Mutex::new(RingMemory::new()),
        }))
    }

    /// Persisted (sled tree "presence", flushed before returning) then applied in memory, so a
    /// user told "Do Not Disturb On" stays so across a crash.
    pub async fn set_dnd(&self, user: &UserName, on: bool) -> Result<(), StoreError> {
        let _turn = self.dnd_writes.lock().await;
        self.store.put_presence(user, &PresenceRecord { dnd: on }).await?;
        let mut dnd = self.dnd.write().expect("dnd lock: no panic while held");
        if on {
            dnd.insert(user.clone());
        } else {
            dnd.remove(user);
        }
        Ok(())
    }

    pub fn dnd(&self, user: &UserName) -> bool {
        self.dnd.read().expect("dnd lock: no panic while held").contains(user)
    }

    /// A call was connected to this member (counts; a phone can be on two calls).
    pub fn call_started(&self, target: &MemberTarget) {
        self.busy.lock().expect("busy lock: no panic while held").start(target);
    }

    /// That call ended at `at`; also feeds [`RingMemory::call_ended`] for longest_idle.
    pub fn call_ended(&self, target: &MemberTarget, at: Instant) {
        let had_call = self.busy.lock().expect("busy lock: no panic while held").end(target);
        if !had_call {
            // The caller's bookkeeping slipped; the count stays at zero rather than wrapping,
            // and the idle time is still worth having.
            tracing::warn!(?target, "call ended on a member with no call started");
        }
        self.with_memory(|m| m.call_ended(target.clone(), at));
    }

    pub fn busy(&self, target: &MemberTarget) -> bool {
        self.busy.lock().expect("busy lock: no panic while held").is_busy(target)
    }

    /// Lends the round-robin / longest-idle memory to `RingRun::start`. `f` must not call back
    /// into this `Presence`'s `call_ended` or `with_memory` (the lock is held).
    pub fn with_memory<R>(&self, f: impl FnOnce(&mut RingMemory) -> R) -> R {
        f(&mut self.memory.lock().expect("memory lock: no panic while held"))
    }

    /// Availability of each given member: registered = user has a live registration
    /// (registrar bindings) / trunk is usable (trunk exists and, if it registers to the PBX,
    /// its registration state is registered); busy, dnd from here; in_hours as given by the
    /// caller. Nested groups get no entry: the dialplan flattens them before a run.
    pub async fn snapshot(&self, members: &[(MemberTarget, bool)], sip: &SipStack) -> AvailabilitySnapshot {
        let mut registered = Vec::with_capacity(members.len());
        for (target, _) in members {
            registered.push(match target {
                MemberTarget::User(user) => Some(!sip.registrar.bindings(user).await.is_empty()),
                MemberTarget::Trunk { trunk, .. } => {
                    Some(sip.trunk_states.get(trunk).is_some_and(|state| trunk_usable(&state.borrow())))
                }
                MemberTarget::Group(_) => None,
            });
        }
        // Both locks once, after the awaits: every member is judged at the same moment.
        let dnd = self.dnd.read().expect("dnd lock: no panic while held");
        let busy = self.busy.lock().expect("busy lock: no panic while held");
        members
            .iter()
            .zip(registered)
            .filter_map(|((target, in_hours), registered)| {
                let availability = Availability {
                    registered: registered?,
                    busy: busy.is_busy(target),
                    dnd: matches!(target, MemberTarget::User(user) if dnd.contains(user)),
                    in_hours: *in_hours,
                };
                Some((target.clone(), availability))
            })
            .collect()
    }

    /// For the API: every configured `[[sip.users]]` user with registered/contacts, dnd, busy,
    /// in the configuration's order.
    pub async fn users(&self, sip: &SipStack) -> Vec<UserPresence> {
        let mut list = Vec::with_capacity(sip.settings.sip.users.len());
        for configured in &sip.settings.sip.users {
            let user = UserName::new(&configured.name);
            let contacts: Vec<String> = sip.registrar.bindings(&user).await.into_iter().map(|b| b.contact).collect();
            list.push(self.user_presence(user, contacts));
        }
        list
    }

    /// One user's presence, given its registered contacts.
    fn user_presence(&self, user: UserName, contacts: Vec<String>) -> UserPresence {
        UserPresence {
            registered: !contacts.is_empty(),
            contacts,
            dnd: self.dnd(&user),
            busy: self.busy(&MemberTarget::User(user.clone())),
            user,
        }
    }
}

/// A trunk that registers to its PBX carries calls only while registered: before the first
/// 200 and after a failure the PBX does not know where we are or refuses us. One that does not
/// register (`Disabled`) is usable whenever it is configured; we have no other sign of life.
fn trunk_usable(state: &TrunkRegistrationState) -> bool {
    match state {
        TrunkRegistrationState::Disabled | TrunkRegistrationState::Registered { .. } => true,
        TrunkRegistrationState::Registering | TrunkRegistrationState::Failed { .. } => false,
    }
}

/// Calls connected and not yet ended, per member.
#[derive(Debug, Default)]
struct BusyCounts {
    by_target: HashMap<MemberTarget, u32>,
}

impl BusyCounts {
    fn start(&mut self, target: &MemberTarget) {
        *self.by_target.entry(target.clone()).or_insert(0) += 1;
    }

    /// False when no call was counted for `target`.
    fn end(&mut self, target: &MemberTarget) -> bool {
        let Some(count) = self.by_target.get_mut(target) else {
            return false;
        };
        *count -= 1;
        if *count == 0 {
            // Entries only for members on a call, so the map does not grow with every
            // extension ever rung.
            self.by_target.remove(target);
        }
        true
    }

    fn is_busy(&self, target: &MemberTarget) -> bool {
        self.by_target.contains_key(target)
    }
}

#[cfg(test)]
mod tests;
