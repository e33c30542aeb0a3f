//! Measuring audio instead of trusting it arrived: tone power and frequency, level, and a sine
//! generator for tests and the `ring` admin tool.
//!
//! Levels are dBFS relative to a full-scale square wave, so a full-scale sine measures
//! -3.01 dBFS both in [`rms_dbfs`] and as the level reported by [`dominant_frequency`].

use std::f64::consts::PI;

const FULL_SCALE: f64 = 32768.0;
/// Level reported for digital silence instead of -infinity.
pub const SILENCE_DBFS: f32 = -120.0;

/// Mean-square power of the component of `samples` at `freq` Hz, relative to full scale (so
/// `10 * log10` of it is on the same dBFS scale as [`rms_dbfs`]).
///
/// Rectangular window: exact for a tone with a whole number of cycles in the buffer, and
/// leakage otherwise; [`dominant_frequency`] windows its segments.
pub fn goertzel_power(samples: &[i16], rate: u32, freq: f32) -> f32 {
    goertzel(samples, rate, f64::from(freq), false) as f32
}

/// The strongest frequency between `min_hz` and `max_hz` and its level in dBFS, or `None` for
/// an empty buffer, an empty range, or digital silence.
///
/// Scans in 10 Hz steps over Hann-windowed segments of 100 ms averaged together (Welch), then
/// refines around the best step to about 0.1 Hz. At most the middle second is analysed.
pub fn dominant_frequency(
    samples: &[i16],
    rate: u32,
    min_hz: f32,
    max_hz: f32,
) -> Option<(f32, f32)> {
    let nyquist = rate as f32 / 2.0;
    let (min_hz, max_hz) = (min_hz.max(1.0), max_hz.min(nyquist - 1.0));
    if samples.is_empty() || rate == 0 || min_hz > max_hz {
        return None;
    }
    let window = middle(samples, rate as usize);
    let power = |f: f64| welch(window, rate, f);

    let steps = ((max_hz - min_hz) / 10.0).floor() as usize;
    let (mut best_f, mut best_p) = (f64::from(min_hz), 0.0);
    for i in 0..=steps {
        let f = f64::from(min_hz) + 10.0 * i as f64;
        let p = power(f);
        if p > best_p {
            (best_f, best_p) = (f, p);
        }
    }
    if best_p <= 0.0 {
        return None;
    }
    // Refine: 1 Hz steps within the winning 10 Hz cell, then a parabola through the peak and
    // its neighbours (on dB, where the Hann main lobe is close to a parabola).
    let lo = (best_f - 10.0).max(f64::from(min_hz));
    let hi = (best_f + 10.0).min(f64::from(max_hz));
    let mut f = lo;
    while f <= hi {
        let p = power(f);
        if p > best_p {
            (best_f, best_p) = (f, p);
        }
        f += 1.0;
    }
    let (pl, pr) = (power(best_f - 1.0), power(best_f + 1.0));
    let db = |p: f64| 10.0 * p.max(1e-30).log10();
    let (a, b, c) = (db(pl), db(best_p), db(pr));
    let denom = a - 2.0 * b + c;
    if denom < 0.0 {
        let shift = (0.5 * (a - c) / denom).clamp(-1.0, 1.0);
        let f2 = best_f + shift;
        let p2 = power(f2);
        if p2 >= best_p {
            (best_f, best_p) = (f2, p2);
        }
    }
    Some((best_f as f32, db(best_p) as f32))
}

/// RMS level in dBFS (full-scale square wave = 0 dBFS); [`SILENCE_DBFS`] for silence.
pub fn rms_dbfs(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    let ms = sum / samples.len() as f64 / (FULL_SCALE * FULL_SCALE);
    if ms <= 0.0 {
        return SILENCE_DBFS;
    }
    ((10.0 * ms.log10()) as f32).max(SILENCE_DBFS)
}

/// A sine of `freq` Hz lasting `seconds`; `amplitude` is the peak as a fraction of full scale
/// (clamped to 0..=1).
pub fn sine(freq: f32, rate: u32, seconds: f32, amplitude: f32) -> Vec<i16> {
    let n = (rate as f32 * seconds).round().max(0.0) as usize;
    let peak = f64::from(amplitude.clamp(0.0, 1.0)) * f64::from(i16::MAX);
    let w = 2.0 * PI * f64::from(freq) / f64::from(rate);
    (0..n)
        .map(|i| (peak * (w * i as f64).sin()).round() as i16)
        .collect()
}

/// Goertzel at an arbitrary frequency, normalised so a sine of peak amplitude A (fraction of
/// full scale) gives A²/2 whatever the window.
fn goertzel(samples: &[i16], rate: u32, freq: f64, hann: bool) -> f64 {
    let n = samples.len();
    if n == 0 || rate == 0 {
        return 0.0;
    }
    let w = 2.0 * PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut gain = 0.0;
    for (i, &x) in samples.iter().enumerate() {
        let win = if hann {
            0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos()
        } else {
            1.0
        };
        gain += win;
        let s0 = f64::from(x) / FULL_SCALE * win + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let mag2 = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    // |X| = A * gain / 2 for a sine of peak A, and its mean-square power is A² / 2.
    2.0 * mag2 / (gain * gain)
}

/// Average windowed Goertzel power over consecutive 100 ms segments.
fn welch(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let seg = ((rate / 10) as usize).clamp(1, samples.len());
    let count = samples.len() / seg;
    let total: f64 = samples
        .chunks_exact(seg)
        .map(|c| goertzel(c, rate, freq, true))
        .sum();
    total / count as f64
}

fn middle(samples: &[i16], max: usize) -> &[i16] {
    if samples.len() <= max {
        return samples;
    }
    let start = (samples.len() - max) / 2;
    &samples[start..start + max]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_shape() {
        let s = sine(1000.0, 8000, 0.5, 0.5);
        assert_eq!(s.len(), 4000);
        assert_eq!(s[0], 0);
        assert_eq!(s[2], 16384); // quarter period at 1 kHz / 8 kHz
        assert!(sine(440.0, 8000, 1.0, 2.0).contains(&i16::MAX));
    }

    #[test]
    fn rms_of_known_signals() {
        assert_eq!(rms_dbfs(&[]), SILENCE_DBFS);
        assert_eq!(rms_dbfs(&[0; 100]), SILENCE_DBFS);
        assert!((rms_dbfs(&sine(1000.0, 8000, 1.0, 1.0)) + 3.01).abs() < 0.05);
        assert!((rms_dbfs(&sine(1000.0, 8000, 1.0, 0.1)) + 23.01).abs() < 0.05);
        assert!(rms_dbfs(&[i16::MIN; 10]).abs() < 0.001);
    }

    #[test]
    fn goertzel_picks_out_one_tone() {
        let mut s = sine(1000.0, 8000, 0.1, 0.5);
        for (x, y) in s.iter_mut().zip(sine(2000.0, 8000, 0.1, 0.05)) {
            *x += y;
        }
        let p1 = 10.0 * goertzel_power(&s, 8000, 1000.0).log10();
        let p2 = 10.0 * goertzel_power(&s, 8000, 2000.0).log10();
        let p3 = goertzel_power(&s, 8000, 1500.0);
        assert!((p1 - (20.0 * 0.5f32.log10() - 3.01)).abs() < 0.1, "{p1}");
        assert!((p2 - (20.0 * 0.05f32.log10() - 3.01)).abs() < 0.1, "{p2}");
        assert!(p3 < 1e-8, "{p3}");
        assert_eq!(goertzel_power(&[], 8000, 1000.0), 0.0);
    }

    #[test]
    fn dominant_frequency_finds_tone_and_level() {
        for (f, amp) in [(1000.0, 0.5), (437.0, 0.2), (3333.3, 0.05), (123.4, 0.9)] {
            let s = sine(f, 8000, 0.6, amp);
            let (hz, db) = dominant_frequency(&s, 8000, 50.0, 3800.0).unwrap();
            let want_db = 20.0 * amp.log10() - 3.01;
            assert!((hz - f).abs() < 0.5, "{f}: got {hz}");
            assert!((db - want_db).abs() < 0.2, "{f}: {db} vs {want_db}");
        }
        // 48 kHz, only 20 ms of audio, a quieter second tone.
        let mut s = sine(700.0, 48000, 0.02, 0.3);
        for (x, y) in s.iter_mut().zip(sine(1900.0, 48000, 0.02, 0.1)) {
            *x += y;
        }
        let (hz, _) = dominant_frequency(&s, 48000, 50.0, 3800.0).unwrap();
        assert!((hz - 700.0).abs() < 5.0, "{hz}");
    }

    #[test]
    fn dominant_frequency_edge_cases() {
        assert_eq!(dominant_frequency(&[], 8000, 50.0, 3800.0), None);
        assert_eq!(dominant_frequency(&[0; 800], 8000, 50.0, 3800.0), None);
        assert_eq!(dominant_frequency(&[100; 800], 8000, 3000.0, 200.0), None);
        // A tone outside the range: the in-range peak is leakage, far below the tone's level.
        let s = sine(3000.0, 8000, 0.3, 0.5);
        let (_, db) = dominant_frequency(&s, 8000, 50.0, 1000.0).unwrap();
        assert!(db < -60.0, "{db}");
    }
}
