//! The location service behind the registrar (RFC 3261 §10.3): which contacts each user has and
//! until when. Pure: the layer hands it a parsed REGISTER and `now`, it returns what changed so
//! the shell can persist it before answering.

use crate::ids::UserName;
use crate::store::Binding;
use std::collections::BTreeMap;

/// Most contacts one user may hold: a desk phone, a softphone, a mobile app, with room to spare.
pub const MAX_CONTACTS_PER_USER: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// No Contact header: a query for the current bindings.
    Query,
    /// `Contact: *` (only valid with `Expires: 0`): remove every binding.
    Star,
    /// Contact URIs with their `;expires=` parameter, if any.
    List(Vec<(String, Option<u32>)>),
}

/// A REGISTER after authentication, reduced to what the location service needs.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub user: UserName,
    pub contacts: Contacts,
    pub expires_header: Option<u32>,
    pub call_id: String,
    pub cseq: u32,
    pub source: String,
    pub transport: String,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct ExpiryPolicy {
    pub min: u32,
    pub max: u32,
    pub default: u32,
}

pub use crate::store::RegistrationChange as Change;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// 423 with Min-Expires (RFC 3261 §10.3 step 6).
    #[error("interval too brief, at least {min} s")]
    IntervalTooBrief { min: u32 },
    /// 400: `Contact: *` needs `Expires: 0` and no other contact (§10.3 step 6).
    #[error("Contact: * needs Expires: 0 and no other Contact")]
    InvalidStar,
    /// 400: same Call-ID with an older or equal CSeq (§10.3 step 7).
    #[error("REGISTER out of order (CSeq not higher for this Call-ID)")]
    OutOfOrder,
    /// 403: the user would hold more contacts than allowed.
    #[error("too many contacts (at most {MAX_CONTACTS_PER_USER})")]
    TooManyContacts,
}

#[derive(Debug, Default)]
pub struct Location {
    users: BTreeMap<UserName, Vec<Binding>>,
}

impl Location {
    /// Starts from what the store held, dropping what expired while we were down.
    pub fn restore(bindings: impl IntoIterator<Item = Binding>, now_unix: u64) -> (Location, Vec<Change>) {
        let mut loc = Location::default();
        for b in bindings {
            loc.users.entry(b.user.clone()).or_default().push(b);
        }
        let expired = loc.expire(now_unix);
        (loc, expired)
    }

    /// Applies a REGISTER. On success returns the changes to persist; the bindings to report in
    /// the 200 OK are then [`Location::lookup`].
    pub fn register(&mut self, now_unix: u64, req: &RegisterRequest, policy: ExpiryPolicy) -> Result<Vec<Change>, RegisterError> {
        let list = match &req.contacts {
            Contacts::Query => return Ok(Vec::new()),
            Contacts::Star => {
                if req.expires_header != Some(0) {
                    return Err(RegisterError::InvalidStar);
                }
                let removed = self.users.remove(&req.user).unwrap_or_default();
                if removed.iter().any(|b| b.call_id == req.call_id && b.cseq >= req.cseq) {
                    // Put them back: an out-of-order "remove all" must not win (§10.3 step 6).
                    self.users.insert(req.user.clone(), removed);
                    return Err(RegisterError::OutOfOrder);
                }
                return Ok(removed
                    .into_iter()
                    .map(|b| Change::Remove { user: b.user, contact: b.contact })
                    .collect());
            }
            Contacts::List(list) => list,
        };

        // Validate all before changing anything: a REGISTER is applied whole or not at all.
        let existing = self.users.get(&req.user).map(Vec::as_slice).unwrap_or(&[]);
        let mut planned = Vec::with_capacity(list.len());
        for (contact, param) in list {
            let requested = param.or(req.expires_header).unwrap_or(policy.default);
            if requested != 0 && requested < policy.min {
                return Err(RegisterError::IntervalTooBrief { min: policy.min });
            }
            if let Some(b) = existing.iter().find(|b| &b.contact == contact) {
                if b.call_id == req.call_id && b.cseq >= req.cseq {
                    return Err(RegisterError::OutOfOrder);
                }
            }
            planned.push((contact.clone(), requested.min(policy.max)));
        }
        let remaining = existing
            .iter()
            .filter(|b| !planned.iter().any(|(c, _)| c == &b.contact))
            .count();
        let added = planned.iter().filter(|(_, e)| *e > 0).count();
        if remaining + added > MAX_CONTACTS_PER_USER {
            return Err(RegisterError::TooManyContacts);
        }

        let entry = self.users.entry(req.user.clone()).or_default();
        let mut changes = Vec::with_capacity(planned.len());
        for (contact, expires) in planned {
            entry.retain(|b| b.contact != contact);
            if expires == 0 {
                changes.push(Change::Remove { user: req.user.clone(), contact });
                continue;
            }
            let binding = Binding {
                user: req.user.clone(),
                contact,
                expires_at: now_unix + u64::from(expires),
                registered_at: now_unix,
                call_id: req.call_id.clone(),
                cseq: req.cseq,
                source: req.source.clone(),
                transport: req.transport.clone(),
                user_agent: req.user_agent.clone(),
            };
            entry.push(binding.clone());
            changes.push(Change::Upsert(binding));
        }
        if entry.is_empty() {
            self.users.remove(&req.user);
        }
        Ok(changes)
    }

    /// Puts a user's bindings back as they were, after the store refused a change.
    pub fn replace_user(&mut self, user: &UserName, bindings: Vec<Binding>) {
        if bindings.is_empty() {
            self.users.remove(user);
        } else {
            self.users.insert(user.clone(), bindings);
        }
    }

    /// Live bindings of a user.
    pub fn lookup(&self, user: &UserName, now_unix: u64) -> Vec<Binding> {
        self.users
            .get(user)
            .map(|v| v.iter().filter(|b| b.expires_at > now_unix).cloned().collect())
            .unwrap_or_default()
    }

    pub fn all(&self, now_unix: u64) -> Vec<Binding> {
        self.users.values().flatten().filter(|b| b.expires_at > now_unix).cloned().collect()
    }

    /// Removes bindings whose time ran out.
    pub fn expire(&mut self, now_unix: u64) -> Vec<Change> {
        let mut changes = Vec::new();
        self.users.retain(|_, bindings| {
            bindings.retain(|b| {
                let live = b.expires_at > now_unix;
                if !live {
                    changes.push(Change::Remove { user: b.user.clone(), contact: b.contact.clone() });
                }
                live
            });
            !bindings.is_empty()
        });
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: ExpiryPolicy = ExpiryPolicy { min: 60, max: 3600, default: 3600 };

    fn req(contacts: Contacts, expires: Option<u32>, call_id: &str, cseq: u32) -> RegisterRequest {
        RegisterRequest {
            user: UserName::new("1001"),
            contacts,
            expires_header: expires,
            call_id: call_id.into(),
            cseq,
            source: "127.0.0.1:5062".into(),
            transport: "udp".into(),
            user_agent: Some("baresip".into()),
        }
    }

    fn list(items: &[(&str, Option<u32>)]) -> Contacts {
        Contacts::List(items.iter().map(|(c, e)| (c.to_string(), *e)).collect())
    }

    #[test]
    fn several_contacts_refresh_and_expiry() {
        let mut loc = Location::default();
        let user = UserName::new("1001");
        loc.register(100, &req(list(&[("sip:1001@a", None)]), Some(120), "c1", 1), POLICY).unwrap();
        loc.register(100, &req(list(&[("sip:1001@b", Some(600))]), None, "c2", 1), POLICY).unwrap();
        assert_eq!(loc.lookup(&user, 150).len(), 2);
        // refresh of a keeps one binding, with the new expiry
        loc.register(200, &req(list(&[("sip:1001@a", None)]), Some(120), "c1", 2), POLICY).unwrap();
        let a: Vec<_> = loc.lookup(&user, 201).into_iter().filter(|b| b.contact == "sip:1001@a").collect();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].expires_at, 320);
        // a expires at 320, b at 700
        let changes = loc.expire(400);
        assert_eq!(changes, vec![Change::Remove { user: user.clone(), contact: "sip:1001@a".into() }]);
        assert_eq!(loc.lookup(&user, 400).len(), 1);
    }

    #[test]
    fn expires_zero_removes_one_and_star_removes_all() {
        let mut loc = Location::default();
        let user = UserName::new("1001");
        loc.register(0, &req(list(&[("sip:1001@a", None), ("sip:1001@b", None)]), None, "c1", 1), POLICY).unwrap();
        let ch = loc.register(10, &req(list(&[("sip:1001@a", Some(0))]), None, "c1", 2), POLICY).unwrap();
        assert_eq!(ch, vec![Change::Remove { user: user.clone(), contact: "sip:1001@a".into() }]);
        assert_eq!(loc.lookup(&user, 10).len(), 1);
        let ch = loc.register(20, &req(Contacts::Star, Some(0), "c1", 3), POLICY).unwrap();
        assert_eq!(ch.len(), 1);
        assert!(loc.lookup(&user, 20).is_empty());
        assert!(loc.all(20).is_empty());
    }

    #[test]
    fn interval_limits() {
        let mut loc = Location::default();
        let err = loc.register(0, &req(list(&[("sip:1001@a", None)]), Some(30), "c", 1), POLICY).unwrap_err();
        assert_eq!(err, RegisterError::IntervalTooBrief { min: 60 });
        assert!(loc.all(0).is_empty(), "a refused REGISTER changes nothing");
        loc.register(0, &req(list(&[("sip:1001@a", None)]), Some(99999), "c", 2), POLICY).unwrap();
        assert_eq!(loc.all(0)[0].expires_at, 3600);
        loc.register(0, &req(list(&[("sip:1001@b", None)]), None, "d", 1), POLICY).unwrap();
        assert_eq!(loc.all(0).iter().find(|b| b.contact == "sip:1001@b").unwrap().expires_at, 3600);
    }

    #[test]
    fn star_needs_expires_zero_and_order_is_enforced() {
        let mut loc = Location::default();
        assert_eq!(loc.register(0, &req(Contacts::Star, Some(60), "c", 1), POLICY), Err(RegisterError::InvalidStar));
        loc.register(0, &req(list(&[("sip:1001@a", None)]), None, "c", 5), POLICY).unwrap();
        assert_eq!(loc.register(0, &req(list(&[("sip:1001@a", None)]), None, "c", 5), POLICY), Err(RegisterError::OutOfOrder));
        assert_eq!(loc.register(0, &req(Contacts::Star, Some(0), "c", 4), POLICY), Err(RegisterError::OutOfOrder));
        assert_eq!(loc.all(0).len(), 1, "out-of-order remove-all kept the binding");
        // A different Call-ID (phone rebooted) may replace it regardless of CSeq.
        loc.register(0, &req(list(&[("sip:1001@a", None)]), None, "other", 1), POLICY).unwrap();
    }

    #[test]
    fn contact_limit_and_query() {
        let mut loc = Location::default();
        let many: Vec<_> = (0..=MAX_CONTACTS_PER_USER).map(|i| (format!("sip:1001@h{i}"), None)).collect();
        assert_eq!(loc.register(0, &req(Contacts::List(many), None, "c", 1), POLICY), Err(RegisterError::TooManyContacts));
        assert_eq!(loc.register(0, &req(Contacts::Query, None, "c", 1), POLICY), Ok(vec![]));
    }

    #[test]
    fn restore_drops_expired() {
        let mut loc = Location::default();
        loc.register(0, &req(list(&[("sip:1001@a", Some(60)), ("sip:1001@b", Some(600))]), None, "c", 1), POLICY).unwrap();
        let (restored, removed) = Location::restore(loc.all(0), 100);
        assert_eq!(restored.all(100).len(), 1);
        assert_eq!(removed.len(), 1);
    }
}
