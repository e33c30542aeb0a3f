//! Phone → WhatsApp codec quality with the network taken out: the reference as G.711 frames
//! through `G711ToOpus` (what the bridge runs), decoded at 48 kHz as a WebRTC client does, with
//! random packet loss that the receiver repairs from the next packet's FEC where it can and
//! conceals otherwise. PESQ narrowband against the reference, next to G.711 alone.
//!
//! `tests/bridge_quality.rs` is the end-to-end test; this is the ignored sweep behind the
//! choice of `EncodeConfig`: what in-band FEC costs on a clean path and what it buys under loss,
//! free of the scheduling noise a live call on a busy machine adds.
//!
//! `cargo test --locked --test codec_quality -- --ignored --nocapture`

mod common;

use common::pesq;
use rand::{rngs::StdRng, Rng, SeedableRng};
use whatsip::media::g711::G711;
use whatsip::media::opus::OpusDecoder;
use whatsip::media::transcode::{EncodeConfig, G711ToOpus};

const LAW: G711 = G711::Pcmu;
const LOSS_PCT: [u32; 4] = [0, 2, 5, 10];
/// Loss patterns per lossy cell: which frames go missing moves a score by ±0.2.
const PATTERNS: u64 = 4;
/// What a WebRTC client decodes at (aiortc, and Meta's clients).
const CLIENT_RATE: u32 = 48_000;

#[tokio::test]
#[ignore = "minutes: the encoder sweep behind EncodeConfig's defaults"]
async fn encoder_settings_with_and_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference.wav");
    pesq::make_reference(&reference, pesq::SPEECH).await;
    let g711_only = dir.path().join("g711-only.wav");
    pesq::through_g711(&reference, LAW, &g711_only);
    let ceiling = pesq::score(&reference, &g711_only).await.mos_lqo;
    let frames = g711_frames(&whatsip::media::wav::read_wav_8k_mono(&reference).unwrap());

    eprintln!("PESQ MOS-LQO, P.862 NB, mean over {PATTERNS} random loss patterns; G.711 µ-law alone: {ceiling:.3}");
    eprintln!("{:<28} {}", "encoder (20 kbit/s, 8 kHz)", LOSS_PCT.map(|p| format!("{p:>3} % loss")).join("  "));
    for (complexity, fec, expected_loss_pct) in [(5, true, 5), (5, true, 2), (5, true, 0), (3, true, 0), (2, true, 0), (1, true, 0), (10, true, 5), (2, true, 5)] {
        let config = EncodeConfig { complexity, fec, expected_loss_pct, ..EncodeConfig::default() };
        let packets = encode(&frames, config);
        let mut cells = Vec::new();
        for loss_pct in LOSS_PCT {
            let patterns = if loss_pct == 0 { 1 } else { PATTERNS };
            let mut total = 0.0;
            for seed in 0..patterns {
                let received = decode_with_loss(&packets, f64::from(loss_pct) / 100.0, seed);
                let degraded = dir.path().join("degraded.wav");
                write_wav(&degraded, &received);
                total += pesq::score(&reference, &degraded).await.mos_lqo;
            }
            cells.push(format!("{:>10.3}", total / patterns as f64));
        }
        eprintln!("{:<28} {}", format!("c{complexity} fec={fec} loss{expected_loss_pct}"), cells.join("  "));
    }
}

fn g711_frames(pcm: &[i16]) -> Vec<[u8; 160]> {
    pcm.chunks_exact(160)
        .map(|chunk| {
            let mut frame = [0u8; 160];
            LAW.encode(chunk, &mut frame);
            frame
        })
        .collect()
}

fn encode(frames: &[[u8; 160]], config: EncodeConfig) -> Vec<Vec<u8>> {
    let mut encoder = G711ToOpus::new(LAW, config).unwrap();
    frames.iter().map(|f| encoder.frame(Some(f)).unwrap().to_vec()).collect()
}

/// Drops each packet with probability `loss`; a lost frame comes back from the next packet's
/// LBRR when that one arrived (libopus falls back to PLC if it carries none), else from PLC.
fn decode_with_loss(packets: &[Vec<u8>], loss: f64, seed: u64) -> Vec<i16> {
    let mut rng = StdRng::seed_from_u64(seed);
    let arrived: Vec<bool> = packets.iter().map(|_| !rng.gen_bool(loss)).collect();
    let mut decoder = OpusDecoder::new(CLIENT_RATE).unwrap();
    let mut frame = vec![0i16; (CLIENT_RATE / 50) as usize];
    let mut out = Vec::with_capacity(packets.len() * frame.len());
    for (i, packet) in packets.iter().enumerate() {
        let next = packets.get(i + 1).filter(|_| arrived.get(i + 1) == Some(&true));
        match (arrived[i], next) {
            (true, _) => decoder.decode(packet, &mut frame),
            (false, Some(next)) => decoder.decode_fec(next, &mut frame),
            (false, None) => decoder.conceal(&mut frame),
        }
        .unwrap();
        out.extend_from_slice(&frame);
    }
    out
}

fn write_wav(path: &std::path::Path, samples: &[i16]) {
    let spec = hound::WavSpec { channels: 1, sample_rate: CLIENT_RATE, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}
