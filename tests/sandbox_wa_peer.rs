//! A business-initiated call (§2.3, §5.1 of docs/whatsapp-calling-api.md): our WebRTC leg
//! offers (`create_offer`), the sandbox's WhatsApp user answers as Meta does (`WaPeer::answer`:
//! ICE-lite, `a=setup:active`), and our leg applies the answer. The business ends up ICE
//! controlling and DTLS server; audio and a digit then cross both ways. 127.0.0.1 only.

use std::time::Duration;

use tokio::time::timeout;
use whatsip::media::dtmf::DtmfReceiver;
use whatsip::media::opus::{OpusDecoder, OpusEncoder, MAX_PACKET};
use whatsip::media::tone::{dominant_frequency, sine};
use whatsip::media::wa_sdp::{parse_meta_answer, Setup};
use whatsip::media::webrtc_leg::{create_offer, WebRtcConfig, WebRtcEvent};
use whatsip::sandbox::{AudioSource, WaPeer, WaPeerConfig, WaPeerEvent};

mod common;

const OPUS_PT: u8 = 111;
const DTMF_PT: u8 = 126;
const STEP: Duration = Duration::from_secs(10);
const USER_HZ: f32 = 1000.0;
const BUSINESS_HZ: f32 = 440.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_answers_our_offer_as_meta_does() {
    let base = common::ports::free_udp_block(10);
    let cfg = WebRtcConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        public_ip: None,
        port_min: base,
        port_max: base + 9,
    };
    let (offered, offer) = create_offer(&cfg).await.expect("our offer");

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
    let parsed = parse_meta_answer(&answer).expect("reads as Meta's answer");
    assert!(parsed.ice_lite);
    assert_eq!(parsed.setup, Setup::Active, "Meta takes the DTLS client role");
    assert_eq!(parsed.payload_types, vec![OPUS_PT, DTMF_PT]);
    assert_eq!(parsed.ptime, Some(20));
    assert!(parsed.rtcp_mux);
    assert!(!answer.replace("\r\n", "").contains('\n'), "CRLF only");
    assert!(matches!(
        user.accept_answer(&answer).await,
        Err(whatsip::sandbox::WaPeerError::NotOfferer)
    ));

    let mut business = offered.accept_answer(&answer).await.expect("we take Meta's answer");
    user.wait_for(STEP, |e| *e == WaPeerEvent::Connected)
        .await
        .expect("the user connects");
    match timeout(STEP, business.events().recv()).await {
        Ok(Some(WebRtcEvent::Connected)) => {}
        other => panic!("our leg did not connect: {other:?}"),
    }
    let ours = business.transport_info().await.unwrap().expect("our transport");
    assert!(ours.ice_controlling && ours.dtls_connected, "{ours:?}");
    let transport = user.transport().await.expect("user's transport");
    assert!(!transport.ice_controlling, "the business controls ICE");
    assert!(transport.dtls_client && transport.dtls_connected);

    // Nothing from the user before it picks up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(business.incoming().try_recv().is_err(), "RTP before unmute");

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
        business.send_audio(&packet[..n], 3000 + i as u32 * 960, i == 0).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut decoder = OpusDecoder::new(16_000).unwrap();
    let mut pcm = [0i16; 320];
    let mut heard_by_business = Vec::new();
    let mut digits = DtmfReceiver::new();
    let mut digit = None;
    while let Ok(p) = business.incoming().try_recv() {
        match p.payload_type {
            OPUS_PT => {
                let n = decoder.decode(&p.payload, &mut pcm).unwrap();
                heard_by_business.extend_from_slice(&pcm[..n]);
            }
            DTMF_PT => {
                digits.on_packet(p.timestamp, &p.payload).unwrap();
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
    println!("user heard {hz:.1} Hz at {dbfs:.1} dBFS; sent {:?}", report.sent);
    assert!((hz - BUSINESS_HZ).abs() < 5.0 && dbfs > -30.0);
    assert!(report.sent.dtmf_packets >= 5 && report.sent.frames >= 60);
    business.close().await;
}
