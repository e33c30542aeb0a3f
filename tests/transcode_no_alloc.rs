//! The per-call media path must not allocate once running: a counting global allocator
//! watches 1000 frames of both directions after a warm-up.
//!
//! Only this thread's allocations are counted (the test harness allocates on its own threads
//! meanwhile). libopus allocates with C `malloc`, which this allocator does not see; it does
//! so only in `opus_*_create`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use whatsip::media::g711::G711;
use whatsip::media::jitter::{JitterBuffer, JitterConfig};
use whatsip::media::opus::{OpusEncoder, MAX_PACKET};
use whatsip::media::tone::sine;
use whatsip::media::transcode::{
    DecodeConfig, Decoded, EncodeConfig, G711ToOpus, IdleFill, OpusToG711,
};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread-locals may already be gone while a thread shuts down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

/// Runs `f` and returns how many allocations this thread made meanwhile.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, ALLOCATIONS.with(Cell::get))
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Everything one call owns on its media path.
struct Call {
    jitter: JitterBuffer,
    rx: OpusToG711,
    tx: G711ToOpus,
    to_phone: [u8; 160],
    from_phone: Vec<[u8; 160]>,
    from_whatsapp: Vec<Vec<u8>>,
    t0: Instant,
}

impl Call {
    fn new(opus_rate: u32, idle: IdleFill) -> Call {
        let law = G711::Pcmu;
        // Test signals are made up front: they are the network's doing, not the call's.
        let mut enc = OpusEncoder::new(48000, 1, 5, true, 10).unwrap();
        let mut buf = [0u8; MAX_PACKET];
        let from_whatsapp = sine(440.0, 48000, 1.0, 0.3)
            .chunks_exact(960)
            .map(|c| {
                let n = enc.encode(c, &mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect();
        let from_phone = sine(1000.0, 8000, 1.0, 0.3)
            .chunks_exact(160)
            .map(|c| {
                let mut b = [0u8; 160];
                law.encode(c, &mut b);
                b
            })
            .collect();
        Call {
            jitter: JitterBuffer::new(JitterConfig::default()),
            rx: OpusToG711::new(law, DecodeConfig { opus_rate }).unwrap(),
            tx: G711ToOpus::new(
                law,
                EncodeConfig {
                    opus_rate,
                    idle,
                    ..EncodeConfig::default()
                },
            )
            .unwrap(),
            to_phone: [0; 160],
            from_phone,
            from_whatsapp,
            t0: Instant::now(),
        }
    }

    /// One 20 ms tick: packets in with loss and reordering, both directions out.
    fn tick(&mut self, k: usize) -> (Decoded, usize) {
        let now = self.t0 + Duration::from_millis(20 * k as u64);
        // Every seventh packet is overtaken by the next one.
        if !k.is_multiple_of(7) {
            self.receive(now, k);
        }
        if k % 7 == 1 {
            self.receive(now, k - 1);
        }
        let frame = self.jitter.pop(now + Duration::from_millis(10));
        let decoded = self.rx.frame(frame, &mut self.to_phone);
        // The phone goes quiet for a while every second.
        let input = if k % 50 < 40 {
            Some(&self.from_phone[k % self.from_phone.len()])
        } else {
            None
        };
        let len = self.tx.frame(input).unwrap().len();
        (decoded, len)
    }

    /// Packet `j` arrives, unless the network lost it.
    fn receive(&mut self, now: Instant, j: usize) {
        if j % 13 == 5 || j % 29 == 3 {
            return;
        }
        let payload = &self.from_whatsapp[j % self.from_whatsapp.len()];
        self.jitter
            .push(now, j as u16, (j as u32).wrapping_mul(960), payload);
    }
}

#[test]
fn steady_state_media_path_does_not_allocate() {
    for (rate, idle) in [
        (8000, IdleFill::ComfortNoise { dbfs: -70.0 }),
        (16000, IdleFill::Silence),
        (48000, IdleFill::ComfortNoise { dbfs: -70.0 }),
    ] {
        let mut call = Call::new(rate, idle);
        for k in 0..100 {
            call.tick(k);
        }
        let (outcomes, allocations) = count(|| {
            let mut outcomes = [0usize; 5];
            for k in 100..1100 {
                let (decoded, len) = call.tick(k);
                assert!(len > 0);
                let i = match decoded {
                    Decoded::Audio => 0,
                    Decoded::Recovered => 1,
                    Decoded::Concealed => 2,
                    Decoded::Silence => 3,
                    Decoded::Corrupt(_) => 4,
                };
                outcomes[i] += 1;
            }
            outcomes
        });
        assert_eq!(
            allocations, 0,
            "{rate} Hz: {allocations} allocations in 1000 frames"
        );
        // The run did exercise loss handling, not just the happy path.
        assert!(outcomes[0] > 800, "{rate}: {outcomes:?}");
        assert!(outcomes[1] + outcomes[2] > 40, "{rate}: {outcomes:?}");
    }
}

#[test]
fn announcement_frames_do_not_allocate() {
    // What the bridge does with `BridgeCommand::Play`: 20 ms slices of the shared samples,
    // read in place, straight into the encoder; 20.01 s, so the last slice is a short one.
    let samples: std::sync::Arc<[i16]> = sine(440.0, 8000, 20.01, 0.3).into();
    let mut tx = G711ToOpus::new(G711::Pcmu, EncodeConfig::default()).unwrap();
    tx.frame_linear(&samples[..160]).unwrap();
    let (frames, allocations) = count(|| {
        let mut frames = 0;
        for chunk in samples.chunks(160) {
            assert!(!tx.frame_linear(chunk).unwrap().is_empty());
            frames += 1;
        }
        frames
    });
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {frames} frames"
    );
    assert_eq!(frames, 1001);
}

#[test]
fn the_counter_does_count() {
    let (v, allocations) = count(|| std::hint::black_box(vec![1u8; 10]));
    drop(v);
    assert_eq!(allocations, 1);
}
