//! Starts the real `whatsip serve` binary on loopback ports with a generated configuration,
//! and stops it (SIGKILL or SIGTERM) when the test is done.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct GatewayConfig {
    pub sip_port: u16,
    pub api_port: u16,
    pub rtp_min: u16,
    /// Meta's webhooks come here.
    pub webhook_port: u16,
    /// First of ten ports for WebRTC legs.
    pub webrtc_min: u16,
    /// Raw TOML lines added to the `[whatsapp]` table.
    pub whatsapp_extra: String,
    pub users: Vec<(String, String)>,
    /// Extra environment for the gateway process (`WHATSIP_*` overrides).
    pub env: Vec<(String, String)>,
    /// Raw TOML lines added to the `[sip]` table.
    pub sip_extra: String,
    /// Raw TOML appended to the file (extra `[[sip.trunks]]` tables...).
    pub extra: String,
    pub data_dir: PathBuf,
}

impl GatewayConfig {
    pub fn new(data_dir: &Path) -> GatewayConfig {
        GatewayConfig {
            sip_port: super::ports::free_port_pair(),
            api_port: super::ports::free_tcp_port(),
            rtp_min: {
                let base = super::ports::free_udp_block(102);
                base + base % 2
            },
            webhook_port: super::ports::free_tcp_port(),
            webrtc_min: super::ports::free_udp_block(10),
            whatsapp_extra: String::new(),
            users: vec![("1001".into(), "secret1001".into()), ("1002".into(), "secret1002".into())],
            env: Vec::new(),
            sip_extra: String::new(),
            extra: String::new(),
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub fn toml(&self) -> String {
        let mut t = format!(
            r#"data_dir = "{data}"
[log]
filter = "info,whatsip=debug"
[sip]
listen_udp = "127.0.0.1:{sip}"
listen_tcp = "127.0.0.1:{sip}"
domain = "127.0.0.1"
ring_timeout_seconds = 15
auth_max_failures = 3
{sip_extra}[rtp]
bind = "127.0.0.1"
port_min = {rtp}
port_max = {rtp_max}
media_timeout_seconds = 10
[webrtc]
bind = "127.0.0.1"
port_min = {webrtc}
port_max = {webrtc_max}
[whatsapp]
webhook_listen = "127.0.0.1:{webhook}"
{whatsapp_extra}[api]
listen = "127.0.0.1:{api}"
token = "test-token-0123456789abcdef"
"#,
            data = self.data_dir.display(),
            sip = self.sip_port,
            rtp = self.rtp_min,
            rtp_max = self.rtp_min + 98,
            api = self.api_port,
            sip_extra = self.sip_extra,
            webrtc = self.webrtc_min,
            webrtc_max = self.webrtc_min + 9,
            webhook = self.webhook_port,
            whatsapp_extra = self.whatsapp_extra,
        );
        for (name, pass) in &self.users {
            t.push_str(&format!("[[sip.users]]\nname = \"{name}\"\npassword = \"{pass}\"\n"));
        }
        t.push_str(&self.extra);
        t
    }
}

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub struct Gateway {
    child: Option<Child>,
    env: Vec<(String, String)>,
    pub config_path: PathBuf,
    pub sip: SocketAddr,
    pub api: SocketAddr,
    log_path: PathBuf,
}

impl Gateway {
    /// Writes the configuration next to the data dir and starts the gateway; returns once the
    /// admin API answers.
    pub fn start(cfg: &GatewayConfig) -> Gateway {
        std::fs::create_dir_all(&cfg.data_dir).unwrap();
        let config_path = cfg.data_dir.with_extension("toml");
        std::fs::File::create(&config_path).unwrap().write_all(cfg.toml().as_bytes()).unwrap();
        let log_path = cfg.data_dir.with_extension("log");
        let mut gw = Gateway {
            child: None,
            env: cfg.env.clone(),
            config_path,
            sip: format!("127.0.0.1:{}", cfg.sip_port).parse().unwrap(),
            api: format!("127.0.0.1:{}", cfg.api_port).parse().unwrap(),
            log_path,
        };
        gw.spawn();
        gw
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_whatsip"))
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start whatsip");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&self.api, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("whatsip exited early with {status}:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("whatsip API did not come up:\n{}", self.log_tail());
    }

    /// SIGKILL: no chance to flush anything; what survives was on disk already.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait, as an admin's `systemctl stop` would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_sigterm(c.id());
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().unwrap().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn restart_after_kill(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Sends a signal (`HUP`, `TERM`...) to the running gateway, as `kill -s` would.
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg("-s").arg(name).arg(c.id().to_string()).status();
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Runs `whatsip ARGS --config <ours>` and returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_whatsip"))
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("run whatsip");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts `whatsip ring ARGS` on a blocking thread (it lasts the whole call); await the
    /// handle for (exit code, stdout, stderr).
    pub fn ring(&self, args: &[&str]) -> tokio::task::JoinHandle<(i32, String, String)> {
        let config = self.config_path.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let out = Command::new(env!("CARGO_BIN_EXE_whatsip"))
                .arg("ring")
                .args(&args)
                .arg("--config")
                .arg(&config)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .output()
                .expect("run whatsip ring");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    }

    /// Polls `/api/trunks` until the first trunk's registration is in `state`; returns it.
    pub async fn wait_trunk_state(&self, state: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let current = self.api_get("/api/trunks")[0]["registration"].clone();
            if current["state"] == state || Instant::now() >= deadline {
                return current;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET an admin API path with the test token, as JSON.
    pub fn api_get(&self, path: &str) -> serde_json::Value {
        let url = format!("http://{}{}", self.api, path);
        // On a thread of its own, so async tests can call it too.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
            })
        })
        .join()
        .unwrap()
    }

    /// Any admin API request: `body` sent as JSON as given (so tests can send bad ones),
    /// `token` as the bearer (None: no Authorization header). Returns the status and the JSON
    /// answer (Null when the answer is not JSON).
    pub fn api_request(&self, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, serde_json::Value) {
        let url = format!("http://{}{}", self.api, path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (body, token) = (body.map(str::to_string), token.map(str::to_string));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut req = reqwest::Client::new().request(method, url);
                if let Some(body) = body {
                    req = req.header("content-type", "application/json").body(body);
                }
                if let Some(token) = token {
                    req = req.bearer_auth(token);
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                (status, resp.json().await.unwrap_or(serde_json::Value::Null))
            })
        })
        .join()
        .unwrap()
    }

    /// Users with at least one registered contact, per the running gateway.
    pub fn registered_users(&self) -> Vec<String> {
        let list = self.api_get("/api/registrations");
        let mut users: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["user"].as_str().unwrap().to_string())
            .collect();
        users.sort();
        users.dedup();
        users
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- whatsip log tail ---\n{}", self.log_tail());
        }
        self.kill();
    }
}
