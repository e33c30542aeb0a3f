//! `whatsip dialplan simulate`: what a call would do under a plan, without placing it — which
//! route matches, and for each ring step who rings when and for how long (the ring-group engine
//! itself, run in virtual time with nobody answering, on the flattened group the call would
//! ring, members outside their hours at the call's instant skipped), then what each outcome
//! leads to.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::dialplan::{Action, Branches, CallFacts, Dialplan, Step};
use super::ring::{
    Availability, AvailabilitySnapshot, Command, GroupName, Outcome, Output,
    RingMemory, RingRun, SkipReason,
};

/// The call to simulate.
#[derive(Debug, Clone)]
pub struct SimulatedCall<'a> {
    pub facts: CallFacts<'a>,
    /// When the call comes in (schedules are checked at this instant).
    pub at: Timestamp,
    /// Members to treat as unavailable (do-not-disturb): user names or `ext@trunk`.
    pub unavailable: Vec<String>,
}

/// `whatsip dialplan simulate`: loads and checks the plan in `dir` (with the settings' answer
/// window and users when given), prints the simulation, returns the exit status (2 if the plan
/// has problems, which are printed as `dialplan check` prints them).
pub fn simulate_command(dir: &std::path::Path, settings: Option<&crate::config::Settings>, call: &SimulatedCall<'_>) -> u8 {
    use super::dialplan::{load_dir, CheckOptions, DEFAULT_ANSWER_WINDOW};
    let answer_window = settings.map_or(DEFAULT_ANSWER_WINDOW, crate::config::Settings::answer_window);
    match load_dir(dir, &CheckOptions { answer_window, settings }) {
        Ok(plan) => {
            for line in simulate(&plan, call) {
                println!("{line}");
            }
            0
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            2
        }
    }
}

/// The simulation as lines of text, for the CLI.
pub fn simulate(plan: &Dialplan, call: &SimulatedCall<'_>) -> Vec<String> {
    let at = call.at;
    let mut out = vec![format!(
        "call from +{} to {} at {at}",
        call.facts.caller.trim_start_matches('+'),
        call.facts.business_number
    )];
    let Some(route) = plan.route_for(&call.facts, at) else {
        out.push("no route matches: the call is rejected".to_owned());
        return out;
    };
    out.push(format!("route {} ({}), at most {} s of ringing before an answer", route.name, route.file, route.max_ring.as_secs()));
    let unavailable: HashSet<&str> = call.unavailable.iter().map(String::as_str).collect();
    for (i, step) in route.steps.iter().enumerate() {
        let n = i + 1;
        match step {
            Step::Ring { group, branches } => {
                out.push(format!("step {n}: ring group {group}"));
                out.extend(ring_timeline(plan, group, at, &unavailable).into_iter().map(|l| format!("    {l}")));
                out.extend(branch_lines(branches).into_iter().map(|l| format!("    {l}")));
            }
            Step::Announce { file, then } => {
                out.push(format!("step {n}: answer and play {} (the call counts as announced, not answered by an agent), then {}", file.display(), action(then)));
            }
            Step::Callback => out.push(format!("step {n}: mark the caller for a callback and end the call")),
            Step::Reject => out.push(format!("step {n}: reject the call")),
        }
    }
    out
}

/// Who rings when if nobody answers, from the ring-group engine itself.
fn ring_timeline(plan: &Dialplan, group: &GroupName, at: Timestamp, unavailable: &HashSet<&str>) -> Vec<String> {
    let Some(g) = plan.ring_group(group) else {
        return vec![format!("group {group} is not defined")];
    };
    let mut snapshot = AvailabilitySnapshot::new();
    for m in &g.members {
        let name = m.target.to_string();
        let availability = Availability {
            dnd: unavailable.contains(name.as_str()),
            in_hours: plan.in_hours(group, &m.target, at),
            ..Availability::AVAILABLE
        };
        snapshot.insert(m.target.clone(), availability);
    }
    let t0 = Instant::now();
    let mut run = RingRun::start(&g, &snapshot, &mut RingMemory::new(), t0, 1);
    let mut lines = Vec::new();
    for s in run.skipped() {
        lines.push(format!("skipped {} ({})", s.target, skip_reason(s.reason)));
    }
    let mut rang: Vec<(usize, String, Duration)> = Vec::new();
    // (start, leg, line): legs end in any order, the timeline reads by start, then in the
    // order the members were rung.
    let mut spans: Vec<(Duration, usize, String)> = Vec::new();
    let span = |leg: usize, name: &str, from: Duration, until: Duration| {
        (from, leg, format!("{:>4} s  ring {name} until {} s", from.as_secs(), until.as_secs()))
    };
    let mut now = t0;
    // A run always ends; the bound only guards against a bug turning into a hang.
    for _ in 0..10_000 {
        match run.poll_output() {
            Output::Command(Command::Ring { leg, target }) => {
                rang.push((leg.get(), target.to_string(), now - t0));
            }
            Output::Command(Command::Cancel { leg }) => {
                if let Some((l, name, from)) = rang.iter().find(|(l, _, _)| *l == leg.get()) {
                    spans.push(span(*l, name, *from, now - t0));
                }
                rang.retain(|(l, _, _)| *l != leg.get());
            }
            Output::Command(Command::Done(outcome)) => {
                for (l, name, from) in rang.drain(..) {
                    spans.push(span(l, &name, from, now - t0));
                }
                spans.sort_by_key(|(from, leg, _)| (*from, *leg));
                lines.extend(spans.drain(..).map(|(_, _, line)| line));
                lines.push(format!("nobody answers: {} after {} s", outcome_text(&outcome), (now - t0).as_secs()));
                break;
            }
            Output::Timeout(at) => {
                now = at;
                run.handle_timeout(now);
            }
            Output::Idle => break,
        }
    }
    lines
}

fn branch_lines(b: &Branches) -> Vec<String> {
    vec![
        "answered: the call is connected".to_owned(),
        format!("no answer: {}", action(&b.on_no_answer)),
        format!("busy: {}", action(&b.on_busy)),
        format!("rejected: {}", action(&b.on_reject)),
        format!("error: {}", action(&b.on_error)),
    ]
}

fn action(a: &Action) -> String {
    match a {
        Action::Next => "go on to the next step".to_owned(),
        Action::End => "hang up".to_owned(),
        Action::Reject => "reject the call".to_owned(),
        Action::Callback => "mark for a callback and end".to_owned(),
        Action::Announce(file) => format!("answer, play {}, hang up", file.display()),
        Action::Ring(group) => format!("ring group {group} as a last try"),
    }
}

fn skip_reason(r: SkipReason) -> &'static str {
    match r {
        SkipReason::NotRegistered => "not registered",
        SkipReason::Dnd => "unavailable",
        SkipReason::OutOfHours => "out of hours",
        SkipReason::Busy => "on a call",
        SkipReason::NoStatus => "no status",
        SkipReason::NoRingTime => "no ring time",
        SkipReason::NestedGroup => "nested group",
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Answered { target, .. } => format!("answered by {target}"),
        Outcome::NoAnswer => "no answer".to_owned(),
        Outcome::Rejected { code } => format!("rejected ({code})"),
        Outcome::Busy => "busy".to_owned(),
        Outcome::Unreachable => "unreachable".to_owned(),
        Outcome::CallerCancelled => "the caller gave up".to_owned(),
        Outcome::NoneAvailable(_) => "nobody available to ring".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::dialplan::{load_dir, CheckOptions, DEFAULT_ANSWER_WINDOW};
    use std::path::Path;

    fn examples() -> Dialplan {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans");
        load_dir(&dir, &CheckOptions { answer_window: DEFAULT_ANSWER_WINDOW, settings: None }).expect("the examples check")
    }

    fn at() -> Timestamp {
        "2026-11-24T10:00:00Z".parse().unwrap()
    }

    fn facts<'a>(to: &'a str, from: &'a str) -> CallFacts<'a> {
        CallFacts { business_number: to, phone_number_id: "", caller: from, cta_payload: None, deeplink_payload: None }
    }

    #[test]
    fn primary_rings_first_and_the_backup_joins_later() {
        let plan = examples();
        let route = plan.routes().iter().find(|r| r.name == "support").expect("the primary/backup example");
        let number = route.matcher.number.clone().unwrap_or_default();
        let lines = simulate(&plan, &SimulatedCall { facts: facts(&number, "15551234567"), at: at(), unavailable: vec![] });
        let text = lines.join("\n");
        assert!(text.contains("route support"), "{text}");
        let rings: Vec<&String> = lines.iter().filter(|l| l.contains(" ring ") && l.contains("until")).collect();
        assert!(rings.len() >= 2, "{text}");
        let start = |l: &str| l.split_whitespace().next().unwrap().parse::<u64>().unwrap();
        assert_eq!(start(rings[0]), 0, "{text}");
        assert!(rings.iter().any(|l| start(l) > 0), "a backup joins later: {text}");
        assert!(text.contains("nobody answers: no answer"), "{text}");
    }

    #[test]
    fn an_unavailable_member_is_skipped_and_no_route_is_said() {
        let plan = examples();
        let route = plan.routes().iter().find(|r| r.name == "support").unwrap();
        let number = route.matcher.number.clone().unwrap_or_default();
        let group = match &route.steps[0] {
            Step::Ring { group, .. } => group.clone(),
            other => panic!("{other:?}"),
        };
        let first = plan.ring_group(&group).unwrap().members[0].target.to_string();
        let lines = simulate(&plan, &SimulatedCall { facts: facts(&number, "15551234567"), at: at(), unavailable: vec![first.clone()] });
        let text = lines.join("\n");
        assert!(text.contains(&format!("skipped {first} (unavailable)")), "{text}");
        assert!(!text.contains(&format!("ring {first} until")), "{text}");

        let lines = simulate(&plan, &SimulatedCall { facts: facts("+999", "1"), at: at(), unavailable: vec![] });
        assert!(lines.join("\n").contains("no route matches"), "{lines:?}");
    }

    #[test]
    fn nested_members_ring_in_place_and_a_part_timer_only_in_hours() {
        let plan = examples();
        let call = |at: &str| {
            let at = at.parse().unwrap();
            simulate(&plan, &SimulatedCall { facts: facts("+43120000", "15551234567"), at, unavailable: vec![] }).join("\n")
        };
        // Tuesday 10:00 in Vienna: 1032 works afternoons.
        let morning = call("2026-11-24T09:00:00Z");
        assert!(morning.contains("route service-line") && morning.contains("ring group service"), "{morning}");
        assert!(morning.contains("   0 s  ring 1030 until 20 s"), "{morning}");
        assert!(morning.contains("   0 s  ring 1031 until 10 s"), "service-backup's members ring with 1030: {morning}");
        assert!(morning.contains("skipped 1032 (out of hours)"), "{morning}");
        assert!(!morning.contains("group:"), "{morning}");
        // 14:00 in Vienna.
        let afternoon = call("2026-11-24T13:00:00Z");
        assert!(afternoon.contains("   0 s  ring 1032 until 10 s") && !afternoon.contains("skipped"), "{afternoon}");
    }
}
