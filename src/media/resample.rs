//! Streaming integer-ratio resampling between the telephone rate and the Opus rates:
//! 8k↔16k, 8k↔48k and 16k↔48k.
//!
//! One linear-phase low-pass FIR (Kaiser-windowed sinc) runs at the higher rate, evaluated in
//! polyphase form: going down only every M-th output is computed, going up only the non-zero
//! inputs of the zero-stuffed signal are multiplied. The filter's band edges are set by the
//! lower rate's Nyquist frequency: flat (< 0.05 dB ripple) up to 85 % of it, e.g. 3.4 kHz for
//! 8 kHz, and at least [`STOPBAND_DB`] down from 96 % of it (3.85 kHz) on, so a tone above
//! 3.9 kHz cannot fold back into the telephone band.
//!
//! The input history lives in the struct, so audio cut into frames of any size comes out
//! exactly as if it had been processed in one piece. Tables and history are allocated in
//! [`Resampler::new`]; [`Resampler::process`] does not allocate.

/// Design target for the stopband attenuation; the tests measure at least 60 dB.
pub const STOPBAND_DB: f64 = 70.0;
/// Passband edge as a fraction of the lower rate's Nyquist frequency.
const PASS_EDGE: f64 = 0.85;
/// Stopband edge as a fraction of the lower rate's Nyquist frequency.
const STOP_EDGE: f64 = 0.9625;
/// Dot products run in blocks of this many lanes so the compiler can vectorise them without
/// reassociating floating-point sums (which it may not do on its own).
const LANES: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no resampler from {from} Hz to {to} Hz")]
pub struct UnsupportedRatio {
    pub from: u32,
    pub to: u32,
}

/// A stateful resampler for one mono stream.
pub struct Resampler {
    from: u32,
    to: u32,
    direction: Direction,
    /// Up: `factor` phases of `window` coefficients each; down: one row of `window`. Each row
    /// is ordered oldest input first, matching the history window.
    coeffs: Box<[f32]>,
    /// Inputs the filter looks at for one output.
    window: usize,
    /// The last `window` inputs, stored twice (`[i]` and `[i + window]`) so the newest
    /// `window` of them are always one contiguous slice, `history[pos..pos + window]`.
    history: Box<[f32]>,
    pos: usize,
    /// Down only: inputs still to come before the next output is due.
    countdown: usize,
    /// Prototype filter length, for the delay figure.
    taps: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up(usize),
    Down(usize),
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Result<Self, UnsupportedRatio> {
        let err = UnsupportedRatio { from, to };
        let supported = |r| matches!(r, 8000 | 16000 | 48000);
        if !supported(from) || !supported(to) || from == to {
            return Err(err);
        }
        let (high, low) = (from.max(to), from.min(to));
        let factor = (high / low) as usize;
        let h = design(high, low);
        let taps = h.len();
        let (direction, window, coeffs) = if to > from {
            // Output n*L+p = L * sum_j h[j*L + p] * x[n - j]: phase p uses every L-th tap,
            // scaled by L to make up for the zeros stuffed between the inputs.
            let window = round_up(taps.div_ceil(factor), LANES);
            let mut c = vec![0f32; factor * window];
            for p in 0..factor {
                for i in 0..window {
                    let j = window - 1 - i;
                    if let Some(&tap) = h.get(j * factor + p) {
                        c[p * window + i] = (tap * factor as f64) as f32;
                    }
                }
            }
            (Direction::Up(factor), window, c)
        } else {
            let window = round_up(taps, LANES);
            let mut c = vec![0f32; window];
            for (i, slot) in c.iter_mut().enumerate() {
                let j = window - 1 - i;
                if let Some(&tap) = h.get(j) {
                    *slot = tap as f32;
                }
            }
            (Direction::Down(factor), window, c)
        };
        Ok(Resampler {
            from,
            to,
            direction,
            coeffs: coeffs.into_boxed_slice(),
            window,
            history: vec![0f32; 2 * window].into_boxed_slice(),
            pos: 0,
            countdown: 0,
            taps,
        })
    }

    pub fn from_rate(&self) -> u32 {
        self.from
    }

    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Exactly how many samples the next [`process`](Self::process) call with `input_len`
    /// inputs will write. For whole 20 ms frames that is always the 20 ms frame at `to`.
    pub fn output_len(&self, input_len: usize) -> usize {
        match self.direction {
            Direction::Up(l) => input_len * l,
            Direction::Down(m) => {
                if input_len <= self.countdown {
                    0
                } else {
                    (input_len - self.countdown - 1) / m + 1
                }
            }
        }
    }

    /// The filter's group delay in seconds (it is linear-phase, so every frequency is delayed
    /// by the same amount).
    pub fn delay_seconds(&self) -> f64 {
        (self.taps - 1) as f64 / 2.0 / f64::from(self.from.max(self.to))
    }

    /// Resamples `input`, continuing from the previous call, into the front of `output` and
    /// returns the number of samples written ([`output_len`](Self::output_len)).
    ///
    /// # Panics
    /// If `output` is shorter than `output_len(input.len())`: buffers are sized once by the
    /// owner of the stream, so a short one is a programming error, not a runtime condition.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> usize {
        let need = self.output_len(input.len());
        assert!(
            output.len() >= need,
            "resampler {}->{}: output holds {} samples, {need} needed",
            self.from,
            self.to,
            output.len()
        );
        let w = self.window;
        let mut written = 0;
        match self.direction {
            Direction::Up(l) => {
                for &x in input {
                    self.push(x);
                    let hist = &self.history[self.pos..self.pos + w];
                    for phase in self.coeffs.chunks_exact(w) {
                        output[written] = to_i16(dot(hist, phase));
                        written += 1;
                    }
                    debug_assert_eq!(self.coeffs.len(), l * w);
                }
            }
            Direction::Down(m) => {
                for &x in input {
                    self.push(x);
                    if self.countdown == 0 {
                        let hist = &self.history[self.pos..self.pos + w];
                        output[written] = to_i16(dot(hist, &self.coeffs));
                        written += 1;
                        self.countdown = m;
                    }
                    self.countdown -= 1;
                }
            }
        }
        debug_assert_eq!(written, need);
        written
    }

    /// Forgets the history, as if freshly constructed.
    pub fn reset(&mut self) {
        self.history.fill(0.0);
        self.pos = 0;
        self.countdown = 0;
    }

    fn push(&mut self, x: i16) {
        let w = self.window;
        let x = f32::from(x);
        self.history[self.pos] = x;
        self.history[self.pos + w] = x;
        self.pos += 1;
        if self.pos == w {
            self.pos = 0;
        }
    }
}

/// Kaiser-windowed sinc low-pass at `high` Hz whose transition band sits just below `low`'s
/// Nyquist frequency; odd length, symmetric, unity gain at DC.
///
/// The order is a multiple of twice the ratio, so the group delay is a whole number of
/// samples at the lower rate too: a signal that goes down and back up (or is compared with
/// its original) lines up without a fractional-sample shift.
fn design(high: u32, low: u32) -> Vec<f64> {
    use std::f64::consts::PI;
    let nyquist = f64::from(low) / 2.0;
    let (pass, stop) = (PASS_EDGE * nyquist, STOP_EDGE * nyquist);
    let fs = f64::from(high);
    let transition = 2.0 * PI * (stop - pass) / fs;
    // Kaiser's estimates for length and shape (Oppenheim & Schafer, eq. 7.63 and 7.62).
    let order = ((STOPBAND_DB - 7.95) / (2.285 * transition)).ceil() as usize;
    let order = round_up(order, 2 * (high / low) as usize);
    let beta = 0.1102 * (STOPBAND_DB - 8.7);
    let cutoff = (pass + stop) / 2.0 / fs;
    let mid = order as f64 / 2.0;
    let mut h: Vec<f64> = (0..=order)
        .map(|n| {
            let t = n as f64 - mid;
            let sinc = if t == 0.0 {
                2.0 * cutoff
            } else {
                (2.0 * PI * cutoff * t).sin() / (PI * t)
            };
            let r = t / mid;
            sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta)
        })
        .collect();
    let sum: f64 = h.iter().sum();
    for t in &mut h {
        *t /= sum;
    }
    h
}

/// Modified Bessel function of the first kind, order 0, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    let q = x * x / 4.0;
    while term > sum * 1e-12 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

/// Both slices have the same length, a multiple of [`LANES`].
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += ca[k] * cb[k];
        }
    }
    acc.iter().sum()
}

fn to_i16(y: f32) -> i16 {
    // `as` saturates at the i16 range and truncates toward zero, so add half first.
    (y + 0.5f32.copysign(y)) as i16
}

#[cfg(test)]
mod tests {
    use super::super::tone::{dominant_frequency, goertzel_power, rms_dbfs, sine};
    use super::*;

    const PAIRS: [(u32, u32); 6] = [
        (8000, 16000),
        (16000, 8000),
        (8000, 48000),
        (48000, 8000),
        (16000, 48000),
        (48000, 16000),
    ];

    fn run_frames(r: &mut Resampler, input: &[i16], frame: usize) -> Vec<i16> {
        let mut out = Vec::new();
        let mut buf = vec![0i16; r.output_len(frame) + 8];
        for chunk in input.chunks(frame) {
            let n = r.process(chunk, &mut buf);
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// Power gain of the prototype at `f` Hz, in dB.
    fn response_db(h: &[f64], fs: f64, f: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * f / fs;
        let (mut re, mut im) = (0.0, 0.0);
        for (n, &t) in h.iter().enumerate() {
            re += t * (w * n as f64).cos();
            im -= t * (w * n as f64).sin();
        }
        10.0 * (re * re + im * im).log10()
    }

    #[test]
    fn unsupported_ratios_are_refused() {
        for (a, b) in [(8000, 8000), (8000, 44100), (12000, 48000), (0, 8000)] {
            assert_eq!(
                Resampler::new(a, b).err(),
                Some(UnsupportedRatio { from: a, to: b })
            );
        }
    }

    #[test]
    fn prototype_meets_the_mask() {
        for (high, low) in [(16000, 8000), (48000, 8000), (48000, 16000)] {
            let h = design(high, low);
            let nyq = f64::from(low) / 2.0;
            let fs = f64::from(high);
            let mut f = 0.0;
            while f <= PASS_EDGE * nyq {
                let db = response_db(&h, fs, f);
                assert!(db.abs() < 0.05, "{high}/{low}: {db} dB at {f} Hz");
                f += 25.0;
            }
            let mut f = STOP_EDGE * nyq;
            while f <= fs / 2.0 {
                let db = response_db(&h, fs, f);
                assert!(db < -60.0, "{high}/{low}: {db} dB at {f} Hz");
                f += 10.0;
            }
        }
    }

    #[test]
    fn output_lengths_are_exact_per_20ms_frame() {
        for (from, to) in PAIRS {
            let mut r = Resampler::new(from, to).unwrap();
            let (fi, fo) = (from as usize / 50, to as usize / 50);
            let mut out = vec![0i16; fo];
            for _ in 0..5 {
                assert_eq!(r.output_len(fi), fo);
                assert_eq!(r.process(&vec![100; fi], &mut out), fo);
            }
        }
    }

    #[test]
    fn a_1khz_tone_keeps_its_frequency_and_level() {
        for (from, to) in PAIRS {
            let mut r = Resampler::new(from, to).unwrap();
            let input = sine(1000.0, from, 0.5, 0.5);
            let out = run_frames(&mut r, &input, from as usize / 50);
            assert_eq!(out.len(), to as usize / 2);
            // Skip the filter's start-up (well under 10 ms).
            let steady = &out[to as usize / 50..];
            let (hz, db) = dominant_frequency(steady, to, 100.0, 3800.0).unwrap();
            assert!((hz - 1000.0).abs() < 1.0, "{from}->{to}: {hz} Hz");
            let want = rms_dbfs(&input);
            assert!((db - want).abs() < 0.5, "{from}->{to}: {db} vs {want} dBFS");
            assert!((rms_dbfs(steady) - want).abs() < 0.5, "{from}->{to}");
        }
    }

    #[test]
    fn telephone_band_edges() {
        // 300 Hz and 3.4 kHz pass at full level, everything from 3.9 kHz up is gone from the
        // 8 kHz output, whether it would land in band directly or fold back (aliasing).
        for from in [16000, 48000] {
            for f in [300.0, 3400.0] {
                let mut r = Resampler::new(from, 8000).unwrap();
                let out = run_frames(&mut r, &sine(f, from, 0.5, 0.5), from as usize / 50);
                let got = 10.0 * goertzel_power(&out[800..], 8000, f).log10();
                assert!(
                    (got - rms_dbfs(&sine(f, 8000, 0.5, 0.5))).abs() < 0.5,
                    "{f}: {got}"
                );
            }
            let nyq_in = from as f32 / 2.0;
            for f in [
                3900.0, 4000.0, 4100.0, 4500.0, 6000.0, 7900.0, 11000.0, 23000.0,
            ] {
                if f >= nyq_in {
                    continue;
                }
                let mut r = Resampler::new(from, 8000).unwrap();
                let input = sine(f, from, 0.5, 0.5);
                let out = run_frames(&mut r, &input, from as usize / 50);
                let left = rms_dbfs(&out[800..]);
                let down = rms_dbfs(&input) - left;
                assert!(down >= 60.0, "{from}->8000: {f} Hz only {down} dB down");
            }
        }
    }

    #[test]
    fn upsampling_leaves_no_images() {
        // A 1 kHz tone at 8 kHz has images at 7, 9, 15, 17 ... kHz once zero-stuffed.
        for to in [16000, 48000] {
            let mut r = Resampler::new(8000, to).unwrap();
            let out = run_frames(&mut r, &sine(1000.0, 8000, 0.5, 0.5), 160);
            let steady = &out[to as usize / 50..];
            let tone = 10.0 * goertzel_power(steady, to, 1000.0).log10();
            for image in [7000.0, 9000.0, 15000.0, 17000.0, 23000.0] {
                if image >= to as f32 / 2.0 {
                    continue;
                }
                let p = 10.0 * goertzel_power(steady, to, image).log10();
                assert!(
                    tone - p > 60.0,
                    "8000->{to}: image at {image} only {} dB down",
                    tone - p
                );
            }
        }
    }

    #[test]
    fn frames_of_any_size_equal_one_piece() {
        for (from, to) in PAIRS {
            let mut input = sine(700.0, from, 0.3, 0.4);
            for (i, s) in input.iter_mut().enumerate() {
                *s = s.wrapping_add(((i * 7919) % 2001) as i16 - 1000);
            }
            let whole = run_frames(&mut Resampler::new(from, to).unwrap(), &input, input.len());
            for frame in [from as usize / 50, 1, 7, 97, 1000] {
                let parts = run_frames(&mut Resampler::new(from, to).unwrap(), &input, frame);
                assert_eq!(whole, parts, "{from}->{to} in frames of {frame}");
            }
        }
    }

    #[test]
    fn no_step_at_frame_edges() {
        // A tone's largest sample-to-sample change is 2*pi*f/fs times its peak; at every frame
        // edge the output must stay within that slope (plus rounding).
        for (from, to) in PAIRS {
            let mut r = Resampler::new(from, to).unwrap();
            let out = run_frames(&mut r, &sine(1000.0, from, 0.5, 0.5), from as usize / 50);
            let slope = 2.0 * std::f32::consts::PI * 1000.0 / to as f32 * 0.5 * 32767.0;
            let frame = to as usize / 50;
            for edge in (2 * frame..out.len()).step_by(frame) {
                let step = (f32::from(out[edge]) - f32::from(out[edge - 1])).abs();
                assert!(
                    step <= slope * 1.01 + 2.0,
                    "{from}->{to} at {edge}: {step} > {slope}"
                );
            }
        }
    }

    #[test]
    fn full_scale_input_does_not_wrap() {
        let mut r = Resampler::new(8000, 48000).unwrap();
        let square: Vec<i16> = (0..1600)
            .map(|i| {
                if (i / 20) % 2 == 0 {
                    i16::MAX
                } else {
                    i16::MIN
                }
            })
            .collect();
        let out = run_frames(&mut r, &square, 160);
        // Gibbs overshoot must clip, not wrap around to the opposite sign.
        for w in out.windows(2) {
            assert!((i32::from(w[0]) - i32::from(w[1])).abs() < 30000, "{w:?}");
        }
    }

    #[test]
    fn reset_forgets_history() {
        let mut r = Resampler::new(48000, 8000).unwrap();
        let mut out = [0i16; 160];
        r.process(&sine(1000.0, 48000, 0.02, 0.5), &mut out);
        r.reset();
        r.process(&[0; 960], &mut out);
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn delay_is_a_few_milliseconds_and_whole_samples() {
        for (from, to) in PAIRS {
            let d = Resampler::new(from, to).unwrap().delay_seconds();
            assert!(d > 0.0005 && d < 0.006, "{from}->{to}: {d}");
            let low = f64::from(from.min(to));
            assert!(
                (d * low - (d * low).round()).abs() < 1e-9,
                "{from}->{to}: {}",
                d * low
            );
        }
    }

    #[test]
    fn an_impulse_comes_out_delayed_by_the_group_delay() {
        for (from, to) in [(48000, 8000), (16000, 8000)] {
            let mut r = Resampler::new(from, to).unwrap();
            let mut input = vec![0i16; from as usize / 10];
            input[0] = 30000;
            let out = run_frames(&mut r, &input, from as usize / 50);
            let peak = (0..out.len()).max_by_key(|&i| out[i]).unwrap();
            let d = r.delay_seconds() * f64::from(to);
            assert_eq!(peak as f64, d, "{from}->{to}");
        }
    }

    #[test]
    #[should_panic(expected = "needed")]
    fn short_output_buffer_panics() {
        let mut r = Resampler::new(8000, 48000).unwrap();
        r.process(&[0; 160], &mut [0; 959]);
    }
}
