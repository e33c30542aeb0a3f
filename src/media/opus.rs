//! A thin wrapper over libopus (through `audiopus`) shaped for one mono voice stream in 20 ms
//! frames: an encoder configured once at construction, a decoder with explicit FEC and PLC calls.
//!
//! Both work on caller buffers and never allocate after construction (libopus keeps its state
//! in one block allocated by `opus_*_create`; encode and decode use the stack only).
//!
//! The RTP clock of Opus is 48 kHz whatever rate the codec runs at internally (RFC 7587 §4.1),
//! so a 20 ms packet always advances the RTP timestamp by [`RTP_TIMESTAMP_STEP`].

use audiopus::coder::{Decoder, Encoder, GenericCtl};
use audiopus::packet::Packet;
use audiopus::{Application, Bandwidth, Bitrate, Channels, MutSignals, SampleRate, Signal};

/// Opus RTP timestamp increment for one 20 ms packet (48 kHz clock, RFC 7587 §4.1).
pub const RTP_TIMESTAMP_STEP: u32 = 960;

/// Largest Opus packet for one frame (RFC 6716 §3.2.1: 1275 bytes).
pub const MAX_PACKET: usize = 1275;

/// Frame duration used throughout the bridge (Meta: "ptime 20 ms", calling API doc §5.2).
pub const FRAME_MS: u32 = 20;

/// Samples in one 20 ms mono frame at `rate` Hz.
pub const fn frame_samples(rate: u32) -> usize {
    (rate / 1000 * FRAME_MS) as usize
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpusError {
    #[error("Opus cannot run at {0} Hz (8000, 12000, 16000, 24000 or 48000)")]
    UnsupportedRate(u32),
    #[error("only mono is supported, not {0} channels")]
    UnsupportedChannels(u8),
    #[error("complexity {0} is outside 0..=10")]
    BadComplexity(u8),
    #[error("expected packet loss {0} % is outside 0..=100")]
    BadLoss(u8),
    #[error("empty Opus packet")]
    EmptyPacket,
    #[error("libopus: {0}")]
    Codec(audiopus::Error),
}

impl From<audiopus::Error> for OpusError {
    fn from(e: audiopus::Error) -> Self {
        match e {
            audiopus::Error::EmptyPacket => OpusError::EmptyPacket,
            other => OpusError::Codec(other),
        }
    }
}

/// A mono VoIP encoder.
pub struct OpusEncoder {
    inner: Encoder,
    rate: u32,
}

impl OpusEncoder {
    /// `rate` is the rate of the PCM handed to [`encode`](Self::encode) (and so the widest
    /// audio band Opus may code). `fec` turns on in-band FEC (LBRR); libopus only emits it when
    /// `expected_loss_pct` is above zero, and spends more of the bitrate on it the higher it is.
    pub fn new(
        rate: u32,
        channels: u8,
        complexity: u8,
        fec: bool,
        expected_loss_pct: u8,
    ) -> Result<Self, OpusError> {
        if channels != 1 {
            return Err(OpusError::UnsupportedChannels(channels));
        }
        if complexity > 10 {
            return Err(OpusError::BadComplexity(complexity));
        }
        if expected_loss_pct > 100 {
            return Err(OpusError::BadLoss(expected_loss_pct));
        }
        let mut inner = Encoder::new(sample_rate(rate)?, Channels::Mono, Application::Voip)?;
        inner.set_complexity(complexity)?;
        inner.set_signal(Signal::Voice)?;
        inner.set_inband_fec(fec)?;
        inner.set_packet_loss_perc(expected_loss_pct)?;
        // Meta's offers ask for maxaveragebitrate=20000 (calling API doc §5.1); libopus's own
        // default for 48 kHz mono VoIP would be higher.
        inner.set_bitrate(Bitrate::BitsPerSecond(20_000))?;
        Ok(OpusEncoder { inner, rate })
    }

    /// Average bitrate target in bits per second (VBR stays on).
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), OpusError> {
        let bps = i32::try_from(bps).unwrap_or(i32::MAX);
        self.inner.set_bitrate(Bitrate::BitsPerSecond(bps))?;
        Ok(())
    }

    /// Caps the coded audio band at 4 kHz: the right setting when the source is G.711, so no
    /// bits are spent describing an empty upper band.
    pub fn set_narrowband(&mut self, narrowband: bool) -> Result<(), OpusError> {
        let bw = if narrowband {
            Bandwidth::Narrowband
        } else {
            Bandwidth::Fullband
        };
        self.inner.set_max_bandwidth(bw)?;
        Ok(())
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples of delay the encoder adds (at its own rate).
    pub fn lookahead(&self) -> Result<u32, OpusError> {
        Ok(self.inner.lookahead()?)
    }

    /// Encodes one frame (`pcm.len()` must be 2.5, 5, 10, 20, 40 or 60 ms at the encoder's
    /// rate) and returns the packet length written to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        Ok(self.inner.encode(pcm, out)?)
    }
}

/// A mono decoder producing PCM at the rate given to [`new`](Self::new); libopus resamples
/// internally (SILK) or band-limits its synthesis (CELT) to get there.
pub struct OpusDecoder {
    inner: Decoder,
    rate: u32,
}

impl OpusDecoder {
    pub fn new(rate: u32) -> Result<Self, OpusError> {
        let inner = Decoder::new(sample_rate(rate)?, Channels::Mono)?;
        Ok(OpusDecoder { inner, rate })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Decodes one packet; returns the samples written. `out` must hold the packet's duration.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, OpusError> {
        let packet = Packet::try_from(packet)?;
        let out = MutSignals::try_from(out)?;
        Ok(self.inner.decode(Some(packet), out, false)?)
    }

    /// Recovers the lost frame *before* `next_packet` from the low-bitrate copy (LBRR) that
    /// packet carries; libopus falls back to PLC when it carries none. `out.len()` must be
    /// exactly the lost duration (libopus: "frame_size must be exactly the duration of audio
    /// that is missing"). Decode `next_packet` itself normally afterwards.
    pub fn decode_fec(&mut self, next_packet: &[u8], out: &mut [i16]) -> Result<usize, OpusError> {
        let packet = Packet::try_from(next_packet)?;
        let out = MutSignals::try_from(out)?;
        Ok(self.inner.decode(Some(packet), out, true)?)
    }

    /// Packet-loss concealment for `out.len()` samples (a multiple of 2.5 ms).
    pub fn conceal(&mut self, out: &mut [i16]) -> Result<usize, OpusError> {
        let out = MutSignals::try_from(out)?;
        Ok(self.inner.decode(None, out, false)?)
    }

    /// Forgets the stream, as after a sender restart.
    pub fn reset(&mut self) -> Result<(), OpusError> {
        Ok(self.inner.reset_state()?)
    }
}

fn sample_rate(rate: u32) -> Result<SampleRate, OpusError> {
    Ok(match rate {
        8000 => SampleRate::Hz8000,
        12000 => SampleRate::Hz12000,
        16000 => SampleRate::Hz16000,
        24000 => SampleRate::Hz24000,
        48000 => SampleRate::Hz48000,
        _ => return Err(OpusError::UnsupportedRate(rate)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::tone::{dominant_frequency, rms_dbfs, sine};
    use super::*;

    #[test]
    fn rejects_bad_parameters() {
        assert_eq!(
            OpusEncoder::new(44100, 1, 5, false, 0).err(),
            Some(OpusError::UnsupportedRate(44100))
        );
        assert_eq!(
            OpusEncoder::new(48000, 2, 5, false, 0).err(),
            Some(OpusError::UnsupportedChannels(2))
        );
        assert_eq!(
            OpusEncoder::new(48000, 1, 11, false, 0).err(),
            Some(OpusError::BadComplexity(11))
        );
        assert_eq!(
            OpusDecoder::new(22050).err(),
            Some(OpusError::UnsupportedRate(22050))
        );
        let mut dec = OpusDecoder::new(8000).unwrap();
        let mut out = [0i16; 160];
        assert_eq!(dec.decode(&[], &mut out), Err(OpusError::EmptyPacket));
        assert_eq!(dec.decode_fec(&[], &mut out), Err(OpusError::EmptyPacket));
    }

    #[test]
    fn tone_round_trip_at_every_rate_pair() {
        for enc_rate in [8000, 16000, 48000] {
            for dec_rate in [8000, 16000, 48000] {
                let mut enc = OpusEncoder::new(enc_rate, 1, 5, false, 0).unwrap();
                let mut dec = OpusDecoder::new(dec_rate).unwrap();
                let input = sine(1000.0, enc_rate, 0.4, 0.3);
                let mut decoded = Vec::new();
                let mut packet = [0u8; MAX_PACKET];
                let mut pcm = vec![0i16; frame_samples(dec_rate)];
                for frame in input.chunks_exact(frame_samples(enc_rate)) {
                    let n = enc.encode(frame, &mut packet).unwrap();
                    assert!(n > 0 && n <= 80, "{enc_rate}: {n} bytes at 20 kbit/s");
                    let got = dec.decode(&packet[..n], &mut pcm).unwrap();
                    assert_eq!(got, frame_samples(dec_rate));
                    decoded.extend_from_slice(&pcm);
                }
                let (hz, db) = dominant_frequency(&decoded, dec_rate, 100.0, 3800.0).unwrap();
                assert!(
                    (hz - 1000.0).abs() < 10.0,
                    "{enc_rate}->{dec_rate}: {hz} Hz"
                );
                let want = rms_dbfs(&input);
                assert!(
                    (db - want).abs() < 1.5,
                    "{enc_rate}->{dec_rate}: {db} vs {want}"
                );
            }
        }
    }

    #[test]
    fn fec_and_plc_fill_a_lost_frame() {
        let mut enc = OpusEncoder::new(16000, 1, 5, true, 20).unwrap();
        let mut dec = OpusDecoder::new(16000).unwrap();
        let input = sine(600.0, 16000, 1.0, 0.3);
        let mut packets = Vec::new();
        let mut buf = [0u8; MAX_PACKET];
        for frame in input.chunks_exact(320) {
            let n = enc.encode(frame, &mut buf).unwrap();
            packets.push(buf[..n].to_vec());
        }
        let mut out = Vec::new();
        let mut pcm = [0i16; 320];
        for (i, p) in packets.iter().enumerate() {
            match i % 10 {
                3 => dec.decode_fec(&packets[i + 1], &mut pcm).unwrap(),
                7 => dec.conceal(&mut pcm).unwrap(),
                _ => dec.decode(p, &mut pcm).unwrap(),
            };
            out.extend_from_slice(&pcm);
        }
        let (hz, db) = dominant_frequency(&out, 16000, 100.0, 3800.0).unwrap();
        assert!((hz - 600.0).abs() < 10.0, "{hz}");
        assert!((db - rms_dbfs(&input)).abs() < 2.0, "{db}");
    }

    #[test]
    fn decode_into_a_too_short_buffer_is_an_error() {
        let mut enc = OpusEncoder::new(48000, 1, 5, false, 0).unwrap();
        let mut dec = OpusDecoder::new(48000).unwrap();
        let mut buf = [0u8; MAX_PACKET];
        let n = enc
            .encode(&sine(440.0, 48000, 0.02, 0.3), &mut buf)
            .unwrap();
        let mut short = [0i16; 480];
        assert!(matches!(
            dec.decode(&buf[..n], &mut short),
            Err(OpusError::Codec(_))
        ));
    }
}
