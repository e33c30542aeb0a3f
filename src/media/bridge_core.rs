//! Decision core of one call's media bridge: WhatsApp leg (WebRTC/Opus) ⇄ phone leg (RTP/G.711).
//!
//! Pure and sans-IO: the per-call media task feeds it inputs with `now`, then drains
//! [`BridgeCore::poll_output`] until it returns a deadline, carries out the [`Command`]s and sleeps
//! until that deadline or the next packet. It never sees payloads; it only decides *what* each
//! 20 ms frame toward each leg is. Its one hard rule: nothing goes to WhatsApp before `accept`,
//! because any media packet before accept makes the WhatsApp client treat the call as answered
//! (whatsapp-calling-api.md §1.3, §8.1).
//!
//! Announcements ([`BridgeCore::play`]) take WhatsApp's frames from the phone for as many ticks
//! as they last. They ride the same tick as everything else toward WhatsApp, so they inherit
//! both rules: nothing before accept, and no tick without a frame after it (§8.1, §8.5).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Durations used by the core. Defaults cite docs/whatsapp-calling-api.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Frame cadence on both legs. Meta requires ptime 20 ms (§5.2); G.711 phones default to 20 ms.
    pub tick: Duration,
    /// ICE+DTLS must finish this long after `start`. Covers DTLS retransmit back-off of 1+2+4 s
    /// (§8.2) and still leaves room under Meta's 20 s no-media-at-start drop (§5.2, §8.5).
    pub webrtc_connect_timeout: Duration,
    /// RTCP-only keep-alive between connect and accept: "keep sending media, or at least RTCP"
    /// (§5.2, §8.5), and RTCP is not audio, so it does not answer the call (§1.3).
    pub rtcp_keepalive_interval: Duration,
    /// No WhatsApp audio this long after accept. Mirrors Meta's 20 s start rule (§5.2, §8.5).
    pub wa_media_start_timeout: Duration,
    /// No WhatsApp audio this long mid-call. Mirrors Meta's 30 s mid-call rule (§5.2, §8.5).
    pub wa_media_timeout: Duration,
    /// No phone RTP this long while bridged. Not a Meta rule; kept equal to Meta's mid-call 30 s
    /// (§5.2) so a dead desk phone is noticed no later than Meta would notice a dead gateway.
    pub phone_media_timeout: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(20),
            webrtc_connect_timeout: Duration::from_secs(10),
            rtcp_keepalive_interval: Duration::from_secs(1),
            wa_media_start_timeout: Duration::from_secs(20),
            wa_media_timeout: Duration::from_secs(30),
            phone_media_timeout: Duration::from_secs(30),
        }
    }
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Carry this out, then poll again.
    Command(Command),
    /// Nothing more to do before this instant: call `handle_timeout` then (or earlier on input).
    Timeout(Instant),
    /// No timer armed: before `start`, or after `Ended` (the shell may stop driving the core).
    NoTimeout,
}

/// Commands as data; the bridge task performs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One 20 ms frame toward WhatsApp. Never emitted before accept and WebRTC connected.
    SendToWhatsApp {
        kind: ToWhatsApp,
    },
    /// One 20 ms frame toward the phone.
    SendToPhone {
        kind: ToPhone,
    },
    RelayDtmfToPhone(char),
    RelayDtmfToWhatsApp(char),
    /// Send an RTCP report (no RTP) on the WhatsApp leg to keep the path alive before accept.
    SendRtcpOnly,
    /// For the call logic.
    Event(BridgeEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToWhatsApp {
    /// Transcode the phone's next frame from its jitter buffer (concealment or comfort noise
    /// when it has none).
    AudioFromPhone,
    /// No phone bridged or it never spoke: comfort noise, so Meta never sees a gap (§5.2, §8.5).
    ComfortNoise,
    /// The announcement's next 20 ms, in place of the phone's.
    Announcement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToPhone {
    AudioFromWhatsApp,
    /// Keeps the phone's/PBX's own RTP timeout quiet while WhatsApp says nothing.
    Silence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    WhatsApp,
    Phone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEvent {
    WebRtcConnected,
    FirstWhatsAppAudio,
    FirstPhoneAudio,
    /// Emitted once per silent stretch; fresh audio re-arms the timer. The core keeps running:
    /// the call logic decides whether to hang up.
    MediaTimeout {
        side: Side,
    },
    /// Always followed by `Ended`: there is no ICE restart or renegotiation toward Meta (§5.2, §8.6).
    WebRtcFailed {
        reason: WebRtcFailure,
    },
    /// A digit that was not relayed, so call logic can log it (or use it, e.g. for an IVR later).
    DtmfDropped {
        from: Side,
        digit: char,
        reason: DtmfDropReason,
    },
    /// The announcement ran out: its last frame has gone to WhatsApp, and the next tick is the
    /// phone's audio or comfort noise again. Once per announcement that plays to its end; not
    /// for one replaced by another, nor when the bridge ends first.
    PlayFinished,
    /// Emitted exactly once; nothing follows it.
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebRtcFailure {
    ConnectTimeout,
    IceFailed,
    DtlsFailed,
    /// ICE consent lost mid-call.
    ConsentLost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfDropReason {
    /// RFC 4733 events are RTP in the audio stream (§5.3), so relaying one before accept would be
    /// media before accept, which answers the call on the WhatsApp client (§1.3, §8.1).
    BeforeAccept,
    /// Accepted, but DTLS has not finished: there are no SRTP keys to send it with.
    WebRtcNotConnected,
    /// The other leg is not bridged (none yet, or on hold).
    NotBridged,
    /// The leg it should go to negotiated no telephone-event, so there is no way to send it.
    /// Decided by the shell, which holds the negotiated media.
    NoTelephoneEvent,
}

/// Coarse state, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeState {
    Idle,
    /// ICE/DTLS running. No audio to WhatsApp; `accept` may already have happened (see `accept`).
    Connecting,
    /// Connected, not accepted. RTCP keep-alive only toward WhatsApp.
    PreAccept,
    /// Connected and accepted: one frame to WhatsApp every tick.
    Accepted,
    Ended,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    #[error("media bridge already started")]
    AlreadyStarted,
    #[error("media bridge not started")]
    NotStarted,
    #[error("media bridge has ended")]
    Ended,
    #[error("invalid DTMF digit {0:?}: RFC 4733 events are 0-9, *, #, A-D")]
    InvalidDtmf(char),
}

/// The phone leg as the bridge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PhoneLeg {
    None,
    Bridged,
    /// Attached but unbridged (hold, transfer in progress): silence to it, comfort noise to WhatsApp.
    Held,
}

/// A shell stalled longer than this many ticks resynchronises instead of bursting catch-up frames.
const MAX_CATCH_UP_TICKS: u32 = 5;

pub struct BridgeCore {
    cfg: BridgeConfig,
    state: BridgeState,
    /// `accept` arrived while still Connecting; becomes `Accepted` on connect.
    accept_pending: bool,
    phone: PhoneLeg,
    timers: TimerTable,
    seen_wa_audio: bool,
    seen_phone_audio: bool,
    /// Frames of the announcement still to go to WhatsApp. Counting starts at the first
    /// accepted tick, so one that arrives before accept waits for it whole.
    announcement: Option<usize>,
    out: VecDeque<Command>,
}

impl BridgeCore {
    pub fn new(cfg: BridgeConfig) -> Self {
        Self {
            cfg,
            state: BridgeState::Idle,
            accept_pending: false,
            phone: PhoneLeg::None,
            timers: TimerTable::default(),
            seen_wa_audio: false,
            seen_phone_audio: false,
            announcement: None,
            out: VecDeque::new(),
        }
    }

    pub fn state(&self) -> BridgeState {
        self.state
    }

    /// Our answer SDP has reached Meta (pre_accept, or accept when pre-accept is skipped): Meta
    /// cannot finish DTLS before that (§5.2), so the connect timeout starts here.
    pub fn start(&mut self, now: Instant) -> Result<(), BridgeError> {
        match self.state {
            BridgeState::Idle => {}
            BridgeState::Ended => return Err(BridgeError::Ended),
            _ => return Err(BridgeError::AlreadyStarted),
        }
        self.state = BridgeState::Connecting;
        self.arm(Timer::WebRtcConnect, now);
        self.arm(Timer::Tick, now);
        Ok(())
    }

    /// ICE and DTLS completed. Duplicates and late reports are ignored.
    pub fn webrtc_connected(&mut self, now: Instant) {
        if self.state != BridgeState::Connecting {
            return;
        }
        self.timers.stop(Timer::WebRtcConnect);
        self.push_event(BridgeEvent::WebRtcConnected);
        if self.accept_pending {
            self.enter_accepted(now);
        } else {
            self.state = BridgeState::PreAccept;
            self.out.push_back(Command::SendRtcpOnly);
            self.arm(Timer::RtcpKeepalive, now);
        }
    }

    /// The WebRTC leg failed. Ends the bridge: no ICE restart toward Meta (§5.2, §8.6).
    pub fn webrtc_failed(&mut self, _now: Instant, reason: WebRtcFailure) {
        if self.is_active() {
            self.fail(reason);
        }
    }

    /// Meta's accept returned 200 OK: audio may flow to WhatsApp (§1.2 "only start sending media
    /// after the accept returns 200 OK"). Allowed while still Connecting: without pre_accept Meta
    /// only gets our SDP in accept, so DTLS necessarily finishes after it (§1.3, §5.2); frames start
    /// on connect. Repeating it is harmless.
    pub fn accept(&mut self, now: Instant) -> Result<(), BridgeError> {
        match self.state {
            BridgeState::Idle => Err(BridgeError::NotStarted),
            BridgeState::Ended => Err(BridgeError::Ended),
            BridgeState::Connecting => {
                self.accept_pending = true;
                Ok(())
            }
            BridgeState::PreAccept => {
                self.enter_accepted(now);
                Ok(())
            }
            BridgeState::Accepted => Ok(()),
        }
    }

    /// The phone leg answered and is attached to the bridge.
    pub fn phone_answered(&mut self, now: Instant) -> Result<(), BridgeError> {
        self.bridge(now)
    }

    /// (Re)attach the phone leg, e.g. after hold. Bridging does not bypass the accept gate.
    pub fn bridge(&mut self, now: Instant) -> Result<(), BridgeError> {
        self.check_active()?;
        if self.phone != PhoneLeg::Bridged {
            self.phone = PhoneLeg::Bridged;
            self.arm(Timer::PhoneMedia, now);
        }
        Ok(())
    }

    /// Detach the phone leg (hold, transfer): silence to it, comfort noise to WhatsApp.
    pub fn unbridge(&mut self, _now: Instant) -> Result<(), BridgeError> {
        self.check_active()?;
        if self.phone == PhoneLeg::Bridged {
            self.phone = PhoneLeg::Held;
            self.timers.stop(Timer::PhoneMedia);
        }
        Ok(())
    }

    /// Play an announcement of `frames` ticks to WhatsApp instead of the phone, replacing any
    /// still playing (which then gets no `PlayFinished`). Before accept it waits for accept:
    /// the gate on WhatsApp's frames is the same as ever. The phone, if any, still hears
    /// WhatsApp. An empty one finishes at the tick it would have started on.
    pub fn play(&mut self, _now: Instant, frames: usize) -> Result<(), BridgeError> {
        self.check_active()?;
        self.announcement = Some(frames);
        Ok(())
    }

    /// Stop everything. Idempotent; `Ended` is emitted once.
    pub fn hangup(&mut self, _now: Instant) {
        if self.state != BridgeState::Ended {
            self.end();
        }
    }

    /// Whether WhatsApp's audio is played to anyone now. Until then the shell need not buffer
    /// it: what would pile up is delay, played out later as lag.
    pub fn plays_whatsapp_audio(&self) -> bool {
        self.is_active() && self.phone == PhoneLeg::Bridged
    }

    /// Whether the phone's audio goes to WhatsApp now (accepted, bridged, no announcement);
    /// see above.
    pub fn plays_phone_audio(&self) -> bool {
        self.state == BridgeState::Accepted
            && self.phone == PhoneLeg::Bridged
            && self.announcement.is_none()
    }

    pub fn wa_audio_received(&mut self, now: Instant) {
        if !self.is_active() {
            return;
        }
        if !self.seen_wa_audio {
            self.seen_wa_audio = true;
            self.push_event(BridgeEvent::FirstWhatsAppAudio);
        }
        if self.state == BridgeState::Accepted {
            self.arm(Timer::WhatsAppMedia, now);
        }
    }

    /// A phone audio packet arrived (the shell buffers it). Ignored unless bridged: a held
    /// phone may play music, which must not reach WhatsApp.
    pub fn phone_audio_received(&mut self, now: Instant) {
        if !self.is_active() || self.phone != PhoneLeg::Bridged {
            return;
        }
        if !self.seen_phone_audio {
            self.seen_phone_audio = true;
            self.push_event(BridgeEvent::FirstPhoneAudio);
        }
        self.arm(Timer::PhoneMedia, now);
    }

    /// One completed digit from WhatsApp. RFC 4733 redundancy (§5.3) is collapsed by the DTMF
    /// decoder before this, so every call is one key press and is relayed exactly once.
    pub fn dtmf_from_wa(&mut self, _now: Instant, digit: char) -> Result<(), BridgeError> {
        let digit = dtmf_digit(digit)?;
        if !self.is_active() {
            return Ok(());
        }
        if self.phone == PhoneLeg::Bridged {
            self.out.push_back(Command::RelayDtmfToPhone(digit));
        } else {
            self.drop_dtmf(Side::WhatsApp, digit, DtmfDropReason::NotBridged);
        }
        Ok(())
    }

    /// One completed digit from the phone. Dropped (not queued) before accept: it would be media
    /// before accept (§5.3, §1.3), and a key pressed while WhatsApp still rings means nothing to
    /// the caller once they pick up.
    pub fn dtmf_from_phone(&mut self, _now: Instant, digit: char) -> Result<(), BridgeError> {
        let digit = dtmf_digit(digit)?;
        if !self.is_active() {
            return Ok(());
        }
        let drop_reason = match (self.state, self.accept_pending, self.phone) {
            (_, _, PhoneLeg::None | PhoneLeg::Held) => Some(DtmfDropReason::NotBridged),
            (BridgeState::Accepted, _, PhoneLeg::Bridged) => None,
            (BridgeState::Connecting, true, _) => Some(DtmfDropReason::WebRtcNotConnected),
            _ => Some(DtmfDropReason::BeforeAccept),
        };
        match drop_reason {
            None => self.out.push_back(Command::RelayDtmfToWhatsApp(digit)),
            Some(reason) => self.drop_dtmf(Side::Phone, digit, reason),
        }
        Ok(())
    }

    /// Fire every timer due at or before `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((timer, due)) = self.timers.take_expired(now) {
            match timer {
                Timer::WebRtcConnect => self.fail(WebRtcFailure::ConnectTimeout),
                Timer::WhatsAppMedia => self.push_event(BridgeEvent::MediaTimeout {
                    side: Side::WhatsApp,
                }),
                Timer::PhoneMedia => {
                    self.push_event(BridgeEvent::MediaTimeout { side: Side::Phone })
                }
                Timer::RtcpKeepalive => {
                    self.out.push_back(Command::SendRtcpOnly);
                    self.arm(Timer::RtcpKeepalive, due);
                }
                Timer::Tick => self.on_tick(due, now),
            }
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(cmd) = self.out.pop_front() {
            return Output::Command(cmd);
        }
        match self.timers.next() {
            Some(at) => Output::Timeout(at),
            None => Output::NoTimeout,
        }
    }

    fn on_tick(&mut self, due: Instant, now: Instant) {
        if self.state == BridgeState::Accepted {
            // Like the phone's side below: once the phone has spoken, every tick draws from
            // its jitter buffer, which turns late and lost packets into concealment and a
            // silent phone into comfort noise.
            let kind = match &mut self.announcement {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    ToWhatsApp::Announcement
                }
                _ if self.seen_phone_audio && self.phone == PhoneLeg::Bridged => {
                    ToWhatsApp::AudioFromPhone
                }
                _ => ToWhatsApp::ComfortNoise,
            };
            self.out.push_back(Command::SendToWhatsApp { kind });
            if self.announcement == Some(0) {
                self.announcement = None;
                self.push_event(BridgeEvent::PlayFinished);
            }
        }
        let to_phone = match self.phone {
            // Once WhatsApp has spoken, every tick draws from its jitter buffer, which knows
            // better than "did a packet arrive this tick": it smooths bursts, and it turns gaps
            // into FEC, concealment or silence.
            PhoneLeg::Bridged if self.seen_wa_audio => Some(ToPhone::AudioFromWhatsApp),
            PhoneLeg::Bridged | PhoneLeg::Held => Some(ToPhone::Silence),
            PhoneLeg::None => None,
        };
        if let Some(kind) = to_phone {
            self.out.push_back(Command::SendToPhone { kind });
        }
        let late = now.saturating_duration_since(due) > self.cfg.tick * MAX_CATCH_UP_TICKS;
        self.arm(Timer::Tick, if late { now } else { due });
    }

    fn enter_accepted(&mut self, now: Instant) {
        self.state = BridgeState::Accepted;
        self.accept_pending = false;
        self.timers.stop(Timer::RtcpKeepalive);
        let at = now + self.cfg.wa_media_start_timeout; // not the mid-call duration
        self.timers.set(Timer::WhatsAppMedia, at);
    }

    /// Arm `t` for its configured duration after `from`.
    fn arm(&mut self, t: Timer, from: Instant) {
        let after = match t {
            Timer::WebRtcConnect => self.cfg.webrtc_connect_timeout,
            Timer::WhatsAppMedia => self.cfg.wa_media_timeout,
            Timer::PhoneMedia => self.cfg.phone_media_timeout,
            Timer::RtcpKeepalive => self.cfg.rtcp_keepalive_interval,
            Timer::Tick => self.cfg.tick,
        };
        self.timers.set(t, from + after);
    }

    fn fail(&mut self, reason: WebRtcFailure) {
        self.push_event(BridgeEvent::WebRtcFailed { reason });
        self.end();
    }

    fn end(&mut self) {
        self.state = BridgeState::Ended;
        self.timers = TimerTable::default();
        // Frames not yet carried out are moot; events already decided still reach call logic.
        self.out.retain(|c| matches!(c, Command::Event(_)));
        self.push_event(BridgeEvent::Ended);
    }

    fn drop_dtmf(&mut self, from: Side, digit: char, reason: DtmfDropReason) {
        self.push_event(BridgeEvent::DtmfDropped {
            from,
            digit,
            reason,
        });
    }

    fn push_event(&mut self, e: BridgeEvent) {
        self.out.push_back(Command::Event(e));
    }

    fn is_active(&self) -> bool {
        self.check_active().is_ok()
    }

    fn check_active(&self) -> Result<(), BridgeError> {
        match self.state {
            BridgeState::Idle => Err(BridgeError::NotStarted),
            BridgeState::Ended => Err(BridgeError::Ended),
            _ => Ok(()),
        }
    }
}

fn dtmf_digit(c: char) -> Result<char, BridgeError> {
    let c = c.to_ascii_uppercase();
    match c {
        '0'..='9' | '*' | '#' | 'A'..='D' => Ok(c),
        _ => Err(BridgeError::InvalidDtmf(c)),
    }
}

/// The core's timers; the next deadline is the earliest armed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    WebRtcConnect,
    WhatsAppMedia,
    PhoneMedia,
    RtcpKeepalive,
    Tick,
}

impl Timer {
    /// Order also breaks ties between equal deadlines: failures before frames.
    const ALL: [Timer; 5] = [
        Timer::WebRtcConnect,
        Timer::WhatsAppMedia,
        Timer::PhoneMedia,
        Timer::RtcpKeepalive,
        Timer::Tick,
    ];
}

#[derive(Debug, Default, Clone, Copy)]
struct TimerTable([Option<Instant>; Timer::ALL.len()]);

impl TimerTable {
    fn set(&mut self, t: Timer, at: Instant) {
        self.0[t as usize] = Some(at);
    }

    fn stop(&mut self, t: Timer) {
        self.0[t as usize] = None;
    }

    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// Disarm and return the earliest timer due at `now`.
    fn take_expired(&mut self, now: Instant) -> Option<(Timer, Instant)> {
        let (timer, due) = Timer::ALL
            .iter()
            .filter_map(|&t| self.0[t as usize].map(|at| (t, at)))
            .filter(|&(_, at)| at <= now)
            .min_by_key(|&(_, at)| at)?;
        self.stop(timer);
        Some((timer, due))
    }
}

#[cfg(test)]
mod tests;
