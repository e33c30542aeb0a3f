//! A WhatsApp call bridged to a real desk phone, driven through `media`'s own API as the call
//! actor will (issue 4's proof until the actor exists): aiortc plays Meta and offers; our
//! WebRTC leg answers; the SIP side rings a registered baresip phone; once it answers the
//! bridge joins the legs and the call is accepted. A tone from each end is found at the other,
//! DTMF goes both ways, and nothing reaches Meta before accept.

mod common;

use common::audio::{assert_tone, make_tone_wav};
use common::baresip::{AnswerMode, Baresip, BaresipOpts};
use common::meta_peer::MetaPeer;
use std::sync::Arc;
use std::time::Duration;
use whatsip::config::{Settings, UserSettings};
use whatsip::media::bridge::{spawn_bridge, BridgeCommand, BridgeSettings, PhoneMedia};
use whatsip::media::bridge_core::BridgeEvent;
use whatsip::media::ports::PortPool;
use whatsip::sip::leg::{dial, DialRequest, LegOutcome};
use whatsip::sip::sdp::AudioOffer;
use whatsip::sip::SipStack;
use whatsip::store::Store;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_call_bridged_to_a_baresip_phone() {
    let dir = tempfile::tempdir().unwrap();
    let sip_port = common::ports::free_port_pair();
    let rtp_base = {
        let b = common::ports::free_udp_block(42);
        b + b % 2
    };
    let mut settings = Settings { data_dir: dir.path().join("data"), ..Settings::default() };
    settings.sip.listen_udp = format!("127.0.0.1:{sip_port}");
    settings.sip.listen_tcp = String::new();
    settings.sip.users = vec![UserSettings { name: "1001".into(), password: "secret1001".into(), display_name: None }];
    settings.rtp.port_min = rtp_base;
    settings.rtp.port_max = rtp_base + 19;
    settings.validate().unwrap();
    let settings = Arc::new(settings);
    let store = Store::open(&settings.data_dir).unwrap();
    let presence = whatsip::routing::presence::Presence::load(store.clone()).unwrap();
    let stack = SipStack::start(settings.clone(), store, presence).await.unwrap();

    // The desk phone: registers, answers, says 440 Hz.
    let tone = dir.path().join("phone.wav");
    make_tone_wav(&tone, 440.0, 60.0).unwrap();
    let workdir = dir.path().join("phone");
    std::fs::create_dir_all(&workdir).unwrap();
    let mut phone = Baresip::start(
        BaresipOpts::new("1001", &tone)
            .registrar(&format!("127.0.0.1:{sip_port}"), "secret1001")
            .answermode(AnswerMode::Auto)
            .workdir(&workdir),
    )
    .await
    .unwrap();
    phone.wait_registered(WAIT).await.unwrap();

    // Meta offers (it will say 1000 Hz once unmuted); our WebRTC leg answers and the bridge
    // starts, with ICE and DTLS running while the phone rings.
    let heard_by_meta = dir.path().join("meta-heard.wav");
    let mut meta = MetaPeer::start();
    let (leg, _) = meta.answered_by_our_leg(1000, &heard_by_meta, (rtp_base + 20, rtp_base + 39)).await;
    let mut bridge = spawn_bridge(leg, BridgeSettings::default());
    meta.wait("connected", WAIT).await;

    // Ring the phone with the SIP side's call leg.
    let ports = PortPool::new(rtp_base, rtp_base + 19).unwrap();
    let (rtp, rtcp, port) = ports.bind_pair("127.0.0.1".parse().unwrap()).await.unwrap();
    let offer_sdp = AudioOffer { session_id: 7, address: "127.0.0.1".parse().unwrap(), port }.to_sdp();
    let outcome = dial(
        &stack,
        DialRequest {
            target: "1001".parse().unwrap(),
            caller: "447700900123".into(),
            caller_name: Some("WhatsApp +44 7700 900123".into()),
            sdp_offer: offer_sdp,
            ring_timeout: Duration::from_secs(10),
            headers: Vec::new(),
        },
        None,
    )
    .await;
    let LegOutcome::Answered(answered) = outcome else { panic!("phone did not answer: {outcome:?}") };
    phone.wait_event("CALL_ESTABLISHED", WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !meta.drain().iter().any(|v| v["event"] == "first_audio"),
        "audio reached Meta before accept"
    );

    let a = &answered.audio;
    bridge
        .commands
        .send(BridgeCommand::AttachPhone(PhoneMedia {
            rtp,
            rtcp,
            remote_rtp: a.remote_rtp,
            remote_rtcp: a.remote_rtcp,
            codec: a.codec,
            dtmf_pt: a.dtmf_pt,
        }))
        .await
        .unwrap();
    bridge.commands.send(BridgeCommand::Accept).await.unwrap();
    meta.send(serde_json::json!({"cmd": "unmute"})).await;
    meta.wait("first_audio", WAIT).await;

    tokio::time::sleep(Duration::from_secs(2)).await;
    meta.send(serde_json::json!({"cmd": "dtmf", "digit": "7"})).await;
    assert_eq!(phone.wait_dtmf(WAIT).await.unwrap(), '7');
    phone.send_dtmf("5").await.unwrap();
    let five = meta.wait("dtmf", WAIT).await;
    assert_eq!(five["digit"], "5", "{five}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Hang up from the gateway: BYE to the phone, bridge ends, Meta closes.
    answered.hangup().await;
    phone.wait_event("CALL_CLOSED", WAIT).await.unwrap();
    bridge.commands.send(BridgeCommand::Hangup).await.unwrap();
    let mut ended = false;
    while let Ok(Some(e)) = tokio::time::timeout(WAIT, bridge.events.recv()).await {
        if e == BridgeEvent::Ended {
            ended = true;
            break;
        }
    }
    assert!(ended, "bridge reported Ended");
    let _stats = bridge.task.await.unwrap();
    meta.send(serde_json::json!({"cmd": "close"})).await;
    meta.wait("closed", WAIT).await;

    // The phone heard Meta's 1000 Hz; Meta heard the phone's 440 Hz.
    assert_tone(&phone.received_wav().unwrap(), 1000.0);
    assert_tone(&heard_by_meta, 440.0);
}
