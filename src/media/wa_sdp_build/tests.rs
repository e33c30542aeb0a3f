use crate::media::wa_sdp::fixtures::*;
use crate::media::wa_sdp::{parse_meta_answer, parse_meta_offer, Ssrc, TelephoneEvent};
use super::*;

const FP: &str = "sha-256 4F:2A:91:0C:77:E3:5D:18:B6:C9:A0:3E:52:F7:11:8D:6B:04:CE:95:27:D1:7A:E8:33:5F:90:2B:C4:66:1E:A7";

fn params() -> LocalMedia {
    LocalMedia {
        ice_ufrag: "WhIp".into(),
        ice_pwd: "0123456789abcdefghijkl".into(),
        fingerprint: Fingerprint {
            algorithm: "sha-256".into(),
            value: FP[8..].into(),
        },
        candidates: vec![
            Candidate::host("1", "203.0.113.5:40000".parse().unwrap(), 65535),
            Candidate::host("2", "[2001:db8::5]:40000".parse().unwrap(), 65534),
        ],
        ssrc: 12345,
        cname: "whatsip".into(),
        session_id: 42,
    }
}

fn offer() -> MetaOffer {
    parse_meta_offer(META_OFFER).unwrap()
}

const WEBRTC_RS_ANSWER: &str = "v=0\r\no=- 8451340954166454137 859874016 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
a=fingerprint:sha-256 4F:2A:91:0C:77:E3:5D:18:B6:C9:A0:3E:52:F7:11:8D:6B:04:CE:95:27:D1:7A:E8:33:5F:90:2B:C4:66:1E:A7\r\n\
a=extmap-allow-mixed\r\na=group:BUNDLE audio\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP4 0.0.0.0\r\n\
a=setup:active\r\na=mid:audio\r\na=ice-ufrag:kPqfUzWtnHdtGmXm\r\na=ice-pwd:hHkjVFWNYpZzKOxKwZvlRKWWsGQzbNje\r\n\
a=rtcp-mux\r\na=rtcp-rsize\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtcp-fb:111 transport-cc\r\na=rtpmap:126 telephone-event/8000\r\n\
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n\
a=ssrc:3735928559 cname:webrtc-rs\r\na=ssrc:3735928559 msid:webrtc-rs audio\r\na=ssrc:3735928559 mslabel:webrtc-rs\r\n\
a=ssrc:3735928559 label:audio\r\na=msid:webrtc-rs audio\r\na=sendrecv\r\n\
a=candidate:167090039 1 udp 2130706431 203.0.113.5 40000 typ host\r\na=end-of-candidates\r\n";

const STR0M_ANSWER: &str = "v=0
o=str0m-1873 4411839 2 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE audio
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Zs3u
a=ice-pwd:c6kM0pbRQwzJXKz9s1bJ2i
a=ice-options:trickle
a=fingerprint:sha-256 9C:41:0E:7B:55:D2:1F:A8:63:C0:4B:E9:27:8A:D5:10:3F:B6:72:0D:E4:9A:51:C8:26:7F:B3:0E:95:4D:A1:68
a=setup:passive
a=mid:audio
a=sendrecv
a=msid:a1b2 c3d4
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;maxplaybackrate=48000;stereo=0;useinbandfec=1
a=ssrc:2891012743 cname:f81d4fae7dec11d0
a=candidate:0 1 udp 2130706175 203.0.113.5 40000 typ host
";

#[test]
fn answer_to_meta_sample_is_exact() {
    let want = "v=0\r\no=- 42 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE audio\r\n\
m=audio 40000 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP4 203.0.113.5\r\na=mid:audio\r\n\
a=ice-ufrag:WhIp\r\na=ice-pwd:0123456789abcdefghijkl\r\na=fingerprint:"
        .to_owned()
        + FP
        + "\r\na=setup:active\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:126 telephone-event/8000\r\na=ptime:20\r\n\
a=ssrc:12345 cname:whatsip\r\n\
a=candidate:1 1 udp 2130706431 203.0.113.5 40000 typ host generation 0\r\n\
a=candidate:2 1 udp 2130706175 2001:db8::5 40000 typ host generation 0\r\n";
    let got = build_answer(&offer(), &params());
    assert_eq!(got, want);
    assert_eq!(check_local_sdp(&got, LocalRole::AnswerTo(&offer())), Ok(()));
    // §8.1: pre_accept and accept must carry the identical SDP.
    assert_eq!(got, build_answer(&offer(), &params()));
}

#[test]
fn answer_round_trips_through_our_parser() {
    let p = params();
    let a = parse_meta_answer(&build_answer(&offer(), &p)).unwrap();
    assert!(!a.ice_lite);
    assert_eq!(
        (a.setup, a.ice_ufrag.as_str(), a.ice_pwd.as_str()),
        (Setup::Active, "WhIp", p.ice_pwd.as_str())
    );
    assert_eq!(a.fingerprint, p.fingerprint);
    assert_eq!(a.candidates, p.candidates);
    assert_eq!(
        (a.opus.pt, a.telephone_event),
        (
            111,
            Some(TelephoneEvent {
                pt: 126,
                clock_rate: 8000
            })
        )
    );
    assert_eq!(
        (a.ptime, a.rtcp_mux, a.mid.as_deref(), a.bundle.clone()),
        (Some(20), true, Some("audio"), vec!["audio".to_owned()])
    );
    assert_eq!(
        a.ssrcs,
        vec![Ssrc {
            id: 12345,
            cname: Some("whatsip".into())
        }]
    );
    assert_eq!(a.payload_types, vec![111, 126]);
}

#[test]
fn answer_follows_the_offer() {
    // Non-default PTs and mid, no minptime, sendonly offer.
    let odd = offer_with("SAVPF 111 126", "SAVPF 109 101")
        .replace(":111", ":109")
        .replace(":126", ":101")
        .replace("minptime=10;", "")
        .replace("mid:audio", "mid:0")
        .replace("BUNDLE audio", "BUNDLE 0")
        .replace("a=sendrecv", "a=sendonly");
    let o = parse_meta_offer(&odd).unwrap();
    let sdp = build_answer(&o, &params());
    assert!(
        sdp.contains("m=audio 40000 UDP/TLS/RTP/SAVPF 109 101\r\n"),
        "{sdp}"
    );
    assert!(sdp.contains("a=rtpmap:109 opus/48000/2\r\na=fmtp:109 useinbandfec=1\r\na=rtpmap:101 telephone-event/8000\r\n"));
    assert!(
        sdp.contains("a=mid:0\r\n")
            && sdp.contains("a=group:BUNDLE 0\r\n")
            && sdp.contains("a=recvonly\r\n")
    );
    assert_eq!(check_local_sdp(&sdp, LocalRole::AnswerTo(&o)), Ok(()));

    // No telephone-event offered, or only at 48 kHz: none in the answer (RFC 3264 §6.1, §5.2).
    for no_dtmf in [
        offer_with("SAVPF 111 126", "SAVPF 111"),
        offer_with("event/8000", "event/48000"),
    ] {
        let o = parse_meta_offer(&no_dtmf).unwrap();
        let sdp = build_answer(&o, &params());
        assert!(
            sdp.contains("SAVPF 111\r\n") && !sdp.contains("telephone-event"),
            "{sdp}"
        );
        assert_eq!(check_local_sdp(&sdp, LocalRole::AnswerTo(&o)), Ok(()));
    }

    // Newer offer: echo minptime=20, not Meta's playback/capture limits.
    let o = parse_meta_offer(META_OFFER_2025).unwrap();
    let sdp = build_answer(&o, &params());
    assert!(
        sdp.contains("a=fmtp:111 minptime=20;useinbandfec=1\r\n"),
        "{sdp}"
    );
    assert!(!sdp.contains("maxplaybackrate"));
}

#[test]
fn answer_without_candidates_or_with_ipv6_only() {
    let mut p = params();
    p.candidates.clear();
    let sdp = build_answer(&offer(), &p);
    assert!(
        sdp.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP4 0.0.0.0\r\n"),
        "{sdp}"
    );
    assert!(
        !sdp.contains("a=candidate")
            && !sdp.contains("end-of-candidates")
            && !sdp.contains("ice-lite")
    );
    assert!(parse_meta_answer(&sdp).unwrap().candidates.is_empty());
    p.candidates = vec![Candidate::host(
        "2",
        "[2001:db8::5]:41000".parse().unwrap(),
        65535,
    )];
    let sdp = build_answer(&offer(), &p);
    assert!(
        sdp.contains("m=audio 41000 UDP/TLS/RTP/SAVPF 111 126\r\nc=IN IP6 2001:db8::5\r\n"),
        "{sdp}"
    );
}

#[test]
fn offer_is_what_meta_expects_and_round_trips() {
    let sdp = build_offer(&params());
    assert!(
        sdp.contains("a=group:BUNDLE audio\r\nm=audio 40000 UDP/TLS/RTP/SAVPF 111 126\r\n"),
        "{sdp}"
    );
    assert!(
        sdp.contains("a=setup:actpass\r\n")
            && sdp.contains("a=ptime:20\r\n")
            && sdp.contains("a=rtcp-mux\r\n")
    );
    assert!(sdp.contains("a=rtpmap:126 telephone-event/8000\r\n") && !sdp.contains("ice-lite"));
    assert_eq!(check_local_sdp(&sdp, LocalRole::Offer), Ok(()));
    let o = parse_meta_offer(&sdp).unwrap();
    assert_eq!(
        (o.opus.pt, o.telephone_event.map(|t| t.pt), o.mid.as_deref()),
        (111, Some(126), Some("audio"))
    );
    assert_eq!(o.candidates, params().candidates);
    // Our answer to our own offer is compliant too.
    assert_eq!(
        check_local_sdp(&build_answer(&o, &params()), LocalRole::AnswerTo(&o)),
        Ok(())
    );
    let active = sdp.replace("setup:actpass", "setup:active");
    assert!(check_local_sdp(&active, LocalRole::Offer).unwrap_err()[0].contains("actpass"));
    let no_dtmf = sdp
        .replace(" 111 126", " 111")
        .replace("a=rtpmap:126 telephone-event/8000\r\n", "");
    assert!(
        check_local_sdp(&no_dtmf, LocalRole::Offer).unwrap_err()[0].contains("telephone-event")
    );
}

#[test]
fn checker_lists_every_deviation() {
    let good = build_answer(&offer(), &params());
    let bad = good
        .replace("\r\n", "\n")
        .replace("a=ptime:20\n", "")
        .replace("setup:active", "setup:passive")
        .replace("SAVPF 111 126", "SAVPF 111 0 126")
        .replace("a=rtpmap:126", "a=rtpmap:0 PCMU/8000\na=rtpmap:126")
        .replace(
            "a=ssrc:12345 cname:whatsip",
            "a=ssrc:12345 cname:whatsip\na=ssrc:999 cname:whatsip\na=ssrc-group:FID 12345 999",
        )
        .replace("a=group:BUNDLE audio\n", "")
        .replace("a=rtcp-mux\n", "a=ice-lite\n");
    let problems = check_local_sdp(&bad, LocalRole::AnswerTo(&offer())).unwrap_err();
    let text = problems.join("\n");
    for needle in [
        "CRLF",
        "ptime",
        "setup:passive",
        "extra codec 0 PCMU",
        "2 SSRCs",
        "ssrc-group",
        "BUNDLE",
        "rtcp-mux",
        "ice-lite",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    assert_eq!(problems.len(), 10, "{text}");
}

#[test]
fn checker_compares_with_the_offer() {
    let good = build_answer(&offer(), &params());
    let cases = [
        (
            good.replace(" 111 126", " 111 101")
                .replace("rtpmap:126", "rtpmap:101"),
            "telephone-event PT 101 must be the offered 126",
        ),
        (
            good.replace(" 111 126", " 109 126").replace(":111", ":109"),
            "opus PT 109 must be the offered 111",
        ),
        (good.replace("event/8000", "event/48000"), "must be /8000"),
        (good.replace("a=mid:audio", "a=mid:0"), "must echo"),
        (
            good.replace("a=sendrecv", "a=recvonly"),
            "a=recvonly must be a=sendrecv",
        ),
        (good.replace("a=fingerprint:", "a=x:"), "fingerprint"),
        (good.replace("a=ice-ufrag:WhIp", "a=ice-ufrag:W"), "4-256"),
        (
            good.replace("a=ptime:20", "a=ptime:10"),
            "a=ptime:10 must be 20",
        ),
        (good.replace("UDP/TLS/RTP/SAVPF", "RTP/SAVPF"), "profile"),
        (
            format!("{good}m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"),
            "2 media sections",
        ),
        (good.trim_end().to_owned(), "last line"),
    ];
    for (sdp, needle) in cases {
        let problems = check_local_sdp(&sdp, LocalRole::AnswerTo(&offer())).unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{needle:?} not in {problems:?}"
        );
    }
}

#[test]
fn fixes_webrtc_rs_like_answer() {
    let problems =
        check_local_sdp(WEBRTC_RS_ANSWER, LocalRole::AnswerTo(&offer())).unwrap_err();
    assert_eq!(problems, vec!["missing a=ptime:20 (§5.2)".to_owned()]);
    let fixed = fix_stack_answer(WEBRTC_RS_ANSWER, &offer()).unwrap();
    assert_eq!(
        check_local_sdp(&fixed, LocalRole::AnswerTo(&offer())),
        Ok(())
    );
    // Everything else is kept as the stack made it.
    for l in WEBRTC_RS_ANSWER.split("\r\n") {
        assert!(fixed.split("\r\n").any(|f| f == l), "lost {l:?}");
    }
    let a = parse_meta_answer(&fixed).unwrap();
    assert_eq!(
        (a.ice_ufrag.as_str(), a.fingerprint.value.as_str()),
        ("kPqfUzWtnHdtGmXm", &FP[8..])
    );
    assert_eq!(
        (a.ptime, a.ssrcs.len(), a.candidates.len()),
        (Some(20), 1, 1)
    );
    assert_eq!(
        fix_stack_answer(&fixed, &offer()).unwrap(),
        fixed,
        "fixing is idempotent"
    );
}

#[test]
fn fixes_str0m_like_answer() {
    let problems = check_local_sdp(STR0M_ANSWER, LocalRole::AnswerTo(&offer())).unwrap_err();
    let text = problems.join("\n");
    for needle in [
        "CRLF",
        "setup:passive",
        "telephone-event/8000 at PT 126",
        "ptime",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let fixed = fix_stack_answer(STR0M_ANSWER, &offer()).unwrap();
    assert_eq!(
        check_local_sdp(&fixed, LocalRole::AnswerTo(&offer())),
        Ok(())
    );
    assert!(
        fixed.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 126\r\n"),
        "{fixed}"
    );
    assert!(fixed.contains("a=setup:active\r\n") && !fixed.contains("passive"));
    assert!(
        fixed.contains("a=rtpmap:126 telephone-event/8000\r\n")
            && fixed.contains("a=ptime:20\r\n")
    );
    let a = parse_meta_answer(&fixed).unwrap();
    assert_eq!(
        (a.ice_ufrag.as_str(), a.ice_pwd.as_str()),
        ("Zs3u", "c6kM0pbRQwzJXKz9s1bJ2i")
    );
    assert_eq!(
        (a.candidates[0].priority, a.setup),
        (2130706175, Setup::Active)
    );
    assert_eq!(a.opus_param("stereo"), Some("0"));
}

#[test]
fn fix_strips_extra_codecs_ssrcs_and_sets_direction() {
    let messy = WEBRTC_RS_ANSWER
        .replace("SAVPF 111 126", "SAVPF 111 63 0 13 126")
        .replace("a=rtpmap:126", "a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:126")
        .replace("a=ssrc:3735928559 label:audio", "a=ssrc:3735928559 label:audio\r\na=ssrc-group:FID 3735928559 42\r\na=ssrc:42 cname:webrtc-rs")
        .replace("a=sendrecv", "a=recvonly\r\na=ptime:10")
        .replace("a=rtcp-mux\r\n", "")
        .replace("a=extmap-allow-mixed", "a=ice-lite");
    let fixed = fix_stack_answer(&messy, &offer()).unwrap();
    assert_eq!(
        check_local_sdp(&fixed, LocalRole::AnswerTo(&offer())),
        Ok(())
    );
    for gone in [
        "red/",
        "PCMU",
        "CN/",
        "fmtp:63",
        "ssrc:42",
        "ssrc-group",
        "recvonly",
        "ptime:10",
        "ice-lite",
    ] {
        assert!(!fixed.contains(gone), "{gone:?} still in\n{fixed}");
    }
    assert!(fixed.contains("a=rtcp-mux\r\n") && fixed.contains("a=sendrecv\r\n"));
}

#[test]
fn fix_refuses_what_text_cannot_fix() {
    let o = offer();
    let pt = WEBRTC_RS_ANSWER
        .replace(" 111 126", " 109 126")
        .replace(":111", ":109");
    assert!(matches!(
        fix_stack_answer(&pt, &o),
        Err(WaSdpError::StackMismatch {
            what: "opus payload type",
            ..
        })
    ));
    let mid = WEBRTC_RS_ANSWER.replace("a=mid:audio", "a=mid:0");
    assert!(matches!(
        fix_stack_answer(&mid, &o),
        Err(WaSdpError::StackMismatch { what: "mid", .. })
    ));
    let no_opus = WEBRTC_RS_ANSWER.replace("opus/48000/2", "PCMU/8000");
    assert_eq!(fix_stack_answer(&no_opus, &o), Err(WaSdpError::NoOpus));
    let two = format!("{WEBRTC_RS_ANSWER}m=video 9 UDP/TLS/RTP/SAVPF 96\r\n");
    assert_eq!(fix_stack_answer(&two, &o), Err(WaSdpError::MediaCount(2)));
    let no_fp = WEBRTC_RS_ANSWER.replace("a=fingerprint:", "a=x-fp:");
    match fix_stack_answer(&no_fp, &o) {
        Err(WaSdpError::StillNonCompliant(p)) => assert!(p[0].contains("fingerprint"), "{p:?}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        fix_stack_answer("v=0\nnonsense", &o),
        Err(WaSdpError::Malformed { line: 2, .. })
    ));
}

/// What webrtc-rs 0.21 offers for our one audio transceiver (mid "0", no ptime).
fn webrtc_rs_offer() -> String {
    WEBRTC_RS_ANSWER
        .replace("a=setup:active", "a=setup:actpass")
        .replace("a=group:BUNDLE audio", "a=group:BUNDLE 0")
        .replace("a=mid:audio", "a=mid:0")
}

#[test]
fn stack_offer_is_rebuilt_to_metas_rules_keeping_the_stacks_mid_and_credentials() {
    let fixed = fix_stack_offer(&webrtc_rs_offer()).unwrap();
    assert_eq!(check_local_sdp(&fixed, LocalRole::Offer), Ok(()), "{fixed}");
    assert!(fixed.contains("a=group:BUNDLE 0\r\n") && fixed.contains("a=mid:0\r\n"), "{fixed}");
    assert!(fixed.contains("a=ptime:20\r\n") && fixed.contains("a=setup:actpass\r\n"), "{fixed}");
    assert!(fixed.contains("a=ice-ufrag:kPqfUzWtnHdtGmXm\r\n"), "{fixed}");
    let o = parse_meta_offer(&fixed).unwrap();
    assert_eq!(o.ssrcs.iter().map(|s| s.id).collect::<Vec<_>>(), [3735928559]);
    assert_eq!(o.candidates.len(), 1);
    assert_eq!(o.fingerprint.value, FP[8..]);
}

#[test]
fn stack_offer_without_telephone_event_is_an_error() {
    let no_dtmf = webrtc_rs_offer()
        .replace(" 111 126\r\n", " 111\r\n")
        .replace("a=rtpmap:126 telephone-event/8000\r\n", "");
    let err = fix_stack_offer(&no_dtmf).unwrap_err();
    assert!(matches!(err, WaSdpError::StackMismatch { what: "telephone-event/8000 payload type", .. }), "{err}");
}
