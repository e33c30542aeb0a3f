//! Running sipp scenarios (tests/sipp/*.xml) against the gateway.
//!
//! Every run gets a temp dir as its cwd, its own SIP, media and control ports on
//! 127.0.0.1, `-nostdin` (no terminal) and sipp's own global timeout. The error
//! and message logs (`-trace_err`, `-trace_msg`) are written there and quoted
//! when a run fails.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::ports;
use super::process::{tail, ChildGuard};

/// The directory holding the scenario files.
pub fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("sipp")
}

/// `tests/sipp/<name>`.
pub fn scenario(name: &str) -> PathBuf {
    scenario_dir().join(name)
}

pub struct Sipp;

impl Sipp {
    /// Runs `scenario` against `remote` (`"127.0.0.1:PORT"`, empty for a pure UAS)
    /// once (`-m 1 -l 1`) and waits up to `timeout` for it to finish.
    pub async fn run(scenario: &Path, remote: &str, extra: &[&str], timeout: Duration) -> Result<SippResult> {
        Self::spawn(scenario, remote, extra, timeout)?.wait().await
    }

    /// Starts a sipp run without waiting for it, e.g. a phone that must be registered
    /// before the test makes the gateway call it.
    pub fn spawn(scenario: &Path, remote: &str, extra: &[&str], timeout: Duration) -> Result<SippProcess> {
        if !scenario.is_file() {
            bail!("no scenario file {}", scenario.display());
        }
        let dir = tempfile::Builder::new().prefix("sipp-").tempdir()?;
        let local_port = ports::free_udp_port();
        let media_port = ports::free_udp_block(4);
        let ctrl_port = ports::free_udp_port();
        let errors = dir.path().join("errors.log");
        let messages = dir.path().join("messages.log");
        let output = dir.path().join("stdout.log");
        let stderr = dir.path().join("stderr.log");

        let mut cmd = Command::new("sipp");
        if !remote.is_empty() {
            cmd.arg(remote);
        }
        cmd.arg("-sf").arg(scenario);
        let port = |p: u16| p.to_string();
        let secs = format!("{}s", timeout.as_secs().max(1));
        cmd.args(["-m", "1", "-l", "1", "-i", "127.0.0.1"])
            .args(["-p", &port(local_port), "-mp", &port(media_port)])
            // The remote-control socket otherwise binds 0.0.0.0:8888 (and up).
            .args(["-ci", "127.0.0.1", "-cp", &port(ctrl_port)])
            .args(["-nostdin", "-trace_err", "-error_file"])
            .arg(&errors)
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&messages)
            .args(["-timeout", &secs, "-timeout_error"])
            .args(extra)
            .current_dir(dir.path());
        let child = ChildGuard::spawn_split("sipp", &mut cmd, &output, &stderr)?;
        Ok(SippProcess {
            child,
            command: format!("{cmd:?}"),
            timeout,
            started: Instant::now(),
            local_port,
            media_port,
            errors,
            messages,
            output,
            stderr,
            dir,
        })
    }

    /// A registering sipp phone: `phone_register.xml` registers `user` with
    /// `password` at `gateway`, and `uas_scenario` (e.g. `uas_busy.xml`) handles the
    /// gateway's INVITE as sipp's out-of-call scenario. Use
    /// [`SippProcess::wait_registered`] before making the gateway ring it.
    pub fn phone(uas_scenario: &str, gateway: &str, user: &str, password: &str, extra: &[&str], timeout: Duration) -> Result<SippProcess> {
        let ooc = scenario(uas_scenario);
        let ooc = ooc.to_str().expect("scenario path is UTF-8");
        // Without "-bye", a failed run would send a BYE inside the REGISTER's Call-ID.
        let mut args = vec!["-oocsf", ooc, "-s", user, "-au", user, "-ap", password, "-default_behaviors", "all,-bye"];
        args.extend_from_slice(extra);
        Self::spawn(&scenario("phone_register.xml"), gateway, &args, timeout)
    }
}

pub struct SippProcess {
    child: ChildGuard,
    command: String,
    timeout: Duration,
    started: Instant,
    local_port: u16,
    media_port: u16,
    errors: PathBuf,
    messages: PathBuf,
    output: PathBuf,
    stderr: PathBuf,
    // Last, so the files outlive the process that writes them.
    dir: tempfile::TempDir,
}

impl SippProcess {
    /// sipp's SIP port (`-p`): where a UAS scenario receives requests.
    pub fn local_port(&self) -> u16 {
        self.local_port
    }

    /// sipp's RTP port (`-mp`, the `[media_port]` keyword).
    pub fn media_port(&self) -> u16 {
        self.media_port
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.pid()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SIP messages sent and received so far (`-trace_msg`).
    pub fn messages(&self) -> String {
        std::fs::read_to_string(&self.messages).unwrap_or_default()
    }

    /// Waits until a received message starts with `first_line_prefix` and contains
    /// `needle` (e.g. `"SIP/2.0 200"` and `"REGISTER"`).
    pub async fn wait_received(&mut self, first_line_prefix: &str, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if received(&self.messages(), first_line_prefix, needle) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("sipp exited ({status}) before receiving `{first_line_prefix}` with `{needle}`\n{}", self.report(Some(status)));
            }
            if Instant::now() >= deadline {
                bail!("sipp received no `{first_line_prefix}` with `{needle}` within {timeout:?}\n{}", self.report(None));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// For [`Sipp::phone`]: waits for the 200 to the authenticated REGISTER.
    pub async fn wait_registered(&mut self, timeout: Duration) -> Result<()> {
        self.wait_received("SIP/2.0 200", "REGISTER", timeout).await
    }

    /// Waits for sipp to finish (its own `-timeout`, plus 3 s before we kill it).
    pub async fn wait(mut self) -> Result<SippResult> {
        let budget = (self.timeout + Duration::from_secs(3)).saturating_sub(self.started.elapsed());
        let status = self.child.wait_timeout(budget).await?;
        let timed_out = status.is_none();
        let status = status.or_else(|| self.child.kill());
        Ok(SippResult {
            exit_code: status.and_then(|s| s.code()),
            timed_out,
            stdout: std::fs::read_to_string(&self.output).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            errors_log: std::fs::read_to_string(&self.errors).unwrap_or_default(),
            messages_log: self.messages(),
            command: self.command.clone(),
            local_port: self.local_port,
        })
    }

    fn report(&self, status: Option<ExitStatus>) -> String {
        format!(
            "command: {}\nstatus: {status:?}\n--- stderr ---\n{}\n--- errors ---\n{}\n--- output (tail) ---\n{}\n--- messages (tail) ---\n{}",
            self.command,
            tail(&self.stderr, 20),
            tail(&self.errors, 30),
            clean_screen(&tail(&self.output, 30)),
            tail(&self.messages, 60)
        )
    }
}

#[derive(Clone, Debug)]
pub struct SippResult {
    /// 0: every call passed; 1: some call failed; 97: stopped by an internal
    /// command; 99: exited without any call; 255: fatal error or `-timeout_error`
    /// hit; 254: could not bind a socket. `None`: killed by us or by a signal.
    pub exit_code: Option<i32>,
    /// We killed it after its timeout (+3 s).
    pub timed_out: bool,
    /// sipp's screen: without a terminal it still prints its statistics screens.
    pub stdout: String,
    /// Fatal errors (bad scenario, unbindable port) land here.
    pub stderr: String,
    pub errors_log: String,
    pub messages_log: String,
    pub command: String,
    pub local_port: u16,
}

impl SippResult {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// Panics with the command, exit code, error log and message trace unless the run passed.
    pub fn assert_success(&self) {
        assert!(self.success(), "sipp run failed\n{}", self.describe());
    }

    pub fn describe(&self) -> String {
        let last = |s: &str, n: usize| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "command: {}\nexit code: {:?}{}\n--- stderr ---\n{}\n--- errors log ---\n{}\n--- output (tail) ---\n{}\n--- messages (tail) ---\n{}",
            self.command,
            self.exit_code,
            if self.timed_out { " (killed after timeout)" } else { "" },
            self.stderr.trim(),
            self.errors_log.trim(),
            clean_screen(&last(&self.stdout, 25)),
            last(&self.messages_log, 80)
        )
    }
}

/// Whether the `-trace_msg` log has a received message whose first line starts
/// with `prefix` and whose text contains `needle`.
fn received(log: &str, prefix: &str, needle: &str) -> bool {
    // Entries are "----- <time>\nUDP message received [n] bytes :\n\n<message>".
    log.split("-----------------------------------------------")
        .filter_map(|entry| entry.split_once("message received"))
        .filter_map(|(_, rest)| rest.split_once("\n\n"))
        .any(|(_, msg)| msg.starts_with(prefix) && msg.contains(needle))
}

/// sipp redraws its screen with ANSI escapes; keep the text.
fn clean_screen(s: &str) -> String {
    super::baresip::strip_ansi(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_received_messages_in_the_trace() {
        let log = "----------------------------------------------- 2026-01-01 00:00:00.1\n\
                   UDP message sent (10 bytes):\n\nREGISTER sip:x SIP/2.0\nCSeq: 2 REGISTER\n\n\
                   ----------------------------------------------- 2026-01-01 00:00:00.2\n\
                   UDP message received [10] bytes :\n\nSIP/2.0 200 OK\nCSeq: 2 REGISTER\n\n";
        assert!(received(log, "SIP/2.0 200", "REGISTER"));
        assert!(!received(log, "REGISTER", "REGISTER"));
        assert!(!received(log, "SIP/2.0 200", "INVITE"));
    }
}
