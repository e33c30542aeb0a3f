//! Making test tones and measuring what arrived.
//!
//! Audio is checked by measurement: the dominant frequency of a recording must be
//! the tone the far end played, at a level well above silence.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// Amplitude of generated tones: -6 dBFS, loud but clear of G.711 clipping.
const TONE_AMPLITUDE: f64 = 0.5;
/// `assert_tone` ignores the start, where the jitter buffer and RTP start-up give silence.
const SKIP_SECONDS: f64 = 0.5;
/// At most this much audio is analysed; enough resolution, bounded cost in debug builds.
const MAX_ANALYSED_SECONDS: f64 = 4.0;
const MIN_LEVEL_DBFS: f64 = -40.0;
const MAX_FREQ_ERROR: f64 = 0.03;

/// Writes an 8 kHz mono 16-bit sine of `hz` lasting `seconds` (G.711's native format,
/// what baresip's `aufile` expects).
pub fn make_tone_wav(path: &Path, hz: f64, seconds: f64) -> Result<()> {
    let rate = 8000u32;
    let spec = hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).with_context(|| format!("creating {}", path.display()))?;
    let n = (seconds * f64::from(rate)).round() as u64;
    for i in 0..n {
        let t = i as f64 / f64::from(rate);
        let s = TONE_AMPLITUDE * (2.0 * std::f64::consts::PI * hz * t).sin();
        w.write_sample((s * f64::from(i16::MAX)).round() as i16)?;
    }
    w.finalize()?;
    Ok(())
}

/// Samples scaled to [-1, 1] (channels averaged to mono) and the sample rate.
///
/// Reads 16-bit PCM and 32-bit float (sndfile's two output formats). A file still
/// being written has a header claiming no data yet; then the data chunk is read
/// up to the end of the file instead.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_wav(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// `(frequency in Hz, level in dBFS)` of the strongest sine in `samples`.
///
/// Goertzel filters with a Hann window, scanned in 10 Hz steps from 50 Hz to just
/// under Nyquist, then refined in 0.5 Hz steps around the peak. The level is the
/// amplitude of that component relative to full scale (a full-scale sine is 0 dBFS).
pub fn dominant_frequency(samples: &[f32], rate: u32) -> (f64, f64) {
    if samples.len() < 64 {
        return (0.0, f64::NEG_INFINITY);
    }
    let n = samples.len();
    let window: Vec<f64> = (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / (n - 1) as f64).cos())
        .collect();
    let windowed: Vec<f64> = samples.iter().zip(&window).map(|(&s, &w)| f64::from(s) * w).collect();
    let gain: f64 = window.iter().sum();
    let amplitude = |hz: f64| 2.0 * goertzel_magnitude(&windowed, rate, hz) / gain;

    let nyquist = f64::from(rate) / 2.0;
    let mut best = (0.0, 0.0);
    let mut hz = 50.0;
    while hz < nyquist - 50.0 {
        let a = amplitude(hz);
        if a > best.1 {
            best = (hz, a);
        }
        hz += 10.0;
    }
    let coarse = best.0;
    let mut hz = coarse - 10.0;
    while hz <= coarse + 10.0 {
        let a = amplitude(hz);
        if a > best.1 {
            best = (hz, a);
        }
        hz += 0.5;
    }
    let dbfs = if best.1 > 0.0 { 20.0 * best.1.log10() } else { f64::NEG_INFINITY };
    (best.0, dbfs)
}

/// What [`check_tone`] measured.
#[derive(Clone, Debug)]
pub struct ToneReport {
    pub hz: f64,
    pub dbfs: f64,
    pub rate: u32,
    pub seconds: f64,
}

/// Measures the recording at `path` after its first 0.5 s and checks that its
/// dominant frequency is within 3 % of `hz` at more than -40 dBFS.
pub fn check_tone(path: &Path, hz: f64) -> Result<ToneReport> {
    let (samples, rate) = read_wav(path)?;
    let seconds = samples.len() as f64 / f64::from(rate);
    let skip = (SKIP_SECONDS * f64::from(rate)) as usize;
    let take = (MAX_ANALYSED_SECONDS * f64::from(rate)) as usize;
    if samples.len() < skip + rate as usize / 4 {
        bail!("{}: only {seconds:.2} s of audio at {rate} Hz; need at least {:.2} s", path.display(), SKIP_SECONDS + 0.25);
    }
    let part = &samples[skip..samples.len().min(skip + take)];
    let (found, dbfs) = dominant_frequency(part, rate);
    let report = ToneReport { hz: found, dbfs, rate, seconds };
    let error = (found - hz).abs() / hz;
    if error > MAX_FREQ_ERROR || dbfs < MIN_LEVEL_DBFS {
        let rms = (part.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / part.len() as f64).sqrt();
        bail!(
            "{}: expected a {hz} Hz tone (within {:.0} %, above {MIN_LEVEL_DBFS} dBFS) but the dominant \
             frequency is {found:.1} Hz at {dbfs:.1} dBFS (overall RMS {:.1} dBFS; {seconds:.2} s at {rate} Hz, \
             analysed {:.2} s after the first {SKIP_SECONDS} s)",
            path.display(),
            MAX_FREQ_ERROR * 100.0,
            20.0 * (rms * std::f64::consts::SQRT_2).max(1e-12).log10(),
            part.len() as f64 / f64::from(rate),
        );
    }
    Ok(report)
}

/// Panics with a measured explanation unless `path` holds a `hz` tone (see [`check_tone`]).
pub fn assert_tone(path: &Path, hz: f64) -> ToneReport {
    match check_tone(path, hz) {
        Ok(report) => report,
        Err(e) => panic!("assert_tone failed: {e:#}"),
    }
}

fn goertzel_magnitude(x: &[f64], rate: u32, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0).sqrt()
}

fn parse_wav(bytes: &[u8]) -> Result<(Vec<f32>, u32)> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        bail!("not a RIFF/WAVE file");
    }
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32_at(pos + 4) as usize;
        let body = pos + 8;
        if id == b"fmt " && body + 16 <= bytes.len() {
            let mut tag = u16_at(body);
            if tag == 0xFFFE && body + 26 <= bytes.len() {
                tag = u16_at(body + 24); // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag
            }
            fmt = Some((tag, u16_at(body + 2), u32_at(body + 4), u16_at(body + 14)));
        } else if id == b"data" {
            let (tag, channels, rate, bits) = fmt.context("data chunk before fmt chunk")?;
            let end = if len == 0 || body + len > bytes.len() { bytes.len() } else { body + len };
            let data = &bytes[body..end];
            let mono = match (tag, bits) {
                (1, 16) => to_mono(data.chunks_exact(2).map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0), channels),
                (3, 32) => to_mono(data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])), channels),
                _ => bail!("unsupported WAV format tag {tag} with {bits} bits"),
            };
            return Ok((mono, rate));
        }
        pos = body + len + (len & 1);
    }
    bail!("no data chunk")
}

fn to_mono(samples: impl Iterator<Item = f32>, channels: u16) -> Vec<f32> {
    let samples: Vec<f32> = samples.collect();
    match channels {
        0 | 1 => samples,
        n => samples.chunks_exact(usize::from(n)).map(|c| c.iter().sum::<f32>() / f32::from(n)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_generated_tone_and_its_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        make_tone_wav(&path, 440.0, 2.0).unwrap();
        let report = assert_tone(&path, 440.0);
        assert!((report.hz - 440.0).abs() < 2.0, "{report:?}");
        assert!((report.dbfs + 6.0).abs() < 1.0, "{report:?}");
        assert!(check_tone(&path, 1000.0).is_err());
    }

    #[test]
    fn silence_is_not_a_tone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        let spec = hound::WavSpec { channels: 1, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..16000 {
            w.write_sample(0i16).unwrap();
        }
        w.finalize().unwrap();
        let err = check_tone(&path, 1000.0).unwrap_err().to_string();
        assert!(err.contains("dBFS"), "{err}");
    }

    #[test]
    fn reads_a_file_whose_header_is_not_final() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        make_tone_wav(&path, 1000.0, 1.0).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[data + 4..data + 8].copy_from_slice(&0u32.to_le_bytes());
        let (samples, rate) = parse_wav(&bytes).unwrap();
        assert_eq!((samples.len(), rate), (8000, 8000));
    }
}
