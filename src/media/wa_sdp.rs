//! SDP for the WhatsApp (Graph mode, WebRTC) leg: parse what Meta sends, build and police what we send.
//!
//! Works on SDP text and typed values only, so it does not depend on the WebRTC stack we pick.
//! Input is read leniently (LF or CRLF, stray whitespace); output is strict (CRLF, fixed line order).
//! "§n" below refers to `docs/whatsapp-calling-api.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

pub use super::wa_sdp_build::{
    build_answer, build_offer, check_local_sdp, fix_stack_answer, fix_stack_offer, LocalMedia,
    LocalRole,
};

/// Meta's SDP offer on a user-initiated call (connect webhook `session.sdp`, §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaOffer(pub MetaSdp);

/// Meta's SDP answer to our offer on a business-initiated call (connect webhook, §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaAnswer(pub MetaSdp);

impl std::ops::Deref for MetaOffer {
    type Target = MetaSdp;
    fn deref(&self) -> &MetaSdp {
        &self.0
    }
}

impl std::ops::Deref for MetaAnswer {
    type Target = MetaSdp;
    fn deref(&self) -> &MetaSdp {
        &self.0
    }
}

/// What we need from one side of a WhatsApp WebRTC session: ICE, DTLS and the single audio section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSdp {
    pub ice_lite: bool,
    pub ice_ufrag: String,
    pub ice_pwd: String,
    pub ice_options: Vec<String>,
    pub candidates: Vec<Candidate>,
    pub fingerprint: Fingerprint,
    pub setup: Setup,
    /// Mids of the session-level `a=group:BUNDLE`; empty when there is none.
    pub bundle: Vec<String>,
    pub mid: Option<String>,
    /// Port of the `m=audio` line.
    pub port: u16,
    /// Address of the `c=` line (media level wins over session level).
    pub connection: Option<IpAddr>,
    /// Payload types in `m=audio` order.
    pub payload_types: Vec<u8>,
    pub codecs: Vec<RtpMap>,
    pub opus: Opus,
    pub telephone_event: Option<TelephoneEvent>,
    pub direction: Direction,
    pub rtcp_mux: bool,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
    pub ssrcs: Vec<Ssrc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opus {
    pub pt: u8,
    /// `a=fmtp` parameters, keys lower-cased. Meta's (maxplaybackrate, maxaveragebitrate, …)
    /// describe what Meta can receive: they configure our encoder (RFC 7587 §6.1).
    pub fmtp: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub pt: u8,
    pub clock_rate: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssrc {
    pub id: u32,
    pub cname: Option<String>,
}

/// `a=fingerprint` (RFC 8122 §5); algorithm lower-cased, value as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub algorithm: String,
    pub value: String,
}

/// `a=setup` (RFC 4145 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
    HoldConn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpKind {
    Offer,
    Answer,
}

/// `a=candidate` (RFC 8839 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub foundation: String,
    pub component: u16,
    pub transport: Transport,
    pub priority: u32,
    pub address: IpAddr,
    pub port: u16,
    pub typ: CandidateType,
    pub related: Option<SocketAddr>,
    /// Trailing name/value pairs in order (`generation 0`, `network-cost 50`, `ufrag …`).
    pub extensions: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateType {
    Host,
    Srflx,
    Prflx,
    Relay,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaSdpError {
    #[error("SDP line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("SDP has no m=audio section")]
    NoAudio,
    #[error("SDP has {0} media sections; Meta uses exactly one audio section (§5.1)")]
    MediaCount(usize),
    #[error("audio m-line has port 0 (rejected stream)")]
    AudioRejected,
    #[error("audio profile {0:?} is not UDP/TLS/RTP/SAVPF (DTLS-SRTP, §0)")]
    UnsupportedProfile(String),
    #[error("no opus/48000/2 payload type on the audio m-line (§5.2)")]
    NoOpus,
    #[error("no a=ice-ufrag at session or media level")]
    NoIceUfrag,
    #[error("no a=ice-pwd at session or media level")]
    NoIcePwd,
    #[error("no a=fingerprint (\"No fingerprint found in SDP\", §5.2)")]
    NoFingerprint,
    #[error("invalid a=fingerprint {0:?}")]
    BadFingerprint(String),
    #[error("no a=setup")]
    NoSetup,
    #[error("a=setup:{found} is not valid in an {kind} (RFC 5763 §5)")]
    BadSetup { kind: SdpKind, found: Setup },
    #[error("ice-lite peer sent no candidates; it would be unreachable (RFC 8445 §2.5)")]
    NoCandidates,
    #[error("no UDP candidate; Meta's media is UDP only (§5.1)")]
    NoUdpCandidate,
    #[error("invalid candidate {value:?}: {reason}")]
    BadCandidate { value: String, reason: &'static str },
    #[error("the stack's SDP has {what} {stack:?} but ours needs {offer:?}")]
    StackMismatch {
        what: &'static str,
        stack: String,
        offer: String,
    },
    #[error("the stack's offer has no a=ssrc; Meta needs exactly one SSRC (§5.2)")]
    NoSsrc,
    #[error("rewritten answer still breaks Meta's rules: {}", .0.join("; "))]
    StillNonCompliant(Vec<String>),
}

/// Parses Meta's offer on a user-initiated call (§2.2, §5.1). Meta's setup must be `actpass`.
pub fn parse_meta_offer(sdp: &str) -> Result<MetaOffer, WaSdpError> {
    parse_sdp(sdp, SdpKind::Offer).map(MetaOffer)
}

/// Parses Meta's answer on a business-initiated call (§2.3, §5.1); setup is active (or passive).
pub fn parse_meta_answer(sdp: &str) -> Result<MetaAnswer, WaSdpError> {
    parse_sdp(sdp, SdpKind::Answer).map(MetaAnswer)
}

impl MetaSdp {
    /// Whether Meta asked for `key=value` in the Opus fmtp.
    pub fn opus_param(&self, key: &str) -> Option<&str> {
        self.opus.fmtp.get(key).map(String::as_str)
    }
}

impl fmt::Display for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::ActPass => "actpass",
            Setup::HoldConn => "holdconn",
        })
    }
}

impl Setup {
    fn parse(s: &str) -> Option<Setup> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Some(Setup::Active),
            "passive" => Some(Setup::Passive),
            "actpass" => Some(Setup::ActPass),
            "holdconn" => Some(Setup::HoldConn),
            _ => None,
        }
    }
}

impl fmt::Display for SdpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SdpKind::Offer => "offer",
            SdpKind::Answer => "answer",
        })
    }
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction an answer must carry for this offered one (RFC 3264 §6.1).
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

impl Candidate {
    /// A host candidate for our configured public address (RFC 8445 §5.1.2.1 priority, type
    /// preference 126, component 1: RTP and RTCP are muxed).
    pub fn host(foundation: &str, addr: SocketAddr, local_preference: u16) -> Candidate {
        Candidate {
            foundation: foundation.to_owned(),
            component: 1,
            transport: Transport::Udp,
            priority: (126 << 24) | (u32::from(local_preference) << 8) | (256 - 1),
            address: addr.ip(),
            port: addr.port(),
            typ: CandidateType::Host,
            related: None,
            extensions: vec![("generation".to_owned(), "0".to_owned())],
        }
    }

    /// Parses the value of an `a=candidate:` attribute (without the `candidate:` prefix).
    pub fn parse(value: &str) -> Result<Candidate, WaSdpError> {
        let bad = |reason| WaSdpError::BadCandidate {
            value: value.to_owned(),
            reason,
        };
        let f: Vec<&str> = value.split_whitespace().collect();
        if f.len() < 8 || !f[6].eq_ignore_ascii_case("typ") || !f.len().is_multiple_of(2) {
            return Err(bad(
                "expected `foundation component transport priority ip port typ type`",
            ));
        }
        let transport = match f[2].to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            other => Transport::Other(other.to_owned()),
        };
        let typ = match f[7].to_ascii_lowercase().as_str() {
            "host" => CandidateType::Host,
            "srflx" => CandidateType::Srflx,
            "prflx" => CandidateType::Prflx,
            "relay" => CandidateType::Relay,
            other => CandidateType::Other(other.to_owned()),
        };
        let (mut raddr, mut rport, mut extensions) = (None, None, Vec::new());
        for pair in f[8..].chunks(2) {
            match pair[0] {
                "raddr" => raddr = Some(pair[1].parse::<IpAddr>().map_err(|_| bad("bad raddr"))?),
                "rport" => rport = Some(pair[1].parse::<u16>().map_err(|_| bad("bad rport"))?),
                name => extensions.push((name.to_owned(), pair[1].to_owned())),
            }
        }
        Ok(Candidate {
            foundation: f[0].to_owned(),
            component: f[1].parse().map_err(|_| bad("bad component"))?,
            transport,
            priority: f[3].parse().map_err(|_| bad("bad priority"))?,
            address: f[4]
                .parse()
                .map_err(|_| bad("address is not an IP literal"))?,
            port: f[5].parse().map_err(|_| bad("bad port"))?,
            typ,
            related: raddr.zip(rport).map(|(ip, port)| SocketAddr::new(ip, port)),
            extensions,
        })
    }
}

/// The attribute value, starting with `candidate:`.
impl fmt::Display for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transport = match &self.transport {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Other(t) => t,
        };
        let typ = match &self.typ {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
            CandidateType::Other(t) => t,
        };
        write!(
            f,
            "candidate:{} {} {} {} {} {} typ {}",
            self.foundation, self.component, transport, self.priority, self.address, self.port, typ
        )?;
        if let Some(r) = self.related {
            write!(f, " raddr {} rport {}", r.ip(), r.port())?;
        }
        for (name, value) in &self.extensions {
            write!(f, " {name} {value}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Line model shared with wa_sdp_build: SDP split into session lines and media sections.

#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub no: usize,
    pub kind: char,
    pub value: &'a str,
}

impl<'a> Line<'a> {
    /// `a=name:value` → (name, value); flags such as `a=rtcp-mux` give an empty value.
    pub fn attr(&self) -> Option<(&'a str, &'a str)> {
        if self.kind != 'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (self.value.trim(), ""),
        })
    }
}

#[derive(Debug)]
pub(crate) struct RawSdp<'a> {
    pub session: Vec<Line<'a>>,
    pub media: Vec<Vec<Line<'a>>>,
}

impl<'a> RawSdp<'a> {
    pub fn parse(sdp: &'a str) -> Result<RawSdp<'a>, WaSdpError> {
        let mut raw = RawSdp {
            session: Vec::new(),
            media: Vec::new(),
        };
        for (i, text) in sdp.split('\n').enumerate() {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let mut chars = text.chars();
            let (kind, eq) = (chars.next(), chars.next());
            let kind = match (kind, eq) {
                (Some(k), Some('=')) if k.is_ascii_lowercase() => k,
                _ => {
                    let reason = format!("not a `<type>=<value>` line: {text:?}");
                    return Err(WaSdpError::Malformed {
                        line: i + 1,
                        reason,
                    });
                }
            };
            let line = Line {
                no: i + 1,
                kind,
                value: text[2..].trim(),
            };
            if kind == 'm' {
                raw.media.push(vec![line]);
            } else if let Some(m) = raw.media.last_mut() {
                m.push(line);
            } else {
                raw.session.push(line);
            }
        }
        Ok(raw)
    }

    /// Attribute values named `name`, at the session level.
    pub fn session_attrs(&self, name: &'a str) -> impl Iterator<Item = &'a str> + '_ {
        attrs(&self.session, name)
    }
}

pub(crate) fn attrs<'s, 'a: 's>(
    lines: &'s [Line<'a>],
    name: &'s str,
) -> impl Iterator<Item = &'a str> + 's {
    lines
        .iter()
        .filter_map(Line::attr)
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Media-level value, falling back to the session level (RFC 8839 §5.4, RFC 8122 §5).
pub(crate) fn media_or_session<'a>(
    raw: &RawSdp<'a>,
    media: &[Line<'a>],
    name: &str,
) -> Option<&'a str> {
    attrs(media, name)
        .next()
        .or_else(|| attrs(&raw.session, name).next())
}

/// `m=audio 9 UDP/TLS/RTP/SAVPF 111 126` → ("audio", "9", "UDP/TLS/RTP/SAVPF", ["111", "126"]).
pub(crate) fn split_mline(value: &str) -> (&str, &str, &str, Vec<&str>) {
    let mut f = value.split_whitespace();
    let (media, port, proto) = (
        f.next().unwrap_or(""),
        f.next().unwrap_or(""),
        f.next().unwrap_or(""),
    );
    (media, port, proto, f.collect())
}

/// `111 opus/48000/2` → RtpMap.
pub(crate) fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let (pt, rest) = value.split_once(char::is_whitespace)?;
    let mut parts = rest.trim().split('/');
    Some(RtpMap {
        pt: pt.parse().ok()?,
        encoding: parts.next()?.to_owned(),
        clock_rate: parts.next()?.parse().ok()?,
        channels: match parts.next() {
            Some(c) => Some(c.parse().ok()?),
            None => None,
        },
    })
}

pub(crate) fn is_opus(m: &RtpMap) -> bool {
    m.encoding.eq_ignore_ascii_case("opus") && m.clock_rate == 48000 && m.channels == Some(2)
}

pub(crate) fn is_telephone_event(m: &RtpMap) -> bool {
    m.encoding.eq_ignore_ascii_case("telephone-event")
}

/// `a=fmtp:<pt> k=v;k=v` split into pt and lower-cased params.
pub(crate) fn parse_fmtp(value: &str) -> Option<(u8, BTreeMap<String, String>)> {
    let (pt, params) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let map = params
        .split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some((pt.trim().parse().ok()?, map))
}

fn parse_fingerprint(value: &str) -> Result<Fingerprint, WaSdpError> {
    let bad = || WaSdpError::BadFingerprint(value.to_owned());
    let (alg, hex) = value.split_once(char::is_whitespace).ok_or_else(bad)?;
    let hex = hex.trim();
    let well_formed = !hex.is_empty()
        && hex
            .split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
    if !well_formed {
        return Err(bad());
    }
    Ok(Fingerprint {
        algorithm: alg.to_ascii_lowercase(),
        value: hex.to_owned(),
    })
}

fn parse_sdp(sdp: &str, kind: SdpKind) -> Result<MetaSdp, WaSdpError> {
    let raw = RawSdp::parse(sdp)?;
    let media = match raw.media.as_slice() {
        [] => return Err(WaSdpError::NoAudio),
        [one] => one,
        many => return Err(WaSdpError::MediaCount(many.len())),
    };
    let mline = media[0];
    let (media_type, port, proto, fmts) = split_mline(mline.value);
    if media_type != "audio" {
        return Err(WaSdpError::NoAudio);
    }
    let malformed = |line: Line<'_>, what: &str| WaSdpError::Malformed {
        line: line.no,
        reason: format!("bad {what}: {:?}", line.value),
    };
    let port: u16 = port.parse().map_err(|_| malformed(mline, "m-line port"))?;
    if port == 0 {
        return Err(WaSdpError::AudioRejected);
    }
    if !proto.eq_ignore_ascii_case("UDP/TLS/RTP/SAVPF")
        && !proto.eq_ignore_ascii_case("UDP/TLS/RTP/SAVP")
    {
        return Err(WaSdpError::UnsupportedProfile(proto.to_owned()));
    }
    let payload_types = fmts
        .iter()
        .map(|f| f.parse::<u8>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| malformed(mline, "m-line payload type"))?;

    let mut codecs = Vec::new();
    let mut fmtps = BTreeMap::new();
    let mut ssrcs: Vec<Ssrc> = Vec::new();
    let mut candidates = Vec::new();
    let mut direction = Direction::SendRecv; // RFC 8866 §6.7: the default
                                             // Session first so that media-level values (direction) win.
    for line in raw.session.iter().chain(media) {
        let Some((name, value)) = line.attr() else {
            continue;
        };
        match name {
            "rtpmap" => codecs.push(parse_rtpmap(value).ok_or_else(|| malformed(*line, "rtpmap"))?),
            "fmtp" => {
                let (pt, params) = parse_fmtp(value).ok_or_else(|| malformed(*line, "fmtp"))?;
                fmtps.insert(pt, params);
            }
            "candidate" => candidates.push(Candidate::parse(value)?),
            "ssrc" => {
                let (id, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
                let id: u32 = id.parse().map_err(|_| malformed(*line, "ssrc"))?;
                let cname = rest.trim().strip_prefix("cname:").map(str::to_owned);
                match ssrcs.iter_mut().find(|s| s.id == id) {
                    Some(s) => s.cname = s.cname.take().or(cname),
                    None => ssrcs.push(Ssrc { id, cname }),
                }
            }
            d => direction = Direction::parse(d).unwrap_or(direction),
        }
    }
    codecs.retain(|c| payload_types.contains(&c.pt));
    let opus = codecs
        .iter()
        .find(|c| is_opus(c))
        .ok_or(WaSdpError::NoOpus)?;
    let opus = Opus {
        pt: opus.pt,
        fmtp: fmtps.remove(&opus.pt).unwrap_or_default(),
    };
    // §5.2/§5.3: only 8000 Hz DTMF works; prefer it if several rates are offered.
    let telephone_event = codecs
        .iter()
        .filter(|c| is_telephone_event(c))
        .min_by_key(|c| c.clock_rate != 8000)
        .map(|c| TelephoneEvent {
            pt: c.pt,
            clock_rate: c.clock_rate,
        });

    let ice_lite =
        raw.session_attrs("ice-lite").next().is_some() || attrs(media, "ice-lite").next().is_some();
    if ice_lite && candidates.is_empty() {
        return Err(WaSdpError::NoCandidates);
    }
    if !candidates.is_empty() && !candidates.iter().any(|c| c.transport == Transport::Udp) {
        return Err(WaSdpError::NoUdpCandidate);
    }
    let fingerprint = parse_fingerprint(
        media_or_session(&raw, media, "fingerprint").ok_or(WaSdpError::NoFingerprint)?,
    )?;
    let setup = media_or_session(&raw, media, "setup").ok_or(WaSdpError::NoSetup)?;
    let setup = Setup::parse(setup).ok_or(WaSdpError::NoSetup)?;
    // RFC 5763 §5: the offerer says actpass, the answerer picks active or passive.
    let setup_ok = match kind {
        SdpKind::Offer => setup == Setup::ActPass,
        SdpKind::Answer => matches!(setup, Setup::Active | Setup::Passive),
    };
    if !setup_ok {
        return Err(WaSdpError::BadSetup { kind, found: setup });
    }
    let num = |name: &str| media_or_session(&raw, media, name).and_then(|v| v.parse::<u32>().ok());
    let connection = media
        .iter()
        .chain(&raw.session)
        .find(|l| l.kind == 'c')
        .and_then(|l| l.value.split_whitespace().nth(2))
        .and_then(|a| a.split('/').next()?.parse().ok());
    let mid = attrs(media, "mid").next().map(str::to_owned);
    let sdp = MetaSdp {
        ice_lite,
        ice_ufrag: media_or_session(&raw, media, "ice-ufrag")
            .ok_or(WaSdpError::NoIceUfrag)?
            .to_owned(),
        ice_pwd: media_or_session(&raw, media, "ice-pwd")
            .ok_or(WaSdpError::NoIcePwd)?
            .to_owned(),
        ice_options: media_or_session(&raw, media, "ice-options")
            .map(|o| o.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        candidates,
        fingerprint,
        setup,
        bundle: raw
            .session_attrs("group")
            .find_map(|g| g.strip_prefix("BUNDLE"))
            .map(|mids| mids.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        mid,
        port,
        connection,
        payload_types,
        codecs,
        opus,
        telephone_event,
        direction,
        rtcp_mux: attrs(media, "rtcp-mux").next().is_some(),
        ptime: num("ptime"),
        maxptime: num("maxptime"),
        ssrcs,
    };
    Ok(sdp)
}

/// SDP texts shared by the tests of this module and of wa_sdp_build.
#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;
