//! RFC 4733 telephone-events for the DTMF digits: payload codec, a pacing-free sender and a
//! deduplicating receiver. Neither reads the clock: the sender is asked for one packet per
//! packet time, the receiver is fed what arrived.

use thiserror::Error;

/// Length of one telephone-event payload (RFC 4733 §2.3).
pub const EVENT_LEN: usize = 4;
/// Volume we send: -10 dBm0, the middle of the range RFC 4733 §2.3.4 says senders use.
pub const DEFAULT_VOLUME: u8 = 10;
/// Tone length when the caller has no preference: long enough for every PBX we know of
/// (ITU-T Q.24 asks for >= 40 ms), short enough to dial quickly.
pub const DEFAULT_TONE_MS: u32 = 100;
/// RFC 4733 §2.5.1.4: the final packet is sent three times in case of loss.
pub const END_REPEATS: u8 = 3;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DtmfError {
    #[error("telephone-event payload is {0} bytes, need at least 4")]
    Truncated(usize),
    #[error("{0:?} is not a DTMF digit (0-9 * # A-D)")]
    NotADigit(char),
    #[error("tone of {samples} samples does not fit the 16-bit duration field")]
    TooLong { samples: u64 },
    #[error("packet time must be positive")]
    ZeroPacketTime,
}

/// One telephone-event payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    pub event: u8,
    pub end: bool,
    /// Power level as -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl DtmfEvent {
    pub fn parse(payload: &[u8]) -> Result<DtmfEvent, DtmfError> {
        if payload.len() < EVENT_LEN {
            return Err(DtmfError::Truncated(payload.len()));
        }
        Ok(DtmfEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            // The R bit (0x40) is reserved and ignored on receipt (§2.3.3).
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    pub fn to_bytes(&self) -> [u8; EVENT_LEN] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// The digit this event stands for, if it is one of the 16 DTMF events.
    pub fn digit(&self) -> Option<char> {
        event_to_digit(self.event)
    }
}

/// Event codes 0-15 per RFC 4733 §3.2 table 3.
pub fn digit_to_event(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}

pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// A telephone-event packet the sender wants on the wire; the RTP leg adds SSRC and sequence
/// number from its own space (RFC 4733 §2.5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub marker: bool,
    pub timestamp: u32,
    pub event: DtmfEvent,
}

/// Produces the packets of one digit, one per call of [`DtmfSender::next_packet`], which the
/// caller makes once per packet time.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    event: u8,
    volume: u8,
    timestamp: u32,
    samples_per_packet: u32,
    tone_samples: u32,
    /// Packets produced so far.
    sent: u32,
    ends_sent: u8,
}

impl DtmfSender {
    pub fn new(
        digit: char,
        start_timestamp: u32,
        clock_rate: u32,
        ptime_ms: u32,
        tone_ms: u32,
    ) -> Result<DtmfSender, DtmfError> {
        let event = digit_to_event(digit).ok_or(DtmfError::NotADigit(digit))?;
        // u64: a caller's odd clock rate or tone length must give an error, not an overflow.
        let samples_per_packet = u64::from(clock_rate) * u64::from(ptime_ms) / 1000;
        if samples_per_packet == 0 {
            return Err(DtmfError::ZeroPacketTime);
        }
        // Round the tone up to whole packets: the duration field only grows per packet.
        let packets = (u64::from(clock_rate) * u64::from(tone_ms) / 1000)
            .div_ceil(samples_per_packet)
            .max(1);
        let tone_samples = packets * samples_per_packet;
        if tone_samples > u64::from(u16::MAX) {
            // Long-duration segmentation (§2.5.1.3) is never needed for dialled digits.
            return Err(DtmfError::TooLong {
                samples: tone_samples,
            });
        }
        // Both fit u32 now: samples_per_packet <= tone_samples <= u16::MAX.
        let (samples_per_packet, tone_samples) = (samples_per_packet as u32, tone_samples as u32);
        Ok(DtmfSender {
            event,
            volume: DEFAULT_VOLUME,
            timestamp: start_timestamp,
            samples_per_packet,
            tone_samples,
            sent: 0,
            ends_sent: 0,
        })
    }

    /// The next packet, or `None` once the three end packets are out.
    pub fn next_packet(&mut self) -> Option<DtmfPacket> {
        if self.ends_sent >= END_REPEATS {
            return None;
        }
        let duration = ((self.sent + 1) * self.samples_per_packet).min(self.tone_samples);
        let end = duration >= self.tone_samples;
        if end {
            self.ends_sent += 1;
        }
        let packet = DtmfPacket {
            marker: self.sent == 0,
            timestamp: self.timestamp,
            event: DtmfEvent {
                event: self.event,
                end,
                volume: self.volume,
                // Cannot truncate: new() rejects tones longer than u16::MAX samples.
                duration: duration as u16,
            },
        };
        self.sent += 1;
        Some(packet)
    }

    pub fn is_done(&self) -> bool {
        self.ends_sent >= END_REPEATS
    }
}

/// Turns a stream of telephone-event packets into digits, each reported once.
///
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.2.2); the end packet arrives
/// three times and packets may be reordered, so timestamps already reported are remembered.
#[derive(Debug, Default, Clone)]
pub struct DtmfReceiver {
    /// Event in progress whose end we have not seen yet.
    pending: Option<Pending>,
    /// Timestamps of events already reported, newest first.
    reported: [Option<u32>; 4],
    /// Digits ready for [`DtmfReceiver::poll_digit`]; at most the flushed one plus the new one.
    ready: [Option<char>; 2],
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    timestamp: u32,
    digit: Option<char>,
    duration: u16,
}

impl DtmfReceiver {
    pub fn new() -> DtmfReceiver {
        DtmfReceiver::default()
    }

    /// Feeds one telephone-event packet; digits become available from `poll_digit`.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Result<(), DtmfError> {
        let ev = DtmfEvent::parse(payload)?;
        if self.reported.contains(&Some(timestamp)) {
            return Ok(());
        }
        match self.pending {
            Some(p) if p.timestamp == timestamp => {
                if let Some(p) = self.pending.as_mut() {
                    p.duration = p.duration.max(ev.duration);
                }
            }
            Some(_) => {
                // A new event started and the old one never ended: its end packets were all
                // lost, but the digit was still pressed.
                self.flush();
                self.pending = Some(Pending {
                    timestamp,
                    digit: ev.digit(),
                    duration: ev.duration,
                });
            }
            None => {
                self.pending = Some(Pending {
                    timestamp,
                    digit: ev.digit(),
                    duration: ev.duration,
                })
            }
        }
        if ev.end {
            self.flush();
        }
        Ok(())
    }

    /// An audio packet arrived with `timestamp`. If it lies more than `grace` timestamp units
    /// past the pending event's last known end, that event ended with all its end packets lost.
    pub fn on_audio(&mut self, timestamp: u32, grace: u32) {
        if let Some(p) = self.pending {
            let end = p.timestamp.wrapping_add(u32::from(p.duration));
            let past = timestamp.wrapping_sub(end) as i32;
            if past > 0 && past as u32 > grace {
                self.flush();
            }
        }
    }

    /// Reports the pending event as finished (media stopped, leg closing).
    pub fn flush(&mut self) {
        let Some(p) = self.pending.take() else { return };
        self.reported.rotate_right(1);
        self.reported[0] = Some(p.timestamp);
        if let Some(d) = p.digit {
            if let Some(slot) = self.ready.iter_mut().find(|s| s.is_none()) {
                *slot = Some(d);
            }
        }
    }

    pub fn poll_digit(&mut self) -> Option<char> {
        let d = self.ready[0].take();
        self.ready.rotate_left(1);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_mapping_round_trips() {
        for (i, d) in "0123456789*#ABCD".chars().enumerate() {
            assert_eq!(digit_to_event(d), Some(i as u8));
            assert_eq!(event_to_digit(i as u8), Some(d));
        }
        assert_eq!(digit_to_event('a'), Some(12));
        assert_eq!(digit_to_event('x'), None);
        assert_eq!(event_to_digit(16), None);
    }

    #[test]
    fn payload_round_trip() {
        let ev = DtmfEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        let b = ev.to_bytes();
        assert_eq!(b, [11, 0x8A, 0x03, 0x20]);
        assert_eq!(DtmfEvent::parse(&b), Ok(ev));
        // Reserved bit set by the sender is ignored.
        assert_eq!(DtmfEvent::parse(&[5, 0x4A, 0, 160]).unwrap().volume, 10);
        assert_eq!(DtmfEvent::parse(&[1, 2, 3]), Err(DtmfError::Truncated(3)));
    }

    #[test]
    fn sender_sequence_at_8k() {
        let mut s = DtmfSender::new('5', 1000, 8000, 20, 100).unwrap();
        let mut out = Vec::new();
        while let Some(p) = s.next_packet() {
            out.push(p);
        }
        assert!(s.is_done());
        let durations: Vec<u16> = out.iter().map(|p| p.event.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = out.iter().map(|p| p.event.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert!(out[0].marker && out[1..].iter().all(|p| !p.marker));
        assert!(out
            .iter()
            .all(|p| p.timestamp == 1000 && p.event.event == 5));
    }

    #[test]
    fn sender_at_48k_and_odd_lengths() {
        let mut s = DtmfSender::new('#', u32::MAX - 5, 48000, 20, 50).unwrap();
        let first = s.next_packet().unwrap();
        assert_eq!(first.event.duration, 960);
        assert_eq!(first.timestamp, u32::MAX - 5);
        // 50 ms rounds up to three 20 ms packets.
        let rest: Vec<_> = std::iter::from_fn(|| s.next_packet()).collect();
        assert_eq!(rest.len(), 4);
        assert!(rest
            .iter()
            .skip(1)
            .all(|p| p.event.end && p.event.duration == 2880));

        assert_eq!(
            DtmfSender::new('x', 0, 8000, 20, 100).unwrap_err(),
            DtmfError::NotADigit('x')
        );
        assert!(matches!(
            DtmfSender::new('1', 0, 48000, 20, 2000),
            Err(DtmfError::TooLong { .. })
        ));
        assert_eq!(
            DtmfSender::new('1', 0, 8000, 0, 100).unwrap_err(),
            DtmfError::ZeroPacketTime
        );
    }

    fn feed_sender(rx: &mut DtmfReceiver, digit: char, ts: u32) -> Vec<char> {
        let mut s = DtmfSender::new(digit, ts, 8000, 20, 100).unwrap();
        let mut got = Vec::new();
        while let Some(p) = s.next_packet() {
            rx.on_packet(p.timestamp, &p.event.to_bytes()).unwrap();
            got.extend(std::iter::from_fn(|| rx.poll_digit()));
        }
        got
    }

    #[test]
    fn receiver_reports_each_digit_once() {
        let mut rx = DtmfReceiver::new();
        assert_eq!(feed_sender(&mut rx, '1', 100), ['1']);
        // Same digit again is a new event with a new timestamp.
        assert_eq!(feed_sender(&mut rx, '1', 2000), ['1']);
        assert_eq!(feed_sender(&mut rx, 'D', 4000), ['D']);
        // A late retransmission of an old end packet is not a new press.
        let late = DtmfEvent {
            event: 1,
            end: true,
            volume: 10,
            duration: 800,
        };
        rx.on_packet(100, &late.to_bytes()).unwrap();
        assert_eq!(rx.poll_digit(), None);
    }

    #[test]
    fn receiver_reports_digit_whose_end_was_lost() {
        let mut rx = DtmfReceiver::new();
        for d in [160u16, 320, 480] {
            let ev = DtmfEvent {
                event: 7,
                end: false,
                volume: 10,
                duration: d,
            };
            rx.on_packet(500, &ev.to_bytes()).unwrap();
        }
        assert_eq!(rx.poll_digit(), None);
        // Next event's first packet is already its end (short tone): both come out, in order.
        let ev = DtmfEvent {
            event: 8,
            end: true,
            volume: 10,
            duration: 800,
        };
        rx.on_packet(3000, &ev.to_bytes()).unwrap();
        assert_eq!(rx.poll_digit(), Some('7'));
        assert_eq!(rx.poll_digit(), Some('8'));
        assert_eq!(rx.poll_digit(), None);
    }

    #[test]
    fn receiver_flushes_on_audio_after_the_event() {
        let mut rx = DtmfReceiver::new();
        let ev = DtmfEvent {
            event: 0,
            end: false,
            volume: 10,
            duration: 320,
        };
        rx.on_packet(1000, &ev.to_bytes()).unwrap();
        rx.on_audio(1000 + 320 + 100, 800);
        assert_eq!(rx.poll_digit(), None, "within grace");
        rx.on_audio(1000 + 320 + 801, 800);
        assert_eq!(rx.poll_digit(), Some('0'));
        // The end packets showing up afterwards change nothing.
        let end = DtmfEvent { end: true, ..ev };
        rx.on_packet(1000, &end.to_bytes()).unwrap();
        assert_eq!(rx.poll_digit(), None);
    }

    #[test]
    fn receiver_ignores_non_digit_events_and_bad_payloads() {
        let mut rx = DtmfReceiver::new();
        let flash = DtmfEvent {
            event: 16,
            end: true,
            volume: 10,
            duration: 800,
        };
        rx.on_packet(10, &flash.to_bytes()).unwrap();
        assert_eq!(rx.poll_digit(), None);
        assert_eq!(rx.on_packet(10, &[1]), Err(DtmfError::Truncated(1)));
        rx.flush();
        assert_eq!(rx.poll_digit(), None);
    }
}
