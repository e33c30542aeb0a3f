//! What the media benches share: the recorded speech, timing and statistics, Opus packets
//! as Meta sends them, and the raw libopus floor. Each bench uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Bitrate, Channels, MutSignals, SampleRate};
use whatsip::media::jitter::{Frame, JitterBuffer, JitterConfig};
use whatsip::media::opus::{frame_samples, OpusEncoder, MAX_PACKET};
use whatsip::media::resample::Resampler;

/// 23 s of synthetic speech (espeak-ng, two voices) from `benches/data/make_speech.sh`.
pub static SPEECH_16K: &[u8] = include_bytes!("../data/speech16k.raw");
pub static SPEECH_8K: &[u8] = include_bytes!("../data/speech8k.raw");

/// Times one call into `samples` (in µs) when `keep`.
pub fn time<R>(samples: &mut Vec<f64>, keep: bool, f: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let r = std::hint::black_box(f());
    let dt = t.elapsed();
    if keep {
        samples.push(dt.as_secs_f64() * 1e6);
    }
    r
}

#[derive(Clone, Copy)]
pub struct Stat {
    pub median: f64,
    pub p99: f64,
    pub mean: f64,
}

impl Stat {
    pub fn of(samples: &[f64]) -> Stat {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        Stat {
            median: at(0.5),
            p99: at(0.99),
            mean: s.iter().sum::<f64>() / s.len() as f64,
        }
    }

    pub fn show(&self) -> String {
        format!("{:.2} / {:.2} / {:.2}", self.median, self.p99, self.mean)
    }

    /// For sub-microsecond steps.
    pub fn show_fine(&self) -> String {
        format!("{:.3} / {:.3} / {:.3}", self.median, self.p99, self.mean)
    }
}

pub fn pcm(bytes: &[u8]) -> Vec<i16> {
    bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

pub fn resample(input: &[i16], from: u32, to: u32) -> Vec<i16> {
    let mut r = Resampler::new(from, to).unwrap();
    let mut out = vec![0i16; r.output_len(input.len())];
    let n = r.process(input, &mut out);
    out.truncate(n);
    out
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// 20 ms Opus packets of `pcm` at `rate`.
pub fn encode_all(pcm: &[i16], rate: u32, complexity: u8, fec: bool, loss: u8) -> Vec<Vec<u8>> {
    let mut enc = OpusEncoder::new(rate, 1, complexity, fec, loss).unwrap();
    let mut buf = [0u8; MAX_PACKET];
    pcm.chunks_exact(frame_samples(rate))
        .map(|c| {
            let n = enc.encode(c, &mut buf).unwrap();
            buf[..n].to_vec()
        })
        .collect()
}

/// What Meta sends: a 16 kHz capture (sprop-maxcapturerate=16000), 20 kbit/s, FEC.
pub fn meta_packets(speech16: &[i16]) -> Vec<Vec<u8>> {
    encode_all(speech16, 16000, 10, true, 10)
}

/// The raw libopus floor: a 48 kHz complexity-10 VoIP encoder at 20 kbit/s and a 48 kHz
/// decoder, straight on audiopus, over `runs` passes after one warm-up. Returns encode and
/// decode times (µs per 20 ms) and the mean packet size.
pub fn raw_floor(speech48: &[i16], runs: usize) -> (Stat, Stat, f64) {
    let (mut e_t, mut d_t) = (Vec::new(), Vec::new());
    let mut bytes = 0usize;
    let mut count = 0usize;
    for run in 0..=runs {
        let keep = run > 0;
        let mut enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
        enc.set_complexity(10).unwrap();
        enc.set_bitrate(Bitrate::BitsPerSecond(20_000)).unwrap();
        let mut dec = Decoder::new(SampleRate::Hz48000, Channels::Mono).unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let mut out = [0i16; 960];
        for frame in speech48.chunks_exact(960) {
            let n = time(&mut e_t, keep, || enc.encode(frame, &mut packet).unwrap());
            bytes += n;
            count += 1;
            let p = audiopus::packet::Packet::try_from(&packet[..n]).unwrap();
            time(&mut d_t, keep, || {
                let s = MutSignals::try_from(&mut out[..]).unwrap();
                dec.decode(Some(p), s, false).unwrap()
            });
        }
    }
    (Stat::of(&e_t), Stat::of(&d_t), bytes as f64 / count as f64)
}

/// Jitter buffer push + pop of one packet per 20 ms, in order, over `runs` passes after a
/// warm-up.
pub fn jitter_cost(packets: &[Vec<u8>], runs: usize) -> Stat {
    let mut t = Vec::new();
    let t0 = Instant::now();
    for run in 0..=runs {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let base = (run * packets.len()) as u64;
        for (i, p) in packets.iter().enumerate() {
            let k = base + i as u64;
            let now = t0 + Duration::from_millis(20 * k);
            time(&mut t, run > 0, || {
                jb.push(now, k as u16, (k as u32).wrapping_mul(960), p);
                matches!(jb.pop(now), Frame::Packet(_))
            });
        }
    }
    Stat::of(&t)
}
