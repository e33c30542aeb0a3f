//! SDP for the SIP side (RFC 4566, offer/answer per RFC 3264): we offer G.711 and
//! telephone-event on plain RTP; phones and PBXs answer with what they take.

use crate::media::g711::G711;
use bytesstr::BytesStr;
use ezk_sdp_types::{MediaType, SessionDescription, TaggedAddress, TransportProtocol};
use std::net::{IpAddr, SocketAddr};

/// Our dynamic payload type for telephone-event when we make the offer (RFC 4733 §7.1.1
/// leaves the number to the offerer; 101 is what most phones use).
pub const OFFER_DTMF_PT: u8 = 101;

/// What we offer on an outgoing INVITE.
#[derive(Debug, Clone)]
pub struct AudioOffer {
    pub session_id: u64,
    pub address: IpAddr,
    pub port: u16,
}

impl AudioOffer {
    pub fn to_sdp(&self) -> String {
        let ip = match self.address {
            IpAddr::V4(a) => format!("IP4 {a}"),
            IpAddr::V6(a) => format!("IP6 {a}"),
        };
        format!(
            "v=0\r\n\
             o=whatsip {id} {id} IN {ip}\r\n\
             s=whatsip\r\n\
             c=IN {ip}\r\n\
             t=0 0\r\n\
             m=audio {port} RTP/AVP 0 8 {dtmf}\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:{dtmf} telephone-event/8000\r\n\
             a=fmtp:{dtmf} 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n",
            id = self.session_id,
            port = self.port,
            dtmf = OFFER_DTMF_PT,
        )
    }
}

/// The audio stream both sides agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedAudio {
    pub remote_rtp: SocketAddr,
    pub remote_rtcp: SocketAddr,
    pub codec: G711,
    pub dtmf_pt: Option<u8>,
    /// The peer put the stream on hold (RFC 3264 §8.4: sendonly/inactive or port 0).
    pub on_hold: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    #[error("SDP does not parse: {0}")]
    Syntax(String),
    #[error("SDP has no audio stream on RTP/AVP")]
    NoAudio,
    #[error("SDP names no connection address for audio")]
    NoAddress,
    #[error("SDP connection address {0} is a host name; an IP address is needed")]
    HostName(String),
    #[error("no codec in common: we take PCMU or PCMA")]
    NoCommonCodec,
}

/// Parses SDP text; a malformed body is an error value, never a panic.
pub fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    SessionDescription::parse(&BytesStr::from(text)).map_err(|e| SdpError::Syntax(e.to_string()))
}

/// Picks the stream from the answer to our [`AudioOffer`] (or from an offer we are answering:
/// the rule is the same, the first of PCMU/PCMA the peer lists).
pub fn negotiate(sdp: &SessionDescription) -> Result<NegotiatedAudio, SdpError> {
    let media = sdp
        .media_descriptions
        .iter()
        .find(|m| m.media.media_type == MediaType::Audio && m.media.proto == TransportProtocol::RtpAvp)
        .ok_or(SdpError::NoAudio)?;
    let conn = media.connection.as_ref().or(sdp.connection.as_ref()).ok_or(SdpError::NoAddress)?;
    let ip: IpAddr = match &conn.address {
        TaggedAddress::IP4(a) => (*a).into(),
        TaggedAddress::IP6(a) => (*a).into(),
        TaggedAddress::IP4FQDN(h) | TaggedAddress::IP6FQDN(h) => return Err(SdpError::HostName(h.to_string())),
    };
    let codec = media
        .media
        .fmts
        .iter()
        .find_map(|&pt| G711::from_payload_type(pt))
        .ok_or(SdpError::NoCommonCodec)?;
    let dtmf_pt = media
        .rtpmap
        .iter()
        .find(|m| m.encoding.eq_ignore_ascii_case("telephone-event") && m.clock_rate == 8000)
        .map(|m| m.payload)
        .filter(|pt| media.media.fmts.contains(pt));
    let port = media.media.port;
    let rtcp_port = match &media.rtcp {
        Some(r) => r.port,
        None if media.rtcp_mux => port,
        None => port.saturating_add(1),
    };
    use ezk_sdp_types::Direction;
    let direction = if media.direction == Direction::SendRecv { sdp.direction } else { media.direction };
    let on_hold = port == 0
        || matches!(direction, Direction::SendOnly | Direction::Inactive)
        || ip.is_unspecified();
    Ok(NegotiatedAudio {
        remote_rtp: SocketAddr::new(ip, port),
        remote_rtcp: SocketAddr::new(ip, rtcp_port),
        codec,
        dtmf_pt,
        on_hold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP_ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
        m=audio 10002 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

    #[test]
    fn our_offer_parses_and_negotiates_to_pcmu() {
        let offer = AudioOffer { session_id: 42, address: "127.0.0.1".parse().unwrap(), port: 20000 }.to_sdp();
        assert!(offer.lines().all(|_| true) && offer.contains("\r\n"));
        let n = negotiate(&parse(offer.as_bytes()).unwrap()).unwrap();
        assert_eq!(n.codec, G711::Pcmu);
        assert_eq!(n.remote_rtp, "127.0.0.1:20000".parse::<SocketAddr>().unwrap());
        assert_eq!(n.remote_rtcp.port(), 20001);
        assert_eq!(n.dtmf_pt, Some(OFFER_DTMF_PT));
        assert!(!n.on_hold);
    }

    #[test]
    fn answer_picks_the_peers_first_g711_and_its_dtmf_type() {
        let n = negotiate(&parse(BARESIP_ANSWER.as_bytes()).unwrap()).unwrap();
        assert_eq!(n.codec, G711::Pcma);
        assert_eq!(n.dtmf_pt, Some(101));
        assert_eq!(n.remote_rtp.port(), 10002);
    }

    #[test]
    fn bad_answers_are_errors() {
        assert!(matches!(parse(b"garbage"), Err(SdpError::Syntax(_))));
        assert_eq!(parse(&[0xff, 0xfe]).unwrap_err(), SdpError::NotUtf8);
        let g722 = BARESIP_ANSWER.replace("RTP/AVP 8 101", "RTP/AVP 9 101");
        assert_eq!(negotiate(&parse(g722.as_bytes()).unwrap()).unwrap_err(), SdpError::NoCommonCodec);
        let video = BARESIP_ANSWER.replace("m=audio", "m=video");
        assert_eq!(negotiate(&parse(video.as_bytes()).unwrap()).unwrap_err(), SdpError::NoAudio);
    }

    #[test]
    fn hold_is_recognised() {
        let held = BARESIP_ANSWER.replace("a=sendrecv", "a=sendonly");
        assert!(negotiate(&parse(held.as_bytes()).unwrap()).unwrap().on_hold);
        let zero = BARESIP_ANSWER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        assert!(negotiate(&parse(zero.as_bytes()).unwrap()).unwrap().on_hold);
    }
}
