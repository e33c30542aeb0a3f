//! The aiortc peer that plays Meta (`tests/peers/meta_peer.py`), driven over JSON lines.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use whatsip::media::webrtc_leg::{answer_offer, WebRtcConfig, WebRtcLeg};

/// The aiortc Meta peer as a child process speaking JSON lines.
pub struct MetaPeer {
    pub child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

/// The test virtualenv's interpreter (aiortc, pesq, scipy), made by `scripts/test.sh`.
pub fn venv_python() -> std::path::PathBuf {
    let py = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(py.exists(), "{} missing: run scripts/test.sh, which creates the test virtualenv", py.display());
    py
}

impl MetaPeer {
    pub fn start() -> MetaPeer {
        let mut child = Command::new(venv_python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/meta_peer.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start meta_peer.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        MetaPeer { child, stdin, events, seen: Vec::new() }
    }

    pub async fn send(&mut self, cmd: serde_json::Value) {
        self.stdin.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// Collects events until one named `name` arrives.
    pub async fn wait(&mut self, name: &str, limit: Duration) -> serde_json::Value {
        if let Some(v) = self.seen.iter().find(|v| v["event"] == name) {
            return v.clone();
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if v["event"] == "error" {
                        panic!("meta peer error: {v}");
                    }
                    if v["event"] == name {
                        return v;
                    }
                }
                _ => panic!("no {name:?} event from the meta peer within {limit:?}; saw {:?}", self.seen),
            }
        }
    }

    /// Events seen so far, including any still queued.
    pub fn drain(&mut self) -> &[serde_json::Value] {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        &self.seen
    }

    /// Meta offers (saying `tone_hz` once unmuted, recording what it hears into `record`), our
    /// WebRTC leg answers on loopback ports `ports.0..=ports.1`, and the answer goes back to
    /// Meta. Returns the leg and the answer we sent.
    pub async fn answered_by_our_leg(&mut self, tone_hz: u32, record: &std::path::Path, ports: (u16, u16)) -> (WebRtcLeg, String) {
        self.offer_answered_by_our_leg(serde_json::json!({"cmd": "offer", "tone_hz": tone_hz, "record": record}), ports)
            .await
    }

    /// [`Self::answered_by_our_leg`] for any offer command (`"play"`, `"opus_bitrate"`, ...).
    pub async fn offer_answered_by_our_leg(&mut self, offer: serde_json::Value, ports: (u16, u16)) -> (WebRtcLeg, String) {
        self.send(offer).await;
        let offer = self.wait("offer", Duration::from_secs(15)).await["sdp"].as_str().unwrap().to_string();
        let cfg = WebRtcConfig { bind_ip: "127.0.0.1".parse().unwrap(), public_ip: None, port_min: ports.0, port_max: ports.1 };
        let (leg, answer) = answer_offer(&offer, &cfg).await.expect("answer Meta's offer");
        self.send(serde_json::json!({"cmd": "answer", "sdp": answer})).await;
        (leg, answer)
    }
}
