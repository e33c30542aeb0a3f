//! The pure state machine behind an RTP leg: packets, ticks and commands in, datagrams and
//! events out. It never reads the clock or touches a socket; `rtp_leg` is the shell that does.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::latch::{Admit, Latch};
use super::dtmf::{DtmfReceiver, DtmfSender, DEFAULT_TONE_MS};
use super::g711::G711;
use super::record::RecordTap;
use super::rtcp::{self, RtcpPacket, SenderInfo};
use super::rtp_header::{self, RtpHeader, HEADER_LEN};
use super::rtp_leg::{RtpCommand, RtpEvent, RtpLegStats};
use super::rx_stats::{RxStats, SeqCheck};

const RATE: u32 = G711::CLOCK_RATE;
/// Largest frame we send (60 ms, the longest ptime phones offer for G.711).
pub(super) const MAX_FRAME: usize = 480;
/// A receive-timestamp jump larger than this (5 s) is a discontinuity, not a gap to fill.
const MAX_FILL: u32 = 5 * RATE;
/// Audio this far past a DTMF event whose end never came means the end packets were lost.
const DTMF_END_GRACE: u32 = RATE / 4;

/// The socket-free part of [`super::rtp_leg::RtpLegParams`].
#[derive(Debug, Clone)]
pub(super) struct LegConfig {
    pub codec: G711,
    pub dtmf_pt: Option<u8>,
    pub ptime_ms: u32,
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub media_timeout: Duration,
}

/// Random starting points for the outgoing stream (RFC 3550 §5.1: SSRC, sequence number and
/// timestamp all start random); passed in so tests are deterministic.
#[derive(Debug, Clone, Copy)]
pub(super) struct StreamStart {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
}

struct Playback {
    samples: Arc<[i16]>,
    pos: usize,
    looped: bool,
}

pub(super) struct LegCore {
    cfg: LegConfig,
    spp: usize,
    ssrc: u32,
    seq: u16,
    /// Timestamp of the next audio frame; advances every packet time, DTMF or not.
    timestamp: u32,
    sent_any: bool,
    playback: Option<Playback>,
    dtmf_tx: Option<DtmfSender>,
    dtmf_queue: VecDeque<char>,
    dtmf_rx: DtmfReceiver,
    rx: RxStats,
    /// Where RTP and RTCP go: the SDP addresses until the first valid packet, then its source.
    rtp_to: Latch,
    rtcp_to: Latch,
    epoch: Instant,
    last_rx: Instant,
    timed_out: bool,
    /// Next expected receive timestamp for the recorder, per source.
    rec_next: Option<(u32, u32)>,
    last_tick: Option<(Instant, u32)>,
    /// LSR and when that SR arrived, for our report block (RFC 3550 §6.4.1).
    last_sr: Option<(u32, Instant)>,
    cname: String,
    stats: RtpLegStats,
    events: VecDeque<RtpEvent>,
    pcm: [i16; MAX_FRAME],
}

impl LegCore {
    /// `cfg.ptime_ms` must be within 1..=60; the shell checks before building the core.
    pub(super) fn new(cfg: LegConfig, start: StreamStart, cname: String, now: Instant) -> LegCore {
        let spp = (RATE * cfg.ptime_ms / 1000) as usize;
        assert!(
            (1..=MAX_FRAME).contains(&spp),
            "ptime validated by the shell"
        );
        LegCore {
            spp,
            ssrc: start.ssrc,
            seq: start.seq,
            timestamp: start.timestamp,
            sent_any: false,
            playback: None,
            dtmf_tx: None,
            dtmf_queue: VecDeque::with_capacity(32),
            dtmf_rx: DtmfReceiver::new(),
            rx: RxStats::default(),
            rtp_to: Latch::new(cfg.remote_rtp),
            rtcp_to: Latch::new(cfg.remote_rtcp),
            epoch: now,
            last_rx: now,
            timed_out: false,
            rec_next: None,
            last_tick: None,
            last_sr: None,
            cname,
            stats: RtpLegStats::new(cfg.remote_rtp),
            events: VecDeque::with_capacity(16),
            pcm: [0; MAX_FRAME],
            cfg,
        }
    }

    pub(super) fn rtp_dest(&self) -> SocketAddr {
        self.rtp_to.dest()
    }

    /// rtcp-mux (RFC 5761) is signalled by an RTCP address equal to the RTP one.
    pub(super) fn rtcp_mux(&self) -> bool {
        self.cfg.remote_rtcp == self.cfg.remote_rtp
    }

    pub(super) fn rtcp_dest(&self) -> SocketAddr {
        if self.rtcp_mux() {
            self.rtp_to.dest()
        } else {
            self.rtcp_to.dest()
        }
    }

    pub(super) fn ptime(&self) -> Duration {
        Duration::from_millis(u64::from(self.cfg.ptime_ms))
    }

    pub(super) fn on_command(&mut self, cmd: RtpCommand) {
        match cmd {
            RtpCommand::Play { samples, looped } => {
                self.playback = Some(Playback {
                    samples,
                    pos: 0,
                    looped,
                });
            }
            RtpCommand::StopPlayback => self.playback = None,
            RtpCommand::SendDtmf(digit) => {
                if self.cfg.dtmf_pt.is_none() {
                    tracing::warn!(%digit, "peer did not negotiate telephone-event; digit dropped");
                } else if super::dtmf::digit_to_event(digit).is_none() {
                    tracing::warn!(?digit, "not a DTMF digit; dropped");
                } else if self.dtmf_queue.len() < self.dtmf_queue.capacity() {
                    self.dtmf_queue.push_back(digit);
                } else {
                    tracing::warn!(%digit, "DTMF queue full; digit dropped");
                }
            }
            // Stopping is the shell's business: it owns the sockets that say goodbye.
            RtpCommand::Stop => {}
        }
    }

    /// One packet time has passed: writes the next RTP datagram into `out`, returns its length.
    pub(super) fn on_tick(
        &mut self,
        now: Instant,
        out: &mut [u8],
        tap: Option<&mut RecordTap>,
    ) -> usize {
        self.last_tick = Some((now, self.timestamp));
        if self.dtmf_tx.is_none() {
            if let Some(digit) = self.dtmf_queue.pop_front() {
                // Validated in on_command, and a 100 ms tone at 8 kHz fits the duration field.
                self.dtmf_tx = DtmfSender::new(
                    digit,
                    self.timestamp,
                    RATE,
                    self.cfg.ptime_ms,
                    DEFAULT_TONE_MS,
                )
                .ok();
            }
        }
        let dtmf_packet = self.dtmf_tx.as_mut().and_then(DtmfSender::next_packet);
        let (header, payload_len) = match (dtmf_packet, self.cfg.dtmf_pt) {
            (Some(p), Some(pt)) => {
                // RFC 4733 §2.5.1.1: same SSRC and sequence space as the audio, timestamp of
                // the event start; the audio pauses meanwhile, so the recorder hears silence.
                let bytes = p.event.to_bytes();
                out[HEADER_LEN..HEADER_LEN + bytes.len()].copy_from_slice(&bytes);
                if let Some(tap) = tap {
                    tap.push_sent_silence(self.spp);
                }
                let h = RtpHeader {
                    marker: p.marker,
                    payload_type: pt,
                    sequence: self.seq,
                    timestamp: p.timestamp,
                    ssrc: self.ssrc,
                };
                (h, bytes.len())
            }
            _ => {
                // An event that has sent its last end packet gives this slot back to audio,
                // which also puts a packet time of audio between consecutive digits.
                self.dtmf_tx = None;
                self.fill_frame();
                let frame = &self.pcm[..self.spp];
                self.cfg
                    .codec
                    .encode(frame, &mut out[HEADER_LEN..HEADER_LEN + self.spp]);
                if let Some(tap) = tap {
                    tap.push_sent(frame);
                }
                let h = RtpHeader {
                    marker: !self.sent_any,
                    payload_type: self.cfg.codec.payload_type(),
                    sequence: self.seq,
                    timestamp: self.timestamp,
                    ssrc: self.ssrc,
                };
                (h, self.spp)
            }
        };
        // Cannot fail: the shell's buffer holds a header plus MAX_FRAME.
        header
            .write(out)
            .expect("output buffer holds an RTP header");
        self.sent_any = true;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.spp as u32);
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += payload_len as u64;
        HEADER_LEN + payload_len
    }

    /// The shell fell `frames` packet times behind and will not send them: move the timestamp
    /// on so it keeps tracking the wall clock (the peer sees a gap, not a slowed-down stream).
    pub(super) fn skip_frames(&mut self, frames: u32, tap: Option<&mut RecordTap>) {
        self.timestamp = self.timestamp.wrapping_add(frames * self.spp as u32);
        if let Some(tap) = tap {
            tap.push_sent_silence(frames as usize * self.spp);
        }
    }

    pub(super) fn on_rtp(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        tap: Option<&mut RecordTap>,
    ) {
        if self.rtcp_mux() && rtcp::is_rtcp(datagram) {
            self.on_rtcp(now, from, datagram);
            return;
        }
        let Ok(packet) = rtp_header::parse(datagram) else {
            self.stats.ignored += 1;
            return;
        };
        let h = packet.header;
        let is_audio = h.payload_type == self.cfg.codec.payload_type();
        let is_dtmf = Some(h.payload_type) == self.cfg.dtmf_pt;
        if !is_audio && !is_dtmf {
            self.stats.ignored += 1;
            return;
        }
        if !self.latch(from) {
            self.stats.ignored += 1;
            return;
        }
        if self.rx.on_packet(h.ssrc, h.sequence) == SeqCheck::Rejected {
            self.stats.ignored += 1;
            return;
        }
        self.last_rx = now;
        self.timed_out = false;
        self.stats.packets_received += 1;
        self.stats.bytes_received += packet.payload.len() as u64;
        if is_dtmf {
            // A malformed event is dropped; the stream itself is fine.
            let _ = self.dtmf_rx.on_packet(h.timestamp, packet.payload);
        } else {
            let arrival = (now.duration_since(self.epoch).as_nanos() * u128::from(RATE)
                / 1_000_000_000) as u32;
            self.rx.on_audio_timing(h.timestamp, arrival);
            self.dtmf_rx.on_audio(h.timestamp, DTMF_END_GRACE);
            if let Some(tap) = tap {
                self.record_received(tap, h.ssrc, h.timestamp, packet.payload);
            }
        }
        while let Some(d) = self.dtmf_rx.poll_digit() {
            self.events.push_back(RtpEvent::Dtmf(d));
        }
    }

    pub(super) fn on_rtcp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.rtcp_received += 1;
        let mut valid = false;
        for packet in rtcp::parse_compound(datagram) {
            match packet {
                Ok(RtcpPacket::SenderReport { info, .. }) => {
                    self.last_sr = Some((rtcp::ntp_middle(info.ntp), now));
                    valid = true;
                }
                Ok(RtcpPacket::Bye { ssrc }) => {
                    tracing::debug!(?ssrc, "RTCP BYE from peer");
                    valid = true;
                }
                Ok(_) => valid = true,
                Err(e) => tracing::debug!(%from, error = %e, "malformed RTCP ignored"),
            }
        }
        if valid {
            // Reports from elsewhere are still read; only where ours go is latched.
            self.rtcp_to.admit(from);
        }
    }

    /// When the shell must call [`LegCore::on_timeout`]; `None` once the timeout has fired
    /// until media comes back.
    pub(super) fn media_deadline(&self) -> Option<Instant> {
        (!self.timed_out).then(|| self.last_rx + self.cfg.media_timeout)
    }

    pub(super) fn on_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.media_deadline() {
            if now >= deadline {
                self.timed_out = true;
                self.events.push_back(RtpEvent::MediaTimeout);
            }
        }
    }

    /// Writes our compound RTCP (SR once we have sent, else RR; SDES; BYE if `bye`).
    pub(super) fn write_rtcp(
        &mut self,
        now: Instant,
        wall: SystemTime,
        out: &mut [u8],
        bye: bool,
    ) -> usize {
        let sender = self.last_tick.map(|(at, ts)| {
            let since = now.saturating_duration_since(at);
            SenderInfo {
                ntp: rtcp::ntp_timestamp(wall),
                rtp_timestamp: ts
                    .wrapping_add((since.as_micros() * u128::from(RATE) / 1_000_000) as u32),
                packet_count: self.stats.packets_sent as u32,
                octet_count: self.stats.bytes_sent as u32,
            }
        });
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (
                lsr,
                (now.saturating_duration_since(at).as_micros() * 65536 / 1_000_000) as u32,
            ),
            None => (0, 0),
        };
        let block = self.rx.report_block(lsr, dlsr);
        // Cannot fail: SR + one block + SDES with a CNAME under 64 bytes + BYE < 200 bytes,
        // and the shell's buffer is a full MTU.
        rtcp::write_compound(
            out,
            self.ssrc,
            sender.as_ref(),
            block.as_ref(),
            &self.cname,
            bye,
        )
        .expect("RTCP fits the output buffer")
    }

    /// The leg is ending: a digit still waiting for its end packets counts as pressed.
    pub(super) fn finish(&mut self) {
        self.dtmf_rx.flush();
        while let Some(d) = self.dtmf_rx.poll_digit() {
            self.events.push_back(RtpEvent::Dtmf(d));
        }
    }

    pub(super) fn poll_event(&mut self) -> Option<RtpEvent> {
        self.events.pop_front()
    }

    pub(super) fn stats(&self) -> RtpLegStats {
        RtpLegStats {
            lost: self.rx.lost(),
            jitter: self.rx.jitter(),
            remote: self.rtp_to.dest(),
            ..self.stats.clone()
        }
    }

    /// Symmetric RTP (see [`Latch`]); the first packet is also reported to the owner.
    fn latch(&mut self, from: SocketAddr) -> bool {
        match self.rtp_to.admit(from) {
            Admit::First => {
                self.events.push_back(RtpEvent::FirstPacket { from });
                true
            }
            Admit::Known => true,
            Admit::Stranger => false,
        }
    }

    fn record_received(&mut self, tap: &mut RecordTap, ssrc: u32, ts: u32, payload: &[u8]) {
        match self.rec_next {
            None => tap.align_received_to_sent(),
            Some((src, next)) if src == ssrc => {
                let ahead = ts.wrapping_sub(next) as i32;
                if ahead < 0 {
                    // Late: its slot in the recording was already filled with silence.
                    return;
                }
                if ahead as u32 <= MAX_FILL {
                    tap.push_received_silence(ahead as usize);
                }
            }
            Some(_) => {} // new source: its timestamps are unrelated, just append
        }
        let mut next = ts;
        for chunk in payload.chunks(MAX_FRAME) {
            let n = self.cfg.codec.decode(chunk, &mut self.pcm);
            tap.push_received(&self.pcm[..n]);
            next = next.wrapping_add(n as u32);
        }
        self.rec_next = Some((ssrc, next));
    }

    fn fill_frame(&mut self) {
        let frame = &mut self.pcm[..self.spp];
        frame.fill(0);
        let Some(pb) = self.playback.as_mut() else {
            return;
        };
        let mut filled = 0;
        while filled < frame.len() && !pb.samples.is_empty() {
            let n = (frame.len() - filled).min(pb.samples.len() - pb.pos);
            frame[filled..filled + n].copy_from_slice(&pb.samples[pb.pos..pb.pos + n]);
            filled += n;
            pb.pos += n;
            if pb.pos == pb.samples.len() {
                if !pb.looped {
                    break;
                }
                pb.pos = 0;
            }
        }
        if pb.pos == pb.samples.len() || pb.samples.is_empty() {
            self.playback = None;
            self.events.push_back(RtpEvent::PlaybackFinished);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dtmf::DtmfEvent;
    use super::super::rtp_header::write_packet;
    use super::*;

    const PEER: &str = "10.0.0.9:4000";
    const NAT: &str = "203.0.113.7:31000";

    fn core(dtmf_pt: Option<u8>) -> (LegCore, Instant) {
        let now = Instant::now();
        let cfg = LegConfig {
            codec: G711::Pcmu,
            dtmf_pt,
            ptime_ms: 20,
            remote_rtp: PEER.parse().unwrap(),
            remote_rtcp: "10.0.0.9:4001".parse().unwrap(),
            media_timeout: Duration::from_secs(2),
        };
        let start = StreamStart {
            ssrc: 0x1234,
            seq: 65534,
            timestamp: 1000,
        };
        (LegCore::new(cfg, start, "test@whatsip".into(), now), now)
    }

    fn tick(c: &mut LegCore, now: Instant, tap: Option<&mut RecordTap>) -> (RtpHeader, Vec<u8>) {
        let mut out = [0u8; 1500];
        let n = c.on_tick(now, &mut out, tap);
        let p = rtp_header::parse(&out[..n]).unwrap();
        (p.header, p.payload.to_vec())
    }

    fn peer_packet(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 1500];
        let h = RtpHeader {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc: 77,
        };
        let n = write_packet(&h, payload, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn events(c: &mut LegCore) -> Vec<RtpEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn idle_leg_sends_marked_then_plain_silence() {
        let (mut c, now) = core(None);
        let (h1, p1) = tick(&mut c, now, None);
        let (h2, _) = tick(&mut c, now, None);
        let (h3, _) = tick(&mut c, now, None);
        assert!(h1.marker && !h2.marker);
        assert_eq!((h1.payload_type, h1.ssrc, h1.timestamp), (0, 0x1234, 1000));
        assert_eq!((h2.sequence, h3.sequence), (65535, 0));
        assert_eq!(h3.timestamp, 1320);
        assert!(p1.len() == 160 && p1.iter().all(|&b| b == 0xFF));
        assert_eq!((c.stats().packets_sent, c.stats().bytes_sent), (3, 480));
    }

    #[test]
    fn playback_once_and_looped() {
        let (mut c, now) = core(None);
        let samples: Arc<[i16]> = (1..=200).map(|i| i * 100).collect::<Vec<i16>>().into();
        c.on_command(RtpCommand::Play {
            samples: samples.clone(),
            looped: false,
        });
        let mut tap = RecordTap::new(1);
        tick(&mut c, now, Some(&mut tap));
        assert!(events(&mut c).is_empty());
        tick(&mut c, now, Some(&mut tap));
        assert_eq!(events(&mut c), [RtpEvent::PlaybackFinished]);
        tick(&mut c, now, Some(&mut tap));
        assert_eq!(&tap.sent()[..200], &samples[..]);
        assert!(tap.sent()[200..].iter().all(|&s| s == 0));

        c.on_command(RtpCommand::Play {
            samples: samples.clone(),
            looped: true,
        });
        let mut tap = RecordTap::new(1);
        for _ in 0..5 {
            tick(&mut c, now, Some(&mut tap));
        }
        assert_eq!(&tap.sent()[200..400], &samples[..]);
        assert!(events(&mut c).is_empty());
        c.on_command(RtpCommand::StopPlayback);
        let (_, p) = tick(&mut c, now, None);
        assert!(p.iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn dtmf_pauses_audio_and_shares_the_stream() {
        let (mut c, now) = core(Some(101));
        let samples: Arc<[i16]> = vec![1000i16; 480].into();
        c.on_command(RtpCommand::Play {
            samples,
            looped: false,
        });
        tick(&mut c, now, None);
        c.on_command(RtpCommand::SendDtmf('9'));
        c.on_command(RtpCommand::SendDtmf('x'));
        let mut tap = RecordTap::new(1);
        let pkts: Vec<_> = (0..8).map(|_| tick(&mut c, now, Some(&mut tap))).collect();
        for (h, p) in &pkts[..7] {
            assert_eq!((h.payload_type, h.timestamp), (101, 1160));
            assert_eq!(DtmfEvent::parse(p).unwrap().event, 9);
        }
        assert!(pkts[0].0.marker && !pkts[1].0.marker);
        assert!(pkts
            .windows(2)
            .all(|w| w[1].0.sequence == w[0].0.sequence.wrapping_add(1)));
        // Audio resumes where it paused, at the timestamp wall-clock time has reached.
        let (h, p) = &pkts[7];
        assert_eq!((h.payload_type, h.timestamp), (0, 1160 + 7 * 160));
        assert!(p.iter().all(|&b| b == G711::Pcmu.encode_sample(1000)));
        assert_eq!(tap.sent().len(), 8 * 160);
        assert!(tap.sent()[..7 * 160].iter().all(|&s| s == 0));
    }

    #[test]
    fn dtmf_without_telephone_event_is_dropped() {
        let (mut c, now) = core(None);
        c.on_command(RtpCommand::SendDtmf('1'));
        assert_eq!(tick(&mut c, now, None).0.payload_type, 0);
    }

    #[test]
    fn latches_once_and_filters_payload_types() {
        let (mut c, now) = core(Some(101));
        let nat: SocketAddr = NAT.parse().unwrap();
        c.on_rtp(now, nat, &peer_packet(18, 1, 0, &[0; 20]), None); // G.729: not ours
        c.on_rtp(now, nat, &[0x40; 20], None); // not RTP v2
        assert_eq!(c.rtp_dest(), PEER.parse::<SocketAddr>().unwrap());
        c.on_rtp(now, nat, &peer_packet(0, 1, 0, &[0xFF; 160]), None);
        assert_eq!(c.rtp_dest(), nat);
        assert_eq!(events(&mut c), [RtpEvent::FirstPacket { from: nat }]);
        // Another source later in the call does not take the stream over.
        c.on_rtp(
            now,
            "198.51.100.9:4000".parse().unwrap(),
            &peer_packet(0, 2, 160, &[0xFF; 160]),
            None,
        );
        assert_eq!(c.rtp_dest(), nat);
        let s = c.stats();
        assert_eq!((s.packets_received, s.ignored, s.remote), (1, 3, nat));
    }

    #[test]
    fn records_with_silence_for_gaps_and_drops_late_packets() {
        let (mut c, now) = core(None);
        let from = PEER.parse().unwrap();
        let mut tap = RecordTap::new(2);
        tick(&mut c, now, Some(&mut tap)); // sent track is 160 ahead when media starts
        let loud = G711::Pcmu.encode_sample(8000);
        c.on_rtp(
            now,
            from,
            &peer_packet(0, 10, 5000, &[loud; 160]),
            Some(&mut tap),
        );
        c.on_rtp(
            now,
            from,
            &peer_packet(0, 11, 5160, &[loud; 160]),
            Some(&mut tap),
        );
        c.on_rtp(
            now,
            from,
            &peer_packet(0, 13, 5480, &[loud; 160]),
            Some(&mut tap),
        );
        c.on_rtp(
            now,
            from,
            &peer_packet(0, 12, 5320, &[loud; 160]),
            Some(&mut tap),
        );
        let r = tap.received();
        assert_eq!(r.len(), 160 + 4 * 160);
        assert!(
            r[..160].iter().all(|&s| s == 0),
            "aligned to the sent track"
        );
        assert!(r[160..480].iter().all(|&s| s > 7000));
        assert!(
            r[480..640].iter().all(|&s| s == 0),
            "lost packet, then late"
        );
        assert!(r[640..].iter().all(|&s| s > 7000));
        assert_eq!(c.stats().lost, 0, "the late packet did arrive");
    }

    #[test]
    fn reports_received_digits_once() {
        let (mut c, now) = core(Some(101));
        let from = PEER.parse().unwrap();
        let mut seq = 1;
        for (digit, ts) in [('4', 800u32), ('4', 2400)] {
            let mut s = DtmfSender::new(digit, ts, 8000, 20, 100).unwrap();
            while let Some(p) = s.next_packet() {
                c.on_rtp(
                    now,
                    from,
                    &peer_packet(101, seq, p.timestamp, &p.event.to_bytes()),
                    None,
                );
                seq += 1;
            }
        }
        // A digit whose end packets were lost is reported when the leg finishes.
        let ev = DtmfEvent {
            event: 2,
            end: false,
            volume: 10,
            duration: 160,
        };
        c.on_rtp(
            now,
            from,
            &peer_packet(101, seq, 4000, &ev.to_bytes()),
            None,
        );
        c.finish();
        let digits: Vec<_> = events(&mut c)
            .into_iter()
            .filter_map(|e| {
                if let RtpEvent::Dtmf(d) = e {
                    Some(d)
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(digits, ['4', '4', '2']);
    }

    #[test]
    fn media_timeout_fires_once_per_silence() {
        let (mut c, start) = core(None);
        assert_eq!(c.media_deadline(), Some(start + Duration::from_secs(2)));
        c.on_timeout(start + Duration::from_secs(1));
        assert!(events(&mut c).is_empty());
        c.on_timeout(start + Duration::from_secs(2));
        assert_eq!(events(&mut c), [RtpEvent::MediaTimeout]);
        assert_eq!(c.media_deadline(), None);
        c.on_timeout(start + Duration::from_secs(3));
        assert!(events(&mut c).is_empty());
        let back = start + Duration::from_secs(4);
        c.on_rtp(
            back,
            PEER.parse().unwrap(),
            &peer_packet(0, 1, 0, &[0xFF; 160]),
            None,
        );
        assert_eq!(c.media_deadline(), Some(back + Duration::from_secs(2)));
    }

    #[test]
    fn rtcp_reports_and_latching() {
        let (mut c, now) = core(None);
        let mut out = [0u8; 1500];
        let n = c.write_rtcp(now, SystemTime::now(), &mut out, false);
        assert!(matches!(
            rtcp::parse_compound(&out[..n]).next(),
            Some(Ok(RtcpPacket::ReceiverReport {
                first_block: None,
                ..
            }))
        ));

        tick(&mut c, now, None);
        c.on_rtp(
            now,
            PEER.parse().unwrap(),
            &peer_packet(0, 1, 0, &[0xFF; 160]),
            None,
        );
        // The peer's SR arrives from a NATed RTCP port; its LSR comes back in our report.
        let mut sr = [0u8; 64];
        let info = SenderInfo {
            ntp: 0x0000_1111_2222_0000,
            ..Default::default()
        };
        let m = rtcp::write_sender_report(&mut sr, 77, &info, None).unwrap();
        let nat: SocketAddr = NAT.parse().unwrap();
        c.on_rtcp(now, nat, &sr[..m]);
        assert_eq!(c.rtcp_dest(), nat);
        let later = now + Duration::from_millis(500);
        let n = c.write_rtcp(later, SystemTime::now(), &mut out, true);
        let packets: Vec<_> = rtcp::parse_compound(&out[..n])
            .map(Result::unwrap)
            .collect();
        let RtcpPacket::SenderReport {
            ssrc,
            info,
            first_block: Some(b),
        } = packets[0]
        else {
            panic!("{packets:?}")
        };
        assert_eq!(
            (ssrc, info.packet_count, info.octet_count),
            (0x1234, 1, 160)
        );
        assert_eq!(info.rtp_timestamp, 1000 + 4000);
        assert_eq!(
            (b.ssrc, b.last_sr, b.delay_since_last_sr),
            (77, 0x1111_2222, 32768)
        );
        assert_eq!(packets[2], RtcpPacket::Bye { ssrc: Some(0x1234) });
        assert_eq!(c.stats().rtcp_received, 1);
    }

    #[test]
    fn skipped_frames_move_the_timestamp() {
        let (mut c, now) = core(None);
        let mut tap = RecordTap::new(1);
        tick(&mut c, now, Some(&mut tap));
        c.skip_frames(10, Some(&mut tap));
        let (h, _) = tick(&mut c, now, Some(&mut tap));
        assert_eq!((h.sequence, h.timestamp), (65535, 1000 + 11 * 160));
        assert_eq!(tap.sent().len(), 12 * 160);
    }
}
