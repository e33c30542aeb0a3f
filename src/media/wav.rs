//! WAV in and out at the gateway's one internal format, 8 kHz mono 16-bit: prompts uploaded in
//! whatever format arrive here, recordings leave here. Files and in-memory bytes (the HTTP API)
//! take the same path.
//!
//! Resampling is a windowed-sinc (Blackman) interpolator with its cut-off below the lower of the
//! two Nyquist frequencies, so 44.1/48 kHz speech loses its top octave instead of folding it
//! back into the telephone band as aliasing.

use std::f64::consts::PI;
use std::io::{Cursor, Read, Seek, Write};
use std::path::Path;

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};
use thiserror::Error;

pub const RATE: u32 = 8000;

#[derive(Debug, Error)]
pub enum WavError {
    #[error("WAV: {0}")]
    Format(#[from] hound::Error),
    #[error("unsupported WAV sample format: {bits}-bit {format:?}")]
    Unsupported { bits: u16, format: SampleFormat },
    #[error("WAV declares no channels or a zero sample rate")]
    BadSpec,
}

pub fn read_wav_8k_mono(path: impl AsRef<Path>) -> Result<Vec<i16>, WavError> {
    decode(WavReader::open(path)?)
}

pub fn read_wav_bytes(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    decode(WavReader::new(Cursor::new(bytes))?)
}

pub fn write_wav_8k_mono(path: impl AsRef<Path>, samples: &[i16]) -> Result<(), WavError> {
    encode(WavWriter::create(path, spec_8k())?, samples)
}

pub fn wav_bytes_8k_mono(samples: &[i16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(44 + 2 * samples.len());
    let writer = WavWriter::new(Cursor::new(&mut out), spec_8k());
    // Writing 16-bit samples into a Vec cannot fail: the spec is valid and the sink is memory.
    encode(writer.expect("valid WAV spec"), samples).expect("in-memory WAV write");
    out
}

fn spec_8k() -> WavSpec {
    WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: SampleFormat::Int,
    }
}

fn encode<W: Write + Seek>(mut writer: WavWriter<W>, samples: &[i16]) -> Result<(), WavError> {
    let mut w16 = writer.get_i16_writer(samples.len() as u32);
    for &s in samples {
        w16.write_sample(s);
    }
    w16.flush()?;
    writer.finalize()?;
    Ok(())
}

fn decode<R: Read>(mut reader: WavReader<R>) -> Result<Vec<i16>, WavError> {
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(WavError::BadSpec);
    }
    let channels = usize::from(spec.channels);
    // The header's length is only a claim (and these bytes may come from an HTTP client):
    // reserve at most 4 Mi samples (~90 s at 48 kHz) up front and let longer files grow.
    let mut mono = Vec::with_capacity((reader.duration() as usize).min(1 << 22));
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, bits @ 1..=32) => {
            let scale = 1.0 / f64::from(1u32 << (bits - 1));
            downmix(
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| f64::from(v) * scale)),
                channels,
                &mut mono,
            )?;
        }
        (SampleFormat::Float, 32) => {
            downmix(
                reader.samples::<f32>().map(|s| s.map(f64::from)),
                channels,
                &mut mono,
            )?;
        }
        (format, bits) => return Err(WavError::Unsupported { bits, format }),
    }
    let resampled = resample(&mono, spec.sample_rate, RATE);
    Ok(resampled.iter().map(|&x| to_i16(x)).collect())
}

/// Averages interleaved frames into one channel; a trailing partial frame is dropped.
fn downmix(
    samples: impl Iterator<Item = Result<f64, hound::Error>>,
    channels: usize,
    out: &mut Vec<f64>,
) -> Result<(), WavError> {
    let (mut acc, mut k) = (0.0, 0);
    for s in samples {
        acc += s?;
        k += 1;
        if k == channels {
            out.push(acc / channels as f64);
            (acc, k) = (0.0, 0);
        }
    }
    Ok(())
}

fn to_i16(x: f64) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Zero crossings of the sinc on each side of the centre: sets the transition band width.
const ZERO_CROSSINGS: f64 = 24.0;
/// Kernel table resolution: points per input sample, linearly interpolated between.
const TABLE_STEPS: usize = 128;
/// Cut-off as a fraction of the lower Nyquist frequency (3.6 kHz for 8 kHz output).
const CUTOFF: f64 = 0.9;

/// Band-limited resampling from `from` Hz to `to` Hz.
fn resample(input: &[f64], from: u32, to: u32) -> Vec<f64> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    // Cut-off in cycles per input sample, times two (1.0 = input Nyquist).
    let w = CUTOFF * f64::from(from.min(to)) / f64::from(from);
    let half = ZERO_CROSSINGS / w; // kernel half-width in input samples
    let table_len = (half * TABLE_STEPS as f64).ceil() as usize + 2;
    let table: Vec<f64> = (0..table_len)
        .map(|i| {
            let x = i as f64 / TABLE_STEPS as f64;
            kernel(x, w, half)
        })
        .collect();
    let lookup = |d: f64| {
        let pos = d.abs() * TABLE_STEPS as f64;
        let i = pos as usize;
        if i + 1 >= table.len() {
            return 0.0;
        }
        let frac = pos - i as f64;
        table[i] + (table[i + 1] - table[i]) * frac
    };

    let ratio = f64::from(from) / f64::from(to);
    let out_len = (input.len() as f64 / ratio).round() as usize;
    let reach = half.ceil() as isize;
    let last = input.len() as isize - 1;
    (0..out_len)
        .map(|n| {
            let t = n as f64 * ratio;
            let centre = t.floor() as isize;
            let (mut acc, mut norm) = (0.0, 0.0);
            for k in (centre - reach + 1).max(0)..=(centre + reach).min(last) {
                let h = lookup(t - k as f64);
                acc += input[k as usize] * h;
                norm += h;
            }
            // Normalising per output sample keeps DC gain exactly 1, also at the edges where
            // the kernel is cut short.
            if norm.abs() > 1e-9 {
                acc / norm
            } else {
                0.0
            }
        })
        .collect()
}

/// Blackman-windowed sinc with cut-off `w` (fraction of input Nyquist), `x` in input samples.
fn kernel(x: f64, w: f64, half: f64) -> f64 {
    if x >= half {
        return 0.0;
    }
    let sinc = if x == 0.0 {
        1.0
    } else {
        (PI * w * x).sin() / (PI * w * x)
    };
    let phase = PI * (x / half + 1.0); // 0..2π across the whole window
    let blackman = 0.42 - 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos();
    w * sinc * blackman
}

#[cfg(test)]
mod tests {
    use super::super::tone::{dominant_frequency, goertzel_power, rms_dbfs, sine};
    use super::*;

    fn wav_in_memory(spec: WavSpec, frames: usize, sample: impl Fn(usize, u16) -> f64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = WavWriter::new(Cursor::new(&mut out), spec).unwrap();
        for i in 0..frames {
            for ch in 0..spec.channels {
                let x = sample(i, ch);
                match spec.sample_format {
                    SampleFormat::Float => w.write_sample(x as f32).unwrap(),
                    SampleFormat::Int => {
                        let max = f64::from(1u32 << (spec.bits_per_sample - 1)) - 1.0;
                        w.write_sample((x * max).round() as i32).unwrap()
                    }
                }
            }
        }
        w.finalize().unwrap();
        out
    }

    fn tone_at(rate: u32, hz: f64) -> impl Fn(usize, u16) -> f64 {
        move |i, _| 0.5 * (2.0 * PI * hz * i as f64 / f64::from(rate)).sin()
    }

    #[test]
    fn round_trip_8k_bytes_and_file() {
        let pcm = sine(440.0, 8000, 0.25, 0.3);
        let bytes = wav_bytes_8k_mono(&pcm);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(bytes.len(), 44 + 2 * pcm.len());
        assert_eq!(read_wav_bytes(&bytes).unwrap(), pcm);

        let path = std::env::temp_dir().join(format!("whatsip-wav-{}.wav", std::process::id()));
        write_wav_8k_mono(&path, &pcm).unwrap();
        let back = read_wav_8k_mono(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back.unwrap(), pcm);
    }

    #[test]
    fn converts_common_formats() {
        let cases = [
            (48000, 2, 16, SampleFormat::Int),
            (44100, 1, 24, SampleFormat::Int),
            (16000, 1, 8, SampleFormat::Int),
            (22050, 2, 32, SampleFormat::Int),
            (32000, 1, 32, SampleFormat::Float),
            (6000, 1, 16, SampleFormat::Int),
        ];
        for (rate, channels, bits, format) in cases {
            let spec = WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: format,
            };
            let bytes = wav_in_memory(spec, rate as usize / 2, tone_at(rate, 1000.0));
            let pcm = read_wav_bytes(&bytes).unwrap();
            let label = format!("{rate} Hz {channels} ch {bits}-bit {format:?}");
            assert!(
                (pcm.len() as i32 - 4000).abs() <= 1,
                "{label}: {} samples",
                pcm.len()
            );
            let (hz, db) = dominant_frequency(&pcm, 8000, 50.0, 3800.0).unwrap();
            assert!((hz - 1000.0).abs() < 1.0, "{label}: {hz} Hz");
            // 0.5 peak = -9.03 dBFS; 8-bit quantisation costs a little more.
            assert!((db + 9.03).abs() < 0.3, "{label}: {db} dBFS");
        }
    }

    #[test]
    fn downmix_averages_channels() {
        let spec = WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        // Left carries the tone, right is silent: the mono mix is the tone at half amplitude.
        let bytes = wav_in_memory(spec, 4000, |i, ch| {
            if ch == 0 {
                tone_at(8000, 500.0)(i, 0)
            } else {
                0.0
            }
        });
        let pcm = read_wav_bytes(&bytes).unwrap();
        assert!((rms_dbfs(&pcm) - (20.0 * 0.25f32.log10() - 3.01)).abs() < 0.05);
    }

    #[test]
    fn downsampling_does_not_alias() {
        let rate = 48000;
        let spec = WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: SampleFormat::Int,
        };
        // 3.4 kHz (top of the telephone band) survives; 5 kHz would fold to 3 kHz, and 4.4 kHz
        // to 3.6 kHz, if the filter let them through.
        let pass = read_wav_bytes(&wav_in_memory(spec, 24000, tone_at(rate, 3400.0))).unwrap();
        assert!(
            (rms_dbfs(&pass[400..3600]) + 9.03).abs() < 1.0,
            "{}",
            rms_dbfs(&pass)
        );
        for (f, alias) in [(5000.0, 3000.0), (4400.0, 3600.0)] {
            let pcm = read_wav_bytes(&wav_in_memory(spec, 24000, tone_at(rate, f))).unwrap();
            let p = 10.0 * goertzel_power(&pcm[400..3600], 8000, alias).log10();
            assert!(p < -60.0, "{f} Hz leaks into {alias} Hz at {p} dBFS");
        }
    }

    #[test]
    fn rejects_garbage_and_odd_formats() {
        assert!(matches!(
            read_wav_bytes(b"not a wav file at all"),
            Err(WavError::Format(_))
        ));
        assert!(read_wav_8k_mono("/nonexistent/whatsip.wav").is_err());
        // hound refuses to write 16-bit float, so make one by patching a valid 16-bit int
        // file's format tag (offset 20) to IEEE float (3).
        let mut bytes = wav_bytes_8k_mono(&[0; 10]);
        bytes[20] = 3;
        assert!(read_wav_bytes(&bytes).is_err());
    }
}
