//! Announcement files, decoded once when the plan loads into the gateway's 8 kHz mono
//! ([`crate::media::wav`] converts any PCM WAV), so a call plays audio already in memory and a
//! file that cannot play is found by `dialplan check`, not by a caller hearing silence.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::media::wav::{self, read_wav_8k_mono};

/// The longest announcement accepted. Longer is a wrong file (music, a recording), and decoding
/// it would hold minutes of audio in memory for a prompt.
pub(super) const MAX_ANNOUNCEMENT: Duration = Duration::from_secs(600);

/// Why a named announcement file cannot be played. Clone: the same file named in several places
/// is decoded once and reported at each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum AnnouncementError {
    #[error("is not a WAV whatsip can read ({0})")]
    Undecodable(String),
    #[error("holds no audio")]
    Empty,
    #[error("is {seconds} s long, over the {} s limit", MAX_ANNOUNCEMENT.as_secs())]
    TooLong { seconds: u64 },
}

impl AnnouncementError {
    pub(super) fn fix(&self) -> &'static str {
        match self {
            AnnouncementError::Undecodable(_) => "save it as a PCM WAV (any sample rate, mono or stereo; whatsip converts it to 8 kHz mono)",
            AnnouncementError::Empty => "record the announcement again, or name another file",
            AnnouncementError::TooLong { .. } => "shorten it to 10 minutes or less",
        }
    }
}

pub(super) fn decode(path: &Path) -> Result<Arc<[i16]>, AnnouncementError> {
    // The header says how long the file is; refusing a long one here spares decoding it (the
    // decoder holds the whole file as f64 before resampling). An unreadable header is left to
    // the decoder to report.
    if let Ok(reader) = hound::WavReader::open(path) {
        let rate = u64::from(reader.spec().sample_rate);
        if rate > 0 && u64::from(reader.duration()) > MAX_ANNOUNCEMENT.as_secs() * rate {
            return Err(AnnouncementError::TooLong { seconds: u64::from(reader.duration()) / rate });
        }
    }
    let samples = read_wav_8k_mono(path).map_err(|e| AnnouncementError::Undecodable(e.to_string()))?;
    let rate = u64::from(wav::RATE);
    let len = samples.len() as u64;
    if len == 0 {
        return Err(AnnouncementError::Empty);
    }
    if len > MAX_ANNOUNCEMENT.as_secs() * rate {
        return Err(AnnouncementError::TooLong { seconds: len / rate });
    }
    Ok(Arc::from(samples))
}
