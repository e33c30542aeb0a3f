//! Part 1: what each step of one bridged call costs per 20 ms, one step at a time, on the
//! recorded speech; the codec steps for each codec set-up; the raw libopus floor beside it.

use bytes::Bytes;
use rtc::shared::marshal::Marshal;
use rtc::srtp::context::Context;
use rtc::srtp::option::srtp_replay_protection;
use rtc::srtp::protection_profile::ProtectionProfile;
use whatsip::media::bridge::BridgeSettings;
use whatsip::media::g711::G711;
use whatsip::media::jitter::Frame;
use whatsip::media::opus::{frame_samples, OpusDecoder, OpusEncoder, MAX_PACKET};
use whatsip::media::resample::Resampler;
use whatsip::media::rtp_header::{self, RtpHeader};
use whatsip::media::transcode::{G711ToOpus, OpusToG711, G711_FRAME};

use crate::common::{jitter_cost, raw_floor, time, Stat};
use crate::Speech;

const LAW: G711 = G711::Pcmu;
/// Sub-microsecond operations are timed this many at a time.
const BATCH: usize = 1000;

/// The SRTP profiles worth knowing: webrtc-rs picks the first, libwebrtc with GCM enabled the
/// second, libwebrtc without GCM the third; what Meta negotiates is unconfirmed (§5.2).
pub const PROFILES: [(ProtectionProfile, &str); 3] = [
    (ProtectionProfile::AeadAes128Gcm, "AEAD_AES_128_GCM"),
    (ProtectionProfile::AeadAes256Gcm, "AEAD_AES_256_GCM"),
    (
        ProtectionProfile::Aes128CmHmacSha1_80,
        "AES128_CM_HMAC_SHA1_80",
    ),
];

/// Means per call per 20 ms of one codec set-up, for the totals elsewhere.
pub struct Totals {
    pub label: String,
    /// Both directions: SRTP (first profile), RTP headers, jitter buffer, transcoding.
    pub per_call_us: f64,
}

pub fn run(speech: &Speech, settings: &[(String, BridgeSettings)], runs: usize) -> Vec<Totals> {
    println!("== Part 1: cost per call per 20 ms, step by step (µs: median / p99 / mean) ==");
    println!(
        "{} passes over {:.1} s of speech after a warm-up; each step timed alone",
        runs,
        speech.phone_frames.len() as f64 / 50.0
    );
    let meta_plain = meta_rtp(&speech.meta_packets);
    let srtp: Vec<(Stat, Stat)> = PROFILES
        .iter()
        .map(|(p, _)| srtp_cost(*p, &meta_plain, runs))
        .collect();
    let parse_meta = header_parse_cost(&meta_plain, runs);
    let phone_plain = phone_rtp(&speech.phone_frames);
    let parse_phone = header_parse_cost(&phone_plain, runs);
    let write = header_write_cost(runs);
    let jitter = jitter_cost(&speech.meta_packets, runs);
    let codec: Vec<CodecSteps> = settings
        .iter()
        .map(|(_, s)| codec_steps(speech, s, runs))
        .collect();

    let width = 24;
    print!("{:<44}", "");
    for (label, _) in settings {
        print!(" {label:>width$}");
    }
    println!();
    let shared = |name: &str, s: &Stat| {
        print!("{name:<44}");
        for _ in settings {
            let shown = if s.mean < 0.1 {
                s.show_fine()
            } else {
                s.show()
            };
            print!(" {shown:>width$}");
        }
        println!();
    };
    let each = |name: &str, f: &dyn Fn(&CodecSteps) -> Option<Stat>| {
        print!("{name:<44}");
        for c in &codec {
            print!(" {:>width$}", f(c).map_or("-".into(), |s| s.show()));
        }
        println!();
    };
    println!("WhatsApp -> phone");
    for ((_, name), (_, unprotect)) in PROFILES.iter().zip(&srtp) {
        shared(&format!("  SRTP unprotect {name}"), unprotect);
    }
    shared("  RTP header parse (Meta's, 3 extensions) *", &parse_meta);
    shared("  jitter buffer push + pop", &jitter);
    each("  Opus decode", &|c| Some(c.decode));
    each("  resample to 8 kHz", &|c| c.resample_down);
    each("  G.711 encode", &|c| Some(c.g711_encode));
    shared("  RTP header write (phone) *", &write);
    each("  = OpusToG711::frame (decode..G.711)", &|c| {
        Some(c.to_phone)
    });
    println!("phone -> WhatsApp");
    shared("  RTP header parse (phone) *", &parse_phone);
    each("  G.711 decode", &|c| Some(c.g711_decode));
    each("  resample from 8 kHz", &|c| c.resample_up);
    each("  Opus encode", &|c| Some(c.encode));
    each("  = G711ToOpus::frame (G.711..encode)", &|c| {
        Some(c.to_whatsapp)
    });
    for ((_, name), (protect, _)) in PROFILES.iter().zip(&srtp) {
        shared(&format!("  SRTP protect {name}"), protect);
    }
    println!("  * timed {BATCH} at a time: median and p99 are of those averages");

    let (floor_enc, floor_dec, floor_bytes) = raw_floor(&speech.speech48, runs);
    let floor = floor_enc.mean + floor_dec.mean;
    let fixed = srtp[0].0.mean
        + srtp[0].1.mean
        + parse_meta.mean
        + parse_phone.mean
        + write.mean
        + jitter.mean;
    println!(
        "\ntotal per call per 20 ms, both directions (means; SRTP {} both ways, RTP headers, \
         jitter buffer, both frame() calls), and calls per core at 100 %:",
        PROFILES[0].1
    );
    let mut totals = Vec::new();
    for ((label, _), c) in settings.iter().zip(&codec) {
        let total = fixed + c.to_phone.mean + c.to_whatsapp.mean;
        println!(
            "  {label:<24} {total:7.1} µs  = {:5.2} x the libopus floor  {:6.0} calls/core",
            total / floor,
            20_000.0 / total
        );
        totals.push(Totals {
            label: label.clone(),
            per_call_us: total,
        });
    }
    println!(
        "raw libopus floor, same run: 48 kHz c10 VoIP 20 kbit/s ({floor_bytes:.1} bytes/packet): \
         encode {}, decode {}, sum of means {floor:.1} µs",
        floor_enc.show(),
        floor_dec.show()
    );
    println!("(webrtc-rs's own per-packet work around SRTP is in part 2)\n");
    totals
}

struct CodecSteps {
    decode: Stat,
    resample_down: Option<Stat>,
    g711_encode: Stat,
    to_phone: Stat,
    g711_decode: Stat,
    resample_up: Option<Stat>,
    encode: Stat,
    to_whatsapp: Stat,
}

fn codec_steps(speech: &Speech, settings: &BridgeSettings, runs: usize) -> CodecSteps {
    let (dec_rate, enc) = (settings.decode.opus_rate, settings.encode);
    let (mut dec_t, mut down_t, mut g_enc_t, mut to_phone_t) = (vec![], vec![], vec![], vec![]);
    let (mut g_dec_t, mut up_t, mut enc_t, mut to_wa_t) = (vec![], vec![], vec![], vec![]);
    for run in 0..=runs {
        let keep = run > 0;
        // WhatsApp -> phone, step by step, then as the bridge does it.
        let mut dec = OpusDecoder::new(dec_rate).unwrap();
        let mut down = (dec_rate != 8000).then(|| Resampler::new(dec_rate, 8000).unwrap());
        let mut wide = vec![0i16; frame_samples(dec_rate)];
        let (mut narrow, mut bytes) = ([0i16; G711_FRAME], [0u8; G711_FRAME]);
        for p in &speech.meta_packets {
            time(&mut dec_t, keep, || dec.decode(p, &mut wide).unwrap());
            match &mut down {
                Some(r) => time(&mut down_t, keep, || r.process(&wide, &mut narrow)),
                None => {
                    narrow.copy_from_slice(&wide);
                    0
                }
            };
            time(&mut g_enc_t, keep, || LAW.encode(&narrow, &mut bytes));
        }
        let mut to_phone = OpusToG711::new(LAW, settings.decode).unwrap();
        for p in &speech.meta_packets {
            time(&mut to_phone_t, keep, || {
                to_phone.frame(Frame::Packet(p), &mut bytes)
            });
        }
        // Phone -> WhatsApp, the same way; the encoder set up as G711ToOpus::new does.
        let mut encoder = OpusEncoder::new(
            enc.opus_rate,
            1,
            enc.complexity,
            enc.fec,
            enc.expected_loss_pct,
        )
        .unwrap();
        encoder.set_bitrate(enc.bitrate).unwrap();
        encoder.set_narrowband(true).unwrap();
        let mut up = (enc.opus_rate != 8000).then(|| Resampler::new(8000, enc.opus_rate).unwrap());
        let mut wide = vec![0i16; frame_samples(enc.opus_rate)];
        let mut packet = [0u8; MAX_PACKET];
        for f in &speech.phone_frames {
            time(&mut g_dec_t, keep, || LAW.decode(f, &mut narrow));
            let input: &[i16] = match &mut up {
                Some(r) => {
                    time(&mut up_t, keep, || r.process(&narrow, &mut wide));
                    &wide
                }
                None => &narrow,
            };
            time(&mut enc_t, keep, || {
                encoder.encode(input, &mut packet).unwrap()
            });
        }
        let mut to_wa = G711ToOpus::new(LAW, enc).unwrap();
        for f in &speech.phone_frames {
            time(&mut to_wa_t, keep, || to_wa.frame(Some(f)).unwrap().len());
        }
    }
    let opt = |t: &[f64]| (!t.is_empty()).then(|| Stat::of(t));
    CodecSteps {
        decode: Stat::of(&dec_t),
        resample_down: opt(&down_t),
        g711_encode: Stat::of(&g_enc_t),
        to_phone: Stat::of(&to_phone_t),
        g711_decode: Stat::of(&g_dec_t),
        resample_up: opt(&up_t),
        encode: Stat::of(&enc_t),
        to_whatsapp: Stat::of(&to_wa_t),
    }
}

/// Protect and unprotect with webrtc-rs's SRTP (`rtc::srtp`), keyed the way its DTLS handler
/// keys a session: replay protection (64 packets) on the receiving side only.
fn srtp_cost(profile: ProtectionProfile, plain: &[Bytes], runs: usize) -> (Stat, Stat) {
    let provider = rtc::crypto::default_provider().expect("ring crypto provider");
    let key: Vec<u8> = (0..profile.key_len()).map(|i| i as u8 * 7 + 1).collect();
    let salt: Vec<u8> = (0..profile.salt_len()).map(|i| i as u8 * 13 + 5).collect();
    let (mut protect_t, mut unprotect_t) = (vec![], vec![]);
    for run in 0..=runs {
        let keep = run > 0;
        let mut tx = Context::new(&key, &salt, profile, None, None, provider.crypto()).unwrap();
        let mut rx = Context::new(
            &key,
            &salt,
            profile,
            Some(srtp_replay_protection(64)),
            None,
            provider.crypto(),
        )
        .unwrap();
        let protected: Vec<_> = plain
            .iter()
            .map(|p| time(&mut protect_t, keep, || tx.encrypt_rtp(p).unwrap()))
            .collect();
        for p in &protected {
            time(&mut unprotect_t, keep, || rx.decrypt_rtp(p).unwrap());
        }
    }
    (Stat::of(&protect_t), Stat::of(&unprotect_t))
}

/// Meta's packets as they come off the wire before SRTP: Opus behind a header carrying the
/// three extensions of Meta's offer (§5.1): audio level, abs-send-time, transport-cc.
fn meta_rtp(packets: &[Vec<u8>]) -> Vec<Bytes> {
    packets
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut header = rtc::rtp::header::Header {
                version: 2,
                payload_type: 111,
                sequence_number: i as u16,
                timestamp: (i as u32).wrapping_mul(960),
                ssrc: 0x5EED_0001,
                ..Default::default()
            };
            header
                .set_extension(1, Bytes::from_static(&[0x90]))
                .unwrap();
            header
                .set_extension(2, Bytes::from_static(&[1, 2, 3]))
                .unwrap();
            let twcc = (i as u16).to_be_bytes();
            header
                .set_extension(3, Bytes::copy_from_slice(&twcc))
                .unwrap();
            rtc::rtp::Packet {
                header,
                payload: Bytes::copy_from_slice(p),
            }
            .marshal()
            .unwrap()
            .freeze()
        })
        .collect()
}

fn phone_rtp(frames: &[[u8; G711_FRAME]]) -> Vec<Bytes> {
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let h = pcmu_header(i, 0x5EED_0002);
            let mut buf = vec![0u8; 12 + G711_FRAME];
            rtp_header::write_packet(&h, f, &mut buf).unwrap();
            Bytes::from(buf)
        })
        .collect()
}

/// The header of µ-law frame `i` of a stream (PT 0, 160 samples a frame).
fn pcmu_header(i: usize, ssrc: u32) -> RtpHeader {
    RtpHeader {
        marker: false,
        payload_type: 0,
        sequence: i as u16,
        timestamp: (i as u32).wrapping_mul(160),
        ssrc,
    }
}

fn header_parse_cost(packets: &[Bytes], runs: usize) -> Stat {
    let chunk = &packets[..BATCH.min(packets.len())];
    let mut t = Vec::new();
    for run in 0..=runs * 20 {
        let mut batch = Vec::with_capacity(1);
        time(&mut batch, true, || {
            chunk
                .iter()
                .map(|p| {
                    rtp_header::parse(std::hint::black_box(p))
                        .unwrap()
                        .header
                        .sequence
                })
                .fold(0u16, u16::wrapping_add)
        });
        if run > 0 {
            t.push(batch[0] / chunk.len() as f64);
        }
    }
    Stat::of(&t)
}

fn header_write_cost(runs: usize) -> Stat {
    let mut t = Vec::new();
    let mut out = [0u8; 1500];
    for run in 0..=runs * 20 {
        let mut batch = Vec::with_capacity(1);
        time(&mut batch, true, || {
            for i in 0..BATCH {
                let h = pcmu_header(i, 0x5EED_0003);
                h.write(std::hint::black_box(&mut out[..])).unwrap();
            }
        });
        if run > 0 {
            t.push(batch[0] / BATCH as f64);
        }
    }
    Stat::of(&t)
}
