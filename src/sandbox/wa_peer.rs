//! A WhatsApp user's side of a call as Meta presents it to a business (§5 of
//! `docs/whatsapp-calling-api.md`): a webrtc-rs peer that is ICE-lite, offers `actpass` (so it
//! ends up DTLS server) or answers `active`, sends and takes Opus at 48 kHz on one SSRC with
//! telephone-event/8000, and writes SDP the way Meta does.
//!
//! It talks like the WhatsApp client: nothing before [`WaPeer::unmute`] (media before accept
//! answers the call, §1.3), then one 20 ms Opus frame per tick from a switchable
//! [`AudioSource`], with RFC 4733 digits in the same stream (§5.3). It records what it hears
//! ([`Heard`]: decoded PCM and per-packet arrival times) and counts the RTCP it gets, so tests
//! can check keep-alive continuity. A seeded random loss on its own sending and receiving
//! paths stands in for a bad mobile network.
//!
//! The logic lives in plain parts next to this shell: SDP shaping (`sdp`), the frame source
//! (`source`), the receiving decoder and log (`receiver`) and the loss model (`loss`); the
//! per-call task that drives them is `media`. [`RawPeer`] (`raw`) is the same peer without
//! that task, for load that sends pre-encoded Opus and only counts what it hears.

mod loss;
mod media;
mod raw;
mod receiver;
mod rtcp_count;
mod sdp;
mod source;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::interceptor::Slot;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_OPUS,
};
use rtc::peer_connection::transport::{RTCDtlsRole, RTCDtlsTransportState, RTCIceRole};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    register_default_interceptors, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSdpType, RTCSessionDescription, Registry, SettingEngineBuilder,
    StatsSelector,
};

use crate::media::dtmf::digit_to_event;
use crate::media::opus::OpusError;
use crate::media::wa_sdp::{parse_meta_offer, WaSdpError};
use crate::media::webrtc_leg::{telephone_event_params, GatherSignal};

pub use raw::{RawPeer, RawSender};
pub use receiver::{Arrival, Heard, PacketKind};
pub use sdp::{ShapeError, META_OPUS_FMTP};
pub use source::AudioSource;

use media::Media;
use rtcp_count::RtcpCounter;
use sdp::Shape;

/// Meta's payload types (§5.1).
pub const OPUS_PT: u8 = 111;
pub const DTMF_PT: u8 = 126;
/// §5.2: Opus on a 48 kHz RTP clock, two channels in the rtpmap as Meta writes it.
const OPUS_CLOCK: u32 = 48_000;
/// §5.2/§5.3: telephone-event only at 8000 Hz; durations count 8 kHz units.
const DTMF_CLOCK: u32 = 8_000;
/// §5.2: 20 ms packets.
const PTIME: Duration = Duration::from_millis(20);
/// Host candidates come from a socket bound at build time: a wait this long means broken.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Meta's labels (§5.1, the FreeSWITCH #2904 capture).
const TRACK_ID: &str = "WhatsAppTrack1";
const STREAM_ID: &str = "WhatsAppAudioStream1";
/// Separates the receive-loss draws from the send-loss draws of the same seed.
const RECEIVE_SEED_SALT: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Debug, Clone, PartialEq)]
pub struct WaPeerConfig {
    /// Our one UDP socket (any free port) and host candidate.
    pub bind_ip: IpAddr,
    /// What the user says once unmuted.
    pub source: AudioSource,
    /// Rate of the microphone PCM and the Opus encoder. Meta's offers say
    /// `sprop-maxcapturerate=16000` (§5.1).
    pub capture_rate: u32,
    /// Rate the received audio is decoded and recorded at (8000, 16000 or 48000).
    pub record_rate: u32,
    pub complexity: u8,
    /// Loss the encoder plans FEC for (a mobile client expects some).
    pub expected_loss_pct: u8,
    /// Probability that a packet we send is lost on the way (0..=1).
    pub send_loss: f64,
    /// Probability that a packet sent to us is lost before we decode it (0..=1).
    pub receive_loss: f64,
    /// Seeds both loss draws: the same seed drops the same packets.
    pub seed: u64,
}

impl Default for WaPeerConfig {
    fn default() -> Self {
        WaPeerConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            source: AudioSource::Silence,
            capture_rate: 16_000,
            record_rate: 16_000,
            complexity: 5,
            expected_loss_pct: 10,
            send_loss: 0.0,
            receive_loss: 0.0,
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WaPeerError {
    #[error("webrtc stack: {0}")]
    Stack(#[from] webrtc::error::Error),
    #[error("the business's SDP: {0}")]
    RemoteSdp(#[from] WaSdpError),
    #[error("shaping the stack's SDP: {0}")]
    Shape(#[from] ShapeError),
    #[error("Opus: {0}")]
    Opus(#[from] OpusError),
    #[error("ICE gathering did not complete within {0:?}")]
    GatherTimeout(Duration),
    #[error("the stack produced no local description")]
    NoLocalDescription,
    #[error("{0:?} is not a DTMF digit (0-9, *, #, A-D)")]
    NotADigit(char),
    #[error("the business's offer has no telephone-event/8000, so no DTMF can be sent (§5.3)")]
    NoDtmf,
    #[error("only the offering peer takes an answer")]
    NotOfferer,
    #[error("the peer's media task has stopped")]
    Stopped,
    #[error("no matching event within {0:?}")]
    EventTimeout(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaPeerEvent {
    /// ICE connected and DTLS-SRTP keys are in place.
    Connected,
    Failed(String),
    /// The first audio packet from the business arrived (after the simulated loss).
    FirstAudio,
    Dtmf(char),
    Closed,
}

/// What the peer sent. `frames` and `dtmf_packets` count every packet made, including the
/// ones the simulated loss then dropped (`dropped_by_loss`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    pub frames: u64,
    pub dtmf_packets: u64,
    pub dropped_by_loss: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaPeerReport {
    pub heard: Heard,
    pub sent: Sent,
    /// Compound RTCP packets from the business (reports, keep-alives, feedback).
    pub rtcp_received: u64,
}

/// What ICE and DTLS settled on, from the stack's transport statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTransport {
    pub ice_controlling: bool,
    pub dtls_client: bool,
    pub dtls_connected: bool,
}

pub struct WaPeer {
    pc: Box<dyn PeerConnection>,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<WaPeerEvent>,
    task: JoinHandle<WaPeerReport>,
    epoch: Instant,
    offerer: bool,
    has_dtmf: bool,
}

enum Command {
    Unmute,
    Mute,
    Source(AudioSource),
    Dtmf(char),
    SendLoss(f64),
    ReceiveLoss(f64),
    Report(oneshot::Sender<WaPeerReport>),
    Stop,
}

impl WaPeer {
    /// A user calls the business: returns the peer and its offer, which reads like the one in
    /// Meta's connect webhook (§2.2, §5.1). Give the business's answer to
    /// [`WaPeer::accept_answer`].
    pub async fn offer(cfg: WaPeerConfig) -> Result<(WaPeer, String), WaPeerError> {
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let mut parts = Parts::build(
            cfg.bind_ip,
            OPUS_PT,
            META_OPUS_FMTP,
            Some(DTMF_PT),
            false,
            forward_to(incoming_tx),
        )
        .await?;
        let made = parts.make_offer().await;
        parts.finish(&cfg, incoming, made, true).await
    }

    /// Takes the business's answer to our offer (what pre_accept or accept carries, §1.2).
    pub async fn accept_answer(&self, answer_sdp: &str) -> Result<(), WaPeerError> {
        if !self.offerer {
            return Err(WaPeerError::NotOfferer);
        }
        set_remote_answer(&*self.pc, answer_sdp).await
    }

    /// The business calls a user: answers its offer as Meta does (§2.3, §5.1): ICE-lite, DTLS
    /// client (`a=setup:active`), the offered Opus and telephone-event payload types.
    pub async fn answer(
        offer_sdp: &str,
        cfg: WaPeerConfig,
    ) -> Result<(WaPeer, String), WaPeerError> {
        let offer = parse_meta_offer(offer_sdp)?;
        let dtmf_pt = offer
            .telephone_event
            .filter(|t| t.clock_rate == DTMF_CLOCK)
            .map(|t| t.pt);
        // The offer's own Opus parameters: webrtc-rs negotiates only exact codec matches when
        // any codec (here telephone-event) matches exactly, and Opus with a parameter valued
        // differently on each side (minptime) would be only a partial one and left out.
        let fmtp = offer
            .opus
            .fmtp
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let (incoming_tx, incoming) = mpsc::unbounded_channel();
        let mut parts = Parts::build(
            cfg.bind_ip,
            offer.opus.pt,
            &fmtp,
            dtmf_pt,
            true,
            forward_to(incoming_tx),
        )
        .await?;
        let made = async {
            let mut remote = RTCSessionDescription::default();
            remote.sdp_type = RTCSdpType::Offer;
            remote.sdp = offer_sdp.to_owned();
            parts.pc.set_remote_description(remote).await?;
            // After the offer, so the track joins the transceiver the offer made and keeps its
            // codec list (telephone-event included).
            parts.pc.add_track(parts.track.clone()).await?;
            let answer = parts.pc.create_answer(None).await?;
            parts.pc.set_local_description(answer).await?;
            let stack = parts.gathered_sdp().await?;
            Ok::<_, WaPeerError>(sdp::shape(&stack, Shape::Answer)?)
        }
        .await;
        parts.finish(&cfg, incoming, made, false).await
    }

    /// The user picks up (or starts talking): frames flow from the next tick.
    pub fn unmute(&self) -> Result<(), WaPeerError> {
        self.command(Command::Unmute)
    }

    /// Stops sending altogether, as before the call is accepted.
    pub fn mute(&self) -> Result<(), WaPeerError> {
        self.command(Command::Mute)
    }

    pub fn set_source(&self, source: AudioSource) -> Result<(), WaPeerError> {
        self.command(Command::Source(source))
    }

    /// Presses a key: an RFC 4733 event of 100 ms on the telephone-event PT, in place of audio
    /// frames (§5.3). Queued while another digit plays; played only while unmuted.
    pub fn dtmf(&self, digit: char) -> Result<(), WaPeerError> {
        if digit_to_event(digit).is_none() {
            return Err(WaPeerError::NotADigit(digit));
        }
        if !self.has_dtmf {
            return Err(WaPeerError::NoDtmf);
        }
        self.command(Command::Dtmf(digit))
    }

    pub fn set_send_loss(&self, probability: f64) -> Result<(), WaPeerError> {
        self.command(Command::SendLoss(probability))
    }

    pub fn set_receive_loss(&self, probability: f64) -> Result<(), WaPeerError> {
        self.command(Command::ReceiveLoss(probability))
    }

    pub fn events(&mut self) -> &mut mpsc::UnboundedReceiver<WaPeerEvent> {
        &mut self.events
    }

    /// Waits up to `limit` for an event `want` accepts; events before it are discarded.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        want: impl FnMut(&WaPeerEvent) -> bool,
    ) -> Result<WaPeerEvent, WaPeerError> {
        wait_for_event(&mut self.events, limit, want).await
    }

    /// Time since the peer was made: the clock of [`Arrival::at`].
    pub fn elapsed(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Everything so far, without stopping.
    pub async fn report(&self) -> Result<WaPeerReport, WaPeerError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Report(tx))?;
        rx.await.map_err(|_| WaPeerError::Stopped)
    }

    /// `None` until the stack has a transport to report on.
    pub async fn transport(&self) -> Option<PeerTransport> {
        let stats = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let t = stats.transport()?;
        Some(PeerTransport {
            ice_controlling: t.ice_role == RTCIceRole::Controlling,
            dtls_client: t.dtls_role == RTCDtlsRole::Client,
            dtls_connected: t.dtls_state == RTCDtlsTransportState::Connected,
        })
    }

    /// Hangs up: stops the media task, then closes the connection (DTLS close_notify to the
    /// business). Returns everything heard and sent.
    pub async fn close(self) -> WaPeerReport {
        let _ = self.commands.send(Command::Stop);
        let report = match self.task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => WaPeerReport::default(),
        };
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "closing the sandbox peer");
        }
        report
    }

    fn command(&self, c: Command) -> Result<(), WaPeerError> {
        self.commands.send(c).map_err(|_| WaPeerError::Stopped)
    }
}

/// A peer connection under construction and the channels its handler feeds.
struct Parts {
    pc: Box<dyn PeerConnection>,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    opus_pt: u8,
    dtmf_pt: Option<u8>,
    epoch: Instant,
    gathered: Option<oneshot::Receiver<()>>,
    events_tx: mpsc::UnboundedSender<WaPeerEvent>,
    events: mpsc::UnboundedReceiver<WaPeerEvent>,
    rtcp_seen: Arc<AtomicU64>,
}

impl Parts {
    /// `on_rtp` gets every RTP packet of the remote track with its arrival time; once it
    /// returns `false` that track is no longer read.
    async fn build<F>(
        bind_ip: IpAddr,
        opus_pt: u8,
        opus_fmtp: &str,
        dtmf_pt: Option<u8>,
        answering: bool,
        on_rtp: F,
    ) -> Result<Parts, WaPeerError>
    where
        F: Fn(Instant, rtp::Packet) -> bool + Send + Sync + 'static,
    {
        let mut engine = MediaEngine::default();
        engine.register_codec(opus_params(opus_pt, opus_fmtp), RtpCodecKind::Audio)?;
        if let Some(pt) = dtmf_pt {
            engine.register_codec(telephone_event_params(pt), RtpCodecKind::Audio)?;
        }
        let rtcp_seen = Arc::new(AtomicU64::new(0));
        // The wire-most slot: every inbound compound passes it before anything can consume
        // it. Congestion control, its usual tenant, is not used for a voice call here.
        let registry = register_default_interceptors(Registry::new(), &mut engine)?
            .with(Slot::CongestionControl, RtcpCounter::new(rtcp_seen.clone()));
        let mut settings = SettingEngineBuilder::new()
            // §5.1: Meta is ICE-lite; the business runs full ICE and controls.
            .with_lite(true)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(bind_ip.is_loopback());
        if answering {
            // §5.1: Meta answers a business offer with a=setup:active.
            settings = settings.with_answering_dtls_role(RTCDtlsRole::Client);
        }
        let (events_tx, events) = mpsc::unbounded_channel();
        let (gathered_signal, gathered) = GatherSignal::new();
        let handler = Arc::new(Handler {
            events: events_tx.clone(),
            on_rtp: Arc::new(on_rtp),
            gathered: gathered_signal,
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .with_handler(handler)
            .with_udp_addrs(vec![SocketAddr::new(bind_ip, 0)])
            .build()
            .await?;
        let ssrc = rand::random::<u32>();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            TRACK_ID.to_owned(),
            STREAM_ID.to_owned(),
            STREAM_ID.to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus_codec(opus_fmtp),
                ..Default::default()
            }],
        )));
        Ok(Parts {
            pc: Box::new(pc),
            track,
            ssrc,
            opus_pt,
            dtmf_pt,
            epoch: Instant::now(),
            gathered: Some(gathered),
            events_tx,
            events,
            rtcp_seen,
        })
    }

    /// Offers as a WhatsApp user calling a business does (§2.2, §5.1): Opus and
    /// telephone-event at Meta's payload types, the SDP shaped like Meta's.
    async fn make_offer(&mut self) -> Result<String, WaPeerError> {
        self.pc.add_track(self.track.clone()).await?;
        // add_track narrows the transceiver to the track's one codec; Meta offers
        // telephone-event too.
        let transceivers = self.pc.get_transceivers().await;
        if let Some(t) = transceivers.first() {
            let opus = opus_params(OPUS_PT, META_OPUS_FMTP);
            t.set_codec_preferences(vec![opus, telephone_event_params(DTMF_PT)])
                .await?;
        }
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        let stack = self.gathered_sdp().await?;
        Ok(sdp::shape(
            &stack,
            Shape::Offer {
                opus_pt: OPUS_PT,
                dtmf_pt: DTMF_PT,
            },
        )?)
    }

    /// Not trickle: Meta's SDP travels whole in one webhook (§2.2, §2.3).
    async fn gathered_sdp(&mut self) -> Result<String, WaPeerError> {
        if let Some(gathered) = self.gathered.take() {
            tokio::time::timeout(GATHER_TIMEOUT, gathered)
                .await
                .map_err(|_| WaPeerError::GatherTimeout(GATHER_TIMEOUT))?
                .map_err(|_| WaPeerError::GatherTimeout(GATHER_TIMEOUT))?;
        }
        let local = self
            .pc
            .local_description()
            .await
            .ok_or(WaPeerError::NoLocalDescription)?;
        Ok(local.sdp)
    }

    /// Starts the media task once the SDP is made, or closes the connection if it was not.
    async fn finish(
        self,
        cfg: &WaPeerConfig,
        incoming: mpsc::UnboundedReceiver<(Instant, rtp::Packet)>,
        made: Result<String, WaPeerError>,
        offerer: bool,
    ) -> Result<(WaPeer, String), WaPeerError> {
        let sdp = match made.and_then(|sdp| Ok((sdp, Media::new(cfg, &self)?))) {
            Ok(ok) => ok,
            Err(e) => {
                let _ = self.pc.close().await;
                return Err(e);
            }
        };
        let (sdp, media) = sdp;
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(media.run(incoming, commands_rx));
        let peer = WaPeer {
            pc: self.pc,
            commands,
            events: self.events,
            task,
            epoch: self.epoch,
            offerer,
            has_dtmf: self.dtmf_pt.is_some(),
        };
        Ok((peer, sdp))
    }
}

async fn set_remote_answer(pc: &dyn PeerConnection, answer_sdp: &str) -> Result<(), WaPeerError> {
    let mut answer = RTCSessionDescription::default();
    answer.sdp_type = RTCSdpType::Answer;
    answer.sdp = answer_sdp.to_owned();
    pc.set_remote_description(answer).await?;
    Ok(())
}

async fn wait_for_event(
    events: &mut mpsc::UnboundedReceiver<WaPeerEvent>,
    limit: Duration,
    mut want: impl FnMut(&WaPeerEvent) -> bool,
) -> Result<WaPeerEvent, WaPeerError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) if want(&e) => return Ok(e),
            Ok(Some(e)) => tracing::debug!(event = ?e, "sandbox peer: event skipped"),
            Ok(None) => return Err(WaPeerError::Stopped),
            Err(_) => return Err(WaPeerError::EventTimeout(limit)),
        }
    }
}

fn rtp_packet(
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    marker: bool,
    payload: Bytes,
) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type,
            sequence_number: sequence,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}

/// The codec our track sends. Its fmtp must equal the media engine's, or webrtc-rs refuses
/// the track.
fn opus_codec(fmtp: &str) -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: OPUS_CLOCK,
        channels: 2,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![],
    }
}

fn opus_params(pt: u8, fmtp: &str) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: opus_codec(fmtp),
        payload_type: pt,
    }
}

/// The media task's inlet. Unbounded: the peer must lose packets only where its loss model
/// says so; a test reads its record at the end, and a call's worth of 20 ms packets is small.
fn forward_to(
    incoming: mpsc::UnboundedSender<(Instant, rtp::Packet)>,
) -> impl Fn(Instant, rtp::Packet) -> bool + Send + Sync + 'static {
    move |at, packet| incoming.send((at, packet)).is_ok()
}

/// webrtc-rs reports through this object's callbacks; it only forwards into channels (and
/// RTP into `on_rtp`).
struct Handler<F> {
    events: mpsc::UnboundedSender<WaPeerEvent>,
    on_rtp: Arc<F>,
    gathered: GatherSignal,
}

#[async_trait::async_trait]
impl<F> PeerConnectionEventHandler for Handler<F>
where
    F: Fn(Instant, rtp::Packet) -> bool + Send + Sync + 'static,
{
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathered.on_state(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let event = match state {
            RTCPeerConnectionState::Connected => WaPeerEvent::Connected,
            RTCPeerConnectionState::Failed => WaPeerEvent::Failed("ICE or DTLS failed".to_owned()),
            RTCPeerConnectionState::Disconnected => {
                WaPeerEvent::Failed("ICE consent lost (disconnected)".to_owned())
            }
            RTCPeerConnectionState::Closed => WaPeerEvent::Closed,
            _ => return,
        };
        tracing::debug!(?event, "sandbox peer state");
        let _ = self.events.send(event);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let on_rtp = self.on_rtp.clone();
        // One reader per remote track; the business sends one (§5.2: single SSRC). Arrival
        // is stamped here, the closest the application gets to the socket.
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    if !on_rtp(Instant::now(), packet) {
                        break;
                    }
                }
            }
        });
    }
}
