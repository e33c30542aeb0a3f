//! Business-initiated calls: our WebRTC leg makes the offer (§2.3 of
//! docs/whatsapp-calling-api.md) and applies the answer. The answering side here is our own
//! answering leg, which answers the way Meta does (`a=setup:active`, Opus 111 and
//! telephone-event 126 kept); media and DTMF must then cross both ways.

use std::time::Duration;

use tokio::time::timeout;
use whatsip::media::wa_sdp::{check_local_sdp, parse_meta_offer, LocalRole};
use whatsip::media::webrtc_leg::{answer_offer, create_offer, WebRtcConfig, WebRtcEvent, WebRtcLeg};

mod common;

const STEP: Duration = Duration::from_secs(10);

fn cfg(base: u16) -> WebRtcConfig {
    WebRtcConfig {
        bind_ip: "127.0.0.1".parse().unwrap(),
        public_ip: None,
        port_min: base,
        port_max: base + 9,
    }
}

async fn connected(leg: &mut WebRtcLeg, who: &str) {
    match timeout(STEP, leg.events().recv()).await {
        Ok(Some(WebRtcEvent::Connected)) => {}
        other => panic!("{who} did not connect: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_offer_meets_metas_rules_and_carries_media_both_ways() {
    let base = common::ports::free_udp_block(20);
    let (offered, offer) = create_offer(&cfg(base)).await.expect("create our offer");

    // What Meta gets in Graph's connect action: §5.2's rules, actpass, Meta's payload types.
    assert_eq!(check_local_sdp(&offer, LocalRole::Offer), Ok(()));
    let parsed = parse_meta_offer(&offer).unwrap();
    assert_eq!(
        (parsed.opus.pt, parsed.telephone_event.map(|t| (t.pt, t.clock_rate))),
        (111, Some((126, 8000)))
    );
    assert_eq!(parsed.ptime, Some(20));
    assert_eq!(parsed.ssrcs.len(), 1, "{offer}");
    assert!(parsed.candidates.iter().any(|c| c.port == offered.local_addr().port()), "{offer}");

    let (mut callee, answer) = answer_offer(&offer, &cfg(base + 10)).await.expect("answer our offer");
    assert!(answer.contains("a=setup:active\r\n"), "{answer}");
    let mut caller = offered.accept_answer(&answer).await.expect("apply the answer");
    connected(&mut caller, "offerer").await;
    connected(&mut callee, "answerer").await;
    assert_eq!(caller.dtmf_pt(), Some(126));
    let info = caller.transport_info().await.unwrap().expect("transport up");
    assert!(info.ice_controlling && info.dtls_connected, "{info:?}");

    // A burst of audio and one DTMF packet each way, in our one SSRC.
    let payload = [0xF8u8, 0xFF, 0xFE]; // an Opus DTX-style frame; content does not matter here
    for i in 0..10u32 {
        caller.send_audio(&payload, 1000 + i * 960, i == 0).await.unwrap();
        callee.send_audio(&payload, 5000 + i * 960, i == 0).await.unwrap();
    }
    caller.send_dtmf(&[7, 0x8a, 0, 160], 10_600, true).await.unwrap();
    callee.send_dtmf(&[5, 0x8a, 0, 160], 14_600, true).await.unwrap();
    for (leg, who) in [(&mut callee, "answerer"), (&mut caller, "offerer")] {
        let mut audio = 0;
        let mut dtmf = None;
        while audio < 10 || dtmf.is_none() {
            let rtp = timeout(STEP, leg.incoming().recv())
                .await
                .unwrap_or_else(|_| panic!("{who} got {audio} audio packets, dtmf {dtmf:?}"))
                .expect("leg open");
            match rtp.payload_type {
                111 => audio += 1,
                126 => dtmf = Some(rtp.payload[0]),
                pt => panic!("{who} got PT {pt}"),
            }
        }
        assert_eq!(dtmf, Some(if who == "answerer" { 7 } else { 5 }), "{who}");
    }
    caller.close().await;
    callee.close().await;
}

#[tokio::test]
async fn an_answer_without_opus_is_refused() {
    let base = common::ports::free_udp_block(10);
    let (offered, offer) = create_offer(&cfg(base)).await.unwrap();
    let no_opus = offer
        .replace("UDP/TLS/RTP/SAVPF 111 126", "UDP/TLS/RTP/SAVPF 126")
        .replace("a=setup:actpass", "a=setup:active");
    let err = match offered.accept_answer(&no_opus).await {
        Ok(_) => panic!("an answer without Opus was applied"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("Meta's answer") && err.contains("opus"), "{err}");
}
