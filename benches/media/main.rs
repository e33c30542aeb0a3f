//! The media cost of a bridged call, and how many bridged calls this machine carries.
//!
//! - Part 1 (`steps`): cost per call per 20 ms of each step in both directions — SRTP
//!   unprotect/protect (webrtc-rs's own `rtc::srtp`, for the profiles Meta might negotiate),
//!   RTP header parse/write (`media::rtp_header`), jitter buffer, Opus decode, resampling
//!   (when the configured rate needs it), G.711, Opus encode — then the total, next to the raw
//!   libopus floor (48 kHz complexity 10 encode + decode) measured in the same run. The codec
//!   steps come from `BridgeSettings` (`encode`, `decode`): the default and cheaper encoder
//!   complexities.
//! - Part 2 (`webrtc`): webrtc-rs's own CPU per packet on our hot path, `WebRtcLeg::send_audio`
//!   and the receive path through its incoming channel, with a fake Meta peer in-process;
//!   plain UDP send/receive (the phone leg) for comparison.
//! - Part 3 (`calls`): N real bridges in one process (`spawn_bridge` on `WebRtcLeg`s answering
//!   fake Meta peers, fake UDP phones), fed recorded packets at real-time pace, for rising N:
//!   late ticks, far-end lateness, CPU of the gateway's threads and the feeders' threads,
//!   memory per call. Release build only makes sense here.
//!
//! Run: `cargo bench --bench media`. Everything prints; nothing asserts on a number (small,
//! noisy machines). Environment, all optional:
//! - `MEDIA_BENCH_PARTS=steps,webrtc,calls` which parts;
//! - `MEDIA_BENCH_SETTINGS=default,c2,c1` codec set-ups for part 1: `default` is
//!   `BridgeSettings::default()`, `cN` the same with encoder complexity N;
//! - `MEDIA_BENCH_CALL_SETTINGS=default,c1` the set-ups part 3 runs;
//! - `MEDIA_BENCH_CALLS=50,100,150,200,250,300,400,500,600` call counts, stepped upward until
//!   one fails twice in a row (a call not working, or ≥ 0.1 % late ticks);
//! - `MEDIA_BENCH_SECS=30` measured window per count, `MEDIA_BENCH_WARMUP_SECS=5`;
//! - `MEDIA_BENCH_RUNS=5` passes over the speech in part 1; `MEDIA_BENCH_WEBRTC_SECS=5`;
//! - `MEDIA_BENCH_GW_THREADS=2`, `MEDIA_BENCH_FEED_THREADS=2` runtime sizes in part 3;
//!   `MEDIA_BENCH_FEED_NICE=0` nice value of the feeder threads (e.g. 19 to let the gateway
//!   go first, as if the feeders ran elsewhere);
//! - `MEDIA_BENCH_SIPP=auto` also step the first set-up with one `sipp -rtp_echo` as every
//!   bridge's phone (when sipp is installed); `0` or `1`;
//! - `MEDIA_BENCH_PROFILE=auto` after each set-up's steps, re-run the largest passing count
//!   under `perf record` (window only) and print where the gateway threads' CPU goes;
//!   `off`, or a call count;
//! - `MEDIA_BENCH_SMOKE=1` a short version for CI (one pass, 1 s, 10 and 20 calls for 3 s).

#[path = "../common/mod.rs"]
mod common;

mod arrivals;
mod calls;
mod cpu;
mod feeders;
mod profile;
mod steps;
mod webrtc_cost;

use std::time::Duration;

use common::{meta_packets, pcm, resample};
use whatsip::media::bridge::BridgeSettings;
use whatsip::media::g711::G711;
use whatsip::media::transcode::{G711ToOpus, G711_FRAME};

/// The recorded speech in the forms the parts need.
pub struct Speech {
    /// 48 kHz, for the libopus floor.
    pub speech48: Vec<i16>,
    /// Opus as Meta sends it (16 kHz capture, 20 kbit/s, FEC).
    pub meta_packets: Vec<Vec<u8>>,
    /// µ-law frames as a desk phone sends them.
    pub phone_frames: Vec<[u8; G711_FRAME]>,
    /// Opus as our bridge sends it to Meta (default settings).
    pub our_packets: Vec<Vec<u8>>,
}

impl Speech {
    fn load() -> Speech {
        let speech16 = pcm(common::SPEECH_16K);
        let speech8 = pcm(common::SPEECH_8K);
        let phone_frames: Vec<[u8; G711_FRAME]> = speech8
            .chunks_exact(G711_FRAME)
            .map(|c| {
                let mut b = [0u8; G711_FRAME];
                G711::Pcmu.encode(c, &mut b);
                b
            })
            .collect();
        let mut ours = G711ToOpus::new(G711::Pcmu, BridgeSettings::default().encode).unwrap();
        let our_packets = phone_frames
            .iter()
            .map(|f| ours.frame(Some(f)).unwrap().to_vec())
            .collect();
        Speech {
            speech48: resample(&speech16, 16000, 48000),
            meta_packets: meta_packets(&speech16),
            phone_frames,
            our_packets,
        }
    }
}

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

fn env_num<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `default` or `cN`.
fn settings(label: &str) -> (String, BridgeSettings) {
    let mut s = BridgeSettings::default();
    if label != "default" {
        let c: u8 = label
            .strip_prefix('c')
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("codec set-up {label:?}: use `default` or `cN`"));
        s.encode.complexity = c;
    }
    (label.to_owned(), s)
}

fn settings_list(csv: &str) -> Vec<(String, BridgeSettings)> {
    csv.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(settings)
        .collect()
}

fn main() {
    let smoke = std::env::var("MEDIA_BENCH_SMOKE").is_ok_and(|v| v != "0");
    let plan = calls::Plan {
        counts: env_or(
            "MEDIA_BENCH_CALLS",
            if smoke {
                "10,20"
            } else {
                "50,100,150,200,250,300,400,500,600"
            },
        )
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect(),
        settings: settings_list(&env_or(
            "MEDIA_BENCH_CALL_SETTINGS",
            if smoke { "default" } else { "default,c1" },
        )),
        warmup: Duration::from_secs_f64(env_num(
            "MEDIA_BENCH_WARMUP_SECS",
            if smoke { 1.0 } else { 5.0 },
        )),
        window: Duration::from_secs_f64(env_num(
            "MEDIA_BENCH_SECS",
            if smoke { 3.0 } else { 30.0 },
        )),
        gw_threads: env_num("MEDIA_BENCH_GW_THREADS", 2),
        feed_threads: env_num("MEDIA_BENCH_FEED_THREADS", 2),
        feed_nice: env_num("MEDIA_BENCH_FEED_NICE", 0),
        sipp: match env_or("MEDIA_BENCH_SIPP", if smoke { "0" } else { "auto" }).as_str() {
            "auto" => std::process::Command::new("sipp")
                .arg("-v")
                .output()
                .is_ok(),
            v => v == "1",
        },
        profile_at: match env_or("MEDIA_BENCH_PROFILE", if smoke { "off" } else { "auto" }).as_str()
        {
            "off" | "none" => None,
            "auto" => Some(0),
            n => Some(
                n.parse()
                    .expect("MEDIA_BENCH_PROFILE: off, auto or a call count"),
            ),
        },
    };
    let speech = Speech::load();
    if let Some((n, label, phones)) = calls::child_request() {
        let (_, s) = settings(&label);
        calls::child(n, &label, phones, s, &speech, &plan);
        return;
    }

    let parts = env_or("MEDIA_BENCH_PARTS", "steps,webrtc,calls");
    let runs = env_num("MEDIA_BENCH_RUNS", if smoke { 1 } else { 5 });
    let step_settings = settings_list(&env_or("MEDIA_BENCH_SETTINGS", "default,c2,c1"));
    println!(
        "media bench: {}; {}; {} cores; {}",
        audiopus::version(),
        common::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if cfg!(debug_assertions) {
            "DEBUG build: figures are not meaningful"
        } else {
            "release build"
        }
    );
    println!("codec set-ups:");
    let mut listed = Vec::new();
    for (label, s) in step_settings.iter().chain(&plan.settings) {
        if !listed.contains(label) {
            println!("  {label:<8} encode {:?}; decode {:?}", s.encode, s.decode);
            listed.push(label.clone());
        }
    }
    println!();
    let totals = parts
        .contains("steps")
        .then(|| steps::run(&speech, &step_settings, runs));
    let webrtc = parts.contains("webrtc").then(|| {
        webrtc_cost::run(
            &speech,
            Duration::from_secs_f64(env_num(
                "MEDIA_BENCH_WEBRTC_SECS",
                if smoke { 1.0 } else { 5.0 },
            )),
        )
    });
    if let (Some(totals), Some(w)) = (&totals, &webrtc) {
        println!(
            "== Parts 1 + 2: one call per 20 ms summed from isolated costs (an upper bound: in \
             part 2 every packet wakes an idle thread; under load wake-ups are shared, see the \
             profile in part 3) =="
        );
        let io = w.send_us + w.receive_us + w.udp_send_us + w.udp_receive_us + w.tick_wake_us;
        for t in totals {
            let all = t.per_call_us + io;
            println!(
                "  {:<8} transcode path {:6.1} µs + webrtc-rs {:5.1} + phone UDP {:5.1} + one \
                 tick wake-up {:5.1} = {all:6.1} µs -> {:4.0} calls per core at 100 %",
                t.label,
                t.per_call_us,
                w.send_us + w.receive_us,
                w.udp_send_us + w.udp_receive_us,
                w.tick_wake_us,
                20_000.0 / all
            );
        }
        println!("  (SRTP counts twice: alone in the transcode path and inside webrtc-rs)\n");
    }
    if parts.contains("calls") {
        calls::run(&plan);
    }
}
