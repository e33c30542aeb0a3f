//! Part 3: how many bridged calls run at real-time pace in one process.
//!
//! Each call count runs in a fresh child process (this bench re-run with
//! `MEDIA_BENCH_CHILD=<calls> <settings>`), so threads, sockets and allocator state of one
//! count never leak into the next. In the child:
//!
//! 1. N fake Meta peers (feeder runtime, `feed-*` threads) and N of our WebRtcLegs answering
//!    them (gateway runtime, `gw-*` threads), set up a few at a time until all are connected;
//! 2. N bridges (`spawn_bridge`, gateway runtime), each with a phone attached and accepted;
//! 3. feeders at real-time pace: every 20 ms each fake Meta sends one pre-encoded Opus packet
//!    (16 kHz speech) and each fake phone one µ-law frame (8 kHz speech); what comes back is
//!    only counted and time-stamped;
//! 4. a warm-up, then the measured window: CPU by role, far-end frame lateness, memory;
//! 5. hang-up; each bridge's `BridgeStats` gives its tick lateness.

mod child;

use std::collections::HashMap;
use std::time::Duration;

use whatsip::media::bridge::BridgeSettings;

pub use child::run as child;

const LATE_LIMIT_PCT: f64 = 0.1;
pub const CHILD_ENV: &str = "MEDIA_BENCH_CHILD";

pub struct Plan {
    pub counts: Vec<usize>,
    pub settings: Vec<(String, BridgeSettings)>,
    pub warmup: Duration,
    pub window: Duration,
    pub gw_threads: usize,
    pub feed_threads: usize,
    /// Nice value for the feeder threads (0: same priority as the gateway).
    pub feed_nice: i32,
    /// Also step the first set-up with sipp echoing on the phone side.
    pub sipp: bool,
    /// Call count to profile with perf after the steps: `None` none, `Some(0)` the largest
    /// count that passed.
    pub profile_at: Option<usize>,
}

/// What answers the bridges on the phone side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phones {
    /// In-process fake phones sending recorded µ-law.
    Fake,
    /// One sipp `-rtp_echo` process echoing each bridge's G.711 back to it.
    Sipp,
}

impl Phones {
    fn name(self) -> &'static str {
        match self {
            Phones::Fake => "fake",
            Phones::Sipp => "sipp",
        }
    }
}

/// The child's half: `Some((calls, set-up label, phones))` when this process is a child.
pub fn child_request() -> Option<(usize, String, Phones)> {
    let v = std::env::var(CHILD_ENV).ok()?;
    let mut words = v.split_whitespace();
    let n = words.next()?.parse().ok()?;
    let label = words.next()?.to_owned();
    let phones = match words.next() {
        Some("sipp") => Phones::Sipp,
        _ => Phones::Fake,
    };
    Some((n, label, phones))
}

/// Runs the call counts upward in child processes until one fails or is too late.
pub fn run(plan: &Plan) {
    println!("== Part 3: concurrent bridged calls at real-time pace (one process) ==");
    println!(
        "each count in a fresh process; gateway runtime {} threads, feeders {} threads at nice \
         {}, on {} cores; warm-up {:.0} s, window {:.0} s",
        plan.gw_threads,
        plan.feed_threads,
        plan.feed_nice,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        plan.warmup.as_secs_f64(),
        plan.window.as_secs_f64()
    );
    println!(
        "late %, max ms: bridge ticks handled > 20 ms after due, from BridgeStats (whole \
         bridged life, spawn to hang-up); phone%, WA %: frames arriving > 20 ms behind the \
         earliest of the window at the fake phones / fake Metas (window only); recv %: frames \
         received of those due; CPU in % of one core over the window: gw = gateway runtime \
         threads, feed = feeders, misc = other threads of the process, noise = other processes \
         + hypervisor steal; gw µs/c = gateway CPU per call per 20 ms; RSS of the process, KB/c \
         = its growth per call (both peers and the bridge)"
    );
    let mut runs: Vec<(&str, Phones)> = plan
        .settings
        .iter()
        .map(|(l, _)| (l.as_str(), Phones::Fake))
        .collect();
    if plan.sipp {
        if let Some((first, _)) = plan.settings.first() {
            runs.push((first, Phones::Sipp));
        }
    }
    for (label, phones) in runs {
        match phones {
            Phones::Fake => println!("\n-- codec set-up: {label}; fake phones in-process --"),
            Phones::Sipp => println!(
                "\n-- codec set-up: {label}; phones: one sipp -rtp_echo (its CPU: noise column; \
                 no far-end figures at the phone) --"
            ),
        }
        println!(
            "{:>5} {:>10} {:>7} {:>7} {:>7} {:>7} {:>11} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7}",
            "calls",
            "ok  setup",
            "late %",
            "max ms",
            "phone%",
            "WA %",
            "recv % p/WA",
            "gw %",
            "feed %",
            "misc %",
            "noise %",
            "gw µs/c",
            "RSS MB",
            "KB/c"
        );
        let mut best: Option<Row> = None;
        for &n in &plan.counts {
            // One retry: on a shared, noisy machine one bad window is not a verdict.
            let mut passed = false;
            for attempt in 0..2 {
                let row = match run_child(n, label, phones) {
                    Ok(row) => row,
                    Err(e) => {
                        println!("{n:>5} child failed: {e}");
                        break;
                    }
                };
                row.print();
                if row.passes() {
                    best = Some(row);
                    passed = true;
                    break;
                }
                if attempt == 0 {
                    println!("      retrying {n} once");
                }
            }
            if !passed {
                break;
            }
        }
        let profile_n = match plan.profile_at {
            Some(0) => best
                .as_ref()
                .map(|b| b.get("n") as usize)
                .or(plan.counts.first().copied()),
            other => other,
        };
        if let (Some(n), Phones::Fake) = (profile_n, phones) {
            crate::profile::run(n, label);
        }
        match best {
            Some(b) => {
                let gw_us = b.get("gw_us_per_call");
                println!(
                    "largest count with all calls working and < {LATE_LIMIT_PCT} % late ticks: {} \
                     calls; gateway CPU {gw_us:.1} µs per call per 20 ms there, so {:.0} calls \
                     would fill {} cores without the feeders ({:.0} at 80 %)",
                    b.get("n"),
                    2.0 * 20_000.0 / gw_us,
                    2,
                    0.8 * 2.0 * 20_000.0 / gw_us
                );
            }
            None => println!("no count passed"),
        }
    }
    println!();
}

pub struct Row(HashMap<String, f64>);

impl Row {
    pub fn get(&self, k: &str) -> f64 {
        self.0.get(k).copied().unwrap_or(f64::NAN)
    }

    fn passes(&self) -> bool {
        self.get("ok") == self.get("n") && self.get("late_pct") < LATE_LIMIT_PCT
    }

    pub fn print(&self) {
        let g = |k: &str| self.get(k);
        println!(
            "{:>5} {:>10} {:>7.3} {:>7.1} {:>7.3} {:>7.3} {:>11} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>8.1} {:>7.0} {:>7.0}{}",
            g("n"),
            format!("{} {:.0}s", g("ok"), g("setup_s")),
            g("late_pct"),
            g("max_late_ms"),
            g("phone_late_pct"),
            g("wa_late_pct"),
            format!("{:.1}/{:.1}", g("phone_recv_pct"), g("wa_recv_pct")),
            g("gw_cpu_pct"),
            g("feed_cpu_pct"),
            g("other_cpu_pct"),
            g("elsewhere_cpu_pct") + g("steal_pct"),
            g("gw_us_per_call"),
            g("rss_mb"),
            g("rss_kb_per_call"),
            if self.passes() { "" } else { "  <- fails" }
        );
    }
}

fn run_child(n: usize, label: &str, phones: Phones) -> Result<Row, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .env(CHILD_ENV, format!("{n} {label} {}", phones.name()))
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    parse_output(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("{n} calls: no result ({})", out.status))
}

/// Echoes a child's report lines, indented, and returns its `ROW`.
pub fn parse_output(stdout: &str) -> Option<Row> {
    let mut row = None;
    for line in stdout.lines() {
        match line.strip_prefix("ROW ") {
            Some(fields) => {
                row = Some(Row(fields
                    .split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                    .collect()))
            }
            None => println!("      {line}"),
        }
    }
    row
}
