//! Client for baresip's `ctrl_tcp` module: netstring-framed JSON (`<len>:<json>,`).
//!
//! Commands: `{"command":"dial","params":"sip:..","token":"7"}`; the reply is
//! `{"response":true,"ok":true,"data":"<command output>","token":"7"}`.
//! Events: `{"event":true,"class":"call","type":"CALL_ESTABLISHED","param":..,
//! "accountaor":..,"direction":"incoming","peeruri":..,"id":"<call id>"}`.
//! ctrl_tcp serves one connection at a time (a new one replaces the old) and only
//! sends events while connected: anything before `connect` is lost.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_FRAME: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct CtrlResponse {
    pub ok: bool,
    pub data: String,
    pub token: Option<String>,
}

#[derive(Clone, Debug)]
pub struct CtrlEvent {
    /// `REGISTER_OK`, `CALL_INCOMING`, `CALL_ESTABLISHED`, `CALL_DTMF_START`, ...
    pub ty: String,
    /// `register`, `call`, `other`, ...
    pub class: String,
    /// For `CALL_DTMF_START` the digit, for `CALL_CLOSED` the reason, ...
    pub param: Option<String>,
    /// The whole JSON object.
    pub raw: Value,
    /// When the event was read, for ordering and debugging.
    pub at: Instant,
}

enum Step {
    Response(CtrlResponse),
    Event,
    TimedOut,
}

enum Frame {
    Response(CtrlResponse),
    Event(CtrlEvent),
    Closed(String),
}

pub struct Ctrl {
    writer: OwnedWriteHalf,
    frames: mpsc::UnboundedReceiver<Frame>,
    pending: VecDeque<CtrlEvent>,
    history: Vec<(Instant, String)>,
    started: Instant,
    next_token: u64,
    closed: Option<String>,
    reader: tokio::task::JoinHandle<()>,
}

impl Ctrl {
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, writer) = stream.into_split();
        let (tx, frames) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_frames(read, tx));
        Ok(Self {
            writer,
            frames,
            pending: VecDeque::new(),
            history: Vec::new(),
            started: Instant::now(),
            next_token: 1,
            closed: None,
            reader,
        })
    }

    /// Sends one command and waits for its response; events read meanwhile are queued.
    pub async fn command(&mut self, command: &str, params: Option<&str>) -> Result<CtrlResponse> {
        let token = self.next_token.to_string();
        self.next_token += 1;
        let mut msg = serde_json::json!({ "command": command, "token": token });
        if let Some(p) = params {
            msg["params"] = Value::String(p.to_owned());
        }
        let json = msg.to_string();
        let framed = format!("{}:{json},", json.len());
        self.writer.write_all(framed.as_bytes()).await.context("writing to ctrl_tcp")?;
        let deadline = tokio::time::Instant::now() + COMMAND_TIMEOUT;
        loop {
            match self.pump(deadline).await? {
                Step::Response(r) if r.token.as_deref() == Some(&token) => return Ok(r),
                Step::Response(_) | Step::Event => {}
                Step::TimedOut => bail!("no response to `{command}` within {COMMAND_TIMEOUT:?}"),
            }
        }
    }

    /// Removes and returns the first queued event of type `ty`, waiting up to `timeout`.
    pub async fn wait_event(&mut self, ty: &str, timeout: Duration) -> Result<CtrlEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(ev) = self.take_event(ty) {
                return Ok(ev);
            }
            if let Step::TimedOut = self.pump(deadline).await? {
                bail!("no {ty} event within {timeout:?}");
            }
        }
    }

    /// Removes and returns the first queued event of type `ty` without waiting.
    pub fn take_event(&mut self, ty: &str) -> Option<CtrlEvent> {
        while let Ok(frame) = self.frames.try_recv() {
            self.absorb(frame);
        }
        let i = self.pending.iter().position(|e| e.ty == ty)?;
        self.pending.remove(i)
    }

    pub fn clear_events(&mut self) {
        while let Ok(frame) = self.frames.try_recv() {
            self.absorb(frame);
        }
        self.pending.clear();
    }

    /// Every event type received so far with its time since connect, e.g.
    /// `CALL_RINGING@0.41s CALL_ESTABLISHED@0.52s`.
    pub fn history_summary(&self) -> String {
        if self.history.is_empty() {
            return "(none)".into();
        }
        let items: Vec<String> = self
            .history
            .iter()
            .map(|(at, ty)| format!("{ty}@{:.2}s", at.duration_since(self.started).as_secs_f64()))
            .collect();
        items.join(" ")
    }

    /// Reads one frame, queueing it if it is an event.
    async fn pump(&mut self, deadline: tokio::time::Instant) -> Result<Step> {
        if let Some(reason) = &self.closed {
            bail!("ctrl_tcp connection closed: {reason}");
        }
        match tokio::time::timeout_at(deadline, self.frames.recv()).await {
            Err(_) => Ok(Step::TimedOut),
            Ok(None) => bail!("ctrl_tcp reader stopped"),
            Ok(Some(Frame::Response(r))) => Ok(Step::Response(r)),
            Ok(Some(frame)) => {
                self.absorb(frame);
                match &self.closed {
                    Some(reason) => bail!("ctrl_tcp connection closed: {reason}"),
                    None => Ok(Step::Event),
                }
            }
        }
    }

    fn absorb(&mut self, frame: Frame) {
        match frame {
            Frame::Event(ev) => {
                self.history.push((ev.at, ev.ty.clone()));
                self.pending.push_back(ev);
            }
            Frame::Closed(reason) => self.closed = Some(reason),
            Frame::Response(_) => {}
        }
    }
}

impl Drop for Ctrl {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

async fn read_frames(mut read: tokio::net::tcp::OwnedReadHalf, tx: mpsc::UnboundedSender<Frame>) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    let reason = loop {
        loop {
            match parse_netstring(&buf) {
                Ok(Some((payload, used))) => {
                    let frame = decode(payload);
                    buf.drain(..used);
                    match frame {
                        Ok(frame) => {
                            if tx.send(frame).is_err() {
                                return;
                            }
                        }
                        Err(e) => eprintln!("ctrl_tcp: ignoring undecodable frame: {e:#}"),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Frame::Closed(format!("bad framing: {e}")));
                    return;
                }
            }
        }
        match read.read(&mut chunk).await {
            Ok(0) => break "EOF (baresip exited?)".to_owned(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => break e.to_string(),
        }
    };
    let _ = tx.send(Frame::Closed(reason));
}

/// `Some((payload, bytes consumed))` for a complete netstring at the start of `buf`.
fn parse_netstring(buf: &[u8]) -> Result<Option<(&[u8], usize)>> {
    let Some(colon) = buf.iter().position(|&b| b == b':') else {
        if buf.len() > 20 {
            bail!("no ':' in the first {} bytes", buf.len());
        }
        return Ok(None);
    };
    let len: usize = std::str::from_utf8(&buf[..colon])?.trim().parse().context("netstring length")?;
    if len > MAX_FRAME {
        bail!("frame of {len} bytes");
    }
    let end = colon + 1 + len;
    if buf.len() < end + 1 {
        return Ok(None);
    }
    if buf[end] != b',' {
        bail!("netstring not terminated by ','");
    }
    Ok(Some((&buf[colon + 1..end], end + 1)))
}

fn decode(payload: &[u8]) -> Result<Frame> {
    let v: Value = serde_json::from_slice(payload)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    // baresip encodes both flags as JSON booleans; older docs show the string "true".
    let flag = |k: &str| matches!(v.get(k), Some(Value::Bool(true))) || v.get(k).and_then(Value::as_str) == Some("true");
    if flag("response") {
        return Ok(Frame::Response(CtrlResponse {
            ok: matches!(v.get("ok"), Some(Value::Bool(true))),
            data: text("data").unwrap_or_default(),
            token: text("token"),
        }));
    }
    if flag("event") {
        return Ok(Frame::Event(CtrlEvent {
            ty: text("type").ok_or_else(|| anyhow!("event without type: {v}"))?,
            class: text("class").unwrap_or_default(),
            param: text("param"),
            raw: v,
            at: Instant::now(),
        }));
    }
    bail!("neither response nor event: {v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_split_and_wait_for_more() {
        let buf = b"5:hello,3:abc,2:x";
        let (p, used) = parse_netstring(buf).unwrap().unwrap();
        assert_eq!((p, used), (&b"hello"[..], 8));
        let (p, used2) = parse_netstring(&buf[used..]).unwrap().unwrap();
        assert_eq!((p, used2), (&b"abc"[..], 6));
        assert!(parse_netstring(&buf[used + used2..]).unwrap().is_none());
        assert!(parse_netstring(b"3:abcX").is_err());
    }

    #[test]
    fn decodes_events_and_responses() {
        let ev = br#"{"event":true,"class":"call","type":"CALL_DTMF_START","param":"5"}"#;
        match decode(ev).unwrap() {
            Frame::Event(e) => assert_eq!((e.ty.as_str(), e.param.as_deref()), ("CALL_DTMF_START", Some("5"))),
            _ => panic!("not an event"),
        }
        match decode(br#"{"response":true,"ok":false,"data":"x","token":"9"}"#).unwrap() {
            Frame::Response(r) => assert!(!r.ok && r.token.as_deref() == Some("9")),
            _ => panic!("not a response"),
        }
    }
}
