//! Makes webrtc-rs's SDP read like Meta's (docs/whatsapp-calling-api.md §5.1). Text in, text
//! out: the ICE credentials, fingerprint, mid and candidates stay the stack's own, so the
//! shaped SDP still describes the peer that made it; only what Meta writes differently changes.

/// Meta's Opus parameters on current offers (§5.1, the FreeSWITCH #2904 capture): what a
/// WhatsApp client can play and captures, 16 kHz wideband at 20 kbit/s.
pub const META_OPUS_FMTP: &str =
    "maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1";

/// §5.1: every Meta offer and answer asks for 20 ms packets.
const PTIME_MS: u32 = 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("the stack's SDP has no m=audio section")]
    NoAudio,
    #[error("the stack's SDP has no component-1 host candidate to advertise")]
    NoCandidate,
}

/// What differs between the offer and the answer Meta writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Shape {
    /// Meta's offer on a user-initiated call: only `opus_pt` and `dtmf_pt` on the m-line, with
    /// Meta's Opus fmtp.
    Offer { opus_pt: u8, dtmf_pt: u8 },
    /// Meta's answer to a business offer keeps the codecs the stack accepted and adds
    /// `a=ice-options:trickle` as Meta's does (§5.1).
    Answer,
}

/// Rewrites `stack` (webrtc-rs's local description, complete with candidates) the way Meta
/// writes SDP:
/// - CRLF line endings (§1.2: Meta takes and sends CRLF only);
/// - `a=ice-lite` at the session level (§5.1; the stack is also configured lite);
/// - the m-line port and `c=` address of the first component-1 host candidate, as Meta's carry
///   real addresses instead of `9` and `0.0.0.0`;
/// - one candidate per address: the component-2 duplicates are dropped (rtcp-mux);
/// - `a=ptime:20` and `a=maxptime:20` after the codec lines;
/// - for an offer, only Opus and telephone-event on the m-line, with [`META_OPUS_FMTP`].
pub(crate) fn shape(stack: &str, shape: Shape) -> Result<String, ShapeError> {
    let lines: Vec<&str> = stack
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .collect();
    let m_at = lines
        .iter()
        .position(|l| l.starts_with("m=audio "))
        .ok_or(ShapeError::NoAudio)?;
    let (addr, port) = lines[m_at..]
        .iter()
        .filter_map(|l| l.strip_prefix("a=candidate:"))
        .find_map(host_candidate)
        .ok_or(ShapeError::NoCandidate)?;

    let keep_pts: Option<[u8; 2]> = match shape {
        Shape::Offer { opus_pt, dtmf_pt } => Some([opus_pt, dtmf_pt]),
        Shape::Answer => None,
    };
    let kept = |pt: u8| keep_pts.is_none_or(|k| k.contains(&pt));
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 4);
    for l in &lines[..m_at] {
        if *l == "a=ice-lite" {
            continue;
        }
        out.push((*l).to_owned());
    }
    // RFC 8839 §5.3: ice-lite is a session-level attribute.
    out.push("a=ice-lite".to_owned());
    if matches!(shape, Shape::Answer) {
        out.push("a=ice-options:trickle".to_owned());
    }

    let mut last_codec_line = None;
    for l in &lines[m_at..] {
        if let Some(rest) = l.strip_prefix("m=audio ") {
            let mut f = rest.split_whitespace();
            let _stack_port = f.next();
            let proto = f.next().unwrap_or("UDP/TLS/RTP/SAVPF");
            let pts: Vec<&str> = f.filter(|p| p.parse().is_ok_and(kept)).collect();
            out.push(format!("m=audio {port} {proto} {}", pts.join(" ")));
            continue;
        }
        if l.starts_with("c=") {
            let family = if addr.contains(':') { "IP6" } else { "IP4" };
            out.push(format!("c=IN {family} {addr}"));
            continue;
        }
        if let Some(cand) = l.strip_prefix("a=candidate:") {
            if cand.split_whitespace().nth(1) != Some("1") {
                continue;
            }
        }
        if *l == "a=ice-lite" || l.starts_with("a=ptime:") || l.starts_with("a=maxptime:") {
            continue;
        }
        if let Some(pt) = codec_line_pt(l) {
            if !kept(pt) {
                continue;
            }
            let is_offer_opus = matches!(shape, Shape::Offer { opus_pt, .. } if pt == opus_pt);
            if is_offer_opus && l.starts_with("a=fmtp:") {
                out.push(format!("a=fmtp:{pt} {META_OPUS_FMTP}"));
                last_codec_line = Some(out.len());
                continue;
            }
            out.push((*l).to_owned());
            last_codec_line = Some(out.len());
            continue;
        }
        out.push((*l).to_owned());
    }
    let at = last_codec_line.unwrap_or(out.len());
    out.insert(at, format!("a=maxptime:{PTIME_MS}"));
    out.insert(at, format!("a=ptime:{PTIME_MS}"));

    let mut sdp = out.join("\r\n");
    sdp.push_str("\r\n");
    Ok(sdp)
}

/// `<address, port>` of a component-1 UDP host candidate line (RFC 8839 §5.1 grammar).
fn host_candidate(value: &str) -> Option<(String, u16)> {
    let f: Vec<&str> = value.split_whitespace().collect();
    let is_host = f.get(6) == Some(&"typ") && f.get(7) == Some(&"host");
    if f.len() < 8 || f[1] != "1" || !f[2].eq_ignore_ascii_case("udp") || !is_host {
        return None;
    }
    Some((f[4].to_owned(), f[5].parse().ok()?))
}

/// The payload type an `a=rtpmap`, `a=fmtp` or `a=rtcp-fb` line is about.
fn codec_line_pt(line: &str) -> Option<u8> {
    ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|p| line.strip_prefix(p))
        .and_then(|rest| rest.split([' ', '/']).next())
        .and_then(|pt| pt.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::wa_sdp::{parse_meta_answer, parse_meta_offer, Setup};

    /// webrtc-rs 0.21.1's offer as the sandbox peer configures it (lite, actpass, 111 and 126),
    /// with two codecs Meta never offers added to show they are removed.
    const STACK_OFFER: &str = "v=0\n\
o=- 4742444153475411815 140693875 IN IP4 0.0.0.0\n\
s=-\n\
t=0 0\n\
a=fingerprint:sha-256 E8:A7:F3:6B:91:20:81:7B:98:14:2D:CC:C5:D2:F7:79:F9:96:DC:BA:C2:E1:58:97:F2:30:D0:DA:4C:66:53:2D\n\
a=ice-lite\n\
a=extmap-allow-mixed\n\
a=group:BUNDLE 0\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 9 126\n\
c=IN IP4 0.0.0.0\n\
a=setup:actpass\n\
a=mid:0\n\
a=ice-ufrag:jTJLUsBOBbDjXmYp\n\
a=ice-pwd:dPtjQzXQBOHrjhaKPQCGKCycNtpCkCRc\n\
a=rtcp-mux\n\
a=rtcp-rsize\n\
a=rtpmap:111 opus/48000/2\n\
a=fmtp:111 minptime=10;useinbandfec=1\n\
a=rtcp-fb:111 transport-cc\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:9 G722/8000\n\
a=rtpmap:126 telephone-event/8000\n\
a=rtcp-fb:126 transport-cc\n\
a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\n\
a=msid:WhatsAppTrack1 WhatsAppAudioStream1\n\
a=ssrc:1592590337 cname:WhatsAppTrack1\n\
a=sendrecv\n\
a=candidate:2693830880 1 udp 2130706431 127.0.0.1 33552 typ host\n\
a=candidate:2693830880 2 udp 2130706431 127.0.0.1 33552 typ host\n\
a=end-of-candidates\n";

    /// webrtc-rs's answer to a business offer, as the lite, DTLS-client sandbox peer makes it.
    const STACK_ANSWER: &str = "v=0\n\
o=- 6949549843949062590 142965208 IN IP4 0.0.0.0\n\
s=-\n\
t=0 0\n\
a=group:BUNDLE audio\n\
a=fingerprint:sha-256 77:50:BD:3F:A6:C9:E3:BB:5D:0E:10:CB:88:B4:B9:57:61:67:1E:1D:3A:4C:01:CD:DA:5E:30:7A:36:2F:9B:03\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 126\n\
c=IN IP4 0.0.0.0\n\
a=setup:active\n\
a=mid:audio\n\
a=ice-ufrag:fJmQxSvtdUQbAlKW\n\
a=ice-pwd:kRbFjNMxhHQWZbFrAMGdKvJsCWQmKbnL\n\
a=rtcp-mux\n\
a=rtpmap:111 opus/48000/2\n\
a=fmtp:111 minptime=10;useinbandfec=1\n\
a=rtpmap:126 telephone-event/8000\n\
a=ssrc:99 cname:WhatsAppAudioStream1\n\
a=sendrecv\n\
a=candidate:1 1 udp 2130706431 127.0.0.1 40123 typ host\n\
a=candidate:1 2 udp 2130706431 127.0.0.1 40123 typ host\n\
a=end-of-candidates\n";

    fn assert_crlf(sdp: &str) {
        assert!(sdp.ends_with("\r\n"));
        assert!(!sdp.replace("\r\n", "").contains(['\r', '\n']), "{sdp:?}");
    }

    #[test]
    fn offer_reads_like_metas() {
        let sdp = shape(
            STACK_OFFER,
            Shape::Offer {
                opus_pt: 111,
                dtmf_pt: 126,
            },
        )
        .unwrap();
        assert_crlf(&sdp);
        let offer = parse_meta_offer(&sdp).expect("Meta-like offer parses");
        assert!(offer.ice_lite);
        assert_eq!(offer.setup, Setup::ActPass);
        assert_eq!(offer.payload_types, vec![111, 126]);
        assert_eq!(offer.opus.pt, 111);
        assert_eq!(offer.opus_param("maxplaybackrate"), Some("16000"));
        assert_eq!(offer.opus_param("sprop-maxcapturerate"), Some("16000"));
        assert_eq!(offer.opus_param("useinbandfec"), Some("1"));
        let te = offer.telephone_event.unwrap();
        assert_eq!((te.pt, te.clock_rate), (126, 8000));
        assert_eq!((offer.ptime, offer.maxptime), (Some(20), Some(20)));
        assert!(offer.rtcp_mux);
        assert_eq!(offer.bundle, vec!["0".to_owned()]);
        assert_eq!(offer.port, 33552);
        assert_eq!(offer.connection, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(offer.candidates.len(), 1, "component 2 dropped");
        assert_eq!(sdp.matches("a=ice-lite\r\n").count(), 1);
        assert!(!sdp.contains("PCMU") && !sdp.contains("G722"));
        assert!(!sdp.contains("minptime=10"));
        // Ptime sits with the codec lines, ahead of the SSRC and candidates.
        let ptime = sdp.find("a=ptime:20").unwrap();
        assert!(sdp.find("a=rtcp-fb:126").unwrap() < ptime);
        assert!(ptime < sdp.find("a=ssrc:").unwrap());
    }

    #[test]
    fn answer_reads_like_metas() {
        let sdp = shape(STACK_ANSWER, Shape::Answer).unwrap();
        assert_crlf(&sdp);
        let answer = parse_meta_answer(&sdp).expect("Meta-like answer parses");
        assert!(answer.ice_lite);
        assert_eq!(answer.setup, Setup::Active);
        assert_eq!(answer.ice_options, vec!["trickle".to_owned()]);
        assert_eq!(answer.payload_types, vec![111, 126]);
        assert_eq!(
            answer.opus_param("minptime"),
            Some("10"),
            "stack's fmtp kept"
        );
        assert_eq!(answer.ptime, Some(20));
        assert_eq!(answer.port, 40123);
        assert_eq!(answer.candidates.len(), 1);
        assert_eq!(answer.connection, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn reshaping_is_stable() {
        let shape_of = Shape::Offer {
            opus_pt: 111,
            dtmf_pt: 126,
        };
        let once = shape(STACK_OFFER, shape_of).unwrap();
        assert_eq!(shape(&once, shape_of).unwrap(), once);
    }

    #[test]
    fn refuses_what_cannot_describe_a_peer() {
        let no_audio = "v=0\r\ns=-\r\nt=0 0\r\n";
        let offer = Shape::Offer {
            opus_pt: 111,
            dtmf_pt: 126,
        };
        assert_eq!(shape(no_audio, offer), Err(ShapeError::NoAudio));
        let no_candidates: String = STACK_OFFER
            .lines()
            .filter(|l| !l.starts_with("a=candidate:"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(shape(&no_candidates, offer), Err(ShapeError::NoCandidate));
    }
}
