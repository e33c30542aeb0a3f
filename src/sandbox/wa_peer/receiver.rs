//! The sandbox peer's ear: what arrives from the business, decoded and logged so tests can
//! measure it. Pure apart from libopus: packets come in with their arrival time.
//!
//! Audio is decoded as it arrives, on the sender's timestamp line: a timestamp gap is filled
//! with Opus FEC (for the frame just before a packet, which carries it) and PLC, then silence,
//! as a client's decoder would, so the recording keeps the sender's timing.

use std::time::Duration;

use crate::media::dtmf::DtmfReceiver;
use crate::media::opus::{frame_samples, OpusDecoder, OpusError, RTP_TIMESTAMP_STEP};

/// RTP clock of Opus (RFC 7587 §4.1), whatever the decoding rate.
const OPUS_CLOCK: u32 = 48_000;
/// A timestamp jump longer than this (1 s) is a new timeline, not loss: nothing is filled.
const MAX_FILL_FRAMES: u32 = 50;
/// Frames of PLC before a gap turns to silence: libopus fades PLC out over about this long.
const MAX_PLC_FRAMES: u32 = 5;
/// Opus's longest packet is 120 ms (RFC 6716 §2.1.4).
const MAX_PACKET_FRAMES: usize = 6;
/// Audio this far past an unfinished DTMF event means its end packets were lost (¼ s, as the
/// bridge decides it).
const DTMF_GRACE: u32 = OPUS_CLOCK / 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Audio,
    Dtmf,
    /// Neither negotiated payload type.
    Other,
}

/// An incoming packet as the receiver reads it; the shell fills it from webrtc-rs's packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RtpIn<'a> {
    pub(crate) payload_type: u8,
    pub(crate) sequence: u16,
    pub(crate) timestamp: u32,
    pub(crate) marker: bool,
    pub(crate) payload: &'a [u8],
}

/// One RTP packet as it reached the peer, after the simulated path loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Since the peer started ([`super::WaPeer::elapsed`] runs on the same clock).
    pub at: Duration,
    pub kind: PacketKind,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload_len: usize,
    /// Where in [`Heard::pcm`] this packet's own audio starts (after any gap filled before it);
    /// for other packets, where the recording stood.
    pub pcm_at: usize,
}

/// Everything the peer received. `pcm` is mono at `rate` Hz.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heard {
    pub rate: u32,
    pub pcm: Vec<i16>,
    pub arrivals: Vec<Arrival>,
    /// Digits decoded from RFC 4733 events, each once.
    pub digits: String,
    pub audio_packets: u64,
    pub dtmf_packets: u64,
    pub other_packets: u64,
    /// Lost frames rebuilt from the next packet's in-band FEC.
    pub fec_frames: u64,
    /// Lost frames made up by Opus PLC.
    pub concealed_frames: u64,
    /// Lost frames beyond what PLC should guess at, recorded as silence.
    pub silent_frames: u64,
    /// Audio packets behind what was already played (late, duplicate, reordered): dropped.
    pub late_packets: u64,
    /// Timestamp jumps too long to be loss (a new talk spurt after mute, a sender restart).
    pub resyncs: u64,
    pub decode_errors: u64,
    /// Packets the simulated receive-side loss removed before anything above saw them.
    pub dropped_by_loss: u64,
}

impl Heard {
    /// Arrival time of the first audio packet.
    pub fn first_audio(&self) -> Option<Duration> {
        self.audio_arrivals().next().map(|a| a.at)
    }

    pub fn audio_arrivals(&self) -> impl Iterator<Item = &Arrival> + '_ {
        self.arrivals.iter().filter(|a| a.kind == PacketKind::Audio)
    }

    /// The longest stretch of `from..=to` without an RTP packet (audio or DTMF). The window's
    /// ends count as boundaries, so a stream that stops early, or starts late, shows as a gap.
    pub fn largest_gap(&self, from: Duration, to: Duration) -> Duration {
        let inside = self
            .arrivals
            .iter()
            .map(|a| a.at)
            .filter(|at| (from..=to).contains(at));
        let mut last = from;
        let mut worst = Duration::ZERO;
        for at in inside.chain(std::iter::once(to)) {
            worst = worst.max(at.saturating_sub(last));
            last = at;
        }
        worst
    }

    /// The decoded audio of the audio packets that arrived within `from..to`, with the gaps
    /// filled between them.
    pub fn pcm_between(&self, from: Duration, to: Duration) -> &[i16] {
        let Some(start) = self
            .audio_arrivals()
            .find(|a| a.at >= from && a.at < to)
            .map(|a| a.pcm_at)
        else {
            return &[];
        };
        let end = self
            .audio_arrivals()
            .find(|a| a.at >= to)
            .map_or(self.pcm.len(), |a| a.pcm_at);
        &self.pcm[start..end.max(start)]
    }
}

/// Decodes and logs one incoming stream (Meta's single SSRC, §5.2).
pub(crate) struct Receiver {
    opus_pt: u8,
    dtmf_pt: Option<u8>,
    decoder: OpusDecoder,
    /// Decode buffer for the longest Opus packet.
    buf: Box<[i16]>,
    /// 20 ms at the decoding rate.
    frame: usize,
    /// Timestamp of the next audio frame due, once a packet has set the timeline.
    next_ts: Option<u32>,
    dtmf: DtmfReceiver,
    heard: Heard,
}

impl Receiver {
    pub(crate) fn new(opus_pt: u8, dtmf_pt: Option<u8>, rate: u32) -> Result<Receiver, OpusError> {
        let frame = frame_samples(rate);
        Ok(Receiver {
            opus_pt,
            dtmf_pt,
            decoder: OpusDecoder::new(rate)?,
            buf: vec![0; frame * MAX_PACKET_FRAMES].into_boxed_slice(),
            frame,
            next_ts: None,
            dtmf: DtmfReceiver::new(),
            heard: Heard {
                rate,
                ..Heard::default()
            },
        })
    }

    /// One packet that survived the path. Returns its kind; completed digits are then
    /// available from [`Receiver::poll_digit`].
    pub(crate) fn on_packet(&mut self, at: Duration, packet: &RtpIn<'_>) -> PacketKind {
        let RtpIn {
            payload_type,
            sequence,
            timestamp,
            marker,
            payload,
        } = *packet;
        let kind = if payload_type == self.opus_pt {
            PacketKind::Audio
        } else if Some(payload_type) == self.dtmf_pt {
            PacketKind::Dtmf
        } else {
            PacketKind::Other
        };
        let mut pcm_at = self.heard.pcm.len();
        match kind {
            PacketKind::Audio => {
                self.heard.audio_packets += 1;
                self.dtmf.on_audio(timestamp, DTMF_GRACE);
                if let Some(at) = self.on_audio(timestamp, payload) {
                    pcm_at = at;
                }
            }
            PacketKind::Dtmf => {
                self.heard.dtmf_packets += 1;
                // A malformed event is the sender's bug; the stream itself goes on.
                let _ = self.dtmf.on_packet(timestamp, payload);
            }
            PacketKind::Other => self.heard.other_packets += 1,
        }
        self.heard.arrivals.push(Arrival {
            at,
            kind,
            payload_type,
            sequence,
            timestamp,
            marker,
            payload_len: payload.len(),
            pcm_at,
        });
        kind
    }

    pub(crate) fn poll_digit(&mut self) -> Option<char> {
        let d = self.dtmf.poll_digit()?;
        self.heard.digits.push(d);
        Some(d)
    }

    /// The call is over: a digit whose end packets never came still counts.
    pub(crate) fn finish(&mut self) {
        self.dtmf.flush();
        while self.poll_digit().is_some() {}
    }

    pub(crate) fn heard(&self) -> &Heard {
        &self.heard
    }

    /// Decodes one audio packet after filling any gap before it; returns where its own audio
    /// starts in the recording, or `None` when it was dropped as late.
    fn on_audio(&mut self, ts: u32, payload: &[u8]) -> Option<usize> {
        if let Some(due) = self.next_ts {
            let ahead = ts.wrapping_sub(due) as i32;
            if ahead < 0 {
                self.heard.late_packets += 1;
                return None;
            }
            let missing = ahead as u32 / RTP_TIMESTAMP_STEP;
            if missing > MAX_FILL_FRAMES {
                self.heard.resyncs += 1;
            } else {
                self.fill(missing, payload);
            }
        }
        let start = self.heard.pcm.len();
        let samples = match self.decoder.decode(payload, &mut self.buf) {
            Ok(n) => {
                self.heard.pcm.extend_from_slice(&self.buf[..n]);
                n
            }
            Err(_) => {
                self.heard.decode_errors += 1;
                self.conceal_one();
                self.frame
            }
        };
        let ticks = samples as u64 * u64::from(OPUS_CLOCK) / u64::from(self.heard.rate);
        self.next_ts = Some(ts.wrapping_add(ticks as u32));
        Some(start)
    }

    /// `missing` whole 20 ms frames were lost before `next`, the packet that just arrived.
    fn fill(&mut self, missing: u32, next: &[u8]) {
        for i in 0..missing {
            let frame = &mut self.buf[..self.frame];
            if i + 1 == missing {
                // The packet right after a loss carries that frame's LBRR copy (RFC 6716 §2.1.7);
                // libopus falls back to PLC when it has none.
                if self.decoder.decode_fec(next, frame).is_ok() {
                    self.heard.fec_frames += 1;
                    self.heard.pcm.extend_from_slice(frame);
                    continue;
                }
            }
            if i < MAX_PLC_FRAMES {
                self.conceal_one();
            } else {
                self.heard.silent_frames += 1;
                let len = self.heard.pcm.len();
                self.heard.pcm.resize(len + self.frame, 0);
            }
        }
    }

    fn conceal_one(&mut self) {
        let frame = &mut self.buf[..self.frame];
        if self.decoder.conceal(frame).is_err() {
            frame.fill(0);
        }
        self.heard.concealed_frames += 1;
        self.heard.pcm.extend_from_slice(frame);
    }
}

#[cfg(test)]
mod tests;
