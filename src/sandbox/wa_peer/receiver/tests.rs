use super::*;
use crate::media::dtmf::DtmfSender;
use crate::media::opus::{OpusEncoder, MAX_PACKET};
use crate::media::tone::{dominant_frequency, rms_dbfs, sine};

const RATE: u32 = 16_000;
const FRAME: usize = 320;

/// 20 ms Opus packets of a 1000 Hz tone, FEC on (as the bridge and WhatsApp send).
fn tone_packets(n: usize) -> Vec<Vec<u8>> {
    let mut enc = OpusEncoder::new(RATE, 1, 5, true, 10).unwrap();
    let mut buf = [0u8; MAX_PACKET];
    sine(1000.0, RATE, n as f32 * 0.02, 0.3)
        .chunks_exact(FRAME)
        .map(|f| {
            let len = enc.encode(f, &mut buf).unwrap();
            buf[..len].to_vec()
        })
        .collect()
}

fn rx() -> Receiver {
    Receiver::new(111, Some(126), RATE).unwrap()
}

fn audio(rx: &mut Receiver, i: usize, payload: &[u8]) -> PacketKind {
    let packet = RtpIn {
        payload_type: 111,
        sequence: 1000 + i as u16,
        timestamp: 5000 + i as u32 * RTP_TIMESTAMP_STEP,
        marker: i == 0,
        payload,
    };
    rx.on_packet(Duration::from_millis(20 * i as u64), &packet)
}

fn check_tone(pcm: &[i16]) {
    let (hz, db) = dominant_frequency(pcm, RATE, 100.0, 7000.0).unwrap();
    assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
    assert!(
        (db - rms_dbfs(&sine(1000.0, RATE, 1.0, 0.3))).abs() < 3.0,
        "{db} dBFS"
    );
}

#[test]
fn a_clean_stream_is_decoded_frame_for_frame() {
    let packets = tone_packets(100);
    let mut rx = rx();
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(audio(&mut rx, i, p), PacketKind::Audio);
    }
    let heard = rx.heard();
    assert_eq!(heard.pcm.len(), 100 * FRAME);
    assert_eq!(heard.audio_packets, 100);
    assert_eq!(
        (
            heard.fec_frames,
            heard.concealed_frames,
            heard.silent_frames
        ),
        (0, 0, 0)
    );
    assert_eq!(heard.arrivals[7].pcm_at, 7 * FRAME);
    assert_eq!(heard.arrivals[7].sequence, 1007);
    assert!(heard.arrivals[0].marker && !heard.arrivals[1].marker);
    check_tone(&heard.pcm);
}

#[test]
fn single_losses_are_rebuilt_from_fec() {
    let packets = tone_packets(100);
    let mut rx = rx();
    let mut lost = 0;
    for (i, p) in packets.iter().enumerate() {
        if i % 10 == 5 {
            lost += 1;
            continue;
        }
        audio(&mut rx, i, p);
    }
    let heard = rx.heard();
    assert_eq!(heard.fec_frames, lost);
    assert_eq!(heard.concealed_frames, 0);
    assert_eq!(heard.pcm.len(), 100 * FRAME, "the timeline is kept");
    // The packet after each loss starts one frame later than it would have.
    let after = heard.arrivals.iter().find(|a| a.sequence == 1006).unwrap();
    assert_eq!(after.pcm_at, 6 * FRAME);
    check_tone(&heard.pcm);
}

#[test]
fn bursts_are_concealed_then_silenced() {
    let packets = tone_packets(40);
    let mut rx = rx();
    for (i, p) in packets.iter().enumerate() {
        // 3 lost after frame 4; 8 lost after frame 20.
        if (5..8).contains(&i) || (21..29).contains(&i) {
            continue;
        }
        audio(&mut rx, i, p);
    }
    let heard = rx.heard();
    assert_eq!(
        heard.fec_frames, 2,
        "one per burst, the frame before the next packet"
    );
    assert_eq!(heard.concealed_frames, 2 + 5);
    assert_eq!(heard.silent_frames, 2);
    assert_eq!(heard.pcm.len(), 40 * FRAME);
    let silent = &heard.pcm[26 * FRAME..28 * FRAME];
    assert!(silent.iter().all(|&s| s == 0));
}

#[test]
fn late_and_duplicate_packets_are_dropped() {
    let packets = tone_packets(10);
    let mut rx = rx();
    for (i, p) in packets.iter().enumerate().take(6) {
        audio(&mut rx, i, p);
    }
    audio(&mut rx, 3, &packets[3]);
    audio(&mut rx, 5, &packets[5]);
    audio(&mut rx, 6, &packets[6]);
    let heard = rx.heard();
    assert_eq!(heard.late_packets, 2);
    assert_eq!(heard.audio_packets, 9);
    assert_eq!(heard.pcm.len(), 7 * FRAME);
    assert_eq!(
        heard.arrivals.len(),
        9,
        "late packets are still logged as arrivals"
    );
}

#[test]
fn a_long_jump_starts_a_new_timeline() {
    let packets = tone_packets(3);
    let mut rx = rx();
    audio(&mut rx, 0, &packets[0]);
    // 2 s later on the sender's clock: after mute, not loss.
    audio(&mut rx, 101, &packets[1]);
    audio(&mut rx, 102, &packets[2]);
    let heard = rx.heard();
    assert_eq!(heard.resyncs, 1);
    assert_eq!(heard.pcm.len(), 3 * FRAME);
    assert_eq!(
        heard.concealed_frames + heard.silent_frames + heard.fec_frames,
        0
    );
}

#[test]
fn garbage_is_concealed_and_counted() {
    let packets = tone_packets(3);
    let mut rx = rx();
    audio(&mut rx, 0, &packets[0]);
    // TOC for a 20 ms CELT frame, code 3 with an impossible frame count.
    audio(&mut rx, 1, &[0xFB, 0xFF]);
    audio(&mut rx, 2, &packets[2]);
    let heard = rx.heard();
    assert_eq!(heard.decode_errors, 1);
    assert_eq!(heard.pcm.len(), 3 * FRAME);
}

#[test]
fn dtmf_in_the_stream_gives_each_digit_once() {
    let packets = tone_packets(30);
    let mut rx = rx();
    let mut seq = 0usize;
    for (i, p) in packets.iter().take(5).enumerate() {
        audio(&mut rx, i, p);
        seq = i;
    }
    // RFC 4733 on PT 126: timestamps on the audio timeline, durations in 8 kHz units (§5.3).
    let start = 5000 + 5 * RTP_TIMESTAMP_STEP;
    let mut sender = DtmfSender::new('7', start, 8000, 20, 100).unwrap();
    while let Some(p) = sender.next_packet() {
        seq += 1;
        let bytes = p.event.to_bytes();
        let packet = RtpIn {
            payload_type: 126,
            sequence: 1000 + seq as u16,
            timestamp: p.timestamp,
            marker: p.marker,
            payload: &bytes,
        };
        assert_eq!(
            rx.on_packet(Duration::from_millis(20 * seq as u64), &packet),
            PacketKind::Dtmf
        );
    }
    assert_eq!(rx.poll_digit(), Some('7'));
    assert_eq!(rx.poll_digit(), None);
    let other = RtpIn {
        payload_type: 0,
        sequence: 0,
        timestamp: 0,
        marker: false,
        payload: &[0xFF; 160],
    };
    assert_eq!(
        rx.on_packet(Duration::from_secs(1), &other),
        PacketKind::Other
    );
    rx.finish();
    let heard = rx.heard();
    assert_eq!(heard.digits, "7");
    assert_eq!(
        heard.dtmf_packets, 7,
        "4 in progress, the end sent 3 times (RFC 4733 §2.5.1.4)"
    );
    assert_eq!(heard.other_packets, 1);
}

#[test]
fn a_digit_with_its_end_lost_is_flushed_at_the_end() {
    let mut rx = rx();
    let mut sender = DtmfSender::new('#', 0, 8000, 20, 100).unwrap();
    let first = sender.next_packet().unwrap();
    let bytes = first.event.to_bytes();
    let packet = RtpIn {
        payload_type: 126,
        sequence: 1,
        timestamp: 0,
        marker: true,
        payload: &bytes,
    };
    rx.on_packet(Duration::ZERO, &packet);
    assert_eq!(rx.poll_digit(), None);
    rx.finish();
    assert_eq!(rx.heard().digits, "#");
}

fn arrival(ms: u64, kind: PacketKind, pcm_at: usize) -> Arrival {
    Arrival {
        at: Duration::from_millis(ms),
        kind,
        payload_type: 111,
        sequence: 0,
        timestamp: 0,
        marker: false,
        payload_len: 40,
        pcm_at,
    }
}

#[test]
fn gaps_count_the_window_edges() {
    let ms = Duration::from_millis;
    let heard = Heard {
        rate: 8000,
        arrivals: vec![
            arrival(100, PacketKind::Audio, 0),
            arrival(120, PacketKind::Audio, 160),
            arrival(300, PacketKind::Dtmf, 320),
            arrival(320, PacketKind::Audio, 320),
        ],
        ..Heard::default()
    };
    assert_eq!(heard.largest_gap(ms(100), ms(320)), ms(180));
    assert_eq!(heard.largest_gap(ms(0), ms(320)), ms(180));
    assert_eq!(heard.largest_gap(ms(0), ms(1000)), ms(680), "stopped early");
    assert_eq!(
        heard.largest_gap(ms(400), ms(500)),
        ms(100),
        "nothing at all"
    );
    assert_eq!(heard.first_audio(), Some(ms(100)));
}

#[test]
fn pcm_between_follows_the_arrivals() {
    let ms = Duration::from_millis;
    let heard = Heard {
        rate: 8000,
        pcm: (0..640).map(|i| i as i16).collect(),
        arrivals: vec![
            arrival(0, PacketKind::Audio, 0),
            arrival(20, PacketKind::Audio, 160),
            arrival(30, PacketKind::Dtmf, 320),
            arrival(40, PacketKind::Audio, 320),
            arrival(60, PacketKind::Audio, 480),
        ],
        ..Heard::default()
    };
    assert_eq!(heard.pcm_between(ms(20), ms(60)), &heard.pcm[160..480]);
    assert_eq!(heard.pcm_between(ms(40), ms(1000)), &heard.pcm[320..]);
    assert!(heard.pcm_between(ms(61), ms(100)).is_empty());
}
