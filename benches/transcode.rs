//! Per-20 ms costs of each transcoding step for each internal-rate choice, the raw libopus
//! floor, the total per call, and a cheap quality figure (SNR / segmental SNR against the
//! original 8 kHz speech) per choice.
//!
//! `cargo bench --bench transcode`. The signal is synthetic speech (espeak-ng, two voices,
//! 23 s) from `benches/data/make_speech.sh`.

mod common;

use common::{cpu_model, jitter_cost, meta_packets, pcm, raw_floor, resample, time, Stat};
use whatsip::media::g711::G711;
use whatsip::media::jitter::Frame;
use whatsip::media::opus::{frame_samples, OpusDecoder, OpusEncoder, MAX_PACKET};
use whatsip::media::resample::Resampler;
use whatsip::media::transcode::{DecodeConfig, EncodeConfig, G711ToOpus, IdleFill, OpusToG711};

/// Recorded passes over the whole signal per configuration (after one unrecorded warm-up).
const RUNS: usize = 5;
const LAW: G711 = G711::Pcmu;
const CORES: f64 = 2.0;
const HEADROOM: f64 = 0.5;

fn main() {
    let speech16 = pcm(common::SPEECH_16K);
    let speech8 = pcm(common::SPEECH_8K);
    let speech48 = resample(&speech16, 16000, 48000);
    let frames = speech8.len() / 160;
    println!(
        "speech: {:.1} s, {frames} frames of 20 ms; {RUNS} runs after a warm-up; {}; {}",
        frames as f64 / 50.0,
        audiopus::version(),
        cpu_model()
    );
    println!("times are µs per 20 ms frame: median / p99 / mean over all frames of all runs\n");

    let meta_packets = meta_packets(&speech16);
    // What the desk phone sends.
    let phone_frames: Vec<[u8; 160]> = speech8
        .chunks_exact(160)
        .map(|c| {
            let mut b = [0u8; 160];
            LAW.encode(c, &mut b);
            b
        })
        .collect();
    let g711_only = decode_g711(&phone_frames);
    let ceiling = Quality::measure(&speech8, &g711_only);
    println!(
        "quality ceiling, G.711 µ-law only: SNR {:.1} dB, segSNR {:.1} dB\n",
        ceiling.snr, ceiling.seg_snr
    );

    // ---- WhatsApp -> phone -------------------------------------------------------------
    println!("WhatsApp -> phone (Opus from a 16 kHz capture -> G.711)");
    println!(
        "{:<10} {:>22} {:>22} {:>22} {:>22} {:>15}",
        "decode at",
        "opus decode",
        "resample down",
        "g711 encode",
        "OpusToG711::frame",
        "SNR/segSNR dB"
    );
    let mut a_totals = Vec::new();
    for rate in [8000, 16000, 48000] {
        let (mut dec_t, mut rs_t, mut enc_t, mut total_t) = (vec![], vec![], vec![], vec![]);
        let mut heard = Vec::new();
        for run in 0..=RUNS {
            let keep = run > 0;
            let mut dec = OpusDecoder::new(rate).unwrap();
            let mut rs = (rate != 8000).then(|| Resampler::new(rate, 8000).unwrap());
            let mut wide = vec![0i16; frame_samples(rate)];
            let mut narrow = [0i16; 160];
            let mut bytes = [0u8; 160];
            for p in &meta_packets {
                time(&mut dec_t, keep, || dec.decode(p, &mut wide).unwrap());
                if let Some(r) = &mut rs {
                    time(&mut rs_t, keep, || r.process(&wide, &mut narrow));
                } else {
                    narrow.copy_from_slice(&wide);
                }
                time(&mut enc_t, keep, || LAW.encode(&narrow, &mut bytes));
            }
            let mut bridge = OpusToG711::new(LAW, DecodeConfig { opus_rate: rate }).unwrap();
            heard.clear();
            let mut out = [0u8; 160];
            for p in &meta_packets {
                time(&mut total_t, keep, || {
                    bridge.frame(Frame::Packet(p), &mut out)
                });
                heard.extend_from_slice(bridge.pcm());
            }
        }
        let q = Quality::measure(&speech8, &g711_round(&heard));
        let total = Stat::of(&total_t);
        println!(
            "{:<10} {:>22} {:>22} {:>22} {:>22} {:>15}",
            format!("{} kHz", rate / 1000),
            Stat::of(&dec_t).show(),
            if rs_t.is_empty() {
                "-".into()
            } else {
                Stat::of(&rs_t).show()
            },
            Stat::of(&enc_t).show(),
            total.show(),
            format!("{:.1} / {:.1}", q.snr, q.seg_snr),
        );
        a_totals.push((rate, total));
    }
    for rate in [8000, 16000, 48000] {
        let (mut fec_t, mut plc_t) = (vec![], vec![]);
        for run in 0..=RUNS {
            let mut dec = OpusDecoder::new(rate).unwrap();
            let mut wide = vec![0i16; frame_samples(rate)];
            for (i, p) in meta_packets.iter().enumerate() {
                match i % 10 {
                    3 => {
                        let next = &meta_packets[(i + 1) % meta_packets.len()];
                        time(&mut fec_t, run > 0, || {
                            dec.decode_fec(next, &mut wide).unwrap()
                        });
                    }
                    7 => {
                        time(&mut plc_t, run > 0, || dec.conceal(&mut wide).unwrap());
                    }
                    _ => {
                        dec.decode(p, &mut wide).unwrap();
                    }
                }
            }
        }
        println!(
            "  lost frame at {} kHz: FEC decode {}, PLC {}",
            rate / 1000,
            Stat::of(&fec_t).show(),
            Stat::of(&plc_t).show()
        );
    }

    // ---- phone -> WhatsApp -------------------------------------------------------------
    println!(
        "\nphone -> WhatsApp (G.711 -> Opus, 20 kbit/s VBR, band capped at 4 kHz; FEC rows expect 5 % loss)"
    );
    println!("SNR/seg →WA: decoded by a plain 8 kHz Opus decoder; round trip: back through OpusToG711 at 8 kHz");
    println!(
        "{:<16} {:>20} {:>20} {:>20} {:>20} {:>6} {:>12} {:>12}",
        "encode at",
        "g711 decode",
        "resample up",
        "opus encode",
        "G711ToOpus::frame",
        "bytes",
        "SNR/seg →WA",
        "round trip"
    );
    let mut b_totals = Vec::new();
    for rate in [8000, 16000, 48000] {
        for complexity in [10, 5, 3, 2, 1] {
            for fec in [true, false] {
                let config = EncodeConfig {
                    opus_rate: rate,
                    complexity,
                    fec,
                    ..EncodeConfig::default()
                };
                let row = encode_direction(&phone_frames, &speech8, config);
                println!(
                    "{:<16} {:>20} {:>20} {:>20} {:>20} {:>6.1} {:>12} {:>12}",
                    format!(
                        "{} kHz c{complexity} {}",
                        rate / 1000,
                        if fec { "FEC" } else { "-" }
                    ),
                    row.g711.show(),
                    row.resample.as_ref().map_or("-".into(), Stat::show),
                    row.opus.show(),
                    row.total.show(),
                    row.bytes,
                    format!(
                        "{:.1} / {:.1}",
                        row.to_whatsapp.snr, row.to_whatsapp.seg_snr
                    ),
                    format!("{:.1} / {:.1}", row.round_trip.snr, row.round_trip.seg_snr),
                );
                b_totals.push((rate, complexity, fec, row.total));
            }
        }
    }
    // For comparison: the 48 kHz encoder with the coded band left to libopus.
    {
        let (t, bytes, q) = uncapped_48k(&phone_frames, &speech8);
        println!(
            "{:<16} {:>20} {:>20} {:>20} {:>20} {:>6.1} {:>12}",
            "48 kHz c5 FEC *",
            "",
            "",
            t.show(),
            "",
            bytes,
            format!("{:.1} / {:.1}", q.snr, q.seg_snr)
        );
        println!("  * band not capped at 4 kHz (opus encode only)");
    }

    // ---- idle phone ----------------------------------------------------------------------
    println!("\nidle phone (None every tick), 8 kHz c5 FEC:");
    for idle in [IdleFill::ComfortNoise { dbfs: -70.0 }, IdleFill::Silence] {
        let mut tx = G711ToOpus::new(
            LAW,
            EncodeConfig {
                idle,
                ..Default::default()
            },
        )
        .unwrap();
        let mut t = Vec::new();
        let mut bytes = 0;
        for run in 0..=RUNS {
            for _ in 0..frames {
                let n = time(&mut t, run > 0, || tx.frame(None).unwrap().len());
                bytes += n;
            }
        }
        println!(
            "  {:<28} {:>22}  {:.1} bytes/packet",
            format!("{idle:?}"),
            Stat::of(&t).show(),
            bytes as f64 / (frames * (RUNS + 1)) as f64
        );
    }

    // ---- loss ----------------------------------------------------------------------------
    println!(
        "\nphone -> WhatsApp -> phone under random loss, 8 kHz c5, receiver uses FEC when it can"
    );
    println!("(SNR / segSNR dB; bytes per packet)");
    print!("{:<22} {:>6}", "encoder", "bytes");
    let losses = [0u8, 5, 10, 20];
    for l in losses {
        print!(" {:>13}", format!("{l} % lost"));
    }
    println!();
    for (fec, expected) in [(false, 0u8), (true, 5), (true, 10), (true, 20)] {
        let config = EncodeConfig {
            fec,
            expected_loss_pct: expected,
            ..EncodeConfig::default()
        };
        let label = if fec {
            format!("FEC, expect {expected} %")
        } else {
            "no FEC".to_string()
        };
        let mut line = String::new();
        let mut bytes = 0.0;
        for l in losses {
            let (q, b) = lossy_round_trip(&phone_frames, &speech8, config, l);
            bytes = b;
            line += &format!(" {:>13}", format!("{:.1} / {:.1}", q.snr, q.seg_snr));
        }
        println!("{label:<22} {bytes:>6.1}{line}");
    }

    // ---- jitter buffer and raw floor -----------------------------------------------------
    let jb = jitter_cost(&meta_packets, RUNS);
    println!("\njitter buffer push + pop: {}", jb.show());
    let (floor_enc, floor_dec, floor_bytes) = raw_floor(&speech48, RUNS);
    println!(
        "raw libopus floor, 48 kHz c10 VoIP 20 kbit/s ({floor_bytes:.1} bytes/packet): encode {}, decode {}, sum of means {:.1} µs",
        floor_enc.show(),
        floor_dec.show(),
        floor_enc.mean + floor_dec.mean
    );

    // ---- totals --------------------------------------------------------------------------
    println!(
        "\ntotal per call per 20 ms (both directions + jitter buffer, means) and calls on {CORES} cores at {:.0} % load:",
        HEADROOM * 100.0
    );
    print!("{:<16}", "encoder \\ decoder");
    for (rate, _) in &a_totals {
        print!(" {:>20}", format!("decode at {} kHz", rate / 1000));
    }
    println!();
    for (rate, complexity, fec, b) in &b_totals {
        if !fec {
            continue;
        }
        print!("{:<16}", format!("{} kHz c{complexity} FEC", rate / 1000));
        for (_, a) in &a_totals {
            let total = a.mean + b.mean + jb.mean;
            let calls = CORES * 20_000.0 * HEADROOM / total;
            print!(" {:>20}", format!("{total:6.1} µs {calls:6.0}"));
        }
        println!();
    }
    println!("(libopus 1.3.1 codes no FEC below complexity 2: the c1 rows carry none)");
}

struct EncodeRow {
    g711: Stat,
    resample: Option<Stat>,
    opus: Stat,
    total: Stat,
    bytes: f64,
    to_whatsapp: Quality,
    round_trip: Quality,
}

fn encode_direction(phone: &[[u8; 160]], reference: &[i16], config: EncodeConfig) -> EncodeRow {
    let rate = config.opus_rate;
    let (mut g_t, mut rs_t, mut op_t, mut total_t) = (vec![], vec![], vec![], vec![]);
    let mut packets: Vec<Vec<u8>> = Vec::new();
    for run in 0..=RUNS {
        let keep = run > 0;
        let mut enc = OpusEncoder::new(
            rate,
            1,
            config.complexity,
            config.fec,
            config.expected_loss_pct,
        )
        .unwrap();
        enc.set_bitrate(config.bitrate).unwrap();
        enc.set_narrowband(true).unwrap();
        let mut rs = (rate != 8000).then(|| Resampler::new(8000, rate).unwrap());
        let mut narrow = [0i16; 160];
        let mut wide = vec![0i16; frame_samples(rate)];
        let mut packet = [0u8; MAX_PACKET];
        for f in phone {
            time(&mut g_t, keep, || LAW.decode(f, &mut narrow));
            let input: &[i16] = match &mut rs {
                Some(r) => {
                    time(&mut rs_t, keep, || r.process(&narrow, &mut wide));
                    &wide
                }
                None => &narrow,
            };
            time(&mut op_t, keep, || enc.encode(input, &mut packet).unwrap());
        }
        let mut tx = G711ToOpus::new(LAW, config).unwrap();
        packets.clear();
        for f in phone {
            let p = time(&mut total_t, keep, || tx.frame(Some(f)).unwrap().to_vec());
            packets.push(p);
        }
    }
    let bytes = packets.iter().map(Vec::len).sum::<usize>() as f64 / packets.len() as f64;
    let to_whatsapp = Quality::measure(reference, &decode_at_8k(&packets));
    let mut rx = OpusToG711::new(LAW, DecodeConfig::default()).unwrap();
    let mut back = Vec::new();
    let mut out = [0u8; 160];
    for p in &packets {
        rx.frame(Frame::Packet(p), &mut out);
        back.extend_from_slice(&out);
    }
    let round_trip = Quality::measure(reference, &decode_g711_bytes(&back));
    EncodeRow {
        g711: Stat::of(&g_t),
        resample: (!rs_t.is_empty()).then(|| Stat::of(&rs_t)),
        opus: Stat::of(&op_t),
        total: Stat::of(&total_t),
        bytes,
        to_whatsapp,
        round_trip,
    }
}

fn uncapped_48k(phone: &[[u8; 160]], reference: &[i16]) -> (Stat, f64, Quality) {
    let mut t = Vec::new();
    let mut packets = Vec::new();
    for run in 0..=RUNS {
        let mut enc = OpusEncoder::new(48000, 1, 5, true, 5).unwrap();
        let mut rs = Resampler::new(8000, 48000).unwrap();
        let (mut narrow, mut wide, mut packet) = ([0i16; 160], [0i16; 960], [0u8; MAX_PACKET]);
        packets.clear();
        for f in phone {
            LAW.decode(f, &mut narrow);
            rs.process(&narrow, &mut wide);
            let n = time(&mut t, run > 0, || enc.encode(&wide, &mut packet).unwrap());
            packets.push(packet[..n].to_vec());
        }
    }
    let bytes = packets.iter().map(Vec::len).sum::<usize>() as f64 / packets.len() as f64;
    (Stat::of(&t), bytes, Quality::measure(reference, &decode_at_8k(&packets)))
}

fn lossy_round_trip(
    phone: &[[u8; 160]],
    reference: &[i16],
    config: EncodeConfig,
    loss_pct: u8,
) -> (Quality, f64) {
    let mut tx = G711ToOpus::new(LAW, config).unwrap();
    let packets: Vec<Vec<u8>> = phone
        .iter()
        .map(|f| tx.frame(Some(f)).unwrap().to_vec())
        .collect();
    let mut rng = 0x1234_5678u32;
    let lost: Vec<bool> = packets
        .iter()
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng % 100 < u32::from(loss_pct)
        })
        .collect();
    let mut rx = OpusToG711::new(LAW, DecodeConfig::default()).unwrap();
    let mut back = Vec::new();
    let mut out = [0u8; 160];
    for (i, p) in packets.iter().enumerate() {
        let input = if lost[i] {
            let next = packets
                .get(i + 1)
                .filter(|_| !lost.get(i + 1).copied().unwrap_or(true));
            Frame::Lost {
                next: next.map(|p| &p[..]),
            }
        } else {
            Frame::Packet(p)
        };
        rx.frame(input, &mut out);
        back.extend_from_slice(&out);
    }
    let bytes = packets.iter().map(Vec::len).sum::<usize>() as f64 / packets.len() as f64;
    (
        Quality::measure(reference, &decode_g711_bytes(&back)),
        bytes,
    )
}

struct Quality {
    snr: f64,
    seg_snr: f64,
}

impl Quality {
    /// SNR and segmental SNR (20 ms segments of active speech, each clamped to -10..35 dB)
    /// of `test` against `reference`, after finding the codec delay by cross-correlation.
    fn measure(reference: &[i16], test: &[i16]) -> Quality {
        let lag = best_lag(reference, test, 800);
        let n = reference.len().min(test.len().saturating_sub(lag));
        let (r, t) = (&reference[800..n], &test[800 + lag..n + lag]);
        let (mut sig, mut err) = (0.0, 0.0);
        for (&a, &b) in r.iter().zip(t) {
            let (a, b) = (f64::from(a), f64::from(b));
            sig += a * a;
            err += (a - b) * (a - b);
        }
        let mut segs = Vec::new();
        for (ra, ta) in r.chunks_exact(160).zip(t.chunks_exact(160)) {
            let s: f64 = ra.iter().map(|&a| f64::from(a).powi(2)).sum();
            // Active speech only: above -50 dBFS RMS.
            if s / 160.0 < (32768.0f64 * 10f64.powf(-50.0 / 20.0)).powi(2) {
                continue;
            }
            let e: f64 = ra
                .iter()
                .zip(ta)
                .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
                .sum();
            segs.push((10.0 * (s / e.max(1e-9)).log10()).clamp(-10.0, 35.0));
        }
        Quality {
            snr: 10.0 * (sig / err.max(1e-9)).log10(),
            seg_snr: segs.iter().sum::<f64>() / segs.len() as f64,
        }
    }
}

/// The delay (in samples, 0..max) at which `test` best matches `reference`.
fn best_lag(reference: &[i16], test: &[i16], max: usize) -> usize {
    let start = reference.len() / 3;
    let len = 40_000.min(reference.len() - start - max);
    let r = &reference[start..start + len];
    (0..max)
        .max_by(|&a, &b| {
            let c = |lag: usize| -> f64 {
                r.iter()
                    .zip(&test[start + lag..])
                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                    .sum()
            };
            c(a).total_cmp(&c(b))
        })
        .unwrap_or(0)
}

fn decode_g711(frames: &[[u8; 160]]) -> Vec<i16> {
    decode_g711_bytes(frames.as_flattened())
}

fn decode_g711_bytes(bytes: &[u8]) -> Vec<i16> {
    let mut out = vec![0i16; bytes.len()];
    LAW.decode(bytes, &mut out);
    out
}

/// What the phone hears of 8 kHz PCM: G.711 encode and decode.
fn g711_round(pcm: &[i16]) -> Vec<i16> {
    let mut bytes = vec![0u8; pcm.len()];
    LAW.encode(pcm, &mut bytes);
    decode_g711_bytes(&bytes)
}

/// A neutral receiver at 8 kHz: what reached WhatsApp, on the reference's scale.
fn decode_at_8k(packets: &[Vec<u8>]) -> Vec<i16> {
    let mut dec = OpusDecoder::new(8000).unwrap();
    let mut heard = Vec::with_capacity(packets.len() * 160);
    let mut pcm = [0i16; 160];
    for p in packets {
        dec.decode(p, &mut pcm).unwrap();
        heard.extend_from_slice(&pcm);
    }
    heard
}
