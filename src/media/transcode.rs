//! The two directions of one bridged call, 20 ms at a time:
//! [`OpusToG711`] (WhatsApp → desk phone) and [`G711ToOpus`] (desk phone → WhatsApp).
//!
//! Each owns its codec, resampler and buffers, all allocated in `new`; `frame` never
//! allocates. DTMF is not handled here: RFC 4733 packets go to their own module.
//!
//! The Opus side's internal rate is a choice (see [`DecodeConfig`], [`EncodeConfig`]): the
//! defaults run libopus at 8 kHz in both directions, so no resampler is needed at all. The
//! bench in `benches/transcode.rs` measures the alternatives.

use super::g711::G711;
use super::jitter::Frame;
use super::opus::{frame_samples, OpusDecoder, OpusEncoder, OpusError, MAX_PACKET};
use super::resample::Resampler;

/// G.711 samples (and bytes) in 20 ms.
pub const G711_FRAME: usize = 160;
const G711_RATE: u32 = 8000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeConfig {
    /// Rate libopus decodes at: 8000 (it band-limits and resamples internally), or 16000 /
    /// 48000 followed by our own resampler down to 8 kHz.
    pub opus_rate: u32,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig { opus_rate: 8000 }
    }
}

/// How the result of one [`OpusToG711::frame`] was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Audio,
    /// Lost frame rebuilt from the next packet's in-band FEC (or PLC if it had none).
    Recovered,
    /// Lost frame concealed by Opus PLC.
    Concealed,
    /// Nothing to play: G.711 silence.
    Silence,
    /// The packet did not decode; concealed instead.
    Corrupt(OpusError),
}

/// WhatsApp → desk phone: one Opus packet (or its absence) in, 160 G.711 bytes out.
pub struct OpusToG711 {
    law: G711,
    decoder: OpusDecoder,
    resampler: Option<Resampler>,
    /// 20 ms at the decoder's rate.
    decoded: Box<[i16]>,
    pcm: [i16; G711_FRAME],
}

impl OpusToG711 {
    pub fn new(law: G711, config: DecodeConfig) -> Result<Self, OpusError> {
        let decoder = OpusDecoder::new(config.opus_rate)?;
        let resampler = if config.opus_rate == G711_RATE {
            None
        } else {
            Some(
                Resampler::new(config.opus_rate, G711_RATE)
                    .map_err(|_| OpusError::UnsupportedRate(config.opus_rate))?,
            )
        };
        Ok(OpusToG711 {
            law,
            decoder,
            resampler,
            decoded: vec![0; frame_samples(config.opus_rate)].into_boxed_slice(),
            pcm: [0; G711_FRAME],
        })
    }

    /// Turns one jitter-buffer tick into 20 ms of G.711.
    pub fn frame(&mut self, input: Frame<'_>, out: &mut [u8; G711_FRAME]) -> Decoded {
        let outcome = self.decode(input);
        match &mut self.resampler {
            Some(r) => {
                let n = r.process(&self.decoded, &mut self.pcm);
                debug_assert_eq!(n, G711_FRAME);
            }
            None => self.pcm.copy_from_slice(&self.decoded),
        }
        self.law.encode(&self.pcm, out);
        outcome
    }

    /// The 8 kHz PCM behind the last frame's G.711 bytes, for a recorder tap.
    pub fn pcm(&self) -> &[i16; G711_FRAME] {
        &self.pcm
    }

    fn decode(&mut self, input: Frame<'_>) -> Decoded {
        let out = &mut self.decoded[..];
        let result = match input {
            Frame::Empty => {
                out.fill(0);
                return Decoded::Silence;
            }
            Frame::Packet(p) => match self.decoder.decode(p, out) {
                Ok(n) if n < out.len() => {
                    // A shorter packet (Meta's older offers allow minptime=10): fill the rest
                    // of the tick with concealment rather than a hole.
                    self.decoder.conceal(&mut out[n..]).map(|_| Decoded::Audio)
                }
                Ok(_) => Ok(Decoded::Audio),
                Err(e) => Err(e),
            },
            Frame::Lost { next: Some(p) } => {
                self.decoder.decode_fec(p, out).map(|_| Decoded::Recovered)
            }
            Frame::Lost { next: None } => self.decoder.conceal(out).map(|_| Decoded::Concealed),
        };
        match result {
            Ok(d) => d,
            Err(e) => {
                // PLC on a full 20 ms buffer cannot fail; silence if it somehow does.
                if self.decoder.conceal(out).is_err() {
                    out.fill(0);
                }
                Decoded::Corrupt(e)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeConfig {
    /// Rate libopus encodes at: 8000 (G.711 audio goes straight in), or 16000 / 48000 after
    /// our resampler. The coded band is capped at 4 kHz either way: there is nothing above it.
    pub opus_rate: u32,
    /// 0..=10. libopus 1.3.1 codes no FEC below 2, whatever `fec` says.
    pub complexity: u8,
    pub fec: bool,
    pub expected_loss_pct: u8,
    /// Meta's offers carry maxaveragebitrate=20000 (calling API doc §5.1).
    pub bitrate: u32,
    pub idle: IdleFill,
}

impl Default for EncodeConfig {
    fn default() -> Self {
        EncodeConfig {
            opus_rate: 8000,
            complexity: 5,
            fec: true,
            // FEC data is coded only when loss is expected, and at 20 kbit/s it takes bits
            // from the speech: PESQ on a clean path fell from 4.35 to 3.90 at 5 % (G.711 alone
            // 4.41; tests/bridge_quality.rs). So none until loss is seen; webrtc-rs does not
            // hand us Meta's receiver reports yet, which would drive it.
            expected_loss_pct: 0,
            bitrate: 20_000,
            idle: IdleFill::ComfortNoise { dbfs: -70.0 },
        }
    }
}

/// What is sent to WhatsApp for a tick in which the phone sent nothing.
///
/// A packet goes out either way: the WhatsApp client drops a call after 20 s without business
/// media at the start or 30 s mid-call (calling API doc §5.2, §8 item 5), so an idle tick must
/// still produce one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IdleFill {
    /// Low-pass shaped noise at this RMS level: the caller hears a live line instead of the
    /// dead digital silence that makes people hang up ("hello? are you there?"), and the
    /// stream never looks like an all-zero one to whatever watches it on Meta's side.
    ComfortNoise { dbfs: f32 },
    /// Digital zero; Opus codes it in a few bytes.
    Silence,
}

/// Desk phone → WhatsApp: 160 G.711 bytes (or nothing) in, one 20 ms Opus packet out, for an
/// RTP payload whose timestamp advances by [`super::opus::RTP_TIMESTAMP_STEP`].
pub struct G711ToOpus {
    law: G711,
    encoder: OpusEncoder,
    resampler: Option<Resampler>,
    pcm: [i16; G711_FRAME],
    /// 20 ms at the encoder's rate, when it is not 8 kHz.
    upsampled: Box<[i16]>,
    packet: Box<[u8]>,
    idle: IdleFill,
    noise: ComfortNoise,
}

impl G711ToOpus {
    pub fn new(law: G711, config: EncodeConfig) -> Result<Self, OpusError> {
        let mut encoder = OpusEncoder::new(
            config.opus_rate,
            1,
            config.complexity,
            config.fec,
            config.expected_loss_pct,
        )?;
        encoder.set_bitrate(config.bitrate)?;
        encoder.set_narrowband(true)?;
        let resampler = if config.opus_rate == G711_RATE {
            None
        } else {
            Some(
                Resampler::new(G711_RATE, config.opus_rate)
                    .map_err(|_| OpusError::UnsupportedRate(config.opus_rate))?,
            )
        };
        let dbfs = match config.idle {
            IdleFill::ComfortNoise { dbfs } => dbfs,
            IdleFill::Silence => -120.0,
        };
        Ok(G711ToOpus {
            law,
            encoder,
            resampler,
            pcm: [0; G711_FRAME],
            upsampled: vec![0; frame_samples(config.opus_rate)].into_boxed_slice(),
            packet: vec![0; MAX_PACKET].into_boxed_slice(),
            idle: config.idle,
            noise: ComfortNoise::new(dbfs),
        })
    }

    /// Encodes 20 ms. The returned packet borrows an internal buffer until the next call.
    pub fn frame(&mut self, input: Option<&[u8; G711_FRAME]>) -> Result<&[u8], OpusError> {
        match (input, self.idle) {
            (Some(bytes), _) => {
                self.law.decode(bytes, &mut self.pcm);
            }
            (None, IdleFill::ComfortNoise { .. }) => self.noise.fill(&mut self.pcm),
            (None, IdleFill::Silence) => self.pcm.fill(0),
        }
        self.encode_pcm()
    }

    /// Encodes 20 ms of 8 kHz linear PCM that never was G.711 (an announcement): up to
    /// [`G711_FRAME`] samples, the rest of the frame silence, so the last piece of a recording
    /// that is not a whole number of frames still makes a full packet.
    pub fn frame_linear(&mut self, samples: &[i16]) -> Result<&[u8], OpusError> {
        let n = samples.len().min(G711_FRAME);
        self.pcm[..n].copy_from_slice(&samples[..n]);
        self.pcm[n..].fill(0);
        self.encode_pcm()
    }

    /// Encodes a stand-in for a lost phone frame: the previous frame again at half its level.
    /// Repeated losses fade out geometrically, so a lost packet is a short fade, not a click.
    pub fn conceal(&mut self) -> Result<&[u8], OpusError> {
        for s in &mut self.pcm {
            *s /= 2;
        }
        self.encode_pcm()
    }

    fn encode_pcm(&mut self) -> Result<&[u8], OpusError> {
        let pcm: &[i16] = match &mut self.resampler {
            Some(r) => {
                let n = r.process(&self.pcm, &mut self.upsampled);
                debug_assert_eq!(n, self.upsampled.len());
                &self.upsampled
            }
            None => &self.pcm,
        };
        let n = self.encoder.encode(pcm, &mut self.packet)?;
        Ok(&self.packet[..n])
    }

    /// The 8 kHz PCM behind the last packet (the phone's audio, or the idle fill).
    pub fn pcm(&self) -> &[i16; G711_FRAME] {
        &self.pcm
    }
}

/// White noise through a one-pole low-pass (a -6 dB/octave tilt above ~130 Hz, like line and
/// room noise rather than hiss), scaled to an RMS level. xorshift32: no allocation, no
/// dependency, and the same sequence on every run.
struct ComfortNoise {
    state: u32,
    smooth: f32,
    gain: f32,
}

/// Pole of the shaping filter.
const NOISE_POLE: f32 = 0.9;

impl ComfortNoise {
    fn new(dbfs: f32) -> Self {
        // Uniform noise in [-1, 1) has variance 1/3; the filter y += (1 - a)(x - y) scales the
        // variance of white noise by (1 - a) / (1 + a). Full scale (0 dBFS) is 32768 RMS, as in
        // `tone::rms_dbfs`.
        let filtered_rms = ((1.0 / 3.0) * (1.0 - NOISE_POLE) / (1.0 + NOISE_POLE)).sqrt();
        let target_rms = 32768.0 * 10f32.powf(dbfs / 20.0);
        ComfortNoise {
            state: 0x9E37_79B9,
            smooth: 0.0,
            gain: target_rms / filtered_rms,
        }
    }

    fn fill(&mut self, out: &mut [i16]) {
        for o in out {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 17;
            self.state ^= self.state << 5;
            let white = (self.state as i32) as f32 / 2_147_483_648.0;
            self.smooth += (1.0 - NOISE_POLE) * (white - self.smooth);
            let y = self.smooth * self.gain;
            *o = (y + 0.5f32.copysign(y)) as i16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::opus::RTP_TIMESTAMP_STEP;
    use super::super::tone::{dominant_frequency, goertzel_power, rms_dbfs, sine};
    use super::*;

    const RATES: [u32; 3] = [8000, 16000, 48000];

    /// 20 ms G.711 frames of a tone.
    fn g711_tone(law: G711, hz: f32, seconds: f32, amplitude: f32) -> Vec<[u8; 160]> {
        sine(hz, 8000, seconds, amplitude)
            .chunks_exact(160)
            .map(|c| {
                let mut b = [0u8; 160];
                law.encode(c, &mut b);
                b
            })
            .collect()
    }

    /// Opus packets of a tone, the way Meta would send them (48 kHz, FEC on).
    fn opus_tone(hz: f32, seconds: f32, amplitude: f32) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(48000, 1, 10, true, 10).unwrap();
        let mut buf = [0u8; MAX_PACKET];
        sine(hz, 48000, seconds, amplitude)
            .chunks_exact(960)
            .map(|c| {
                let n = enc.encode(c, &mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect()
    }

    fn check_tone(pcm: &[i16], rate: u32, hz: f32, dbfs: f32, db_tol: f32, what: &str) {
        let (got_hz, got_db) = dominant_frequency(pcm, rate, 100.0, 3800.0).unwrap();
        assert!(
            (got_hz - hz).abs() <= hz * 0.01,
            "{what}: {got_hz} Hz instead of {hz}"
        );
        assert!(
            (got_db - dbfs).abs() <= db_tol,
            "{what}: {got_db} dBFS instead of {dbfs}"
        );
    }

    #[test]
    fn phone_tone_reaches_whatsapp_at_1khz() {
        let cases = [
            (8000, G711::Pcmu),
            (8000, G711::Pcma),
            (16000, G711::Pcmu),
            (48000, G711::Pcma),
        ];
        for (rate, law) in cases {
            let config = EncodeConfig {
                opus_rate: rate,
                ..EncodeConfig::default()
            };
            let mut tx = G711ToOpus::new(law, config).unwrap();
            // The WhatsApp client decodes at 48 kHz.
            let mut rx = OpusDecoder::new(48000).unwrap();
            let mut heard = Vec::new();
            let mut pcm = [0i16; 960];
            let mut bytes = 0;
            for frame in g711_tone(law, 1000.0, 0.5, 0.25) {
                let packet = tx.frame(Some(&frame)).unwrap();
                // 20 kbit/s is 50 bytes per 20 ms on average; VBR varies around it.
                assert!(packet.len() <= 100, "{} bytes", packet.len());
                bytes += packet.len();
                assert_eq!(rx.decode(packet, &mut pcm).unwrap(), 960);
                heard.extend_from_slice(&pcm);
            }
            assert!(bytes / 25 <= 60, "{} bytes per packet", bytes / 25);
            let sent = rms_dbfs(&sine(1000.0, 8000, 1.0, 0.25));
            check_tone(
                &heard[4800..],
                48000,
                1000.0,
                sent,
                1.0,
                &format!("{law:?} @{rate}"),
            );
        }
    }

    #[test]
    fn linear_pcm_reaches_whatsapp_and_a_short_frame_is_padded_with_silence() {
        let mut tx = G711ToOpus::new(G711::Pcmu, EncodeConfig::default()).unwrap();
        let mut rx = OpusDecoder::new(48000).unwrap();
        let tone = sine(440.0, 8000, 0.5, 0.25);
        let mut heard = Vec::new();
        let mut pcm = [0i16; 960];
        for chunk in tone.chunks_exact(G711_FRAME) {
            let packet = tx.frame_linear(chunk).unwrap();
            assert_eq!(rx.decode(packet, &mut pcm).unwrap(), 960);
            heard.extend_from_slice(&pcm);
        }
        // Linear samples go in as they are: no G.711 round trip on the way.
        assert_eq!(&tx.pcm()[..], &tone[tone.len() - G711_FRAME..]);
        check_tone(&heard[4800..], 48000, 440.0, rms_dbfs(&tone), 1.0, "linear");

        tx.frame_linear(&tone[..60]).unwrap();
        assert_eq!(&tx.pcm()[..60], &tone[..60]);
        assert!(tx.pcm()[60..].iter().all(|&s| s == 0));
    }

    #[test]
    fn a_lost_phone_frame_is_the_last_one_fading_out() {
        let mut tx = G711ToOpus::new(G711::Pcmu, EncodeConfig::default()).unwrap();
        let frames = g711_tone(G711::Pcmu, 1000.0, 0.2, 0.25);
        for f in &frames {
            tx.frame(Some(f)).unwrap();
        }
        let level = |tx: &G711ToOpus| rms_dbfs(tx.pcm());
        let before = level(&tx);
        for lost in 1..=3 {
            assert!(!tx.conceal().unwrap().is_empty());
            let drop = before - level(&tx);
            // Half the amplitude per lost frame: 6 dB each.
            assert!((drop - 6.0 * lost as f32).abs() < 0.5, "{lost} lost: {drop} dB down");
            let (hz, _) = dominant_frequency(tx.pcm(), 8000, 100.0, 3800.0).unwrap();
            assert!((hz - 1000.0).abs() < 10.0, "{hz} Hz");
        }
    }

    #[test]
    fn whatsapp_tone_reaches_the_phone_at_1khz() {
        let packets = opus_tone(1000.0, 1.0, 0.25);
        for rate in RATES {
            for law in [G711::Pcmu, G711::Pcma] {
                let mut rx = OpusToG711::new(law, DecodeConfig { opus_rate: rate }).unwrap();
                let mut heard = Vec::new();
                let mut out = [0u8; 160];
                let mut pcm = [0i16; 160];
                for p in &packets {
                    assert_eq!(rx.frame(Frame::Packet(p), &mut out), Decoded::Audio);
                    law.decode(&out, &mut pcm);
                    heard.extend_from_slice(&pcm);
                }
                let sent = rms_dbfs(&sine(1000.0, 48000, 1.0, 0.25));
                check_tone(
                    &heard[800..],
                    8000,
                    1000.0,
                    sent,
                    1.0,
                    &format!("{law:?} @{rate}"),
                );
            }
        }
    }

    #[test]
    fn loss_is_bridged_by_fec_and_plc() {
        let packets = opus_tone(1000.0, 2.0, 0.25);
        let sent = rms_dbfs(&sine(1000.0, 48000, 1.0, 0.25));
        for rate in RATES {
            let mut rx = OpusToG711::new(G711::Pcmu, DecodeConfig { opus_rate: rate }).unwrap();
            let mut heard = Vec::new();
            let mut out = [0u8; 160];
            let (mut recovered, mut concealed) = (0, 0);
            for (i, p) in packets.iter().enumerate() {
                // 10 % loss: the first second recovered from FEC, the second concealed.
                let input = match (i % 10, i < 50) {
                    (4, true) => Frame::Lost {
                        next: packets.get(i + 1).map(|p| &p[..]),
                    },
                    (4, false) => Frame::Lost { next: None },
                    _ => Frame::Packet(p),
                };
                match rx.frame(input, &mut out) {
                    Decoded::Recovered => recovered += 1,
                    Decoded::Concealed => concealed += 1,
                    Decoded::Audio => {}
                    other => panic!("{other:?}"),
                }
                heard.extend_from_slice(rx.pcm());
                let mut check = [0u8; 160];
                G711::Pcmu.encode(rx.pcm(), &mut check);
                assert_eq!(check, out, "the tap is what was sent");
            }
            assert_eq!((recovered, concealed), (5, 5));
            check_tone(&heard[800..], 8000, 1000.0, sent, 3.0, &format!("@{rate}"));
            for (i, w) in heard.chunks_exact(160).enumerate().skip(5) {
                let db = rms_dbfs(w);
                if i < 50 {
                    // FEC rebuilds the frame and keeps the decoder in step (SILK wobbles about
                    // +-2 dB on a pure tone even so).
                    assert!((db - sent).abs() < 3.0, "@{rate} FEC frame {i}: {db} dBFS");
                }
                // PLC is weaker: on a steady tone the packet after a concealed frame decodes
                // up to ~17 dB low (SILK's long-term predictor resumes from a guessed
                // history; libopus 1.3.1). Still no dropout to silence.
                assert!(db > sent - 20.0, "@{rate} frame {i}: {db} dBFS");
            }
        }
    }

    #[test]
    fn empty_ticks_are_g711_silence_and_garbage_is_concealed() {
        let packets = opus_tone(1000.0, 0.2, 0.25);
        let mut rx = OpusToG711::new(G711::Pcma, DecodeConfig::default()).unwrap();
        let mut out = [0u8; 160];
        assert_eq!(rx.frame(Frame::Empty, &mut out), Decoded::Silence);
        assert!(out.iter().all(|&b| b == G711::Pcma.silence_byte()));
        for p in &packets[..5] {
            rx.frame(Frame::Packet(p), &mut out);
        }
        // A TOC byte announcing a code-3 packet with no frame count is invalid (RFC 6716 §3.2.5).
        let outcome = rx.frame(Frame::Packet(&[0x03]), &mut out);
        assert!(
            matches!(outcome, Decoded::Corrupt(OpusError::Codec(_))),
            "{outcome:?}"
        );
        assert!(rms_dbfs(rx.pcm()) > -30.0, "concealment continues the tone");
    }

    #[test]
    fn ten_ms_packets_fill_the_tick() {
        let mut enc = OpusEncoder::new(48000, 1, 5, false, 0).unwrap();
        let mut buf = [0u8; MAX_PACKET];
        let n = enc
            .encode(&sine(1000.0, 48000, 0.01, 0.25), &mut buf)
            .unwrap();
        let mut rx = OpusToG711::new(G711::Pcmu, DecodeConfig::default()).unwrap();
        let mut out = [0u8; 160];
        assert_eq!(rx.frame(Frame::Packet(&buf[..n]), &mut out), Decoded::Audio);
    }

    #[test]
    fn idle_phone_sends_quiet_shaped_noise_every_tick() {
        let mut tx = G711ToOpus::new(G711::Pcmu, EncodeConfig::default()).unwrap();
        let mut rx = OpusDecoder::new(8000).unwrap();
        let (mut sent, mut heard) = (Vec::new(), Vec::new());
        let mut pcm = [0i16; 160];
        let mut bytes = 0;
        for _ in 0..100 {
            let packet = tx.frame(None).unwrap();
            assert!(!packet.is_empty());
            bytes += packet.len();
            rx.decode(packet, &mut pcm).unwrap();
            sent.extend_from_slice(tx.pcm());
            heard.extend_from_slice(&pcm);
        }
        let level = rms_dbfs(&sent);
        assert!((level + 70.0).abs() < 1.0, "{level}");
        let heard_level = rms_dbfs(&heard[800..]);
        assert!((heard_level + 70.0).abs() < 4.0, "{heard_level}");
        // Single-bin power of noise scatters widely, so average it over 20 ms windows.
        let band = |hz: f32| -> f32 {
            let windows = sent.chunks_exact(160);
            let n = windows.len() as f32;
            windows.map(|w| goertzel_power(w, 8000, hz)).sum::<f32>() / n
        };
        let (low, high) = (band(200.0), band(3000.0));
        assert!(low > 10.0 * high, "tilted: {low} vs {high}");
        assert!(bytes / 100 < 40, "{} bytes per idle packet", bytes / 100);
        assert_eq!(RTP_TIMESTAMP_STEP, 960);
    }

    #[test]
    fn idle_silence_is_digital_zero_in_tiny_packets() {
        let config = EncodeConfig {
            idle: IdleFill::Silence,
            ..EncodeConfig::default()
        };
        let mut tx = G711ToOpus::new(G711::Pcmu, config).unwrap();
        for _ in 0..50 {
            let n = tx.frame(None).unwrap().len();
            assert!((1..=10).contains(&n), "{n}");
            assert!(tx.pcm().iter().all(|&s| s == 0));
        }
    }

    #[test]
    fn bad_configs_are_errors() {
        let config = EncodeConfig {
            opus_rate: 12000,
            ..EncodeConfig::default()
        };
        assert!(matches!(
            G711ToOpus::new(G711::Pcmu, config),
            Err(OpusError::UnsupportedRate(12000))
        ));
        assert!(matches!(
            OpusToG711::new(G711::Pcmu, DecodeConfig { opus_rate: 24000 }),
            Err(OpusError::UnsupportedRate(24000))
        ));
    }
}
