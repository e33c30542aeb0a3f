//! Part 2: what webrtc-rs costs per packet on our hot path, and plain UDP for comparison.
//!
//! Our leg and a fake Meta in one process, each peer on its own one-thread runtime, so each
//! thread's CPU time is one peer's work. One packet per millisecond for a few seconds. CPU
//! per packet is a thread's CPU over the run, less what the same thread uses in the same
//! time without packets (at rest, or running the same 1 ms timer loop with nothing to send),
//! divided by the packets that arrived.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use whatsip::media::webrtc_leg::{answer_offer, WebRtcConfig, WebRtcEvent, WebRtcLeg};
use whatsip::sandbox::wa_peer::{RawPeer, WaPeerEvent};

use crate::arrivals::Arrivals;
use crate::common::Stat;
use crate::cpu::{self, Snapshot, Split};
use crate::Speech;

const SPACING: Duration = Duration::from_millis(1);
const STEP: Duration = Duration::from_secs(20);
/// Receivers keep reading this long after the sender's last packet.
const TAIL: Duration = Duration::from_millis(300);
const DATAGRAM: [u8; 172] = [0x80; 172];

pub fn leg_config(port_min: u16, port_max: u16) -> WebRtcConfig {
    WebRtcConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        public_ip: None,
        port_min,
        port_max,
    }
}

/// Gateway-side CPU per packet, µs; sends net of the sender's timer wake-up (the bridge's
/// tick pays that once for both legs), receives with their wake-up.
pub struct WebRtcCost {
    pub send_us: f64,
    pub receive_us: f64,
    pub udp_send_us: f64,
    pub udp_receive_us: f64,
    /// One 1 ms-timer wake-up of the gateway thread (a bridge tick pays one).
    pub tick_wake_us: f64,
}

/// CPU per second of wall time of each role during a baseline run.
#[derive(Clone, Copy)]
struct Rates {
    gateway: f64,
    feeder: f64,
}

impl Rates {
    fn of(s: &Split) -> Rates {
        let wall = s.wall.as_secs_f64();
        Rates {
            gateway: s.gateway.as_secs_f64() / wall,
            feeder: s.feeder.as_secs_f64() / wall,
        }
    }
}

/// µs per item of `used` beyond `rate` over `wall`.
fn net_per(used: Duration, rate: f64, wall: Duration, items: u64) -> f64 {
    let extra = used.as_secs_f64() - rate * wall.as_secs_f64();
    extra * 1e6 / items.max(1) as f64
}

pub fn run(speech: &Speech, run_for: Duration) -> WebRtcCost {
    println!("== Part 2: webrtc-rs per packet on our hot path ==");
    println!(
        "our WebRtcLeg and a fake Meta (webrtc-rs, ICE-lite) in one process, each on its own \
         1-thread runtime; 1 packet/ms for {:.0} s per row; thread CPU per packet, net of the \
         thread's CPU at rest",
        run_for.as_secs_f64()
    );
    let gw = cpu::runtime(cpu::GATEWAY, 1);
    let feed = cpu::runtime(cpu::FEEDER, 1);
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("main runtime");
    main.block_on(async {
        let heard = Arc::new(Mutex::new(Arrivals::new(48_000, Instant::now(), 0)));
        let (leg, meta) = connect_pair(gw.handle(), feed.handle(), heard.clone(), 40000)
            .await
            .expect("leg and fake Meta connect");
        println!(
            "SRTP profile negotiated between the two webrtc-rs peers: {}",
            srtp_cipher(&meta).await
        );
        // DTLS done; let the first RTCP and ICE consent checks pass.
        tokio::time::sleep(Duration::from_secs(1)).await;

        let (rest, ()) = measure(tokio::time::sleep(run_for)).await;
        let rest = Rates::of(&rest);
        println!(
            "connected pair at rest (ICE consent, RTCP): our leg {:.2} µs per 20 ms, the peer {:.2}",
            rest.gateway * 20_000.0,
            rest.feeder * 20_000.0
        );
        println!(
            "{:<60} {:>14} {:>14} {:>9}",
            "per packet (µs of thread CPU)", "gateway side", "peer side", "arrived"
        );
        let row = |what: &str, gw_us: f64, peer_us: f64, arrived: String| {
            println!("{what:<60} {gw_us:>14.2} {peer_us:>14.2} {arrived:>9}");
        };

        let (split, (a, b)) = measure(async {
            let a = gw.spawn(paced(run_for, |_| async {}));
            let b = feed.spawn(paced(run_for, |_| async {}));
            (a.await.expect("tick loop"), b.await.expect("tick loop"))
        })
        .await;
        let gw_wake = net_per(split.gateway, rest.gateway, split.wall, a);
        let feed_wake = net_per(split.feeder, rest.feeder, split.wall, b);
        row("1 ms timer wake-up alone (both sides)", gw_wake, feed_wake, "-".into());

        // Our leg sends, Meta receives.
        let before = heard.lock().expect("unpoisoned").packets;
        let payloads = speech.our_packets.clone();
        let (split, (leg, walls)) = measure(async {
            gw.spawn(async move {
                let walls = Mutex::new(Vec::new());
                paced(run_for, |i| {
                    let (leg, payloads, walls) = (&leg, &payloads, &walls);
                    async move {
                        let p = &payloads[i % payloads.len()];
                        let t = Instant::now();
                        leg.send_audio(p, (i as u32).wrapping_mul(960), false)
                            .await
                            .expect("send_audio");
                        let us = t.elapsed().as_secs_f64() * 1e6;
                        walls.lock().expect("unpoisoned").push(us);
                    }
                })
                .await;
                (leg, walls.into_inner().expect("unpoisoned"))
            })
            .await
            .expect("sender")
        })
        .await;
        tokio::time::sleep(TAIL).await;
        let arrived = heard.lock().expect("unpoisoned").packets - before;
        let send_us = net_per(split.gateway, rest.gateway, split.wall, arrived);
        row(
            "send: timer, send_audio, interceptors, SRTP, UDP / peer receives",
            send_us,
            net_per(split.feeder, rest.feeder, split.wall, arrived),
            format!("{arrived}/{}", walls.len()),
        );

        // Meta sends, our leg receives.
        let meta_out = meta.sender().clone();
        let meta_packets: Vec<Bytes> =
            speech.meta_packets.iter().map(|p| Bytes::from(p.clone())).collect();
        let sender = feed.spawn(paced(run_for, move |i| {
            let payload = meta_packets[i % meta_packets.len()].clone();
            let ts = (i as u32).wrapping_mul(960);
            let meta_out = meta_out.clone();
            async move {
                meta_out
                    .send_opus(i as u16, ts, i == 0, payload)
                    .await
                    .expect("fake Meta sends")
            }
        }));
        let receiver = gw.spawn(async move {
            let mut leg = leg;
            let mut got = 0u64;
            let end = tokio::time::Instant::now() + run_for + TAIL;
            while let Ok(Some(_)) = tokio::time::timeout_at(end, leg.incoming().recv()).await {
                got += 1;
            }
            (leg, got)
        });
        let (split, (sent, (leg, got))) = measure_tasks(sender, receiver).await;
        let receive_us = net_per(split.gateway, rest.gateway, split.wall, got);
        row(
            "receive: UDP, SRTP, interceptors, track, incoming channel, reader / peer sends",
            receive_us,
            net_per(split.feeder, rest.feeder, split.wall, sent),
            format!("{got}/{sent}"),
        );
        if leg.dropped_incoming() > 0 {
            println!("  the leg dropped {} incoming packets", leg.dropped_incoming());
        }

        let (udp_send_us, udp_receive_us) = plain_udp(&gw, &feed, run_for, rest, row).await;
        println!(
            "the send_audio call itself (wall, µs): {}",
            Stat::of(&walls).show()
        );
        println!(
            "webrtc-rs per call per 20 ms (one packet each way, wake-ups included): {:.1} µs; \
             without the sender's timer wake-up {:.1} µs; the phone leg's plain RTP the same \
             way: {:.1} µs\n",
            send_us + receive_us,
            send_us - gw_wake + receive_us,
            udp_send_us + udp_receive_us
        );
        leg.close().await;
        WebRtcCost {
            send_us: send_us - gw_wake,
            receive_us,
            udp_send_us: udp_send_us - gw_wake,
            udp_receive_us,
            tick_wake_us: gw_wake,
        }
    })
}

/// Our leg answering a fake Meta, connected both ways. The fake Meta is made on `feed`'s
/// runtime and our leg on `gw`'s, so each peer's driver runs there.
pub async fn connect_pair(
    gw: &Handle,
    feed: &Handle,
    heard: Arc<Mutex<Arrivals>>,
    port_min: u16,
) -> Result<(WebRtcLeg, RawPeer), String> {
    let (leg, meta) = answer_pair(gw, feed, heard, port_min).await?;
    let mut leg = leg;
    match tokio::time::timeout(STEP, leg.events().recv()).await {
        Ok(Some(WebRtcEvent::Connected)) => Ok((leg, meta)),
        other => Err(format!("our leg: {other:?}")),
    }
}

/// Like [`connect_pair`], but leaves our leg's `Connected` event unread (for a bridge).
pub async fn answer_pair(
    gw: &Handle,
    feed: &Handle,
    heard: Arc<Mutex<Arrivals>>,
    port_min: u16,
) -> Result<(WebRtcLeg, RawPeer), String> {
    // What the fake Meta hears is only counted and time-stamped, never decoded.
    let on_rtp = move |at, packet: rtc::rtp::Packet| {
        heard
            .lock()
            .expect("unpoisoned")
            .record(at, packet.header.timestamp);
    };
    let (meta, offer) = feed
        .spawn(RawPeer::offer(IpAddr::V4(Ipv4Addr::LOCALHOST), on_rtp))
        .await
        .map_err(|e| format!("fake Meta task: {e}"))?
        .map_err(|e| format!("fake Meta: {e}"))?;
    let config = leg_config(port_min, port_min + 19_999);
    let (leg, answer) = gw
        .spawn(async move { answer_offer(&offer, &config).await })
        .await
        .map_err(|e| format!("answer task: {e}"))?
        .map_err(|e| format!("answer: {e}"))?;
    let meta = feed
        .spawn(async move {
            let mut meta = meta;
            connect(&mut meta, &answer).await.map(|()| meta)
        })
        .await
        .map_err(|e| format!("connect task: {e}"))??;
    Ok((leg, meta))
}

/// Gives the fake Meta our answer and waits until ICE and DTLS are up.
async fn connect(meta: &mut RawPeer, answer: &str) -> Result<(), String> {
    meta.accept_answer(answer)
        .await
        .map_err(|e| format!("fake Meta refused our answer: {e}"))?;
    match meta.settled(STEP).await {
        Ok(WaPeerEvent::Connected) => Ok(()),
        Ok(e) => Err(format!("fake Meta {e:?}")),
        Err(e) => Err(format!("fake Meta not connected: {e}")),
    }
}

/// The SRTP protection profile DTLS settled on, from the fake Meta's stats.
pub async fn srtp_cipher(meta: &RawPeer) -> String {
    meta.srtp_cipher().await.unwrap_or_else(|| "unknown".into())
}

/// The fake Meta's connection events since the last look that mean the call is broken.
pub fn failures(meta: &mut RawPeer) -> Vec<WaPeerEvent> {
    let mut bad = Vec::new();
    while let Ok(e) = meta.events().try_recv() {
        if matches!(e, WaPeerEvent::Failed(_) | WaPeerEvent::Closed) {
            bad.push(e);
        }
    }
    bad
}

/// Runs `f(i)` every [`SPACING`] for `run_for`; returns how many ran.
async fn paced<F, Fut>(run_for: Duration, mut f: F) -> u64
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let n = (run_for.as_nanos() / SPACING.as_nanos()) as usize;
    let mut tick = tokio::time::interval(SPACING);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for i in 0..n {
        tick.tick().await;
        f(i).await;
    }
    n as u64
}

async fn measure<T>(f: impl Future<Output = T>) -> (Split, T) {
    let before = Snapshot::take();
    let out = f.await;
    (Snapshot::take().since(&before), out)
}

/// [`measure`] over two tasks already spawned, until both have ended.
async fn measure_tasks<A, B>(sender: JoinHandle<A>, receiver: JoinHandle<B>) -> (Split, (A, B)) {
    measure(async {
        let sent = sender.await.expect("sender");
        (sent, receiver.await.expect("receiver"))
    })
    .await
}

async fn plain_udp(
    gw: &Runtime,
    feed: &Runtime,
    run_for: Duration,
    rest: Rates,
    row: impl Fn(&str, f64, f64, String),
) -> (f64, f64) {
    let bind = || async { Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind")) };
    let gw_sock = gw.spawn(bind()).await.expect("bind task");
    let feed_sock = feed.spawn(bind()).await.expect("bind task");
    let gw_addr: SocketAddr = gw_sock.local_addr().expect("addr");
    let feed_addr: SocketAddr = feed_sock.local_addr().expect("addr");

    let drain = feed.spawn(count_datagrams(feed_sock.clone(), run_for + TAIL));
    let s = gw_sock.clone();
    let (split, (sent, received)) = measure(async {
        let sent = gw
            .spawn(paced(run_for, move |_| {
                let s = s.clone();
                async move {
                    let _ = s.send_to(&DATAGRAM, feed_addr).await;
                }
            }))
            .await
            .expect("send");
        (sent, drain.await.expect("drain"))
    })
    .await;
    let send_us = net_per(split.gateway, rest.gateway, split.wall, received);
    row(
        "plain RTP, 172-byte datagrams: timer, send_to / recv_from",
        send_us,
        net_per(split.feeder, rest.feeder, split.wall, received),
        format!("{received}/{sent}"),
    );

    let s = feed_sock.clone();
    let feeder = feed.spawn(paced(run_for, move |_| {
        let s = s.clone();
        async move {
            let _ = s.send_to(&DATAGRAM, gw_addr).await;
        }
    }));
    let reader = gw.spawn(count_datagrams(gw_sock.clone(), run_for + TAIL));
    let (split, (sent, got)) = measure_tasks(feeder, reader).await;
    let receive_us = net_per(split.gateway, rest.gateway, split.wall, got);
    row(
        "plain RTP: recv_from / timer, send_to",
        receive_us,
        net_per(split.feeder, rest.feeder, split.wall, sent),
        format!("{got}/{sent}"),
    );
    (send_us, receive_us)
}

async fn count_datagrams(socket: Arc<UdpSocket>, run_for: Duration) -> u64 {
    let mut buf = [0u8; 1500];
    let mut n = 0u64;
    let end = tokio::time::Instant::now() + run_for;
    while let Ok(Ok(_)) = tokio::time::timeout_at(end, socket.recv_from(&mut buf)).await {
        n += 1;
    }
    n
}
