//! Our WebRTC leg against a second webrtc-rs peer that plays Meta (§5.1 of
//! docs/whatsapp-calling-api.md): ICE-lite, DTLS actpass (so it ends up DTLS server), Opus at
//! PT 111 and telephone-event/8000 at PT 126, one audio m-line. All on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT,
};
use rtc::peer_connection::transport::{RTCDtlsTransportState, RTCIceRole};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::mpsc;
use tokio::time::timeout;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSdpType, RTCSessionDescription, Registry, SettingEngineBuilder,
};
use whatsip::media::wa_sdp::{check_local_sdp, parse_meta_offer, LocalRole};
use whatsip::media::webrtc_leg::{answer_offer, IncomingRtp, WebRtcConfig, WebRtcEvent};

const OPUS_PT: u8 = 111;
const DTMF_PT: u8 = 126;
const FRAMES: u16 = 50;
const TS_STEP: u32 = 960;
const STEP: Duration = Duration::from_secs(10);

fn cfg() -> WebRtcConfig {
    WebRtcConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        public_ip: None,
        port_min: 40000,
        port_max: 40999,
    }
}

/// What the fake Meta's callbacks report.
struct MetaHandler {
    state: mpsc::UnboundedSender<RTCPeerConnectionState>,
    gathered: mpsc::UnboundedSender<()>,
    rtp: mpsc::UnboundedSender<rtp::Packet>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for MetaHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let rtp = self.rtp.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    let _ = rtp.send(p);
                }
            }
        });
    }
}

struct FakeMeta {
    pc: Box<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    state: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    rtp: mpsc::UnboundedReceiver<rtp::Packet>,
    /// The offer as a WhatsApp client would send it (after munging).
    offer: String,
}

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: mime.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![],
    }
}

async fn fake_meta() -> FakeMeta {
    let opus = codec(MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1");
    let mut engine = MediaEngine::default();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus.clone(),
                payload_type: OPUS_PT,
            },
            RtpCodecKind::Audio,
        )
        .unwrap();
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: codec(MIME_TYPE_TELEPHONE_EVENT, 8000, 0, ""),
                payload_type: DTMF_PT,
            },
            RtpCodecKind::Audio,
        )
        .unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut engine).unwrap();
    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .build();
    let (state_tx, state) = mpsc::unbounded_channel();
    let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
    let (rtp_tx, rtp) = mpsc::unbounded_channel();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::new(MetaHandler {
            state: state_tx,
            gathered: gathered_tx,
            rtp: rtp_tx,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .build()
        .await
        .unwrap();
    let ssrc = 0x5EED_0001;
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "WhatsAppTrack1".to_owned(),
        "WhatsAppAudioStream1".to_owned(),
        "WhatsAppAudioStream1".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus.clone(),
            ..Default::default()
        }],
    )));
    pc.add_track(track.clone()).await.unwrap();
    // add_track narrows the transceiver to the track's codec; Meta offers telephone-event too.
    pc.get_transceivers().await[0]
        .set_codec_preferences(vec![
            RTCRtpCodecParameters {
                rtp_codec: opus.clone(),
                payload_type: OPUS_PT,
            },
            RTCRtpCodecParameters {
                rtp_codec: codec(MIME_TYPE_TELEPHONE_EVENT, 8000, 0, ""),
                payload_type: DTMF_PT,
            },
        ])
        .await
        .unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();
    timeout(STEP, gathered.recv()).await.unwrap().unwrap();
    let stack_offer = pc.local_description().await.unwrap().sdp;
    println!("--- stack offer ---\n{stack_offer}");
    let offer = meta_look(&stack_offer);
    FakeMeta {
        pc: Box::new(pc),
        track,
        ssrc,
        state,
        rtp,
        offer,
    }
}

/// Makes webrtc-rs's offer read like Meta's (§5.1): ice-lite, only PTs 111 and 126 on the
/// m-line, Opus fmtp `minptime=10;useinbandfec=1`, CRLF. ICE credentials, candidates and
/// fingerprint are the stack's own, so the munged text still describes the real peer.
fn meta_look(stack: &str) -> String {
    let mut out = Vec::new();
    let mut in_media = false;
    for line in stack.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("m=") {
            if !out.iter().any(|l: &String| l == "a=ice-lite") {
                out.push("a=ice-lite".to_owned());
            }
            in_media = true;
            let mut parts: Vec<&str> = line.split(' ').take(3).collect();
            parts.push("111");
            parts.push("126");
            out.push(parts.join(" "));
            continue;
        }
        if in_media {
            let pt_of = |prefix: &str| {
                line.strip_prefix(prefix)
                    .and_then(|r| r.split([' ', ':']).next())
                    .map(str::to_owned)
            };
            let pt = pt_of("a=rtpmap:")
                .or_else(|| pt_of("a=fmtp:"))
                .or_else(|| pt_of("a=rtcp-fb:"));
            if let Some(pt) = pt {
                if pt != "111" && pt != "126" {
                    continue;
                }
            }
            if line.starts_with("a=fmtp:111") {
                out.push("a=fmtp:111 minptime=10;useinbandfec=1".to_owned());
                continue;
            }
        }
        out.push(line.to_owned());
    }
    let mut s = out.join("\r\n");
    s.push_str("\r\n");
    s
}

async fn wait_state(
    meta: &mut FakeMeta,
    want: &[RTCPeerConnectionState],
) -> RTCPeerConnectionState {
    loop {
        let s = timeout(STEP, meta.state.recv())
            .await
            .expect("fake Meta state change in time")
            .expect("fake Meta state channel open");
        if want.contains(&s) {
            return s;
        }
    }
}

fn meta_packet(ssrc: u32, pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload: bytes::Bytes::copy_from_slice(payload),
    }
}

fn check_audio_run(what: &str, got: &[(u8, u16, u32)]) {
    assert_eq!(got.len(), usize::from(FRAMES), "{what}: all frames arrive");
    assert!(got.iter().all(|p| p.0 == OPUS_PT), "{what}: opus PT");
    for w in got.windows(2) {
        assert_eq!(w[1].1, w[0].1.wrapping_add(1), "{what}: seq +1");
        assert_eq!(w[1].2, w[0].2.wrapping_add(TS_STEP), "{what}: ts +960");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leg_talks_to_an_ice_lite_dtls_server_meta() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut meta = fake_meta().await;
    println!("--- munged offer ---\n{}", meta.offer);
    let parsed = parse_meta_offer(&meta.offer).expect("munged offer parses as Meta's");
    assert!(parsed.ice_lite);
    assert_eq!(parsed.opus.pt, OPUS_PT);

    let t0 = std::time::Instant::now();
    let (mut leg, answer) = answer_offer(&meta.offer, &cfg()).await.expect("answer");
    println!("--- our answer ({:?}) ---\n{answer}", t0.elapsed());
    check_local_sdp(&answer, LocalRole::AnswerTo(&parsed)).expect("answer is compliant");
    assert!(answer.contains("a=setup:active\r\n"));
    assert!(answer.contains("a=ptime:20\r\n"));
    assert_eq!(leg.opus_pt(), OPUS_PT);
    assert_eq!(leg.dtmf_pt(), Some(DTMF_PT));

    let mut remote = RTCSessionDescription::default();
    remote.sdp_type = RTCSdpType::Answer;
    remote.sdp = answer.clone();
    meta.pc
        .set_remote_description(remote)
        .await
        .expect("Meta takes our answer");

    // ICE + DTLS complete with nobody sending audio.
    let ev = timeout(STEP, leg.events().recv())
        .await
        .expect("leg event in time");
    assert_eq!(ev, Some(WebRtcEvent::Connected));
    wait_state(&mut meta, &[RTCPeerConnectionState::Connected]).await;
    println!("connected after {:?}", t0.elapsed());

    let info = leg.transport_info().await.unwrap().expect("leg transport");
    println!("leg transport: {info:?}");
    assert!(info.ice_controlling, "our side is ICE controlling");
    assert!(info.dtls_connected);
    let meta_dtls = meta.pc.get_senders().await[0]
        .transport()
        .await
        .unwrap()
        .expect("meta transport");
    assert_eq!(
        meta_dtls.ice_transport().role().await.unwrap(),
        RTCIceRole::Controlled
    );
    assert_eq!(
        meta_dtls.state().await.unwrap(),
        RTCDtlsTransportState::Connected
    );

    // Gate: nothing is sent until asked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(leg.incoming().try_recv().is_err(), "no RTP from Meta yet");
    assert!(
        meta.rtp.try_recv().is_err(),
        "no RTP from us before send_audio"
    );

    // 50 frames each way, 20 ms apart.
    let meta_seq0: u16 = 1000;
    let meta_ts0: u32 = 77_000;
    let our_ts0: u32 = 5_000;
    for i in 0..FRAMES {
        let payload = [0xFC, i as u8, 0xAA];
        let ts = our_ts0.wrapping_add(u32::from(i) * TS_STEP);
        leg.send_audio(&payload, ts, i == 0).await.unwrap();
        let mts = meta_ts0.wrapping_add(u32::from(i) * TS_STEP);
        meta.track
            .write_rtp(meta_packet(
                meta.ssrc,
                OPUS_PT,
                meta_seq0 + i,
                mts,
                i == 0,
                &payload,
            ))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut at_meta = Vec::new();
    while at_meta.len() < usize::from(FRAMES) {
        let p = timeout(STEP, meta.rtp.recv())
            .await
            .expect("audio at Meta")
            .unwrap();
        assert_eq!(p.payload[0], 0xFC);
        at_meta.push((
            p.header.payload_type,
            p.header.sequence_number,
            p.header.timestamp,
        ));
    }
    check_audio_run("at Meta", &at_meta);
    assert_eq!(at_meta[0].2, our_ts0);
    let mut at_leg: Vec<IncomingRtp> = Vec::new();
    while at_leg.len() < usize::from(FRAMES) {
        at_leg.push(
            timeout(STEP, leg.incoming().recv())
                .await
                .expect("audio at leg")
                .unwrap(),
        );
    }
    let runs: Vec<_> = at_leg
        .iter()
        .map(|p| (p.payload_type, p.sequence, p.timestamp))
        .collect();
    check_audio_run("at leg", &runs);
    assert_eq!(at_leg[0].sequence, meta_seq0);
    assert!(at_leg[0].marker);
    assert_eq!(&at_leg[7].payload[..], &[0xFC, 7, 0xAA]);

    // DTMF: digit 5, end bit, volume 10, duration 160, on PT 126 in the same streams.
    let dtmf = [5u8, 0x80 | 10, 0x00, 0xA0];
    let dtmf_ts = our_ts0.wrapping_add(u32::from(FRAMES) * TS_STEP);
    leg.send_dtmf(&dtmf, dtmf_ts, true).await.unwrap();
    meta.track
        .write_rtp(meta_packet(
            meta.ssrc,
            DTMF_PT,
            meta_seq0 + FRAMES,
            meta_ts0,
            true,
            &dtmf,
        ))
        .await
        .unwrap();
    let p = timeout(STEP, meta.rtp.recv())
        .await
        .expect("DTMF at Meta")
        .unwrap();
    assert_eq!(p.header.payload_type, DTMF_PT);
    assert_eq!(
        p.header.sequence_number,
        at_meta.last().unwrap().1.wrapping_add(1)
    );
    assert_eq!(&p.payload[..], &dtmf);
    let d = timeout(STEP, leg.incoming().recv())
        .await
        .expect("DTMF at leg")
        .unwrap();
    assert_eq!(d.payload_type, DTMF_PT);
    assert_eq!(d.sequence, meta_seq0 + FRAMES);
    assert_eq!(&d.payload[..], &dtmf);
    assert_eq!(leg.dropped_incoming(), 0);

    // Close: our leg ends, and Meta's side notices (DTLS close_notify).
    let closed_at = std::time::Instant::now();
    leg.close().await;
    let end = wait_state(
        &mut meta,
        &[
            RTCPeerConnectionState::Closed,
            RTCPeerConnectionState::Failed,
            RTCPeerConnectionState::Disconnected,
        ],
    )
    .await;
    println!("Meta saw {end:?} {:?} after our close", closed_at.elapsed());
    meta.pc.close().await.unwrap();
}

#[tokio::test]
async fn answer_to_metas_sample_offer_is_compliant() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // §5.1's offer, verbatim; its candidates are unreachable, which answering does not need.
    let offer = include_str!("fixtures/meta_offer.sdp");
    let parsed = parse_meta_offer(offer).unwrap();
    let (leg, answer) = answer_offer(offer, &cfg()).await.expect("answer");
    println!("{answer}");
    check_local_sdp(&answer, LocalRole::AnswerTo(&parsed)).expect("compliant");
    assert!(answer.contains("a=setup:active\r\n"));
    assert!(answer.contains("a=ptime:20\r\n"));
    assert!(answer.contains("a=rtpmap:111 opus/48000/2\r\n"));
    assert!(answer.contains("a=rtpmap:126 telephone-event/8000\r\n"));
    assert!(!answer.contains(".local"), "no mDNS candidates");
    let host = format!("127.0.0.1 {} typ host", leg.local_addr().port());
    // webrtc-rs also writes a component-2 line for the same socket despite rtcp-mux.
    let rtp_candidates = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:") && l.split(' ').nth(1) == Some("1"));
    assert_eq!(rtp_candidates.count(), 1, "one host candidate");
    assert!(answer.contains(&host), "candidate is our bind address");
    let port = leg.local_addr().port();
    assert!((40000..=40999).contains(&port));
    leg.close().await;
}
