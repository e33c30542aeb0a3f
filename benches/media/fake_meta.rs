//! A webrtc-rs peer playing Meta (calling API doc §5.1): ICE-lite, DTLS actpass, Opus at PT 111
//! and telephone-event/8000 at PT 126, one audio m-line, on 127.0.0.1.
//!
//! Copied from `fake_meta()` in `tests/webrtc_leg.rs` and cut down for feeding bridges: what
//! it hears is only counted and time-stamped (see [`Arrivals`]), never decoded. To be folded
//! into `src/sandbox/wa_peer.rs` once that lands.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
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
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSdpType, RTCSessionDescription, Registry, SettingEngineBuilder,
    StatsSelector,
};

use crate::arrivals::Arrivals;

pub const OPUS_PT: u8 = 111;
const DTMF_PT: u8 = 126;
const GATHER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct FakeMeta {
    pc: Box<dyn PeerConnection>,
    pub track: Arc<TrackLocalStaticRTP>,
    pub ssrc: u32,
    state: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    /// The offer as a WhatsApp client would send it.
    pub offer: String,
}

impl FakeMeta {
    /// A peer with its offer made and its candidates gathered. Call inside the runtime that
    /// is to run its driver.
    pub async fn new(ssrc: u32, heard: Arc<Mutex<Arrivals>>) -> FakeMeta {
        let opus = codec(MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1");
        let dtmf = codec(MIME_TYPE_TELEPHONE_EVENT, 8000, 0, "");
        let mut engine = MediaEngine::default();
        for (c, pt) in [(&opus, OPUS_PT), (&dtmf, DTMF_PT)] {
            engine
                .register_codec(
                    RTCRtpCodecParameters {
                        rtp_codec: c.clone(),
                        payload_type: pt,
                    },
                    RtpCodecKind::Audio,
                )
                .expect("codec registers");
        }
        let registry = register_default_interceptors(Registry::new(), &mut engine)
            .expect("default interceptors");
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(true)
            .build();
        let (state_tx, state) = mpsc::unbounded_channel();
        let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(Arc::new(Handler {
                state: state_tx,
                gathered: gathered_tx,
                heard,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .expect("fake Meta peer connection");
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
        pc.add_track(track.clone()).await.expect("add track");
        // add_track narrows the transceiver to the track's codec; Meta offers telephone-event too.
        pc.get_transceivers().await[0]
            .set_codec_preferences(vec![
                RTCRtpCodecParameters {
                    rtp_codec: opus,
                    payload_type: OPUS_PT,
                },
                RTCRtpCodecParameters {
                    rtp_codec: dtmf,
                    payload_type: DTMF_PT,
                },
            ])
            .await
            .expect("codec preferences");
        let offer = pc.create_offer(None).await.expect("offer");
        pc.set_local_description(offer).await.expect("local offer");
        tokio::time::timeout(GATHER_TIMEOUT, gathered.recv())
            .await
            .expect("fake Meta gathered in time")
            .expect("gathering channel open");
        let stack_offer = pc.local_description().await.expect("offer made").sdp;
        FakeMeta {
            pc: Box::new(pc),
            track,
            ssrc,
            state,
            offer: meta_look(&stack_offer),
        }
    }

    /// Takes our answer and waits until ICE and DTLS are up.
    pub async fn connect(&mut self, answer: String, within: Duration) -> Result<(), String> {
        let mut remote = RTCSessionDescription::default();
        remote.sdp_type = RTCSdpType::Answer;
        remote.sdp = answer;
        self.pc
            .set_remote_description(remote)
            .await
            .map_err(|e| format!("fake Meta refused our answer: {e}"))?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.state.recv()).await {
                Ok(Some(RTCPeerConnectionState::Connected)) => return Ok(()),
                Ok(Some(s @ (RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed))) => {
                    return Err(format!("fake Meta {s}"))
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err("fake Meta state channel closed".into()),
                Err(_) => return Err(format!("not connected within {within:?}")),
            }
        }
    }

    /// The SRTP protection profile DTLS settled on, from the peer's stats.
    pub async fn srtp_cipher(&self) -> String {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        report
            .transport()
            .map_or_else(|| "unknown".into(), |t| t.srtp_cipher.clone())
    }

    /// Connection state changes since the last look that mean the call is broken.
    pub fn failures(&mut self) -> Vec<RTCPeerConnectionState> {
        let mut bad = Vec::new();
        while let Ok(s) = self.state.try_recv() {
            if matches!(
                s,
                RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Disconnected
                    | RTCPeerConnectionState::Closed
            ) {
                bad.push(s);
            }
        }
        bad
    }
}

/// One Opus packet as Meta sends it (PT 111, 48 kHz clock).
pub fn packet(ssrc: u32, seq: u16, ts: u32, marker: bool, payload: Bytes) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type: OPUS_PT,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}

/// Forwards state changes and time-stamps every RTP packet of the remote track.
struct Handler {
    state: mpsc::UnboundedSender<RTCPeerConnectionState>,
    gathered: mpsc::UnboundedSender<()>,
    heard: Arc<Mutex<Arrivals>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let heard = self.heard.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    let now = Instant::now();
                    heard
                        .lock()
                        .expect("unpoisoned")
                        .record(now, p.header.timestamp);
                }
            }
        });
    }
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

/// Makes webrtc-rs's offer read like Meta's (§5.1): ice-lite, only PTs 111 and 126 on the
/// m-line, Opus fmtp `minptime=10;useinbandfec=1`, CRLF. ICE credentials, candidates and
/// fingerprint are the stack's own, so the text still describes the real peer.
fn meta_look(stack: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut in_media = false;
    for line in stack.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("m=") {
            if !out.iter().any(|l| l == "a=ice-lite") {
                out.push("a=ice-lite".to_owned());
            }
            in_media = true;
            let mut parts: Vec<&str> = line.split(' ').take(3).collect();
            parts.extend(["111", "126"]);
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
            if pt.is_some_and(|pt| pt != "111" && pt != "126") {
                continue;
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
