//! The fixed RTP header (RFC 3550 §5.1), parsed in place and written into a caller's buffer.
//!
//! We do not use the `rtp` crate's `Header` here: it owns `Vec`s for CSRCs and extensions and
//! `Bytes` payloads, i.e. allocations per packet, and a G.711 leg needs none of that. Incoming
//! CSRC lists, extensions and padding are skipped, not interpreted.

use thiserror::Error;

pub const RTP_VERSION: u8 = 2;
pub const HEADER_LEN: usize = 12;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtpError {
    #[error("RTP packet truncated")]
    Truncated,
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    #[error("RTP padding longer than the payload")]
    BadPadding,
    #[error("output buffer too small for the RTP packet")]
    BufferTooSmall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// A parsed packet borrowing the datagram it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub header: RtpHeader,
    pub payload: &'a [u8],
}

impl RtpHeader {
    /// Writes the 12-byte header (no CSRCs, no extension, no padding).
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        let buf = out.get_mut(..HEADER_LEN).ok_or(RtpError::BufferTooSmall)?;
        buf[0] = RTP_VERSION << 6;
        buf[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        buf[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        buf[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Ok(HEADER_LEN)
    }
}

/// Writes header and payload into `out`, returning the datagram length.
pub fn write_packet(header: &RtpHeader, payload: &[u8], out: &mut [u8]) -> Result<usize, RtpError> {
    let len = HEADER_LEN + payload.len();
    if out.len() < len {
        return Err(RtpError::BufferTooSmall);
    }
    header.write(out)?;
    out[HEADER_LEN..len].copy_from_slice(payload);
    Ok(len)
}

pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    if buf.len() < HEADER_LEN {
        return Err(RtpError::Truncated);
    }
    let version = buf[0] >> 6;
    if version != RTP_VERSION {
        return Err(RtpError::BadVersion(version));
    }
    let padding = buf[0] & 0x20 != 0;
    let extension = buf[0] & 0x10 != 0;
    let csrc_count = usize::from(buf[0] & 0x0F);
    let mut start = HEADER_LEN + 4 * csrc_count;
    if extension {
        // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in words, then the words.
        let words = buf.get(start + 2..start + 4).ok_or(RtpError::Truncated)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    let mut end = buf.len();
    if start > end {
        return Err(RtpError::Truncated);
    }
    if padding {
        // The last octet counts the padding octets, itself included (§5.1).
        let pad = usize::from(buf[end - 1]);
        if pad == 0 || pad > end - start {
            return Err(RtpError::BadPadding);
        }
        end -= pad;
    }
    Ok(RtpPacket {
        header: RtpHeader {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7F,
            sequence: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        },
        payload: &buf[start..end],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse() {
        let h = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: 42,
        };
        let mut buf = [0u8; 64];
        let n = write_packet(&h, &[1, 2, 3], &mut buf).unwrap();
        assert_eq!(n, 15);
        assert_eq!(&buf[..4], &[0x80, 0x88, 0xFF, 0xFF]);
        let p = parse(&buf[..n]).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, &[1, 2, 3]);
        assert_eq!(
            write_packet(&h, &[0; 60], &mut buf),
            Err(RtpError::BufferTooSmall)
        );
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        let mut p = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        p.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0]); // one-word extension
        p.extend_from_slice(&[7, 7]); // payload
        p.extend_from_slice(&[0, 0, 3]); // three octets of padding
        let parsed = parse(&p).unwrap();
        assert_eq!(parsed.payload, &[7, 7]);
        assert_eq!(parsed.header.ssrc, 3);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        // Claims 15 CSRCs it does not have.
        assert_eq!(parse(&[0x8F; 20]), Err(RtpError::Truncated));
        // Extension header cut off.
        assert_eq!(
            parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE]),
            Err(RtpError::Truncated)
        );
        // Padding count larger than the payload.
        let mut p = [0u8; 14];
        p[0] = 0xA0;
        p[13] = 5;
        assert_eq!(parse(&p), Err(RtpError::BadPadding));
        p[13] = 0;
        assert_eq!(parse(&p), Err(RtpError::BadPadding));
    }
}
