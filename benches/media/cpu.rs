//! CPU time of this process's threads by role, and its resident memory, from /proc.
//!
//! Threads are told apart by name: the gateway's runtime names its threads `gw-*`, the
//! feeders' `feed-*`; anything else (main thread, libraries' own threads) is "other".
//! `/proc/self/task/*/schedstat` gives on-CPU time in ns, finer than utime+stime's ticks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const GATEWAY: &str = "gw-";
pub const FEEDER: &str = "feed-";

/// /proc/stat and /proc/self/stat count in USER_HZ, 100 on every Linux we run on.
const USER_HZ: u64 = 100;

#[derive(Clone)]
pub struct Snapshot {
    at: Instant,
    /// tid -> (name, on-CPU ns)
    threads: HashMap<u32, (String, u64)>,
    /// Machine-wide busy and stolen time, and this process's, in USER_HZ ticks.
    machine_busy: u64,
    machine_steal: u64,
    own: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Split {
    pub wall: Duration,
    pub gateway: Duration,
    pub feeder: Duration,
    pub other: Duration,
    /// Other processes on the machine (noise), at USER_HZ resolution.
    pub elsewhere: Duration,
    /// Taken by the hypervisor from this VM.
    pub steal: Duration,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let at = Instant::now();
        let mut threads = HashMap::new();
        let dir = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
        for entry in dir.flatten() {
            let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let path = entry.path();
            let (Ok(comm), Ok(sched)) = (
                std::fs::read_to_string(path.join("comm")),
                std::fs::read_to_string(path.join("schedstat")),
            ) else {
                continue; // the thread ended meanwhile
            };
            let ns = sched
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            threads.insert(tid, (comm.trim().to_owned(), ns));
        }
        let (machine_busy, machine_steal) = machine_ticks();
        Snapshot {
            at,
            threads,
            machine_busy,
            machine_steal,
            own: own_ticks(),
        }
    }

    /// CPU used since `earlier`, by role. Threads born meanwhile count in full.
    pub fn since(&self, earlier: &Snapshot) -> Split {
        let ticks = |t: u64| Duration::from_millis(t * 1000 / USER_HZ);
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy);
        let own = self.own.saturating_sub(earlier.own);
        let mut split = Split {
            wall: self.at - earlier.at,
            elsewhere: ticks(busy.saturating_sub(own)),
            steal: ticks(self.machine_steal.saturating_sub(earlier.machine_steal)),
            ..Split::default()
        };
        for (tid, (name, ns)) in &self.threads {
            let before = earlier.threads.get(tid).map_or(0, |(_, b)| *b);
            let used = Duration::from_nanos(ns.saturating_sub(before));
            if name.starts_with(GATEWAY) {
                split.gateway += used;
            } else if name.starts_with(FEEDER) {
                split.feeder += used;
            } else {
                split.other += used;
            }
        }
        split
    }
}

impl Split {
    /// CPU as a percentage of one core.
    pub fn pct(used: Duration, wall: Duration) -> f64 {
        100.0 * used.as_secs_f64() / wall.as_secs_f64()
    }
}

/// Busy (user, nice, system, irq, softirq) and steal ticks of all CPUs.
fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

/// utime + stime of this process.
fn own_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let v: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    v.iter().sum()
}

/// Resident set size in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A multi-thread runtime whose threads are named `{prefix}{n}`.
pub fn runtime(prefix: &'static str, workers: usize) -> tokio::runtime::Runtime {
    let next = std::sync::atomic::AtomicUsize::new(0);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name_fn(move || {
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("{prefix}{n}")
        })
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Lowers the priority of this process's threads whose names start with `prefix` (Linux
/// nice is per thread). Returns how many were changed.
pub fn renice(prefix: &str, nice: i32) -> usize {
    let mut changed = 0;
    for entry in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        let tid = entry.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let status = std::process::Command::new("renice")
            .args(["-n", &nice.to_string(), "-p", &tid])
            .stdout(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            changed += 1;
        }
    }
    changed
}
