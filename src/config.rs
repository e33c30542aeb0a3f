//! Settings: one typed struct, loaded once, validated before anything starts.
//!
//! Sources, later ones winning: the embedded defaults (serde defaults below), the TOML file given
//! with `--config`, then `WHATSIP_*` environment variables (`WHATSIP_SIP__LISTEN_UDP=...`: a double
//! underscore separates nesting levels). Every bad value is reported as a [`Problem`] carrying the
//! key, the value and the reason, so the binary can print all of them and exit with status 2.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::media::bridge::BridgeSettings;
use crate::media::bridge_core::BridgeConfig;
use crate::media::transcode::{DecodeConfig, EncodeConfig, IdleFill};
use crate::media::webrtc_leg::WebRtcConfig;
use crate::ids::{TrunkId, UserName};
use crate::sip::leg::DialTarget;

/// Everything whatsip can be told. `whatsip.example.toml` documents every key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where the store (registrations, later calls and recordings) lives.
    pub data_dir: PathBuf,
    pub log: LogSettings,
    pub sip: SipSettings,
    pub rtp: RtpSettings,
    pub webrtc: WebRtcSettings,
    pub media: MediaSettings,
    pub api: ApiSettings,
    pub whatsapp: WhatsAppSettings,
    pub routing: RoutingSettings,
}

/// Where calls ring: a dialplan folder, or each number's own `target`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    /// The folder of `*.toml` dialplan files (dialplans/README.md). Empty: every number rings
    /// its `target`. When set, the plan routes every number, it is checked at start (a bad plan
    /// stops startup) and reloaded on change or SIGHUP.
    pub dialplan_dir: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A tracing env-filter, e.g. `info` or `info,whatsip::sip=debug`. `RUST_LOG` wins when set.
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipSettings {
    /// UDP listen address; empty string disables UDP.
    pub listen_udp: String,
    /// TCP listen address; empty string disables TCP.
    pub listen_tcp: String,
    /// TLS listen address; empty disables TLS. Needs `tls_cert` and `tls_key`.
    pub listen_tls: String,
    pub tls_cert: String,
    pub tls_key: String,
    /// Host part of our URIs (From of calls we place, registrar domain).
    pub domain: String,
    /// Digest realm presented to phones.
    pub realm: String,
    pub user_agent: String,
    /// Digest algorithms offered in challenges, strongest first ("SHA-256", "MD5").
    pub auth_algorithms: Vec<String>,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    /// Failed authentications from one source address within `auth_window_seconds` before it is
    /// refused for `auth_block_seconds`.
    pub auth_max_failures: u32,
    pub auth_window_seconds: u32,
    pub auth_block_seconds: u32,
    /// How long a phone may ring before the leg is cancelled.
    pub ring_timeout_seconds: u32,
    /// Caller id shown on phones for calls placed by `whatsip ring`.
    pub test_caller: String,
    /// What a registered user dials to turn do-not-disturb on, and off, for themselves.
    pub dnd_on_code: String,
    pub dnd_off_code: String,
    pub users: Vec<UserSettings>,
    pub trunks: Vec<TrunkSettings>,
}

/// A phone (or a PBX acting as one) that registers to whatsip.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserSettings {
    pub name: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// An existing PBX we send calls to (and, optionally, take calls from).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkSettings {
    pub name: String,
    /// `host:port` of the PBX.
    pub address: String,
    #[serde(default = "default_transport")]
    pub transport: Transport,
    /// Digest credentials for our INVITEs and REGISTERs, when the PBX challenges.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Register whatsip to the PBX as `username`.
    #[serde(default)]
    pub register: bool,
    #[serde(default = "default_trunk_expires")]
    pub register_expires: u32,
    /// Accept INVITEs from this PBX (calls that will go out to WhatsApp).
    #[serde(default)]
    pub accept_inbound: bool,
    /// Source addresses trusted for inbound INVITEs without a challenge.
    #[serde(default)]
    pub inbound_sources: Vec<String>,
    /// Credentials the PBX must present (digest) when it is not a trusted source.
    #[serde(default)]
    pub inbound_username: Option<String>,
    #[serde(default)]
    pub inbound_password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

fn default_transport() -> Transport {
    Transport::Udp
}

fn default_trunk_expires() -> u32 {
    600
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtpSettings {
    /// Address RTP sockets bind to.
    pub bind: String,
    /// Address written into SDP; defaults to `bind` when empty.
    pub public_address: String,
    pub port_min: u16,
    pub port_max: u16,
    /// Seconds without a received packet before a leg reports a media timeout.
    pub media_timeout_seconds: u32,
}

/// The WhatsApp leg's network side (Graph mode, WebRTC).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebRtcSettings {
    /// Address each call's one UDP socket binds to; it is also our host candidate.
    pub bind: String,
    /// Address announced to Meta instead (a cloud VM or 1:1 NAT); empty: `bind`.
    pub public_address: String,
    pub port_min: u16,
    pub port_max: u16,
}

/// How the bridge transcodes. The defaults are the cheapest set-up measured to stay within
/// 0.1 PESQ MOS of G.711 alone (see the transcode and media benches).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSettings {
    /// Opus encoder toward WhatsApp, 0-10: more is slower and barely better on 4 kHz audio.
    pub opus_complexity: u8,
    /// In-band FEC toward WhatsApp (libopus codes none below complexity 2).
    pub opus_fec: bool,
    /// The loss the FEC is sized for, in percent.
    pub opus_expected_loss_percent: u8,
    /// Target bits per second toward WhatsApp; Meta's offers say at most 20000.
    pub opus_bitrate: u32,
    /// Rate libopus encodes at: 8000 takes G.711 audio as it is; 16000 or 48000 resample first.
    pub opus_encode_rate: u32,
    /// Rate WhatsApp's audio is decoded at before G.711: 8000, 16000 or 48000.
    pub opus_decode_rate: u32,
    /// What WhatsApp hears while the phone is silent or on hold: comfort noise at this level
    /// (dBFS), or digital silence when `comfort_noise` is false. Either way packets keep
    /// flowing, which Meta needs (no media for 20 s ends the call).
    pub comfort_noise: bool,
    pub comfort_noise_dbfs: f32,
}

/// Meta's side in Graph mode: the webhook we receive calls on and the Graph API we act with
/// (docs/whatsapp-calling-api.md §1, §2).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppSettings {
    /// The Meta app's secret: webhooks are signed with it (`X-Hub-Signature-256`, §2.1).
    pub app_secret: String,
    /// The string Meta's webhook set-up sends back in `hub.verify_token` (§2.1).
    pub verify_token: String,
    /// Bearer token for Graph calls (a system user's token with `whatsapp_business_messaging`).
    pub access_token: String,
    pub graph_base_url: String,
    /// `vNN.N`; Calling needs v17.0 or newer (§1.1).
    pub graph_api_version: String,
    /// Path of the callback URL (GET handshake, POST events).
    pub webhook_path: String,
    /// Address the webhook server listens on; empty disables it. Meta needs HTTPS on a public
    /// name: either set `webhook_tls_cert`/`webhook_tls_key`, or put a TLS proxy in front.
    pub webhook_listen: String,
    pub webhook_tls_cert: String,
    pub webhook_tls_key: String,
    /// The business numbers whose calls whatsip takes.
    pub numbers: Vec<WhatsAppNumberSettings>,
    /// How long a caller may ring before someone answers: Meta ends an unanswered call after
    /// about 30–60 s (whatsapp-calling-api.md §8). `dialplan check` refuses a route that can
    /// ring longer.
    pub answer_window_seconds: u32,
}

/// One business phone number, and where its calls ring when there is no dialplan.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppNumberSettings {
    /// Meta's id of the number (WhatsApp Manager, API set-up), not the number itself.
    pub phone_number_id: String,
    /// The number as people dial it, digits with an optional leading `+`; for logs and caller id.
    pub display_number: String,
    /// A `[[sip.users]]` name (`1001`), or an extension behind a trunk (`trunk:pbx/2001`).
    /// Needed without a dialplan; with `routing.dialplan_dir` the plan routes and this must
    /// stay empty, so no one edits a target that does nothing.
    #[serde(default)]
    pub target: String,
}

impl WhatsAppNumberSettings {
    /// What [`WhatsAppNumberSettings::target`] names; it does not check that the user or the
    /// trunk exists ([`Settings::validate`] does).
    pub fn dial_target(&self) -> Result<DialTarget, String> {
        parse_number_target(&self.target)
    }
}

fn parse_number_target(target: &str) -> Result<DialTarget, String> {
    let extension_ok = |e: &str| !e.is_empty() && e.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+*#".contains(c));
    match target.strip_prefix("trunk:") {
        Some(rest) => match rest.split_once('/') {
            Some((trunk, ext)) if !trunk.is_empty() && extension_ok(ext) => {
                Ok(DialTarget::Trunk { trunk: TrunkId::new(trunk), extension: ext.into() })
            }
            _ => Err("expected trunk:<trunk name>/<extension>, e.g. trunk:pbx/2001".into()),
        },
        None if !target.is_empty() => Ok(DialTarget::User(UserName::new(target))),
        None => Err("name a [[sip.users]] user (1001) or trunk:<trunk>/<extension>".into()),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Admin API; keep it on loopback (or behind a proxy that adds TLS).
    pub listen: String,
    /// Bearer token for the admin API. Empty: one is generated into `<data_dir>/api.token`.
    pub token: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from("./data"),
            log: LogSettings::default(),
            sip: SipSettings::default(),
            rtp: RtpSettings::default(),
            webrtc: WebRtcSettings::default(),
            media: MediaSettings::default(),
            api: ApiSettings::default(),
            whatsapp: WhatsAppSettings::default(),
            routing: RoutingSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { filter: "info".into(), format: LogFormat::Text }
    }
}

impl Default for SipSettings {
    fn default() -> Self {
        SipSettings {
            listen_udp: "127.0.0.1:5060".into(),
            listen_tcp: "127.0.0.1:5060".into(),
            listen_tls: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            domain: "127.0.0.1".into(),
            realm: "whatsip".into(),
            user_agent: concat!("whatsip/", env!("CARGO_PKG_VERSION")).into(),
            // MD5 alone by default: some phones refuse a REGISTER challenge outright when any of
            // its WWW-Authenticate headers names an algorithm they lack (baresip 1.0's libre
            // fails with ENOSYS), so offering SHA-256 beside MD5 locks them out.
            auth_algorithms: vec!["MD5".into()],
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            auth_max_failures: 5,
            auth_window_seconds: 60,
            auth_block_seconds: 300,
            ring_timeout_seconds: 30,
            test_caller: "whatsip".into(),
            // The codes most PBXs use (Asterisk/FreePBX), so users' habits carry over.
            dnd_on_code: "*78".into(),
            dnd_off_code: "*79".into(),
            users: Vec::new(),
            trunks: Vec::new(),
        }
    }
}

impl Default for RtpSettings {
    fn default() -> Self {
        RtpSettings {
            bind: "127.0.0.1".into(),
            public_address: String::new(),
            port_min: 20000,
            port_max: 20999,
            media_timeout_seconds: 30,
        }
    }
}

impl Default for WebRtcSettings {
    fn default() -> Self {
        WebRtcSettings {
            bind: "127.0.0.1".into(),
            public_address: String::new(),
            port_min: 40000,
            port_max: 40999,
        }
    }
}

impl Default for MediaSettings {
    fn default() -> Self {
        let encode = EncodeConfig::default();
        let noise_dbfs = match encode.idle {
            IdleFill::ComfortNoise { dbfs } => dbfs,
            IdleFill::Silence => -70.0,
        };
        MediaSettings {
            opus_complexity: encode.complexity,
            opus_fec: encode.fec,
            opus_expected_loss_percent: encode.expected_loss_pct,
            opus_bitrate: encode.bitrate,
            opus_encode_rate: encode.opus_rate,
            opus_decode_rate: DecodeConfig::default().opus_rate,
            comfort_noise: matches!(encode.idle, IdleFill::ComfortNoise { .. }),
            comfort_noise_dbfs: noise_dbfs,
        }
    }
}

impl Default for WhatsAppSettings {
    fn default() -> Self {
        WhatsAppSettings {
            app_secret: String::new(),
            verify_token: String::new(),
            access_token: String::new(),
            graph_base_url: "https://graph.facebook.com".into(),
            // §1.1: Calling needs v17.0 or newer; v23.0 is what current integrations use.
            graph_api_version: "v23.0".into(),
            webhook_path: "/webhook".into(),
            webhook_listen: "127.0.0.1:8089".into(),
            webhook_tls_cert: String::new(),
            webhook_tls_key: String::new(),
            numbers: Vec::new(),
            answer_window_seconds: 30,
        }
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings { listen: "127.0.0.1:8088".into(), token: String::new() }
    }
}

/// One bad value: which key, what it was, why it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub value: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {:?}: {}", self.key, self.value, self.reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(String),
    #[error("{}", .0.iter().map(|p| format!("invalid setting {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// `WHATSIP_*` variables the command line reads for itself (the config file's path, the admin
/// API's address and token for client commands). They are not settings, and read as settings
/// they would stop every command as unknown keys.
pub const COMMAND_LINE_VARS: [&str; 3] = ["WHATSIP_CONFIG", "WHATSIP_API_URL", "WHATSIP_API_TOKEN"];

impl Settings {
    /// Defaults, then `file` (if any), then `WHATSIP_*` variables; then [`Settings::validate`].
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`] with the environment given, so tests need not touch the process's.
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(
            config::Config::try_from(&Settings::default())
                .map_err(|e| ConfigError::Load(e.to_string()))?,
        );
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Load(format!("{}: no such file", path.display())));
            }
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("WHATSIP_") && !COMMAND_LINE_VARS.contains(&k.as_str()))
            .collect();
        let env_names: Vec<String> = env.keys().cloned().collect();
        builder = builder.add_source(
            config::Environment::with_prefix("WHATSIP")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("sip.auth_algorithms")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Load(describe_config_error(file, &env_names, e)))?;
        settings.validate().map_err(ConfigError::Invalid)?;
        Ok(settings)
    }

    /// Every value checked once, all problems reported together.
    pub fn validate(&self) -> Result<(), Vec<Problem>> {
        let mut v = Validator::default();
        let s = &self.sip;

        v.optional_addr("sip.listen_udp", &s.listen_udp);
        v.optional_addr("sip.listen_tcp", &s.listen_tcp);
        v.optional_addr("sip.listen_tls", &s.listen_tls);
        if s.listen_udp.is_empty() && s.listen_tcp.is_empty() && s.listen_tls.is_empty() {
            v.fail("sip.listen_udp", "", "at least one of listen_udp, listen_tcp, listen_tls is needed");
        }
        if !s.listen_tls.is_empty() {
            v.readable_file("sip.tls_cert", &s.tls_cert, "sip.listen_tls");
            v.readable_file("sip.tls_key", &s.tls_key, "sip.listen_tls");
        }
        v.token("sip.domain", &s.domain);
        v.token("sip.realm", &s.realm);
        if s.auth_algorithms.is_empty() {
            v.fail("sip.auth_algorithms", "[]", "name at least one of SHA-256, MD5");
        }
        for (i, alg) in s.auth_algorithms.iter().enumerate() {
            if crate::sip::digest::Algorithm::from_name(alg).is_none() {
                v.fail(&format!("sip.auth_algorithms[{i}]"), alg, "supported: SHA-256, MD5");
            }
        }
        v.range("sip.min_expires", s.min_expires, 1, 86_400);
        v.range("sip.max_expires", s.max_expires, s.min_expires.max(1), 86_400);
        v.range("sip.default_expires", s.default_expires, s.min_expires, s.max_expires.max(s.min_expires));
        v.range("sip.auth_max_failures", s.auth_max_failures, 1, 10_000);
        v.range("sip.auth_window_seconds", s.auth_window_seconds, 1, 86_400);
        v.range("sip.auth_block_seconds", s.auth_block_seconds, 1, 86_400);
        v.range("sip.ring_timeout_seconds", s.ring_timeout_seconds, 1, 600);
        v.token("sip.test_caller", &s.test_caller);
        // Phones put what the user dialled in the Request-URI's user part, so a code must be one.
        v.user_part("sip.dnd_on_code", &s.dnd_on_code);
        v.user_part("sip.dnd_off_code", &s.dnd_off_code);
        if s.dnd_on_code == s.dnd_off_code {
            v.fail("sip.dnd_off_code", &s.dnd_off_code, "must differ from sip.dnd_on_code");
        }

        let mut names = HashSet::new();
        for (i, u) in s.users.iter().enumerate() {
            let key = format!("sip.users[{i}]");
            v.user_part(&format!("{key}.name"), &u.name);
            if !names.insert(u.name.as_str()) {
                v.fail(&format!("{key}.name"), &u.name, "another user has this name");
            }
            if u.password.len() < 4 {
                v.fail(&format!("{key}.password"), "****", "at least 4 characters");
            }
        }
        let mut trunk_names = HashSet::new();
        for (i, t) in s.trunks.iter().enumerate() {
            let key = format!("sip.trunks[{i}]");
            v.token(&format!("{key}.name"), &t.name);
            if !trunk_names.insert(t.name.as_str()) {
                v.fail(&format!("{key}.name"), &t.name, "another trunk has this name");
            }
            if crate::sip::trunk::parse_host_port(&t.address).is_none() {
                v.fail(&format!("{key}.address"), &t.address, "expected host:port, e.g. 10.0.0.5:5060");
            }
            if t.username.is_some() != t.password.is_some() {
                v.fail(&format!("{key}.username"), t.username.as_deref().unwrap_or(""), "username and password go together");
            }
            if t.register && t.username.is_none() {
                v.fail(&format!("{key}.register"), "true", "registering needs username and password");
            }
            v.range(&format!("{key}.register_expires"), t.register_expires, 60, 86_400);
            for (j, src) in t.inbound_sources.iter().enumerate() {
                if src.parse::<IpAddr>().is_err() {
                    v.fail(&format!("{key}.inbound_sources[{j}]"), src, "expected an IP address");
                }
            }
            if t.inbound_username.is_some() != t.inbound_password.is_some() {
                v.fail(&format!("{key}.inbound_username"), t.inbound_username.as_deref().unwrap_or(""), "inbound_username and inbound_password go together");
            }
            if t.accept_inbound && t.inbound_sources.is_empty() && t.inbound_username.is_none() {
                v.fail(&format!("{key}.accept_inbound"), "true", "name inbound_sources or inbound_username/inbound_password, or nobody can call in");
            }
        }

        let r = &self.rtp;
        if r.bind.parse::<IpAddr>().is_err() {
            v.fail("rtp.bind", &r.bind, "expected an IP address");
        }
        if !r.public_address.is_empty() && r.public_address.parse::<IpAddr>().is_err() {
            v.fail("rtp.public_address", &r.public_address, "expected an IP address");
        }
        if r.port_min < 1024 || !r.port_min.is_multiple_of(2) {
            v.fail("rtp.port_min", &r.port_min.to_string(), "an even port of 1024 or above");
        }
        if r.port_max <= r.port_min || u32::from(r.port_max) - u32::from(r.port_min) < 3 {
            v.fail("rtp.port_max", &r.port_max.to_string(), "must leave room for at least two RTP/RTCP pairs above port_min");
        }
        v.range("rtp.media_timeout_seconds", r.media_timeout_seconds, 1, 3600);

        let w = &self.webrtc;
        if w.bind.parse::<IpAddr>().is_err() {
            v.fail("webrtc.bind", &w.bind, "expected an IP address");
        }
        if !w.public_address.is_empty() && w.public_address.parse::<IpAddr>().is_err() {
            v.fail("webrtc.public_address", &w.public_address, "expected an IP address");
        }
        if w.port_min < 1024 {
            v.fail("webrtc.port_min", &w.port_min.to_string(), "a port of 1024 or above");
        }
        if w.port_max < w.port_min {
            v.fail("webrtc.port_max", &w.port_max.to_string(), "must not be below port_min (each call takes one port)");
        }
        let overlap = w.port_min <= r.port_max && r.port_min <= w.port_max;
        if overlap && w.bind == r.bind {
            v.fail("webrtc.port_min", &w.port_min.to_string(), "webrtc and rtp port ranges overlap on the same address");
        }

        let m = &self.media;
        v.range("media.opus_complexity", m.opus_complexity.into(), 0, 10);
        v.range("media.opus_expected_loss_percent", m.opus_expected_loss_percent.into(), 0, 100);
        // RFC 6716 §2.1.1: Opus runs from 6 kbit/s; 64 kbit/s is far beyond what 4 kHz needs.
        v.range("media.opus_bitrate", m.opus_bitrate, 6000, 64000);
        for (key, rate) in [("media.opus_encode_rate", m.opus_encode_rate), ("media.opus_decode_rate", m.opus_decode_rate)] {
            if ![8000, 16000, 48000].contains(&rate) {
                v.fail(key, &rate.to_string(), "one of 8000, 16000, 48000");
            }
        }
        if !(-96.0..=-20.0).contains(&m.comfort_noise_dbfs) {
            v.fail("media.comfort_noise_dbfs", &m.comfort_noise_dbfs.to_string(), "between -96 and -20 (dBFS)");
        }

        if self.api.listen.parse::<SocketAddr>().is_err() {
            v.fail("api.listen", &self.api.listen, "expected ip:port, e.g. 127.0.0.1:8088");
        }
        if !self.api.token.is_empty() && self.api.token.len() < 16 {
            v.fail("api.token", "****", "at least 16 characters (or empty to generate one)");
        }
        self.validate_whatsapp(&mut v);
        let dir = &self.routing.dialplan_dir;
        if !dir.is_empty() && !Path::new(dir).is_dir() {
            v.fail("routing.dialplan_dir", dir, "no such folder (the folder of *.toml dialplan files)");
        }
        if self.log.filter.parse::<tracing_subscriber::EnvFilter>().is_err() {
            v.fail("log.filter", &self.log.filter, "not a tracing filter (e.g. info, whatsip=debug)");
        }
        if self.data_dir.as_os_str().is_empty() {
            v.fail("data_dir", "", "must name a directory");
        }
        v.finish()
    }

    fn validate_whatsapp(&self, v: &mut Validator) {
        let w = &self.whatsapp;
        // Secrets are needed only once a number is configured, so the defaults stay valid.
        let in_use = !w.numbers.is_empty();
        for (key, value, min) in [
            ("whatsapp.app_secret", &w.app_secret, 16),
            ("whatsapp.verify_token", &w.verify_token, 8),
            ("whatsapp.access_token", &w.access_token, 16),
        ] {
            if value.is_empty() {
                if in_use {
                    v.fail(key, "", "needed when [[whatsapp.numbers]] are configured");
                }
            } else if value.len() < min || !value.chars().all(|c| c.is_ascii_graphic()) {
                // Printable ASCII: these travel in an HTTP header or a query string.
                v.fail(key, "****", &format!("at least {min} printable ASCII characters, no spaces"));
            }
        }

        match reqwest::Url::parse(&w.graph_base_url) {
            Ok(url) if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() => {
                v.fail("whatsapp.graph_base_url", &w.graph_base_url, "expected an https:// URL");
            }
            Ok(url) if url.scheme() == "http" && !is_loopback_host(url.host_str().unwrap_or_default()) => {
                // The access token rides in every request: plain HTTP only to a local stand-in.
                v.fail("whatsapp.graph_base_url", &w.graph_base_url, "https needed (http only on loopback, e.g. a local sandbox)");
            }
            Ok(url) if url.query().is_some() || url.fragment().is_some() => {
                v.fail("whatsapp.graph_base_url", &w.graph_base_url, "no query or fragment: the version and phone number id are appended");
            }
            Ok(_) => {}
            Err(e) => v.fail("whatsapp.graph_base_url", &w.graph_base_url, &format!("not a URL: {e}")),
        }
        if graph_version_major(&w.graph_api_version).is_none_or(|major| major < 17) {
            v.fail("whatsapp.graph_api_version", &w.graph_api_version, "vNN.N, v17.0 or newer (Calling needs 17+; v23.0 is the default)");
        }

        let path_ok = w.webhook_path.starts_with('/')
            && w.webhook_path.chars().all(|c| c.is_ascii_graphic() && !"?#%".contains(c));
        if !path_ok {
            v.fail("whatsapp.webhook_path", &w.webhook_path, "a URL path starting with /, without ? # % or spaces");
        }
        v.optional_addr("whatsapp.webhook_listen", &w.webhook_listen);
        v.range("whatsapp.answer_window_seconds", w.answer_window_seconds, 5, 60);
        let tls = !w.webhook_tls_cert.is_empty() || !w.webhook_tls_key.is_empty();
        if tls {
            v.readable_file("whatsapp.webhook_tls_cert", &w.webhook_tls_cert, "whatsapp.webhook_tls_key");
            v.readable_file("whatsapp.webhook_tls_key", &w.webhook_tls_key, "whatsapp.webhook_tls_cert");
        }

        let users: HashSet<&str> = self.sip.users.iter().map(|u| u.name.as_str()).collect();
        let trunks: HashSet<&str> = self.sip.trunks.iter().map(|t| t.name.as_str()).collect();
        let mut ids = HashSet::new();
        for (i, n) in w.numbers.iter().enumerate() {
            let key = format!("whatsapp.numbers[{i}]");
            if n.phone_number_id.is_empty() || !n.phone_number_id.chars().all(|c| c.is_ascii_digit()) {
                v.fail(&format!("{key}.phone_number_id"), &n.phone_number_id, "Meta's phone number id: digits only (not the phone number)");
            } else if !ids.insert(n.phone_number_id.as_str()) {
                v.fail(&format!("{key}.phone_number_id"), &n.phone_number_id, "another number has this id");
            }
            let digits = n.display_number.strip_prefix('+').unwrap_or(&n.display_number);
            if digits.len() < 6 || digits.len() > 15 || !digits.chars().all(|c| c.is_ascii_digit()) {
                v.fail(&format!("{key}.display_number"), &n.display_number, "the number in international form: 6 to 15 digits, optional leading +");
            }
            if !self.routing.dialplan_dir.is_empty() {
                if !n.target.is_empty() {
                    v.fail(&format!("{key}.target"), &n.target, "routing.dialplan_dir is set, so the dialplan routes this number: remove target and route it with a [[route]] match = { number = ... }");
                }
                continue;
            }
            match n.dial_target() {
                Err(reason) => v.fail(&format!("{key}.target"), &n.target, &reason),
                Ok(DialTarget::User(user)) if !users.contains(user.as_str()) => {
                    v.fail(&format!("{key}.target"), &n.target, "no [[sip.users]] has this name (a trunk extension is trunk:<trunk>/<extension>)");
                }
                Ok(DialTarget::Trunk { trunk, .. }) if !trunks.contains(trunk.as_str()) => {
                    v.fail(&format!("{key}.target"), &n.target, "no [[sip.trunks]] has this name");
                }
                Ok(_) => {}
            }
        }
    }

    /// How long a caller may ring before an answer: what calls enforce and `dialplan check`
    /// holds routes to.
    pub fn answer_window(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.whatsapp.answer_window_seconds.into())
    }

    /// The WhatsApp leg's sockets and candidates.
    pub fn webrtc_config(&self) -> WebRtcConfig {
        let w = &self.webrtc;
        WebRtcConfig {
            bind_ip: w.bind.parse().expect("validated"),
            public_ip: (!w.public_address.is_empty()).then(|| w.public_address.parse().expect("validated")),
            port_min: w.port_min,
            port_max: w.port_max,
        }
    }

    /// What each call's media bridge starts with.
    pub fn bridge_settings(&self) -> BridgeSettings {
        let m = &self.media;
        BridgeSettings {
            timing: BridgeConfig {
                phone_media_timeout: std::time::Duration::from_secs(self.rtp.media_timeout_seconds.into()),
                ..BridgeConfig::default()
            },
            encode: EncodeConfig {
                opus_rate: m.opus_encode_rate,
                complexity: m.opus_complexity,
                fec: m.opus_fec,
                expected_loss_pct: m.opus_expected_loss_percent,
                bitrate: m.opus_bitrate,
                idle: if m.comfort_noise {
                    IdleFill::ComfortNoise { dbfs: m.comfort_noise_dbfs }
                } else {
                    IdleFill::Silence
                },
            },
            decode: DecodeConfig { opus_rate: m.opus_decode_rate },
        }
    }

    pub fn rtp_public_ip(&self) -> IpAddr {
        let addr = if self.rtp.public_address.is_empty() { &self.rtp.bind } else { &self.rtp.public_address };
        addr.parse().expect("validated")
    }
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `v23.0` → 23.
fn graph_version_major(version: &str) -> Option<u32> {
    let (major, minor) = version.strip_prefix('v')?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| major.parse().ok()).flatten()
}

/// The config crate names the key but words it for programmers; keep its words and add where
/// the error came from: the environment variable whose key it names, else the file. Blaming
/// the file for a stray `WHATSIP_*` variable sends the admin to the wrong place.
fn describe_config_error(file: Option<&Path>, env_names: &[String], e: config::ConfigError) -> String {
    let text = e.to_string();
    let from_env = env_names.iter().find(|name| {
        let key = name["WHATSIP_".len()..].to_ascii_lowercase();
        let last = key.rsplit("__").next().unwrap_or(&key);
        text.contains(&format!("unknown field `{last}`")) || text.contains(&format!("key `{}`", key.replace("__", ".")))
    });
    match (from_env, file) {
        (Some(name), _) if text.contains("unknown field") => format!(
            "environment variable {name}: {text} (variables named WHATSIP_<SECTION>__<KEY> override settings: unset it or fix its name)"
        ),
        (Some(name), _) => format!("environment variable {name}: {text}"),
        (None, Some(path)) => format!("{}: {text}", path.display()),
        (None, None) => text,
    }
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn fail(&mut self, key: &str, value: &str, reason: &str) {
        self.problems.push(Problem { key: key.into(), value: value.into(), reason: reason.into() });
    }

    fn optional_addr(&mut self, key: &str, value: &str) {
        if !value.is_empty() && value.parse::<SocketAddr>().is_err() {
            self.fail(key, value, "expected ip:port (e.g. 0.0.0.0:5060), or empty to disable");
        }
    }

    fn readable_file(&mut self, key: &str, value: &str, needed_by: &str) {
        if value.is_empty() {
            self.fail(key, value, &format!("needed when {needed_by} is set"));
        } else if std::fs::metadata(value).map(|m| !m.is_file()).unwrap_or(true) {
            self.fail(key, value, "no such file");
        }
    }

    fn token(&mut self, key: &str, value: &str) {
        let ok = !value.is_empty()
            && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.!~*'+".contains(c));
        if !ok {
            self.fail(key, value, "letters, digits and - _ . ! ~ * ' + only, not empty");
        }
    }

    fn user_part(&mut self, key: &str, value: &str) {
        // RFC 3261 §25.1 "user" minus escapes: what phones put before the @ without quoting.
        let ok = !value.is_empty()
            && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/".contains(c));
        if !ok {
            self.fail(key, value, "a SIP user part: letters, digits and -_.!~*'()&=+$,;?/ only");
        }
    }

    fn range(&mut self, key: &str, value: u32, min: u32, max: u32) {
        if value < min || value > max {
            self.fail(key, &value.to_string(), &format!("must be between {min} and {max}"));
        }
    }

    fn finish(self) -> Result<(), Vec<Problem>> {
        if self.problems.is_empty() { Ok(()) } else { Err(self.problems) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut f = tempfile::NamedTempFile::with_suffix(".toml").unwrap();
        f.write_all(toml.as_bytes()).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::load_with_env(Some(f.path()), env)
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
        Settings::load_with_env(None, Vec::new()).unwrap();
    }

    #[test]
    fn example_file_is_valid_and_complete() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("whatsip.example.toml");
        let settings = Settings::load_with_env(Some(&path), Vec::new()).unwrap();
        assert!(!settings.sip.users.is_empty());
        // Every default key is spelled out in the example, so admins see them all.
        let text = std::fs::read_to_string(&path).unwrap();
        let defaults = toml_keys(&toml::Value::try_from(Settings::default()).unwrap(), "");
        for key in defaults {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(text.contains(&format!("{leaf} =")), "example misses {key}");
        }
    }

    fn toml_keys(v: &toml::Value, prefix: &str) -> Vec<String> {
        match v {
            toml::Value::Table(t) => t
                .iter()
                .flat_map(|(k, v)| toml_keys(v, &format!("{prefix}{k}.")))
                .collect(),
            // Users and trunks are empty by default; the example shows them as [[tables]].
            toml::Value::Array(a) if a.is_empty() => Vec::new(),
            _ => vec![prefix.trim_end_matches('.').to_string()],
        }
    }

    #[test]
    fn file_and_env_override_defaults() {
        let s = load(
            "[sip]\nlisten_udp = \"127.0.0.1:5070\"\n",
            &[("WHATSIP_SIP__RING_TIMEOUT_SECONDS", "45"), ("WHATSIP_RTP__PORT_MIN", "30000"), ("WHATSIP_RTP__PORT_MAX", "30100")],
        )
        .unwrap();
        assert_eq!(s.sip.listen_udp, "127.0.0.1:5070");
        assert_eq!(s.sip.ring_timeout_seconds, 45);
        assert_eq!(s.rtp.port_min, 30000);
        assert_eq!(s.sip.listen_tcp, "127.0.0.1:5060");
    }

    #[test]
    fn bad_values_name_key_value_and_reason() {
        let err = load(
            "[sip]\nlisten_udp = \"nowhere\"\nring_timeout_seconds = 0\n[rtp]\nport_min = 20001\n",
            &[],
        )
        .unwrap_err();
        let ConfigError::Invalid(problems) = err else { panic!("{err}") };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"sip.listen_udp"));
        assert!(keys.contains(&"sip.ring_timeout_seconds"));
        assert!(keys.contains(&"rtp.port_min"));
        let p = problems.iter().find(|p| p.key == "sip.listen_udp").unwrap();
        assert_eq!(p.value, "nowhere");
        assert!(p.to_string().contains("expected ip:port"));
    }

    #[test]
    fn dnd_codes_must_be_dialable_and_distinct() {
        let s = load("[sip]\ndnd_on_code = \"*55\"\ndnd_off_code = \"*56\"\n", &[]).unwrap();
        assert_eq!((s.sip.dnd_on_code.as_str(), s.sip.dnd_off_code.as_str()), ("*55", "*56"));
        let err = load("[sip]\ndnd_on_code = \"\"\n", &[]).unwrap_err();
        let ConfigError::Invalid(problems) = err else { panic!("{err}") };
        assert_eq!(problems.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["sip.dnd_on_code"]);
        let err = load("[sip]\ndnd_on_code = \"*79\"\n", &[]).unwrap_err();
        let ConfigError::Invalid(problems) = err else { panic!("{err}") };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].key.as_str(), problems[0].value.as_str()), ("sip.dnd_off_code", "*79"));
        assert!(problems[0].reason.contains("differ"), "{}", problems[0]);
    }

    #[test]
    fn media_and_webrtc_values_are_checked_and_reach_the_bridge() {
        let err = load(
            "[webrtc]\npublic_address = \"somewhere\"\nport_min = 20100\nport_max = 20200\n\
             [media]\nopus_complexity = 11\nopus_decode_rate = 12000\ncomfort_noise_dbfs = 3.0\n",
            &[],
        )
        .unwrap_err();
        let ConfigError::Invalid(problems) = err else { panic!("{err}") };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in ["webrtc.public_address", "webrtc.port_min", "media.opus_complexity", "media.opus_decode_rate", "media.comfort_noise_dbfs"] {
            assert!(keys.contains(&key), "{key} not reported: {problems:?}");
        }
        let overlap = problems.iter().find(|p| p.key == "webrtc.port_min").unwrap();
        assert!(overlap.reason.contains("overlap"), "{overlap:?}");

        let s = load(
            "[webrtc]\npublic_address = \"203.0.113.7\"\n[media]\nopus_complexity = 2\ncomfort_noise = false\n",
            &[("WHATSIP_MEDIA__OPUS_DECODE_RATE", "16000")],
        )
        .unwrap();
        let b = s.bridge_settings();
        assert_eq!((b.encode.complexity, b.decode.opus_rate, b.encode.idle), (2, 16000, IdleFill::Silence));
        assert_eq!(s.webrtc_config().public_ip, Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn wrong_types_and_unknown_keys_are_load_errors_naming_the_key() {
        let err = load("[sip]\nring_timeout_seconds = \"soon\"\n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Load(_)));
        assert!(err.to_string().contains("ring_timeout_seconds"), "{err}");

        let err = load("[sip]\nlisten_udpp = \"127.0.0.1:5060\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("listen_udpp"), "{err}");

        let err = load("", &[("WHATSIP_RTP__PORT_MIN", "lots")]).unwrap_err();
        assert!(err.to_string().contains("port_min"), "{err}");
        assert!(err.to_string().contains(": environment variable WHATSIP_RTP__PORT_MIN: "), "{err}");

        // A stray variable in the settings' namespace is named, not blamed on the file.
        let err = load("", &[("WHATSIP_TEST_THREADS", "3")]).unwrap_err();
        assert!(err.to_string().contains(": environment variable WHATSIP_TEST_THREADS: "), "{err}");
        assert!(err.to_string().contains("test_threads"), "{err}");
        // The command line's own variables are not settings.
        let env: Vec<_> = COMMAND_LINE_VARS.iter().map(|name| (*name, "x")).collect();
        load("", &env).unwrap();

        let err = load("[sip]\nlisten_udpp = \"127.0.0.1:5060\"\n", &[("WHATSIP_SIP__DOMAIN", "example.org")]).unwrap_err();
        assert!(!err.to_string().contains("environment variable"), "{err}");
    }

    #[test]
    fn users_and_trunks_are_checked() {
        let err = load(
            r#"
[[sip.users]]
name = "1001"
password = "secret"
[[sip.users]]
name = "1001"
password = "x"
[[sip.trunks]]
name = "pbx"
address = "pbx.example"
register = true
accept_inbound = true
"#,
            &[],
        )
        .unwrap_err();
        let ConfigError::Invalid(problems) = err else { panic!() };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"sip.users[1].name"), "{keys:?}");
        assert!(keys.contains(&"sip.users[1].password"));
        assert!(keys.contains(&"sip.trunks[0].address"));
        assert!(keys.contains(&"sip.trunks[0].register"));
        assert!(keys.contains(&"sip.trunks[0].accept_inbound"));
    }

    #[test]
    fn whatsapp_numbers_and_keys_are_checked() {
        let base = "[[sip.users]]\nname = \"1001\"\npassword = \"secret\"\n\
                    [[sip.trunks]]\nname = \"pbx\"\naddress = \"127.0.0.1:5080\"\n";
        let err = load(
            &format!(
                "{base}[whatsapp]\ngraph_base_url = \"http://graph.example.com\"\ngraph_api_version = \"v16.0\"\n\
                 webhook_path = \"webhook\"\nwebhook_listen = \"anywhere\"\nwebhook_tls_cert = \"/nonexistent.pem\"\n\
                 verify_token = \"short\"\n\
                 [[whatsapp.numbers]]\nphone_number_id = \"1234\"\ndisplay_number = \"+1 555\"\ntarget = \"1002\"\n\
                 [[whatsapp.numbers]]\nphone_number_id = \"1234\"\ndisplay_number = \"15550001111\"\ntarget = \"trunk:nopbx/2001\"\n\
                 [[whatsapp.numbers]]\nphone_number_id = \"+1555\"\ndisplay_number = \"15550001112\"\ntarget = \"trunk:pbx\"\n"
            ),
            &[],
        )
        .unwrap_err();
        let ConfigError::Invalid(problems) = err else { panic!("{err}") };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "whatsapp.app_secret",
            "whatsapp.verify_token",
            "whatsapp.access_token",
            "whatsapp.graph_base_url",
            "whatsapp.graph_api_version",
            "whatsapp.webhook_path",
            "whatsapp.webhook_listen",
            "whatsapp.webhook_tls_cert",
            "whatsapp.webhook_tls_key",
            "whatsapp.numbers[0].display_number",
            "whatsapp.numbers[0].target",
            "whatsapp.numbers[1].phone_number_id",
            "whatsapp.numbers[1].target",
            "whatsapp.numbers[2].phone_number_id",
            "whatsapp.numbers[2].target",
        ] {
            assert!(keys.contains(&key), "{key} not reported: {problems:#?}");
        }
        assert_eq!(problems.len(), 15, "{problems:#?}");
        let secret = problems.iter().find(|p| p.key == "whatsapp.verify_token").unwrap();
        assert_eq!(secret.value, "****", "secrets are never echoed");

        let s = load(
            &format!(
                "{base}[whatsapp]\napp_secret = \"0123456789abcdef0123456789abcdef\"\nverify_token = \"verify-me-please\"\n\
                 access_token = \"EAAG-not-a-real-token\"\ngraph_base_url = \"http://127.0.0.1:9999\"\ngraph_api_version = \"v25.0\"\n\
                 [[whatsapp.numbers]]\nphone_number_id = \"106540352242922\"\ndisplay_number = \"+15550001111\"\ntarget = \"1001\"\n\
                 [[whatsapp.numbers]]\nphone_number_id = \"106540352242923\"\ndisplay_number = \"15550001112\"\ntarget = \"trunk:pbx/2001\"\n"
            ),
            &[("WHATSIP_WHATSAPP__WEBHOOK_PATH", "/hooks/meta")],
        )
        .unwrap();
        assert_eq!(s.whatsapp.webhook_path, "/hooks/meta");
        assert_eq!(s.whatsapp.numbers[0].dial_target(), Ok(DialTarget::User(UserName::new("1001"))));
        assert_eq!(
            s.whatsapp.numbers[1].dial_target(),
            Ok(DialTarget::Trunk { trunk: TrunkId::new("pbx"), extension: "2001".into() })
        );
    }
}
