//! The per-call media bridge task: the WhatsApp WebRTC leg (Opus) ⇄ the phone's plain RTP
//! (G.711), driven by the pure [`BridgeCore`].
//!
//! One tokio task per call owns everything on the hot path (STYLE §7): the [`WebRtcLeg`]'s
//! receivers, the phone's sockets, both codecs, the jitter buffer and the DTMF state. It is a
//! shell (STYLE §1): every input becomes a core call with `now`, then `poll_output` is drained
//! and its commands carried out, then it sleeps until the next packet or the core's deadline.
//!
//! Announcements: [`BridgeCommand::Play`] hands over 8 kHz mono PCM (a WAV a dialplan plays,
//! e.g. "we are closed, we will call you back", with or without a phone attached). It goes to
//! WhatsApp 20 ms per tick through the same Opus encoder as the phone's audio, in place of it,
//! the last frame padded with silence; then [`BridgeEvent::PlayFinished`], and the next tick is
//! the phone or comfort noise again, so Meta never sees a gap (calling API doc §8.5). A Play
//! before [`BridgeCommand::Accept`] waits for it (§8.1); a second Play replaces the first. The
//! phone, if any, keeps hearing WhatsApp; what it says meanwhile is not sent, though a key it
//! presses still is (RFC 4733 takes the tick's slot, as it would from the phone's audio).
//!
//! Allocation: none of our own per packet. Buffers are fields; the DTMF queues are reserved up
//! front; an announcement is read in place from the `Arc` it came in. What allocates per packet
//! is webrtc-rs: its `IncomingRtp::payload` `Bytes` and the `rtp::Packet` it builds inside
//! `send_audio`/`send_dtmf`, plus SRTP.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::bridge_core::{
    BridgeConfig, BridgeCore, BridgeEvent, Command, DtmfDropReason, Output, Side, ToPhone,
    ToWhatsApp, WebRtcFailure,
};
use super::dtmf::{DtmfReceiver, DtmfSender, DEFAULT_TONE_MS};
use super::g711::G711;
use super::latch::{Admit, Latch};
use super::jitter::{Frame as JitterFrame, JitterBuffer, JitterConfig, JitterStats};
use super::opus::RTP_TIMESTAMP_STEP;
use super::rtcp::{self, SenderInfo};
use super::rtp_header::{self, RtpHeader, HEADER_LEN};
use super::tap::Tap;
use super::transcode::{DecodeConfig, Decoded, EncodeConfig, G711ToOpus, OpusToG711, G711_FRAME};
use super::webrtc_leg::{IncomingRtp, WebRtcEvent, WebRtcLeg};

pub use super::rtp_leg::PhoneMedia;

/// Commands from call logic are rare (attach, accept, hold, hang up).
const COMMAND_QUEUE: usize = 8;
/// Events are a handful per call; a full queue means call logic is gone or stuck.
const EVENT_QUEUE: usize = 32;
/// Digits waiting to be played on a leg while another one plays. More are dropped.
const DTMF_QUEUE: usize = 16;
/// RFC 3550 §6.2 allows 5 s as the minimum report interval.
const PHONE_RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// G.711 at 20 ms: 160 samples per frame on the 8 kHz clock.
const PHONE_TS_STEP: u32 = G711_FRAME as u32;
/// Desk phones sit on a LAN or behind a PBX: rarely more than a frame or two of jitter, but
/// the same adaptive buffer as Meta's side copes when they do.
const PHONE_JITTER: JitterConfig = JitterConfig {
    ts_per_frame: PHONE_TS_STEP,
    frame: Duration::from_millis(20),
    slots: 16,
    max_payload: G711_FRAME,
    min_depth: 1,
    max_depth: 6,
};
/// Audio this far past an unfinished DTMF event means its end packets were lost (¼ s).
const PHONE_DTMF_GRACE: u32 = G711::CLOCK_RATE / 4;
const WA_DTMF_GRACE: u32 = 48_000 / 4;
const MTU: usize = 1500;
const SILENT_FRAME: [i16; G711_FRAME] = [0; G711_FRAME];
const CNAME: &str = "whatsip";

pub enum BridgeCommand {
    /// The phone answered: attach and bridge it.
    AttachPhone(PhoneMedia),
    /// Meta's accept returned 200 OK: audio may now flow to WhatsApp.
    Accept,
    /// Play this 8 kHz mono PCM to WhatsApp instead of the phone, replacing any announcement
    /// still playing; [`BridgeEvent::PlayFinished`] when it has all gone. Waits for `Accept`.
    Play(Arc<[i16]>),
    /// Hold/transfer: silence to the phone, comfort noise to WhatsApp.
    Unbridge,
    /// From now on, hand what each side hears to this tap (replacing any earlier one).
    Record(Tap),
    StopRecording,
    Hangup,
}

impl std::fmt::Debug for BridgeCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BridgeCommand::AttachPhone(media) => f.debug_tuple("AttachPhone").field(media).finish(),
            BridgeCommand::Accept => f.write_str("Accept"),
            BridgeCommand::Play(samples) => f
                .debug_tuple("Play")
                .field(&format_args!("{} samples", samples.len()))
                .finish(),
            BridgeCommand::Unbridge => f.write_str("Unbridge"),
            BridgeCommand::Record(_) => f.write_str("Record"),
            BridgeCommand::StopRecording => f.write_str("StopRecording"),
            BridgeCommand::Hangup => f.write_str("Hangup"),
        }
    }
}

pub struct BridgeHandle {
    pub commands: mpsc::Sender<BridgeCommand>,
    pub events: mpsc::Receiver<BridgeEvent>,
    pub task: JoinHandle<BridgeStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgeStats {
    pub wa_packets_received: u64,
    pub wa_frames_sent: u64,
    pub wa_dtmf_packets_sent: u64,
    pub wa_send_errors: u64,
    /// Empty RTCP RRs sent between connect and accept (`SendRtcpOnly`).
    pub wa_rtcp_keepalives_sent: u64,
    /// Ticks after accept with no fresh phone frame: comfort noise went instead.
    pub wa_comfort_noise_frames: u64,
    /// Announcement frames encoded for WhatsApp (a DTMF packet may take one's place).
    pub wa_announcement_frames: u64,
    pub wa_decode_errors: u64,
    pub phone_packets_received: u64,
    /// Wrong source after latching, unknown PT, malformed, or not 20 ms of G.711.
    pub phone_packets_ignored: u64,
    pub phone_packets_sent: u64,
    pub phone_dtmf_packets_sent: u64,
    pub phone_rtcp_sent: u64,
    pub digits_from_wa: u64,
    pub digits_from_phone: u64,
    /// WhatsApp's packets.
    pub jitter: JitterStats,
    /// The phone's packets (the last phone attached).
    pub phone_jitter: JitterStats,
    /// Recorder frames lost because the recorder fell behind.
    pub tap_frames_dropped: u64,
    /// Ticks due, counted at each deadline wake-up: the one slept for, plus every tick that
    /// elapsed meanwhile (the core catches those up). In a bridged call every deadline is a
    /// tick; before accept the 1 s RTCP keep-alive adds one wake-up a second.
    pub ticks: u64,
    /// Of `ticks`, those handled more than one tick after they were due.
    pub late_ticks: u64,
    pub max_tick_lateness_us: u64,
}

impl BridgeStats {
    /// A deadline wake-up `lateness` after the deadline.
    fn record_deadline(&mut self, lateness: Duration, tick: Duration) {
        let (due, late) = ticks_due(lateness, tick);
        self.ticks += due;
        self.late_ticks += late;
        let us = u64::try_from(lateness.as_micros()).unwrap_or(u64::MAX);
        self.max_tick_lateness_us = self.max_tick_lateness_us.max(us);
    }
}

/// Everything a bridge is started with: the core's timing and the two codec set-ups.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BridgeSettings {
    pub timing: BridgeConfig,
    /// Phone → WhatsApp.
    pub encode: EncodeConfig,
    /// WhatsApp → phone.
    pub decode: DecodeConfig,
}

/// Spawns the bridge task. `core.start` runs now: call this once our answer SDP reached Meta.
pub fn spawn_bridge(webrtc: WebRtcLeg, config: BridgeSettings) -> BridgeHandle {
    let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let task = tokio::spawn(async move {
        Bridge::new(webrtc, config, events_tx)
            .run(commands_rx)
            .await
    });
    BridgeHandle {
        commands: commands_tx,
        events: events_rx,
        task,
    }
}

struct Phone {
    /// As negotiated; never rewritten, so the rtcp-mux check keeps its meaning after a latch.
    media: PhoneMedia,
    /// Where RTP and RTCP go (symmetric RTP, see [`Latch`]).
    rtp_to: Latch,
    rtcp_to: Latch,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    sent_any: bool,
    packets_sent: u32,
    octets_sent: u32,
    /// The phone's 20 ms G.711 frames, drawn once per tick while bridged.
    jitter: JitterBuffer,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: Option<DtmfSender>,
    next_rtcp: Instant,
}

struct Bridge {
    leg: WebRtcLeg,
    core: BridgeCore,
    events: mpsc::Sender<BridgeEvent>,
    phone: Option<Phone>,
    /// What `Play` gave, until the core says it has finished or another replaces it.
    announcement: Option<Announcement>,
    /// For the phone's G.711 law; PCMU until a phone attaches (comfort noise needs an encoder
    /// even then, and its law does not matter for it).
    codecs: Codecs,
    jitter: JitterBuffer,
    wa_dtmf_rx: DtmfReceiver,
    wa_dtmf_tx: Option<DtmfSender>,
    wa_dtmf_queue: std::collections::VecDeque<char>,
    phone_dtmf_queue: std::collections::VecDeque<char>,
    wa_timestamp: u32,
    wa_sent_any: bool,
    deadline: Option<Instant>,
    rtp_in: Box<[u8; MTU]>,
    rtcp_in: Box<[u8; MTU]>,
    out: Box<[u8; MTU]>,
    g711: [u8; G711_FRAME],
    tap: Option<Tap>,
    stats: BridgeStats,
    ended: bool,
    tick: Duration,
}

enum Input {
    Command(Option<BridgeCommand>),
    WebRtc(Option<WebRtcEvent>),
    WaRtp(Option<IncomingRtp>),
    PhoneRtp(io::Result<(usize, SocketAddr)>),
    PhoneRtcp(io::Result<(usize, SocketAddr)>),
    Deadline,
}

impl Bridge {
    fn new(leg: WebRtcLeg, config: BridgeSettings, events: mpsc::Sender<BridgeEvent>) -> Self {
        let tick = config.timing.tick;
        let mut core = BridgeCore::new(config.timing);
        // Cannot fail: a fresh core is Idle.
        core.start(Instant::now()).expect("fresh core starts");
        Bridge {
            leg,
            core,
            events,
            phone: None,
            announcement: None,
            codecs: Codecs::new(G711::Pcmu, config.encode, config.decode),
            jitter: JitterBuffer::new(JitterConfig::default()),
            wa_dtmf_rx: DtmfReceiver::new(),
            wa_dtmf_tx: None,
            wa_dtmf_queue: std::collections::VecDeque::with_capacity(DTMF_QUEUE),
            phone_dtmf_queue: std::collections::VecDeque::with_capacity(DTMF_QUEUE),
            wa_timestamp: rand::random(),
            wa_sent_any: false,
            deadline: None,
            rtp_in: Box::new([0; MTU]),
            rtcp_in: Box::new([0; MTU]),
            out: Box::new([0; MTU]),
            g711: [0; G711_FRAME],
            tap: None,
            stats: BridgeStats::default(),
            ended: false,
            tick,
        }
    }

    async fn run(mut self, mut commands: mpsc::Receiver<BridgeCommand>) -> BridgeStats {
        self.drive().await;
        while !self.ended {
            let input = self.next_input(&mut commands).await;
            let now = Instant::now();
            match input {
                Input::Command(Some(cmd)) => self.on_command(now, cmd),
                // Call logic dropped its handle: nobody can hang up later, so hang up now.
                Input::Command(None) => self.core.hangup(now),
                Input::WebRtc(Some(WebRtcEvent::Connected)) => self.core.webrtc_connected(now),
                Input::WebRtc(Some(WebRtcEvent::Failed(reason))) => {
                    tracing::info!(?reason, "WebRTC leg failed");
                    self.core.webrtc_failed(now, reason);
                }
                // Closed without our close(): the leg is gone, same as a failure.
                Input::WebRtc(Some(WebRtcEvent::Closed) | None) => {
                    self.core.webrtc_failed(now, WebRtcFailure::ConsentLost)
                }
                Input::WaRtp(Some(rtp)) => self.on_wa_rtp(now, &rtp),
                Input::WaRtp(None) => self.core.webrtc_failed(now, WebRtcFailure::ConsentLost),
                Input::PhoneRtp(Ok((n, from))) => self.on_phone_rtp(now, n, from),
                Input::PhoneRtp(Err(e)) => tracing::debug!(error = %e, "phone RTP socket"),
                Input::PhoneRtcp(Ok((n, from))) => self.on_phone_rtcp(n, from),
                Input::PhoneRtcp(Err(e)) => tracing::debug!(error = %e, "phone RTCP socket"),
                Input::Deadline => {
                    if let Some(due) = self.deadline {
                        self.stats
                            .record_deadline(now.saturating_duration_since(due), self.tick);
                    }
                    self.core.handle_timeout(now)
                }
            }
            self.drive().await;
            if let Some(tap) = &mut self.tap {
                tap.flush();
            }
            self.maybe_send_phone_rtcp(now).await;
        }
        self.finish_dtmf();
        self.stop_recording();
        self.stats.jitter = self.jitter.stats();
        if let Some(p) = &self.phone {
            self.stats.phone_jitter = p.jitter.stats();
        }
        // DTLS close_notify to Meta; the phone's sockets close when dropped.
        self.leg.close().await;
        self.stats
    }

    async fn next_input(&mut self, commands: &mut mpsc::Receiver<BridgeCommand>) -> Input {
        let deadline = self.deadline;
        let (events, incoming) = self.leg.receivers();
        let phone = self.phone.as_ref().map(|p| &p.media);
        tokio::select! {
            c = commands.recv() => Input::Command(c),
            e = events.recv() => Input::WebRtc(e),
            r = incoming.recv() => Input::WaRtp(r),
            r = recv_opt(phone.map(|m| &m.rtp), &mut self.rtp_in[..]) => Input::PhoneRtp(r),
            r = recv_opt(phone.map(|m| &m.rtcp), &mut self.rtcp_in[..]) => Input::PhoneRtcp(r),
            _ = sleep_opt(deadline) => Input::Deadline,
        }
    }

    fn on_command(&mut self, now: Instant, cmd: BridgeCommand) {
        let result = match cmd {
            BridgeCommand::AttachPhone(media) => {
                self.attach(now, media);
                self.core.phone_answered(now)
            }
            BridgeCommand::Accept => self.core.accept(now),
            BridgeCommand::Play(samples) => {
                let announcement = Announcement::new(samples);
                let frames = announcement.frames();
                self.announcement = Some(announcement);
                self.core.play(now, frames)
            }
            BridgeCommand::Unbridge => self.core.unbridge(now),
            BridgeCommand::Record(tap) => {
                self.stop_recording();
                self.tap = Some(tap);
                Ok(())
            }
            BridgeCommand::StopRecording => {
                self.stop_recording();
                Ok(())
            }
            BridgeCommand::Hangup => {
                self.core.hangup(now);
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "bridge command ignored");
        }
    }

    fn attach(&mut self, now: Instant, media: PhoneMedia) {
        let law = media.codec;
        if self.codecs.law != law {
            self.codecs = Codecs::new(law, self.codecs.encode, self.codecs.decode);
        }
        self.phone = Some(Phone {
            rtp_to: Latch::new(media.remote_rtp),
            rtcp_to: Latch::new(media.remote_rtcp),
            media,
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            sent_any: false,
            packets_sent: 0,
            octets_sent: 0,
            jitter: JitterBuffer::new(PHONE_JITTER),
            dtmf_rx: DtmfReceiver::new(),
            dtmf_tx: None,
            // RFC 3550 §6.2: the first report may go out after half the minimum interval.
            next_rtcp: now + PHONE_RTCP_INTERVAL / 2,
        });
    }

    fn on_wa_rtp(&mut self, now: Instant, rtp: &IncomingRtp) {
        self.stats.wa_packets_received += 1;
        if rtp.payload_type == self.leg.opus_pt() {
            if self.core.plays_whatsapp_audio() {
                self.jitter
                    .push(now, rtp.sequence, rtp.timestamp, &rtp.payload);
            }
            self.wa_dtmf_rx.on_audio(rtp.timestamp, WA_DTMF_GRACE);
            self.core.wa_audio_received(now);
        } else if Some(rtp.payload_type) == self.leg.dtmf_pt() {
            // A malformed event is dropped; the stream itself is fine.
            let _ = self.wa_dtmf_rx.on_packet(rtp.timestamp, &rtp.payload);
        }
        while let Some(d) = self.wa_dtmf_rx.poll_digit() {
            self.stats.digits_from_wa += 1;
            let _ = self.core.dtmf_from_wa(now, d);
        }
    }

    fn on_phone_rtp(&mut self, now: Instant, n: usize, from: SocketAddr) {
        let Some(phone) = self.phone.as_mut() else {
            return;
        };
        let datagram = &self.rtp_in[..n];
        // rtcp-mux phones (RFC 5761) send RTCP here; nothing in it changes what we do.
        if rtcp::is_rtcp(datagram) {
            return;
        }
        let Ok(packet) = rtp_header::parse(datagram) else {
            self.stats.phone_packets_ignored += 1;
            return;
        };
        let h = packet.header;
        let is_audio = h.payload_type == phone.media.codec.payload_type();
        let is_dtmf = Some(h.payload_type) == phone.media.dtmf_pt;
        if !(is_audio || is_dtmf) || phone.rtp_to.admit(from) == Admit::Stranger {
            self.stats.phone_packets_ignored += 1;
            return;
        }
        if is_audio {
            let Ok(frame) = <&[u8; G711_FRAME]>::try_from(packet.payload) else {
                // Only 20 ms is negotiated (Meta's ptime, §5.2); other sizes are not resliced.
                self.stats.phone_packets_ignored += 1;
                return;
            };
            self.stats.phone_packets_received += 1;
            if self.core.plays_phone_audio() {
                phone.jitter.push(now, h.sequence, h.timestamp, frame);
            }
            phone.dtmf_rx.on_audio(h.timestamp, PHONE_DTMF_GRACE);
            self.core.phone_audio_received(now);
        } else {
            self.stats.phone_packets_received += 1;
            let _ = phone.dtmf_rx.on_packet(h.timestamp, packet.payload);
        }
        while let Some(d) = phone.dtmf_rx.poll_digit() {
            self.stats.digits_from_phone += 1;
            let _ = self.core.dtmf_from_phone(now, d);
        }
    }

    /// The phone's reports change nothing we do; only where they come from matters: like RTP,
    /// RTCP is latched once to its real source (symmetric RTCP, RFC 4961).
    fn on_phone_rtcp(&mut self, n: usize, from: SocketAddr) {
        let Some(phone) = self.phone.as_mut() else {
            return;
        };
        if rtcp::parse_compound(&self.rtcp_in[..n]).any(|p| p.is_ok()) {
            phone.rtcp_to.admit(from);
        }
    }

    /// Drains the core's output, carrying out each command, and records the next deadline.
    async fn drive(&mut self) {
        loop {
            match self.core.poll_output() {
                Output::Command(cmd) => self.carry_out(cmd).await,
                Output::Timeout(at) => {
                    self.deadline = Some(at);
                    return;
                }
                Output::NoTimeout => {
                    self.deadline = None;
                    return;
                }
            }
        }
    }

    async fn carry_out(&mut self, cmd: Command) {
        match cmd {
            Command::SendToWhatsApp { kind } => self.send_to_whatsapp(kind).await,
            Command::SendToPhone { kind } => self.send_to_phone(kind).await,
            Command::RelayDtmfToPhone(d) => push_digit(&mut self.phone_dtmf_queue, d),
            Command::RelayDtmfToWhatsApp(d) => push_digit(&mut self.wa_dtmf_queue, d),
            Command::SendRtcpOnly => match self.leg.send_rtcp_keepalive().await {
                Ok(()) => self.stats.wa_rtcp_keepalives_sent += 1,
                Err(e) => tracing::debug!(error = %e, "RTCP keep-alive to WhatsApp"),
            },
            Command::Event(e) => {
                match e {
                    BridgeEvent::Ended => self.ended = true,
                    BridgeEvent::PlayFinished => self.announcement = None,
                    _ => {}
                }
                send_event(&self.events, e);
            }
        }
    }

    async fn send_to_whatsapp(&mut self, kind: ToWhatsApp) {
        let ts = self.wa_timestamp;
        self.wa_timestamp = ts.wrapping_add(RTP_TIMESTAMP_STEP);
        // Taken even when a digit below takes this tick: the core counts an announcement in
        // ticks, and it must run out here when the core says it has.
        let announced = match (kind, self.announcement.as_mut()) {
            (ToWhatsApp::Announcement, Some(a)) => Some(a.advance()),
            _ => None,
        };
        if self.wa_dtmf_tx.is_none() && self.leg.dtmf_pt().is_none() {
            while let Some(d) = self.wa_dtmf_queue.pop_front() {
                self.dtmf_not_relayed(Side::Phone, d);
            }
        }
        if self.wa_dtmf_tx.is_none() {
            if let Some(d) = self.wa_dtmf_queue.pop_front() {
                // RFC 4733 §2.5.1.1: the event's timestamp is its start on the audio timeline
                // (48 kHz); durations count 8 kHz units as Meta's do (§5.3).
                self.wa_dtmf_tx = DtmfSender::new(d, ts, 8000, 20, DEFAULT_TONE_MS).ok();
            }
        }
        if let Some(p) = self.wa_dtmf_tx.as_mut().and_then(DtmfSender::next_packet) {
            let sent = self
                .leg
                .send_dtmf(&p.event.to_bytes(), p.timestamp, p.marker)
                .await;
            self.count_wa_send(sent.is_ok(), true);
            if let Some(tap) = &mut self.tap {
                tap.heard_by_whatsapp(&SILENT_FRAME);
            }
            return;
        }
        // Done: the slot goes back to audio, which also spaces consecutive digits.
        self.wa_dtmf_tx = None;
        let encoder = &mut self.codecs.encoder;
        let frame = match (kind, self.phone.as_mut()) {
            (ToWhatsApp::AudioFromPhone, Some(p)) => p.jitter.pop(Instant::now()),
            _ => JitterFrame::Empty,
        };
        let encoded = match (announced, &self.announcement, frame) {
            (Some(range), Some(a), _) => {
                self.stats.wa_announcement_frames += 1;
                encoder.frame_linear(&a.samples[range])
            }
            // Cannot fail: the buffer takes only `G711_FRAME`-byte payloads (PHONE_JITTER).
            (_, _, JitterFrame::Packet(bytes)) => {
                encoder.frame(Some(bytes.try_into().expect("20 ms")))
            }
            (_, _, JitterFrame::Lost { .. }) => encoder.conceal(),
            (_, _, JitterFrame::Empty) => {
                self.stats.wa_comfort_noise_frames += 1;
                encoder.frame(None)
            }
        };
        match encoded {
            Ok(payload) => {
                let marker = !self.wa_sent_any;
                let sent = self.leg.send_audio(payload, ts, marker).await;
                self.wa_sent_any = true;
                self.count_wa_send(sent.is_ok(), false);
            }
            Err(e) => tracing::warn!(error = %e, "Opus encode failed; frame skipped"),
        }
        if let Some(tap) = &mut self.tap {
            tap.heard_by_whatsapp(self.codecs.encoder.pcm());
        }
    }

    fn count_wa_send(&mut self, ok: bool, dtmf: bool) {
        match (ok, dtmf) {
            (false, _) => self.stats.wa_send_errors += 1,
            (true, true) => self.stats.wa_dtmf_packets_sent += 1,
            (true, false) => self.stats.wa_frames_sent += 1,
        }
    }

    async fn send_to_phone(&mut self, kind: ToPhone) {
        let Some(phone) = self.phone.as_mut() else {
            return;
        };
        let ts = phone.timestamp;
        if phone.dtmf_tx.is_none() {
            if let (Some(d), Some(_)) = (self.phone_dtmf_queue.front(), phone.media.dtmf_pt) {
                phone.dtmf_tx = DtmfSender::new(*d, ts, G711::CLOCK_RATE, 20, DEFAULT_TONE_MS).ok();
                self.phone_dtmf_queue.pop_front();
            } else if phone.media.dtmf_pt.is_none() {
                for d in self.phone_dtmf_queue.drain(..) {
                    let event = BridgeEvent::DtmfDropped {
                        from: Side::WhatsApp,
                        digit: d,
                        reason: DtmfDropReason::NoTelephoneEvent,
                    };
                    send_event(&self.events, event);
                }
            }
        }
        let dtmf = phone.dtmf_tx.as_mut().and_then(DtmfSender::next_packet);
        let (header, payload_len) = match (dtmf, phone.media.dtmf_pt) {
            (Some(p), Some(pt)) => {
                let bytes = p.event.to_bytes();
                self.out[HEADER_LEN..HEADER_LEN + bytes.len()].copy_from_slice(&bytes);
                self.stats.phone_dtmf_packets_sent += 1;
                if let Some(tap) = &mut self.tap {
                    tap.heard_by_phone(&SILENT_FRAME);
                }
                let h = RtpHeader {
                    marker: p.marker,
                    payload_type: pt,
                    sequence: phone.seq,
                    timestamp: p.timestamp,
                    ssrc: phone.ssrc,
                };
                (h, bytes.len())
            }
            _ => {
                phone.dtmf_tx = None;
                let law = phone.media.codec;
                match kind {
                    ToPhone::AudioFromWhatsApp => {
                        let frame = self.jitter.pop(Instant::now());
                        if let Decoded::Corrupt(e) =
                            self.codecs.decoder.frame(frame, &mut self.g711)
                        {
                            self.stats.wa_decode_errors += 1;
                            tracing::debug!(error = %e, "corrupt Opus frame concealed");
                        }
                        if let Some(tap) = &mut self.tap {
                            tap.heard_by_phone(self.codecs.decoder.pcm());
                        }
                    }
                    ToPhone::Silence => {
                        self.g711.fill(law.silence_byte());
                        if let Some(tap) = &mut self.tap {
                            tap.heard_by_phone(&SILENT_FRAME);
                        }
                    }
                }
                self.out[HEADER_LEN..HEADER_LEN + G711_FRAME].copy_from_slice(&self.g711);
                let h = RtpHeader {
                    marker: !phone.sent_any,
                    payload_type: law.payload_type(),
                    sequence: phone.seq,
                    timestamp: ts,
                    ssrc: phone.ssrc,
                };
                (h, G711_FRAME)
            }
        };
        // Cannot fail: `out` is an MTU and the payload at most 160 bytes.
        header.write(&mut self.out[..]).expect("RTP header fits");
        phone.sent_any = true;
        phone.seq = phone.seq.wrapping_add(1);
        phone.timestamp = ts.wrapping_add(PHONE_TS_STEP);
        phone.packets_sent = phone.packets_sent.wrapping_add(1);
        phone.octets_sent = phone.octets_sent.wrapping_add(payload_len as u32);
        let len = HEADER_LEN + payload_len;
        match phone
            .media
            .rtp
            .send_to(&self.out[..len], phone.rtp_to.dest())
            .await
        {
            Ok(_) => self.stats.phone_packets_sent += 1,
            Err(e) => tracing::debug!(error = %e, "sending RTP to the phone"),
        }
    }

    /// A minimal SR + SDES every 5 s (RFC 3550 §6.4.1), no report block: many PBXs time a call
    /// out on missing RTCP, none need our reception statistics.
    async fn maybe_send_phone_rtcp(&mut self, now: Instant) {
        let Some(phone) = self.phone.as_mut() else {
            return;
        };
        if now < phone.next_rtcp || !phone.sent_any {
            return;
        }
        phone.next_rtcp = now + PHONE_RTCP_INTERVAL;
        let info = SenderInfo {
            ntp: rtcp::ntp_timestamp(SystemTime::now()),
            rtp_timestamp: phone.timestamp,
            packet_count: phone.packets_sent,
            octet_count: phone.octets_sent,
        };
        let Ok(n) = rtcp::write_compound(
            &mut self.out[..],
            phone.ssrc,
            Some(&info),
            None,
            CNAME,
            false,
        ) else {
            return;
        };
        // rtcp-mux (RFC 5761) is what was negotiated, whatever the latches learned since.
        let (socket, dest) = if phone.media.remote_rtcp == phone.media.remote_rtp {
            (&phone.media.rtp, phone.rtp_to.dest())
        } else {
            (&phone.media.rtcp, phone.rtcp_to.dest())
        };
        if socket.send_to(&self.out[..n], dest).await.is_ok() {
            self.stats.phone_rtcp_sent += 1;
        }
    }

    /// A digit the other leg has no telephone-event for.
    fn dtmf_not_relayed(&self, from: Side, digit: char) {
        let reason = DtmfDropReason::NoTelephoneEvent;
        send_event(&self.events, BridgeEvent::DtmfDropped { from, digit, reason });
    }

    fn stop_recording(&mut self) {
        if let Some(mut tap) = self.tap.take() {
            tap.flush();
            self.stats.tap_frames_dropped += tap.dropped();
        }
    }

    /// Ending: a digit whose end packets never came still counts, but the core has ended, so
    /// it is only counted, not relayed.
    fn finish_dtmf(&mut self) {
        self.wa_dtmf_rx.flush();
        while self.wa_dtmf_rx.poll_digit().is_some() {
            self.stats.digits_from_wa += 1;
        }
    }
}

/// An announcement on its way to WhatsApp: the samples, read in place, and how far they got.
struct Announcement {
    samples: Arc<[i16]>,
    next: usize,
}

impl Announcement {
    fn new(samples: Arc<[i16]>) -> Self {
        Announcement { samples, next: 0 }
    }

    /// Ticks it lasts; the last one may be partly silence.
    fn frames(&self) -> usize {
        self.samples.len().div_ceil(G711_FRAME)
    }

    /// The next 20 ms of samples (fewer at the end, none past it), now used up.
    fn advance(&mut self) -> Range<usize> {
        let start = self.next;
        self.next = (start + G711_FRAME).min(self.samples.len());
        start..self.next
    }
}

struct Codecs {
    law: G711,
    encode: EncodeConfig,
    decode: DecodeConfig,
    decoder: OpusToG711,
    encoder: G711ToOpus,
}

impl Codecs {
    fn new(law: G711, encode: EncodeConfig, decode: DecodeConfig) -> Codecs {
        // Settings are checked where they are read (config validation); libopus refuses only
        // rates and complexities outside what that check allows.
        let decoder = OpusToG711::new(law, decode).expect("Opus decoder with checked settings");
        let encoder = G711ToOpus::new(law, encode).expect("Opus encoder with checked settings");
        Codecs {
            law,
            encode,
            decode,
            decoder,
            encoder,
        }
    }
}

fn send_event(events: &mpsc::Sender<BridgeEvent>, e: BridgeEvent) {
    if events.try_send(e).is_err() {
        tracing::warn!(event = ?e, "bridge event dropped: call logic not listening");
    }
}

/// Ticks due at a wake-up `lateness` after a tick's deadline (that one and each tick since),
/// and how many of them are more than a tick late.
fn ticks_due(lateness: Duration, tick: Duration) -> (u64, u64) {
    let tick = tick.as_nanos().max(1);
    let lateness = lateness.as_nanos();
    let due = 1 + lateness / tick;
    let late = lateness.saturating_sub(tick).div_ceil(tick);
    (
        u64::try_from(due).unwrap_or(u64::MAX),
        u64::try_from(late).unwrap_or(u64::MAX),
    )
}

fn push_digit(queue: &mut std::collections::VecDeque<char>, d: char) {
    if queue.len() < DTMF_QUEUE {
        queue.push_back(d);
    } else {
        tracing::warn!(digit = %d, "DTMF queue full; digit dropped");
    }
}

async fn recv_opt(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(20);

    #[test]
    fn a_wake_up_within_a_tick_is_one_tick_on_time() {
        assert_eq!(ticks_due(Duration::ZERO, TICK), (1, 0));
        assert_eq!(ticks_due(Duration::from_millis(19), TICK), (1, 0));
    }

    #[test]
    fn exactly_one_tick_late_is_not_late() {
        assert_eq!(ticks_due(TICK, TICK), (2, 0));
    }

    #[test]
    fn a_stall_makes_every_tick_older_than_one_tick_late() {
        // Due at -25 ms (late) and -5 ms.
        assert_eq!(ticks_due(Duration::from_millis(25), TICK), (2, 1));
        // Due at -45, -25 (late) and -5 ms.
        assert_eq!(ticks_due(Duration::from_millis(45), TICK), (3, 2));
    }

    #[test]
    fn an_announcement_is_read_in_frames_with_a_short_last_one() {
        let samples: Arc<[i16]> = (0..400).collect::<Vec<i16>>().into();
        let mut a = Announcement::new(samples);
        assert_eq!(a.frames(), 3);
        let ranges: Vec<_> = (0..4).map(|_| a.advance()).collect();
        assert_eq!(ranges, [0..160, 160..320, 320..400, 400..400]);
        assert_eq!(Announcement::new(Arc::from([])).frames(), 0);
        assert_eq!(Announcement::new(Arc::from([0; 320])).frames(), 2);
    }

    #[test]
    fn play_is_logged_by_length_not_samples() {
        let play = BridgeCommand::Play(Arc::from(vec![7i16; 16_000]));
        assert_eq!(format!("{play:?}"), "Play(16000 samples)");
    }

    #[test]
    fn stats_keep_the_worst_lateness() {
        let mut s = BridgeStats::default();
        s.record_deadline(Duration::from_micros(300), TICK);
        s.record_deadline(Duration::from_millis(45), TICK);
        s.record_deadline(Duration::from_micros(10), TICK);
        assert_eq!((s.ticks, s.late_ticks), (5, 2));
        assert_eq!(s.max_tick_lateness_us, 45_000);
    }
}
