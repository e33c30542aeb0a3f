//! Refuses a source address for a while after repeated failed authentications: password
//! guessing against desk-phone extensions is the most common attack a SIP server on the
//! internet sees. Time is a value; the registrar passes `now`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct ThrottlePolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub block: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Blocked { retry_after: Duration },
}

#[derive(Debug, Default)]
struct Record {
    failures: u32,
    window_start: Option<Instant>,
    blocked_until: Option<Instant>,
}

#[derive(Debug)]
pub struct AuthThrottle {
    policy: ThrottlePolicy,
    sources: HashMap<IpAddr, Record>,
}

impl AuthThrottle {
    pub fn new(policy: ThrottlePolicy) -> AuthThrottle {
        AuthThrottle { policy, sources: HashMap::new() }
    }

    pub fn check(&self, now: Instant, source: IpAddr) -> Verdict {
        match self.sources.get(&source).and_then(|r| r.blocked_until) {
            Some(until) if until > now => Verdict::Blocked { retry_after: until - now },
            _ => Verdict::Allowed,
        }
    }

    /// Counts a failure; returns true when this one started a block.
    pub fn record_failure(&mut self, now: Instant, source: IpAddr) -> bool {
        let policy = self.policy;
        let r = self.sources.entry(source).or_default();
        let in_window = r.window_start.is_some_and(|s| now.duration_since(s) < policy.window);
        if !in_window {
            r.window_start = Some(now);
            r.failures = 0;
        }
        r.failures += 1;
        if r.failures >= policy.max_failures {
            r.blocked_until = Some(now + policy.block);
            r.failures = 0;
            r.window_start = None;
            return true;
        }
        false
    }

    pub fn record_success(&mut self, source: IpAddr) {
        self.sources.remove(&source);
    }

    /// Drops records that no longer matter, so a scan from many addresses cannot grow the map
    /// without bound.
    pub fn prune(&mut self, now: Instant) {
        let window = self.policy.window;
        self.sources.retain(|_, r| {
            r.blocked_until.is_some_and(|u| u > now)
                || r.window_start.is_some_and(|s| now.duration_since(s) < window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    fn throttle() -> AuthThrottle {
        AuthThrottle::new(ThrottlePolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            block: Duration::from_secs(300),
        })
    }

    #[test]
    fn blocks_after_max_failures_then_lets_go() {
        let t0 = Instant::now();
        let mut t = throttle();
        assert!(!t.record_failure(t0, IP));
        assert!(!t.record_failure(t0 + Duration::from_secs(1), IP));
        assert_eq!(t.check(t0, IP), Verdict::Allowed);
        assert!(t.record_failure(t0 + Duration::from_secs(2), IP));
        assert_eq!(
            t.check(t0 + Duration::from_secs(2), IP),
            Verdict::Blocked { retry_after: Duration::from_secs(300) }
        );
        assert_eq!(t.check(t0, OTHER), Verdict::Allowed);
        assert_eq!(t.check(t0 + Duration::from_secs(303), IP), Verdict::Allowed);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let t0 = Instant::now();
        let mut t = throttle();
        t.record_failure(t0, IP);
        t.record_failure(t0 + Duration::from_secs(30), IP);
        assert!(!t.record_failure(t0 + Duration::from_secs(61), IP));
        assert_eq!(t.check(t0 + Duration::from_secs(61), IP), Verdict::Allowed);
    }

    #[test]
    fn success_clears_the_count_and_prune_forgets_old_sources() {
        let t0 = Instant::now();
        let mut t = throttle();
        t.record_failure(t0, IP);
        t.record_failure(t0, IP);
        t.record_success(IP);
        assert!(!t.record_failure(t0, IP));
        t.record_failure(t0, OTHER);
        t.prune(t0 + Duration::from_secs(120));
        assert!(t.sources.is_empty());
    }
}
