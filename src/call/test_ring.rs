//! `whatsip ring`: an admin's "does this phone work?" call. Rings a registered user or a trunk
//! extension, plays a file or a tone when answered, records what the phone sends, relays DTMF,
//! and reports what happened, including the frequency it heard.
//!
//! This drives the same SIP leg and RTP leg the WhatsApp calls use, so a green `ring` means the
//! phone side of a real call works.

use crate::media::ports::PortPool;
use crate::media::record::RecordTap;
use crate::media::rtp_leg::{spawn_rtp_leg, RtpCommand, RtpEvent, RtpLeg, RtpLegParams};
use crate::media::{tone, wav};
use crate::sip::leg::{self, DialRequest, DialTarget, LegEnd, LegOutcome, Progress};
use crate::sip::sdp::AudioOffer;
use crate::sip::SipStack;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tracing::Instrument;

/// Longest test call: a test, not a conference line (and the recording is held in memory).
pub const MAX_SECONDS: u32 = 600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RingRequest {
    /// `1001` (a registered user) or `2001@pbx` (an extension behind a trunk).
    pub target: String,
    /// How long to stay connected after the answer.
    #[serde(default = "default_seconds")]
    pub seconds: u32,
    /// Overrides `sip.ring_timeout_seconds`.
    #[serde(default)]
    pub ring_timeout_seconds: Option<u32>,
    /// A WAV file to play (any rate, mono or stereo), base64.
    #[serde(default)]
    pub play_wav_base64: Option<String>,
    /// Tone to play when no file is given; 0 for silence.
    #[serde(default = "default_tone")]
    pub tone_hz: u32,
    /// Return what the phone sent as an 8 kHz WAV.
    #[serde(default)]
    pub record: bool,
    /// DTMF digits to send once answered.
    #[serde(default)]
    pub dtmf: Option<String>,
}

fn default_seconds() -> u32 {
    10
}

fn default_tone() -> u32 {
    1000
}

impl RingRequest {
    pub fn check(&self) -> Result<(), String> {
        self.target.parse::<DialTarget>()?;
        if self.seconds == 0 || self.seconds > MAX_SECONDS {
            return Err(format!("seconds must be 1..={MAX_SECONDS}"));
        }
        if matches!(self.ring_timeout_seconds, Some(0) | Some(601..)) {
            return Err("ring_timeout_seconds must be 1..=600".into());
        }
        if self.tone_hz > 3900 {
            return Err("tone_hz must be below 3900 (G.711 carries 300-3400 Hz)".into());
        }
        if let Some(d) = &self.dtmf {
            if let Some(bad) = d.chars().find(|c| !"0123456789*#ABCDabcd".contains(*c)) {
                return Err(format!("{bad:?} is not a DTMF digit"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RingReport {
    pub target: String,
    /// answered, busy, rejected, no_answer or failed.
    pub outcome: String,
    pub detail: Option<String>,
    pub contact: Option<String>,
    pub codec: Option<String>,
    pub ring_ms: u64,
    pub talk_ms: u64,
    /// gateway, phone, dialog_ended (session timer or transport) or media_timeout.
    pub ended_by: Option<String>,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    /// Dominant frequency of what the phone sent, and its level.
    pub heard_hz: Option<f32>,
    pub heard_dbfs: Option<f32>,
    pub dtmf_received: String,
    pub recording_wav_base64: Option<String>,
    /// Contacts that rang (180/183) or answered, in order. The answering one is listed even
    /// without its 180: a phone may answer at once, and the SIP stack handles each datagram on
    /// its own task, so a 180 sent just before the 200 can arrive after it.
    #[serde(default)]
    pub rang: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no RTP port free: {0}")]
    Ports(String),
}

pub async fn run(sip: &SipStack, ports: &PortPool, request: RingRequest) -> Result<RingReport, RingError> {
    request.check().map_err(RingError::BadRequest)?;
    let target: DialTarget = request.target.parse().map_err(RingError::BadRequest)?;
    let play: Option<Arc<[i16]>> = match &request.play_wav_base64 {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| RingError::BadRequest(format!("play_wav_base64: {e}")))?;
            Some(wav::read_wav_bytes(&bytes).map_err(|e| RingError::BadRequest(format!("WAV to play: {e}")))?.into())
        }
        None if request.tone_hz > 0 => Some(tone::sine(request.tone_hz as f32, 8000, 1.0, 0.25).into()),
        None => None,
    };
    let settings = &sip.settings;
    let ip = settings.rtp.bind.parse().expect("validated");
    let (rtp, rtcp, port) = ports.bind_pair(ip).await.map_err(|e| RingError::Ports(e.to_string()))?;
    let offer = AudioOffer { session_id: rand::random::<u32>().into(), address: settings.rtp_public_ip(), port };
    let ring_timeout = Duration::from_secs(request.ring_timeout_seconds.unwrap_or(settings.sip.ring_timeout_seconds).into());
    let span = tracing::info_span!("test_ring", target = %target);
    async move {
        let started = Instant::now();
        tracing::info!(%port, "ringing");
        let (progress, mut rang) = tokio::sync::mpsc::channel(16);
        let outcome = leg::dial(
            sip,
            DialRequest {
                target: target.clone(),
                caller: settings.sip.test_caller.clone(),
                caller_name: Some("whatsip test".into()),
                sdp_offer: offer.to_sdp(),
                ring_timeout,
                headers: Vec::new(),
            },
            Some(progress),
        )
        .await;
        let ring_ms = started.elapsed().as_millis() as u64;
        let mut report = RingReport {
            target: request.target.clone(),
            outcome: outcome.label().into(),
            detail: None,
            contact: None,
            codec: None,
            ring_ms,
            talk_ms: 0,
            ended_by: None,
            packets_sent: 0,
            packets_received: 0,
            packets_lost: 0,
            heard_hz: None,
            heard_dbfs: None,
            dtmf_received: String::new(),
            recording_wav_base64: None,
            rang: Vec::new(),
        };
        while let Ok(Progress::Ringing { contact }) = rang.try_recv() {
            if !report.rang.contains(&contact) {
                report.rang.push(contact);
            }
        }
        let mut answered = match outcome {
            LegOutcome::Answered(a) => a,
            LegOutcome::Rejected { code, reason } => {
                report.detail = Some(format!("{code} {reason}"));
                tracing::info!(outcome = %report.outcome, detail = ?report.detail, "not answered");
                return Ok(report);
            }
            LegOutcome::Failed(e) => {
                report.detail = Some(e.to_string());
                tracing::info!(outcome = %report.outcome, detail = ?report.detail, "not answered");
                return Ok(report);
            }
            other => {
                tracing::info!(outcome = %other.label(), "not answered");
                return Ok(report);
            }
        };
        if !report.rang.contains(&answered.contact) {
            report.rang.push(answered.contact.clone());
        }
        report.contact = Some(answered.contact.clone());
        report.codec = Some(answered.audio.codec.encoding_name().into());
        tracing::info!(contact = %answered.contact, codec = %answered.audio.codec.encoding_name(), remote = %answered.audio.remote_rtp, "answered");

        let talk_started = Instant::now();
        let mut params = RtpLegParams::new(rtp, rtcp, answered.audio.remote_rtp, answered.audio.codec);
        params.media.remote_rtcp = answered.audio.remote_rtcp;
        params.media.dtmf_pt = answered.audio.dtmf_pt;
        params.media_timeout = Duration::from_secs(settings.rtp.media_timeout_seconds.into());
        // The tap feeds the "heard" analysis even when no recording is returned.
        let tap = RecordTap::new(request.seconds + 2);
        let RtpLeg { commands, mut events, task } = match spawn_rtp_leg(params, Some(tap)) {
            Ok(leg) => leg,
            Err(e) => {
                answered.hangup().await;
                report.outcome = "failed".into();
                report.detail = Some(format!("RTP: {e}"));
                return Ok(report);
            }
        };
        if let Some(samples) = play {
            let _ = commands.send(RtpCommand::Play { samples, looped: true }).await;
        }
        let mut digits: Vec<char> = request.dtmf.clone().unwrap_or_default().chars().collect();
        digits.reverse();
        let mut next_digit = Instant::now() + Duration::from_millis(700);
        let hangup_at = talk_started + Duration::from_secs(request.seconds.into());
        let ended_by = loop {
            tokio::select! {
                end = answered.wait_end() => break match end {
                    LegEnd::RemoteHangup => "phone",
                    LegEnd::Terminated => "dialog_ended",
                },
                _ = tokio::time::sleep_until(hangup_at) => break "gateway",
                _ = tokio::time::sleep_until(next_digit), if !digits.is_empty() => {
                    let d = digits.pop().expect("not empty");
                    let _ = commands.send(RtpCommand::SendDtmf(d)).await;
                    next_digit = Instant::now() + Duration::from_millis(400);
                }
                ev = events.recv() => match ev {
                    Some(RtpEvent::Dtmf(d)) => {
                        tracing::info!(digit = %d, "DTMF from phone");
                        report.dtmf_received.push(d);
                    }
                    Some(RtpEvent::MediaTimeout) => break "media_timeout",
                    Some(RtpEvent::FirstPacket { from }) => tracing::debug!(%from, "first RTP packet"),
                    Some(RtpEvent::PlaybackFinished) => {}
                    Some(RtpEvent::Stopped(_)) | None => break "media_timeout",
                }
            }
        };
        report.talk_ms = talk_started.elapsed().as_millis() as u64;
        report.ended_by = Some(ended_by.into());
        if ended_by == "gateway" || ended_by == "media_timeout" {
            answered.hangup().await;
        }
        let _ = commands.send(RtpCommand::Stop).await;
        let finished = task.await.ok();
        // Drain DTMF that arrived in the last moments.
        while let Ok(ev) = events.try_recv() {
            if let RtpEvent::Dtmf(d) = ev {
                report.dtmf_received.push(d);
            }
        }
        if let Some(done) = finished {
            if let Some(e) = &done.error {
                tracing::warn!(error = %e, "RTP leg ended with an error");
            }
            report.packets_sent = done.stats.packets_sent;
            report.packets_received = done.stats.packets_received;
            report.packets_lost = done.stats.lost.max(0) as u64;
            let (received, _sent) = done.record.map(RecordTap::into_parts).unwrap_or_default();
            let received = &received;
            // Skip the first 300 ms: phones often start with a burst of comfort noise.
            let analysed = received.get(2400.min(received.len())..).unwrap_or(&[]);
            if let Some((hz, dbfs)) = tone::dominant_frequency(analysed, 8000, 100.0, 3800.0) {
                report.heard_hz = Some(hz);
                report.heard_dbfs = Some(dbfs);
            }
            if request.record {
                report.recording_wav_base64 = Some(base64::engine::general_purpose::STANDARD.encode(wav::wav_bytes_8k_mono(received)));
            }
        }
        tracing::info!(ended_by, talk_ms = report.talk_ms, heard_hz = ?report.heard_hz, dtmf = %report.dtmf_received, "test call ended");
        Ok(report)
    }
    .instrument(span)
    .await
}
