//! The bridge task end to end without SIP: aiortc playing Meta ⇄ our WebRTC leg ⇄ `spawn_bridge`
//! ⇄ a fake desk phone (a UDP socket speaking PCMU at 20 ms). Meta plays 1000 Hz, the phone
//! 440 Hz; each must hear the other's tone, measured, and Meta must get nothing before Accept.
//! DTMF crosses both ways: Meta's 7 reaches the phone as RFC 4733 on PT 101, the phone's 5
//! reaches Meta.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::meta_peer::MetaPeer;
use tokio::net::UdpSocket;
use whatsip::media::bridge::{spawn_bridge, BridgeCommand, BridgeSettings, PhoneMedia};
use whatsip::media::bridge_core::BridgeEvent;
use whatsip::media::tap::{Tap, TapFrame};
use whatsip::media::dtmf::{DtmfReceiver, DtmfSender};
use whatsip::media::g711::G711;
use whatsip::media::rtp_header::{self, RtpHeader};
use whatsip::media::tone::{dominant_frequency, sine};

const PHONE_DTMF_PT: u8 = 101;

#[derive(Default)]
struct PhoneHeard {
    pcm: Vec<i16>,
    digits: String,
    dtmf_packets: usize,
}

/// The fake phone: sends 440 Hz PCMU every 20 ms (and a '5' when told), records what it gets.
async fn fake_phone(
    socket: Arc<UdpSocket>,
    bridge: SocketAddr,
    heard: Arc<Mutex<PhoneHeard>>,
    mut press: tokio::sync::mpsc::Receiver<char>,
) {
    let tone = sine(440.0, 8000, 1.0, 0.3);
    let mut frame = [0u8; 160];
    let mut out = [0u8; 1500];
    let mut buf = [0u8; 1500];
    let (mut seq, mut ts, ssrc) = (1000u16, 5000u32, 0x5eed_0001u32);
    let mut dtmf: Option<DtmfSender> = None;
    let mut dtmf_rx = DtmfReceiver::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut n = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let (h, payload): (RtpHeader, &[u8]) = match dtmf.as_mut().and_then(DtmfSender::next_packet) {
                    Some(p) => {
                        let b = p.event.to_bytes();
                        frame[..4].copy_from_slice(&b);
                        (RtpHeader { marker: p.marker, payload_type: PHONE_DTMF_PT, sequence: seq, timestamp: p.timestamp, ssrc }, &frame[..4])
                    }
                    None => {
                        dtmf = None;
                        let start = (n * 160) % (tone.len() - 160);
                        G711::Pcmu.encode(&tone[start..start + 160], &mut frame);
                        (RtpHeader { marker: n == 0, payload_type: 0, sequence: seq, timestamp: ts, ssrc }, &frame[..])
                    }
                };
                let len = rtp_header::write_packet(&h, payload, &mut out).unwrap();
                let _ = socket.send_to(&out[..len], bridge).await;
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                n += 1;
            }
            Some(d) = press.recv() => {
                dtmf = Some(DtmfSender::new(d, ts, 8000, 20, 100).unwrap());
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((len, _)) = r else { continue };
                let Ok(p) = rtp_header::parse(&buf[..len]) else { continue };
                let mut heard = heard.lock().unwrap();
                if p.header.payload_type == 0 {
                    let mut pcm = [0i16; 160];
                    let k = G711::Pcmu.decode(p.payload, &mut pcm);
                    heard.pcm.extend_from_slice(&pcm[..k]);
                } else if p.header.payload_type == PHONE_DTMF_PT {
                    heard.dtmf_packets += 1;
                    let _ = dtmf_rx.on_packet(p.header.timestamp, p.payload);
                    while let Some(d) = dtmf_rx.poll_digit() {
                        heard.digits.push(d);
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_and_a_fake_phone_hear_each_other_through_the_bridge() {
    let dir = tempfile::tempdir().unwrap();
    let heard_by_meta = dir.path().join("meta-heard.wav");
    let mut meta = MetaPeer::start();
    let base = common::ports::free_udp_block(20);
    let (leg, _) = meta.answered_by_our_leg(1000, &heard_by_meta, (base, base + 19)).await;
    let mut bridge = spawn_bridge(leg, BridgeSettings::default());

    meta.wait("connected", Duration::from_secs(15)).await;
    let ev = tokio::time::timeout(Duration::from_secs(10), bridge.events.recv()).await;
    assert_eq!(ev.ok().flatten(), Some(BridgeEvent::WebRtcConnected));

    // The phone answers and talks; Meta talks. Nothing may reach Meta yet (§1.3, §8.1).
    let phone_sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let bridge_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bridge_rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bridge_addr = bridge_rtp.local_addr().unwrap();
    // The SDP address is wrong on purpose (a NATed phone): symmetric RTP must latch to the source.
    let sdp_addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let phone_rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtcp_addr = phone_rtcp.local_addr().unwrap();
    let rtcp_seen = tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        let mut reports = 0usize;
        while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_secs(3), phone_rtcp.recv_from(&mut buf)).await {
            if whatsip::media::rtcp::is_rtcp(&buf[..n]) && whatsip::media::rtcp::parse_compound(&buf[..n]).all(|p| p.is_ok()) {
                reports += 1;
            }
        }
        reports
    });
    let media = PhoneMedia {
        rtp: bridge_rtp,
        rtcp: bridge_rtcp,
        remote_rtp: sdp_addr,
        remote_rtcp: rtcp_addr,
        codec: G711::Pcmu,
        dtmf_pt: Some(PHONE_DTMF_PT),
    };
    bridge.commands.send(BridgeCommand::AttachPhone(media)).await.unwrap();
    let heard = Arc::new(Mutex::new(PhoneHeard::default()));
    let (press_tx, press_rx) = tokio::sync::mpsc::channel(4);
    let phone = tokio::spawn(fake_phone(phone_sock, bridge_addr, heard.clone(), press_rx));
    meta.send(serde_json::json!({"cmd": "unmute"})).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        !meta.drain().iter().any(|v| v["event"] == "first_audio"),
        "audio reached Meta before Accept: {:?}",
        meta.drain()
    );

    bridge.commands.send(BridgeCommand::Accept).await.unwrap();
    // What a recorder would get: 50 frames a second of both sides; 4 s of slack is plenty.
    let (tap, mut recorded) = Tap::channel(200);
    bridge.commands.send(BridgeCommand::Record(tap)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    meta.send(serde_json::json!({"cmd": "dtmf", "digit": "7"})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    press_tx.send('5').await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    bridge.commands.send(BridgeCommand::StopRecording).await.unwrap();
    bridge.commands.send(BridgeCommand::Hangup).await.unwrap();
    let stats = tokio::time::timeout(Duration::from_secs(10), bridge.task).await.expect("bridge ends").unwrap();
    let mut events = Vec::new();
    while let Ok(e) = bridge.events.try_recv() {
        events.push(e);
    }
    phone.abort();
    meta.send(serde_json::json!({"cmd": "close"})).await;
    meta.wait("closed", Duration::from_secs(15)).await;
    let meta_events = meta.drain().to_vec();
    let _ = meta.child.wait().await;
    eprintln!("bridge stats: {stats:?}\nbridge events: {events:?}");

    // The fake phone heard Meta's 1000 Hz (Opus → G.711) and Meta's 7 as RFC 4733 on PT 101.
    let heard = std::mem::take(&mut *heard.lock().unwrap());
    assert!(heard.pcm.len() > 8000 * 2, "phone heard only {} samples", heard.pcm.len());
    let tail = &heard.pcm[heard.pcm.len() - 8000 * 2..];
    let (hz, dbfs) = dominant_frequency(tail, 8000, 100.0, 3500.0).expect("a tone at the phone");
    eprintln!("phone heard {hz:.1} Hz at {dbfs:.1} dBFS; DTMF packets {}, digits {:?}", heard.dtmf_packets, heard.digits);
    assert!((hz - 1000.0).abs() < 30.0, "phone heard {hz} Hz at {dbfs} dBFS");
    assert!(dbfs > -40.0, "Meta's tone too quiet at the phone: {dbfs} dBFS");
    assert_eq!(heard.digits, "7", "phone got {} DTMF packets", heard.dtmf_packets);

    // An RTCP SR reached the phone's RTCP port (first one 2.5 s after attach).
    let reports = rtcp_seen.await.unwrap();
    assert!(reports >= 1 && stats.phone_rtcp_sent >= 1, "RTCP reports at the phone: {reports}; {stats:?}");

    // Meta heard the phone's 440 Hz (G.711 → Opus) and its 5 once.
    assert!(meta_events.iter().any(|v| v["event"] == "first_audio"), "{meta_events:?}");
    let fives = meta_events.iter().filter(|v| v["event"] == "dtmf" && v["digit"] == "5").count();
    assert_eq!(fives, 1, "Meta saw the phone's 5 once: {meta_events:?}");
    let report = common::audio::assert_tone(&heard_by_meta, 440.0);
    eprintln!("Meta heard {:.1} Hz at {:.1} dBFS over {:.2} s", report.hz, report.dbfs, report.seconds);

    assert!(events.contains(&BridgeEvent::FirstPhoneAudio) && events.contains(&BridgeEvent::FirstWhatsAppAudio), "{events:?}");
    assert_eq!(events.last(), Some(&BridgeEvent::Ended));
    // Between connect and accept (1 s cadence) we kept the path alive with RTCP only.
    assert!(stats.wa_rtcp_keepalives_sent >= 1, "{stats:?}");
    assert!(stats.phone_dtmf_packets_sent >= 4 && stats.wa_dtmf_packets_sent >= 4, "{stats:?}");

    // The recorder tap: both sides of the bridged call, in step, tones where they belong.
    let frames: Vec<TapFrame> = std::iter::from_fn(|| recorded.try_recv().ok()).collect();
    assert!(frames.len() >= 100, "{} tap frames", frames.len());
    assert!(frames.windows(2).all(|w| w[1].index == w[0].index + 1), "tap frames lost");
    assert_eq!(stats.tap_frames_dropped, 0);
    let track = |side: fn(&TapFrame) -> &[i16; 160]| -> Vec<i16> {
        frames.iter().flat_map(|f| side(f).iter().copied()).collect()
    };
    let (to_phone, to_wa) = (track(|f| &f.to_phone), track(|f| &f.to_whatsapp));
    let (hz, _) = dominant_frequency(&to_phone[to_phone.len() - 8000..], 8000, 100.0, 3500.0).unwrap();
    assert!((hz - 1000.0).abs() < 30.0, "tap: the phone heard {hz} Hz");
    let (hz, _) = dominant_frequency(&to_wa[to_wa.len() - 8000..], 8000, 100.0, 3500.0).unwrap();
    assert!((hz - 440.0).abs() < 15.0, "tap: WhatsApp heard {hz} Hz");
}
