//! Nested groups, flattened once at load. `group:x` in a member list is shorthand for listing
//! x's members in its place: they ring by the outer group's strategy (x's strategy, timeout and
//! `skip_busy` apply only when x is rung directly), each starting the `group:x` line's
//! `start_after` later than x says, and for no longer than the line's `ring_for`, so the line
//! caps the time x gets. A target reached twice keeps its first place: one phone, one leg.
//!
//! The answer-window check measures the flattened group, the one the engine runs; measuring the
//! nested form instead (x as one member ringing for x's own longest time) would be wrong
//! whenever the strategies differ, e.g. a sequential group nesting a simultaneous one rings x's
//! members one after another.

use super::*;

/// A `[[group]]` as written, nested groups not yet replaced.
pub(super) struct GroupDraft {
    /// Everything but `members` and `ring_timeout`, which are settled here.
    pub(super) group: RingGroup,
    pub(super) lines: Vec<MemberLine>,
    /// The group's own `timeout`, if written.
    pub(super) timeout: Option<Duration>,
}

/// One entry of `members`, and where it is written for problems about it.
pub(super) struct MemberLine {
    pub(super) member: Member,
    pub(super) at: Loc,
    /// The line's `schedule` (checked to exist before this stage).
    pub(super) schedule: Option<String>,
}

/// A member of a flattened group and the schedules on the lines leading to it, outermost first.
#[derive(Debug, Clone)]
struct FlatMember {
    member: Member,
    schedules: Vec<String>,
}

/// Flattens every group, refusing names of undefined groups and nesting circles.
pub(super) fn plan_groups(c: &mut Checker<'_>, drafts: BTreeMap<GroupName, GroupDraft>) -> BTreeMap<GroupName, PlanGroup> {
    for draft in drafts.values() {
        for line in &draft.lines {
            if let MemberTarget::Group(inner) = &line.member.target {
                if !drafts.contains_key(inner) {
                    c.fail(&line.at, format!("group {:?} names group {:?}, which is not defined", draft.group.name.as_str(), inner.as_str()), "define it with [[group]] or fix the name");
                }
            }
        }
    }

    let mut flat: HashMap<GroupName, Vec<FlatMember>> = HashMap::new();
    let mut reported_cycles = HashSet::new();
    for name in drafts.keys() {
        flatten(c, &drafts, name, &mut Vec::new(), &mut flat, &mut reported_cycles);
    }

    drafts
        .into_iter()
        .map(|(name, draft)| {
            let members = flat.remove(&name).unwrap_or_default();
            let hours = members.iter().filter(|f| !f.schedules.is_empty()).map(|f| (f.member.target.clone(), f.schedules.clone())).collect();
            let mut group = RingGroup { members: members.into_iter().map(|f| f.member).collect(), ..draft.group };
            group.ring_timeout = draft.timeout.unwrap_or(Duration::MAX);
            let max_ring = ring::max_ring_time(&group);
            // Without a written timeout the members' own times end the run; the engine still
            // needs a deadline, and this one never cuts a member short.
            group.ring_timeout = draft.timeout.unwrap_or(max_ring);
            (name, PlanGroup { group, max_ring, hours })
        })
        .collect()
}

/// `name`'s members with nested groups replaced, memoised in `done`. A circle is reported once,
/// at the member line that closes it, and that line contributes nothing.
fn flatten(
    c: &mut Checker<'_>,
    drafts: &BTreeMap<GroupName, GroupDraft>,
    name: &GroupName,
    path: &mut Vec<GroupName>,
    done: &mut HashMap<GroupName, Vec<FlatMember>>,
    reported: &mut HashSet<Vec<GroupName>>,
) -> Vec<FlatMember> {
    if let Some(members) = done.get(name) {
        return members.clone();
    }
    // An undefined group is reported by the caller; it has no members to add.
    let Some(draft) = drafts.get(name) else { return Vec::new() };
    path.push(name.clone());
    let mut out: Vec<FlatMember> = Vec::new();
    for line in &draft.lines {
        let outer: Vec<String> = line.schedule.iter().cloned().collect();
        let MemberTarget::Group(inner) = &line.member.target else {
            push_first(&mut out, FlatMember { member: line.member.clone(), schedules: outer });
            continue;
        };
        if let Some(start) = path.iter().position(|p| p == inner) {
            let mut cycle: Vec<GroupName> = path[start..].to_vec();
            cycle.sort();
            if reported.insert(cycle) {
                let shown: Vec<&str> = path[start..].iter().map(GroupName::as_str).chain([inner.as_str()]).collect();
                c.fail(&line.at, format!("groups ring each other in a circle: {}", shown.join(" → ")), "remove one of these group: members");
            }
            continue;
        }
        for f in flatten(c, drafts, inner, path, done, reported) {
            let member = Member {
                target: f.member.target,
                ring_for: f.member.ring_for.min(line.member.ring_for),
                start_after: line.member.start_after.saturating_add(f.member.start_after),
            };
            let schedules = outer.iter().cloned().chain(f.schedules).collect();
            push_first(&mut out, FlatMember { member, schedules });
        }
    }
    path.pop();
    done.insert(name.clone(), out.clone());
    out
}

/// Adds `m` unless its target is already there: the first place a phone is reached wins.
fn push_first(out: &mut Vec<FlatMember>, m: FlatMember) {
    if !out.iter().any(|o| o.member.target == m.member.target) {
        out.push(m);
    }
}
