//! What the sandbox WhatsApp user says: 20 ms frames of a tone, of a PCM recording, or of a
//! quiet room, at the peer's capture rate.

use std::f64::consts::TAU;
use std::sync::Arc;

/// A sound the peer plays into its microphone. Switchable while the call runs
/// ([`super::WaPeer::set_source`]).
#[derive(Debug, Clone, PartialEq)]
pub enum AudioSource {
    /// A sine at `hz`; `amplitude` is its peak as a fraction of full scale (clamped to 0..=1).
    Tone { hz: f32, amplitude: f32 },
    /// Mono PCM at the peer's capture rate (`WaPeerConfig::capture_rate`), from its start;
    /// silence after its end unless `looped`.
    Pcm { samples: Arc<[i16]>, looped: bool },
    /// An open microphone in a silent room: frames keep flowing, coded from digital zero.
    /// (Muting, in contrast, sends nothing at all.)
    Silence,
}

/// Cuts an [`AudioSource`] into frames, keeping a tone's phase and a recording's position
/// from one frame to the next.
#[derive(Debug)]
pub(crate) struct FrameSource {
    source: AudioSource,
    rate: u32,
    /// Tone phase in radians, kept in 0..TAU so it never loses precision.
    phase: f64,
    /// Next sample of a PCM source.
    pos: usize,
}

impl FrameSource {
    pub(crate) fn new(source: AudioSource, rate: u32) -> FrameSource {
        FrameSource {
            source,
            rate,
            phase: 0.0,
            pos: 0,
        }
    }

    /// A recording starts from its beginning; a tone keeps its phase, so switching between
    /// tones does not click.
    pub(crate) fn set(&mut self, source: AudioSource) {
        self.source = source;
        self.pos = 0;
    }

    pub(crate) fn fill(&mut self, out: &mut [i16]) {
        match &self.source {
            AudioSource::Tone { hz, amplitude } => {
                let peak = f64::from(amplitude.clamp(0.0, 1.0)) * f64::from(i16::MAX);
                let step = TAU * f64::from(*hz) / f64::from(self.rate);
                for o in out.iter_mut() {
                    *o = (peak * self.phase.sin()).round() as i16;
                    self.phase = (self.phase + step) % TAU;
                }
            }
            AudioSource::Pcm { samples, looped } => {
                for o in out.iter_mut() {
                    if self.pos >= samples.len() && *looped && !samples.is_empty() {
                        self.pos = 0;
                    }
                    *o = samples.get(self.pos).copied().unwrap_or(0);
                    self.pos = self.pos.saturating_add(1);
                }
            }
            AudioSource::Silence => out.fill(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::tone::{dominant_frequency, rms_dbfs, sine};

    #[test]
    fn a_tone_is_continuous_across_frames() {
        let mut src = FrameSource::new(
            AudioSource::Tone {
                hz: 1000.0,
                amplitude: 0.3,
            },
            16000,
        );
        let mut got = vec![0i16; 16000];
        for frame in got.chunks_mut(320) {
            src.fill(frame);
        }
        let want = sine(1000.0, 16000, 1.0, 0.3);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
            .max()
            .unwrap();
        assert!(worst <= 2, "differs from one long sine by {worst}");
        let (hz, _) = dominant_frequency(&got, 16000, 100.0, 7000.0).unwrap();
        assert!((hz - 1000.0).abs() < 2.0, "{hz}");
    }

    #[test]
    fn switching_tones_keeps_the_phase() {
        let mut src = FrameSource::new(
            AudioSource::Tone {
                hz: 500.0,
                amplitude: 0.5,
            },
            8000,
        );
        let mut a = [0i16; 3];
        src.fill(&mut a);
        src.set(AudioSource::Tone {
            hz: 500.0,
            amplitude: 0.5,
        });
        let mut b = [0i16; 3];
        src.fill(&mut b);
        let want = sine(500.0, 8000, 6.0 / 8000.0, 0.5);
        for (got, want) in [a, b].concat().iter().zip(&want) {
            assert!((got - want).abs() <= 1, "{a:?} {b:?} vs {want:?}");
        }
    }

    #[test]
    fn a_recording_plays_once_or_loops() {
        let samples: Arc<[i16]> = (1..=5).collect::<Vec<i16>>().into();
        let mut once = FrameSource::new(
            AudioSource::Pcm {
                samples: samples.clone(),
                looped: false,
            },
            16000,
        );
        let mut out = [0i16; 4];
        once.fill(&mut out);
        assert_eq!(out, [1, 2, 3, 4]);
        once.fill(&mut out);
        assert_eq!(out, [5, 0, 0, 0]);

        let mut looped = FrameSource::new(
            AudioSource::Pcm {
                samples,
                looped: true,
            },
            16000,
        );
        looped.fill(&mut out);
        looped.fill(&mut out);
        assert_eq!(out, [5, 1, 2, 3]);
        // A new source starts from its beginning.
        looped.set(AudioSource::Pcm {
            samples: Arc::from(vec![9i16, 8]),
            looped: false,
        });
        looped.fill(&mut out);
        assert_eq!(out, [9, 8, 0, 0]);
    }

    #[test]
    fn silence_and_an_empty_recording_are_digital_zero() {
        let mut out = [7i16; 320];
        FrameSource::new(AudioSource::Silence, 16000).fill(&mut out);
        assert_eq!(rms_dbfs(&out), crate::media::tone::SILENCE_DBFS);
        out.fill(7);
        let empty = AudioSource::Pcm {
            samples: Arc::from(Vec::new()),
            looped: true,
        };
        FrameSource::new(empty, 16000).fill(&mut out);
        assert!(out.iter().all(|&s| s == 0));
    }
}
