//! The SDP we send to Meta: our answer (pre_accept/accept, §2.2), our offer (business-initiated,
//! §2.3), a checker for Meta's rules (§5.2) and a fixer for what a WebRTC stack generates.
//! Reached through `crate::media::wa_sdp`.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::wa_sdp::{
    attrs, is_opus, is_telephone_event, media_or_session, parse_rtpmap, split_mline, Candidate,
    Direction, Fingerprint, Line, MetaOffer, RawSdp, Setup, Transport, WaSdpError,
};

/// §5.2: Meta requires 20 ms packets.
const PTIME_MS: u32 = 20;
/// Our offer uses the payload types and mid Meta itself uses (§5.1).
const OFFER_OPUS_PT: u8 = 111;
const OFFER_DTMF_PT: u8 = 126;
const OFFER_MID: &str = "audio";
const PROFILE: &str = "UDP/TLS/RTP/SAVPF";

/// Our side of the WebRTC session, for our answer (user-initiated calls) and our offer
/// (business-initiated). `candidates` are our host candidates (config public address and port);
/// empty is allowed, see §5.4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub ice_ufrag: String,
    pub ice_pwd: String,
    pub fingerprint: Fingerprint,
    pub candidates: Vec<Candidate>,
    pub ssrc: u32,
    pub cname: String,
    pub session_id: u64,
}

/// What the SDP given to [`check_local_sdp`] is.
#[derive(Debug, Clone, Copy)]
pub enum LocalRole<'a> {
    /// Our offer on a business-initiated call.
    Offer,
    /// Our answer to this Meta offer.
    AnswerTo(&'a MetaOffer),
}

/// Our answer to Meta's offer. A pure function of its inputs: build it once and send the same
/// text in pre_accept and accept ("accept SDP must equal pre_accept", §8.1).
pub fn build_answer(offer: &MetaOffer, local: &LocalMedia) -> String {
    let plan = Plan {
        mid: offer.mid.as_deref(),
        // RFC 8843 §7.3: an answer only bundles what the offer bundled.
        bundle: offer.mid.as_ref().is_some_and(|m| offer.bundle.contains(m)),
        // §5.2, §8.4: we are the DTLS client; passive lost audio in FreeSWITCH #2904/#2545.
        setup: Setup::Active,
        direction: offer.direction.answer(),
        opus_pt: offer.opus.pt,
        opus_fmtp: answer_opus_fmtp(offer),
        // RFC 3264 §6.1: only offered formats; §5.2/§5.3: only the 8000 Hz one.
        dtmf_pt: offer
            .telephone_event
            .filter(|t| t.clock_rate == 8000)
            .map(|t| t.pt),
    };
    render(local, &plan)
}

/// Our offer on a business-initiated call. RFC 5763 §5: the offerer says `actpass`; Meta answers
/// `active` (§5.1). Full ICE against Meta's ice-lite makes us controlling (RFC 8445 §6.1.1), as §5.2 asks.
pub fn build_offer(local: &LocalMedia) -> String {
    offer_with_mid(local, OFFER_MID)
}

/// Our offer rebuilt from what the WebRTC stack generated: its ICE credentials, fingerprint,
/// host candidates, first SSRC and mid go into [`build_offer`]'s text, so Meta gets an offer
/// that follows §5.2 (ptime, one SSRC, telephone-event/8000, CRLF) and the stack can still
/// match Meta's answer to its own transceiver. The stack's media engine must hold Opus and
/// telephone-event at the payload types our offer names (111 and 126, Meta's own).
pub fn fix_stack_offer(stack_sdp: &str) -> Result<String, WaSdpError> {
    let stack = super::wa_sdp::parse_meta_offer(stack_sdp)?;
    let mismatch = |what, stack: String, ours: u8| WaSdpError::StackMismatch {
        what,
        stack,
        offer: ours.to_string(),
    };
    if stack.opus.pt != OFFER_OPUS_PT {
        return Err(mismatch("opus payload type", stack.opus.pt.to_string(), OFFER_OPUS_PT));
    }
    let dtmf = stack.telephone_event.filter(|t| t.clock_rate == 8000);
    if dtmf.map(|t| t.pt) != Some(OFFER_DTMF_PT) {
        let got = dtmf.map_or("none".to_owned(), |t| t.pt.to_string());
        return Err(mismatch("telephone-event/8000 payload type", got, OFFER_DTMF_PT));
    }
    let ssrc = stack.ssrcs.first().ok_or(WaSdpError::NoSsrc)?;
    let session_id = RawSdp::parse(stack_sdp)?
        .session
        .iter()
        .find(|l| l.kind == 'o')
        .and_then(|l| l.value.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(1);
    let local = LocalMedia {
        ice_ufrag: stack.ice_ufrag.clone(),
        ice_pwd: stack.ice_pwd.clone(),
        fingerprint: stack.fingerprint.clone(),
        candidates: stack.candidates.clone(),
        ssrc: ssrc.id,
        cname: ssrc.cname.clone().unwrap_or_else(|| "whatsip".to_owned()),
        session_id,
    };
    Ok(offer_with_mid(&local, stack.mid.as_deref().unwrap_or(OFFER_MID)))
}

fn offer_with_mid(local: &LocalMedia, mid: &str) -> String {
    let plan = Plan {
        mid: Some(mid),
        bundle: true,
        setup: Setup::ActPass,
        direction: Direction::SendRecv,
        opus_pt: OFFER_OPUS_PT,
        opus_fmtp: "minptime=10;useinbandfec=1".to_owned(),
        // §5.2: offer telephone-event/8000 explicitly for business-initiated calls.
        dtmf_pt: Some(OFFER_DTMF_PT),
    };
    render(local, &plan)
}

/// Every way `sdp`, which we are about to send, breaks Meta's rules (§5.2) or the offer/answer
/// rules against Meta's offer. Run it on whatever the WebRTC stack produces.
pub fn check_local_sdp(sdp: &str, role: LocalRole<'_>) -> Result<(), Vec<String>> {
    let mut bad = Vec::new();
    let without_crlf = sdp.replace("\r\n", "");
    if without_crlf.contains('\n') || without_crlf.contains('\r') {
        bad.push("line endings must be CRLF (RFC 8866 §5)".to_owned());
    }
    if !sdp.ends_with("\r\n") {
        bad.push("the last line must end with CRLF (RFC 8866 §5)".to_owned());
    }
    let raw = match RawSdp::parse(sdp) {
        Ok(raw) => raw,
        Err(e) => {
            bad.push(e.to_string());
            return Err(bad);
        }
    };
    if raw.session.first().map(|l| (l.kind, l.value)) != Some(('v', "0")) {
        bad.push("the first line must be v=0".to_owned());
    }
    let media = match raw.media.as_slice() {
        [one] => one,
        other => {
            bad.push(format!(
                "{} media sections; Meta takes exactly one audio section (§5.1)",
                other.len()
            ));
            return Err(bad);
        }
    };
    let offer = match role {
        LocalRole::AnswerTo(offer) => Some(offer),
        LocalRole::Offer => None,
    };
    let (kind, port, proto, fmts) = split_mline(media[0].value);
    if kind != "audio" {
        bad.push(format!("m={kind}: the only section must be audio (§5.1)"));
    }
    if port == "0" {
        bad.push("audio port 0 rejects the call's only stream".to_owned());
    }
    if proto != PROFILE {
        bad.push(format!(
            "profile {proto:?} must be {PROFILE} (DTLS-SRTP, §0)"
        ));
    }
    check_codecs(media, &fmts, offer, &mut bad);

    match attrs(media, "ptime").next() {
        None => bad.push("missing a=ptime:20 (§5.2)".to_owned()),
        Some(p) if p.parse() != Ok(PTIME_MS) => bad.push(format!("a=ptime:{p} must be 20 (§5.2)")),
        Some(_) => {}
    }
    let mut ssrcs: Vec<&str> = attrs(media, "ssrc")
        .filter_map(|v| v.split_whitespace().next())
        .collect();
    ssrcs.dedup();
    if ssrcs.len() > 1 {
        bad.push(format!(
            "{} SSRCs ({}); Meta needs a single SSRC (§5.2)",
            ssrcs.len(),
            ssrcs.join(", ")
        ));
    }
    if attrs(media, "ssrc-group").next().is_some() {
        bad.push("a=ssrc-group announces a second SSRC (§5.2)".to_owned());
    }
    if media_or_session(&raw, media, "fingerprint").is_none() {
        bad.push("missing a=fingerprint (\"No fingerprint found in SDP\", §5.2)".to_owned());
    }
    // RFC 8839 §5.4: ufrag 4..=256 and pwd 22..=256 characters.
    match media_or_session(&raw, media, "ice-ufrag") {
        None => bad.push("missing a=ice-ufrag".to_owned()),
        Some(u) if !(4..=256).contains(&u.len()) => bad.push(format!(
            "ice-ufrag {u:?} must be 4-256 chars (RFC 8839 §5.4)"
        )),
        Some(_) => {}
    }
    match media_or_session(&raw, media, "ice-pwd") {
        None => bad.push("missing a=ice-pwd".to_owned()),
        Some(p) if !(22..=256).contains(&p.len()) => {
            bad.push("ice-pwd must be 22-256 chars (RFC 8839 §5.4)".to_owned())
        }
        Some(_) => {}
    }
    if raw.session_attrs("ice-lite").next().is_some() || attrs(media, "ice-lite").next().is_some() {
        bad.push("a=ice-lite: we must run full ICE as controlling agent (§5.2)".to_owned());
    }
    let want_setup = if offer.is_some() { "active" } else { "actpass" };
    match media_or_session(&raw, media, "setup") {
        Some(s) if s == want_setup => {}
        found => bad.push(format!(
            "a=setup:{} must be {want_setup} (§5.2, §8.4; RFC 5763 §5)",
            found.unwrap_or("<none>")
        )),
    }
    if attrs(media, "rtcp-mux").next().is_none() {
        bad.push("missing a=rtcp-mux (§5.1)".to_owned());
    }
    let mid = attrs(media, "mid").next();
    let want_bundle = offer.is_none_or(|o| o.mid.as_ref().is_some_and(|m| o.bundle.contains(m)));
    if let Some(o) = offer {
        if mid != o.mid.as_deref() {
            bad.push(format!(
                "a=mid {mid:?} must echo the offer's {:?} (RFC 5888 §9.1)",
                o.mid
            ));
        }
    }
    let bundled = raw
        .session_attrs("group")
        .filter_map(|g| g.strip_prefix("BUNDLE"))
        .any(|m| m.split_whitespace().any(|m| Some(m) == mid));
    if want_bundle && !bundled {
        bad.push(format!(
            "missing a=group:BUNDLE {} (§5.1)",
            mid.unwrap_or("<mid>")
        ));
    }
    let want_dir = offer.map_or(Direction::SendRecv, |o| o.direction.answer());
    let dir = media
        .iter()
        .filter_map(Line::attr)
        .find_map(|(n, _)| Direction::parse(n))
        .unwrap_or(Direction::SendRecv);
    if dir != want_dir {
        bad.push(format!(
            "a={} must be a={}",
            dir.as_str(),
            want_dir.as_str()
        ));
    }
    if !media.iter().chain(&raw.session).any(|l| l.kind == 'c') {
        bad.push("missing c= line (RFC 8866 §5.7)".to_owned());
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad)
    }
}

/// Rewrites a stack-generated answer to Meta's rules: setup active, ptime 20, only Opus and
/// telephone-event/8000 at the offered payload types, one SSRC, BUNDLE, CRLF. ICE credentials,
/// candidates and fingerprint stay as the stack made them.
///
/// This fixes text only. The stack must agree with it: run it as DTLS client (webrtc-rs:
/// `SettingEngine::set_answering_dtls_role(DTLSRole::Client)`), sending 20 ms frames, and
/// accepting PT 126 if it dropped it — otherwise both sides wait as DTLS servers, or DTMF is lost.
pub fn fix_stack_answer(stack_sdp: &str, offer: &MetaOffer) -> Result<String, WaSdpError> {
    let raw = RawSdp::parse(stack_sdp)?;
    let media = match raw.media.as_slice() {
        [] => return Err(WaSdpError::NoAudio),
        [one] => one,
        many => return Err(WaSdpError::MediaCount(many.len())),
    };
    let (kind, port, _, _) = split_mline(media[0].value);
    if kind != "audio" {
        return Err(WaSdpError::NoAudio);
    }
    // The stack sends with the PT it negotiated; renumbering it here would break media.
    let stack_opus = attrs(media, "rtpmap")
        .filter_map(parse_rtpmap)
        .find(is_opus)
        .ok_or(WaSdpError::NoOpus)?;
    if stack_opus.pt != offer.opus.pt {
        return Err(WaSdpError::StackMismatch {
            what: "opus payload type",
            stack: stack_opus.pt.to_string(),
            offer: offer.opus.pt.to_string(),
        });
    }
    let stack_mid = attrs(media, "mid").next();
    if let (Some(s), Some(o)) = (stack_mid, offer.mid.as_deref()) {
        if s != o {
            return Err(WaSdpError::StackMismatch {
                what: "mid",
                stack: s.to_owned(),
                offer: o.to_owned(),
            });
        }
    }
    let dtmf_pt = offer
        .telephone_event
        .filter(|t| t.clock_rate == 8000)
        .map(|t| t.pt);
    let keep_pt = |pt: Option<u8>| pt.is_some_and(|pt| pt == offer.opus.pt || Some(pt) == dtmf_pt);
    let first_ssrc = attrs(media, "ssrc").find_map(|v| v.split_whitespace().next());

    let mut out = Vec::<String>::new();
    for l in raw.session.iter().filter(|l| l.kind != 'a') {
        out.push(format!("{}={}", l.kind, l.value));
    }
    if let Some(mid) = offer.mid.as_ref().filter(|m| offer.bundle.contains(m)) {
        out.push(format!("a=group:BUNDLE {mid}"));
    }
    for l in &raw.session {
        match l.attr() {
            Some(("group" | "ice-lite", _)) | None => {}
            Some(("setup", _)) => out.push("a=setup:active".to_owned()),
            Some(_) => out.push(format!("a={}", l.value)),
        }
    }
    let fmts: Vec<String> = std::iter::once(offer.opus.pt)
        .chain(dtmf_pt)
        .map(|pt| pt.to_string())
        .collect();
    out.push(format!("m=audio {port} {PROFILE} {}", fmts.join(" ")));
    if stack_mid.is_none() {
        if let Some(mid) = &offer.mid {
            out.push(format!("a=mid:{mid}"));
        }
    }
    let mut has_dtmf_map = false;
    for l in &media[1..] {
        let Some((name, value)) = l.attr() else {
            out.push(format!("{}={}", l.kind, l.value));
            continue;
        };
        let pt = value
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .and_then(|p| p.parse::<u8>().ok());
        match name {
            "rtpmap" | "fmtp" | "rtcp-fb" if value.starts_with('*') => {
                out.push(format!("a={}", l.value))
            }
            "rtpmap" if keep_pt(pt) && pt == dtmf_pt => {
                has_dtmf_map = true;
                out.push(format!(
                    "a=rtpmap:{} telephone-event/8000",
                    pt.unwrap_or_default()
                ));
            }
            "rtpmap" | "fmtp" | "rtcp-fb" if !keep_pt(pt) => {}
            "ssrc" if value.split_whitespace().next() != first_ssrc => {}
            "ssrc-group" | "ptime" | "ice-lite" => {}
            "setup" => out.push("a=setup:active".to_owned()),
            n if Direction::parse(n).is_some() => {}
            _ => out.push(format!("a={}", l.value)),
        }
    }
    out.push(format!("a={}", offer.direction.answer().as_str()));
    if attrs(media, "rtcp-mux").next().is_none() {
        out.push("a=rtcp-mux".to_owned());
    }
    if let (Some(pt), false) = (dtmf_pt, has_dtmf_map) {
        out.push(format!("a=rtpmap:{pt} telephone-event/8000"));
    }
    if media_or_session(&raw, media, "setup").is_none() {
        out.push("a=setup:active".to_owned());
    }
    out.push(format!("a=ptime:{PTIME_MS}"));
    let mut sdp = out.join("\r\n");
    sdp.push_str("\r\n");
    check_local_sdp(&sdp, LocalRole::AnswerTo(offer)).map_err(WaSdpError::StillNonCompliant)?;
    Ok(sdp)
}

struct Plan<'a> {
    mid: Option<&'a str>,
    bundle: bool,
    setup: Setup,
    direction: Direction,
    opus_pt: u8,
    opus_fmtp: String,
    dtmf_pt: Option<u8>,
}

/// RFC 7587 §6.1: Opus fmtp parameters describe what the *sender of the SDP* receives, so we echo
/// only what holds for us too. `minptime`: Meta's value, as Meta's own sample answer does (§5.4);
/// we still send 20 ms (§5.2). `useinbandfec=1`: FEC is in-band, so it costs us nothing to ask for
/// and helps on lossy mobile legs. Not echoed: maxplaybackrate, sprop-maxcapturerate,
/// maxaveragebitrate — they describe Meta's side and configure our encoder instead.
fn answer_opus_fmtp(offer: &MetaOffer) -> String {
    match offer.opus_param("minptime") {
        Some(minptime) => format!("minptime={minptime};useinbandfec=1"),
        None => "useinbandfec=1".to_owned(),
    }
}

/// Lines in a fixed order so the same inputs always give the same bytes (§8.1).
fn render(local: &LocalMedia, plan: &Plan<'_>) -> String {
    let mut out = String::with_capacity(1024);
    macro_rules! sdp_line {
        ($($arg:tt)*) => {{
            out.write_fmt(format_args!($($arg)*)).expect("writing to a String cannot fail");
            out.push_str("\r\n");
        }};
    }
    // RFC 8839 §4.2.1.2: m=/c= carry the default candidate. With none, port 9 and 0.0.0.0, as in
    // Meta's sample (§5.4): we start the checks and Meta learns us as peer-reflexive.
    let default = local
        .candidates
        .iter()
        .filter(|c| c.transport == Transport::Udp && c.component == 1)
        .min_by_key(|c| !c.address.is_ipv4());
    let (port, addr) = default.map_or((9, IpAddr::from([0, 0, 0, 0])), |c| (c.port, c.address));
    let family = if addr.is_ipv4() { "IP4" } else { "IP6" };

    sdp_line!("v=0");
    // The version never changes: there is no renegotiation with Meta (§5.2).
    sdp_line!("o=- {} 2 IN IP4 127.0.0.1", local.session_id);
    sdp_line!("s=-");
    sdp_line!("t=0 0");
    if let (true, Some(mid)) = (plan.bundle, plan.mid) {
        sdp_line!("a=group:BUNDLE {mid}");
    }
    let fmts = std::iter::once(plan.opus_pt)
        .chain(plan.dtmf_pt)
        .map(|pt| pt.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    sdp_line!("m=audio {port} {PROFILE} {fmts}");
    sdp_line!("c=IN {family} {addr}");
    if let Some(mid) = plan.mid {
        sdp_line!("a=mid:{mid}");
    }
    sdp_line!("a=ice-ufrag:{}", local.ice_ufrag);
    sdp_line!("a=ice-pwd:{}", local.ice_pwd);
    sdp_line!(
        "a=fingerprint:{} {}",
        local.fingerprint.algorithm,
        local.fingerprint.value
    );
    sdp_line!("a=setup:{}", plan.setup);
    sdp_line!("a={}", plan.direction.as_str());
    sdp_line!("a=rtcp-mux");
    sdp_line!("a=rtpmap:{} opus/48000/2", plan.opus_pt);
    sdp_line!("a=fmtp:{} {}", plan.opus_pt, plan.opus_fmtp);
    if let Some(pt) = plan.dtmf_pt {
        sdp_line!("a=rtpmap:{pt} telephone-event/8000");
    }
    sdp_line!("a=ptime:{PTIME_MS}");
    // §5.2: exactly one SSRC; Meta's relay rewrites it and several corrupt the stream.
    sdp_line!("a=ssrc:{} cname:{}", local.ssrc, local.cname);
    // No a=end-of-candidates: we do not trickle (§5.2) and non-trickle SDP omits it (RFC 8840 §4.1).
    for c in &local.candidates {
        sdp_line!("a={c}");
    }
    out
}

fn check_codecs(
    media: &[Line<'_>],
    fmts: &[&str],
    offer: Option<&MetaOffer>,
    bad: &mut Vec<String>,
) {
    let maps: Vec<_> = attrs(media, "rtpmap").filter_map(parse_rtpmap).collect();
    let (mut opus_pt, mut dtmf_pt) = (None, None);
    for f in fmts {
        match maps.iter().find(|m| m.pt.to_string() == *f) {
            None => bad.push(format!("payload type {f} has no a=rtpmap")),
            Some(m) if is_opus(m) => opus_pt = Some(m.pt),
            Some(m) if is_telephone_event(m) && m.clock_rate == 8000 => dtmf_pt = Some(m.pt),
            Some(m) if is_telephone_event(m) => {
                bad.push(format!(
                    "telephone-event/{} must be /8000 (§5.2, §5.3)",
                    m.clock_rate
                ));
            }
            Some(m) => bad.push(format!(
                "extra codec {} {}/{}: only Opus and telephone-event (§5.2)",
                m.pt, m.encoding, m.clock_rate
            )),
        }
    }
    let (want_opus, want_dtmf) = match offer {
        Some(o) => (
            Some(o.opus.pt),
            o.telephone_event
                .filter(|t| t.clock_rate == 8000)
                .map(|t| t.pt),
        ),
        None => (None, Some(dtmf_pt.unwrap_or(OFFER_DTMF_PT))),
    };
    match (opus_pt, want_opus) {
        (None, _) => bad.push("no opus/48000/2 (§5.2)".to_owned()),
        (Some(pt), Some(want)) if pt != want => {
            bad.push(format!("opus PT {pt} must be the offered {want}"))
        }
        _ => {}
    }
    match (dtmf_pt, want_dtmf) {
        (None, Some(want)) => bad.push(format!("missing telephone-event/8000 at PT {want} (§5.2)")),
        (Some(pt), Some(want)) if pt != want => bad.push(format!(
            "telephone-event PT {pt} must be the offered {want}"
        )),
        (Some(pt), None) => bad.push(format!(
            "telephone-event PT {pt} was not offered (RFC 3264 §6.1)"
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
