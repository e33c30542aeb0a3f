//! Receive-side statistics for one RTP source: sequence tracking and loss (RFC 3550 A.1, A.3)
//! and interarrival jitter (A.8).

use super::rtcp::ReportBlock;

/// A.1: a jump of more than this many packets forward is treated as suspicious.
const MAX_DROPOUT: u16 = 3000;
/// A.1: packets this far behind the highest seen are accepted as reordered/duplicates.
const MAX_MISORDER: u16 = 100;

#[derive(Debug, Clone, Default)]
pub(super) struct RxStats {
    ssrc: Option<u32>,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    /// A.1 `bad_seq`: the sequence number a second suspicious packet must have to restart.
    bad_seq: Option<u16>,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Loss counted against sources that have since been replaced (SSRC change).
    lost_before: i64,
    /// Jitter in timestamp units, scaled by 16 as in A.8 to keep integer precision.
    jitter_q4: u32,
    last_transit: Option<u32>,
}

/// What the sequence check says about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SeqCheck {
    /// In order; `gap` packets are missing just before it.
    InOrder { gap: u16 },
    /// Late or duplicate.
    Late,
    /// A large jump we wait to see confirmed before believing (A.1).
    Rejected,
}

impl RxStats {
    /// Updates sequence state for a packet of any payload type.
    pub(super) fn on_packet(&mut self, ssrc: u32, seq: u16) -> SeqCheck {
        if self.ssrc != Some(ssrc) {
            if self.ssrc.is_some() {
                self.lost_before += self.lost_current();
            }
            self.restart(ssrc, seq);
            self.received = 1;
            return SeqCheck::InOrder { gap: 0 };
        }
        let delta = seq.wrapping_sub(self.max_seq);
        let check = if delta == 0 {
            SeqCheck::Late
        } else if delta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
            SeqCheck::InOrder { gap: delta - 1 }
        } else if delta <= u16::MAX - MAX_MISORDER {
            if self.bad_seq == Some(seq) {
                // Two sequential packets after a big jump: the sender restarted its sequence.
                self.lost_before += self.lost_current();
                self.restart(ssrc, seq);
                self.received = 0;
                SeqCheck::InOrder { gap: 0 }
            } else {
                self.bad_seq = Some(seq.wrapping_add(1));
                return SeqCheck::Rejected;
            }
        } else {
            SeqCheck::Late
        };
        self.received += 1;
        check
    }

    /// Jitter update for an audio packet (A.8). `arrival` is the receive time in timestamp
    /// units on any fixed origin. DTMF packets must not be fed: they repeat the event's start
    /// timestamp and would read as huge jitter.
    pub(super) fn on_audio_timing(&mut self, rtp_timestamp: u32, arrival: u32) {
        let transit = arrival.wrapping_sub(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit.wrapping_sub(last) as i32).unsigned_abs();
            self.jitter_q4 = self
                .jitter_q4
                .wrapping_add(d)
                .wrapping_sub((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    #[cfg(test)]
    pub(super) fn received(&self) -> u64 {
        self.received
    }

    /// Cumulative loss over every source seen; negative with duplicates (A.3).
    pub(super) fn lost(&self) -> i64 {
        self.lost_before + self.lost_current()
    }

    pub(super) fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Report block for the current source, updating the "since last report" counters.
    pub(super) fn report_block(
        &mut self,
        last_sr: u32,
        delay_since_last_sr: u32,
    ) -> Option<ReportBlock> {
        let ssrc = self.ssrc?;
        let expected = self.expected();
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        Some(ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.lost_current().clamp(i32::MIN.into(), i32::MAX.into()) as i32,
            highest_seq: self.cycles + u32::from(self.max_seq),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        *self = RxStats {
            lost_before: self.lost_before,
            ..RxStats::default()
        };
        self.ssrc = Some(ssrc);
        self.max_seq = seq;
        self.base_seq = u32::from(seq);
    }

    fn expected(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        u64::from(self.cycles) + u64::from(self.max_seq) + 1 - u64::from(self.base_seq)
    }

    fn lost_current(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_and_wraps() {
        let mut s = RxStats::default();
        assert_eq!(s.on_packet(1, 65533), SeqCheck::InOrder { gap: 0 });
        assert_eq!(s.on_packet(1, 65534), SeqCheck::InOrder { gap: 0 });
        assert_eq!(s.on_packet(1, 1), SeqCheck::InOrder { gap: 2 }); // 65535 and 0 lost
        assert_eq!(s.on_packet(1, 0), SeqCheck::Late); // one of them shows up late
        assert_eq!(s.on_packet(1, 0), SeqCheck::Late); // and again as a duplicate
        assert_eq!(s.received(), 5);
        assert_eq!(
            s.lost(),
            0,
            "expected 5, received 5 (duplicate offsets the loss)"
        );
        let b = s.report_block(0, 0).unwrap();
        assert_eq!(b.highest_seq, 0x1_0001);
        assert_eq!(b.fraction_lost, 0);
    }

    #[test]
    fn fraction_lost_is_per_interval() {
        let mut s = RxStats::default();
        for seq in (0..10).chain(14..20) {
            s.on_packet(9, seq);
        }
        assert_eq!(s.lost(), 4);
        let b = s.report_block(0, 0).unwrap();
        assert_eq!(
            (b.fraction_lost, b.cumulative_lost),
            (((4u32 << 8) / 20) as u8, 4)
        );
        for seq in 20..30 {
            s.on_packet(9, seq);
        }
        assert_eq!(s.report_block(0, 0).unwrap().fraction_lost, 0);
    }

    #[test]
    fn big_jump_needs_confirmation_and_ssrc_change_restarts() {
        let mut s = RxStats::default();
        s.on_packet(1, 100);
        s.on_packet(1, 103);
        assert_eq!(s.lost(), 2);
        assert_eq!(s.on_packet(1, 30000), SeqCheck::Rejected);
        assert_eq!(s.on_packet(1, 30001), SeqCheck::InOrder { gap: 0 });
        assert_eq!(s.on_packet(1, 30002), SeqCheck::InOrder { gap: 0 });
        assert_eq!(s.lost(), 2);
        assert_eq!(s.on_packet(2, 7), SeqCheck::InOrder { gap: 0 });
        assert_eq!(s.on_packet(2, 9), SeqCheck::InOrder { gap: 1 });
        assert_eq!(s.lost(), 3);
        assert_eq!(s.report_block(0, 0).unwrap().ssrc, 2);
    }

    #[test]
    fn jitter_follows_a8() {
        let mut s = RxStats::default();
        // Perfectly paced: no jitter.
        for i in 0..50u32 {
            s.on_audio_timing(i * 160, 1000 + i * 160);
        }
        assert_eq!(s.jitter(), 0);
        // Every other packet 40 samples late: |D| = 40 each time, so J converges towards 40.
        for i in 50..400u32 {
            let noise = if i % 2 == 0 { 40 } else { 0 };
            s.on_audio_timing(i * 160, 1000 + i * 160 + noise);
        }
        assert!((37..=40).contains(&s.jitter()), "{}", s.jitter());
    }
}
