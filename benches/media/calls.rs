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

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use whatsip::media::bridge::{
    spawn_bridge, BridgeCommand, BridgeSettings, BridgeStats, PhoneMedia,
};
use whatsip::media::bridge_core::BridgeEvent;
use whatsip::media::g711::G711;
use whatsip::media::webrtc_leg::WebRtcLeg;

use crate::arrivals::{Arrivals, Lateness, WINDOW};
use crate::cpu::{self, Snapshot};
use crate::fake_meta::FakeMeta;
use crate::feeders::{
    meta_sender, phone_receiver, phone_sender, FakePhone, MetaFeed, SippEcho, SLOTS,
};
use crate::webrtc_cost::answer_pair;
use crate::Speech;

const TICK: Duration = Duration::from_millis(20);
const TICK_US: i64 = 20_000;
/// Set-ups in flight at once: enough to finish hundreds in reasonable time, few enough that
/// ICE and DTLS never time out for want of CPU.
const SETUP_PARALLEL: usize = 8;
/// Fake phones per UDP socket (one receive buffer shared by this many calls).
const PHONES_PER_SOCKET: usize = 50;
const LATE_LIMIT_PCT: f64 = 0.1;
const HANGUP_WAIT: Duration = Duration::from_secs(20);
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

/// One call as the child holds it.
struct Call {
    meta: FakeMeta,
    leg: Option<WebRtcLeg>,
    heard_by_meta: Arc<Mutex<Arrivals>>,
    heard_by_phone: Arc<Mutex<Arrivals>>,
}

/// The child's half: runs `n` calls and prints one `ROW` line.
pub fn child(
    n: usize,
    label: &str,
    phones: Phones,
    settings: BridgeSettings,
    speech: &Speech,
    plan: &Plan,
) {
    let gw = cpu::runtime(cpu::GATEWAY, plan.gw_threads);
    let feed = cpu::runtime(cpu::FEEDER, plan.feed_threads);
    if plan.feed_nice != 0 {
        // Workers start lazily: make sure all exist before renicing them.
        feed.block_on(async {
            let blockers: Vec<_> = (0..plan.feed_threads)
                .map(|_| tokio::spawn(async { std::thread::sleep(Duration::from_millis(50)) }))
                .collect();
            for b in blockers {
                let _ = b.await;
            }
        });
        let n = cpu::renice(cpu::FEEDER, plan.feed_nice);
        println!("feeder threads at nice {}: {n}", plan.feed_nice);
    }
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("main runtime");
    let window_frames = (plan.window.as_millis() / TICK.as_millis()) as usize + 50;
    main.block_on(async {
        let epoch = Instant::now();
        let rss0 = cpu::rss_bytes();
        let setup_started = Instant::now();
        let (mut calls, failures) = set_up(n, &gw, &feed, epoch, window_frames).await;
        let setup_s = setup_started.elapsed().as_secs_f64();
        let rss_connected = cpu::rss_bytes();
        for f in &failures {
            println!("set-up failed: {f}");
        }
        eprintln!("[{label} {n}] {} connected in {setup_s:.1} s", calls.len());
        if let Some(c) = calls.first() {
            println!("SRTP profile: {}", c.meta.srtp_cipher().await);
        }

        // Phones: a few shared UDP sockets on the feeder side, or sipp.
        let sipp = match phones {
            Phones::Sipp => match SippEcho::start() {
                Ok(s) => Some(s),
                Err(e) => {
                    // No ROW: the parent reports this count as failed.
                    println!("{e}");
                    std::process::exit(1);
                }
            },
            Phones::Fake => None,
        };
        let groups = if sipp.is_some() {
            0
        } else {
            calls.len().div_ceil(PHONES_PER_SOCKET)
        };
        let phone_sockets: Vec<Arc<UdpSocket>> = feed
            .spawn(async move {
                let mut v = Vec::new();
                for _ in 0..groups {
                    v.push(Arc::new(
                        UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
                    ));
                }
                v
            })
            .await
            .expect("phone sockets");
        let phone_addrs: Vec<SocketAddr> = match &sipp {
            Some(s) => vec![s.addr],
            None => phone_sockets
                .iter()
                .map(|s| s.local_addr().expect("addr"))
                .collect(),
        };

        // Bridges: spread over the 20 ms so their ticks do not all fall in the same ms.
        let legs: Vec<WebRtcLeg> = calls
            .iter_mut()
            .map(|c| c.leg.take().expect("leg"))
            .collect();
        let bridge_settings = settings.clone();
        let bridges = gw
            .spawn(async move {
                let per_ms = legs.len().div_ceil(SLOTS).max(1);
                let mut out = Vec::new();
                for (i, leg) in legs.into_iter().enumerate() {
                    let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                    let rtcp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
                    let rtp_addr = rtp.local_addr().expect("addr");
                    let phone = phone_addrs[(i / PHONES_PER_SOCKET).min(phone_addrs.len() - 1)];
                    let handle = spawn_bridge(leg, bridge_settings.clone());
                    let media = PhoneMedia {
                        rtp,
                        rtcp,
                        remote_rtp: phone,
                        remote_rtcp: phone,
                        codec: G711::Pcmu,
                        dtmf_pt: None,
                    };
                    handle
                        .commands
                        .send(BridgeCommand::AttachPhone(media))
                        .await
                        .expect("bridge takes the phone");
                    handle
                        .commands
                        .send(BridgeCommand::Accept)
                        .await
                        .expect("bridge takes accept");
                    out.push((handle, rtp_addr));
                    if (i + 1) % per_ms == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                out
            })
            .await
            .expect("bridges spawned");

        // Feeders.
        let feeder_late_us = Arc::new(AtomicU64::new(0));
        let feeder_send_errors = Arc::new(AtomicU64::new(0));
        let mut feeders = Vec::new();
        for (g, socket) in phone_sockets.iter().enumerate() {
            let range = g * PHONES_PER_SOCKET..((g + 1) * PHONES_PER_SOCKET).min(calls.len());
            let phones: Vec<FakePhone> = range
                .clone()
                .map(|i| FakePhone {
                    bridge: bridges[i].1,
                    slot: i % SLOTS,
                    ssrc: 0x7000_0000 + i as u32,
                    seq: 0,
                    ts: 0,
                    frame: i * 37,
                })
                .collect();
            let heard: HashMap<SocketAddr, Arc<Mutex<Arrivals>>> = range
                .map(|i| (bridges[i].1, calls[i].heard_by_phone.clone()))
                .collect();
            feeders.push(feed.spawn(phone_receiver(socket.clone(), heard)));
            feeders.push(feed.spawn(phone_sender(
                socket.clone(),
                phones,
                speech.phone_frames.clone(),
                feeder_late_us.clone(),
                feeder_send_errors.clone(),
            )));
        }
        let metas: Vec<MetaFeed> = calls
            .iter()
            .enumerate()
            .map(|(i, c)| MetaFeed {
                track: c.meta.track.clone(),
                ssrc: c.meta.ssrc,
                slot: i % SLOTS,
                seq: 0,
                ts: 0,
                packet: i * 53,
            })
            .collect();
        let meta_packets: Vec<Bytes> = speech
            .meta_packets
            .iter()
            .map(|p| Bytes::from(p.clone()))
            .collect();
        feeders.push(feed.spawn(meta_sender(
            metas,
            meta_packets,
            feeder_late_us.clone(),
            feeder_send_errors.clone(),
        )));

        tokio::time::sleep(plan.warmup).await;
        let before = Snapshot::take();
        let sipp_before = sipp.as_ref().map_or(0, SippEcho::cpu_ticks);
        let window_start = epoch.elapsed();
        WINDOW.store(true, Ordering::Relaxed);
        crate::profile::window(true);
        tokio::time::sleep(plan.window).await;
        crate::profile::window(false);
        WINDOW.store(false, Ordering::Relaxed);
        let split = Snapshot::take().since(&before);
        let sipp_ticks = sipp.as_ref().map_or(0, SippEcho::cpu_ticks) - sipp_before;
        drop(sipp);
        // The feeders' arrival logs fill during the window; they are not the gateway's.
        let logs = (calls.len() * 2 * window_frames * std::mem::size_of::<(i64, i64)>()) as u64;
        let rss_running = cpu::rss_bytes().saturating_sub(logs);
        eprintln!("[{label} {n}] window done; hanging up");

        for f in &feeders {
            f.abort();
        }
        let ended = hang_up(bridges).await;

        // Tally.
        let expected = (split.wall.as_millis() / TICK.as_millis()) as f64;
        let (mut phone_late, mut wa_late) = (Lateness::default(), Lateness::default());
        let mut bridge = BridgeStats::default();
        let mut ok = 0usize;
        let mut problems: Vec<String> = Vec::new();
        for (i, (call, end)) in calls.iter_mut().zip(&ended).enumerate() {
            let at_phone = call
                .heard_by_phone
                .lock()
                .expect("unpoisoned")
                .lateness(TICK_US);
            let at_meta = call
                .heard_by_meta
                .lock()
                .expect("unpoisoned")
                .lateness(TICK_US);
            phone_late.add(at_phone);
            wa_late.add(at_meta);
            let mut why = Vec::new();
            match end {
                Ok((stats, events)) => {
                    add_stats(&mut bridge, stats);
                    for e in [
                        BridgeEvent::WebRtcConnected,
                        BridgeEvent::FirstWhatsAppAudio,
                        BridgeEvent::FirstPhoneAudio,
                    ] {
                        if !events.contains(&e) {
                            why.push(format!("no {e:?}"));
                        }
                    }
                    why.extend(
                        events
                            .iter()
                            .filter(|e| {
                                matches!(
                                    e,
                                    BridgeEvent::WebRtcFailed { .. }
                                        | BridgeEvent::MediaTimeout { .. }
                                )
                            })
                            .map(|e| format!("{e:?}")),
                    );
                    if stats.phone_packets_received == 0 {
                        why.push("no phone packets".into());
                    }
                    if stats.wa_send_errors > 0 || stats.wa_decode_errors > 0 {
                        why.push(format!(
                            "{} send errors, {} decode errors",
                            stats.wa_send_errors, stats.wa_decode_errors
                        ));
                    }
                }
                Err(e) => why.push(e.clone()),
            }
            let mut heard = vec![("Meta", at_meta.frames)];
            if phones == Phones::Fake {
                heard.push(("phone", at_phone.frames));
            }
            for (side, got) in heard {
                if (got as f64) < 0.9 * expected {
                    why.push(format!("{side} heard {got} of {expected:.0} frames"));
                }
            }
            let broken = call.meta.failures();
            if !broken.is_empty() {
                why.push(format!("fake Meta saw {broken:?}"));
            }
            if why.is_empty() {
                ok += 1;
            } else if problems.len() < 5 {
                problems.push(format!("call {i}: {}", why.join(", ")));
            }
        }
        for p in &problems {
            println!("{p}");
        }
        let secs = plan.window.as_secs().max(1) as usize;
        let mut bins = [vec![0u64; secs], vec![0u64; secs]];
        let start_us = window_start.as_micros() as i64;
        for call in &calls {
            let logs = [&call.heard_by_phone, &call.heard_by_meta];
            for (bin, log) in bins.iter_mut().zip(logs) {
                for at in log.lock().expect("unpoisoned").late_at(TICK_US) {
                    let s = ((at - start_us).max(0) / 1_000_000) as usize;
                    bin[s.min(secs - 1)] += 1;
                }
            }
        }
        if bins.iter().flatten().any(|&b| b > 0) {
            println!(
                "late frames per second of the window, at the phones: {:?}",
                bins[0]
            );
            println!(
                "late frames per second of the window, at Meta:       {:?}",
                bins[1]
            );
        }
        if calls.len() - ok > problems.len() {
            println!("... {} calls with problems in all", calls.len() - ok);
        }
        let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
        let fields = [
            ("n", n as f64),
            ("ok", ok as f64),
            ("setup_s", setup_s),
            ("ticks", bridge.ticks as f64),
            ("late_ticks", bridge.late_ticks as f64),
            ("late_pct", pct(bridge.late_ticks, bridge.ticks)),
            ("max_late_ms", bridge.max_tick_lateness_us as f64 / 1000.0),
            ("phone_late_pct", pct(phone_late.late, phone_late.frames)),
            ("phone_max_ms", phone_late.max_us as f64 / 1000.0),
            ("wa_late_pct", pct(wa_late.late, wa_late.frames)),
            ("wa_max_ms", wa_late.max_us as f64 / 1000.0),
            (
                "phone_recv_pct",
                100.0 * phone_late.frames as f64 / (expected * n as f64),
            ),
            (
                "wa_recv_pct",
                100.0 * wa_late.frames as f64 / (expected * n as f64),
            ),
            ("gw_cpu_pct", cpu::Split::pct(split.gateway, split.wall)),
            ("feed_cpu_pct", cpu::Split::pct(split.feeder, split.wall)),
            ("other_cpu_pct", cpu::Split::pct(split.other, split.wall)),
            (
                "elsewhere_cpu_pct",
                cpu::Split::pct(split.elsewhere, split.wall),
            ),
            ("steal_pct", cpu::Split::pct(split.steal, split.wall)),
            (
                "sipp_cpu_pct",
                sipp_ticks as f64 * 10.0 / split.wall.as_secs_f64(),
            ),
            (
                "gw_us_per_call",
                split.gateway.as_secs_f64() * 1e6 / (n as f64 * expected),
            ),
            (
                "feed_us_per_call",
                split.feeder.as_secs_f64() * 1e6 / (n as f64 * expected),
            ),
            ("rss_mb", rss_running as f64 / 1e6),
            (
                "rss_kb_per_call",
                rss_running.saturating_sub(rss0) as f64 / 1e3 / n as f64,
            ),
            (
                "rss_kb_per_pair",
                rss_connected.saturating_sub(rss0) as f64 / 1e3 / n as f64,
            ),
            (
                "rss_kb_per_bridge",
                rss_running.saturating_sub(rss_connected) as f64 / 1e3 / n as f64,
            ),
            (
                "feeder_max_late_ms",
                feeder_late_us.load(Ordering::Relaxed) as f64 / 1000.0,
            ),
            (
                "feeder_send_errors",
                feeder_send_errors.load(Ordering::Relaxed) as f64,
            ),
            ("jitter_lost", bridge.jitter.lost as f64),
            ("jitter_late", bridge.jitter.late as f64),
            ("jitter_skipped", bridge.jitter.skipped as f64),
            ("cn_frames", bridge.wa_comfort_noise_frames as f64),
        ];
        println!(
            "bridges: {} ticks, {} late, worst {:.1} ms; far end worst: phone {:.1} ms, Meta \
             {:.1} ms; feeders worst tick {:.1} ms late, {} send errors; jitter buffers: {} \
             lost, {} late, {} skipped; {} comfort-noise frames to WhatsApp; gateway {:.1} µs, \
             feeders {:.1} µs per call per 20 ms; RSS per call: {:.0} KB once the two peers \
             (ours and the fake Meta) are connected, {:.0} KB more once media flows (the \
             bridge, both peers' media state; the feeders' logs left out)",
            bridge.ticks,
            bridge.late_ticks,
            bridge.max_tick_lateness_us as f64 / 1000.0,
            phone_late.max_us as f64 / 1000.0,
            wa_late.max_us as f64 / 1000.0,
            feeder_late_us.load(Ordering::Relaxed) as f64 / 1000.0,
            feeder_send_errors.load(Ordering::Relaxed),
            bridge.jitter.lost,
            bridge.jitter.late,
            bridge.jitter.skipped,
            bridge.wa_comfort_noise_frames,
            split.gateway.as_secs_f64() * 1e6 / (n as f64 * expected),
            split.feeder.as_secs_f64() * 1e6 / (n as f64 * expected),
            rss_connected.saturating_sub(rss0) as f64 / 1e3 / n as f64,
            rss_running.saturating_sub(rss_connected) as f64 / 1e3 / n as f64,
        );
        if phones == Phones::Sipp {
            println!(
                "sipp -rtp_echo used {:.1} % of one core",
                sipp_ticks as f64 * 10.0 / split.wall.as_secs_f64()
            );
        }
        let row: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("ROW {}", row.join(" "));
    });
    // Hundreds of peer connections need not be torn down one by one.
    std::process::exit(0);
}

/// Sets up `n` calls, [`SETUP_PARALLEL`] at a time. Failures are returned, not hidden.
async fn set_up(
    n: usize,
    gw: &tokio::runtime::Runtime,
    feed: &tokio::runtime::Runtime,
    epoch: Instant,
    window_frames: usize,
) -> (Vec<Call>, Vec<String>) {
    let permits = Arc::new(Semaphore::new(SETUP_PARALLEL));
    let mut set = JoinSet::new();
    for i in 0..n {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let (gw, feed) = (gw.handle().clone(), feed.handle().clone());
        set.spawn(async move {
            let heard_by_meta = Arc::new(Mutex::new(Arrivals::new(48_000, epoch, window_frames)));
            let heard_by_phone = Arc::new(Mutex::new(Arrivals::new(8_000, epoch, window_frames)));
            // Spread over 20000 ports: answer_offer probes from a random start.
            let result = answer_pair(&gw, &feed, heard_by_meta.clone(), 10_000).await;
            drop(permit);
            (i, result, heard_by_meta, heard_by_phone)
        });
        if (i + 1) % 100 == 0 {
            eprintln!("  {} set-ups started", i + 1);
        }
    }
    let mut calls = Vec::new();
    let mut failures = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok((_, Ok((leg, meta)), heard_by_meta, heard_by_phone)) => calls.push(Call {
                meta,
                leg: Some(leg),
                heard_by_meta,
                heard_by_phone,
            }),
            Ok((i, Err(e), _, _)) => failures.push(format!("call {i}: {e}")),
            Err(e) => failures.push(format!("set-up task: {e}")),
        }
    }
    (calls, failures)
}

type Ended = Result<(BridgeStats, Vec<BridgeEvent>), String>;

async fn hang_up(bridges: Vec<(whatsip::media::bridge::BridgeHandle, SocketAddr)>) -> Vec<Ended> {
    for (b, _) in &bridges {
        let _ = b.commands.send(BridgeCommand::Hangup).await;
    }
    let mut out = Vec::new();
    for (mut b, _) in bridges {
        let ended = match tokio::time::timeout(HANGUP_WAIT, &mut b.task).await {
            Ok(Ok(stats)) => {
                let mut events = Vec::new();
                while let Ok(e) = b.events.try_recv() {
                    events.push(e);
                }
                Ok((stats, events))
            }
            Ok(Err(e)) => Err(format!("bridge task: {e}")),
            Err(_) => Err(format!("bridge did not end within {HANGUP_WAIT:?}")),
        };
        out.push(ended);
    }
    out
}

fn add_stats(sum: &mut BridgeStats, s: &BridgeStats) {
    sum.ticks += s.ticks;
    sum.late_ticks += s.late_ticks;
    sum.max_tick_lateness_us = sum.max_tick_lateness_us.max(s.max_tick_lateness_us);
    sum.wa_comfort_noise_frames += s.wa_comfort_noise_frames;
    sum.jitter.lost += s.jitter.lost;
    sum.jitter.late += s.jitter.late;
    sum.jitter.skipped += s.jitter.skipped;
}
