//! G.711 PCMU (µ-law) and PCMA (A-law), ITU-T G.711 with the segment tables of its Appendix,
//! working on 16-bit linear PCM.
//!
//! Decoding goes through 256-entry tables built at compile time; encoding is a few integer ops
//! per sample, so neither allocates.

/// The two G.711 companding laws, named as in RTP/AVP (RFC 3551 §4.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    Pcmu,
    Pcma,
}

impl G711 {
    /// G.711 is always sampled at 8 kHz (RFC 3551 table 4).
    pub const CLOCK_RATE: u32 = 8000;

    /// Static payload type from RFC 3551 table 4.
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    /// Encoding name as it appears in an SDP `a=rtpmap` line.
    pub fn encoding_name(self) -> &'static str {
        match self {
            G711::Pcmu => "PCMU",
            G711::Pcma => "PCMA",
        }
    }

    pub fn from_payload_type(pt: u8) -> Option<G711> {
        match pt {
            0 => Some(G711::Pcmu),
            8 => Some(G711::Pcma),
            _ => None,
        }
    }

    /// Case-insensitive, because SDP encoding names are (RFC 4855 §3).
    pub fn from_encoding_name(name: &str) -> Option<G711> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(G711::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(G711::Pcma)
        } else {
            None
        }
    }

    /// The byte that decodes to (near) zero; what a silent frame is filled with.
    pub fn silence_byte(self) -> u8 {
        self.encode_sample(0)
    }

    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            G711::Pcmu => linear_to_ulaw(sample),
            G711::Pcma => linear_to_alaw(sample),
        }
    }

    pub fn decode_sample(self, byte: u8) -> i16 {
        match self {
            G711::Pcmu => ULAW_DECODE[byte as usize],
            G711::Pcma => ALAW_DECODE[byte as usize],
        }
    }

    /// Encodes `min(pcm.len(), out.len())` samples and returns how many were written.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> usize {
        let n = pcm.len().min(out.len());
        for (o, &s) in out[..n].iter_mut().zip(&pcm[..n]) {
            *o = self.encode_sample(s);
        }
        n
    }

    /// Decodes `min(bytes.len(), out.len())` bytes and returns how many samples were written.
    pub fn decode(self, bytes: &[u8], out: &mut [i16]) -> usize {
        let n = bytes.len().min(out.len());
        let table = match self {
            G711::Pcmu => &ULAW_DECODE,
            G711::Pcma => &ALAW_DECODE,
        };
        for (o, &b) in out[..n].iter_mut().zip(&bytes[..n]) {
            *o = table[b as usize];
        }
        n
    }
}

/// µ-law bias: shifts every magnitude so the segment is simply the position of its top bit.
const ULAW_BIAS: i32 = 0x84;
/// Largest magnitude that still fits the top segment once the bias is added.
const ULAW_CLIP: i32 = 32635;

pub fn linear_to_ulaw(sample: i16) -> u8 {
    let s = sample as i32;
    let (sign, mag) = if s < 0 { (0x80, -s) } else { (0x00, s) };
    let mag = mag.min(ULAW_CLIP) + ULAW_BIAS;
    // mag is in [0x84, 0x7FFF], so its top bit is bit 7..=14 and the segment is 0..=7.
    let exponent = (31 - mag.leading_zeros() as i32) - 7;
    let mantissa = (mag >> (exponent + 3)) & 0x0F;
    // µ-law transmits the complement so that idle lines carry many 1 bits (G.711 §3.2).
    !(sign | (exponent << 4) | mantissa) as u8
}

pub const fn ulaw_to_linear(byte: u8) -> i16 {
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let mag = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -mag as i16
    } else {
        mag as i16
    }
}

pub fn linear_to_alaw(sample: i16) -> u8 {
    let s = sample as i32;
    // A-law has no negative zero: -1 maps onto the same code as 0 on the negative side, which is
    // why the magnitude of a negative sample is taken as -s - 1.
    let (mask, mag) = if s >= 0 { (0xD5, s) } else { (0x55, -s - 1) };
    let code = if mag < 256 {
        mag >> 4
    } else {
        // Segment e >= 1 holds magnitudes in [128 << e, 256 << e).
        let exponent = (31 - mag.leading_zeros() as i32) - 7;
        (exponent << 4) | ((mag >> (exponent + 3)) & 0x0F)
    };
    // Even bits are inverted on the line (G.711 §3.3), the sign bit is 1 for positive.
    (code ^ mask) as u8
}

pub const fn alaw_to_linear(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0F) as i32;
    let mag = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if a & 0x80 != 0 {
        mag as i16
    } else {
        -mag as i16
    }
}

const fn build_table(law: G711) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match law {
            G711::Pcmu => ulaw_to_linear(i as u8),
            G711::Pcma => alaw_to_linear(i as u8),
        };
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = build_table(G711::Pcmu);
static ALAW_DECODE: [i16; 256] = build_table(G711::Pcma);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_and_names() {
        assert_eq!(G711::Pcmu.payload_type(), 0);
        assert_eq!(G711::Pcma.payload_type(), 8);
        assert_eq!(G711::from_payload_type(0), Some(G711::Pcmu));
        assert_eq!(G711::from_payload_type(8), Some(G711::Pcma));
        assert_eq!(G711::from_payload_type(9), None);
        assert_eq!(G711::Pcmu.encoding_name(), "PCMU");
        assert_eq!(G711::from_encoding_name("pcma"), Some(G711::Pcma));
    }

    #[test]
    fn known_values() {
        // Values from the G.711 tables (and every reference implementation).
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(-1), 0x7F);

        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
    }

    #[test]
    fn silence_is_the_zero_code() {
        assert_eq!(G711::Pcmu.silence_byte(), 0xFF);
        assert_eq!(G711::Pcma.silence_byte(), 0xD5);
        for law in [G711::Pcmu, G711::Pcma] {
            let mut bytes = [0u8; 160];
            law.encode(&[0i16; 160], &mut bytes);
            let mut pcm = [1i16; 160];
            law.decode(&bytes, &mut pcm);
            assert!(pcm.iter().all(|&s| s.abs() <= 8), "{law:?}: {pcm:?}");
        }
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for b in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(b)), b, "A-law {b:#04x}");
            // 0x7F is µ-law's negative zero; it decodes to 0, which encodes as positive zero.
            let expected = if b == 0x7F { 0xFF } else { b };
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(b)),
                expected,
                "µ-law {b:#04x}"
            );
        }
    }

    #[test]
    fn round_trip_error_is_within_half_a_step() {
        for law in [G711::Pcmu, G711::Pcma] {
            for s in i16::MIN..=i16::MAX {
                let back = law.decode_sample(law.encode_sample(s)) as i32;
                let s = s as i32;
                let err = (back - s).abs();
                // 4-bit mantissa: the step is 1/16 of the segment base, the error at most half a
                // step, plus the clipping above the top code (32124 / 32256).
                let bound = match law {
                    G711::Pcmu => (s.abs() + ULAW_BIAS) / 32 + 1,
                    G711::Pcma => (s.abs() / 32).max(8) + 1,
                };
                let clip = (s.abs() - 32256).max(0) + (s.abs() - 32124).max(0);
                assert!(
                    err <= bound + clip,
                    "{law:?} {s} -> {back} (err {err}, bound {bound})"
                );
            }
        }
    }

    #[test]
    fn buffers_of_different_lengths_use_the_shorter() {
        let mut out = [0u8; 4];
        assert_eq!(G711::Pcmu.encode(&[0, 1000, -1000, 5, 6, 7], &mut out), 4);
        let mut pcm = [0i16; 8];
        assert_eq!(G711::Pcmu.decode(&out, &mut pcm), 4);
        assert!((pcm[1] - 1000).abs() < 40 && (pcm[2] + 1000).abs() < 40);
    }
}
