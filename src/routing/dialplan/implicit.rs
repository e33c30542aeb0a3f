//! The plan a gateway without a dialplan folder runs: each `[[whatsapp.numbers]]` rings its own
//! `target` for `sip.ring_timeout_seconds`, and anything but an answer ends the call. Building it
//! as a [`Dialplan`] keeps one way of routing calls, so a single-target setup and a full plan
//! behave (and are recorded) alike.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Action, Branches, Dialplan, Match, PlanGroup, Route, Step};
use crate::config::Settings;
use crate::routing::ring::{self, GroupName, Member, MemberTarget, RingGroup, Strategy};

/// From validated settings (every number has a target that parses).
pub fn from_targets(settings: &Settings) -> Dialplan {
    let ring_for = Duration::from_secs(settings.sip.ring_timeout_seconds.into());
    let mut routes = Vec::new();
    let mut groups = BTreeMap::new();
    for n in &settings.whatsapp.numbers {
        let Ok(target) = n.dial_target() else { continue };
        let target = MemberTarget::from(target);
        let name = GroupName::new(format!("number-{}", n.phone_number_id));
        let group = RingGroup {
            name: name.clone(),
            strategy: Strategy::Simultaneous,
            members: vec![Member { target, ring_for, start_after: Duration::ZERO }],
            ring_timeout: ring_for,
            skip_busy: false,
            // A desk phone on a call rings anyway, as it did before dialplans: the phone decides.
            allow_call_waiting: true,
        };
        let max_ring = ring::max_ring_time(&group);
        groups.insert(name.clone(), PlanGroup { group, max_ring, hours: Default::default() });
        let end = Branches { on_no_answer: Action::End, on_busy: Action::End, on_reject: Action::End, on_error: Action::End };
        routes.push(Route {
            name: format!("number {}", n.display_number),
            file: "whatsip.toml [[whatsapp.numbers]]".to_owned(),
            matcher: Match { number: Some(n.phone_number_id.clone()), ..Match::default() },
            steps: vec![Step::Ring { group: name, branches: end }],
            max_ring,
        });
    }
    Dialplan { routes, groups, schedules: BTreeMap::new(), announcements: Default::default() }
}
