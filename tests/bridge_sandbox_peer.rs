//! The bridge under a bad network and a silent phone, with the sandbox's WhatsApp user
//! (`whatsip::sandbox::WaPeer`, a webrtc-rs peer that behaves like Meta) on the WebRTC side:
//! WaPeer ⇄ our WebRTC leg ⇄ `spawn_bridge` ⇄ a fake desk phone (a UDP socket speaking PCMU
//! every 20 ms). All on 127.0.0.1.
//!
//! - Loss: WaPeer loses 10 % of what it sends and the phone 5 % of its own packets; both
//!   tones still arrive at their frequency, the phone still gets a packet every 20 ms (the
//!   bridge conceals with FEC and PLC, and the phone's losses by fading its last frame), and
//!   the bridge's jitter statistics show the loss.
//! - Silence: before accept WaPeer gets no RTP, only RTCP keep-alives; after accept a phone
//!   that sends nothing for 3 s still leaves WaPeer a packet every 20 ms (comfort noise).
//! - Timeout: a WhatsApp side quiet for longer than a shortened `wa_media_timeout` is
//!   reported, while the phone keeps getting packets; a digit for a phone without
//!   telephone-event is reported as dropped.
//! - Announcement: with no phone at all, a 2 s 440 Hz `Play` after accept is what WaPeer
//!   hears, `PlayFinished` comes when it has been sent, and comfort noise follows with no gap.
//!
//! The tests take turns (`SERIAL`): their gap checks are about the bridge, not about two
//! calls fighting over this machine's two cores.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep, timeout};
use whatsip::media::bridge::{
    spawn_bridge, BridgeCommand, BridgeHandle, BridgeSettings, BridgeStats, PhoneMedia,
};
use whatsip::media::bridge_core::{BridgeEvent, DtmfDropReason, Side};
use whatsip::media::g711::G711;
use whatsip::media::rtp_header::{self, RtpHeader};
use whatsip::media::tone::{dominant_frequency, rms_dbfs, sine};
use whatsip::media::webrtc_leg::{answer_offer, WebRtcConfig};
use whatsip::sandbox::{AudioSource, WaPeer, WaPeerConfig, WaPeerEvent, WaPeerReport};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WA_HZ: f32 = 1000.0;
const PHONE_HZ: f32 = 440.0;
const STEP: Duration = Duration::from_secs(10);
/// "A packet every 20 ms", with room for ten ticks: this machine has two busy cores, and a
/// stall of the test process itself is not something the bridge could hide.
const MAX_GAP: Duration = Duration::from_millis(200);
/// 20 ms of G.711.
const PHONE_FRAME: usize = 160;

fn leg_cfg() -> WebRtcConfig {
    WebRtcConfig {
        bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        public_ip: None,
        port_min: 40000,
        port_max: 40999,
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A WhatsApp user calls; our leg answers; the bridge starts; both report connected.
async fn call(peer_cfg: WaPeerConfig, settings: BridgeSettings) -> (WaPeer, BridgeHandle) {
    let (mut peer, offer) = WaPeer::offer(peer_cfg).await.expect("sandbox peer offers");
    let (leg, answer) = answer_offer(&offer, &leg_cfg())
        .await
        .expect("our leg answers");
    peer.accept_answer(&answer)
        .await
        .expect("the peer takes our answer");
    let mut bridge = spawn_bridge(leg, settings);
    let ev = timeout(STEP, bridge.events.recv()).await.ok().flatten();
    assert_eq!(ev, Some(BridgeEvent::WebRtcConnected));
    peer.wait_for(STEP, |e| *e == WaPeerEvent::Connected)
        .await
        .expect("the peer connects");
    (peer, bridge)
}

// ---------------------------------------------------------------------------------------------
// The fake desk phone

enum PhoneCmd {
    /// Send the tone every 20 ms (true) or nothing at all (false).
    Talk(bool),
    Stop(oneshot::Sender<PhoneHeard>),
}

#[derive(Default)]
struct PhoneHeard {
    /// Decoded PCMU, 8 kHz.
    pcm: Vec<i16>,
    /// Arrival of each audio packet, and where its audio starts in `pcm`.
    arrivals: Vec<(Instant, usize)>,
    made: u64,
    dropped: u64,
}

impl PhoneHeard {
    fn largest_gap(&self, from: Instant, to: Instant) -> Duration {
        let mut last = from;
        let mut worst = Duration::ZERO;
        for at in self
            .arrivals
            .iter()
            .map(|a| a.0)
            .filter(|at| (from..=to).contains(at))
            .chain([to])
        {
            worst = worst.max(at.saturating_duration_since(last));
            last = at;
        }
        worst
    }

    fn pcm_between(&self, from: Instant, to: Instant) -> &[i16] {
        let start = self
            .arrivals
            .iter()
            .find(|a| a.0 >= from)
            .map_or(self.pcm.len(), |a| a.1);
        let end = self
            .arrivals
            .iter()
            .find(|a| a.0 >= to)
            .map_or(self.pcm.len(), |a| a.1);
        &self.pcm[start..end.max(start)]
    }
}

struct Phone {
    commands: mpsc::Sender<PhoneCmd>,
    task: tokio::task::JoinHandle<()>,
}

impl Phone {
    /// Answers: binds the bridge's phone-side sockets, attaches them, and starts sending
    /// `PHONE_HZ` with `loss` of its packets dropped (seeded).
    async fn attach(bridge: &BridgeHandle, loss: f64, seed: u64) -> Phone {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let bridge_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let bridge_rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = bridge_rtp.local_addr().unwrap();
        let media = PhoneMedia {
            rtp: bridge_rtp,
            rtcp: bridge_rtcp,
            remote_rtp: socket.local_addr().unwrap(),
            // rtcp-mux: the bridge's reports come to the RTP socket and are skipped there.
            remote_rtcp: socket.local_addr().unwrap(),
            codec: G711::Pcmu,
            dtmf_pt: None,
        };
        bridge
            .commands
            .send(BridgeCommand::AttachPhone(media))
            .await
            .unwrap();
        let (commands, rx) = mpsc::channel(4);
        let task = tokio::spawn(run_phone(socket, to, rx, loss, seed));
        Phone { commands, task }
    }

    async fn talk(&self, on: bool) {
        self.commands.send(PhoneCmd::Talk(on)).await.unwrap();
    }

    async fn hang_up(self) -> PhoneHeard {
        let (tx, rx) = oneshot::channel();
        self.commands.send(PhoneCmd::Stop(tx)).await.unwrap();
        let heard = timeout(STEP, rx).await.expect("phone stops").unwrap();
        self.task.await.unwrap();
        heard
    }
}

async fn run_phone(
    socket: UdpSocket,
    to: SocketAddr,
    mut commands: mpsc::Receiver<PhoneCmd>,
    loss: f64,
    seed: u64,
) {
    let tone = sine(PHONE_HZ, 8000, 1.0, 0.3);
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut seq, mut ts, ssrc) = (7000u16, 90_000u32, 0x0FF1_CE00u32);
    let mut talking = true;
    let mut frame = [0u8; PHONE_FRAME];
    let mut out = [0u8; 1500];
    let mut buf = [0u8; 1500];
    let mut heard = PhoneHeard::default();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut n = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // The sample clock runs whether or not anything is sent (RFC 3550 §5.1).
                let this_ts = ts;
                ts = ts.wrapping_add(PHONE_FRAME as u32);
                if !talking {
                    continue;
                }
                let start = (n * PHONE_FRAME) % (tone.len() - PHONE_FRAME);
                n += 1;
                G711::Pcmu.encode(&tone[start..start + PHONE_FRAME], &mut frame);
                let h = RtpHeader { marker: heard.made == 0, payload_type: 0, sequence: seq, timestamp: this_ts, ssrc };
                seq = seq.wrapping_add(1);
                heard.made += 1;
                if rng.gen::<f64>() < loss {
                    heard.dropped += 1;
                    continue;
                }
                let len = rtp_header::write_packet(&h, &frame, &mut out).unwrap();
                let _ = socket.send_to(&out[..len], to).await;
            }
            c = commands.recv() => match c {
                Some(PhoneCmd::Talk(on)) => talking = on,
                Some(PhoneCmd::Stop(reply)) => {
                    let _ = reply.send(heard);
                    return;
                }
                None => return,
            },
            r = socket.recv_from(&mut buf) => {
                let Ok((len, _)) = r else { continue };
                let Ok(p) = rtp_header::parse(&buf[..len]) else { continue };
                if p.header.payload_type == 0 && p.payload.len() == PHONE_FRAME {
                    let mut pcm = [0i16; PHONE_FRAME];
                    G711::Pcmu.decode(p.payload, &mut pcm);
                    heard.arrivals.push((Instant::now(), heard.pcm.len()));
                    heard.pcm.extend_from_slice(&pcm);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

/// Panics with the numbers unless the dominant frequency is `hz` (within 1 %) above -30 dBFS;
/// the tones are sent at about -13 dBFS.
/// What the WhatsApp user says in these tests.
fn wa_tone() -> AudioSource {
    AudioSource::Tone {
        hz: WA_HZ,
        amplitude: 0.3,
    }
}

fn assert_no_media_timeout(events: &[BridgeEvent]) {
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, BridgeEvent::MediaTimeout { .. })),
        "{events:?}"
    );
}

fn assert_tone(what: &str, pcm: &[i16], rate: u32, hz: f32) {
    let (got, dbfs) = dominant_frequency(pcm, rate, 100.0, 3800.0)
        .unwrap_or_else(|| panic!("{what}: no tone in {} samples", pcm.len()));
    eprintln!(
        "{what}: {got:.1} Hz at {dbfs:.1} dBFS over {:.2} s",
        pcm.len() as f32 / rate as f32
    );
    assert!(
        (got - hz).abs() <= hz * 0.01,
        "{what}: {got:.1} Hz instead of {hz}"
    );
    assert!(dbfs > -30.0, "{what}: {dbfs:.1} dBFS");
}

/// 20 ms blocks of `pcm` quieter than -40 dBFS: holes where the tone should be.
fn quiet_frames(pcm: &[i16], rate: u32) -> usize {
    pcm.chunks_exact(rate as usize / 50)
        .filter(|f| rms_dbfs(f) < -40.0)
        .count()
}

async fn end_call(
    bridge: BridgeHandle,
    peer: WaPeer,
) -> (BridgeStats, Vec<BridgeEvent>, WaPeerReport) {
    bridge.commands.send(BridgeCommand::Hangup).await.unwrap();
    let stats = timeout(STEP, bridge.task)
        .await
        .expect("bridge ends")
        .unwrap();
    let mut events_rx = bridge.events;
    let mut events = Vec::new();
    while let Ok(e) = events_rx.try_recv() {
        events.push(e);
    }
    let report = peer.close().await;
    (stats, events, report)
}

fn bridge_events(bridge: &mut BridgeHandle, into: &mut Vec<BridgeEvent>) {
    while let Ok(e) = bridge.events.try_recv() {
        into.push(e);
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tones_survive_random_loss_both_ways() {
    let _turn = SERIAL.lock().await;
    init_tracing();
    let peer_cfg = WaPeerConfig {
        source: wa_tone(),
        send_loss: 0.10,
        // The bridge's packets to WhatsApp cross the same bad network.
        receive_loss: 0.05,
        seed: 11,
        ..WaPeerConfig::default()
    };
    let (peer, bridge) = call(peer_cfg, BridgeSettings::default()).await;
    let phone = Phone::attach(&bridge, 0.05, 12).await;
    bridge.commands.send(BridgeCommand::Accept).await.unwrap();
    peer.unmute().unwrap();
    let talk_from = Instant::now();
    sleep(Duration::from_secs(4)).await;
    // Stop the user first, so every packet it sent has reached the bridge when we count.
    peer.mute().unwrap();
    let talk_to = Instant::now();
    sleep(Duration::from_millis(300)).await;
    let peer_clock_at_mute = peer.elapsed() - talk_to.elapsed();
    let heard = phone.hang_up().await;
    let (stats, events, report) = end_call(bridge, peer).await;
    eprintln!("bridge stats: {stats:?}\nbridge events: {events:?}");
    eprintln!("WaPeer sent {:?}; heard: {} audio packets, {} lost on the way, {} FEC, {} PLC, {} silent, {} late",
        report.sent, report.heard.audio_packets, report.heard.dropped_by_loss, report.heard.fec_frames,
        report.heard.concealed_frames, report.heard.silent_frames, report.heard.late_packets);
    eprintln!(
        "phone made {} packets, dropped {}, received {}",
        heard.made,
        heard.dropped,
        heard.arrivals.len()
    );

    // WhatsApp → phone: WaPeer's losses reached the bridge as losses, and were concealed.
    let sent = report.sent.frames;
    let lost = report.sent.dropped_by_loss;
    assert!(sent >= 150, "WaPeer sent only {sent} frames in 4 s");
    assert!(
        (sent / 20..=sent / 5).contains(&lost),
        "{lost} of {sent} lost: not ~10 %"
    );
    assert_eq!(
        stats.wa_packets_received,
        sent - lost,
        "every packet not lost arrived"
    );
    assert!(
        stats.jitter.lost >= lost / 2,
        "jitter buffer saw {} lost frames for {lost} lost packets",
        stats.jitter.lost
    );
    assert_eq!(stats.wa_decode_errors, 0);
    // The phone kept getting a frame every 20 ms, and heard the tone without holes.
    let gap = heard.largest_gap(talk_from + Duration::from_millis(300), talk_to);
    eprintln!("largest gap at the phone: {gap:?}");
    assert!(gap <= MAX_GAP, "phone waited {gap:?} for a packet");
    let tone = heard.pcm_between(talk_from + Duration::from_millis(1000), talk_to);
    assert!(
        tone.len() >= 8000 * 2,
        "phone heard only {} samples",
        tone.len()
    );
    assert_tone("phone heard WhatsApp", tone, 8000, WA_HZ);
    let holes = quiet_frames(tone, 8000);
    eprintln!(
        "quiet 20 ms frames at the phone: {holes} of {}",
        tone.len() / PHONE_FRAME
    );
    // Unconcealed, a tenth of the frames would be quiet.
    assert!(
        holes * 20 <= tone.len() / PHONE_FRAME,
        "{holes} quiet frames: loss was not concealed"
    );

    // Phone → WhatsApp: the phone's losses were concealed by its jitter buffer (the last
    // frame fading out), not turned into gaps or comfort noise.
    assert!(
        (heard.made / 50..=heard.made / 8).contains(&heard.dropped),
        "phone dropped {} of {}",
        heard.dropped,
        heard.made
    );
    assert!(
        stats.phone_jitter.lost >= heard.dropped / 2 && stats.wa_comfort_noise_frames <= 2,
        "{stats:?}"
    );
    // WaPeer lost some of the bridge's packets too, and filled them in.
    let rx = &report.heard;
    assert!(
        rx.dropped_by_loss > 0 && rx.fec_frames + rx.concealed_frames >= rx.dropped_by_loss / 2,
        "{rx:?}"
    );
    let peer_gap = report.heard.largest_gap(
        report.heard.first_audio().expect("WaPeer heard audio"),
        peer_clock_at_mute,
    );
    eprintln!("largest gap at WaPeer: {peer_gap:?}");
    assert!(
        peer_gap <= MAX_GAP,
        "WaPeer waited {peer_gap:?} for a packet"
    );
    let first = report.heard.first_audio().unwrap();
    let wa_heard = report
        .heard
        .pcm_between(first + Duration::from_millis(500), peer_clock_at_mute);
    assert_tone(
        "WaPeer heard the phone",
        wa_heard,
        report.heard.rate,
        PHONE_HZ,
    );
    assert_no_media_timeout(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_phone_leaves_whatsapp_comfort_noise_and_nothing_before_accept() {
    let _turn = SERIAL.lock().await;
    init_tracing();
    let peer_cfg = WaPeerConfig {
        source: wa_tone(),
        ..WaPeerConfig::default()
    };
    // Defaults throughout: the phone timeout (30 s) is far longer than its 3 s of silence.
    let (peer, bridge) = call(peer_cfg, BridgeSettings::default()).await;
    let phone = Phone::attach(&bridge, 0.0, 21).await;

    // Ringing: ICE and DTLS are up and the phone talks, but WhatsApp gets no RTP, only the
    // RTCP keep-alive (1 s cadence) that keeps Meta's 20 s start timer fed (§5.2, §1.3).
    sleep(Duration::from_millis(2500)).await;
    let before = peer.report().await.unwrap();
    eprintln!(
        "before accept: {} RTP packets, {} RTCP",
        before.heard.arrivals.len(),
        before.rtcp_received
    );
    assert!(
        before.heard.arrivals.is_empty(),
        "RTP before accept: {:?}",
        &before.heard.arrivals[..before.heard.arrivals.len().min(3)]
    );
    // One at connect, then one a second (BridgeConfig::rtcp_keepalive_interval).
    assert!(
        before.rtcp_received >= 2,
        "{} RTCP keep-alives reached WhatsApp in 2.5 s before accept",
        before.rtcp_received
    );

    bridge.commands.send(BridgeCommand::Accept).await.unwrap();
    peer.unmute().unwrap();
    let accepted = peer.elapsed();
    sleep(Duration::from_millis(1500)).await;
    phone.talk(false).await;
    let silent_from = peer.elapsed();
    sleep(Duration::from_secs(3)).await;
    phone.talk(true).await;
    let silent_to = peer.elapsed();
    sleep(Duration::from_millis(1500)).await;
    let end = peer.elapsed();
    let heard_at_phone = phone.hang_up().await;
    let (stats, events, report) = end_call(bridge, peer).await;
    eprintln!("bridge stats: {stats:?}\nbridge events: {events:?}");

    // The stream to WhatsApp never paused: one packet per tick through the silence.
    let rx = &report.heard;
    let first = rx.first_audio().expect("WaPeer heard audio after accept");
    eprintln!(
        "first audio {:?} after accept, {} RTCP in all",
        first - accepted,
        report.rtcp_received
    );
    let gap = rx.largest_gap(first, end);
    let silent_gap = rx.largest_gap(silent_from, silent_to);
    eprintln!("largest gap at WaPeer: {gap:?} overall, {silent_gap:?} while the phone was silent");
    assert!(gap <= MAX_GAP, "WaPeer waited {gap:?} for a packet");
    let silent_packets = rx
        .audio_arrivals()
        .filter(|a| (silent_from..silent_to).contains(&a.at))
        .count();
    assert!(
        silent_packets >= 120,
        "only {silent_packets} packets in 3 s of phone silence"
    );
    // Comfort noise for the 3 s of silence (150 ticks) and not while the phone talked.
    let cn = stats.wa_comfort_noise_frames;
    assert!(
        (120..=175).contains(&cn),
        "{cn} comfort-noise frames for 150 silent ticks: {stats:?}"
    );
    assert_eq!(
        rx.fec_frames + rx.concealed_frames + rx.silent_frames,
        0,
        "nothing lost on loopback"
    );

    // What WhatsApp heard: the phone's tone, then a quiet but live line, then the tone again.
    assert_tone(
        "WaPeer before the silence",
        rx.pcm_between(first + Duration::from_millis(300), silent_from),
        rx.rate,
        PHONE_HZ,
    );
    let quiet = rx.pcm_between(silent_from + Duration::from_millis(300), silent_to);
    let level = rms_dbfs(quiet);
    eprintln!(
        "WaPeer during the silence: {level:.1} dBFS over {:.2} s",
        quiet.len() as f32 / rx.rate as f32
    );
    assert!(
        quiet.len() >= rx.rate as usize * 2,
        "{} samples",
        quiet.len()
    );
    assert!(
        level < -50.0,
        "comfort noise at {level:.1} dBFS is not quiet"
    );
    assert!(
        quiet.iter().any(|&s| s != 0),
        "digital silence instead of comfort noise"
    );
    assert_tone(
        "WaPeer after the silence",
        rx.pcm_between(silent_to + Duration::from_millis(300), end),
        rx.rate,
        PHONE_HZ,
    );

    // The phone heard WhatsApp throughout, and nobody timed out.
    let tone = &heard_at_phone.pcm[heard_at_phone.pcm.len().saturating_sub(8000 * 2)..];
    assert_tone("phone heard WhatsApp", tone, 8000, WA_HZ);
    assert_no_media_timeout(&events);
    assert!(stats.wa_rtcp_keepalives_sent >= 2, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_going_quiet_is_reported_while_the_phone_still_gets_packets() {
    let _turn = SERIAL.lock().await;
    init_tracing();
    let peer_cfg = WaPeerConfig {
        source: wa_tone(),
        ..WaPeerConfig::default()
    };
    let mut settings = BridgeSettings::default();
    // Only this is shortened: Meta's mid-call 30 s (§5.2) becomes 1 s.
    settings.timing.wa_media_timeout = Duration::from_secs(1);
    let (peer, mut bridge) = call(peer_cfg, settings).await;
    let phone = Phone::attach(&bridge, 0.0, 31).await;
    bridge.commands.send(BridgeCommand::Accept).await.unwrap();
    peer.unmute().unwrap();
    let talk_from = Instant::now();

    // Talking for twice the timeout: no report.
    sleep(Duration::from_secs(2)).await;
    let mut events = Vec::new();
    bridge_events(&mut bridge, &mut events);
    assert_no_media_timeout(&events);

    // Quiet: reported once, no sooner than the timeout after the last packet.
    peer.mute().unwrap();
    let muted = Instant::now();
    let ev = timeout(STEP, async {
        loop {
            match bridge.events.recv().await {
                Some(e @ BridgeEvent::MediaTimeout { .. }) => return e,
                Some(e) => events.push(e),
                None => panic!("bridge ended first"),
            }
        }
    })
    .await
    .expect("a media timeout within 10 s");
    let after = muted.elapsed();
    eprintln!("{ev:?} {after:?} after mute");
    assert_eq!(
        ev,
        BridgeEvent::MediaTimeout {
            side: Side::WhatsApp
        }
    );
    assert!(
        after >= Duration::from_millis(900),
        "reported after {after:?}, before the 1 s timeout"
    );

    // Back to talking; the call goes on and the phone never missed a tick. A key pressed now
    // cannot reach this phone (it offered no telephone-event): reported, not silently lost.
    sleep(Duration::from_millis(500)).await;
    peer.unmute().unwrap();
    peer.dtmf('9').unwrap();
    sleep(Duration::from_secs(1)).await;
    let end = Instant::now();
    let heard = phone.hang_up().await;
    bridge_events(&mut bridge, &mut events);
    let (stats, more, report) = end_call(bridge, peer).await;
    events.extend(more);
    eprintln!("bridge stats: {stats:?}\nbridge events: {events:?}");
    let gap = heard.largest_gap(talk_from + Duration::from_millis(300), end);
    eprintln!("largest gap at the phone: {gap:?}");
    assert!(gap <= MAX_GAP, "phone waited {gap:?} for a packet");
    assert_tone(
        "phone heard WhatsApp after it came back",
        heard.pcm_between(end - Duration::from_millis(700), end),
        8000,
        WA_HZ,
    );
    let quiet = heard.pcm_between(
        muted + Duration::from_millis(300),
        muted + Duration::from_millis(1200),
    );
    assert!(
        rms_dbfs(quiet) < -50.0,
        "phone heard {:.1} dBFS while WhatsApp was quiet",
        rms_dbfs(quiet)
    );
    let timeouts = events
        .iter()
        .filter(|e| matches!(e, BridgeEvent::MediaTimeout { .. }))
        .count();
    assert_eq!(timeouts, 0, "only one report per quiet stretch: {events:?}");
    assert!(
        events.contains(&BridgeEvent::DtmfDropped {
            from: Side::WhatsApp,
            digit: '9',
            reason: DtmfDropReason::NoTelephoneEvent,
        }),
        "{events:?}"
    );
    assert!(
        report.sent.frames > 100 && report.heard.audio_packets > 100,
        "{:?}",
        report.sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_with_no_phone_is_heard_then_comfort_noise_follows_without_a_gap() {
    let _turn = SERIAL.lock().await;
    init_tracing();
    // The user says nothing: all WaPeer hears is what the bridge makes.
    let (peer, mut bridge) = call(WaPeerConfig::default(), BridgeSettings::default()).await;
    bridge.commands.send(BridgeCommand::Accept).await.unwrap();
    peer.unmute().unwrap();
    sleep(Duration::from_millis(500)).await;

    const SECONDS: f32 = 2.0;
    let announcement: Arc<[i16]> = sine(PHONE_HZ, 8000, SECONDS, 0.3).into();
    let played = peer.elapsed();
    let play_sent = Instant::now();
    bridge
        .commands
        .send(BridgeCommand::Play(announcement))
        .await
        .unwrap();
    let mut events = Vec::new();
    let took = timeout(STEP, async {
        loop {
            match bridge.events.recv().await {
                Some(BridgeEvent::PlayFinished) => return play_sent.elapsed(),
                Some(e) => events.push(e),
                None => panic!("bridge ended first: {events:?}"),
            }
        }
    })
    .await
    .expect("PlayFinished within 10 s");
    let finished = peer.elapsed();
    sleep(Duration::from_secs(1)).await;
    let end = peer.elapsed();
    let (stats, more, report) = end_call(bridge, peer).await;
    events.extend(more);
    eprintln!(
        "PlayFinished {took:?} after Play\nbridge stats: {stats:?}\nbridge events: {events:?}"
    );

    // 100 frames on the 20 ms tick: two seconds, give or take the first tick's phase and a
    // busy machine's lateness (the core catches late ticks up rather than stretching audio).
    assert!(
        (Duration::from_millis(1950)..=Duration::from_millis(2600)).contains(&took),
        "PlayFinished {took:?} after a 2 s announcement"
    );
    assert_eq!(stats.wa_announcement_frames, 100, "{stats:?}");
    assert!(
        !events.contains(&BridgeEvent::PlayFinished),
        "PlayFinished twice: {events:?}"
    );
    assert_no_media_timeout(&events);

    let rx = &report.heard;
    let first = rx.first_audio().expect("WaPeer heard audio after accept");
    assert!(first < played, "comfort noise before the announcement");
    let gap = rx.largest_gap(first, end);
    eprintln!("largest gap at WaPeer: {gap:?}");
    assert!(gap <= MAX_GAP, "WaPeer waited {gap:?} for a packet");
    let heard = rx.pcm_between(played + Duration::from_millis(300), finished);
    assert!(
        heard.len() >= rx.rate as usize * 3 / 2,
        "only {} samples of the announcement",
        heard.len()
    );
    assert_tone("WaPeer heard the announcement", heard, rx.rate, PHONE_HZ);
    for (what, from, to) in [
        ("before", first + Duration::from_millis(100), played),
        ("after", finished + Duration::from_millis(200), end),
    ] {
        let quiet = rx.pcm_between(from, to);
        let level = rms_dbfs(quiet);
        eprintln!("WaPeer {what} the announcement: {level:.1} dBFS");
        assert!(
            quiet.len() >= rx.rate as usize / 4,
            "{what}: {} samples",
            quiet.len()
        );
        assert!(
            level < -50.0,
            "{what}: {level:.1} dBFS is not comfort noise"
        );
        assert!(quiet.iter().any(|&s| s != 0), "{what}: digital silence");
    }
}
