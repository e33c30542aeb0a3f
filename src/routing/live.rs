//! The plan the running gateway routes by, and its hot reload.
//!
//! New calls take [`LivePlan::current`] once, at the offer, and keep that `Arc` to the end, so a
//! reload never changes a call in progress. A reload (a file in the folder changed, SIGHUP, or
//! `POST /api/dialplan/reload`) checks the whole folder again; a valid plan replaces the old one
//! in one pointer swap, an invalid one is refused with every problem logged as
//! `file:line:col: what — fix` and the old plan stays.
//!
//! Changes are found by polling the folder's file names, sizes and modification times once a
//! second: a handful of small files, and unlike inotify it also sees edits on network and
//! container-mounted folders. An editor that writes a file in two steps may show the plan half
//! written for one poll; that edit is refused and the next poll, with the whole file, loads it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::dialplan::{implicit, load_dir, CheckOptions, Dialplan, PlanProblem};
use crate::config::Settings;
use crate::store::unix_ms;

const POLL: Duration = Duration::from_secs(1);

pub struct LivePlan {
    settings: Arc<Settings>,
    /// `None`: the numbers' own targets, nothing to reload.
    dir: Option<PathBuf>,
    current: RwLock<Arc<Dialplan>>,
    status: Mutex<PlanStatus>,
}

/// What `GET /api/dialplan` shows.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct PlanStatus {
    /// The folder, or empty when the numbers' targets route.
    pub dir: String,
    /// Unix milliseconds of the last successful load.
    pub loaded_at: u64,
    /// How many times a valid plan was loaded since start (1 after startup).
    pub loads: u64,
    /// One line per route of the running plan.
    pub routes: Vec<String>,
    /// The last refused edit, if it came after the last successful load.
    pub refused: Option<Refusal>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Refusal {
    pub at: u64,
    pub problems: Vec<String>,
}

/// Why a reload did not replace the plan.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("routing.dialplan_dir is not set: calls ring each number's target")]
    NoDialplan,
    #[error("{} problem(s); the running plan stays", .0.len())]
    Invalid(Vec<PlanProblem>),
}

impl LivePlan {
    /// The plan to start with: the folder's, checked against the settings, or the numbers'
    /// targets. A folder with problems stops startup, so the gateway never runs a plan no one
    /// checked.
    pub fn load(settings: Arc<Settings>) -> Result<Arc<LivePlan>, Vec<PlanProblem>> {
        let dir = (!settings.routing.dialplan_dir.is_empty()).then(|| PathBuf::from(&settings.routing.dialplan_dir));
        let plan = match &dir {
            Some(dir) => check(dir, &settings)?,
            None => implicit::from_targets(&settings),
        };
        let status = PlanStatus {
            dir: dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
            loaded_at: unix_ms(SystemTime::now()),
            loads: 1,
            routes: plan.summary(),
            refused: None,
        };
        Ok(Arc::new(LivePlan { settings, dir, current: RwLock::new(Arc::new(plan)), status: Mutex::new(status) }))
    }

    /// The plan for a new call.
    pub fn current(&self) -> Arc<Dialplan> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn status(&self) -> PlanStatus {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks the folder again and swaps the plan in if it is valid.
    pub fn reload(&self) -> Result<PlanStatus, ReloadError> {
        let Some(dir) = &self.dir else { return Err(ReloadError::NoDialplan) };
        let now = unix_ms(SystemTime::now());
        match check(dir, &self.settings) {
            Ok(plan) => {
                let routes = plan.summary();
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(plan);
                let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
                status.loaded_at = now;
                status.loads += 1;
                status.routes = routes;
                status.refused = None;
                tracing::info!(dir = %dir.display(), routes = status.routes.len(), "dialplan reloaded; new calls route by it");
                Ok(status.clone())
            }
            Err(problems) => {
                for p in &problems {
                    tracing::error!(problem = %p, "dialplan edit refused");
                }
                tracing::error!(dir = %dir.display(), count = problems.len(), "dialplan edit refused; calls keep routing by the running plan");
                let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
                status.refused = Some(Refusal { at: now, problems: problems.iter().map(ToString::to_string).collect() });
                Err(ReloadError::Invalid(problems))
            }
        }
    }

    /// Reloads when a file in the folder changes and on SIGHUP, until the runtime stops.
    /// Installing the SIGHUP handler also keeps the signal from killing the process.
    pub fn watch(self: &Arc<Self>, rt: &tokio::runtime::Handle) {
        let Some(dir) = self.dir.clone() else { return };
        let plan = self.clone();
        rt.spawn(async move {
            let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "no SIGHUP handler; the dialplan reloads on file changes only");
                    None
                }
            };
            let mut seen = fingerprint(&dir);
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let by_signal = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
                };
                let now = fingerprint(&dir);
                if !by_signal && now == seen {
                    continue;
                }
                seen = now;
                if by_signal {
                    tracing::info!("SIGHUP: reloading the dialplan");
                }
                let p = plan.clone();
                // Loading decodes announcement WAVs: keep it off the packet workers.
                let _ = tokio::task::spawn_blocking(move || p.reload()).await;
            }
        });
    }
}

fn check(dir: &Path, settings: &Settings) -> Result<Dialplan, Vec<PlanProblem>> {
    load_dir(dir, &CheckOptions { answer_window: settings.answer_window(), settings: Some(settings) })
}

/// Names, sizes and modification times of the folder's files and of those one folder down
/// (announcements live in `sounds/`).
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut out = Vec::new();
    collect(dir, true, &mut out);
    out.sort();
    out
}

fn collect(dir: &Path, descend: bool, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() && descend {
            collect(&e.path(), false, out);
        } else if meta.is_file() {
            out.push((e.path(), meta.len(), meta.modified().ok()));
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path) -> Arc<Settings> {
        let mut s = Settings::default();
        s.routing.dialplan_dir = dir.display().to_string();
        s.sip.users.push(crate::config::UserSettings { name: "1001".into(), password: "secret1001".into(), display_name: None });
        Arc::new(s)
    }

    const GOOD: &str = "[[group]]\nname = \"g\"\nmembers = [\"1001\"]\n\n[[route]]\nname = \"r\"\n\n[[route.step]]\nring = \"g\"\notherwise = \"end\"\n";

    #[test]
    fn a_broken_edit_is_refused_and_the_running_plan_stays() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan.toml");
        std::fs::write(&file, GOOD).unwrap();
        let live = LivePlan::load(settings(dir.path())).expect("valid plan");
        let before = live.current();
        assert_eq!(before.routes().len(), 1);

        std::fs::write(&file, GOOD.replace("ring = \"g\"", "ring = \"nosuch\"")).unwrap();
        let err = live.reload().unwrap_err();
        let ReloadError::Invalid(problems) = err else { panic!("{err}") };
        assert!(problems[0].to_string().contains("plan.toml:9:"), "{}", problems[0]);
        assert!(Arc::ptr_eq(&before, &live.current()), "the old plan stays");
        let status = live.status();
        assert_eq!(status.loads, 1);
        assert!(status.refused.as_ref().is_some_and(|r| r.problems[0].contains("nosuch")), "{status:?}");

        std::fs::write(&file, GOOD.replace("name = \"r\"", "name = \"renamed\"")).unwrap();
        let status = live.reload().expect("valid again");
        assert_eq!(status.loads, 2);
        assert!(status.refused.is_none());
        assert_eq!(live.current().routes()[0].name, "renamed");
        assert_eq!(before.routes()[0].name, "r", "a call holding the old plan keeps it");
    }

    #[test]
    fn a_broken_plan_stops_startup_and_no_folder_means_the_numbers_targets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plan.toml"), "[[route]]\nname = 3\n").unwrap();
        let problems = LivePlan::load(settings(dir.path())).err().expect("refused");
        assert!(problems[0].to_string().contains("plan.toml:2:"), "{}", problems[0]);

        let live = LivePlan::load(Arc::new(Settings::default())).expect("implicit plan");
        assert!(matches!(live.reload(), Err(ReloadError::NoDialplan)));
        assert_eq!(live.status().dir, "");
    }

    #[test]
    fn the_fingerprint_sees_edits_and_new_sounds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "x").unwrap();
        let first = fingerprint(dir.path());
        std::fs::write(dir.path().join("a.toml"), "xy").unwrap();
        let second = fingerprint(dir.path());
        assert_ne!(first, second);
        std::fs::create_dir(dir.path().join("sounds")).unwrap();
        std::fs::write(dir.path().join("sounds/x.wav"), "w").unwrap();
        assert_ne!(second, fingerprint(dir.path()));
    }
}
