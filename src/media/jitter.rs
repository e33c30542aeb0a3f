//! An adaptive jitter buffer for one incoming RTP audio stream of fixed-duration frames
//! (20 ms Opus from Meta), sans I/O: the owner passes the arrival time to
//! [`JitterBuffer::push`] and calls [`JitterBuffer::pop`] once per frame tick.
//!
//! Frames are placed by RTP timestamp, so reordering needs no sorting and a gap in sequence
//! numbers alone (RFC 4733 events diverted to the DTMF decoder share the stream's sequence
//! space, calling API doc §5.3) does not count as loss. Payloads are copied into slots
//! allocated up front; nothing allocates after [`JitterBuffer::new`].
//!
//! Depth adapts in two directions:
//! - up, by stalling: when the frame due has not arrived and nothing later has either, the
//!   buffer hands out a concealment frame without advancing, then re-buffers to the target;
//! - down, by skipping: when for a whole second every pop found at least one frame more than
//!   needed and the buffer holds more than the target, one frame is dropped.
//!
//! The target itself is `1 + ceil(span / frame)`, `span` being the spread of the packets'
//! transit delays (arrival time minus timestamp time) over the last [`DELAY_WINDOW`] packets,
//! clamped to `min_depth..=max_depth`.

use std::time::{Duration, Instant};

/// Packets the transit-delay spread is measured over (about 1.3 s of 20 ms packets).
pub const DELAY_WINDOW: usize = 64;
/// Pops over which the buffer must have had spare frames before it drops one.
const TRIM_WINDOW: u32 = 50;
/// Concealment frames handed out in a row during an underrun before switching to `Empty`:
/// Opus PLC fades out by itself, and 100 ms of it is as far as guessing makes sense.
const MAX_CONCEALED: u32 = 5;
/// A packet this many frames behind the playout point is late, not from another stream.
const LATE_FRAMES: i64 = 50;
/// A sequence number this far from the highest seen is a new sender, not reordering.
const SEQ_JUMP: i32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP timestamp units per frame: 960 for 20 ms of Opus (48 kHz clock, RFC 7587 §4.1).
    pub ts_per_frame: u32,
    pub frame: Duration,
    /// Frames the buffer can hold ahead of the playout point.
    pub slots: usize,
    /// Largest payload accepted, in bytes.
    pub max_payload: usize,
    pub min_depth: u8,
    pub max_depth: u8,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            ts_per_frame: 960,
            frame: Duration::from_millis(20),
            slots: 16,
            max_payload: 1500,
            min_depth: 1,
            max_depth: 6,
        }
    }
}

/// What to play for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    Packet(&'a [u8]),
    /// The frame due is missing; `next` is the following frame's packet when it is already
    /// here, so Opus can rebuild the lost one from its in-band FEC.
    Lost {
        next: Option<&'a [u8]>,
    },
    /// Nothing to play: before the first packet, or after a long underrun.
    Empty,
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Stored,
    Duplicate,
    /// Its frame was already played (or given up on); dropped.
    Late,
    /// Far off the current timeline and not (yet) trusted as a new one; dropped.
    Stray,
    /// Started a new timeline at this packet (first packet, sender restart, big jump).
    Resynced,
    /// Empty or larger than `max_payload`; dropped.
    BadSize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub duplicates: u64,
    pub late: u64,
    pub stray: u64,
    pub bad_size: u64,
    /// New timelines started after the first (sender restarts, big jumps).
    pub resyncs: u64,
    pub played: u64,
    /// `Lost` frames handed out (with or without a next packet).
    pub lost: u64,
    /// Frames dropped to shrink the delay or to make room.
    pub skipped: u64,
    pub underruns: u64,
}

pub struct JitterBuffer {
    cfg: JitterConfig,
    slots: Box<[Slot]>,
    filled: usize,
    /// Frame number (counted from the first packet) and RTP timestamp of the next frame due.
    head: i64,
    head_ts: u32,
    newest: i64,
    highest_seq: u16,
    started: bool,
    playing: bool,
    has_played: bool,
    /// Arrival time of the first packet buffered while not playing.
    buffering_since: Option<Instant>,
    /// Consecutive pops without a frame played (an underrun in progress).
    stalled: u32,
    /// Consecutive packets classed `Stray`.
    strays: u32,
    trim_pops: u32,
    trim_min_lag: i64,
    epoch: Option<Instant>,
    delays: [i64; DELAY_WINDOW],
    delay_count: usize,
    delay_pos: usize,
    target: u8,
    stats: JitterStats,
}

struct Slot {
    frame: i64,
    len: usize,
    filled: bool,
    data: Box<[u8]>,
}

impl JitterBuffer {
    /// # Panics
    /// On a configuration that cannot work (zero sizes, `min_depth` > `max_depth`, a depth
    /// larger than the slots): configurations are constants, not runtime input.
    pub fn new(cfg: JitterConfig) -> Self {
        assert!(cfg.ts_per_frame > 0 && !cfg.frame.is_zero() && cfg.max_payload > 0);
        assert!(1 <= cfg.min_depth && cfg.min_depth <= cfg.max_depth);
        assert!(usize::from(cfg.max_depth) < cfg.slots);
        let slots = (0..cfg.slots)
            .map(|_| Slot {
                frame: 0,
                len: 0,
                filled: false,
                data: vec![0u8; cfg.max_payload].into_boxed_slice(),
            })
            .collect();
        JitterBuffer {
            cfg,
            slots,
            filled: 0,
            head: 0,
            head_ts: 0,
            newest: -1,
            highest_seq: 0,
            started: false,
            playing: false,
            has_played: false,
            buffering_since: None,
            stalled: 0,
            strays: 0,
            trim_pops: 0,
            trim_min_lag: i64::MAX,
            epoch: None,
            delays: [0; DELAY_WINDOW],
            delay_count: 0,
            delay_pos: 0,
            target: cfg.min_depth,
            stats: JitterStats::default(),
        }
    }

    /// Current target depth in frames.
    pub fn target(&self) -> u8 {
        self.target
    }

    /// Frames from the one due up to the newest buffered (holes included).
    pub fn depth(&self) -> usize {
        usize::try_from(self.lag()).unwrap_or(0)
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    pub fn push(&mut self, now: Instant, seq: u16, timestamp: u32, payload: &[u8]) -> Pushed {
        self.stats.received += 1;
        if payload.is_empty() || payload.len() > self.cfg.max_payload {
            self.stats.bad_size += 1;
            return Pushed::BadSize;
        }
        if !self.started {
            self.started = true;
            self.resync(now, seq, timestamp, payload);
            return Pushed::Resynced;
        }
        let offset = self.frames_from_head(timestamp);
        let seq_delta = i32::from(seq.wrapping_sub(self.highest_seq) as i16);
        let slots = self.cfg.slots as i64;

        if offset < 0 {
            if offset >= -LATE_FRAMES && seq_delta <= 0 {
                self.note_delay(now, self.head + offset);
                self.stats.late += 1;
                self.strays = 0;
                return Pushed::Late;
            }
            return self.stray(now, seq, timestamp, payload, seq_delta);
        }
        let seq_forward = seq_delta > 0 && seq_delta <= SEQ_JUMP;
        if offset >= slots {
            if self.filled == 0 && seq_forward {
                // The sender went quiet (silence, DTX, a DTMF event) with its timestamps
                // running on (RFC 3550 §5.1); pick up where it is now.
                self.advance_to(self.head + offset);
            } else if offset < 2 * slots && seq_delta.abs() <= SEQ_JUMP {
                // A burst after an outage: keep the newest audio and drop the oldest.
                self.advance_to(self.head + offset - slots + 1);
            } else {
                return self.stray(now, seq, timestamp, payload, seq_delta);
            }
        } else if self.stalled > 0 && self.filled == 0 && offset > 0 {
            // Resuming after an underrun: the frames in between have already been covered
            // by concealment or silence.
            self.advance_to(self.head + offset);
        }
        self.strays = 0;
        if seq_delta > 0 {
            self.highest_seq = seq;
        }
        let frame = self.head + self.frames_from_head(timestamp);
        if self.store(frame, payload) {
            self.note_delay(now, frame);
            if !self.playing && self.buffering_since.is_none() {
                self.buffering_since = Some(now);
            }
            Pushed::Stored
        } else {
            self.stats.duplicates += 1;
            Pushed::Duplicate
        }
    }

    /// The frame for this tick; call once per `frame` duration.
    pub fn pop(&mut self, now: Instant) -> Frame<'_> {
        if !self.started {
            return Frame::Empty;
        }
        let lag = self.lag();
        if !self.playing {
            let waited = self
                .buffering_since
                .is_some_and(|t| now.saturating_duration_since(t) >= self.prefill_time());
            if lag >= i64::from(self.target) || (lag > 0 && waited) {
                self.playing = true;
                self.buffering_since = None;
            } else {
                return self.underrun_frame();
            }
        }

        self.trim_pops += 1;
        self.trim_min_lag = self.trim_min_lag.min(lag);
        if self.trim_pops >= TRIM_WINDOW {
            if self.trim_min_lag >= 2 && lag > i64::from(self.target) {
                self.advance_to(self.head + 1);
            }
            self.trim_pops = 0;
            self.trim_min_lag = i64::MAX;
        }

        let i = self.index(self.head);
        if self.slots[i].filled && self.slots[i].frame == self.head {
            self.slots[i].filled = false;
            self.filled -= 1;
            self.step_head();
            self.stalled = 0;
            self.has_played = true;
            self.stats.played += 1;
            let slot = &self.slots[i];
            return Frame::Packet(&slot.data[..slot.len]);
        }
        if self.lag() > 0 {
            // The frame due is missing but later ones are here: it is lost, not late.
            self.step_head();
            self.stalled = 0;
            self.stats.lost += 1;
            let j = self.index(self.head);
            let slot = &self.slots[j];
            let next = (slot.filled && slot.frame == self.head).then(|| &slot.data[..slot.len]);
            return Frame::Lost { next };
        }
        self.playing = false;
        self.stats.underruns += 1;
        self.trim_pops = 0;
        self.trim_min_lag = i64::MAX;
        self.underrun_frame()
    }

    fn underrun_frame(&mut self) -> Frame<'_> {
        if !self.has_played {
            return Frame::Empty;
        }
        self.stalled += 1;
        if self.stalled <= MAX_CONCEALED {
            self.stats.lost += 1;
            Frame::Lost { next: None }
        } else {
            Frame::Empty
        }
    }

    fn stray(&mut self, now: Instant, seq: u16, ts: u32, payload: &[u8], seq_delta: i32) -> Pushed {
        // A sender restart cannot be told by its SSRC (Meta's relay rewrites SSRCs, calling
        // API doc §5.2) but shows as a jump in both numbers. A packet that is far off in time
        // only is taken for a new timeline when the packet after it is off the old one too.
        self.strays += 1;
        if seq_delta.abs() > SEQ_JUMP || self.strays >= 2 {
            self.stats.resyncs += 1;
            self.resync(now, seq, ts, payload);
            return Pushed::Resynced;
        }
        self.stats.stray += 1;
        Pushed::Stray
    }

    fn resync(&mut self, now: Instant, seq: u16, ts: u32, payload: &[u8]) {
        for slot in self.slots.iter_mut() {
            slot.filled = false;
        }
        self.filled = 0;
        // Keep frame numbers increasing across timelines; the gap is arbitrary.
        self.head = self.newest.max(self.head) + 1;
        self.newest = self.head - 1;
        self.head_ts = ts;
        self.highest_seq = seq;
        self.playing = false;
        self.buffering_since = Some(now);
        self.strays = 0;
        self.trim_pops = 0;
        self.trim_min_lag = i64::MAX;
        self.epoch = None;
        self.delay_count = 0;
        self.delay_pos = 0;
        let frame = self.head;
        self.store(frame, payload);
        self.note_delay(now, frame);
    }

    /// Copies the payload into its slot; false if that frame is already there.
    fn store(&mut self, frame: i64, payload: &[u8]) -> bool {
        let i = self.index(frame);
        let slot = &mut self.slots[i];
        if slot.filled {
            // Only frames in head..head+slots are stored and each has its own slot.
            debug_assert_eq!(slot.frame, frame);
            return false;
        }
        slot.filled = true;
        slot.frame = frame;
        slot.len = payload.len();
        slot.data[..payload.len()].copy_from_slice(payload);
        self.filled += 1;
        self.newest = self.newest.max(frame);
        true
    }

    /// Moves the playout point forward to `frame`, dropping what it passes over.
    fn advance_to(&mut self, frame: i64) {
        while self.head < frame && self.filled > 0 {
            let i = self.index(self.head);
            if self.slots[i].filled && self.slots[i].frame == self.head {
                self.slots[i].filled = false;
                self.filled -= 1;
                self.stats.skipped += 1;
            }
            self.step_head();
        }
        if self.head < frame {
            let frames = frame - self.head;
            // Timestamps are modulo 2^32, so only the low bits of the product matter.
            let ts_step = (frames as u32).wrapping_mul(self.cfg.ts_per_frame);
            self.head_ts = self.head_ts.wrapping_add(ts_step);
            self.head = frame;
        }
    }

    fn step_head(&mut self) {
        self.head += 1;
        self.head_ts = self.head_ts.wrapping_add(self.cfg.ts_per_frame);
    }

    fn lag(&self) -> i64 {
        (self.newest - self.head + 1).max(0)
    }

    fn index(&self, frame: i64) -> usize {
        frame.rem_euclid(self.cfg.slots as i64) as usize
    }

    /// Whole frames between the head's timestamp and `ts`, rounded to the nearest (timestamps
    /// wrap at 2^32; the difference is read as signed).
    fn frames_from_head(&self, ts: u32) -> i64 {
        let d = i64::from(ts.wrapping_sub(self.head_ts) as i32);
        let step = i64::from(self.cfg.ts_per_frame);
        (d + step / 2).div_euclid(step)
    }

    fn prefill_time(&self) -> Duration {
        self.cfg.frame * u32::from(self.target.saturating_sub(1))
    }

    /// Records the packet's transit delay relative to its timestamp and recomputes the target.
    fn note_delay(&mut self, now: Instant, frame: i64) {
        let epoch = *self.epoch.get_or_insert(now);
        let frame_us = self.cfg.frame.as_micros() as i64;
        let arrival = now.saturating_duration_since(epoch).as_micros() as i64;
        self.delays[self.delay_pos] = arrival - frame * frame_us;
        self.delay_pos = (self.delay_pos + 1) % DELAY_WINDOW;
        self.delay_count = (self.delay_count + 1).min(DELAY_WINDOW);
        let seen = &self.delays[..self.delay_count];
        let (lo, hi) = seen
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &d| (lo.min(d), hi.max(d)));
        let spread_frames = (hi - lo + frame_us - 1) / frame_us;
        let target =
            (1 + spread_frames).clamp(i64::from(self.cfg.min_depth), i64::from(self.cfg.max_depth));
        self.target = target as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: u32 = 960;

    /// A sender and a receiver clock: packet `n` carries seq `seq0 + n`, ts `ts0 + n * 960`
    /// and a 3-byte payload naming `n`.
    struct Sim {
        jb: JitterBuffer,
        t0: Instant,
        seq0: u16,
        ts0: u32,
    }

    impl Sim {
        fn new(seq0: u16, ts0: u32) -> Sim {
            Sim {
                jb: JitterBuffer::new(JitterConfig::default()),
                t0: Instant::now(),
                seq0,
                ts0,
            }
        }
        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }
        fn push(&mut self, ms: u64, n: u32) -> Pushed {
            let seq = self.seq0.wrapping_add(n as u16);
            let ts = self.ts0.wrapping_add(n.wrapping_mul(STEP));
            let now = self.at(ms);
            self.jb.push(now, seq, ts, &payload(n))
        }
        fn pop(&mut self, ms: u64) -> Got {
            let now = self.at(ms);
            Got::from(self.jb.pop(now))
        }
    }

    fn payload(n: u32) -> [u8; 3] {
        [(n >> 16) as u8, (n >> 8) as u8, n as u8]
    }

    fn number(p: &[u8]) -> u32 {
        (u32::from(p[0]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[2])
    }

    /// `Frame` with the payloads turned back into packet numbers, so tests can hold on to it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Got {
        P(u32),
        Lost(Option<u32>),
        Empty,
    }

    impl From<Frame<'_>> for Got {
        fn from(f: Frame<'_>) -> Got {
            match f {
                Frame::Packet(p) => Got::P(number(p)),
                Frame::Lost { next } => Got::Lost(next.map(number)),
                Frame::Empty => Got::Empty,
            }
        }
    }

    /// Packets 0..n pushed on time (packet k at 20k ms + `late(k)`), a pop every 20 ms at
    /// 20k + 10 ms. Returns what was popped.
    fn run(
        sim: &mut Sim,
        n: u32,
        late: impl Fn(u32) -> u64,
        skip: impl Fn(u32) -> bool,
    ) -> Vec<Got> {
        let mut arrivals: Vec<(u64, u32)> = (0..n)
            .filter(|&k| !skip(k))
            .map(|k| (20 * u64::from(k) + late(k), k))
            .collect();
        arrivals.sort();
        let mut out = Vec::new();
        let mut a = 0;
        for tick in 0..u64::from(n) + 10 {
            let t = 20 * tick + 10;
            while a < arrivals.len() && arrivals[a].0 <= t {
                sim.push(arrivals[a].0, arrivals[a].1);
                a += 1;
            }
            out.push(sim.pop(t));
        }
        out
    }

    fn played(out: &[Got]) -> Vec<u32> {
        out.iter()
            .filter_map(|g| if let Got::P(n) = g { Some(*n) } else { None })
            .collect()
    }

    #[test]
    fn empty_until_the_first_packet() {
        let mut sim = Sim::new(0, 0);
        assert_eq!(sim.pop(0), Got::Empty);
        assert_eq!(sim.pop(20), Got::Empty);
        assert_eq!(sim.push(25, 0), Pushed::Resynced);
        assert_eq!(sim.pop(40), Got::P(0));
    }

    #[test]
    fn steady_stream_plays_in_order_at_depth_one() {
        let mut sim = Sim::new(100, 5000);
        let out = run(&mut sim, 200, |_| 0, |_| false);
        let want: Vec<Got> = (0..200).map(Got::P).collect();
        assert_eq!(out[..200], want[..], "no added delay, nothing lost");
        assert_eq!(sim.jb.target(), 1);
        let s = sim.jb.stats();
        assert_eq!((s.late, s.skipped, s.played), (0, 0, 200), "{s:?}");
        // After the last packet: concealment, then silence.
        assert_eq!(out[200], Got::Lost(None));
        assert_eq!(out[209], Got::Empty);
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let mut sim = Sim::new(0, 0);
        // Pairs swapped: 1 before 0, 3 before 2, ... each within the same 20 ms.
        let out = run(
            &mut sim,
            100,
            |k| if k % 2 == 0 { 15 } else { 0 },
            |_| false,
        );
        let got = played(&out);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted);
        assert!(got.len() >= 98, "{}", got.len());
    }

    #[test]
    fn reordering_across_ticks_raises_the_target_and_loses_nothing_after() {
        let mut sim = Sim::new(0, 0);
        // Every fourth packet 30 ms late: behind its successor, past its own tick.
        let out = run(
            &mut sim,
            300,
            |k| if k % 4 == 1 { 30 } else { 0 },
            |_| false,
        );
        assert!(sim.jb.target() >= 2, "{}", sim.jb.target());
        let tail = &out[100..290];
        assert!(tail.iter().all(|g| matches!(g, Got::P(_))), "{tail:?}");
        let got = played(&out);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_sequence_gap_alone_is_not_loss() {
        // RFC 4733 packets taken out for the DTMF decoder leave holes in the sequence numbers
        // while the audio timestamps run on without a gap.
        let mut sim = Sim::new(0, 0);
        for k in 0..20u32 {
            let seq = if k < 10 { k as u16 } else { k as u16 + 13 };
            let t = sim.at(20 * u64::from(k));
            sim.jb.push(t, seq, k * STEP, &payload(k));
            assert_eq!(
                Got::from(sim.jb.pop(t + Duration::from_millis(10))),
                Got::P(k)
            );
        }
        assert_eq!(sim.jb.stats().lost, 0);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut sim = Sim::new(0, 0);
        assert_eq!(sim.push(0, 0), Pushed::Resynced);
        assert_eq!(sim.push(1, 0), Pushed::Duplicate);
        assert_eq!(sim.push(2, 1), Pushed::Stored);
        assert_eq!(sim.push(3, 1), Pushed::Duplicate);
        assert_eq!(sim.pop(10), Got::P(0));
        // A duplicate of a frame already played is late.
        assert_eq!(sim.push(11, 0), Pushed::Late);
        assert_eq!(sim.pop(30), Got::P(1));
        assert_eq!(sim.pop(50), Got::Lost(None));
        assert_eq!(sim.jb.stats().duplicates, 2);
    }

    #[test]
    fn lost_packet_offers_the_next_one_for_fec() {
        let mut sim = Sim::new(0, 0);
        // Arrivals 5 ms before each pop with a target of 2 keep one frame in hand.
        sim.jb.target = 2;
        for k in 0..4 {
            if k != 2 {
                sim.push(20 * u64::from(k), k);
            }
        }
        assert_eq!(sim.pop(30), Got::P(0));
        assert_eq!(sim.pop(50), Got::P(1));
        assert_eq!(sim.pop(70), Got::Lost(Some(3)));
        assert_eq!(sim.pop(90), Got::P(3));
        assert_eq!(sim.jb.stats().lost, 1);
    }

    #[test]
    fn loss_of_two_gives_plc_then_fec() {
        let mut sim = Sim::new(0, 0);
        for k in [0, 3, 4] {
            sim.push(0, k);
        }
        assert_eq!(sim.pop(10), Got::P(0));
        assert_eq!(sim.pop(30), Got::Lost(None));
        assert_eq!(sim.pop(50), Got::Lost(Some(3)));
        assert_eq!(sim.pop(70), Got::P(3));
        assert_eq!(sim.pop(90), Got::P(4));
    }

    #[test]
    fn late_packets_are_dropped_and_counted() {
        let mut sim = Sim::new(0, 0);
        // Packet 5 arrives 70 ms late: its frame has been concealed by then.
        let out = run(&mut sim, 40, |k| if k == 5 { 70 } else { 0 }, |_| false);
        assert!(!played(&out).contains(&5));
        assert_eq!(sim.jb.stats().late, 1);
        assert!(played(&out).contains(&39));
    }

    #[test]
    fn underrun_conceals_then_goes_quiet_then_resumes_without_extra_delay() {
        let mut sim = Sim::new(0, 0);
        // The sender pauses for a second (packets 10..60 never sent, timestamps run on).
        let out = run(&mut sim, 100, |_| 0, |k| (10..60).contains(&k));
        let lost = out[..100]
            .iter()
            .filter(|g| matches!(g, Got::Lost(_)))
            .count();
        assert_eq!(lost, MAX_CONCEALED as usize, "{out:?}");
        assert!(out[20..50].iter().all(|g| *g == Got::Empty));
        // Packet 60 arrives at 1200 ms and plays at the 1210 ms tick, tick 60.
        assert_eq!(out[60], Got::P(60));
        assert_eq!(played(&out).len(), 50);
    }

    #[test]
    fn sequence_and_timestamp_wrap_are_seamless() {
        let mut sim = Sim::new(65500, u32::MAX - 960 * 20);
        let out = run(&mut sim, 200, |_| 0, |_| false);
        assert_eq!(played(&out), (0..200).collect::<Vec<_>>());
        assert_eq!(sim.jb.stats().resyncs, 0);
    }

    #[test]
    fn sender_restart_resyncs_at_once() {
        let mut sim = Sim::new(1000, 10_000);
        for k in 0..10 {
            sim.push(20 * u64::from(k), k);
            assert_eq!(sim.pop(20 * u64::from(k) + 10), Got::P(k));
        }
        // New random seq and timestamp bases, 200 ms later.
        let (seq1, ts1) = (40_000u16, 3_000_000_000u32);
        for k in 0..10u32 {
            let t = sim.at(400 + 20 * u64::from(k));
            let r = sim
                .jb
                .push(t, seq1 + k as u16, ts1 + k * STEP, &payload(100 + k));
            assert_eq!(
                r,
                if k == 0 {
                    Pushed::Resynced
                } else {
                    Pushed::Stored
                }
            );
            assert_eq!(
                Got::from(sim.jb.pop(t + Duration::from_millis(10))),
                Got::P(100 + k)
            );
        }
        assert_eq!(sim.jb.stats().resyncs, 1);
    }

    #[test]
    fn restart_with_close_sequence_needs_two_packets() {
        let mut sim = Sim::new(0, 0);
        for k in 0..5 {
            sim.push(20 * u64::from(k), k);
            sim.pop(20 * u64::from(k) + 10);
        }
        // Timestamp jumps back ten seconds, sequence continues: one such packet is ignored,
        // the second proves a new timeline.
        let ts = (5 * STEP).wrapping_sub(48_000 * 10);
        assert_eq!(sim.jb.push(sim.at(100), 5, ts, &payload(5)), Pushed::Stray);
        assert_eq!(
            sim.jb
                .push(sim.at(120), 6, ts.wrapping_add(STEP), &payload(6)),
            Pushed::Resynced
        );
        assert_eq!(sim.pop(130), Got::P(6));
    }

    #[test]
    fn burst_after_outage_keeps_the_newest() {
        let mut sim = Sim::new(0, 0);
        sim.push(0, 0);
        assert_eq!(sim.pop(10), Got::P(0));
        // 1..=20 arrive together (no pops in between, e.g. the task was starved): the slots
        // hold 16, the oldest are dropped to make room.
        for k in 1..=20 {
            assert_eq!(sim.push(400, k), Pushed::Stored);
        }
        assert!(sim.jb.stats().skipped >= 4);
        assert_eq!(sim.pop(410), Got::P(5));
    }

    #[test]
    fn jitter_raises_the_target_and_calm_lowers_it_again() {
        let mut sim = Sim::new(0, 0);
        // Pseudo-random delays of 0..50 ms for 400 packets, then none.
        let jitter = |k: u32| {
            if k < 400 {
                u64::from(k.wrapping_mul(2_654_435_761) >> 16) % 50
            } else {
                0
            }
        };
        let out = run(&mut sim, 1000, jitter, |_| false);
        let peak = {
            let mut s = Sim::new(0, 0);
            run(&mut s, 300, jitter, |_| false);
            s.jb.target()
        };
        assert!((3..=4).contains(&peak), "target under 50 ms jitter: {peak}");
        assert_eq!(sim.jb.target(), 1, "target after calm");
        // Once adapted, jittered packets are all played...
        let lost_late = out[100..400]
            .iter()
            .filter(|g| !matches!(g, Got::P(_)))
            .count();
        assert!(lost_late <= 3, "{lost_late}: {:?}", &out[100..400]);
        // ...and the delay shrinks back: by the end, packets play on the tick they arrive.
        assert!(sim.jb.depth() <= 1);
        assert!(sim.jb.stats().skipped >= 1);
        let got = played(&out);
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn target_stays_within_bounds() {
        let mut sim = Sim::new(0, 0);
        run(&mut sim, 300, |k| u64::from(k % 7) * 40, |_| false);
        assert_eq!(sim.jb.target(), 6);
    }

    #[test]
    fn bad_sizes_are_refused() {
        let mut jb = JitterBuffer::new(JitterConfig {
            max_payload: 10,
            ..JitterConfig::default()
        });
        let now = Instant::now();
        assert_eq!(jb.push(now, 0, 0, &[]), Pushed::BadSize);
        assert_eq!(jb.push(now, 0, 0, &[0; 11]), Pushed::BadSize);
        assert_eq!(jb.push(now, 0, 0, &[0; 10]), Pushed::Resynced);
        assert_eq!(jb.stats().bad_size, 2);
    }

    #[test]
    fn misaligned_timestamps_round_to_the_nearest_frame() {
        let mut sim = Sim::new(0, 0);
        let now = sim.at(0);
        sim.jb.push(now, 0, 0, &payload(0));
        sim.jb.push(now, 1, STEP + 7, &payload(1));
        sim.jb.push(now, 2, 2 * STEP - 5, &payload(2));
        assert_eq!(sim.pop(10), Got::P(0));
        assert_eq!(sim.pop(30), Got::P(1));
        assert_eq!(sim.pop(50), Got::P(2));
    }
}
