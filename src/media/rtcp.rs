//! Just enough RTCP (RFC 3550 §6) for a G.711 leg: write SR/RR + SDES CNAME (+ BYE) compound
//! packets into a caller's buffer, and recognise SR/RR/BYE in what arrives.

use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

pub const PT_SR: u8 = 200;
pub const PT_RR: u8 = 201;
pub const PT_SDES: u8 = 202;
pub const PT_BYE: u8 = 203;

const HEADER_LEN: usize = 4;
const SENDER_INFO_LEN: usize = 20;
const REPORT_BLOCK_LEN: usize = 24;
const SDES_CNAME: u8 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RtcpError {
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall { need: usize, have: usize },
    #[error("CNAME is {0} bytes, at most 255 fit an SDES item")]
    CnameTooLong(usize),
    #[error("truncated RTCP packet")]
    Truncated,
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
}

/// Sender information block of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp, see [`ntp_timestamp`].
    pub ntp: u64,
    /// RTP timestamp for the same instant as `ntp`.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    /// Payload octets sent, headers excluded.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    pub ssrc: u32,
    /// Fraction lost since the previous report, as a fixed-point number over 256.
    pub fraction_lost: u8,
    /// Cumulative packets lost; 24-bit signed on the wire (duplicates can make it negative).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from this source, or 0.
    pub last_sr: u32,
    /// Delay since that SR in 1/65536 s, or 0.
    pub delay_since_last_sr: u32,
}

/// What we recognise in an incoming compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket {
    SenderReport {
        ssrc: u32,
        info: SenderInfo,
        first_block: Option<ReportBlock>,
    },
    ReceiverReport {
        ssrc: u32,
        first_block: Option<ReportBlock>,
    },
    SourceDescription,
    /// `ssrc` is the first source leaving, if the packet names any.
    Bye {
        ssrc: Option<u32>,
    },
    Other {
        packet_type: u8,
    },
}

/// The 64-bit NTP format (RFC 3550 §4): seconds since 1900 and a 32-bit binary fraction.
pub fn ntp_timestamp(t: SystemTime) -> u64 {
    const UNIX_TO_NTP_SECS: u64 = 2_208_988_800;
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + UNIX_TO_NTP_SECS;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The "LSR" form of an NTP timestamp (RFC 3550 §6.4.1).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// RFC 5761 §4: with rtcp-mux, RTCP is told from RTP by the second byte (RTCP packet types
/// 192-223 collide with no RTP payload type in use).
pub fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= HEADER_LEN && (192..=223).contains(&packet[1])
}

/// Writes a compound packet: SR (when `sender` is given) or RR, then SDES CNAME, then BYE if
/// `bye`. RFC 3550 §6.1 requires every compound packet to start with SR/RR and carry CNAME.
pub fn write_compound(
    out: &mut [u8],
    ssrc: u32,
    sender: Option<&SenderInfo>,
    block: Option<&ReportBlock>,
    cname: &str,
    bye: bool,
) -> Result<usize, RtcpError> {
    let mut n = match sender {
        Some(info) => write_sender_report(out, ssrc, info, block)?,
        None => write_receiver_report(out, ssrc, block)?,
    };
    n += write_sdes_cname(&mut out[n..], ssrc, cname)?;
    if bye {
        n += write_bye(&mut out[n..], ssrc)?;
    }
    Ok(n)
}

pub fn write_sender_report(
    out: &mut [u8],
    ssrc: u32,
    info: &SenderInfo,
    block: Option<&ReportBlock>,
) -> Result<usize, RtcpError> {
    let len = HEADER_LEN + 4 + SENDER_INFO_LEN + block.map_or(0, |_| REPORT_BLOCK_LEN);
    let buf = room(out, len)?;
    write_header(buf, u8::from(block.is_some()), PT_SR, len);
    put_u32(buf, 4, ssrc);
    put_u32(buf, 8, (info.ntp >> 32) as u32);
    put_u32(buf, 12, info.ntp as u32);
    put_u32(buf, 16, info.rtp_timestamp);
    put_u32(buf, 20, info.packet_count);
    put_u32(buf, 24, info.octet_count);
    if let Some(b) = block {
        write_block(&mut buf[28..], b);
    }
    Ok(len)
}

pub fn write_receiver_report(
    out: &mut [u8],
    ssrc: u32,
    block: Option<&ReportBlock>,
) -> Result<usize, RtcpError> {
    let len = HEADER_LEN + 4 + block.map_or(0, |_| REPORT_BLOCK_LEN);
    let buf = room(out, len)?;
    write_header(buf, u8::from(block.is_some()), PT_RR, len);
    put_u32(buf, 4, ssrc);
    if let Some(b) = block {
        write_block(&mut buf[8..], b);
    }
    Ok(len)
}

/// One SDES chunk with a single CNAME item (RFC 3550 §6.5.1).
pub fn write_sdes_cname(out: &mut [u8], ssrc: u32, cname: &str) -> Result<usize, RtcpError> {
    let text = cname.as_bytes();
    if text.len() > 255 {
        return Err(RtcpError::CnameTooLong(text.len()));
    }
    // SSRC, item type, item length, text, then at least one zero octet ending the item list,
    // padded to a 32-bit boundary (§6.5).
    let chunk = 4 + 2 + text.len() + 1;
    let len = HEADER_LEN + chunk.next_multiple_of(4);
    let buf = room(out, len)?;
    write_header(buf, 1, PT_SDES, len);
    put_u32(buf, 4, ssrc);
    buf[8] = SDES_CNAME;
    buf[9] = text.len() as u8;
    buf[10..10 + text.len()].copy_from_slice(text);
    buf[10 + text.len()..len].fill(0);
    Ok(len)
}

pub fn write_bye(out: &mut [u8], ssrc: u32) -> Result<usize, RtcpError> {
    let len = HEADER_LEN + 4;
    let buf = room(out, len)?;
    write_header(buf, 1, PT_BYE, len);
    put_u32(buf, 4, ssrc);
    Ok(len)
}

/// Iterates over the packets of a compound RTCP datagram without copying.
pub fn parse_compound(buf: &[u8]) -> RtcpIter<'_> {
    RtcpIter { rest: buf }
}

pub struct RtcpIter<'a> {
    rest: &'a [u8],
}

impl Iterator for RtcpIter<'_> {
    type Item = Result<RtcpPacket, RtcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = parse_one(self.rest);
        match result {
            Ok((packet, used)) => {
                self.rest = &self.rest[used..];
                Some(Ok(packet))
            }
            Err(e) => {
                // Nothing after a malformed packet can be framed reliably.
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

fn parse_one(buf: &[u8]) -> Result<(RtcpPacket, usize), RtcpError> {
    if buf.len() < HEADER_LEN {
        return Err(RtcpError::Truncated);
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(RtcpError::BadVersion(version));
    }
    let count = buf[0] & 0x1F;
    let pt = buf[1];
    let len = (usize::from(u16::from_be_bytes([buf[2], buf[3]])) + 1) * 4;
    if buf.len() < len {
        return Err(RtcpError::Truncated);
    }
    let body = &buf[..len];
    let block_at = |off: usize| -> Option<ReportBlock> {
        (count > 0 && body.len() >= off + REPORT_BLOCK_LEN).then(|| read_block(&body[off..]))
    };
    let packet = match pt {
        PT_SR => {
            if len < HEADER_LEN + 4 + SENDER_INFO_LEN {
                return Err(RtcpError::Truncated);
            }
            let info = SenderInfo {
                ntp: (u64::from(get_u32(body, 8)) << 32) | u64::from(get_u32(body, 12)),
                rtp_timestamp: get_u32(body, 16),
                packet_count: get_u32(body, 20),
                octet_count: get_u32(body, 24),
            };
            RtcpPacket::SenderReport {
                ssrc: get_u32(body, 4),
                info,
                first_block: block_at(28),
            }
        }
        PT_RR => {
            if len < HEADER_LEN + 4 {
                return Err(RtcpError::Truncated);
            }
            RtcpPacket::ReceiverReport {
                ssrc: get_u32(body, 4),
                first_block: block_at(8),
            }
        }
        PT_SDES => RtcpPacket::SourceDescription,
        PT_BYE => RtcpPacket::Bye {
            ssrc: (count > 0 && len >= HEADER_LEN + 4).then(|| get_u32(body, 4)),
        },
        other => RtcpPacket::Other { packet_type: other },
    };
    Ok((packet, len))
}

fn room(out: &mut [u8], need: usize) -> Result<&mut [u8], RtcpError> {
    let have = out.len();
    out.get_mut(..need)
        .ok_or(RtcpError::BufferTooSmall { need, have })
}

fn write_header(buf: &mut [u8], count: u8, pt: u8, len: usize) {
    buf[0] = 0x80 | (count & 0x1F);
    buf[1] = pt;
    // The length field counts 32-bit words minus one (§6.4.1); every writer keeps len % 4 == 0.
    buf[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
}

fn write_block(buf: &mut [u8], b: &ReportBlock) {
    put_u32(buf, 0, b.ssrc);
    // Clamp to the 24-bit signed range rather than wrap into nonsense.
    let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
    put_u32(buf, 4, (u32::from(b.fraction_lost) << 24) | lost);
    put_u32(buf, 8, b.highest_seq);
    put_u32(buf, 12, b.jitter);
    put_u32(buf, 16, b.last_sr);
    put_u32(buf, 20, b.delay_since_last_sr);
}

fn read_block(buf: &[u8]) -> ReportBlock {
    let word = get_u32(buf, 4);
    // Sign-extend the 24-bit cumulative loss.
    let lost = ((word << 8) as i32) >> 8;
    ReportBlock {
        ssrc: get_u32(buf, 0),
        fraction_lost: (word >> 24) as u8,
        cumulative_lost: lost,
        highest_seq: get_u32(buf, 8),
        jitter: get_u32(buf, 12),
        last_sr: get_u32(buf, 16),
        delay_since_last_sr: get_u32(buf, 20),
    }
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn block() -> ReportBlock {
        ReportBlock {
            ssrc: 0xCAFE_BABE,
            fraction_lost: 25,
            cumulative_lost: -3,
            highest_seq: 0x0001_0010,
            jitter: 42,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    #[test]
    fn sender_report_round_trip() {
        let info = SenderInfo {
            ntp: 0x0102_0304_0506_0708,
            rtp_timestamp: 9,
            packet_count: 10,
            octet_count: 1600,
        };
        let mut buf = [0u8; 128];
        let n = write_sender_report(&mut buf, 0xDEAD_BEEF, &info, Some(&block())).unwrap();
        assert_eq!(n, 52);
        assert_eq!(&buf[..4], &[0x81, 200, 0, 12]);
        let mut it = parse_compound(&buf[..n]);
        assert_eq!(
            it.next(),
            Some(Ok(RtcpPacket::SenderReport {
                ssrc: 0xDEAD_BEEF,
                info,
                first_block: Some(block())
            }))
        );
        assert_eq!(it.next(), None);

        let n = write_sender_report(&mut buf, 1, &info, None).unwrap();
        assert_eq!((n, buf[0]), (28, 0x80));
    }

    #[test]
    fn compound_rr_sdes_bye() {
        let mut buf = [0u8; 128];
        let n = write_compound(&mut buf, 7, None, Some(&block()), "abc@whatsip", true).unwrap();
        let packets: Vec<_> = parse_compound(&buf[..n]).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            packets,
            [
                RtcpPacket::ReceiverReport {
                    ssrc: 7,
                    first_block: Some(block())
                },
                RtcpPacket::SourceDescription,
                RtcpPacket::Bye { ssrc: Some(7) },
            ]
        );
        // SDES: 4 header + 4 SSRC + 2 + 11 text + 1 end = 22, padded to 24.
        assert_eq!(n, 32 + 24 + 8);
        assert_eq!(&buf[32..36], &[0x81, 202, 0, 5]);
        assert_eq!(&buf[40..53], b"\x01\x0babc@whatsip");
        assert!(buf[53..56].iter().all(|&b| b == 0));
    }

    #[test]
    fn cname_padding_always_leaves_a_terminator() {
        let mut buf = [0xEEu8; 64];
        // 4 + 2 + 2 = 8 already aligned: still needs a zero octet, so a whole word is added.
        let n = write_sdes_cname(&mut buf, 1, "ab").unwrap();
        assert_eq!(n, 16);
        assert_eq!(&buf[8..12], &[1, 2, b'a', b'b']);
        assert_eq!(&buf[12..16], &[0, 0, 0, 0]);
        assert_eq!(
            write_sdes_cname(&mut buf, 1, &"x".repeat(300)),
            Err(RtcpError::CnameTooLong(300))
        );
    }

    #[test]
    fn small_buffers_are_errors_not_panics() {
        let mut buf = [0u8; 30];
        let err = write_compound(
            &mut buf,
            1,
            Some(&SenderInfo::default()),
            None,
            "cname",
            false,
        );
        assert_eq!(err, Err(RtcpError::BufferTooSmall { need: 16, have: 2 }));
        assert_eq!(
            write_receiver_report(&mut buf[..4], 1, None),
            Err(RtcpError::BufferTooSmall { need: 8, have: 4 })
        );
    }

    #[test]
    fn malformed_input() {
        assert_eq!(
            parse_compound(&[0x80, 200]).next(),
            Some(Err(RtcpError::Truncated))
        );
        assert_eq!(
            parse_compound(&[0x40, 200, 0, 0]).next(),
            Some(Err(RtcpError::BadVersion(1)))
        );
        // Length field claims more than is there.
        assert_eq!(
            parse_compound(&[0x80, 201, 0, 9, 0, 0, 0, 1]).next(),
            Some(Err(RtcpError::Truncated))
        );
        // An SR too short for its sender info.
        assert_eq!(
            parse_compound(&[0x80, 200, 0, 1, 0, 0, 0, 1]).next(),
            Some(Err(RtcpError::Truncated))
        );
        let app = [0x80, 204, 0, 0];
        assert_eq!(
            parse_compound(&app).next(),
            Some(Ok(RtcpPacket::Other { packet_type: 204 }))
        );
        // A BYE with no sources.
        assert_eq!(
            parse_compound(&[0x80, 203, 0, 0]).next(),
            Some(Ok(RtcpPacket::Bye { ssrc: None }))
        );
    }

    #[test]
    fn ntp_and_mux_helpers() {
        let t = UNIX_EPOCH + Duration::from_millis(1_500);
        let ntp = ntp_timestamp(t);
        assert_eq!(ntp >> 32, 2_208_988_801);
        assert_eq!(ntp as u32, 0x8000_0000);
        assert_eq!(
            ntp_middle(ntp),
            (((2_208_988_801u64 & 0xFFFF) << 16) | 0x8000) as u32
        );
        assert!(is_rtcp(&[0x80, 200, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 101, 0, 1]));
    }
}
