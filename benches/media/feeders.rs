//! The feeders of part 3: fake phones and fake Metas sending recorded packets at real-time
//! pace and time-stamping what comes back, and sipp as a real RTP peer for the phones.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::time::MissedTickBehavior;
use whatsip::media::rtp_header::{self, RtpHeader};
use whatsip::media::transcode::G711_FRAME;
use whatsip::sandbox::wa_peer::RawSender;

use crate::arrivals::{Arrivals, WINDOW};

/// Feeders send in 1 ms slots: call i in slot i % 20.
pub const SLOTS: usize = 20;

pub struct FakePhone {
    pub bridge: SocketAddr,
    pub slot: usize,
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    /// Index into the recorded frames.
    pub frame: usize,
}

/// Every 20 ms, one µ-law frame from each phone, phones spread over 1 ms slots.
pub async fn phone_sender(
    socket: Arc<UdpSocket>,
    mut phones: Vec<FakePhone>,
    frames: Vec<[u8; G711_FRAME]>,
    late_us: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) {
    let mut buf = [0u8; 12 + G711_FRAME];
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for m in 0usize.. {
        let due = tick.tick().await;
        note_late(&late_us, due);
        for p in phones.iter_mut().filter(|p| p.slot == m % SLOTS) {
            let h = RtpHeader {
                marker: p.seq == 0,
                payload_type: 0,
                sequence: p.seq,
                timestamp: p.ts,
                ssrc: p.ssrc,
            };
            let len = rtp_header::write_packet(&h, &frames[p.frame % frames.len()], &mut buf)
                .expect("fits");
            if socket.try_send_to(&buf[..len], p.bridge).is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            p.seq = p.seq.wrapping_add(1);
            p.ts = p.ts.wrapping_add(G711_FRAME as u32);
            p.frame += 1;
        }
    }
}

/// Counts and time-stamps what the bridges send to the phones of one socket.
pub async fn phone_receiver(
    socket: Arc<UdpSocket>,
    heard: HashMap<SocketAddr, Arc<Mutex<Arrivals>>>,
) {
    let mut buf = [0u8; 1500];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let now = Instant::now();
        let Ok(p) = rtp_header::parse(&buf[..n]) else {
            continue;
        };
        // RTCP from the bridges (rtcp-mux here) is not audio.
        if whatsip::media::rtcp::is_rtcp(&buf[..n]) {
            continue;
        }
        if let Some(a) = heard.get(&from) {
            a.lock()
                .expect("unpoisoned")
                .record(now, p.header.timestamp);
        }
    }
}

pub struct MetaFeed {
    pub sender: RawSender,
    pub slot: usize,
    pub seq: u16,
    pub ts: u32,
    pub packet: usize,
}

/// Every 20 ms, one pre-encoded Opus packet from each fake Meta, spread over 1 ms slots.
pub async fn meta_sender(
    mut metas: Vec<MetaFeed>,
    packets: Vec<Bytes>,
    late_us: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    for m in 0usize.. {
        let due = tick.tick().await;
        note_late(&late_us, due);
        for f in metas.iter_mut().filter(|f| f.slot == m % SLOTS) {
            let payload = packets[f.packet % packets.len()].clone();
            let sent = f.sender.send_opus(f.seq, f.ts, f.seq == 0, payload).await;
            if sent.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            f.seq = f.seq.wrapping_add(1);
            f.ts = f.ts.wrapping_add(960);
            f.packet += 1;
        }
    }
}

fn note_late(worst_us: &AtomicU64, due: tokio::time::Instant) {
    if !WINDOW.load(Ordering::Relaxed) {
        return;
    }
    let late = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
    worst_us.fetch_max(late, Ordering::Relaxed);
}

/// sipp as the far end of every phone leg: one UAS whose `-rtp_echo` sends each RTP packet
/// back to where it came from, so each bridge hears its own G.711 back as the phone's audio.
pub struct SippEcho {
    child: std::process::Child,
    pub addr: SocketAddr,
}

impl SippEcho {
    pub fn start() -> Result<SippEcho, String> {
        let free = || {
            StdUdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .map_err(|e| e.to_string())
        };
        let (sip, media, ctrl) = (free()?, free()?, free()?);
        let child = std::process::Command::new("sipp")
            .args(["-sn", "uas", "-i", "127.0.0.1", "-nostdin", "-rtp_echo"])
            .args(["-p", &sip.to_string(), "-mp", &media.to_string()])
            .args(["-cp", &ctrl.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("sipp: {e}"))?;
        let sipp = SippEcho {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], media)),
        };
        // Ready when it echoes.
        let probe = StdUdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        probe
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        let mut sipp = sipp;
        for _ in 0..75 {
            let _ = probe.send_to(&[0x80, 0, 0, 0], sipp.addr);
            if probe.recv_from(&mut buf).is_ok() {
                return Ok(sipp);
            }
            if let Ok(Some(status)) = sipp.child.try_wait() {
                return Err(format!("sipp exited: {status}"));
            }
        }
        Err("sipp did not echo within 15 s".into())
    }

    /// utime + stime so far, in USER_HZ ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        rest.split_whitespace()
            .skip(11)
            .take(2)
            .filter_map(|x| x.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for SippEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
