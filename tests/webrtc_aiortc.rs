//! Our WebRTC leg against a stack we did not write: aiortc playing Meta (ICE-lite, DTLS server,
//! Opus PT 111, telephone-event 126/8000; `tests/peers/meta_peer.py`). ICE and DTLS complete
//! with no audio sent; then a tone crosses each way (Opus encoded and decoded by our codec
//! wrapper) and is found at its frequency on the other side, and a DTMF digit goes each way.

mod common;

use common::meta_peer::MetaPeer;
use std::time::Duration;
use whatsip::media::dtmf::{DtmfReceiver, DtmfSender};
use whatsip::media::opus::{OpusDecoder, OpusEncoder, MAX_PACKET};
use whatsip::media::tone::{dominant_frequency, sine};
use whatsip::media::webrtc_leg::WebRtcEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_leg_against_aiortc_playing_meta_tones_and_dtmf_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let heard_by_meta = dir.path().join("meta-heard.wav");
    let mut meta = MetaPeer::start();
    let base = common::ports::free_udp_block(20);
    let (mut leg, answer) = meta.answered_by_our_leg(440, &heard_by_meta, (base, base + 19)).await;
    assert!(answer.contains("a=setup:active") && answer.contains("a=ptime:20"), "{answer}");

    // ICE (we control, Meta is lite) and DTLS (we are the client) finish with no audio sent.
    let role = meta.wait("ice_role", Duration::from_secs(15)).await;
    assert_eq!(role["controlling"], false, "{role}");
    meta.wait("connected", Duration::from_secs(15)).await;
    match tokio::time::timeout(Duration::from_secs(10), leg.events().recv()).await {
        Ok(Some(WebRtcEvent::Connected)) => {}
        other => panic!("leg did not report Connected: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !meta.drain().iter().any(|v| v["event"] == "first_audio"),
        "audio reached Meta before we sent any (the WhatsApp client would take it as an answer)"
    );

    // Meta starts talking (440 Hz) and pressing 7; we send 1000 Hz and press 5.
    meta.send(serde_json::json!({"cmd": "unmute"})).await;
    let opus_pt = leg.opus_pt();
    let dtmf_pt = leg.dtmf_pt().expect("telephone-event negotiated");
    let mut encoder = OpusEncoder::new(48_000, 1, 5, true, 5).unwrap();
    let tone = sine(1000.0, 48_000, 4.0, 0.3);
    let mut packet = [0u8; MAX_PACKET];
    let mut decoder = OpusDecoder::new(48_000).unwrap();
    let mut decoded = [0i16; 960];
    let mut heard: Vec<i16> = Vec::new();
    let mut dtmf_in = DtmfReceiver::new();
    let mut digits_in = String::new();
    let mut timestamp: u32 = 0x1000;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut frame = 0usize;
    let mut dtmf_out: Option<DtmfSender> = None;
    while frame < 175 {
        tokio::select! {
            _ = tick.tick() => {
                if frame == 60 {
                    meta.send(serde_json::json!({"cmd": "dtmf", "digit": "7"})).await;
                    // RFC 4733 §2.5.1.1: the event's timestamp is where it starts on our audio
                    // timeline (48 kHz here); durations count 8 kHz units, as Meta's do (§5.3).
                    dtmf_out = Some(DtmfSender::new('5', timestamp, 8000, 20, 100).unwrap());
                }
                let dtmf_packet = dtmf_out.as_mut().and_then(DtmfSender::next_packet);
                if let Some(p) = dtmf_packet {
                    leg.send_dtmf(&p.event.to_bytes(), p.timestamp, p.marker).await.unwrap();
                } else {
                    let pcm = &tone[(frame * 960) % (tone.len() - 960)..][..960];
                    let n = encoder.encode(pcm, &mut packet).unwrap();
                    leg.send_audio(&packet[..n], timestamp, frame == 0).await.unwrap();
                }
                timestamp = timestamp.wrapping_add(960);
                frame += 1;
            }
            Some(rtp) = leg.incoming().recv() => {
                if rtp.payload_type == opus_pt {
                    if let Ok(n) = decoder.decode(&rtp.payload, &mut decoded) {
                        heard.extend_from_slice(&decoded[..n]);
                    }
                } else if rtp.payload_type == dtmf_pt {
                    dtmf_in.on_packet(rtp.timestamp, &rtp.payload).unwrap();
                    while let Some(d) = dtmf_in.poll_digit() {
                        digits_in.push(d);
                    }
                }
            }
        }
    }
    dtmf_in.flush();
    while let Some(d) = dtmf_in.poll_digit() {
        digits_in.push(d);
    }

    // What we heard from Meta: its 440 Hz tone, and its 7 once.
    assert!(heard.len() > 48_000, "too little audio from Meta: {} samples", heard.len());
    let (hz, dbfs) = dominant_frequency(&heard[24_000..], 48_000, 100.0, 4000.0).expect("a tone");
    assert!((hz - 440.0).abs() < 13.2, "heard {hz} Hz at {dbfs} dBFS from Meta");
    assert!(dbfs > -40.0, "Meta's tone too quiet: {dbfs} dBFS");
    assert_eq!(digits_in, "7");

    // What Meta heard from us: first audio, our 5 once, and our 1000 Hz tone in its recording.
    meta.send(serde_json::json!({"cmd": "close"})).await;
    meta.wait("closed", Duration::from_secs(15)).await;
    let events = meta.drain().to_vec();
    assert!(events.iter().any(|v| v["event"] == "first_audio"), "{events:?}");
    let fives = events.iter().filter(|v| v["event"] == "dtmf" && v["digit"] == "5").count();
    assert_eq!(fives, 1, "Meta saw our 5 once: {events:?}");
    let _ = meta.child.wait().await;
    leg.close().await;
    common::audio::assert_tone(&heard_by_meta, 1000.0);
}
