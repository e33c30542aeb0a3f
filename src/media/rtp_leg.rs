//! The per-call G.711 RTP leg: one tokio task owning the RTP and RTCP sockets, started by the
//! SIP side after a 200 OK. All protocol decisions live in [`super::leg_core::LegCore`]; this
//! file reads the clock and the sockets and carries out what the core says.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{self, Instant, MissedTickBehavior};

use super::g711::G711;
use super::leg_core::{LegConfig, LegCore, StreamStart, MAX_FRAME};
use super::record::RecordTap;
use super::rtp_header::HEADER_LEN;

/// Frames we are willing to send late in a burst after a scheduler stall; see `run`.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);
const DATAGRAM: usize = 1500;
const STOPPED_SEND_WAIT: Duration = Duration::from_secs(1);
const _: () = assert!(HEADER_LEN + MAX_FRAME <= DATAGRAM);

/// A phone's (or PBX's) negotiated G.711 stream. The sockets are the owner's from here on.
#[derive(Debug)]
pub struct PhoneMedia {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// From the phone's SDP; replaced by the real source on its first packet (symmetric RTP).
    pub remote_rtp: SocketAddr,
    /// RTP port + 1 normally; equal to `remote_rtp` for rtcp-mux (RFC 5761).
    pub remote_rtcp: SocketAddr,
    pub codec: G711,
    /// Negotiated telephone-event/8000 payload type, if any.
    pub dtmf_pt: Option<u8>,
}

pub struct RtpLegParams {
    pub media: PhoneMedia,
    /// Packet time in ms, 1..=60 (20 almost everywhere).
    pub ptime_ms: u32,
    /// Silence from the peer after which [`RtpEvent::MediaTimeout`] is emitted.
    pub media_timeout: Duration,
    /// RFC 3550 §6.2 gives 5 s as the minimum for normal sessions; tests shorten it.
    pub rtcp_interval: Duration,
}

impl RtpLegParams {
    /// Defaults: RTCP on port + 1, no telephone-event, 20 ms, 30 s media timeout, RTCP every 5 s.
    pub fn new(
        rtp: UdpSocket,
        rtcp: UdpSocket,
        remote_rtp: SocketAddr,
        codec: G711,
    ) -> RtpLegParams {
        let remote_rtcp = SocketAddr::new(remote_rtp.ip(), remote_rtp.port().wrapping_add(1));
        RtpLegParams {
            media: PhoneMedia { rtp, rtcp, remote_rtp, remote_rtcp, codec, dtmf_pt: None },
            ptime_ms: 20,
            media_timeout: Duration::from_secs(30),
            rtcp_interval: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpCommand {
    /// Play 8 kHz mono PCM, replacing whatever was playing.
    Play {
        samples: Arc<[i16]>,
        looped: bool,
    },
    StopPlayback,
    /// Queue one RFC 4733 digit; dropped with a warning if the peer has no telephone-event.
    SendDtmf(char),
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtpEvent {
    /// The first valid RTP packet arrived (and the leg latched onto its source).
    FirstPacket {
        from: SocketAddr,
    },
    Dtmf(char),
    /// A non-looped `Play` reached its end.
    PlaybackFinished,
    /// Nothing received for `media_timeout`; emitted once per silence, re-armed by media.
    MediaTimeout,
    Stopped(RtpLegStats),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpLegStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Payload octets, as RTCP counts them.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Cumulative loss from sequence gaps (RFC 3550 A.3); negative with duplicates.
    pub lost: i64,
    /// Interarrival jitter (RFC 3550 A.8) in 8 kHz timestamp units.
    pub jitter: u32,
    pub rtcp_received: u64,
    /// Packets dropped: not RTP, wrong payload type, wrong source.
    pub ignored: u64,
    pub send_errors: u64,
    /// Where media went at the end: the SDP address or the latched source.
    pub remote: SocketAddr,
}

impl RtpLegStats {
    pub(super) fn new(remote: SocketAddr) -> RtpLegStats {
        RtpLegStats {
            packets_sent: 0,
            packets_received: 0,
            bytes_sent: 0,
            bytes_received: 0,
            lost: 0,
            jitter: 0,
            rtcp_received: 0,
            ignored: 0,
            send_errors: 0,
            remote,
        }
    }

    pub fn jitter_ms(&self) -> f32 {
        self.jitter as f32 * 1000.0 / G711::CLOCK_RATE as f32
    }
}

#[derive(Debug, Error)]
pub enum RtpLegError {
    #[error("unsupported ptime {0} ms (1-60 ms)")]
    Ptime(u32),
    #[error("RTP/RTCP socket: {0}")]
    Socket(#[from] io::Error),
}

/// How the task ended: final stats, the recording if one was asked for, and the socket error
/// that ended it, if any.
#[derive(Debug)]
pub struct RtpLegOutcome {
    pub stats: RtpLegStats,
    pub record: Option<RecordTap>,
    pub error: Option<RtpLegError>,
}

/// A running leg, as handed to whoever started it (the call actor).
#[derive(Debug)]
pub struct RtpLeg {
    /// Dropping this sender stops the leg like [`RtpCommand::Stop`].
    pub commands: mpsc::Sender<RtpCommand>,
    /// Ends with [`RtpEvent::Stopped`].
    pub events: mpsc::Receiver<RtpEvent>,
    pub task: JoinHandle<RtpLegOutcome>,
}

/// Starts the leg on the current tokio runtime.
pub fn spawn_rtp_leg(
    params: RtpLegParams,
    record: Option<RecordTap>,
) -> Result<RtpLeg, RtpLegError> {
    if !(1..=60).contains(&params.ptime_ms) {
        return Err(RtpLegError::Ptime(params.ptime_ms));
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let (ev_tx, ev_rx) = mpsc::channel(64);
    let task = tokio::spawn(run(params, record, cmd_rx, ev_tx));
    Ok(RtpLeg {
        commands: cmd_tx,
        events: ev_rx,
        task,
    })
}

async fn run(
    params: RtpLegParams,
    mut tap: Option<RecordTap>,
    mut commands: mpsc::Receiver<RtpCommand>,
    events: mpsc::Sender<RtpEvent>,
) -> RtpLegOutcome {
    let RtpLegParams { media, rtcp_interval, .. } = params;
    let PhoneMedia { rtp, rtcp, .. } = media;
    let cfg = LegConfig {
        codec: media.codec,
        dtmf_pt: media.dtmf_pt,
        ptime_ms: params.ptime_ms,
        remote_rtp: media.remote_rtp,
        remote_rtcp: media.remote_rtcp,
        media_timeout: params.media_timeout,
    };
    let start = StreamStart {
        ssrc: rand::random(),
        seq: rand::random(),
        timestamp: rand::random(),
    };
    let cname = format!("{:016x}@whatsip", rand::random::<u64>());
    let t0 = Instant::now();
    let mut core = LegCore::new(cfg, start, cname, t0.into_std());
    let ptime = core.ptime();

    // Burst: every packet time owes the peer one packet, and its timestamp advances by one
    // frame, so after a short stall (a busy 2-core box) the missed packets go out at once and
    // the peer's jitter buffer absorbs them with no audio lost and the stream never drifting
    // behind the wall clock. Delay would make the stream permanently late and slower than
    // real time; Skip would drop frames on every hiccup. Stalls longer than MAX_CATCH_UP are
    // not worth bursting: those frames are skipped and the timestamp jumps instead.
    let mut tick = time::interval(ptime);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    // A late report is as good as a timely one and a burst of them is useless: Skip.
    let mut rtcp_tick = time::interval_at(t0 + rtcp_interval, rtcp_interval);
    rtcp_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let timeout = time::sleep_until(t0 + params.media_timeout);
    tokio::pin!(timeout);

    let mut out = [0u8; DATAGRAM];
    let mut rtp_in = [0u8; DATAGRAM];
    let mut rtcp_in = [0u8; DATAGRAM];
    let mut send_errors = 0u64;
    let mut error = None;
    loop {
        // The deadline moves on with every packet received but only ever later, so the timer
        // is re-armed lazily: when it fires early, the core sees media is not due yet and the
        // timer is reset here, instead of on every packet.
        let deadline = core.media_deadline();
        if let Some(d) = deadline {
            if timeout.is_elapsed() {
                timeout.as_mut().reset(Instant::from_std(d));
            }
        }
        tokio::select! {
            // Commands first, so Stop is not starved by a flood of packets.
            biased;
            cmd = commands.recv() => match cmd {
                Some(RtpCommand::Stop) | None => break,
                Some(cmd) => core.on_command(cmd),
            },
            due = tick.tick() => {
                let now = Instant::now();
                let late = now.saturating_duration_since(due);
                if late > MAX_CATCH_UP {
                    let frames = (late.as_millis() / ptime.as_millis()) as u32;
                    tracing::debug!(late_ms = late.as_millis() as u64, frames, "RTP sender stalled; skipping frames");
                    core.skip_frames(frames, tap.as_mut());
                    tick.reset();
                }
                let n = core.on_tick(now.into_std(), &mut out, tap.as_mut());
                if let Err(e) = rtp.send_to(&out[..n], core.rtp_dest()).await {
                    note_send_error(&mut send_errors, core.rtp_dest(), &e);
                }
            }
            r = rtp.recv_from(&mut rtp_in) => match r {
                Ok((n, from)) => core.on_rtp(Instant::now().into_std(), from, &rtp_in[..n], tap.as_mut()),
                Err(e) if transient(&e) => {}
                Err(e) => { error = Some(e.into()); break; }
            },
            r = rtcp.recv_from(&mut rtcp_in) => match r {
                Ok((n, from)) => core.on_rtcp(Instant::now().into_std(), from, &rtcp_in[..n]),
                Err(e) if transient(&e) => {}
                Err(e) => { error = Some(e.into()); break; }
            },
            _ = rtcp_tick.tick() => {
                let n = core.write_rtcp(Instant::now().into_std(), SystemTime::now(), &mut out, false);
                let socket = if core.rtcp_mux() { &rtp } else { &rtcp };
                if let Err(e) = socket.send_to(&out[..n], core.rtcp_dest()).await {
                    note_send_error(&mut send_errors, core.rtcp_dest(), &e);
                }
            }
            () = &mut timeout, if deadline.is_some() => core.on_timeout(Instant::now().into_std()),
        }
        forward_events(&mut core, &events);
    }

    // RFC 3550 §6.6: say BYE so the peer's RTCP state for us ends now, not after a timeout.
    core.finish();
    let n = core.write_rtcp(Instant::now().into_std(), SystemTime::now(), &mut out, true);
    let socket = if core.rtcp_mux() { &rtp } else { &rtcp };
    let _ = socket.send_to(&out[..n], core.rtcp_dest()).await;
    forward_events(&mut core, &events);
    let stats = RtpLegStats {
        send_errors,
        ..core.stats()
    };
    // Bounded wait: an owner that holds the receiver but stopped reading must not keep the task
    // (and its sockets) alive. The outcome reaches whoever awaits the handle regardless.
    let stopped = events.send(RtpEvent::Stopped(stats.clone()));
    if time::timeout(STOPPED_SEND_WAIT, stopped).await.is_err() {
        tracing::warn!("RTP leg event channel full at stop; Stopped event dropped");
    }
    RtpLegOutcome {
        stats,
        record: tap,
        error,
    }
}

/// Events are rare (first packet, digits, timeout); the media loop never waits for a slow
/// consumer: if the channel is full the event is dropped and logged.
fn forward_events(core: &mut LegCore, events: &mpsc::Sender<RtpEvent>) {
    while let Some(ev) = core.poll_event() {
        if let Err(mpsc::error::TrySendError::Full(ev)) = events.try_send(ev) {
            tracing::warn!(?ev, "RTP leg event channel full; event dropped");
        }
    }
}

fn note_send_error(count: &mut u64, to: SocketAddr, e: &io::Error) {
    *count += 1;
    // Once per leg at warn: a dead route fails every 20 ms and would flood the log.
    if *count == 1 {
        tracing::warn!(%to, error = %e, "RTP send failed");
    }
}

/// ICMP errors surfacing on a UDP socket say something about one earlier datagram, not the
/// socket: keep going.
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::super::tone::{dominant_frequency, goertzel_power, sine};
    use super::*;

    struct Side {
        rtp: UdpSocket,
        rtcp: UdpSocket,
        rtp_addr: SocketAddr,
        rtcp_addr: SocketAddr,
    }

    async fn side() -> Side {
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (rtp_addr, rtcp_addr) = (rtp.local_addr().unwrap(), rtcp.local_addr().unwrap());
        Side {
            rtp,
            rtcp,
            rtp_addr,
            rtcp_addr,
        }
    }

    fn params(s: Side, remote_rtp: SocketAddr, remote_rtcp: SocketAddr) -> RtpLegParams {
        let mut p = RtpLegParams {
            rtcp_interval: Duration::from_millis(100),
            ..RtpLegParams::new(s.rtp, s.rtcp, remote_rtp, G711::Pcma)
        };
        p.media.remote_rtcp = remote_rtcp;
        p.media.dtmf_pt = Some(101);
        p
    }

    async fn stop(leg: RtpLeg) -> (RtpLegOutcome, Vec<RtpEvent>) {
        let RtpLeg {
            commands: cmd,
            events: mut ev,
            task: handle,
        } = leg;
        cmd.send(RtpCommand::Stop).await.unwrap();
        let outcome = handle.await.unwrap();
        let mut events = Vec::new();
        while let Ok(e) = ev.try_recv() {
            events.push(e);
        }
        assert!(matches!(events.last(), Some(RtpEvent::Stopped(s)) if *s == outcome.stats));
        (outcome, events)
    }

    #[tokio::test]
    async fn tone_crosses_between_two_legs() {
        let (a, b) = (side().await, side().await);
        let (a_rtp, a_rtcp, b_rtp, b_rtcp) = (a.rtp_addr, a.rtcp_addr, b.rtp_addr, b.rtcp_addr);
        let leg_a = spawn_rtp_leg(params(a, b_rtp, b_rtcp), Some(RecordTap::new(2))).unwrap();
        let leg_b = spawn_rtp_leg(params(b, a_rtp, a_rtcp), Some(RecordTap::new(2))).unwrap();
        let tone: Arc<[i16]> = sine(1000.0, 8000, 0.4, 0.5).into();
        leg_a
            .commands
            .send(RtpCommand::Play {
                samples: tone,
                looped: false,
            })
            .await
            .unwrap();
        time::sleep(Duration::from_millis(650)).await;
        let (out_a, ev_a) = stop(leg_a).await;
        let (out_b, ev_b) = stop(leg_b).await;

        assert!(ev_a.contains(&RtpEvent::PlaybackFinished));
        assert!(ev_b.contains(&RtpEvent::FirstPacket { from: a_rtp }));
        let heard = out_b.record.unwrap().received().to_vec();
        let onset = heard
            .iter()
            .position(|s| s.abs() > 1000)
            .expect("tone heard");
        let tone = &heard[onset..onset + 3000];
        let (hz, db) = dominant_frequency(tone, 8000, 50.0, 3800.0).unwrap();
        assert!((hz - 1000.0).abs() < 1.0, "{hz} Hz");
        assert!((db + 9.03).abs() < 0.5, "{db} dBFS");
        let other = goertzel_power(tone, 8000, 1500.0);
        assert!(10.0 * (goertzel_power(tone, 8000, 1000.0) / other).log10() > 30.0);
        // What A recorded as sent is the same tone.
        let sent = out_a.record.unwrap().sent().to_vec();
        assert!(sent.iter().filter(|s| s.abs() > 1000).count() > 2000);

        let (sa, sb) = (out_a.stats, out_b.stats);
        assert!(
            sa.packets_sent >= 25 && sb.packets_received >= 25,
            "{sa:?} {sb:?}"
        );
        assert_eq!(sb.bytes_received, 160 * sb.packets_received);
        assert_eq!(sb.lost, 0);
        assert!(
            sa.rtcp_received >= 2 && sb.rtcp_received >= 2,
            "{sa:?} {sb:?}"
        );
        assert!(out_a.error.is_none() && out_b.error.is_none());
    }

    #[tokio::test]
    async fn dtmf_digits_arrive_once_over_rtcp_mux() {
        let (a, b) = (side().await, side().await);
        let (a_rtp, b_rtp) = (a.rtp_addr, b.rtp_addr);
        let leg_a = spawn_rtp_leg(params(a, b_rtp, b_rtp), None).unwrap();
        let leg_b = spawn_rtp_leg(params(b, a_rtp, a_rtp), None).unwrap();
        for d in ['1', '#', '1'] {
            leg_a.commands.send(RtpCommand::SendDtmf(d)).await.unwrap();
        }
        time::sleep(Duration::from_millis(600)).await;
        let (out_a, _) = stop(leg_a).await;
        let (out_b, ev_b) = stop(leg_b).await;
        let digits: Vec<char> = ev_b
            .iter()
            .filter_map(|e| {
                if let RtpEvent::Dtmf(d) = e {
                    Some(*d)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(digits, ['1', '#', '1']);
        // RTCP shared the RTP port and was told apart, not counted as media or ignored.
        assert!(out_b.stats.rtcp_received >= 2, "{:?}", out_b.stats);
        assert_eq!(out_b.stats.ignored, 0);
        assert!(out_a.stats.packets_sent >= 25);
    }

    #[tokio::test]
    async fn latches_onto_the_peer_source() {
        let (a, b) = (side().await, side().await);
        // A was told the wrong port (say, an address from before a NAT rewrote it).
        let black_hole = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let wrong = black_hole.local_addr().unwrap();
        let (a_rtp, a_rtcp, b_rtp) = (a.rtp_addr, a.rtcp_addr, b.rtp_addr);
        let leg_a = spawn_rtp_leg(params(a, wrong, wrong), None).unwrap();
        let leg_b = spawn_rtp_leg(params(b, a_rtp, a_rtcp), None).unwrap();
        time::sleep(Duration::from_millis(250)).await;
        let (out_a, ev_a) = stop(leg_a).await;
        let (out_b, ev_b) = stop(leg_b).await;
        assert!(ev_a.contains(&RtpEvent::FirstPacket { from: b_rtp }));
        assert_eq!(out_a.stats.remote, b_rtp);
        // B only hears A because A latched: before that A sent into the black hole.
        assert!(ev_b.contains(&RtpEvent::FirstPacket { from: a_rtp }));
        assert!(out_b.stats.packets_received > 0);
    }

    #[tokio::test]
    async fn media_timeout_is_reported_once() {
        let a = side().await;
        let black_hole = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let wrong = black_hole.local_addr().unwrap();
        let p = RtpLegParams {
            media_timeout: Duration::from_millis(150),
            ..params(a, wrong, wrong)
        };
        let leg = spawn_rtp_leg(p, None).unwrap();
        time::sleep(Duration::from_millis(400)).await;
        let (out, events) = stop(leg).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| **e == RtpEvent::MediaTimeout)
                .count(),
            1
        );
        assert_eq!(out.stats.packets_received, 0);
    }

    #[tokio::test]
    async fn media_timeout_waits_for_media_to_stop() {
        let (a, b) = (side().await, side().await);
        let (a_rtp, a_rtcp, b_rtp, b_rtcp) = (a.rtp_addr, a.rtcp_addr, b.rtp_addr, b.rtcp_addr);
        let short = |p: RtpLegParams| RtpLegParams {
            media_timeout: Duration::from_millis(150),
            ..p
        };
        let mut leg_a = spawn_rtp_leg(short(params(a, b_rtp, b_rtcp)), None).unwrap();
        let leg_b = spawn_rtp_leg(short(params(b, a_rtp, a_rtcp)), None).unwrap();
        time::sleep(Duration::from_millis(350)).await;
        // Media flowed past the first deadline: the timer re-armed instead of firing.
        while let Ok(e) = leg_a.events.try_recv() {
            assert_ne!(e, RtpEvent::MediaTimeout);
        }
        stop(leg_b).await;
        time::sleep(Duration::from_millis(300)).await;
        let (_, events) = stop(leg_a).await;
        let timeouts = events.iter().filter(|e| **e == RtpEvent::MediaTimeout);
        assert_eq!(timeouts.count(), 1);
    }

    #[tokio::test]
    async fn rejects_bad_ptime_and_stops_when_owner_drops() {
        let a = side().await;
        let wrong = a.rtp_addr;
        let p = RtpLegParams {
            ptime_ms: 0,
            ..params(a, wrong, wrong)
        };
        assert!(matches!(spawn_rtp_leg(p, None), Err(RtpLegError::Ptime(0))));

        let a = side().await;
        let target = a.rtp_addr;
        let RtpLeg {
            commands: cmd,
            task: handle,
            ..
        } = spawn_rtp_leg(params(a, target, target), None).unwrap();
        drop(cmd);
        let outcome = time::timeout(Duration::from_secs(1), handle)
            .await
            .unwrap()
            .unwrap();
        assert!(outcome.error.is_none());
    }
}
