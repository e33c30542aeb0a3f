//! What the sandbox needs to stand in for Meta, taken from the gateway's own `[whatsapp]`
//! settings so both sides agree: the Graph address (`graph_base_url`, which must be a local
//! `http://127.0.0.1:PORT`), the access token the gateway sends, the app secret it checks
//! webhooks with, its callback URL (`webhook_listen` + `webhook_path`) and the numbers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::webhooks::Retry;
use crate::config::Settings;
use crate::ids::PhoneNumberId;

/// One business number the sandbox's Meta knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNumber {
    pub phone_number_id: PhoneNumberId,
    /// As configured (`+15550001111`); webhooks carry its digits.
    pub display_number: String,
}

impl SandboxNumber {
    /// The number as Meta writes it in webhooks: digits only (§2.2 `display_phone_number`).
    pub fn digits(&self) -> String {
        digits(&self.display_number)
    }
}

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where the fake Graph API listens; port 0 picks a free one (tests).
    pub graph_listen: SocketAddr,
    /// The bearer token Graph requests must carry.
    pub access_token: String,
    /// Webhooks are signed with it.
    pub app_secret: String,
    /// The gateway's callback URL.
    pub webhook_url: String,
    /// For an `https://` callback on loopback with a self-made certificate.
    pub accept_invalid_certs: bool,
    pub numbers: Vec<SandboxNumber>,
    pub webhook_retry: Retry,
    /// Where the WhatsApp users' peers bind (their host candidate).
    pub peer_ip: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxConfigError {
    #[error(
        "whatsapp.graph_base_url = {0:?}: the sandbox serves Graph itself, so this must be \
         http://127.0.0.1:PORT (and `whatsip serve` must use the same value)"
    )]
    GraphNotLocal(String),
    #[error("whatsapp.webhook_listen is empty: the gateway has no webhook server to call")]
    NoWebhook,
    #[error("whatsapp.webhook_listen = {0:?} is not ip:port")]
    BadWebhookListen(String),
    #[error("whatsapp.{0} is empty: the sandbox needs the same value as the gateway")]
    Missing(&'static str),
    #[error("no [[whatsapp.numbers]]: there is no business number to call")]
    NoNumbers,
}

impl SandboxConfig {
    /// The sandbox for a gateway configured by `settings`.
    pub fn from_settings(settings: &Settings) -> Result<SandboxConfig, SandboxConfigError> {
        let w = &settings.whatsapp;
        let graph_listen = local_graph_addr(&w.graph_base_url)?;
        if w.access_token.is_empty() {
            return Err(SandboxConfigError::Missing("access_token"));
        }
        if w.app_secret.is_empty() {
            return Err(SandboxConfigError::Missing("app_secret"));
        }
        if w.numbers.is_empty() {
            return Err(SandboxConfigError::NoNumbers);
        }
        let tls = !w.webhook_tls_cert.is_empty();
        Ok(SandboxConfig {
            graph_listen,
            access_token: w.access_token.clone(),
            app_secret: w.app_secret.clone(),
            webhook_url: webhook_url(&w.webhook_listen, &w.webhook_path, tls)?,
            accept_invalid_certs: tls,
            numbers: w
                .numbers
                .iter()
                .map(|n| SandboxNumber {
                    phone_number_id: PhoneNumberId::new(&n.phone_number_id),
                    display_number: n.display_number.clone(),
                })
                .collect(),
            webhook_retry: Retry::default(),
            peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        })
    }

    /// A sandbox on a free port of 127.0.0.1, for a gateway whose webhook is at `webhook_url`.
    pub fn local(
        webhook_url: impl Into<String>,
        app_secret: impl Into<String>,
        access_token: impl Into<String>,
        numbers: Vec<SandboxNumber>,
    ) -> SandboxConfig {
        SandboxConfig {
            graph_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            access_token: access_token.into(),
            app_secret: app_secret.into(),
            webhook_url: webhook_url.into(),
            accept_invalid_certs: false,
            numbers,
            webhook_retry: Retry::default(),
            peer_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// A configured number by its id, or by its display number in any spelling
    /// (`+1 555 000 1111`, `15550001111`).
    pub fn find_number(&self, id_or_number: &str) -> Option<&SandboxNumber> {
        let wanted = digits(id_or_number);
        self.numbers.iter().find(|n| n.phone_number_id.as_str() == id_or_number.trim()).or_else(|| {
            self.numbers.iter().find(|n| !wanted.is_empty() && n.digits() == wanted)
        })
    }
}

/// `http://127.0.0.1:PORT` (a trailing `/` allowed) → the address to listen on.
fn local_graph_addr(base: &str) -> Result<SocketAddr, SandboxConfigError> {
    let refuse = || SandboxConfigError::GraphNotLocal(base.to_owned());
    let rest = base.strip_prefix("http://").ok_or_else(refuse)?;
    let addr: SocketAddr = rest.strip_suffix('/').unwrap_or(rest).parse().map_err(|_| refuse())?;
    if addr.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST) || addr.port() == 0 {
        return Err(refuse());
    }
    Ok(addr)
}

/// The gateway's callback URL; a wildcard listen address is reached on loopback.
fn webhook_url(listen: &str, path: &str, tls: bool) -> Result<String, SandboxConfigError> {
    if listen.is_empty() {
        return Err(SandboxConfigError::NoWebhook);
    }
    let mut addr: SocketAddr = listen.parse().map_err(|_| SandboxConfigError::BadWebhookListen(listen.to_owned()))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        });
    }
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{addr}{path}"))
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WhatsAppNumberSettings;

    fn settings() -> Settings {
        let mut s = Settings::default();
        let w = &mut s.whatsapp;
        w.app_secret = "0123456789abcdef".into();
        w.access_token = "EAAG-sandbox-token".into();
        w.graph_base_url = "http://127.0.0.1:8090".into();
        w.webhook_listen = "0.0.0.0:8089".into();
        w.webhook_path = "/hooks/meta".into();
        w.numbers.push(WhatsAppNumberSettings {
            phone_number_id: "106540352242922".into(),
            display_number: "+1 555 000 9999".into(),
            target: "1001".into(),
        });
        s
    }

    #[test]
    fn from_the_gateways_settings() {
        let c = SandboxConfig::from_settings(&settings()).unwrap();
        assert_eq!(c.graph_listen, "127.0.0.1:8090".parse::<SocketAddr>().unwrap());
        assert_eq!(c.webhook_url, "http://127.0.0.1:8089/hooks/meta");
        assert!(!c.accept_invalid_certs);
        assert_eq!(c.numbers[0].digits(), "15550009999");
        assert_eq!(c.find_number("106540352242922").unwrap().display_number, "+1 555 000 9999");
        assert_eq!(c.find_number("+15550009999").unwrap().phone_number_id.as_str(), "106540352242922");
        assert!(c.find_number("15550000000").is_none());
        assert!(c.find_number("").is_none());
    }

    #[test]
    fn graph_must_be_local_plain_http_on_a_fixed_port() {
        for base in ["https://graph.facebook.com", "http://localhost:8090", "http://10.0.0.1:8090", "http://127.0.0.1:0", "http://127.0.0.1", "http://127.0.0.1:8090/v23.0"] {
            assert_eq!(local_graph_addr(base), Err(SandboxConfigError::GraphNotLocal(base.into())), "{base}");
        }
        assert_eq!(local_graph_addr("http://127.0.0.1:8090/").unwrap().port(), 8090);
        let mut s = settings();
        s.whatsapp.graph_base_url = "https://graph.facebook.com".into();
        let e = SandboxConfig::from_settings(&s).unwrap_err();
        assert!(e.to_string().contains("http://127.0.0.1:PORT"), "{e}");
    }

    #[test]
    fn the_gateway_needs_a_webhook_secrets_and_numbers() {
        let mut s = settings();
        s.whatsapp.webhook_listen.clear();
        assert_eq!(SandboxConfig::from_settings(&s).unwrap_err(), SandboxConfigError::NoWebhook);
        let mut s = settings();
        s.whatsapp.access_token.clear();
        assert_eq!(SandboxConfig::from_settings(&s).unwrap_err(), SandboxConfigError::Missing("access_token"));
        let mut s = settings();
        s.whatsapp.numbers.clear();
        assert_eq!(SandboxConfig::from_settings(&s).unwrap_err(), SandboxConfigError::NoNumbers);
        let mut s = settings();
        s.whatsapp.webhook_tls_cert = "cert.pem".into();
        s.whatsapp.webhook_listen = "[::]:8443".into();
        let c = SandboxConfig::from_settings(&s).unwrap();
        assert_eq!((c.webhook_url.as_str(), c.accept_invalid_certs), ("https://[::1]:8443/hooks/meta", true));
    }
}
