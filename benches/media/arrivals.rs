//! When each frame of one stream reached the feeder, against when it was due.
//!
//! A bridge sends one frame per tick on each leg, its RTP timestamp advancing one frame per
//! tick. A frame's offset is its arrival time minus its place on that timeline; the earliest
//! offset of the window stands for "on time" (the bridge's tick grid), and a frame more than
//! one tick behind it is late. This is what the far end sees: the bridge's own scheduling plus
//! webrtc-rs's queues plus the feeder's own delays (so it can only over-count).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Whether the measurement window is open; outside it packets are only counted.
pub static WINDOW: AtomicBool = AtomicBool::new(false);

pub struct Arrivals {
    clock_hz: u32,
    epoch: Instant,
    first_ts: Option<u32>,
    pub packets: u64,
    /// Arrival minus due time on the stream's own timeline, µs, for frames in the window.
    offsets_us: Vec<i64>,
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
        self.offsets_us.push(at_us - due_us);
    }

    /// Frames in the window and those more than `tick_us` behind the earliest one.
    pub fn lateness(&self, tick_us: i64) -> Lateness {
        let Some(&base) = self.offsets_us.iter().min() else {
            return Lateness::default();
        };
        let behind = self.offsets_us.iter().map(|o| o - base);
        Lateness {
            frames: self.offsets_us.len() as u64,
            late: behind.clone().filter(|&d| d > tick_us).count() as u64,
            max_us: behind.max().unwrap_or(0),
        }
    }
}
