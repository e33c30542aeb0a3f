//! When each frame of one stream reached the feeder, against when it was due.
//!
//! A bridge sends one frame per tick on each leg, its RTP timestamp advancing one frame per
//! tick. A frame's offset is its arrival time minus its place on that timeline; the earliest
//! offset of the second up to a frame stands for "on time" (the bridge's tick grid), and a
//! frame more than one tick behind it is late. This is what the far end sees: the bridge's own scheduling plus
//! webrtc-rs's queues plus the feeder's own delays (so it can only over-count).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// One second of frames: the baseline "on time" is the earliest offset among them.
const BASELINE_FRAMES: usize = 50;

/// Whether the measurement window is open; outside it packets are only counted.
pub static WINDOW: AtomicBool = AtomicBool::new(false);

pub struct Arrivals {
    clock_hz: u32,
    epoch: Instant,
    first_ts: Option<u32>,
    pub packets: u64,
    /// (arrival since epoch, arrival minus due time on the stream's own timeline), µs, for
    /// frames in the window.
    offsets_us: Vec<(i64, i64)>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Lateness {
    pub frames: u64,
    pub late: u64,
    pub max_us: i64,
}

impl Lateness {
    pub fn add(&mut self, other: Lateness) {
        self.frames += other.frames;
        self.late += other.late;
        self.max_us = self.max_us.max(other.max_us);
    }
}

impl Arrivals {
    /// `window_frames` is reserved up front so recording does not allocate.
    pub fn new(clock_hz: u32, epoch: Instant, window_frames: usize) -> Arrivals {
        Arrivals {
            clock_hz,
            epoch,
            first_ts: None,
            packets: 0,
            offsets_us: Vec::with_capacity(window_frames),
        }
    }

    pub fn record(&mut self, now: Instant, timestamp: u32) {
        self.packets += 1;
        let first = *self.first_ts.get_or_insert(timestamp);
        if !WINDOW.load(Ordering::Relaxed) {
            return;
        }
        let units = i64::from(timestamp.wrapping_sub(first));
        let due_us = units * 1_000_000 / i64::from(self.clock_hz);
        let at_us = now.saturating_duration_since(self.epoch).as_micros() as i64;
        self.offsets_us.push((at_us, at_us - due_us));
    }

    /// Frames in the window and those more than `tick_us` behind the earliest of the second
    /// before them.
    pub fn lateness(&self, tick_us: i64) -> Lateness {
        let mut l = Lateness {
            frames: self.offsets_us.len() as u64,
            ..Lateness::default()
        };
        for (_, behind) in self.behind() {
            l.late += u64::from(behind > tick_us);
            l.max_us = l.max_us.max(behind);
        }
        l
    }

    /// Arrival times (µs since the epoch) of the late frames.
    pub fn late_at(&self, tick_us: i64) -> impl Iterator<Item = i64> + '_ {
        self.behind()
            .filter(move |&(_, behind)| behind > tick_us)
            .map(|(at, _)| at)
    }

    /// (arrival, µs behind the earliest offset of the last [`BASELINE_FRAMES`] frames) per
    /// frame. A sliding baseline, because a bridge that fell more than 5 ticks behind
    /// resynchronises its tick grid, and a fixed one would count every later frame as late.
    fn behind(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let mut window: VecDeque<(usize, i64)> = VecDeque::with_capacity(BASELINE_FRAMES);
        self.offsets_us
            .iter()
            .enumerate()
            .map(move |(i, &(at, offset))| {
                while window.back().is_some_and(|&(_, o)| o >= offset) {
                    window.pop_back();
                }
                window.push_back((i, offset));
                while window
                    .front()
                    .is_some_and(|&(j, _)| j + BASELINE_FRAMES <= i)
                {
                    window.pop_front();
                }
                let base = window.front().map_or(offset, |&(_, o)| o);
                (at, offset - base)
            })
    }
}
