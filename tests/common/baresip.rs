//! baresip 1.0 as a headless desk phone, driven over its `ctrl_tcp` module.
//!
//! Each instance gets a private config dir, its own SIP/ctrl/RTP ports on 127.0.0.1,
//! plays a WAV file as its microphone (`aufile`), discards what it hears
//! (`aubridge`), and records both directions per call (`sndfile` writes
//! `dump-<time>-dec.wav` = received and `-enc.wav` = sent, 8 kHz mono S16 for
//! G.711). Its stdout/stderr go to `baresip.log` in the working dir; every timeout
//! error quotes the tail of that log and the events seen so far.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub use super::ctrl::{Ctrl, CtrlEvent, CtrlResponse};
use super::ports;
use super::process::{tail, ChildGuard};

const MODULE_PATH: &str = "/usr/lib/baresip/modules";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerMode {
    /// Answers every incoming call at once.
    Auto,
    /// Rings until the test sends `accept`.
    Manual,
}

#[derive(Clone, Debug)]
pub struct BaresipOpts {
    pub user: String,
    /// Digest password; used only with a registrar.
    pub password: Option<String>,
    /// `host:port` of the registrar (the gateway). `None`: the phone does not
    /// register and is reachable directly at `sip:user@127.0.0.1:<sip_port>`.
    pub registrar: Option<String>,
    pub answermode: AnswerMode,
    /// What the phone "says": played by `audio_source aufile,PATH`. baresip 1.0
    /// raises an audio error when the file ends, so make it longer than the call.
    pub audio_source: PathBuf,
    /// `rtp_ports A-B`; `None` picks a free block of 20.
    pub rtp_ports: Option<(u16, u16)>,
    /// Where sndfile writes the call recordings and the log goes; `None` makes a
    /// temp dir that lives as long as the `Baresip`.
    pub workdir: Option<PathBuf>,
    /// baresip quits by itself after this long (`-t`), in case a test runner is
    /// killed before the guards run.
    pub max_lifetime: Duration,
}

impl BaresipOpts {
    pub fn new(user: &str, audio_source: impl Into<PathBuf>) -> Self {
        Self {
            user: user.to_owned(),
            password: None,
            registrar: None,
            answermode: AnswerMode::Auto,
            audio_source: audio_source.into(),
            rtp_ports: None,
            workdir: None,
            max_lifetime: Duration::from_secs(300),
        }
    }

    pub fn registrar(mut self, host_port: &str, password: &str) -> Self {
        self.registrar = Some(host_port.to_owned());
        self.password = Some(password.to_owned());
        self
    }

    pub fn answermode(mut self, mode: AnswerMode) -> Self {
        self.answermode = mode;
        self
    }

    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = Some(dir.into());
        self
    }
}

pub struct Baresip {
    ctrl: Ctrl,
    // Declared after `ctrl` so the control connection closes before the kill.
    child: ChildGuard,
    user: String,
    sip_port: u16,
    workdir: PathBuf,
    log: PathBuf,
    _config_dir: tempfile::TempDir,
    _own_workdir: Option<tempfile::TempDir>,
}

impl Baresip {
    /// Writes the config, starts `baresip -f DIR` in the foreground and connects to
    /// ctrl_tcp. Does not wait for registration: see [`Baresip::wait_registered`].
    pub async fn start(opts: BaresipOpts) -> Result<Self> {
        let own_workdir = match opts.workdir {
            Some(_) => None,
            None => Some(tempfile::Builder::new().prefix("baresip-work-").tempdir()?),
        };
        let workdir = match &opts.workdir {
            Some(dir) => dir.clone(),
            None => own_workdir.as_ref().expect("set just above").path().to_path_buf(),
        };
        std::fs::create_dir_all(&workdir)?;
        let config_dir = tempfile::Builder::new().prefix("baresip-conf-").tempdir()?;
        let sip_port = ports::free_port_pair();
        let ctrl_port = ports::free_tcp_port();
        let (rtp_lo, rtp_hi) = opts.rtp_ports.unwrap_or_else(|| {
            let lo = ports::free_udp_block(20);
            (lo, lo + 19)
        });
        let audio_source = std::fs::canonicalize(&opts.audio_source)
            .with_context(|| format!("audio source {}", opts.audio_source.display()))?;

        let config = config_text(sip_port, ctrl_port, (rtp_lo, rtp_hi), &audio_source, &workdir, &opts.user);
        std::fs::write(config_dir.path().join("config"), config)?;
        std::fs::write(config_dir.path().join("accounts"), account_line(&opts, sip_port)? + "\n")?;

        let log = workdir.join("baresip.log");
        let mut cmd = Command::new("baresip");
        cmd.arg("-f")
            .arg(config_dir.path())
            .arg("-t")
            .arg(opts.max_lifetime.as_secs().max(1).to_string())
            .current_dir(&workdir);
        let mut child = ChildGuard::spawn(&format!("baresip {}", opts.user), &mut cmd, &log)?;

        let ctrl_addr: SocketAddr = ([127, 0, 0, 1], ctrl_port).into();
        let ctrl = connect_ctrl(&mut child, ctrl_addr, &log).await?;
        Ok(Self {
            ctrl,
            child,
            user: opts.user,
            sip_port,
            workdir,
            log,
            _config_dir: config_dir,
            _own_workdir: own_workdir,
        })
    }

    pub fn sip_addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.sip_port).into()
    }

    /// Where this phone can be called directly: `sip:user@127.0.0.1:port`.
    pub fn uri(&self) -> String {
        format!("sip:{}@127.0.0.1:{}", self.user, self.sip_port)
    }

    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Sends a ctrl_tcp command (a `menu` long command or a core one such as `quit`)
    /// and returns baresip's response; `ok: false` is an error.
    pub async fn command(&mut self, command: &str, params: Option<&str>) -> Result<CtrlResponse> {
        let resp = self.ctrl.command(command, params).await.map_err(|e| self.explain(e))?;
        if !resp.ok {
            bail!("baresip `{command} {}` failed: {}\n{}", params.unwrap_or(""), resp.data, self.context());
        }
        Ok(resp)
    }

    /// The first not yet consumed event of type `ty` (e.g. `CALL_ESTABLISHED`),
    /// waiting up to `timeout`. Events of other types stay queued.
    pub async fn wait_event(&mut self, ty: &str, timeout: Duration) -> Result<CtrlEvent> {
        let result = self.ctrl.wait_event(ty, timeout).await;
        result.map_err(|e| self.explain(e))
    }

    /// The first queued event of type `ty`, if one came, without waiting.
    pub fn take_event(&mut self, ty: &str) -> Option<CtrlEvent> {
        self.ctrl.take_event(ty)
    }

    /// Drops queued, unconsumed events (e.g. the previous call's) before the next step.
    pub fn clear_events(&mut self) {
        self.ctrl.clear_events();
    }

    /// Waits until the account is registered (`reginfo` shows `OK`). Registration
    /// starts at launch, before ctrl_tcp is connected, so its REGISTER_OK event may
    /// never reach us; polling `reginfo` cannot miss it. Fails fast on REGISTER_FAIL.
    pub async fn wait_registered(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let info = strip_ansi(&self.command("reginfo", None).await?.data);
            if info.contains(" OK ") {
                return Ok(());
            }
            // "ERR" = the registrar's last final answer was not 200 (e.g. 403).
            if let Some(ev) = self.ctrl.take_event("REGISTER_FAIL") {
                bail!("registration failed: {}; reginfo: {}\n{}", ev.param.unwrap_or_default(), info.trim(), self.context());
            }
            if info.contains(" ERR ") {
                bail!("registration failed; reginfo: {}\n{}", info.trim(), self.context());
            }
            if Instant::now() >= deadline {
                bail!("not registered after {timeout:?}; reginfo: {}\n{}", info.trim(), self.context());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn dial(&mut self, uri: &str) -> Result<()> {
        self.command("dial", Some(uri)).await.map(drop)
    }

    /// Answers the ringing call (answermode manual).
    pub async fn accept(&mut self) -> Result<()> {
        self.command("accept", None).await.map(drop)
    }

    /// Hangs up the current call: BYE when established, CANCEL while ringing out,
    /// 486 for an incoming call not yet answered.
    pub async fn hangup(&mut self) -> Result<()> {
        self.command("hangup", None).await.map(drop)
    }

    /// Sends DTMF on the current call as RFC 4733 telephone-events (`sndcode`).
    /// Each character of `digits` is one key press (0-9 * # A-D).
    pub async fn send_dtmf(&mut self, digits: &str) -> Result<()> {
        self.command("sndcode", Some(digits)).await.map(drop)
    }

    /// The next DTMF key the far end pressed (`CALL_DTMF_START`, RFC 4733 events).
    pub async fn wait_dtmf(&mut self, timeout: Duration) -> Result<char> {
        let ev = self.wait_event("CALL_DTMF_START", timeout).await?;
        ev.param.as_deref().and_then(|p| p.chars().next()).ok_or_else(|| anyhow!("DTMF event without a digit: {}", ev.raw))
    }

    /// The `listcalls` text, e.g. `[line 1]  0:00:02  ESTABLISHED  sip:...`.
    pub async fn list_calls(&mut self) -> Result<String> {
        Ok(strip_ansi(&self.command("listcalls", None).await?.data))
    }

    /// The newest recording of what this phone received (`*-dec.wav`).
    pub fn received_wav(&self) -> Result<PathBuf> {
        newest_wav(&self.workdir, "-dec.wav")
    }

    /// The newest recording of what this phone sent (`*-enc.wav`).
    pub fn sent_wav(&self) -> Result<PathBuf> {
        newest_wav(&self.workdir, "-enc.wav")
    }

    /// Asks baresip to quit (it hangs up, unregisters, closes the recordings) and
    /// waits for it; the guard's SIGTERM/SIGKILL takes over after 3 s.
    pub async fn stop(mut self) -> Result<()> {
        let _ = self.ctrl.command("quit", None).await;
        if self.child.wait_timeout(Duration::from_secs(3)).await?.is_none() {
            self.child.stop();
        }
        Ok(())
    }

    fn context(&mut self) -> String {
        let exited = match self.child.try_wait() {
            Ok(Some(status)) => format!("baresip EXITED: {status}\n"),
            _ => String::new(),
        };
        format!(
            "{exited}events seen: {}\n--- tail of {} ---\n{}\n---",
            self.ctrl.history_summary(),
            self.log.display(),
            self.log_tail(40)
        )
    }

    fn explain(&mut self, e: anyhow::Error) -> anyhow::Error {
        anyhow!("{e:#}\n{}", self.context())
    }
}

fn config_text(sip: u16, ctrl: u16, rtp: (u16, u16), source: &Path, workdir: &Path, name: &str) -> String {
    let mut c = String::new();
    let mut line = |k: &str, v: &str| writeln!(c, "{k:<20} {v}").expect("write to String");
    line("poll_method", "epoll");
    line("sip_listen", &format!("127.0.0.1:{sip}"));
    line("net_interface", "127.0.0.1");
    line("call_local_timeout", "120");
    line("call_max_calls", "4");
    line("audio_player", &format!("aubridge,{name}"));
    line("audio_alert", &format!("aubridge,{name}"));
    line("audio_source", &format!("aufile,{}", source.display()));
    line("rtp_ports", &format!("{}-{}", rtp.0, rtp.1));
    line("rtcp_mux", "no");
    line("jitter_buffer_delay", "1-10");
    // Without this, menu prints a call status line to stdout 10 times a second.
    line("statmode_default", "off");
    line("module_path", MODULE_PATH);
    for m in ["g711.so", "aufile.so", "aubridge.so", "sndfile.so"] {
        line("module", m);
    }
    line("module_tmp", "account.so");
    line("module_app", "menu.so");
    line("module_app", "ctrl_tcp.so");
    line("ctrl_tcp_listen", &format!("127.0.0.1:{ctrl}"));
    line("snd_path", &workdir.display().to_string());
    c
}

fn account_line(opts: &BaresipOpts, sip_port: u16) -> Result<String> {
    let mode = match opts.answermode {
        AnswerMode::Auto => "auto",
        AnswerMode::Manual => "manual",
    };
    let common = format!("answermode={mode};audio_codecs=PCMU,PCMA;ptime=20");
    Ok(match &opts.registrar {
        Some(registrar) => {
            let password = opts.password.as_deref().ok_or_else(|| anyhow!("a registrar needs a password"))?;
            format!("<sip:{}@{registrar};transport=udp>;auth_pass={password};regint=60;{common}", opts.user)
        }
        None => format!("<sip:{}@127.0.0.1:{sip_port};transport=udp>;regint=0;{common}", opts.user),
    })
}

async fn connect_ctrl(child: &mut ChildGuard, addr: SocketAddr, log: &Path) -> Result<Ctrl> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{} exited ({status}) before ctrl_tcp came up\n--- log ---\n{}", child.name(), tail(log, 40));
        }
        match Ctrl::connect(addr).await {
            Ok(ctrl) => return Ok(ctrl),
            Err(e) if Instant::now() >= deadline => {
                bail!("ctrl_tcp {addr} unreachable after 5 s: {e}\n--- log ---\n{}", tail(log, 40))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn newest_wav(dir: &Path, suffix: &str) -> Result<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(suffix)))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    // Names carry a timestamp with 1 s resolution; mtime breaks ties.
    found.sort();
    found.pop().map(|(_, p)| p).ok_or_else(|| anyhow!("no *{suffix} in {}: was there a call with audio?", dir.display()))
}

/// baresip colours parts of its command output (`reginfo` prints "OK " in green).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
