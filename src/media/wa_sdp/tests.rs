use super::fixtures::*;
use super::*;

#[test]
fn parses_meta_sample_offer() {
    let o = parse_meta_offer(META_OFFER).unwrap();
    assert!(o.ice_lite);
    assert_eq!(
        (o.ice_ufrag.as_str(), o.ice_pwd.as_str()),
        ("6k2qP1R6kBfI/2", "UApvJw3NcwFRDvIMKdM0vWCdlXah25E9")
    );
    assert_eq!(o.fingerprint.algorithm, "sha-256");
    assert!(
        o.fingerprint.value.starts_with("1B:B6:6B") && o.fingerprint.value.ends_with("8A:88")
    );
    assert_eq!(o.setup, Setup::ActPass);
    assert_eq!(
        (o.bundle.clone(), o.mid.as_deref()),
        (vec!["audio".to_owned()], Some("audio"))
    );
    assert_eq!(
        (o.port, o.connection),
        (40012, Some("31.13.65.60".parse().unwrap()))
    );
    assert_eq!(o.payload_types, vec![111, 126]);
    assert_eq!(o.opus.pt, 111);
    assert_eq!(o.opus_param("minptime"), Some("10"));
    assert_eq!(o.opus_param("useinbandfec"), Some("1"));
    assert_eq!(
        o.telephone_event,
        Some(TelephoneEvent {
            pt: 126,
            clock_rate: 8000
        })
    );
    assert_eq!(o.direction, Direction::SendRecv);
    assert!(o.rtcp_mux);
    assert_eq!((o.ptime, o.maxptime), (None, None));
    assert_eq!(
        o.ssrcs,
        vec![Ssrc {
            id: 4208138518,
            cname: Some("gAXq2V9TKltrnapv".into())
        }]
    );
    assert_eq!(o.candidates.len(), 2);
    let c = &o.candidates[0];
    assert_eq!(
        (c.foundation.as_str(), c.component, c.priority),
        ("1972637320", 1, 2113937151)
    );
    assert_eq!(
        (c.transport.clone(), c.typ.clone(), c.port),
        (Transport::Udp, CandidateType::Host, 40012)
    );
    assert_eq!(c.address, "31.13.65.60".parse::<IpAddr>().unwrap());
    assert_eq!(
        c.extensions[2],
        ("ufrag".to_owned(), "6k2qP1R6kBfI/2".to_owned())
    );
    assert!(o.candidates[1].address.is_ipv6());
}

#[test]
fn parses_newer_offer_with_ptime_and_rich_fmtp() {
    let o = parse_meta_offer(META_OFFER_2025).unwrap();
    assert_eq!((o.ptime, o.maxptime, o.port), (Some(20), Some(20), 3484));
    assert_eq!(o.opus_param("maxplaybackrate"), Some("16000"));
    assert_eq!(o.opus_param("sprop-maxcapturerate"), Some("16000"));
    assert_eq!(o.opus_param("maxaveragebitrate"), Some("20000"));
    assert_eq!(o.opus.fmtp.len(), 5);
    // Two a=ssrc lines, one SSRC.
    assert_eq!(
        o.ssrcs,
        vec![Ssrc {
            id: 1349741820,
            cname: Some("WhatsAppAudioStream1".into())
        }]
    );
}

#[test]
fn line_endings_and_whitespace_do_not_matter() {
    let lf = parse_meta_offer(META_OFFER).unwrap();
    let crlf = parse_meta_offer(&META_OFFER.replace('\n', "\r\n")).unwrap();
    let messy: String = META_OFFER
        .lines()
        .map(|l| format!("  {l} \t\r\n\r\n"))
        .collect();
    assert_eq!(lf, crlf);
    assert_eq!(lf, parse_meta_offer(&messy).unwrap());
    assert_eq!(lf, parse_meta_offer(META_OFFER.trim_end()).unwrap());
}

#[test]
fn session_level_ice_and_fingerprint_and_media_level_override() {
    let moved = META_OFFER
        .replace("a=ice-lite\n", "a=ice-lite\na=ice-ufrag:sess\na=ice-pwd:sessionpasswordsessionpw\na=fingerprint:SHA-256 AB:CD\n")
        .replace("a=ice-ufrag:6k2qP1R6kBfI/2\n", "")
        .replace("a=fingerprint:sha-256 1B", "a=x-old:1B");
    let o = parse_meta_offer(&moved).unwrap();
    assert_eq!(
        (o.ice_ufrag.as_str(), o.ice_pwd.as_str()),
        ("sess", "UApvJw3NcwFRDvIMKdM0vWCdlXah25E9")
    );
    assert_eq!(
        o.fingerprint,
        Fingerprint {
            algorithm: "sha-256".into(),
            value: "AB:CD".into()
        }
    );
}

#[test]
fn parses_meta_answer_with_extra_codecs() {
    let a = parse_meta_answer(META_ANSWER).unwrap();
    assert_eq!(a.setup, Setup::Active);
    assert_eq!(a.payload_types, vec![111, 9, 0, 8, 110, 126]);
    assert_eq!(a.ice_options, vec!["trickle".to_owned()]);
    assert_eq!(a.port, 3482);
    // 8000 Hz DTMF wins over the 48000 Hz one (§5.2).
    assert_eq!(
        a.telephone_event,
        Some(TelephoneEvent {
            pt: 126,
            clock_rate: 8000
        })
    );
    assert_eq!(a.codecs.len(), 6);
    let passive = META_ANSWER.replace("setup:active", "setup:passive");
    assert_eq!(parse_meta_answer(&passive).unwrap().setup, Setup::Passive);
}

#[test]
fn setup_role_is_checked_per_kind() {
    let err = parse_meta_offer(&offer_with("setup:actpass", "setup:active")).unwrap_err();
    assert_eq!(
        err,
        WaSdpError::BadSetup {
            kind: SdpKind::Offer,
            found: Setup::Active
        }
    );
    let err =
        parse_meta_answer(&META_ANSWER.replace("setup:active", "setup:actpass")).unwrap_err();
    assert_eq!(
        err,
        WaSdpError::BadSetup {
            kind: SdpKind::Answer,
            found: Setup::ActPass
        }
    );
    assert_eq!(
        parse_meta_offer(&offer_with("a=setup:actpass\n", "")),
        Err(WaSdpError::NoSetup)
    );
    assert!(err.to_string().contains("answer"));
}

#[test]
fn errors_name_what_is_missing() {
    let cases: Vec<(String, WaSdpError)> = vec![
        (offer_with("m=audio 40012", "m=video 40012"), WaSdpError::NoAudio),
        ("v=0\no=- 1 1 IN IP4 0.0.0.0\ns=-\nt=0 0\n".into(), WaSdpError::NoAudio),
        (format!("{META_OFFER}m=video 9 UDP/TLS/RTP/SAVPF 96\n"), WaSdpError::MediaCount(2)),
        (offer_with("rtpmap:111 opus/48000/2", "rtpmap:111 PCMU/8000"), WaSdpError::NoOpus),
        (offer_with("rtpmap:111 opus/48000/2", "rtpmap:111 opus/48000/1"), WaSdpError::NoOpus),
        (offer_with("SAVPF 111 126", "SAVPF 0 126"), WaSdpError::NoOpus),
        (offer_with("a=ice-ufrag:6k2qP1R6kBfI/2\n", ""), WaSdpError::NoIceUfrag),
        (offer_with("a=ice-pwd:UApvJw3NcwFRDvIMKdM0vWCdlXah25E9\n", ""), WaSdpError::NoIcePwd),
        (offer_with("a=fingerprint:", "a=x-fingerprint:"), WaSdpError::NoFingerprint),
        (offer_with("sha-256 1B:B6", "sha-256 1B:Z6"), WaSdpError::BadFingerprint("sha-256 1B:Z6:6B:40:A5:0B:8C:75:0D:8C:CB:90:2F:99:74:1E:26:45:AE:AF:45:C1:51:60:8F:73:C9:2D:10:6D:8A:88".into())),
        (offer_with("m=audio 40012", "m=audio 0"), WaSdpError::AudioRejected),
        (offer_with("UDP/TLS/RTP/SAVPF", "RTP/SAVP"), WaSdpError::UnsupportedProfile("RTP/SAVP".into())),
        (META_OFFER.replace(" udp ", " tcp "), WaSdpError::NoUdpCandidate),
        (META_OFFER.lines().filter(|l| !l.starts_with("a=candidate")).map(|l| format!("{l}\n")).collect(), WaSdpError::NoCandidates),
    ];
    for (sdp, want) in cases {
        assert_eq!(parse_meta_offer(&sdp).unwrap_err(), want, "for\n{sdp}");
    }
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let err = parse_meta_offer(&offer_with("s=-", "garbage line")).unwrap_err();
    assert!(
        matches!(err, WaSdpError::Malformed { line: 3, .. }),
        "{err}"
    );
    assert!(matches!(
        parse_meta_offer(&offer_with("40012 UDP", "x40012 UDP")),
        Err(WaSdpError::Malformed { line: 8, .. })
    ));
    assert!(matches!(
        parse_meta_offer(&offer_with(
            "a=rtpmap:126 telephone-event/8000",
            "a=rtpmap:126"
        )),
        Err(WaSdpError::Malformed { .. })
    ));
    assert!(matches!(
        parse_meta_offer(&offer_with("a=ssrc:4208138518", "a=ssrc:x")),
        Err(WaSdpError::Malformed { .. })
    ));
    let short = offer_with(
        " 40012 typ host generation 0 network-cost 50 ufrag 6k2qP1R6kBfI/2",
        "",
    );
    assert!(matches!(
        parse_meta_offer(&short),
        Err(WaSdpError::BadCandidate { .. })
    ));
    for cut in (0..META_OFFER.len()).step_by(7) {
        let _ = parse_meta_offer(&META_OFFER[..cut]);
    }
    assert!(parse_meta_offer("").is_err() && parse_meta_offer("é=ü").is_err());
}

#[test]
fn telephone_event_is_optional_and_8000_preferred() {
    let none = offer_with("SAVPF 111 126", "SAVPF 111");
    assert_eq!(parse_meta_offer(&none).unwrap().telephone_event, None);
    let both = offer_with("SAVPF 111 126", "SAVPF 111 110 126").replace(
        "a=rtpmap:126",
        "a=rtpmap:110 telephone-event/48000\na=rtpmap:126",
    );
    assert_eq!(
        parse_meta_offer(&both).unwrap().telephone_event,
        Some(TelephoneEvent {
            pt: 126,
            clock_rate: 8000
        })
    );
    let only48 = offer_with("telephone-event/8000", "telephone-event/48000");
    assert_eq!(
        parse_meta_offer(&only48).unwrap().telephone_event,
        Some(TelephoneEvent {
            pt: 126,
            clock_rate: 48000
        })
    );
}

#[test]
fn direction_and_multiple_ssrcs() {
    let o = parse_meta_offer(&offer_with("a=sendrecv", "a=sendonly")).unwrap();
    assert_eq!(
        (o.direction, o.direction.answer()),
        (Direction::SendOnly, Direction::RecvOnly)
    );
    let two = offer_with(
        "a=ssrc:4208138518 cname:gAXq2V9TKltrnapv",
        "a=ssrc:1 msid:x y\na=ssrc:2 cname:b\na=ssrc:1 cname:a",
    );
    let o = parse_meta_offer(&two).unwrap();
    assert_eq!(
        o.ssrcs,
        vec![
            Ssrc {
                id: 1,
                cname: Some("a".into())
            },
            Ssrc {
                id: 2,
                cname: Some("b".into())
            }
        ]
    );
}

#[test]
fn candidate_round_trips_and_host_priority() {
    for text in [
        "1972637320 1 udp 2113937151 31.13.65.60 40012 typ host generation 0 network-cost 50 ufrag 6k2qP1R6kBfI/2",
        "842163049 1 udp 1677729535 203.0.113.7 50000 typ srflx raddr 10.0.0.2 rport 50000 generation 0",
        "4 1 tcp 1518280447 2001:db8::1 9 typ host tcptype active",
    ] {
        let c = Candidate::parse(text).unwrap();
        assert_eq!(c.to_string(), format!("candidate:{text}"));
    }
    let c = Candidate::parse("1 1 UDP 1 10.0.0.1 1 typ relay raddr 1.2.3.4 rport 5").unwrap();
    assert_eq!(
        (c.transport, c.typ, c.related),
        (
            Transport::Udp,
            CandidateType::Relay,
            Some("1.2.3.4:5".parse().unwrap())
        )
    );
    assert!(Candidate::parse("1 1 udp 1 abc.local 1 typ host").is_err());
    assert!(Candidate::parse("1 1 udp 1 10.0.0.1 1 type host").is_err());
    let h = Candidate::host("1", "203.0.113.5:40000".parse().unwrap(), 65535);
    assert_eq!(
        h.to_string(),
        "candidate:1 1 udp 2130706431 203.0.113.5 40000 typ host generation 0"
    );
}
