//! The WhatsApp side of a call: one WebRTC peer connection answering Meta's offer (§5 of
//! `docs/whatsapp-calling-api.md`), wrapped so the rest of whatsip sees typed values and two
//! channels instead of webrtc-rs's handler objects.
//!
//! What the wrapper pins down, and why:
//! - ICE full against Meta's ice-lite, so we are controlling (RFC 8445 §6.1.1; §5.2 asks for it);
//!   webrtc-rs uses regular nomination as the controlling agent.
//! - DTLS client: the answer says `a=setup:active` (§5.2, §8.4).
//! - One host candidate on the configured address: no STUN servers, mDNS off.
//! - Codecs: Opus and telephone-event/8000 registered at the payload types Meta offered, so the
//!   stack's answer keeps them and our packets are accepted by the sender.
//! - The stack's answer text goes through `fix_stack_answer` (it lacks `a=ptime:20`) and must then
//!   pass `check_local_sdp`.
//! - Business-initiated calls ([`create_offer`]): we offer `actpass` with Opus 111 and
//!   telephone-event/8000 126, Meta answers `active` (§5.1), which makes us the DTLS server;
//!   ICE is still full and controlling against Meta's ice-lite.
//! - No RTP leaves until `send_audio`/`send_dtmf`: the call logic gates media on Meta's accept (§8.1).
//!   ICE, DTLS and RTCP run from the moment the answer is made.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_TELEPHONE_EVENT,
};
use rtc::peer_connection::transport::{
    RTCDtlsRole, RTCDtlsTransportState, RTCIceCandidateType, RTCIceRole,
};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::{mpsc, oneshot};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceConnectionState,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSdpType, RTCSessionDescription, Registry, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

use super::bridge_core::WebRtcFailure;
use super::wa_sdp::{
    check_local_sdp, fix_stack_answer, fix_stack_offer, parse_meta_answer, parse_meta_offer,
    LocalRole, MetaOffer, WaSdpError,
};

/// Our offer uses Meta's own payload types (§5.1), so Meta's answer needs no renumbering.
const OFFER_OPUS_PT: u8 = 111;
const OFFER_DTMF_PT: u8 = 126;

/// Host candidates come from sockets bound at `answer_offer`, so a wait this long means
/// something is broken, not slow.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Events are a handful per call; a full queue means the owner stopped reading.
const EVENT_QUEUE: usize = 16;
/// About 5 s of 20 ms frames. Audio that waited longer is useless, so overflow is dropped.
const INCOMING_QUEUE: usize = 256;
/// Ports probed per `answer_offer` before giving up on the range.
const MAX_BIND_ATTEMPTS: usize = 64;
/// §5.2: Opus at a 48 kHz RTP clock, two channels in the rtpmap as Meta writes it.
const OPUS_CLOCK: u32 = 48_000;
/// §5.2/§5.3: telephone-event only at 8000 Hz.
const DTMF_CLOCK: u32 = 8_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRtcConfig {
    /// The address our one UDP socket binds to; it is also our host candidate.
    pub bind_ip: IpAddr,
    /// Advertised instead of `bind_ip` when we sit behind a 1:1 NAT.
    pub public_ip: Option<IpAddr>,
    pub port_min: u16,
    pub port_max: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    #[error("Meta's offer: {0}")]
    Offer(#[from] WaSdpError),
    #[error("webrtc stack: {0}")]
    Stack(#[from] webrtc::error::Error),
    #[error("port range {min}-{max} is empty")]
    EmptyPortRange { min: u16, max: u16 },
    #[error("no free UDP port in {min}-{max} on {ip}")]
    NoFreePort { ip: IpAddr, min: u16, max: u16 },
    #[error("ICE gathering did not complete within {0:?}")]
    GatherTimeout(Duration),
    #[error("the stack produced no local description")]
    NoLocalDescription,
    #[error("the stack made a transceiver without a sender")]
    NoSender,
    #[error("Meta's answer: {0}")]
    Answer(WaSdpError),
    #[error("our SDP breaks Meta's rules: {}", .0.join("; "))]
    NonCompliantSdp(Vec<String>),
    #[error("Meta's offer has no telephone-event/8000, so no DTMF can be sent (§5.3)")]
    NoDtmf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebRtcEvent {
    /// ICE connected and DTLS-SRTP keys are in place; media can flow both ways.
    Connected,
    Failed(WebRtcFailure),
    Closed,
}

/// One RTP packet from Meta, already decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRtp {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub payload: Bytes,
}

/// What ICE and DTLS settled on; for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportInfo {
    pub ice_controlling: bool,
    pub dtls_connected: bool,
    /// `(local, remote)` of the selected pair.
    pub selected_pair: Option<(SocketAddr, SocketAddr)>,
}

pub struct WebRtcLeg {
    parts: LegParts,
    sender: Arc<dyn RtpSender>,
    next_seq: AtomicU16,
}

/// Answers Meta's offer. Returns once our answer is final (host candidate included); ICE and
/// DTLS then run in the background and report through [`WebRtcLeg::events`].
pub async fn answer_offer(
    offer_sdp: &str,
    cfg: &WebRtcConfig,
) -> Result<(WebRtcLeg, String), WebRtcError> {
    let offer = parse_meta_offer(offer_sdp)?;
    let opus_pt = offer.opus.pt;
    let dtmf_pt = offer
        .telephone_event
        .filter(|t| t.clock_rate == DTMF_CLOCK)
        .map(|t| t.pt);

    let (parts, gathered) = LegParts::build(cfg, opus_pt, dtmf_pt).await?;
    let negotiated = negotiate(&*parts.pc, offer_sdp, &offer, parts.track.clone(), gathered).await;
    parts.finish(negotiated).await
}

/// A business-initiated call's leg, offered and waiting for Meta's answer (which comes in the
/// connect webhook, §2.3). ICE and DTLS start once the answer is applied.
pub struct OfferedLeg {
    leg: WebRtcLeg,
}

/// Makes our offer for a business-initiated call. Returns once the offer is final (host
/// candidate included); send it in Graph's `connect` action.
pub async fn create_offer(cfg: &WebRtcConfig) -> Result<(OfferedLeg, String), WebRtcError> {
    let (parts, gathered) = LegParts::build(cfg, OFFER_OPUS_PT, Some(OFFER_DTMF_PT)).await?;
    let negotiated = make_offer(&*parts.pc, parts.track.clone(), gathered).await;
    let (leg, offer) = parts.finish(negotiated).await?;
    Ok((OfferedLeg { leg }, offer))
}

impl OfferedLeg {
    /// Applies Meta's answer. Meta keeps the codecs of ours it accepts (§5.1); Opus must be
    /// among them. DTMF stays available only if telephone-event/8000 is too.
    pub async fn accept_answer(mut self, answer_sdp: &str) -> Result<WebRtcLeg, WebRtcError> {
        let result = self.apply(answer_sdp).await;
        match result {
            Ok(()) => Ok(self.leg),
            Err(e) => {
                self.leg.close().await;
                Err(e)
            }
        }
    }

    async fn apply(&mut self, answer_sdp: &str) -> Result<(), WebRtcError> {
        let answer = parse_meta_answer(answer_sdp).map_err(WebRtcError::Answer)?;
        if answer.opus.pt != OFFER_OPUS_PT {
            return Err(WebRtcError::Answer(WaSdpError::StackMismatch {
                what: "opus payload type",
                stack: answer.opus.pt.to_string(),
                offer: OFFER_OPUS_PT.to_string(),
            }));
        }
        self.leg.parts.dtmf_pt = answer
            .telephone_event
            .filter(|t| t.clock_rate == DTMF_CLOCK && t.pt == OFFER_DTMF_PT)
            .map(|t| t.pt);
        let mut remote = RTCSessionDescription::default();
        remote.sdp_type = RTCSdpType::Answer;
        remote.sdp = answer_sdp.to_owned();
        self.leg.parts.pc.set_remote_description(remote).await?;
        Ok(())
    }

    /// Gives up on the call before an answer came (Meta rejected it, or it timed out).
    pub async fn close(self) {
        self.leg.close().await;
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.leg.parts.local_addr
    }
}

/// A leg before its SDP is settled: everything but the sender, which negotiation yields.
struct LegParts {
    pc: Box<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    opus_pt: u8,
    dtmf_pt: Option<u8>,
    local_addr: SocketAddr,
    events: mpsc::Receiver<WebRtcEvent>,
    incoming: mpsc::Receiver<IncomingRtp>,
    dropped_incoming: Arc<AtomicU64>,
}

impl LegParts {
    /// The peer connection on its one socket, our track, and the channels its handler feeds;
    /// also the signal that ICE gathering is complete.
    async fn build(
        cfg: &WebRtcConfig,
        opus_pt: u8,
        dtmf_pt: Option<u8>,
    ) -> Result<(LegParts, oneshot::Receiver<()>), WebRtcError> {
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let (gathered_signal, gathered) = GatherSignal::new();
        let dropped_incoming = Arc::new(AtomicU64::new(0));
        let handler = Arc::new(Handler {
            events: events_tx,
            incoming: incoming_tx,
            gathered: gathered_signal,
            dropped_incoming: dropped_incoming.clone(),
            ice_connected: AtomicBool::new(false),
        });
        let (pc, local_addr) = build_peer_connection(opus_pt, dtmf_pt, cfg, handler).await?;
        let ssrc = rand::random::<u32>();
        let parts = LegParts {
            pc,
            track: local_track(ssrc),
            ssrc,
            opus_pt,
            dtmf_pt,
            local_addr,
            events,
            incoming,
            dropped_incoming,
        };
        Ok((parts, gathered))
    }

    /// The leg once negotiation gave a sender and our SDP; on failure the connection is closed.
    async fn finish(
        self,
        negotiated: Result<(Arc<dyn RtpSender>, String), WebRtcError>,
    ) -> Result<(WebRtcLeg, String), WebRtcError> {
        let (sender, sdp) = match negotiated {
            Ok(ok) => ok,
            Err(e) => {
                let _ = self.pc.close().await;
                return Err(e);
            }
        };
        let leg = WebRtcLeg {
            parts: self,
            sender,
            next_seq: AtomicU16::new(rand::random()),
        };
        Ok((leg, sdp))
    }
}

/// Our one audio track with our one SSRC (§5.2).
fn local_track(ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "whatsip".to_owned(),
        "whatsip-audio".to_owned(),
        "whatsip-audio".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus_codec(),
            ..Default::default()
        }],
    )))
}

impl WebRtcLeg {
    /// Opus payload for one 20 ms frame; the leg stamps seq/ssrc, timestamp advances 960 per
    /// frame (48 kHz RTP clock).
    pub async fn send_audio(
        &self,
        opus_payload: &[u8],
        timestamp: u32,
        marker: bool,
    ) -> Result<(), WebRtcError> {
        self.send(self.parts.opus_pt, opus_payload, timestamp, marker)
            .await
    }

    /// A raw RFC 4733 payload with the negotiated telephone-event PT, in the audio stream's
    /// SSRC and sequence space (§5.3).
    pub async fn send_dtmf(
        &self,
        event_payload: &[u8; 4],
        timestamp: u32,
        marker: bool,
    ) -> Result<(), WebRtcError> {
        let pt = self.parts.dtmf_pt.ok_or(WebRtcError::NoDtmf)?;
        self.send(pt, event_payload, timestamp, marker).await
    }

    /// An empty RTCP receiver report (RFC 3550 §6.4.2) on our SSRC: keeps the path alive
    /// between connect and accept without audio (§5.2, §8.5); RTCP is not media, so it does not
    /// answer the call (§1.3). webrtc-rs sends no SR before our first RTP packet, and an RR only
    /// once Meta's RTP has arrived, so this cannot be left to its interceptors.
    pub async fn send_rtcp_keepalive(&self) -> Result<(), WebRtcError> {
        let rr = rtc::rtcp::receiver_report::ReceiverReport {
            ssrc: self.parts.ssrc,
            ..Default::default()
        };
        self.parts.track.write_rtcp(vec![Box::new(rr)]).await?;
        Ok(())
    }

    pub fn events(&mut self) -> &mut mpsc::Receiver<WebRtcEvent> {
        &mut self.parts.events
    }

    pub fn incoming(&mut self) -> &mut mpsc::Receiver<IncomingRtp> {
        &mut self.parts.incoming
    }

    /// Both receivers at once, for a task that `select!`s over them in one loop.
    pub fn receivers(
        &mut self,
    ) -> (
        &mut mpsc::Receiver<WebRtcEvent>,
        &mut mpsc::Receiver<IncomingRtp>,
    ) {
        (&mut self.parts.events, &mut self.parts.incoming)
    }

    /// Closes the connection (DTLS close_notify to Meta) and stops its driver.
    pub async fn close(self) {
        if let Err(e) = self.parts.pc.close().await {
            tracing::debug!(error = %e, "closing the WebRTC leg");
        }
    }

    pub fn opus_pt(&self) -> u8 {
        self.parts.opus_pt
    }

    pub fn dtmf_pt(&self) -> Option<u8> {
        self.parts.dtmf_pt
    }

    pub fn ssrc(&self) -> u32 {
        self.parts.ssrc
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.parts.local_addr
    }

    /// Incoming packets dropped because the owner fell more than [`INCOMING_QUEUE`] behind.
    pub fn dropped_incoming(&self) -> u64 {
        self.parts.dropped_incoming.load(Ordering::Relaxed)
    }

    pub async fn transport_info(&self) -> Result<Option<TransportInfo>, WebRtcError> {
        let Some(dtls) = self.sender.transport().await? else {
            return Ok(None);
        };
        let ice = dtls.ice_transport();
        let selected_pair = ice.get_selected_candidate_pair().await?.and_then(|pair| {
            let local = pair.local();
            let remote = pair.remote();
            Some((
                SocketAddr::new(local.address.parse().ok()?, local.port),
                SocketAddr::new(remote.address.parse().ok()?, remote.port),
            ))
        });
        Ok(Some(TransportInfo {
            ice_controlling: ice.role().await? == RTCIceRole::Controlling,
            dtls_connected: dtls.state().await? == RTCDtlsTransportState::Connected,
            selected_pair,
        }))
    }

    async fn send(
        &self,
        payload_type: u8,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
    ) -> Result<(), WebRtcError> {
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker,
                payload_type,
                sequence_number: self.next_seq.fetch_add(1, Ordering::Relaxed),
                timestamp,
                ssrc: self.parts.ssrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        // Queues to the driver; the core's own checks (SSRC, negotiated PT) are only logged
        // by webrtc-rs 0.21, which is why both PTs are registered from the offer up front.
        self.parts.track.write_rtp(packet).await?;
        Ok(())
    }
}

async fn build_peer_connection(
    opus_pt: u8,
    dtmf_pt: Option<u8>,
    cfg: &WebRtcConfig,
    handler: Arc<Handler>,
) -> Result<(Box<dyn PeerConnection>, SocketAddr), WebRtcError> {
    let (min, max) = (cfg.port_min, cfg.port_max);
    if min == 0 || max < min {
        return Err(WebRtcError::EmptyPortRange { min, max });
    }
    let span = usize::from(max - min) + 1;
    let start = rand::random::<usize>() % span;
    let mut last_err = None;
    // webrtc-rs binds the sockets itself and has no port-range option (its UDP-network
    // setting is still commented out in 0.21), so we pick a port that binds now and hand
    // that exact address over; a race with another process is retried on the next port.
    for i in (0..span).take(MAX_BIND_ATTEMPTS) {
        // Cannot overflow: the offset is below span, so the port is at most max.
        let port = min + ((start + i) % span) as u16;
        let addr = SocketAddr::new(cfg.bind_ip, port);
        if UdpSocket::bind(addr).is_err() {
            continue;
        }
        let mut media_engine = media_engine(opus_pt, dtmf_pt)?;
        // RTCP sender/receiver reports keep Meta's inactivity timer fed (§5.2); NACK and
        // TWCC come along and are harmless for audio.
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let mut settings = SettingEngineBuilder::new()
            // §5.2/§8.4: answer Meta's actpass as DTLS client.
            .with_answering_dtls_role(RTCDtlsRole::Client)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(cfg.bind_ip.is_loopback());
        if let Some(public) = cfg.public_ip {
            settings =
                settings.with_nat_1to1_ips(vec![public.to_string()], RTCIceCandidateType::Host);
        }
        let built = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .with_handler(handler.clone())
            .with_udp_addrs(vec![addr])
            .build()
            .await;
        match built {
            Ok(pc) => return Ok((Box::new(pc), addr)),
            Err(e) => last_err = Some(e),
        }
    }
    // A port that bound but whose build failed is more likely a stack problem than a busy port.
    if let Some(e) = last_err {
        return Err(WebRtcError::Stack(e));
    }
    Err(WebRtcError::NoFreePort {
        ip: cfg.bind_ip,
        min,
        max,
    })
}

async fn negotiate(
    pc: &dyn PeerConnection,
    offer_sdp: &str,
    offer: &MetaOffer,
    track: Arc<TrackLocalStaticRTP>,
    gathered: oneshot::Receiver<()>,
) -> Result<(Arc<dyn RtpSender>, String), WebRtcError> {
    let mut remote = RTCSessionDescription::default();
    remote.sdp_type = RTCSdpType::Offer;
    remote.sdp = offer_sdp.to_owned();
    pc.set_remote_description(remote).await?;
    // After the offer, so the track joins the transceiver the offer created and keeps the
    // offer's codec list (Opus and telephone-event). Added first, webrtc-rs narrows the
    // transceiver to the track's one codec, and PT 126 packets are then refused on send.
    let sender = pc.add_track(track).await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    let local = gathered_description(pc, gathered).await?;
    let answer = fix_stack_answer(&local, offer)?;
    check_local_sdp(&answer, LocalRole::AnswerTo(offer))
        .map_err(WebRtcError::NonCompliantSdp)?;
    Ok((sender, answer))
}

/// Our local SDP once ICE gathering is complete. Not trickle: Meta takes one SDP (the same in
/// pre_accept and accept, §8.1; the one offer in connect, §2.3).
async fn gathered_description(
    pc: &dyn PeerConnection,
    gathered: oneshot::Receiver<()>,
) -> Result<String, WebRtcError> {
    tokio::time::timeout(GATHER_TIMEOUT, gathered)
        .await
        .map_err(|_| WebRtcError::GatherTimeout(GATHER_TIMEOUT))?
        .map_err(|_| WebRtcError::GatherTimeout(GATHER_TIMEOUT))?;
    let local = pc
        .local_description()
        .await
        .ok_or(WebRtcError::NoLocalDescription)?;
    Ok(local.sdp)
}

async fn make_offer(
    pc: &dyn PeerConnection,
    track: Arc<TrackLocalStaticRTP>,
    gathered: oneshot::Receiver<()>,
) -> Result<(Arc<dyn RtpSender>, String), WebRtcError> {
    // A transceiver made from the track alone offers only the track's codec (Opus), and
    // §5.2 wants telephone-event/8000 in business-initiated offers: list both explicitly.
    let transceiver = pc.add_transceiver_from_track(track, None).await?;
    let codecs = media_engine_codecs(OFFER_OPUS_PT, Some(OFFER_DTMF_PT));
    transceiver.set_codec_preferences(codecs).await?;
    let sender = transceiver
        .sender()
        .await?
        .ok_or(WebRtcError::NoSender)?;
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    let local = gathered_description(pc, gathered).await?;
    let offer = fix_stack_offer(&local)?;
    check_local_sdp(&offer, LocalRole::Offer).map_err(WebRtcError::NonCompliantSdp)?;
    Ok((sender, offer))
}

/// The codec our track sends; its PT comes from the media engine, which holds Meta's.
///
/// Only `useinbandfec=1` in the fmtp: webrtc-rs 0.21 negotiates only the exact matches when
/// any codec matches exactly, and a parameter both sides name with different values makes
/// Opus a partial match. Against Meta's current offers (`minptime=20`, §5.1) a local
/// `minptime=10` left telephone-event as the only negotiated codec, and adding our Opus
/// track then failed. This line never reaches Meta: the stack answers with the codec
/// parameters it negotiated, which are the offer's.
fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: OPUS_CLOCK,
        channels: 2,
        sdp_fmtp_line: "useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

fn media_engine(opus_pt: u8, dtmf_pt: Option<u8>) -> Result<MediaEngine, WebRtcError> {
    let mut engine = MediaEngine::default();
    for codec in media_engine_codecs(opus_pt, dtmf_pt) {
        engine.register_codec(codec, RtpCodecKind::Audio)?;
    }
    Ok(engine)
}

fn media_engine_codecs(opus_pt: u8, dtmf_pt: Option<u8>) -> Vec<RTCRtpCodecParameters> {
    let opus = RTCRtpCodecParameters {
        rtp_codec: opus_codec(),
        payload_type: opus_pt,
    };
    let dtmf = dtmf_pt.map(telephone_event_params);
    std::iter::once(opus).chain(dtmf).collect()
}

/// telephone-event/8000 at `pt`, no fmtp: what Meta offers and takes (§5.3).
pub(crate) fn telephone_event_params(pt: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_TELEPHONE_EVENT.to_owned(),
            clock_rate: DTMF_CLOCK,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
    }
}

/// Tells, once, that ICE gathering is complete: the SDP is then whole (no trickle, §2.3).
/// A webrtc-rs handler holds it and calls [`GatherSignal::on_state`] from
/// `on_ice_gathering_state_change`.
pub(crate) struct GatherSignal(std::sync::Mutex<Option<oneshot::Sender<()>>>);

impl GatherSignal {
    pub(crate) fn new() -> (GatherSignal, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (GatherSignal(std::sync::Mutex::new(Some(tx))), rx)
    }

    pub(crate) fn on_state(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            // Poisoning cannot happen: nothing panics while holding this lock.
            if let Some(tx) = self.0.lock().expect("unpoisoned").take() {
                let _ = tx.send(());
            }
        }
    }
}

/// webrtc-rs reports through this object's callbacks; it only forwards into our channels.
struct Handler {
    events: mpsc::Sender<WebRtcEvent>,
    incoming: mpsc::Sender<IncomingRtp>,
    gathered: GatherSignal,
    dropped_incoming: Arc<AtomicU64>,
    /// ICE reached connected at least once: a later failure is DTLS's or lost consent.
    ice_connected: AtomicBool,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered.on_state(state);
    }

    async fn on_ice_connection_state_change(&self, state: RTCIceConnectionState) {
        if matches!(
            state,
            RTCIceConnectionState::Connected | RTCIceConnectionState::Completed
        ) {
            self.ice_connected.store(true, Ordering::Relaxed);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let ice_connected = self.ice_connected.load(Ordering::Relaxed);
        let event = match state {
            RTCPeerConnectionState::Connected => WebRtcEvent::Connected,
            RTCPeerConnectionState::Failed if ice_connected => {
                WebRtcEvent::Failed(WebRtcFailure::DtlsFailed)
            }
            RTCPeerConnectionState::Failed => WebRtcEvent::Failed(WebRtcFailure::IceFailed),
            RTCPeerConnectionState::Disconnected => {
                WebRtcEvent::Failed(WebRtcFailure::ConsentLost)
            }
            RTCPeerConnectionState::Closed => WebRtcEvent::Closed,
            _ => return,
        };
        tracing::debug!(?event, "WebRTC leg state");
        if self.events.try_send(event).is_err() {
            tracing::warn!(%state, "WebRTC event queue full or closed; event dropped");
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let incoming = self.incoming.clone();
        let dropped = self.dropped_incoming.clone();
        // One reader per remote track; Meta sends one (§5.2: single SSRC).
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                    continue;
                };
                let rtp = IncomingRtp {
                    payload_type: packet.header.payload_type,
                    sequence: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    marker: packet.header.marker,
                    payload: packet.payload,
                };
                match incoming.try_send(rtp) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
        });
    }
}
