//! Our WebRTC leg against the sandbox's WhatsApp-user peer (`whatsip::sandbox::WaPeer`), which
//! behaves like Meta (§5.1 of docs/whatsapp-calling-api.md): ICE-lite, DTLS actpass (so it ends
//! up DTLS server), Opus at PT 111 and telephone-event/8000 at PT 126, one audio m-line. All
//! on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::time::timeout;
use whatsip::media::dtmf::DtmfReceiver;
use whatsip::media::opus::{OpusDecoder, OpusEncoder, MAX_PACKET};
use whatsip::media::tone::{dominant_frequency, sine};
use whatsip::media::wa_sdp::{check_local_sdp, parse_meta_offer, LocalRole};
use whatsip::media::webrtc_leg::{answer_offer, IncomingRtp, WebRtcConfig, WebRtcEvent};
use whatsip::sandbox::{AudioSource, PacketKind, WaPeer, WaPeerConfig, WaPeerEvent};

const OPUS_PT: u8 = 111;
const DTMF_PT: u8 = 126;
const FRAMES: u16 = 50;
const TS_STEP: u32 = 960;
const STEP: Duration = Duration::from_secs(10);
/// What Meta says (its peer's tone) and what we say back.
const META_HZ: f32 = 1000.0;
const OUR_HZ: f32 = 440.0;

fn cfg() -> WebRtcConfig {
    WebRtcConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        public_ip: None,
        port_min: 40000,
        port_max: 40999,
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

fn check_tone(what: &str, pcm: &[i16], rate: u32, hz: f32) {
    let (got, dbfs) = dominant_frequency(pcm, rate, 100.0, 3800.0).expect("a tone");
    println!(
        "{what}: {got:.1} Hz at {dbfs:.1} dBFS over {} samples",
        pcm.len()
    );
    assert!((got - hz).abs() < hz * 0.01, "{what}: {got} Hz, not {hz}");
    assert!(dbfs > -30.0, "{what}: {dbfs} dBFS");
}

async fn next_rtp(leg: &mut whatsip::media::webrtc_leg::WebRtcLeg, what: &str) -> IncomingRtp {
    timeout(STEP, leg.incoming().recv())
        .await
        .unwrap_or_else(|_| panic!("{what} in time"))
        .expect("leg open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leg_talks_to_an_ice_lite_dtls_server_meta() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let meta_cfg = WaPeerConfig {
        source: AudioSource::Tone {
            hz: META_HZ,
            amplitude: 0.3,
        },
        ..WaPeerConfig::default()
    };
    let (mut meta, offer) = WaPeer::offer(meta_cfg).await.expect("sandbox peer offers");
    println!("--- Meta's offer ---\n{offer}");
    let parsed = parse_meta_offer(&offer).expect("offer parses as Meta's");
    assert!(parsed.ice_lite);
    assert_eq!(parsed.opus.pt, OPUS_PT);

    let t0 = std::time::Instant::now();
    let (mut leg, answer) = answer_offer(&offer, &cfg()).await.expect("answer");
    println!("--- our answer ({:?}) ---\n{answer}", t0.elapsed());
    check_local_sdp(&answer, LocalRole::AnswerTo(&parsed)).expect("answer is compliant");
    assert!(answer.contains("a=setup:active\r\n"));
    assert!(answer.contains("a=ptime:20\r\n"));
    assert_eq!(leg.opus_pt(), OPUS_PT);
    assert_eq!(leg.dtmf_pt(), Some(DTMF_PT));
    meta.accept_answer(&answer)
        .await
        .expect("Meta takes our answer");

    // ICE + DTLS complete with nobody sending audio.
    let ev = timeout(STEP, leg.events().recv())
        .await
        .expect("leg event in time");
    assert_eq!(ev, Some(WebRtcEvent::Connected));
    meta.wait_for(STEP, |e| *e == WaPeerEvent::Connected)
        .await
        .expect("Meta connects");
    println!("connected after {:?}", t0.elapsed());

    let info = leg.transport_info().await.unwrap().expect("leg transport");
    println!("leg transport: {info:?}");
    assert!(info.ice_controlling, "our side is ICE controlling");
    assert!(info.dtls_connected);
    let meta_transport = meta.transport().await.expect("meta transport");
    println!("Meta transport: {meta_transport:?}");
    assert!(!meta_transport.ice_controlling, "Meta is ICE controlled");
    assert!(!meta_transport.dtls_client, "Meta is DTLS server");
    assert!(meta_transport.dtls_connected);

    // Gate: nothing is sent until asked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(leg.incoming().try_recv().is_err(), "no RTP from Meta yet");
    let before = meta.report().await.unwrap();
    assert!(
        before.heard.arrivals.is_empty(),
        "no RTP from us before send_audio: {:?}",
        before.heard.arrivals
    );

    // 50 frames each way, 20 ms apart: Meta's tone, and ours encoded here.
    meta.unmute().unwrap();
    let our_ts0: u32 = 5_000;
    let mut encoder = OpusEncoder::new(48_000, 1, 5, true, 5).unwrap();
    let tone = sine(OUR_HZ, 48_000, f32::from(FRAMES) * 0.02, 0.3);
    let mut packet = [0u8; MAX_PACKET];
    for (i, pcm) in tone.chunks_exact(960).enumerate() {
        let n = encoder.encode(pcm, &mut packet).unwrap();
        let ts = our_ts0.wrapping_add(i as u32 * TS_STEP);
        leg.send_audio(&packet[..n], ts, i == 0).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut at_leg: Vec<IncomingRtp> = Vec::new();
    while at_leg.len() < usize::from(FRAMES) {
        at_leg.push(next_rtp(&mut leg, "audio at leg").await);
    }
    let runs: Vec<_> = at_leg
        .iter()
        .map(|p| (p.payload_type, p.sequence, p.timestamp))
        .collect();
    check_audio_run("at leg", &runs);
    assert!(at_leg[0].marker, "Meta's first packet starts a talk spurt");
    assert!(at_leg[1..].iter().all(|p| !p.marker));
    let mut decoder = OpusDecoder::new(16_000).unwrap();
    let mut pcm = [0i16; 320];
    let mut heard_at_leg = Vec::new();
    for p in &at_leg {
        let n = decoder
            .decode(&p.payload, &mut pcm)
            .expect("Meta sends Opus");
        heard_at_leg.extend_from_slice(&pcm[..n]);
    }
    check_tone("leg heard Meta", &heard_at_leg[3200..], 16_000, META_HZ);

    let report = meta.report().await.unwrap();
    let at_meta: Vec<_> = report
        .heard
        .audio_arrivals()
        .map(|a| (a.payload_type, a.sequence, a.timestamp))
        .collect();
    check_audio_run("at Meta", &at_meta);
    assert_eq!(at_meta[0].2, our_ts0);
    assert_eq!(report.heard.concealed_frames + report.heard.fec_frames, 0);
    check_tone(
        "Meta heard us",
        &report.heard.pcm[3200..],
        report.heard.rate,
        OUR_HZ,
    );

    // DTMF: our single end packet (digit 5, volume 10, duration 160) and Meta's key 9, both
    // on PT 126 in the audio streams' sequence spaces.
    let dtmf = [5u8, 0x80 | 10, 0x00, 0xA0];
    let dtmf_ts = our_ts0.wrapping_add(u32::from(FRAMES) * TS_STEP);
    leg.send_dtmf(&dtmf, dtmf_ts, true).await.unwrap();
    meta.dtmf('9').unwrap();
    let heard = meta
        .wait_for(STEP, |e| matches!(e, WaPeerEvent::Dtmf(_)))
        .await
        .expect("DTMF at Meta");
    assert_eq!(heard, WaPeerEvent::Dtmf('5'));
    let mut last = at_leg.last().unwrap().sequence;
    let mut digits = DtmfReceiver::new();
    let mut got = None;
    while got.is_none() {
        let p = next_rtp(&mut leg, "DTMF at leg").await;
        assert_eq!(p.sequence, last.wrapping_add(1), "one sequence space");
        last = p.sequence;
        if p.payload_type == DTMF_PT {
            digits.on_packet(p.timestamp, &p.payload).unwrap();
            got = digits.poll_digit();
        }
    }
    assert_eq!(got, Some('9'));
    assert_eq!(leg.dropped_incoming(), 0);
    let report = meta.report().await.unwrap();
    let dtmf_in = report
        .heard
        .arrivals
        .iter()
        .find(|a| a.kind == PacketKind::Dtmf)
        .expect("DTMF arrival");
    assert_eq!(dtmf_in.payload_type, DTMF_PT);
    assert_eq!(dtmf_in.sequence, at_meta.last().unwrap().1.wrapping_add(1));
    assert_eq!(report.heard.digits, "5");

    // Close: our leg ends, and Meta's side notices (DTLS close_notify).
    let closed_at = std::time::Instant::now();
    leg.close().await;
    let end = meta
        .wait_for(STEP, |e| {
            matches!(e, WaPeerEvent::Closed | WaPeerEvent::Failed(_))
        })
        .await
        .expect("Meta notices");
    println!("Meta saw {end:?} {:?} after our close", closed_at.elapsed());
    meta.close().await;
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
