//! Dialplan files: which ring group answers which WhatsApp call, when, and what happens when
//! nobody does (routing-lessons.md §3.2). Declarative TOML in `dialplans/`, every `*.toml` in the
//! folder merged into one plan; the format is described in `dialplans/README.md` and
//! `dialplans/schema.json`.
//!
//! [`load_dir`] reads and checks a folder once and gives an immutable [`Dialplan`], or every
//! [`PlanProblem`] found, each with file, line, column and the fix. [`Dialplan::route_for`] is
//! pure: the call's facts and the instant are passed in.
//!
//! Rules this module settles:
//! - **No implicit fall-through.** A ring step names what happens on each outcome. The one
//!   implicit branch is `on_answer = "end"` (the call is connected; when it ends, the route
//!   ends), and the only value `on_answer` accepts. `otherwise` fills every failure branch that
//!   is not written, so "try the next step whatever went wrong" is one explicit line.
//! - **Announcements answer the call.** Meta sends no early media, so whatsip must accept the
//!   WhatsApp call to play a file; an announcement therefore ends the answer window.
//! - **Nested groups are shorthand.** `group:x` in a member list stands for x's members, listed
//!   in its place; they ring by the outer group's strategy, offset and capped by the `group:x`
//!   line ([`Dialplan::ring_group`]). The plan keeps only flattened groups, so what is checked is
//!   what runs.
//! - **Answer window.** The longest a caller can ring before an answer is the worst path through
//!   a route's ring steps, every failure assumed to come at the end of its group's longest ring
//!   ([`ring::max_ring_time`] of the flattened group).
//! - **Member hours.** A member line may name a schedule; the member rings only while every
//!   schedule on its path is open ([`Dialplan::in_hours`]). The answer window still counts it:
//!   the worst case is the one where it is in hours.
//! - **Announcements are decoded at load** ([`Dialplan::announcement`]): a file that cannot be
//!   played is a `check` problem at the line naming it, not a call that goes silent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;
use toml::Spanned;

use crate::config::Settings;
use crate::routing::ring::{self, GroupName, Member, MemberTarget, RingGroup, Strategy};
use crate::routing::schedule::{CompiledSchedule, Schedule, ScheduleError};
use crate::sip::leg::DialTarget;

/// Meta's answer window when the settings do not say (whatsapp-calling-api.md §8).
pub const DEFAULT_ANSWER_WINDOW: Duration = Duration::from_secs(30);
/// The longest answer window accepted: Meta ends unanswered calls by then.
pub const MAX_ANSWER_WINDOW: Duration = Duration::from_secs(60);
/// A member's ring time when neither the member nor its group says.
const DEFAULT_RING_FOR: u64 = 20;
/// Longest ring time or delay accepted for one member; more is a typo (minutes for seconds).
const MAX_MEMBER_SECONDS: u64 = 600;

/// One thing wrong with a dialplan, where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {what} — {fix}")]
pub struct PlanProblem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub what: String,
    pub fix: String,
}

/// What [`load_dir`] checks against.
#[derive(Debug, Clone)]
pub struct CheckOptions<'a> {
    /// How long a caller may ring before an answer.
    pub answer_window: Duration,
    /// When given, users, trunks and business numbers must exist in it.
    pub settings: Option<&'a Settings>,
}

impl Default for CheckOptions<'_> {
    fn default() -> Self {
        CheckOptions { answer_window: DEFAULT_ANSWER_WINDOW, settings: None }
    }
}

/// A checked plan: routes in the order written (files in name order), groups and schedules.
#[derive(Debug, Clone)]
pub struct Dialplan {
    routes: Vec<Route>,
    groups: BTreeMap<GroupName, PlanGroup>,
    schedules: BTreeMap<String, CompiledSchedule>,
    announcements: Announcements,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// The file it came from, for logs.
    pub file: String,
    pub matcher: Match,
    pub steps: Vec<Step>,
    /// The longest a caller can ring on this route before an answer.
    pub max_ring: Duration,
}

/// Every condition given must hold; none given matches every call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// A business display number (digits, `+` ignored) or Meta's phone_number_id.
    pub number: Option<String>,
    /// The caller's number starts with one of these (digits, `+` ignored).
    pub caller_prefixes: Vec<String>,
    /// The call button's or deep link's payload.
    pub payload: Option<Payload>,
    pub schedule: Option<ScheduleMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Exact(String),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleMatch {
    pub name: String,
    /// Match when the schedule is closed rather than open.
    pub out_of_hours: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Ring { group: GroupName, branches: Branches },
    /// Answer the call, play the file, then `then`.
    Announce { file: PathBuf, then: Action },
    /// Mark the caller for a callback and end the call.
    Callback,
    Reject,
}

/// What follows each way a ring step can end. After an answer the call is connected; the route
/// ends with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branches {
    pub on_no_answer: Action,
    pub on_busy: Action,
    pub on_reject: Action,
    pub on_error: Action,
}

impl Branches {
    fn failures(&self) -> [(&'static str, &Action); 4] {
        [
            ("on_no_answer", &self.on_no_answer),
            ("on_busy", &self.on_busy),
            ("on_reject", &self.on_reject),
            ("on_error", &self.on_error),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Go on to the following step.
    Next,
    /// Hang up.
    End,
    Reject,
    /// Mark for callback and end the call.
    Callback,
    /// Answer, play, hang up.
    Announce(PathBuf),
    /// Ring this group as a last try: answered connects, anything else ends the call.
    Ring(GroupName),
}

/// A ring group as the engine runs it (nested groups flattened, see [`Dialplan::ring_group`]),
/// with its worst-case ring time.
#[derive(Debug, Clone)]
pub struct PlanGroup {
    /// No [`MemberTarget::Group`] is left in it.
    pub group: RingGroup,
    pub max_ring: Duration,
    /// The schedules on each scheduled member's path, outermost line first; all must be open.
    /// Targets are unique after flattening, so the target is the key.
    hours: HashMap<MemberTarget, Vec<String>>,
}

/// Decoded announcement audio, by the path steps and actions store. Debug shows lengths: a
/// plan printed in a log must not dump minutes of samples.
#[derive(Clone, Default)]
struct Announcements(HashMap<PathBuf, Arc<[i16]>>);

impl fmt::Debug for Announcements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(path, audio)| (path, audio.len()))).finish()
    }
}

/// What is known about a call when it is routed.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallFacts<'a> {
    /// The business number called, as people dial it.
    pub business_number: &'a str,
    /// Meta's id of that number.
    pub phone_number_id: &'a str,
    /// The caller's number (`wa_id`).
    pub caller: &'a str,
    pub cta_payload: Option<&'a str>,
    pub deeplink_payload: Option<&'a str>,
}

impl Dialplan {
    /// The first route whose every condition holds for this call at `at`.
    pub fn route_for(&self, call: &CallFacts<'_>, at: Timestamp) -> Option<&Route> {
        self.routes.iter().find(|r| self.matches(&r.matcher, call, at))
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn group(&self, name: &GroupName) -> Option<&PlanGroup> {
        self.groups.get(name)
    }

    pub fn schedule(&self, name: &str) -> Option<&CompiledSchedule> {
        self.schedules.get(name)
    }

    /// `name` as the engine runs it. Every `group:x` member is replaced, in place, by x's members
    /// (themselves flattened) in x's order; each starts the `group:x` line's `start_after` later
    /// than x says and rings for at most that line's `ring_for`. They ring by this group's
    /// strategy, timeout and busy rules: x's own apply only when x is rung directly. A target
    /// reached twice keeps its first place. No [`MemberTarget::Group`] is left.
    pub fn ring_group(&self, name: &GroupName) -> Option<RingGroup> {
        self.groups.get(name).map(|g| g.group.clone())
    }

    /// Whether `target`, as a member of the flattened `group`, is inside its hours at `at`:
    /// every schedule named on the member lines leading to it (the `group:x` line's and its own)
    /// is open; true when none is named. False when `target` is not a member of `group`:
    /// nothing puts it in hours there.
    pub fn in_hours(&self, group: &GroupName, target: &MemberTarget, at: Timestamp) -> bool {
        let Some(g) = self.groups.get(group) else { return false };
        if !g.group.members.iter().any(|m| m.target == *target) {
            return false;
        }
        // Validation guarantees every named schedule compiled; a missing one counts as closed.
        g.hours.get(target).is_none_or(|names| names.iter().all(|n| self.schedules.get(n).is_some_and(|s| s.is_open(at))))
    }

    /// The audio of an announcement the plan names, decoded when it loaded: 8 kHz mono. `file`
    /// is the path as stored in [`Step::Announce`] or [`Action::Announce`].
    pub fn announcement(&self, file: &Path) -> Option<Arc<[i16]>> {
        self.announcements.0.get(file).cloned()
    }

    fn matches(&self, m: &Match, call: &CallFacts<'_>, at: Timestamp) -> bool {
        if let Some(number) = &m.number {
            if *number != digits(call.business_number) && number != call.phone_number_id {
                return false;
            }
        }
        if !m.caller_prefixes.is_empty() {
            let caller = digits(call.caller);
            if !m.caller_prefixes.iter().any(|p| caller.starts_with(p.as_str())) {
                return false;
            }
        }
        if let Some(payload) = &m.payload {
            let hit = |p: &str| match payload {
                Payload::Exact(want) => p == want,
                Payload::Prefix(want) => p.starts_with(want.as_str()),
            };
            if !call.cta_payload.is_some_and(hit) && !call.deeplink_payload.is_some_and(hit) {
                return false;
            }
        }
        if let Some(s) = &m.schedule {
            // Validation guarantees every referenced schedule compiled.
            let open = self.schedules.get(&s.name).is_some_and(|c| c.is_open(at));
            if open == s.out_of_hours {
                return false;
            }
        }
        true
    }
}

/// Loads every `*.toml` in `dir` (in name order) and checks the plan.
pub fn load_dir(dir: &Path, options: &CheckOptions<'_>) -> Result<Dialplan, Vec<PlanProblem>> {
    let shown = dir.display().to_string();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => return Err(vec![whole_file_problem(&shown, format!("cannot read the dialplan folder: {e}"), "give the folder holding the *.toml dialplan files")]),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(vec![whole_file_problem(&shown, "no *.toml dialplan file here".into(), "add a dialplan file (see dialplans/README.md)")]);
    }
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => sources.push(Source { name: path.display().to_string(), text }),
            Err(e) => problems.push(whole_file_problem(&path.display().to_string(), format!("cannot read: {e}"), "make the file readable UTF-8")),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    check_sources(dir, &sources, options)
}

/// `whatsip dialplan check`: prints every problem (`file:line:col: what — fix`) to stderr and
/// returns 2, or a line per route to stdout and returns 0.
pub fn check_command(dir: &Path, settings: Option<&Settings>) -> u8 {
    let answer_window = settings.map_or(DEFAULT_ANSWER_WINDOW, Settings::answer_window);
    match load_dir(dir, &CheckOptions { answer_window, settings }) {
        Ok(plan) => {
            for line in plan.summary() {
                println!("{line}");
            }
            0
        }
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem{} in {}", problems.len(), if problems.len() == 1 { "" } else { "s" }, dir.display());
            2
        }
    }
}

impl Dialplan {
    /// One line per route: where it came from, what rings, the longest ring before an answer.
    pub fn summary(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|r| {
                let rings: Vec<String> = r
                    .steps
                    .iter()
                    .filter_map(|s| match s {
                        Step::Ring { group, .. } => Some(group.to_string()),
                        _ => None,
                    })
                    .collect();
                let rings = if rings.is_empty() { "nothing".to_owned() } else { rings.join(", then ") };
                format!("route {} ({}): rings {rings}; at most {} s before an answer", r.name, r.file, r.max_ring.as_secs())
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The file format as written. Names and references are spanned so problems can point at them.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    schedule: Vec<Spanned<Schedule>>,
    #[serde(default)]
    group: Vec<RawGroup>,
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    name: Spanned<String>,
    #[serde(default)]
    strategy: Option<Spanned<String>>,
    /// Default ring time of the members, seconds.
    #[serde(default)]
    ring_for: Option<Spanned<u64>>,
    /// Cap on the whole group, seconds.
    #[serde(default)]
    timeout: Option<Spanned<u64>>,
    #[serde(default)]
    skip_busy: bool,
    #[serde(default)]
    call_waiting: bool,
    members: Spanned<Vec<Spanned<RawMember>>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawMember {
    Target(String),
    Detailed(RawMemberTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemberTable {
    target: String,
    #[serde(default)]
    ring_for: Option<u64>,
    #[serde(default)]
    start_after: Option<u64>,
    /// Rings only while this schedule is open.
    #[serde(default)]
    schedule: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Spanned<String>,
    #[serde(rename = "match", default)]
    matcher: Option<RawMatch>,
    #[serde(default)]
    step: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    number: Option<Spanned<String>>,
    caller_prefix: Option<Spanned<Vec<String>>>,
    payload: Option<Spanned<String>>,
    payload_prefix: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    out_of_hours: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    ring: Option<Spanned<String>>,
    announce: Option<Spanned<String>>,
    callback: Option<Spanned<bool>>,
    reject: Option<Spanned<bool>>,
    on_answer: Option<Spanned<String>>,
    on_no_answer: Option<Spanned<String>>,
    on_busy: Option<Spanned<String>>,
    on_reject: Option<Spanned<String>>,
    on_error: Option<Spanned<String>>,
    otherwise: Option<Spanned<String>>,
    then: Option<Spanned<String>>,
}

struct Source {
    name: String,
    text: String,
}

/// A place in one of the plan's files, turned into line and column at the end.
#[derive(Debug, Clone)]
struct Loc {
    file: usize,
    span: Range<usize>,
}

struct Checker<'a> {
    dir: &'a Path,
    sources: &'a [Source],
    options: &'a CheckOptions<'a>,
    problems: Vec<PlanProblem>,
    /// Each announcement file decoded once, however many places name it.
    announcements: HashMap<PathBuf, Result<Arc<[i16]>, announce::AnnouncementError>>,
}

impl Checker<'_> {
    fn fail(&mut self, at: &Loc, what: impl Into<String>, fix: impl Into<String>) {
        let source = &self.sources[at.file];
        let (line, column) = line_column(&source.text, at.span.start);
        self.problems.push(PlanProblem { file: source.name.clone(), line, column, what: what.into(), fix: fix.into() });
    }
}

fn whole_file_problem(file: &str, what: String, fix: &str) -> PlanProblem {
    PlanProblem { file: file.to_owned(), line: 1, column: 1, what, fix: fix.to_owned() }
}

fn loc<T>(file: usize, s: &Spanned<T>) -> Loc {
    Loc { file, span: s.span() }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A phone number's digits: `+`, spaces, dashes and dots dropped.
fn digits(number: &str) -> String {
    number.chars().filter(|c| !matches!(c, '+' | ' ' | '-' | '.')).collect()
}

fn check_sources(dir: &Path, sources: &[Source], options: &CheckOptions<'_>) -> Result<Dialplan, Vec<PlanProblem>> {
    let mut checker = Checker { dir, sources, options, problems: Vec::new(), announcements: HashMap::new() };
    if options.answer_window > MAX_ANSWER_WINDOW || options.answer_window.is_zero() {
        checker.problems.push(whole_file_problem(
            "settings",
            format!("answer window of {} s", options.answer_window.as_secs()),
            "set whatsapp.answer_window_seconds between 5 and 60",
        ));
    }
    let mut files = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        match toml::from_str::<RawFile>(&source.text) {
            Ok(f) => files.push((i, f)),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let what = e.message().trim().to_owned();
                checker.fail(&Loc { file: i, span }, what, "see dialplans/README.md for the format");
            }
        }
    }
    if !checker.problems.is_empty() {
        return Err(checker.problems);
    }
    let plan = compile::compile(&mut checker, files);
    if checker.problems.is_empty() {
        plan.ok_or_else(Vec::new)
    } else {
        Err(checker.problems)
    }
}

mod announce;
mod compile;
mod flatten;
pub mod implicit;

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Next => f.write_str("next"),
            Action::End => f.write_str("end"),
            Action::Reject => f.write_str("reject"),
            Action::Callback => f.write_str("callback"),
            Action::Announce(p) => write!(f, "announce:{}", p.display()),
            Action::Ring(g) => write!(f, "ring:{g}"),
        }
    }
}

#[cfg(test)]
mod tests;
