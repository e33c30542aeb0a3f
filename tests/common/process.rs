//! A child process that cannot outlive its test.
//!
//! `ChildGuard` owns a `std::process::Child`. Dropping it (the test ended, returned
//! early or panicked) asks the child to stop with SIGTERM, gives it a moment to
//! finish cleanly (baresip closes its WAV files and sends BYE), then SIGKILLs it and
//! always reaps it, so no test leaves a process or a zombie behind.
//! `std::process` rather than `tokio::process`: `Drop` must kill and wait
//! synchronously, and it works the same inside or outside a runtime.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long a dropped child gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_millis(1500);

pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and stdout + stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Self> {
        Self::spawn_split(name, cmd, log, log)
    }

    /// Spawns `cmd` with stdin closed, stdout appended to `out` and stderr to `err`.
    pub fn spawn_split(name: &str, cmd: &mut Command, out: &Path, err: &Path) -> Result<Self> {
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log {}", path.display()))
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(open(out)?)
            .stderr(open(err)?)
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        Ok(Self { name: name.to_owned(), child: Some(child), status: None })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.status = child.try_wait().with_context(|| format!("waiting for {}", self.name))?;
            }
        }
        Ok(self.status)
    }

    /// Waits up to `timeout` for the child to exit on its own; `None` if it did not.
    /// Polls, so it never blocks the async runtime.
    pub async fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, a grace period, SIGKILL; always reaps. Idempotent.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let Some(mut child) = self.child.take() else { return self.status };
        if self.status.is_none() {
            if let Ok(None) = child.try_wait() {
                // std offers only SIGKILL; SIGTERM goes through kill(1) so no libc dependency.
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let deadline = Instant::now() + GRACE;
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            let _ = child.kill();
            self.status = child.wait().ok();
        }
        self.status
    }

    /// SIGKILL at once and reap.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let status = child.wait().ok();
            self.status = self.status.or(status);
        }
        self.status
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `lines` lines of a text file, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
