//! Speech quality as a number: references spoken by espeak-ng and ITU-T P.862 narrowband scores
//! (MOS-LQO), both from `tests/peers/pesq_score.py` in the test virtualenv.

use std::path::Path;

use whatsip::media::g711::G711;
use whatsip::media::wav::{read_wav_8k_mono, write_wav_8k_mono};

use super::meta_peer::venv_python;

/// The reference the quality tests say: two voices, about 8.6 s with the padding; long enough
/// for PESQ to judge, short enough for a test.
pub const SPEECH: &[(&str, &str)] = &[
    ("en-us", "Thank you for calling the service desk. All agents are busy."),
    ("en-us+f3", "Hi, I am calling about order four seven three nine."),
];

/// What `pesq_score.py score` found.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Score {
    pub mos_lqo: f64,
    /// Where the utterance starts in the degraded recording.
    pub delay_s: f64,
    /// Normalised cross-correlation of reference and recording at that point.
    pub correlation: f64,
    /// Share of the reference the recording holds from there (1.0: all of it).
    pub covered: f64,
}

/// Writes an 8 kHz reference of each `(voice, text)` spoken in turn, under a fixed noise floor
/// (see `pesq_score.py`); returns its length in seconds.
pub async fn make_reference(out: &Path, utterances: &[(&str, &str)]) -> f64 {
    let mut args = vec!["reference".to_string(), out.display().to_string()];
    for (voice, text) in utterances {
        args.extend(["--say".to_string(), voice.to_string(), text.to_string()]);
    }
    scorer(&args).await["seconds"].as_f64().expect("reference length")
}

/// PESQ narrowband of `degraded` (any rate) against `reference`.
pub async fn score(reference: &Path, degraded: &Path) -> Score {
    let args = ["score".to_string(), reference.display().to_string(), degraded.display().to_string()];
    serde_json::from_value(scorer(&args).await).expect("pesq_score.py score output")
}

/// `reference` through `law` alone, encoded and decoded by our own G.711: the best any path
/// through a G.711 phone leg can sound.
pub fn through_g711(reference: &Path, law: G711, out: &Path) {
    let pcm = read_wav_8k_mono(reference).expect("read the reference");
    let mut bytes = vec![0u8; pcm.len()];
    law.encode(&pcm, &mut bytes);
    let mut decoded = vec![0i16; pcm.len()];
    law.decode(&bytes, &mut decoded);
    write_wav_8k_mono(out, &decoded).expect("write the G.711-only file");
}

async fn scorer(args: &[String]) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/pesq_score.py");
    let out = tokio::process::Command::new(venv_python())
        .arg(script)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("run pesq_score.py");
    assert!(
        out.status.success(),
        "pesq_score.py {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("pesq_score.py printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}
