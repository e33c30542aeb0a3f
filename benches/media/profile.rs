//! Where the gateway's CPU goes under load: one call count of part 3 re-run under
//! `perf record`, sampling only during the measured window (perf's control FIFO, which the
//! child opens and closes), then samples of the gateway's threads grouped by what they run.
//! Needs `perf` (Debian `linux-perf`); skipped with a note when it is missing.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cpu;

const CTL_ENV: &str = "MEDIA_BENCH_PERF_CTL";

/// In the child: tells perf to start or stop sampling, when running under the profiler.
pub fn window(open: bool) {
    let Ok(path) = std::env::var(CTL_ENV) else {
        return;
    };
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("perf control FIFO");
    let cmd: &[u8] = if open { b"enable\n" } else { b"disable\n" };
    fifo.write_all(cmd).expect("perf control");
}

/// Runs `n` calls of `label` under perf and prints the gateway threads' profile.
pub fn run(n: usize, label: &str) {
    println!("-- where the gateway threads' CPU goes at {n} calls ({label}), perf samples of the window --");
    if Command::new("perf").arg("--version").output().is_err() {
        println!("perf not found: skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("media-bench-perf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (ctl, data) = (dir.join("ctl"), dir.join("perf.data"));
    let made = Command::new("mkfifo").arg(&ctl).status();
    if !made.is_ok_and(|s| s.success()) {
        println!("mkfifo failed: skipped");
        return;
    }
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new("perf")
        .args(["record", "-q", "-F", "999", "-e", "cpu-clock", "-D", "-1"])
        .arg(format!("--control=fifo:{}", ctl.display()))
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg(exe)
        .env(crate::calls::CHILD_ENV, format!("{n} {label}"))
        .env(CTL_ENV, &ctl)
        .stderr(Stdio::inherit())
        .output();
    let Ok(out) = out.map_err(|e| println!("perf record: {e}")) else {
        return;
    };
    let row = crate::calls::parse_output(&String::from_utf8_lossy(&out.stdout));
    let gw_us_per_call = row.as_ref().map(|r| r.get("gw_us_per_call"));
    if let Some(r) = &row {
        r.print();
    }
    match categories(&data) {
        Some(rows) => print(&rows, gw_us_per_call),
        None => println!("perf script failed: skipped"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn categories(data: &Path) -> Option<Vec<(String, u64)>> {
    let out = Command::new("perf")
        .args(["script", "-F", "comm,ip,sym,dso", "-i"])
        .arg(data)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts: HashMap<&'static str, u64> = HashMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(comm) = words.next() else { continue };
        if !comm.starts_with(cpu::GATEWAY) {
            continue;
        }
        let (rest, dso) = match line.rsplit_once(" (") {
            Some((r, d)) => (r, d.trim_end_matches(')')),
            None => (line, ""),
        };
        // Skip the comm and the address; what is left is the symbol.
        let sym = rest
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ");
        *counts.entry(classify(&sym, dso)).or_default() += 1;
    }
    let mut rows: Vec<(String, u64)> = counts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    Some(rows)
}

fn classify(sym: &str, dso: &str) -> &'static str {
    let has = |pats: &[&str]| pats.iter().any(|p| sym.contains(p));
    if dso.contains("kernel") {
        "kernel: syscalls (UDP send/recv, epoll, futex), scheduling"
    } else if dso.contains("libopus") {
        "libopus (encode + decode)"
    } else if dso.contains("libc") && has(&["memmove", "memcpy"]) {
        "memcpy/memmove"
    } else if has(&[
        "malloc",
        "free",
        "_int_",
        "tcache",
        "realloc",
        "__rust_alloc",
        "__rdl_",
        "__rust_dealloc",
        "RawVec",
        "unlink_chunk",
    ]) {
        "allocator"
    } else if has(&["whatsip"]) {
        "whatsip: bridge task, jitter buffer, G.711, transcode glue"
    } else if has(&[
        "srtp",
        "Srtp",
        "aes",
        "Aes",
        "gcm",
        "Gcm",
        "ring_core",
        "ring::",
    ]) {
        "webrtc-rs: SRTP / crypto"
    } else if has(&["interceptor"]) {
        "webrtc-rs: interceptors (NACK, TWCC, RTCP reports)"
    } else if has(&[
        "webrtc::",
        "rtc::",
        "rtc_",
        "sansio",
        "async_channel",
        "concurrent_queue",
        "event_listener",
        "futures_util",
        "quinn_udp",
    ]) {
        "webrtc-rs: driver, handlers, channels, ICE, RTP"
    } else if has(&["tokio", "mio::"]) {
        "tokio runtime, timers, I/O driver"
    } else if dso.contains("libc") || dso.contains("libm") {
        "libc/libm other"
    } else {
        "other"
    }
}

fn print(rows: &[(String, u64)], gw_us_per_call: Option<f64>) {
    let total: u64 = rows.iter().map(|r| r.1).sum();
    if total == 0 {
        println!("no samples");
        return;
    }
    for (what, n) in rows {
        let share = *n as f64 / total as f64;
        let us = gw_us_per_call.map_or(String::new(), |g| {
            format!("{:6.1} µs/call/20 ms", share * g)
        });
        println!("  {:5.1} %  {us}  {what}", 100.0 * share);
    }
    println!("  ({total} samples at 999 Hz; µs split the gateway CPU per call of the row above)");
}
