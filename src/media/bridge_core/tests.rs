//! Virtual-time tests of the bridge core: whole calls in microseconds.

use super::*;
use BridgeEvent as E;

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const WA_TIMEOUT: E = E::MediaTimeout {
    side: Side::WhatsApp,
};
const PHONE_TIMEOUT: E = E::MediaTimeout { side: Side::Phone };

/// Virtual-time driver after str0m's tests/common `progress`: drain outputs, jump to the
/// deadline, let `feed` inject packets, fire timers. Logs every command with its time.
struct Driver {
    core: BridgeCore,
    t0: Instant,
    now: Instant,
    log: Vec<(Instant, Command)>,
}

impl Driver {
    fn new(cfg: BridgeConfig) -> Self {
        let t0 = Instant::now();
        let core = BridgeCore::new(cfg);
        Self {
            core,
            t0,
            now: t0,
            log: Vec::new(),
        }
    }

    /// Started at t0, WebRTC connected at 100 ms.
    fn connected() -> Self {
        let mut d = Self::new(BridgeConfig::default());
        d.input(|c, now| c.start(now).unwrap());
        d.idle_until(100 * MS);
        d.input(|c, now| c.webrtc_connected(now));
        d
    }

    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    /// Drain outputs, checking the deadline is the earliest armed timer.
    fn drain(&mut self) -> Option<Instant> {
        loop {
            let earliest = self.core.timers.0.iter().flatten().min().copied();
            match self.core.poll_output() {
                Output::Command(c) => self.log.push((self.now, c)),
                Output::Timeout(t) => {
                    assert_eq!(Some(t), earliest);
                    assert!(t >= self.now, "deadline in the past");
                    return Some(t);
                }
                Output::NoTimeout => {
                    assert_eq!(earliest, None);
                    return None;
                }
            }
        }
    }

    fn input(&mut self, f: impl FnOnce(&mut BridgeCore, Instant)) {
        f(&mut self.core, self.now);
        self.drain();
    }

    fn run_until(&mut self, until: Duration, mut feed: impl FnMut(&mut BridgeCore, Instant)) {
        let until = self.at(until);
        while let Some(t) = self.drain().filter(|&t| t <= until) {
            self.now = t;
            feed(&mut self.core, t);
            self.core.handle_timeout(t);
        }
        self.now = until;
    }

    fn idle_until(&mut self, until: Duration) {
        self.run_until(until, |_, _| {});
    }

    fn wa_frames(&self) -> Vec<(Instant, ToWhatsApp)> {
        let f = |(t, c): &(Instant, Command)| match c {
            Command::SendToWhatsApp { kind } => Some((*t, *kind)),
            _ => None,
        };
        self.log.iter().filter_map(f).collect()
    }

    fn events(&self) -> Vec<E> {
        let f = |(_, c): &(Instant, Command)| match c {
            Command::Event(e) => Some(*e),
            _ => None,
        };
        self.log.iter().filter_map(f).collect()
    }

    /// When `e` was emitted, relative to t0.
    fn event_times(&self, e: E) -> Vec<Duration> {
        let hits = self.log.iter().filter(|(_, c)| *c == Command::Event(e));
        hits.map(|(t, _)| *t - self.t0).collect()
    }

    fn count(&self, cmd: Command, from: Duration, to: Duration) -> usize {
        let (from, to) = (self.at(from), self.at(to));
        let hits = self
            .log
            .iter()
            .filter(|(t, c)| *t >= from && *t <= to && *c == cmd);
        hits.count()
    }
}

fn talking(c: &mut BridgeCore, now: Instant) {
    c.phone_audio_received(now);
    c.wa_audio_received(now);
}

/// The phone sends nothing: the shell's jitter buffer runs dry and comfort noise goes out,
/// but the core still asks for the phone's frames.
fn phone_quiet(c: &mut BridgeCore, now: Instant) {
    c.wa_audio_received(now);
}

const TO_WA_AUDIO: Command = Command::SendToWhatsApp {
    kind: ToWhatsApp::AudioFromPhone,
};
const TO_WA_CN: Command = Command::SendToWhatsApp {
    kind: ToWhatsApp::ComfortNoise,
};
const TO_PHONE_AUDIO: Command = Command::SendToPhone {
    kind: ToPhone::AudioFromWhatsApp,
};
const TO_PHONE_SILENCE: Command = Command::SendToPhone {
    kind: ToPhone::Silence,
};

#[test]
fn nothing_to_whatsapp_before_accept_even_when_phone_talks() {
    let mut d = Driver::connected();
    d.idle_until(200 * MS);
    d.input(|c, now| c.phone_answered(now).unwrap());
    d.run_until(25 * SEC, talking);
    assert!(d.wa_frames().is_empty());
    assert_eq!(d.core.state(), BridgeState::PreAccept);
    // RTCP-only at connect (100 ms), then every second: 1.1 s .. 24.1 s.
    assert_eq!(d.count(Command::SendRtcpOnly, Duration::ZERO, 25 * SEC), 25);
    assert_eq!(
        d.count(TO_PHONE_AUDIO, Duration::ZERO, 25 * SEC),
        (25_000 - 200) / 20
    );
    assert_eq!(d.event_times(E::FirstPhoneAudio), [220 * MS]);

    d.input(|c, now| c.accept(now).unwrap());
    d.run_until(26 * SEC, talking);
    let frames = d.wa_frames();
    assert_eq!(frames.len(), 50);
    assert_eq!(frames[0].0, d.at(25 * SEC + 20 * MS));
    assert_eq!(d.count(TO_WA_AUDIO, 25 * SEC, 26 * SEC), 50);
    assert_eq!(d.count(Command::SendRtcpOnly, 25 * SEC, 26 * SEC), 0);
}

#[test]
fn comfort_noise_fills_every_tick_after_accept_over_60s() {
    let mut d = Driver::connected();
    d.input(|c, now| c.accept(now).unwrap());
    d.run_until(10 * SEC, |c, now| c.wa_audio_received(now)); // no phone leg yet
    d.input(|c, now| c.phone_answered(now).unwrap());
    d.run_until(30 * SEC, talking);
    d.run_until(40 * SEC, phone_quiet);
    d.input(|c, now| c.unbridge(now).unwrap());
    d.run_until(50 * SEC, talking); // a held phone's audio must not reach WhatsApp
    d.input(|c, now| c.bridge(now).unwrap());
    d.run_until(60 * SEC, talking);

    let frames = d.wa_frames();
    let gaps = frames.windows(2).map(|w| w[1].0 - w[0].0);
    assert!(gaps.max().unwrap() <= 20 * MS);
    assert_eq!(frames[0].0, d.at(120 * MS));
    assert_eq!(frames.last().unwrap().0, d.at(60 * SEC));
    let ms = |ms: u32| ms * MS;
    assert_eq!(d.count(TO_WA_CN, ms(100), ms(10_000)), 495);
    assert_eq!(d.count(TO_WA_AUDIO, ms(10_020), ms(40_000)), 1500);
    assert_eq!(d.count(TO_WA_CN, ms(40_020), ms(50_000)), 500);
    assert_eq!(d.count(TO_WA_AUDIO, ms(50_020), ms(60_000)), 500);
    assert_eq!(
        d.count(TO_PHONE_SILENCE, ms(40_020), ms(50_000)),
        500,
        "held phone"
    );
    assert_eq!(d.count(TO_PHONE_AUDIO, ms(10_020), ms(60_000)), 2000);
    assert!(!d
        .events()
        .iter()
        .any(|e| matches!(e, E::MediaTimeout { .. })));
}

#[test]
fn accept_before_webrtc_connected_waits_for_connect() {
    let mut d = Driver::new(BridgeConfig::default());
    d.input(|c, now| c.start(now).unwrap());
    d.input(|c, now| c.accept(now).unwrap()); // pre_accept skipped: our SDP goes in accept
    d.input(|c, now| c.phone_answered(now).unwrap());
    d.input(|c, now| c.dtmf_from_phone(now, '7').unwrap());
    d.run_until(3 * SEC, talking);
    assert!(d.wa_frames().is_empty());
    assert_eq!(d.core.state(), BridgeState::Connecting);
    d.input(|c, now| c.webrtc_connected(now));
    assert_eq!(d.core.state(), BridgeState::Accepted);
    d.run_until(4 * SEC, talking);
    assert_eq!(d.count(TO_WA_AUDIO, 3 * SEC, 4 * SEC), 50);
    assert_eq!(d.count(Command::SendRtcpOnly, Duration::ZERO, 4 * SEC), 0);
    let reason = DtmfDropReason::WebRtcNotConnected;
    let dropped = E::DtmfDropped {
        from: Side::Phone,
        digit: '7',
        reason,
    };
    assert_eq!(d.events()[..2], [dropped, E::FirstPhoneAudio]);
    assert_eq!(d.event_times(E::WebRtcConnected), [3 * SEC]);
}

#[test]
fn webrtc_connect_timeout_fails_and_ends() {
    let mut d = Driver::new(BridgeConfig::default());
    d.input(|c, now| c.start(now).unwrap());
    d.input(|c, now| c.accept(now).unwrap());
    d.idle_until(30 * SEC);
    let failed = E::WebRtcFailed {
        reason: WebRtcFailure::ConnectTimeout,
    };
    assert_eq!(d.events(), [failed, E::Ended]);
    assert_eq!(d.event_times(E::Ended), [10 * SEC]);
    assert_eq!(d.core.poll_output(), Output::NoTimeout);
    assert!(d.wa_frames().is_empty());
}

#[test]
fn webrtc_failure_mid_call_ends_once() {
    let mut d = Driver::connected();
    d.input(|c, now| c.accept(now).unwrap());
    d.run_until(5 * SEC, talking);
    d.input(|c, now| c.webrtc_failed(now, WebRtcFailure::ConsentLost));
    d.input(|c, now| c.webrtc_failed(now, WebRtcFailure::IceFailed));
    d.input(|c, now| c.hangup(now));
    let failed = E::WebRtcFailed {
        reason: WebRtcFailure::ConsentLost,
    };
    assert_eq!(
        d.events(),
        [E::WebRtcConnected, E::FirstWhatsAppAudio, failed, E::Ended]
    );
}

#[test]
fn whatsapp_media_timeout_fires_once_per_silence() {
    let mut d = Driver::connected();
    d.input(|c, now| c.accept(now).unwrap()); // at 100 ms; WhatsApp never speaks
    d.idle_until(120 * SEC);
    assert_eq!(
        d.event_times(WA_TIMEOUT),
        [20 * SEC + 100 * MS],
        "§5.2 start rule, once"
    );
    assert_eq!(
        d.wa_frames().len(),
        (120_000 - 100) / 20,
        "comfort noise keeps flowing"
    );
    d.input(|c, now| c.wa_audio_received(now)); // resumes at 120 s, then stops again
    d.idle_until(300 * SEC);
    assert_eq!(d.event_times(WA_TIMEOUT), [20 * SEC + 100 * MS, 150 * SEC]);
    assert_eq!(
        d.core.state(),
        BridgeState::Accepted,
        "call logic decides, not the core"
    );
}

#[test]
fn phone_media_timeout_fires_once_and_unbridge_disarms_it() {
    let mut d = Driver::connected();
    d.input(|c, now| c.accept(now).unwrap());
    d.input(|c, now| c.phone_answered(now).unwrap());
    d.run_until(10 * SEC, talking);
    d.run_until(100 * SEC, phone_quiet);
    assert_eq!(d.event_times(PHONE_TIMEOUT), [40 * SEC]);
    d.input(|c, now| c.bridge(now).unwrap()); // already bridged: no-op
    d.input(|c, now| c.phone_audio_received(now)); // re-arms...
    d.input(|c, now| c.unbridge(now).unwrap()); // ...and hold disarms
    d.run_until(200 * SEC, |c, now| c.wa_audio_received(now));
    assert_eq!(d.event_times(PHONE_TIMEOUT).len(), 1);
    assert!(d.event_times(WA_TIMEOUT).is_empty());
}

#[test]
fn hangup_stops_everything_and_ends_once() {
    let wall = std::time::Instant::now();
    let mut d = Driver::connected();
    d.input(|c, now| c.accept(now).unwrap());
    d.input(|c, now| c.phone_answered(now).unwrap());
    d.run_until(45 * SEC, talking);
    // Frames are queued when hangup comes: they are discarded; decided events are not.
    d.now = d.at(45 * SEC + 20 * MS);
    d.core.handle_timeout(d.now);
    d.core.dtmf_from_wa(d.now, '5').unwrap();
    d.core.hangup(d.now);
    let before = d.log.len();
    d.drain();
    assert_eq!(d.log[before..], [(d.now, Command::Event(E::Ended))]);
    assert_eq!(d.core.state(), BridgeState::Ended);

    d.input(|c, now| {
        c.hangup(now);
        talking(c, now);
        c.webrtc_connected(now);
        c.webrtc_failed(now, WebRtcFailure::DtlsFailed);
        c.handle_timeout(now + 3600 * SEC);
        assert_eq!(c.accept(now), Err(BridgeError::Ended));
        assert_eq!(c.bridge(now), Err(BridgeError::Ended));
        assert_eq!(c.unbridge(now), Err(BridgeError::Ended));
        assert_eq!(c.start(now), Err(BridgeError::Ended));
        assert_eq!(c.dtmf_from_phone(now, '1'), Ok(()));
        assert_eq!(c.dtmf_from_wa(now, '1'), Ok(()));
    });
    assert_eq!(d.log.len(), before + 1, "no output after Ended");
    assert_eq!(d.core.poll_output(), Output::NoTimeout);
    let first = [
        E::WebRtcConnected,
        E::FirstPhoneAudio,
        E::FirstWhatsAppAudio,
    ];
    assert_eq!(d.events(), [&first[..], &[E::Ended]].concat());
    assert_eq!(d.count(TO_WA_AUDIO, Duration::ZERO, 46 * SEC), 45 * 50 - 5);
    assert!(
        wall.elapsed() < SEC,
        "a 45 s call in virtual time took {:?}",
        wall.elapsed()
    );
}

#[test]
fn dtmf_relayed_once_each_way_and_gated_before_accept() {
    let mut d = Driver::new(BridgeConfig::default());
    d.input(|c, now| c.start(now).unwrap());
    d.input(|c, now| c.dtmf_from_wa(now, '1').unwrap()); // no phone yet
    d.input(|c, now| c.phone_answered(now).unwrap());
    d.input(|c, now| c.dtmf_from_phone(now, '2').unwrap()); // connecting, not accepted
    d.input(|c, now| c.webrtc_connected(now));
    d.input(|c, now| c.dtmf_from_phone(now, '3').unwrap()); // pre-accept
    d.input(|c, now| c.dtmf_from_wa(now, '4').unwrap()); // toward the phone: fine
    d.input(|c, now| c.accept(now).unwrap());
    d.input(|c, now| c.dtmf_from_phone(now, '#').unwrap());
    d.input(|c, now| c.dtmf_from_wa(now, 'a').unwrap());
    d.input(|c, now| c.dtmf_from_wa(now, 'a').unwrap()); // pressed twice: relayed twice
    d.input(|c, now| c.unbridge(now).unwrap());
    d.input(|c, now| c.dtmf_from_phone(now, '9').unwrap());
    d.idle_until(SEC);
    assert_eq!(
        d.core.dtmf_from_wa(d.now, 'x'),
        Err(BridgeError::InvalidDtmf('X'))
    );

    let dtmf: Vec<_> = d
        .log
        .iter()
        .map(|(_, c)| c.clone())
        .filter(|c| match c {
            Command::RelayDtmfToPhone(_) | Command::RelayDtmfToWhatsApp(_) => true,
            Command::Event(e) => matches!(e, E::DtmfDropped { .. }),
            _ => false,
        })
        .collect();
    let dropped = |from, digit, reason| {
        Command::Event(E::DtmfDropped {
            from,
            digit,
            reason,
        })
    };
    use DtmfDropReason::*;
    assert_eq!(
        dtmf,
        [
            dropped(Side::WhatsApp, '1', NotBridged),
            dropped(Side::Phone, '2', BeforeAccept),
            dropped(Side::Phone, '3', BeforeAccept),
            Command::RelayDtmfToPhone('4'),
            Command::RelayDtmfToWhatsApp('#'),
            Command::RelayDtmfToPhone('A'),
            Command::RelayDtmfToPhone('A'),
            dropped(Side::Phone, '9', NotBridged),
        ]
    );
}

#[test]
fn deadline_is_earliest_armed_timer() {
    // A slow tick lets the other timers take turns at being the earliest.
    let cfg = BridgeConfig {
        tick: 100 * SEC,
        phone_media_timeout: 5 * SEC,
        ..BridgeConfig::default()
    };
    let mut d = Driver::new(cfg);
    d.input(|c, now| {
        assert_eq!(c.accept(now), Err(BridgeError::NotStarted));
        assert_eq!(c.bridge(now), Err(BridgeError::NotStarted));
        c.wa_audio_received(now);
        c.webrtc_connected(now);
    });
    assert_eq!(d.drain(), None, "idle: nothing armed, inputs ignored");
    d.input(|c, now| c.start(now).unwrap());
    assert_eq!(d.core.start(d.now), Err(BridgeError::AlreadyStarted));
    assert_eq!(d.drain(), Some(d.at(10 * SEC)), "connect timeout");
    d.input(|c, now| c.webrtc_connected(now));
    assert_eq!(d.drain(), Some(d.at(SEC)), "RTCP keep-alive");
    d.input(|c, now| c.phone_answered(now).unwrap());
    assert_eq!(d.drain(), Some(d.at(SEC)), "keep-alive before phone media");
    d.input(|c, now| c.accept(now).unwrap());
    assert_eq!(d.drain(), Some(d.at(5 * SEC)), "phone media");
    d.input(|c, now| c.unbridge(now).unwrap());
    assert_eq!(d.drain(), Some(d.at(20 * SEC)), "WhatsApp start media");
    d.idle_until(21 * SEC);
    assert_eq!(d.drain(), Some(d.at(100 * SEC)), "only the tick is left");
}

#[test]
fn late_shell_catches_up_a_few_ticks_then_resyncs() {
    let mut d = Driver::connected();
    d.input(|c, now| c.accept(now).unwrap());
    d.idle_until(SEC);
    let n = d.wa_frames().len();
    d.now = d.at(SEC + 60 * MS); // three ticks overdue: three frames
    d.input(|c, now| c.handle_timeout(now));
    assert_eq!(d.wa_frames().len(), n + 3);
    d.now = d.at(3 * SEC); // stalled ~2 s: one frame, cadence restarts from now
    d.input(|c, now| c.handle_timeout(now));
    assert_eq!(d.wa_frames().len(), n + 4);
    assert_eq!(d.drain(), Some(d.at(3 * SEC + 20 * MS)));
}

#[test]
fn phone_draws_from_the_whatsapp_jitter_buffer_every_tick_once_whatsapp_spoke() {
    let mut d = Driver::connected();
    d.input(|c, now| c.phone_answered(now).unwrap());
    d.input(|c, now| c.bridge(now).unwrap());
    d.input(|c, now| c.accept(now).unwrap());
    // Before WhatsApp's first packet the phone hears silence.
    d.idle_until(300 * MS);
    assert_eq!(d.count(TO_PHONE_AUDIO, Duration::ZERO, 300 * MS), 0);
    assert!(d.count(TO_PHONE_SILENCE, Duration::ZERO, 300 * MS) > 5);
    // Packets then arrive in bursts of three every 60 ms (jitter): every tick still draws a
    // frame, so the buffer smooths the bursts instead of the phone hearing gaps.
    let mut n = 0u32;
    d.run_until(1300 * MS, |c, now| {
        if n.is_multiple_of(3) {
            for _ in 0..3 {
                c.wa_audio_received(now);
            }
        }
        n += 1;
    });
    let ticks = d.count(TO_PHONE_AUDIO, 400 * MS, 1300 * MS);
    assert!(ticks >= 44, "a frame drawn every 20 ms tick: {ticks} in 900 ms");
    assert_eq!(d.count(TO_PHONE_SILENCE, 400 * MS, 1300 * MS), 0);
}

#[test]
fn audio_is_buffered_only_while_someone_hears_it() {
    let mut d = Driver::connected();
    assert!(!d.core.plays_whatsapp_audio() && !d.core.plays_phone_audio());
    d.input(|c, now| c.phone_answered(now).unwrap());
    // The phone hears WhatsApp from attach on; WhatsApp hears the phone only after accept.
    assert!(d.core.plays_whatsapp_audio() && !d.core.plays_phone_audio());
    d.input(|c, now| c.accept(now).unwrap());
    assert!(d.core.plays_whatsapp_audio() && d.core.plays_phone_audio());
    d.input(|c, now| c.unbridge(now).unwrap());
    assert!(!d.core.plays_whatsapp_audio() && !d.core.plays_phone_audio());
    d.input(|c, now| c.hangup(now));
    assert!(!d.core.plays_whatsapp_audio());
}

const TO_WA_ANNOUNCEMENT: Command = Command::SendToWhatsApp {
    kind: ToWhatsApp::Announcement,
};

/// Every tick after `from` up to `to` sent exactly one frame to WhatsApp, 20 ms apart.
fn assert_a_frame_every_tick(d: &Driver, from: Duration, to: Duration) {
    let frames: Vec<_> = d
        .wa_frames()
        .into_iter()
        .filter(|&(t, _)| t > d.at(from) && t <= d.at(to))
        .collect();
    let expected = (to - from).as_millis() / 20;
    assert_eq!(
        frames.len() as u128,
        expected,
        "frames between {from:?} and {to:?}"
    );
    assert!(frames.windows(2).all(|w| w[1].0 - w[0].0 == 20 * MS));
}

#[test]
fn an_announcement_before_accept_waits_then_plays_whole_then_the_phone_again() {
    let mut d = Driver::connected();
    d.input(|c, now| c.phone_answered(now).unwrap());
    d.idle_until(200 * MS);
    d.input(|c, now| c.play(now, 7).unwrap());
    d.run_until(2 * SEC, talking);
    assert!(
        d.wa_frames().is_empty(),
        "nothing to WhatsApp before accept"
    );
    assert!(d.event_times(E::PlayFinished).is_empty());

    d.input(|c, now| c.accept(now).unwrap());
    assert!(
        !d.core.plays_phone_audio(),
        "the announcement has WhatsApp's ear"
    );
    d.run_until(3 * SEC, talking);
    assert!(d.core.plays_phone_audio());
    let kinds: Vec<_> = d.wa_frames().into_iter().map(|(_, k)| k).collect();
    assert!(
        kinds[..7].iter().all(|&k| k == ToWhatsApp::Announcement),
        "{kinds:?}"
    );
    assert!(
        kinds[7..].iter().all(|&k| k == ToWhatsApp::AudioFromPhone),
        "{kinds:?}"
    );
    assert_eq!(d.count(TO_WA_ANNOUNCEMENT, 2 * SEC, 3 * SEC), 7);
    assert_eq!(d.event_times(E::PlayFinished), [2 * SEC + 140 * MS]);
    // Reported right after the last frame, before the next tick's.
    let last = d
        .log
        .iter()
        .rposition(|(_, c)| *c == TO_WA_ANNOUNCEMENT)
        .unwrap();
    assert_eq!(d.log[last + 1].1, Command::Event(E::PlayFinished));
    assert_a_frame_every_tick(&d, 2 * SEC, 3 * SEC);
    // The phone heard WhatsApp throughout, announcement or not.
    assert_eq!(
        d.count(TO_PHONE_AUDIO, 2 * SEC + 20 * MS, 2 * SEC + 140 * MS),
        7
    );
}

#[test]
fn a_second_announcement_replaces_the_first_which_never_finishes() {
    let mut d = Driver::connected();
    d.input(|c, now| c.accept(now).unwrap());
    d.idle_until(SEC);
    d.input(|c, now| c.play(now, 50).unwrap());
    d.idle_until(1500 * MS);
    assert_eq!(d.count(TO_WA_ANNOUNCEMENT, SEC, 1500 * MS), 25);
    d.input(|c, now| c.play(now, 10).unwrap());
    d.idle_until(3 * SEC);
    assert_eq!(d.count(TO_WA_ANNOUNCEMENT, 1520 * MS, 3 * SEC), 10);
    assert_eq!(d.event_times(E::PlayFinished), [1700 * MS]);
    assert_eq!(
        d.count(TO_WA_CN, 1720 * MS, 3 * SEC),
        65,
        "no phone: comfort noise after"
    );
    assert_a_frame_every_tick(&d, 200 * MS, 3 * SEC);
}

#[test]
fn an_announcement_cut_short_by_the_end_of_the_call_is_not_reported_finished() {
    let mut d = Driver::new(BridgeConfig::default());
    d.input(|c, now| c.start(now).unwrap());
    // Without pre_accept: accepted while connecting, so frames (and the announcement) start
    // at connect.
    d.input(|c, now| c.accept(now).unwrap());
    d.input(|c, now| c.play(now, 100).unwrap());
    d.idle_until(SEC);
    assert!(d.wa_frames().is_empty());
    d.input(|c, now| c.webrtc_connected(now));
    d.idle_until(2 * SEC);
    assert_eq!(d.count(TO_WA_ANNOUNCEMENT, SEC, 2 * SEC), 50);
    d.input(|c, now| c.hangup(now));
    d.idle_until(5 * SEC);
    assert_eq!(d.events(), [E::WebRtcConnected, E::Ended]);
    assert_eq!(d.core.play(d.now, 1), Err(BridgeError::Ended));
    assert_eq!(
        BridgeCore::new(BridgeConfig::default()).play(d.now, 1),
        Err(BridgeError::NotStarted)
    );
}

#[test]
fn an_empty_announcement_finishes_at_its_first_tick_without_taking_it() {
    let mut d = Driver::connected();
    d.input(|c, now| c.play(now, 0).unwrap());
    d.idle_until(SEC);
    assert!(
        d.event_times(E::PlayFinished).is_empty(),
        "not before accept"
    );
    d.input(|c, now| c.accept(now).unwrap());
    d.idle_until(2 * SEC);
    assert_eq!(d.event_times(E::PlayFinished), [SEC + 20 * MS]);
    assert_eq!(d.count(TO_WA_ANNOUNCEMENT, Duration::ZERO, 2 * SEC), 0);
    assert_a_frame_every_tick(&d, SEC, 2 * SEC);
}
