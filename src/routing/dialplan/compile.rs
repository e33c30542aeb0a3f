//! From the files as written to a checked [`Dialplan`]: every problem is collected, none stops
//! the others from being found (except that a plan with problems is not built).

use super::flatten::{GroupDraft, MemberLine};
use super::*;

pub(super) fn compile(c: &mut Checker<'_>, files: Vec<(usize, RawFile)>) -> Option<Dialplan> {
    let mut raw_schedules = Vec::new();
    let mut raw_groups = Vec::new();
    let mut raw_routes = Vec::new();
    for (file, f) in files {
        raw_schedules.extend(f.schedule.into_iter().map(|s| (file, s)));
        raw_groups.extend(f.group.into_iter().map(|g| (file, g)));
        raw_routes.extend(f.route.into_iter().map(|r| (file, r)));
    }

    let schedules = schedules(c, raw_schedules);
    let groups = groups(c, raw_groups, &schedules);
    let routes = routes(c, raw_routes, &schedules, &groups);
    let decoded = std::mem::take(&mut c.announcements).into_iter().filter_map(|(path, audio)| Some((path, audio.ok()?)));
    let announcements = Announcements(decoded.collect());
    Some(Dialplan { routes, groups, schedules, announcements })
}

fn schedules(c: &mut Checker<'_>, raw: Vec<(usize, Spanned<Schedule>)>) -> BTreeMap<String, CompiledSchedule> {
    let mut out = BTreeMap::new();
    for (file, s) in raw {
        let at = loc(file, &s);
        let s = s.into_inner();
        if out.contains_key(&s.name) {
            c.fail(&at, format!("schedule {:?} is defined twice", s.name), "give each [[schedule]] its own name");
            continue;
        }
        match s.compile() {
            Ok(compiled) => {
                out.insert(s.name.clone(), compiled);
            }
            Err(e) => {
                let at = narrow(c, &at, offending_value(&e));
                c.fail(&at, e.to_string(), "fix the schedule (see dialplans/README.md, Schedules)");
            }
        }
    }
    out
}

/// The value a schedule error is about, to point at it rather than at the `[[schedule]]` header.
fn offending_value(e: &ScheduleError) -> Option<&str> {
    match e {
        ScheduleError::EmptyName => None,
        ScheduleError::UnknownTimezone { timezone, .. } => Some(timezone),
        ScheduleError::BadTime { value, .. } | ScheduleError::BadDate { schedule: _, value } => Some(value),
        ScheduleError::EmptyRange { start, .. } | ScheduleError::NoDays { start, .. } => Some(start),
        ScheduleError::HolidayReversed { until, .. } | ScheduleError::HolidayTooLong { until, .. } => Some(until),
        ScheduleError::DuplicateHolidayDate { date, .. } => Some(date),
    }
}

/// The first `"value"` within `at`, or `at` itself.
fn narrow(c: &Checker<'_>, at: &Loc, value: Option<&str>) -> Loc {
    let text = &c.sources[at.file].text;
    let found = value.and_then(|v| {
        let quoted = format!("\"{v}\"");
        text.get(at.span.clone())?.find(&quoted).map(|i| at.span.start + i)
    });
    match found {
        Some(start) => Loc { file: at.file, span: start..start + 1 },
        None => at.clone(),
    }
}

fn groups(c: &mut Checker<'_>, raw: Vec<(usize, RawGroup)>, schedules: &BTreeMap<String, CompiledSchedule>) -> BTreeMap<GroupName, PlanGroup> {
    let mut drafts: BTreeMap<GroupName, GroupDraft> = BTreeMap::new();
    for (file, g) in raw {
        let at = loc(file, &g.name);
        let name = GroupName::new(g.name.get_ref().trim());
        if name.as_str().is_empty() {
            c.fail(&at, "a group needs a name", "set name = \"sales\"");
            continue;
        }
        if drafts.contains_key(&name) {
            c.fail(&at, format!("group {:?} is defined twice", name.as_str()), "give each [[group]] its own name");
            continue;
        }
        let strategy = match g.strategy.as_ref().map(|s| (s.get_ref().as_str(), loc(file, s))) {
            None | Some(("simultaneous", _)) => Strategy::Simultaneous,
            Some(("sequential", _)) => Strategy::Sequential,
            Some(("round_robin", _)) => Strategy::RoundRobin,
            Some(("longest_idle", _)) => Strategy::LongestIdle,
            Some(("random", _)) => Strategy::Random,
            Some((other, at)) => {
                c.fail(&at, format!("unknown strategy {other:?}"), "use simultaneous, sequential, round_robin, longest_idle or random");
                Strategy::Simultaneous
            }
        };
        let default_ring = match &g.ring_for {
            Some(r) => seconds(c, &loc(file, r), "ring_for", *r.get_ref()),
            None => Duration::from_secs(DEFAULT_RING_FOR),
        };
        let timeout = g.timeout.as_ref().map(|t| seconds(c, &loc(file, t), "timeout", *t.get_ref()));
        if g.members.get_ref().is_empty() {
            c.fail(&loc(file, &g.members), format!("group {:?} has no members", name.as_str()), "list at least one member: members = [\"1001\"]");
        }
        let mut lines: Vec<MemberLine> = Vec::new();
        for m in g.members.into_inner() {
            let at = loc(file, &m);
            let (target, ring_for, start_after, schedule) = match m.into_inner() {
                RawMember::Target(t) => (t, None, None, None),
                RawMember::Detailed(t) => (t.target, t.ring_for, t.start_after, t.schedule),
            };
            let ring_for = ring_for.map_or(default_ring, |s| seconds(c, &at, "ring_for", s));
            let start_after = start_after.map_or(Duration::ZERO, |s| seconds_or_zero(c, &at, "start_after", s));
            let Some(target) = member_target(c, &at, &target) else { continue };
            if lines.iter().any(|l| l.member.target == target) {
                c.fail(&at, format!("member {} is listed twice in group {:?}", target, name.as_str()), "list each member once");
            }
            let schedule = schedule.map(|s| s.trim().to_owned());
            if let Some(s) = schedule.as_deref().filter(|s| !schedules.contains_key(*s)) {
                c.fail(
                    &value_of_key(c, &at, "schedule"),
                    format!("group {:?}: member {} names schedule {s:?}, which is not defined (or did not compile)", name.as_str(), target),
                    "define it with [[schedule]] or fix the name",
                );
            }
            lines.push(MemberLine { member: Member { target, ring_for, start_after }, at, schedule });
        }
        let group = RingGroup {
            name: name.clone(),
            strategy,
            // Both settled once nested groups are flattened.
            members: Vec::new(),
            ring_timeout: Duration::ZERO,
            skip_busy: g.skip_busy,
            allow_call_waiting: g.call_waiting,
        };
        drafts.insert(name, GroupDraft { group, lines, timeout });
    }
    flatten::plan_groups(c, drafts)
}

/// Where the value of `key = ...` starts within `at`, or `at` itself. A member table sits in an
/// untagged enum, where values cannot carry their own spans, so its keys are found in the text.
fn value_of_key(c: &Checker<'_>, at: &Loc, key: &str) -> Loc {
    let Some(text) = c.sources[at.file].text.get(at.span.clone()) else { return at.clone() };
    let mut from = 0;
    while let Some(i) = text[from..].find(key) {
        let start = from + i;
        from = start + key.len();
        let whole_word = !text[..start].ends_with(|ch: char| ch.is_alphanumeric() || ch == '_');
        if let Some(value) = text[from..].trim_start().strip_prefix('=').filter(|_| whole_word) {
            let offset = at.span.start + text.len() - value.trim_start().len();
            return Loc { file: at.file, span: offset..offset + 1 };
        }
    }
    at.clone()
}

fn seconds(c: &mut Checker<'_>, at: &Loc, key: &str, value: u64) -> Duration {
    if value == 0 || value > MAX_MEMBER_SECONDS {
        c.fail(at, format!("{key} = {value}"), format!("give seconds between 1 and {MAX_MEMBER_SECONDS}"));
    }
    Duration::from_secs(value)
}

fn seconds_or_zero(c: &mut Checker<'_>, at: &Loc, key: &str, value: u64) -> Duration {
    if value > MAX_MEMBER_SECONDS {
        c.fail(at, format!("{key} = {value}"), format!("give seconds between 0 and {MAX_MEMBER_SECONDS}"));
    }
    Duration::from_secs(value)
}

fn member_target(c: &mut Checker<'_>, at: &Loc, text: &str) -> Option<MemberTarget> {
    if let Some(group) = text.strip_prefix("group:") {
        if group.trim().is_empty() {
            c.fail(at, format!("member {text:?} names no group"), "write group:<name>, e.g. group:sales");
            return None;
        }
        return Some(MemberTarget::Group(GroupName::new(group.trim())));
    }
    let target = match text.parse::<DialTarget>() {
        Ok(t) => t,
        Err(e) => {
            c.fail(at, format!("member {e}"), "write a user (1001), a trunk extension (2001@pbx) or group:<name>");
            return None;
        }
    };
    if let Some(settings) = c.options.settings {
        match &target {
            DialTarget::User(u) if !settings.sip.users.iter().any(|s| s.name == u.as_str()) => {
                c.fail(at, format!("member {text:?}: no [[sip.users]] is named {u}"), "add the user to the settings or fix the name (a trunk extension is 2001@pbx)");
            }
            DialTarget::Trunk { trunk, .. } if !settings.sip.trunks.iter().any(|s| s.name == trunk.as_str()) => {
                c.fail(at, format!("member {text:?}: no [[sip.trunks]] is named {trunk}"), "add the trunk to the settings or fix the name");
            }
            _ => {}
        }
    }
    Some(target.into())
}

struct RouteDraft {
    at: Loc,
    matcher: Match,
}

fn routes(
    c: &mut Checker<'_>,
    raw: Vec<(usize, RawRoute)>,
    schedules: &BTreeMap<String, CompiledSchedule>,
    groups: &BTreeMap<GroupName, PlanGroup>,
) -> Vec<Route> {
    let mut out = Vec::new();
    let mut seen: Vec<RouteDraft> = Vec::new();
    let mut names = HashSet::new();
    for (file, r) in raw {
        let at = loc(file, &r.name);
        let name = r.name.get_ref().trim().to_owned();
        if name.is_empty() {
            c.fail(&at, "a route needs a name", "set name = \"sales\"");
        } else if !names.insert(name.clone()) {
            c.fail(&at, format!("route {name:?} is defined twice"), "give each [[route]] its own name");
        }
        let matcher = matcher(c, file, &name, r.matcher.unwrap_or_default(), schedules);
        if let Some(earlier) = seen.iter().find(|e| covers(&e.matcher, &matcher)) {
            let source = &c.sources[earlier.at.file];
            let (line, _) = line_column(&source.text, earlier.at.span.start);
            c.fail(
                &at,
                format!("route {name:?} can never match: every call it matches is taken by the route at {}:{line} first", source.name),
                "move this route above that one, or narrow that route's match",
            );
        }
        if r.step.is_empty() {
            c.fail(&at, format!("route {name:?} has no steps"), "add [[route.step]] tables, e.g. ring = \"sales\"");
        }
        let steps: Vec<(Loc, Option<Step>)> = r
            .step
            .into_iter()
            .map(|s| {
                let at = loc(file, &s);
                let step = step(c, file, &at, s.into_inner(), groups);
                (at, step)
            })
            .collect();
        reachability(c, &name, &steps);
        let steps: Option<Vec<Step>> = steps.into_iter().map(|(_, s)| s).collect();
        let steps = steps.unwrap_or_default();
        let max_ring = answer_window(c, &at, &name, &steps, groups);
        seen.push(RouteDraft { at, matcher: matcher.clone() });
        out.push(Route { name, file: c.sources[file].name.clone(), matcher, steps, max_ring });
    }
    out
}

fn matcher(c: &mut Checker<'_>, file: usize, route: &str, m: RawMatch, schedules: &BTreeMap<String, CompiledSchedule>) -> Match {
    let mut out = Match::default();
    if let Some(n) = &m.number {
        let at = loc(file, n);
        let text = n.get_ref().trim();
        let number = digits(text);
        if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit()) {
            c.fail(&at, format!("route {route:?}: number {text:?} is not a phone number"), "write the business number (+4930123456) or its phone_number_id");
        } else if let Some(settings) = c.options.settings {
            let known = settings.whatsapp.numbers.iter().any(|k| digits(&k.display_number) == number || k.phone_number_id == number);
            if !known {
                c.fail(&at, format!("route {route:?} can never match: no [[whatsapp.numbers]] has number {text:?}"), "use a configured display_number or phone_number_id");
            }
        }
        out.number = Some(number);
    }
    if let Some(p) = &m.caller_prefix {
        let at = loc(file, p);
        if p.get_ref().is_empty() {
            c.fail(&at, format!("route {route:?} can never match: caller_prefix is an empty list"), "list prefixes (caller_prefix = [\"+49\"]) or remove the key to match every caller");
        }
        for prefix in p.get_ref() {
            let d = digits(prefix);
            if d.is_empty() || !d.chars().all(|c| c.is_ascii_digit()) {
                c.fail(&at, format!("route {route:?}: caller prefix {prefix:?} is not digits"), "write a country or number prefix such as \"+49\" or \"+4930\"");
            }
            out.caller_prefixes.push(d);
        }
    }
    match (&m.payload, &m.payload_prefix) {
        (Some(_), Some(p)) => c.fail(&loc(file, p), format!("route {route:?} has both payload and payload_prefix"), "keep one of them"),
        (Some(p), None) => out.payload = Some(Payload::Exact(p.get_ref().clone())),
        (None, Some(p)) => out.payload = Some(Payload::Prefix(p.get_ref().clone())),
        (None, None) => {}
    }
    if let Some(s) = &m.schedule {
        let name = s.get_ref().trim();
        if !schedules.contains_key(name) {
            c.fail(&loc(file, s), format!("route {route:?} names schedule {name:?}, which is not defined (or did not compile)"), "define it with [[schedule]] or fix the name");
        }
        out.schedule = Some(ScheduleMatch { name: name.to_owned(), out_of_hours: m.out_of_hours.as_ref().is_some_and(|o| *o.get_ref()) });
    } else if let Some(o) = m.out_of_hours.as_ref().filter(|o| *o.get_ref()) {
        c.fail(&loc(file, o), format!("route {route:?}: out_of_hours without a schedule"), "add schedule = \"<name>\" to the match");
    }
    out
}

/// Whether every call `b` matches is matched by `a` (so `b`, after `a`, never matches).
fn covers(a: &Match, b: &Match) -> bool {
    let number = a.number.is_none() || a.number == b.number;
    let callers = a.caller_prefixes.is_empty()
        || (!b.caller_prefixes.is_empty() && b.caller_prefixes.iter().all(|p| a.caller_prefixes.iter().any(|q| p.starts_with(q.as_str()))));
    let payload = match (&a.payload, &b.payload) {
        (None, _) => true,
        (Some(Payload::Exact(x)), Some(Payload::Exact(y))) => x == y,
        (Some(Payload::Prefix(x)), Some(Payload::Exact(y) | Payload::Prefix(y))) => y.starts_with(x.as_str()),
        _ => false,
    };
    let schedule = a.schedule.is_none() || a.schedule == b.schedule;
    number && callers && payload && schedule
}

fn step(c: &mut Checker<'_>, file: usize, at: &Loc, s: RawStep, groups: &BTreeMap<GroupName, PlanGroup>) -> Option<Step> {
    let kinds = [s.ring.is_some(), s.announce.is_some(), s.callback.is_some(), s.reject.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        c.fail(at, "a step needs exactly one of ring, announce, callback, reject", "split it into one step per action");
        return None;
    }
    let ring_keys = [&s.on_answer, &s.on_no_answer, &s.on_busy, &s.on_reject, &s.on_error, &s.otherwise];
    if s.ring.is_none() {
        if let Some(k) = ring_keys.iter().find_map(|k| k.as_ref()) {
            c.fail(&loc(file, k), "on_* and otherwise belong to ring steps", "use then = \"...\" on an announce step, or remove it");
            return None;
        }
    }
    if let Some(g) = &s.ring {
        if let Some(t) = &s.then {
            c.fail(&loc(file, t), "a ring step has on_* branches, not then", "write on_no_answer, on_busy, on_reject, on_error (or otherwise)");
            return None;
        }
        let group = group_ref(c, &loc(file, g), g.get_ref(), groups)?;
        if let Some(a) = &s.on_answer {
            if a.get_ref() != "end" {
                c.fail(&loc(file, a), format!("on_answer = {:?}", a.get_ref()), "an answered call is connected; on_answer can only be \"end\" (the default)");
            }
        }
        let otherwise = match &s.otherwise {
            Some(o) => Some(action(c, &loc(file, o), o.get_ref(), groups)?),
            None => None,
        };
        let raw = [("on_no_answer", &s.on_no_answer), ("on_busy", &s.on_busy), ("on_reject", &s.on_reject), ("on_error", &s.on_error)];
        let missing: Vec<&str> = raw.iter().filter(|(_, r)| r.is_none()).map(|(k, _)| *k).collect();
        if otherwise.is_none() && !missing.is_empty() {
            c.fail(
                at,
                format!("ring step for {:?} does not say what happens {}", group.as_str(), missing.join(", ")),
                format!("add {} = \"next\" (or end, reject, callback, announce:<file>, ring:<group>), or otherwise = \"...\" for every unset branch", missing[0]),
            );
            return None;
        }
        let mut branch = |raw: &Option<Spanned<String>>| -> Option<Action> {
            match (raw, &otherwise) {
                (Some(r), _) => action(c, &loc(file, r), r.get_ref(), groups),
                (None, o) => o.clone(),
            }
        };
        let on_no_answer = branch(&s.on_no_answer);
        let on_busy = branch(&s.on_busy);
        let on_reject = branch(&s.on_reject);
        let on_error = branch(&s.on_error);
        return Some(Step::Ring {
            group: group.clone(),
            branches: Branches { on_no_answer: on_no_answer?, on_busy: on_busy?, on_reject: on_reject?, on_error: on_error? },
        });
    }
    if let Some(f) = &s.announce {
        let file_path = announcement(c, &loc(file, f), f.get_ref())?;
        let then = match &s.then {
            Some(t) => action(c, &loc(file, t), t.get_ref(), groups)?,
            None => {
                c.fail(at, "an announce step does not say what follows", "add then = \"end\" (or next, callback, reject)");
                return None;
            }
        };
        return Some(Step::Announce { file: file_path, then });
    }
    if let Some(t) = &s.then {
        c.fail(&loc(file, t), "callback and reject steps end the call; then has nothing to follow", "remove then");
        return None;
    }
    let flag = s.callback.as_ref().or(s.reject.as_ref())?;
    if !flag.get_ref() {
        c.fail(&loc(file, flag), "a step set to false does nothing", "remove the step, or set it to true");
        return None;
    }
    Some(if s.callback.is_some() { Step::Callback } else { Step::Reject })
}

fn group_ref(c: &mut Checker<'_>, at: &Loc, name: &str, groups: &BTreeMap<GroupName, PlanGroup>) -> Option<GroupName> {
    let name = GroupName::new(name.trim());
    if groups.contains_key(&name) {
        Some(name)
    } else {
        c.fail(at, format!("group {:?} is not defined", name.as_str()), "define it with [[group]] or fix the name");
        None
    }
}

fn announcement(c: &mut Checker<'_>, at: &Loc, name: &str) -> Option<PathBuf> {
    let rel = Path::new(name);
    let inside = rel.components().all(|p| matches!(p, std::path::Component::Normal(_)));
    if name.is_empty() || !inside {
        c.fail(at, format!("announcement {name:?} is not a path inside the dialplan folder"), "give a WAV file relative to the dialplan folder, e.g. sounds/closed.wav");
        return None;
    }
    let path = c.dir.join(rel);
    if !path.is_file() {
        c.fail(at, format!("announcement {} does not exist", path.display()), "add the WAV file or fix the name (relative to the dialplan folder)");
        return None;
    }
    let decoded = c.announcements.entry(path.clone()).or_insert_with(|| announce::decode(&path));
    if let Err(e) = decoded.clone() {
        c.fail(at, format!("announcement {} {e}", path.display()), e.fix());
        return None;
    }
    Some(path)
}

fn action(c: &mut Checker<'_>, at: &Loc, text: &str, groups: &BTreeMap<GroupName, PlanGroup>) -> Option<Action> {
    match text.trim() {
        "next" => Some(Action::Next),
        "end" => Some(Action::End),
        "reject" => Some(Action::Reject),
        "callback" => Some(Action::Callback),
        other => {
            if let Some(file) = other.strip_prefix("announce:") {
                announcement(c, at, file.trim()).map(Action::Announce)
            } else if let Some(group) = other.strip_prefix("ring:") {
                group_ref(c, at, group, groups).map(Action::Ring)
            } else {
                c.fail(at, format!("unknown action {other:?}"), "use next, end, reject, callback, announce:<file.wav> or ring:<group>");
                None
            }
        }
    }
}

/// Step 1 always runs; a later step runs only when the one before it can say `next`. A `next`
/// out of the last step has nowhere to go.
fn reachability(c: &mut Checker<'_>, route: &str, steps: &[(Loc, Option<Step>)]) {
    let says_next = |s: &Option<Step>| match s {
        Some(Step::Ring { branches, .. }) => branches.failures().iter().any(|(_, a)| **a == Action::Next),
        Some(Step::Announce { then, .. }) => *then == Action::Next,
        Some(Step::Callback | Step::Reject) => false,
        // Its own problem is reported; do not pile more on.
        None => true,
    };
    let mut reachable = true;
    for (i, (at, step)) in steps.iter().enumerate() {
        if !reachable {
            c.fail(at, format!("route {route:?}: step {} can never run", i + 1), "let an earlier step go on with \"next\", or remove this step");
        }
        let next = says_next(step);
        if next && step.is_some() && i + 1 == steps.len() {
            c.fail(at, format!("route {route:?}: the last step goes on to \"next\", but there is none"), "say end, reject, callback or announce:<file> instead (no implicit fall-through)");
        }
        reachable = next;
    }
}

/// The longest ring before an answer; over the window, a problem naming the steps that add up.
fn answer_window(c: &mut Checker<'_>, at: &Loc, route: &str, steps: &[Step], groups: &BTreeMap<GroupName, PlanGroup>) -> Duration {
    let group_time = |g: &GroupName| groups.get(g).map_or(Duration::ZERO, |p| p.max_ring);
    // worst[i]: the longest ring from the start of step i on, and what adds up to it.
    let mut worst: Vec<(Duration, Vec<String>)> = vec![(Duration::ZERO, Vec::new()); steps.len() + 1];
    for (i, step) in steps.iter().enumerate().rev() {
        let Step::Ring { group, branches } = step else { continue };
        let own = group_time(group);
        let mut after = (Duration::ZERO, Vec::new());
        for (key, action) in branches.failures() {
            let candidate = match action {
                Action::Next => worst[i + 1].clone(),
                Action::Ring(g) => (group_time(g), vec![format!("{key} ring:{g} {} s", group_time(g).as_secs())]),
                _ => (Duration::ZERO, Vec::new()),
            };
            if candidate.0 > after.0 {
                after = candidate;
            }
        }
        let mut parts = vec![format!("step {} ring {group} {} s", i + 1, own.as_secs())];
        parts.extend(after.1);
        worst[i] = (own.saturating_add(after.0), parts);
    }
    let (total, parts) = worst.swap_remove(0);
    let window = c.options.answer_window;
    if total > window {
        c.fail(
            at,
            format!("route {route:?} can ring for {} s before an answer ({}), over the {} s answer window", total.as_secs(), parts.join(" + "), window.as_secs()),
            "shorten ring_for/start_after or set a group timeout, end earlier, or raise whatsapp.answer_window_seconds (at most 60)",
        );
    }
    total
}
