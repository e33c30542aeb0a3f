//! The sandbox peer's media task: one tick per 20 ms for what the user says (nothing while
//! muted), and every packet that arrives, through the simulated loss into the receiver.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rtc::rtp;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;

use super::loss::Loss;
use super::receiver::{PacketKind, Receiver, RtpIn};
use super::source::FrameSource;
use super::{
    rtp_packet, Command, Parts, Sent, WaPeerConfig, WaPeerError, WaPeerEvent, WaPeerReport,
    DTMF_CLOCK, PTIME, RECEIVE_SEED_SALT,
};
use crate::media::dtmf::{DtmfSender, DEFAULT_TONE_MS};
use crate::media::opus::{frame_samples, OpusEncoder, MAX_PACKET, RTP_TIMESTAMP_STEP};

/// The media task: one tick per 20 ms for what the user says, and every packet that arrives.
pub(super) struct Media {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    opus_pt: u8,
    dtmf_pt: Option<u8>,
    epoch: Instant,
    events: mpsc::UnboundedSender<WaPeerEvent>,
    rtcp_seen: Arc<AtomicU64>,
    source: FrameSource,
    encoder: OpusEncoder,
    pcm: Box<[i16]>,
    packet: Box<[u8]>,
    muted: bool,
    /// The next packet starts a talk spurt (RFC 3551 §4.1: marker bit).
    spurt_start: bool,
    seq: u16,
    /// Runs on every tick, muted or not, as a capture clock does (RFC 3550 §5.1).
    timestamp: u32,
    digits: VecDeque<char>,
    dtmf_tx: Option<DtmfSender>,
    send_loss: Loss,
    receive_loss: Loss,
    receiver: Receiver,
    first_audio: bool,
    sent: Sent,
}

impl Media {
    pub(super) fn new(cfg: &WaPeerConfig, parts: &Parts) -> Result<Media, WaPeerError> {
        let encoder = OpusEncoder::new(
            cfg.capture_rate,
            1,
            cfg.complexity,
            true,
            cfg.expected_loss_pct,
        )?;
        Ok(Media {
            track: parts.track.clone(),
            ssrc: parts.ssrc,
            opus_pt: parts.opus_pt,
            dtmf_pt: parts.dtmf_pt,
            epoch: parts.epoch,
            events: parts.events_tx.clone(),
            rtcp_seen: parts.rtcp_seen.clone(),
            source: FrameSource::new(cfg.source.clone(), cfg.capture_rate),
            encoder,
            pcm: vec![0; frame_samples(cfg.capture_rate)].into_boxed_slice(),
            packet: vec![0; MAX_PACKET].into_boxed_slice(),
            muted: true,
            spurt_start: true,
            seq: rand::random(),
            timestamp: rand::random(),
            digits: VecDeque::new(),
            dtmf_tx: None,
            send_loss: Loss::new(cfg.send_loss, cfg.seed),
            receive_loss: Loss::new(cfg.receive_loss, cfg.seed ^ RECEIVE_SEED_SALT),
            receiver: Receiver::new(parts.opus_pt, parts.dtmf_pt, cfg.record_rate)?,
            first_audio: false,
            sent: Sent::default(),
        })
    }

    pub(super) async fn run(
        mut self,
        mut incoming: mpsc::UnboundedReceiver<(Instant, rtp::Packet)>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) -> WaPeerReport {
        // Burst (tokio's default) after a stall: a phone's capture clock does not pause when
        // its CPU is busy, so late frames go out late rather than never.
        let mut tick = tokio::time::interval(PTIME);
        loop {
            tokio::select! {
                _ = tick.tick() => self.on_tick().await,
                Some((at, packet)) = incoming.recv() => self.on_rtp(at, &packet),
                c = commands.recv() => match c {
                    None | Some(Command::Stop) => break,
                    Some(c) => self.on_command(c),
                },
            }
        }
        self.receiver.finish();
        self.report()
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::Unmute => {
                if self.muted {
                    self.muted = false;
                    self.spurt_start = true;
                }
            }
            Command::Mute => self.muted = true,
            Command::Source(s) => self.source.set(s),
            Command::Dtmf(d) => self.digits.push_back(d),
            Command::SendLoss(p) => self.send_loss.set_probability(p),
            Command::ReceiveLoss(p) => self.receive_loss.set_probability(p),
            Command::Report(tx) => {
                let _ = tx.send(self.report());
            }
            // Handled by the loop, which must break out of it.
            Command::Stop => {}
        }
    }

    async fn on_tick(&mut self) {
        let ts = self.timestamp;
        self.timestamp = ts.wrapping_add(RTP_TIMESTAMP_STEP);
        if self.muted {
            return;
        }
        if let (None, Some(_)) = (&self.dtmf_tx, self.dtmf_pt) {
            if let Some(d) = self.digits.pop_front() {
                // §5.3: the event starts at this frame's place on the 48 kHz audio timeline;
                // its durations count 8 kHz units.
                self.dtmf_tx = DtmfSender::new(d, ts, DTMF_CLOCK, 20, DEFAULT_TONE_MS).ok();
            }
        }
        if let (Some(p), Some(pt)) = (
            self.dtmf_tx.as_mut().and_then(DtmfSender::next_packet),
            self.dtmf_pt,
        ) {
            self.sent.dtmf_packets += 1;
            let bytes = p.event.to_bytes();
            self.send(pt, &bytes, p.timestamp, p.marker).await;
            return;
        }
        // The digit is done: this slot is audio again, which also spaces consecutive digits.
        self.dtmf_tx = None;
        self.source.fill(&mut self.pcm);
        let n = match self.encoder.encode(&self.pcm, &mut self.packet) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox peer: Opus encode failed; frame skipped");
                return;
            }
        };
        self.sent.frames += 1;
        let marker = std::mem::take(&mut self.spurt_start);
        let payload = Bytes::copy_from_slice(&self.packet[..n]);
        self.send(self.opus_pt, &payload, ts, marker).await;
    }

    /// Numbers the packet and hands it to the stack, unless the path loses it: a lost packet
    /// still takes its sequence number, which is how the far end sees the loss.
    async fn send(&mut self, payload_type: u8, payload: &[u8], timestamp: u32, marker: bool) {
        let sequence = self.seq;
        self.seq = sequence.wrapping_add(1);
        if self.send_loss.drop_next() {
            return;
        }
        let packet = rtp_packet(
            self.ssrc,
            payload_type,
            sequence,
            timestamp,
            marker,
            Bytes::copy_from_slice(payload),
        );
        if let Err(e) = self.track.write_rtp(packet).await {
            self.sent.errors += 1;
            tracing::debug!(error = %e, "sandbox peer: RTP not sent");
        }
    }

    fn on_rtp(&mut self, at: Instant, packet: &rtp::Packet) {
        if self.receive_loss.drop_next() {
            return;
        }
        let h = &packet.header;
        let rtp = RtpIn {
            payload_type: h.payload_type,
            sequence: h.sequence_number,
            timestamp: h.timestamp,
            marker: h.marker,
            payload: &packet.payload,
        };
        let kind = self
            .receiver
            .on_packet(at.saturating_duration_since(self.epoch), &rtp);
        if kind == PacketKind::Audio && !self.first_audio {
            self.first_audio = true;
            let _ = self.events.send(WaPeerEvent::FirstAudio);
        }
        while let Some(d) = self.receiver.poll_digit() {
            let _ = self.events.send(WaPeerEvent::Dtmf(d));
        }
    }

    fn report(&self) -> WaPeerReport {
        let mut heard = self.receiver.heard().clone();
        heard.dropped_by_loss = self.receive_loss.dropped();
        WaPeerReport {
            heard,
            sent: Sent {
                dropped_by_loss: self.send_loss.dropped(),
                ..self.sent.clone()
            },
            rtcp_received: self.rtcp_seen.load(Ordering::Relaxed),
        }
    }
}
