//! The independent WebRTC peer that plays Meta (aiortc, `tests/peers/meta_peer.py`) is itself
//! proven here against a second aiortc peer answering as the gateway does: ICE-lite and
//! controlled, DTLS server, no audio before unmute, tones and DTMF each way on one SSRC.

use std::process::Command;

pub fn venv_python() -> std::path::PathBuf {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(py.exists(), "{} missing: run scripts/test.sh, which creates the test virtualenv", py.display());
    py
}

#[test]
fn meta_peer_passes_its_selftest() {
    let out = Command::new(venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/selftest.py"))
        .output()
        .expect("run selftest.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
