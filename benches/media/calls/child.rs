//! The child's half of part 3: `n` calls in this process, one `ROW` line on stdout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use whatsip::media::bridge::{
    spawn_bridge, BridgeCommand, BridgeHandle, BridgeSettings, BridgeStats, PhoneMedia,
};
use whatsip::media::bridge_core::BridgeEvent;
use whatsip::media::g711::G711;
use whatsip::media::webrtc_leg::WebRtcLeg;
use whatsip::sandbox::wa_peer::RawPeer;

use super::{Phones, Plan};
use crate::arrivals::{Arrivals, Lateness, WINDOW};
use crate::cpu::{self, Snapshot, Split};
use crate::feeders::{
    meta_sender, phone_receiver, phone_sender, FakePhone, MetaFeed, SippEcho, SLOTS,
};
use crate::webrtc_cost::{answer_pair, failures, srtp_cipher};
use crate::Speech;

const TICK: Duration = Duration::from_millis(20);
const TICK_US: i64 = 20_000;
/// Set-ups in flight at once: enough to finish hundreds in reasonable time, few enough that
/// ICE and DTLS never time out for want of CPU.
const SETUP_PARALLEL: usize = 8;
/// Fake phones per UDP socket (one receive buffer shared by this many calls).
const PHONES_PER_SOCKET: usize = 50;
const HANGUP_WAIT: Duration = Duration::from_secs(20);
/// Problem calls described one by one; the rest are only counted.
const PROBLEMS_SHOWN: usize = 5;

/// One call as the child holds it.
struct Call {
    meta: RawPeer,
    leg: Option<WebRtcLeg>,
    heard_by_meta: Arc<Mutex<Arrivals>>,
    heard_by_phone: Arc<Mutex<Arrivals>>,
}

/// What the feeders report about themselves.
#[derive(Default)]
struct FeederHealth {
    worst_tick_late_us: Arc<AtomicU64>,
    send_errors: Arc<AtomicU64>,
}

/// Runs `n` calls and prints one `ROW` line, then exits the process.
pub fn run(
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
        renice_feeders(&feed, plan);
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
            println!("SRTP profile: {}", srtp_cipher(&c.meta).await);
        }

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
        let phone_sockets = bind_phone_sockets(&feed, &calls, sipp.is_some()).await;
        let phone_addrs: Vec<SocketAddr> = match &sipp {
            Some(s) => vec![s.addr],
            None => phone_sockets
                .iter()
                .map(|s| s.local_addr().expect("addr"))
                .collect(),
        };
        let legs: Vec<WebRtcLeg> = calls
            .iter_mut()
            .map(|c| c.leg.take().expect("leg"))
            .collect();
        let bridges = gw
            .spawn(spawn_bridges(legs, settings, phone_addrs))
            .await
            .expect("bridges spawned");
        let health = FeederHealth::default();
        let feeders = start_feeders(&feed, &calls, &bridges, &phone_sockets, speech, &health);

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
        let tally = Tally::of(&mut calls, &ended, phones, &split);
        tally.print_problems(calls.len());
        late_histogram(&calls, window_start, plan.window);
        let per_call = |d: Duration| d.as_secs_f64() * 1e6 / (n as f64 * tally.expected);
        let kb_per_call = |bytes: u64| bytes as f64 / 1e3 / n as f64;
        let (bridge, phone_late, wa_late) = (&tally.bridge, tally.phone, tally.wa);
        let worst_feeder_ms = health.worst_tick_late_us.load(Ordering::Relaxed) as f64 / 1000.0;
        let feeder_errors = health.send_errors.load(Ordering::Relaxed);
        let sipp_pct = sipp_ticks as f64 * 10.0 / split.wall.as_secs_f64();
        println!(
            "bridges: {} ticks, {} late, worst {:.1} ms; far end worst: phone {:.1} ms, Meta \
             {:.1} ms; feeders worst tick {worst_feeder_ms:.1} ms late, {feeder_errors} send \
             errors; jitter buffers: {} lost, {} late, {} skipped; {} comfort-noise frames to \
             WhatsApp; gateway {:.1} µs, feeders {:.1} µs per call per 20 ms; RSS per call: \
             {:.0} KB once the two peers (ours and the fake Meta) are connected, {:.0} KB more \
             once media flows (the bridge, both peers' media state; the feeders' logs left out)",
            bridge.ticks,
            bridge.late_ticks,
            bridge.max_tick_lateness_us as f64 / 1000.0,
            phone_late.max_us as f64 / 1000.0,
            wa_late.max_us as f64 / 1000.0,
            bridge.jitter.lost,
            bridge.jitter.late,
            bridge.jitter.skipped,
            bridge.wa_comfort_noise_frames,
            per_call(split.gateway),
            per_call(split.feeder),
            kb_per_call(rss_connected.saturating_sub(rss0)),
            kb_per_call(rss_running.saturating_sub(rss_connected)),
        );
        if phones == Phones::Sipp {
            println!("sipp -rtp_echo used {sipp_pct:.1} % of one core");
        }
        let pct = |a: u64, b: u64| 100.0 * a as f64 / b.max(1) as f64;
        let received = |frames: u64| 100.0 * frames as f64 / (tally.expected * n as f64);
        let fields = [
            ("n", n as f64),
            ("ok", tally.ok as f64),
            ("setup_s", setup_s),
            ("ticks", bridge.ticks as f64),
            ("late_ticks", bridge.late_ticks as f64),
            ("late_pct", pct(bridge.late_ticks, bridge.ticks)),
            ("max_late_ms", bridge.max_tick_lateness_us as f64 / 1000.0),
            ("phone_late_pct", pct(phone_late.late, phone_late.frames)),
            ("phone_max_ms", phone_late.max_us as f64 / 1000.0),
            ("wa_late_pct", pct(wa_late.late, wa_late.frames)),
            ("wa_max_ms", wa_late.max_us as f64 / 1000.0),
            ("phone_recv_pct", received(phone_late.frames)),
            ("wa_recv_pct", received(wa_late.frames)),
            ("gw_cpu_pct", Split::pct(split.gateway, split.wall)),
            ("feed_cpu_pct", Split::pct(split.feeder, split.wall)),
            ("other_cpu_pct", Split::pct(split.other, split.wall)),
            ("elsewhere_cpu_pct", Split::pct(split.elsewhere, split.wall)),
            ("steal_pct", Split::pct(split.steal, split.wall)),
            ("sipp_cpu_pct", sipp_pct),
            ("gw_us_per_call", per_call(split.gateway)),
            ("feed_us_per_call", per_call(split.feeder)),
            ("rss_mb", rss_running as f64 / 1e6),
            (
                "rss_kb_per_call",
                kb_per_call(rss_running.saturating_sub(rss0)),
            ),
            (
                "rss_kb_per_pair",
                kb_per_call(rss_connected.saturating_sub(rss0)),
            ),
            (
                "rss_kb_per_bridge",
                kb_per_call(rss_running.saturating_sub(rss_connected)),
            ),
            ("feeder_max_late_ms", worst_feeder_ms),
            ("feeder_send_errors", feeder_errors as f64),
            ("jitter_lost", bridge.jitter.lost as f64),
            ("jitter_late", bridge.jitter.late as f64),
            ("jitter_skipped", bridge.jitter.skipped as f64),
            ("cn_frames", bridge.wa_comfort_noise_frames as f64),
        ];
        let row: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("ROW {}", row.join(" "));
    });
    // Hundreds of peer connections need not be torn down one by one.
    std::process::exit(0);
}

fn renice_feeders(feed: &Runtime, plan: &Plan) {
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

/// Sets up `n` calls, [`SETUP_PARALLEL`] at a time. Failures are returned, not hidden.
async fn set_up(
    n: usize,
    gw: &Runtime,
    feed: &Runtime,
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

/// The fake phones' sockets, [`PHONES_PER_SOCKET`] calls each (none when sipp answers).
async fn bind_phone_sockets(feed: &Runtime, calls: &[Call], sipp: bool) -> Vec<Arc<UdpSocket>> {
    let groups = if sipp {
        0
    } else {
        calls.len().div_ceil(PHONES_PER_SOCKET)
    };
    feed.spawn(async move {
        let mut v = Vec::new();
        for _ in 0..groups {
            let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            v.push(Arc::new(s));
        }
        v
    })
    .await
    .expect("phone sockets")
}

/// One bridge per leg, phone attached and accepted; spread over the 20 ms so that their
/// ticks do not all fall in the same millisecond. Runs on the gateway runtime.
async fn spawn_bridges(
    legs: Vec<WebRtcLeg>,
    settings: BridgeSettings,
    phones: Vec<SocketAddr>,
) -> Vec<(BridgeHandle, SocketAddr)> {
    let per_ms = legs.len().div_ceil(SLOTS).max(1);
    let mut out = Vec::new();
    for (i, leg) in legs.into_iter().enumerate() {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let rtcp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let rtp_addr = rtp.local_addr().expect("addr");
        let phone = phones[(i / PHONES_PER_SOCKET).min(phones.len() - 1)];
        let handle = spawn_bridge(leg, settings.clone());
        let media = PhoneMedia {
            rtp,
            rtcp,
            remote_rtp: phone,
            remote_rtcp: phone,
            codec: G711::Pcmu,
            dtmf_pt: None,
        };
        for cmd in [BridgeCommand::AttachPhone(media), BridgeCommand::Accept] {
            handle
                .commands
                .send(cmd)
                .await
                .expect("bridge takes commands");
        }
        out.push((handle, rtp_addr));
        if (i + 1) % per_ms == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    out
}

/// Fake phones (when there are phone sockets) and fake Metas, at real-time pace.
fn start_feeders(
    feed: &Runtime,
    calls: &[Call],
    bridges: &[(BridgeHandle, SocketAddr)],
    phone_sockets: &[Arc<UdpSocket>],
    speech: &Speech,
    health: &FeederHealth,
) -> Vec<JoinHandle<()>> {
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
            health.worst_tick_late_us.clone(),
            health.send_errors.clone(),
        )));
    }
    let metas: Vec<MetaFeed> = calls
        .iter()
        .enumerate()
        .map(|(i, c)| MetaFeed {
            sender: c.meta.sender().clone(),
            slot: i % SLOTS,
            seq: 0,
            ts: 0,
            packet: i * 53,
        })
        .collect();
    let packets: Vec<Bytes> = speech
        .meta_packets
        .iter()
        .map(|p| Bytes::from(p.clone()))
        .collect();
    feeders.push(feed.spawn(meta_sender(
        metas,
        packets,
        health.worst_tick_late_us.clone(),
        health.send_errors.clone(),
    )));
    feeders
}

type Ended = Result<(BridgeStats, Vec<BridgeEvent>), String>;

async fn hang_up(bridges: Vec<(BridgeHandle, SocketAddr)>) -> Vec<Ended> {
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

/// The calls' outcome: bridge statistics summed, far-end lateness, and which calls did not
/// work (a call counts as working only if everything about it checks out).
struct Tally {
    bridge: BridgeStats,
    phone: Lateness,
    wa: Lateness,
    ok: usize,
    problems: Vec<String>,
    /// Frames due per call in the window.
    expected: f64,
}

impl Tally {
    fn of(calls: &mut [Call], ended: &[Ended], phones: Phones, split: &Split) -> Tally {
        let mut t = Tally {
            bridge: BridgeStats::default(),
            phone: Lateness::default(),
            wa: Lateness::default(),
            ok: 0,
            problems: Vec::new(),
            expected: (split.wall.as_millis() / TICK.as_millis()) as f64,
        };
        for (i, (call, end)) in calls.iter_mut().zip(ended).enumerate() {
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
            t.phone.add(at_phone);
            t.wa.add(at_meta);
            let mut why = match end {
                Ok((stats, events)) => {
                    add_stats(&mut t.bridge, stats);
                    bridge_problems(stats, events)
                }
                Err(e) => vec![e.clone()],
            };
            let mut heard = vec![("Meta", at_meta.frames)];
            if phones == Phones::Fake {
                heard.push(("phone", at_phone.frames));
            }
            for (side, got) in heard {
                if (got as f64) < 0.9 * t.expected {
                    why.push(format!("{side} heard {got} of {:.0} frames", t.expected));
                }
            }
            let broken = failures(&mut call.meta);
            if !broken.is_empty() {
                why.push(format!("fake Meta saw {broken:?}"));
            }
            if why.is_empty() {
                t.ok += 1;
            } else {
                t.problems.push(format!("call {i}: {}", why.join(", ")));
            }
        }
        t
    }

    fn print_problems(&self, calls: usize) {
        for p in self.problems.iter().take(PROBLEMS_SHOWN) {
            println!("{p}");
        }
        if self.problems.len() > PROBLEMS_SHOWN {
            println!("... {} of {calls} calls with problems", self.problems.len());
        }
    }
}

fn bridge_problems(stats: &BridgeStats, events: &[BridgeEvent]) -> Vec<String> {
    let mut why = Vec::new();
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
                    BridgeEvent::WebRtcFailed { .. } | BridgeEvent::MediaTimeout { .. }
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
    why
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

/// Late far-end frames per second of the window: a stall of the whole machine shows as a
/// spike, steady overload as a floor.
fn late_histogram(calls: &[Call], window_start: Duration, window: Duration) {
    let secs = window.as_secs().max(1) as usize;
    let mut bins = [vec![0u64; secs], vec![0u64; secs]];
    let start_us = window_start.as_micros() as i64;
    for call in calls {
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
}
