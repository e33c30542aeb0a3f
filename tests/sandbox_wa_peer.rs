//! The sandbox WhatsApp user answering a business-initiated call (§2.3, §5.1 of
//! docs/whatsapp-calling-api.md): `WaPeer::answer` against a plain webrtc-rs offerer that does
//! what our business leg will do (full ICE, `actpass`, Opus 111 and telephone-event 126/8000).
//! Meta's answer must be ICE-lite with `a=setup:active`, so the business ends up ICE
//! controlling and DTLS server; audio and a digit then cross both ways. 127.0.0.1 only.

use std::sync::Arc;
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT,
};
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
use whatsip::media::dtmf::DtmfReceiver;
use whatsip::media::opus::{OpusDecoder, OpusEncoder, MAX_PACKET};
use whatsip::media::tone::{dominant_frequency, sine};
use whatsip::media::wa_sdp::{parse_meta_answer, Setup};
use whatsip::sandbox::{AudioSource, WaPeer, WaPeerConfig, WaPeerEvent};

const OPUS_PT: u8 = 111;
const DTMF_PT: u8 = 126;
const STEP: Duration = Duration::from_secs(10);
const USER_HZ: f32 = 1000.0;
const BUSINESS_HZ: f32 = 440.0;

struct BusinessHandler {
    state: mpsc::UnboundedSender<RTCPeerConnectionState>,
    gathered: mpsc::UnboundedSender<()>,
    rtp: mpsc::UnboundedSender<rtp::Packet>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for BusinessHandler {
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

fn codec(mime: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_answers_a_business_offer_as_meta_does() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();

    // The business: full ICE (so controlling against a lite answer), DTLS role left to the
    // offer/answer (actpass).
    let opus = RTCRtpCodecParameters {
        payload_type: OPUS_PT,
        ..codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1")
    };
    let dtmf = RTCRtpCodecParameters {
        payload_type: DTMF_PT,
        ..codec(MIME_TYPE_TELEPHONE_EVENT, 8000, 0, "")
    };
    let mut engine = MediaEngine::default();
    engine
        .register_codec(opus.clone(), RtpCodecKind::Audio)
        .unwrap();
    engine
        .register_codec(dtmf.clone(), RtpCodecKind::Audio)
        .unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut engine).unwrap();
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true)
        .build();
    let (state_tx, mut state) = mpsc::unbounded_channel();
    let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
    let (rtp_tx, mut at_business) = mpsc::unbounded_channel();
    let business = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::new(BusinessHandler {
            state: state_tx,
            gathered: gathered_tx,
            rtp: rtp_tx,
        }))
        .with_udp_addrs(vec!["127.0.0.1:0"])
        .build()
        .await
        .unwrap();
    let ssrc = 0xB005_0001;
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "business".to_owned(),
        "business-audio".to_owned(),
        "business-audio".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus.rtp_codec.clone(),
            ..Default::default()
        }],
    )));
    business.add_track(track.clone()).await.unwrap();
    business.get_transceivers().await[0]
        .set_codec_preferences(vec![opus.clone(), dtmf.clone()])
        .await
        .unwrap();
    let offer = business.create_offer(None).await.unwrap();
    business.set_local_description(offer).await.unwrap();
    timeout(STEP, gathered.recv()).await.unwrap().unwrap();
    let offer = business.local_description().await.unwrap().sdp;

    // Meta's side answers.
    let user_cfg = WaPeerConfig {
        source: AudioSource::Tone {
            hz: USER_HZ,
            amplitude: 0.3,
        },
        ..WaPeerConfig::default()
    };
    let (mut user, answer) = WaPeer::answer(&offer, user_cfg)
        .await
        .expect("the user answers");
    println!("--- Meta's answer ---\n{answer}");
    let parsed = parse_meta_answer(&answer).expect("reads as Meta's answer");
    assert!(parsed.ice_lite);
    assert_eq!(
        parsed.setup,
        Setup::Active,
        "Meta takes the DTLS client role"
    );
    assert_eq!(parsed.payload_types, vec![OPUS_PT, DTMF_PT]);
    assert_eq!(parsed.ptime, Some(20));
    assert!(parsed.rtcp_mux);
    assert!(!answer.replace("\r\n", "").contains('\n'), "CRLF only");
    assert!(matches!(
        user.accept_answer(&answer).await,
        Err(whatsip::sandbox::WaPeerError::NotOfferer)
    ));

    let mut remote = RTCSessionDescription::default();
    remote.sdp_type = RTCSdpType::Answer;
    remote.sdp = answer;
    business.set_remote_description(remote).await.unwrap();
    user.wait_for(STEP, |e| *e == WaPeerEvent::Connected)
        .await
        .expect("the user connects");
    loop {
        let s = timeout(STEP, state.recv()).await.unwrap().unwrap();
        if s == RTCPeerConnectionState::Connected {
            break;
        }
    }
    let transport = user.transport().await.expect("user's transport");
    println!("user transport: {transport:?}");
    assert!(!transport.ice_controlling, "the business controls ICE");
    assert!(transport.dtls_client && transport.dtls_connected);

    // Nothing from the user before it picks up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(at_business.try_recv().is_err(), "RTP before unmute");

    // Both talk for 1.5 s; the user presses 4 in the middle.
    user.unmute().unwrap();
    let mut encoder = OpusEncoder::new(48_000, 1, 5, true, 5).unwrap();
    let tone = sine(BUSINESS_HZ, 48_000, 1.5, 0.3);
    let mut packet = [0u8; MAX_PACKET];
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for (i, pcm) in tone.chunks_exact(960).enumerate() {
        ticks.tick().await;
        if i == 25 {
            user.dtmf('4').unwrap();
        }
        let n = encoder.encode(pcm, &mut packet).unwrap();
        let p = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker: i == 0,
                payload_type: OPUS_PT,
                sequence_number: 100 + i as u16,
                timestamp: 3000 + i as u32 * 960,
                ssrc,
                ..Default::default()
            },
            payload: bytes::Bytes::copy_from_slice(&packet[..n]),
        };
        track.write_rtp(p).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut decoder = OpusDecoder::new(16_000).unwrap();
    let mut pcm = [0i16; 320];
    let mut heard_by_business = Vec::new();
    let mut digits = DtmfReceiver::new();
    let mut digit = None;
    while let Ok(p) = at_business.try_recv() {
        match p.header.payload_type {
            OPUS_PT => {
                let n = decoder.decode(&p.payload, &mut pcm).unwrap();
                heard_by_business.extend_from_slice(&pcm[..n]);
            }
            DTMF_PT => {
                digits.on_packet(p.header.timestamp, &p.payload).unwrap();
                digit = digit.or(digits.poll_digit());
            }
            other => panic!("unexpected PT {other}"),
        }
    }
    let (hz, dbfs) = dominant_frequency(&heard_by_business, 16_000, 100.0, 3800.0).unwrap();
    println!("business heard {hz:.1} Hz at {dbfs:.1} dBFS; digit {digit:?}");
    assert!((hz - USER_HZ).abs() < 10.0 && dbfs > -30.0);
    assert_eq!(digit, Some('4'));

    let report = user.close().await;
    let heard = &report.heard;
    assert!(heard.audio_packets >= 70, "{} packets", heard.audio_packets);
    let (hz, dbfs) = dominant_frequency(&heard.pcm, heard.rate, 100.0, 3800.0).unwrap();
    println!(
        "user heard {hz:.1} Hz at {dbfs:.1} dBFS; sent {:?}",
        report.sent
    );
    assert!((hz - BUSINESS_HZ).abs() < 5.0 && dbfs > -30.0);
    assert!(report.sent.dtmf_packets >= 5 && report.sent.frames >= 60);
    business.close().await.unwrap();
}
