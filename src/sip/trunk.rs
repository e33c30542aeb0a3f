//! Trunks to existing PBXs: where to send calls, which credentials to answer challenges with,
//! whether whatsip registers to the PBX, and which INVITEs from the PBX we take.

use crate::config::{Transport, TrunkSettings};
use crate::ids::TrunkId;
use ezk_sip_auth::{DigestAuthenticator, DigestCredentials, DigestUser};
use ezk_sip_core::transport::TargetTransportInfo;
use ezk_sip_core::Endpoint;
use ezk_sip_types::header::typed::Contact;
use ezk_sip_types::uri::{NameAddr, SipUri};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `host:port` with a non-empty host and a port; `[v6]:port` allowed.
pub fn parse_host_port(s: &str) -> Option<(String, u16)> {
    if let Ok(addr) = s.parse::<std::net::SocketAddr>() {
        return Some((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let valid = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    valid.then(|| (host.to_string(), port))
}

#[derive(Debug, Clone)]
pub struct Trunk {
    pub id: TrunkId,
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub credentials: Option<(String, String)>,
    pub register: bool,
    pub register_expires: u32,
    pub accept_inbound: bool,
    pub inbound_sources: Vec<IpAddr>,
}

impl Trunk {
    pub fn from_settings(t: &TrunkSettings) -> Trunk {
        let (host, port) = parse_host_port(&t.address).expect("validated");
        Trunk {
            id: TrunkId::new(&t.name),
            host,
            port,
            transport: t.transport,
            credentials: t.username.clone().zip(t.password.clone()),
            register: t.register,
            register_expires: t.register_expires,
            accept_inbound: t.accept_inbound,
            inbound_sources: t.inbound_sources.iter().filter_map(|s| s.parse().ok()).collect(),
        }
    }

    /// The request URI for `user` on this PBX (an extension, or the registrar's own URI).
    pub fn uri(&self, user: Option<&str>) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let scheme = if self.transport == Transport::Tls { "sips" } else { "sip" };
        let user = user.map(|u| format!("{u}@")).unwrap_or_default();
        let transport = match self.transport {
            Transport::Udp => String::new(),
            t => format!(";transport={}", t.as_str()),
        };
        format!("{scheme}:{user}{host}:{}{transport}", self.port)
    }

    pub fn authenticator(&self) -> DigestAuthenticator {
        let mut creds = DigestCredentials::new();
        if let Some((user, pass)) = &self.credentials {
            creds.set_default(DigestUser::new(user.clone(), pass.clone()));
        }
        DigestAuthenticator::new(creds)
    }
}

/// Which trunk an INVITE from `source` belongs to, if any trusts that address.
pub fn trusted_source(trunks: &[Trunk], source: IpAddr) -> Option<&Trunk> {
    trunks.iter().find(|t| t.accept_inbound && t.inbound_sources.contains(&source))
}

/// Exponential back-off for failed registrations: 5 s doubling to 5 min, so a PBX that is down
/// is not hammered and one that comes back is found within minutes.
pub fn backoff(failures: u32) -> Duration {
    let secs = (5u64 << (failures.clamp(1, 7) - 1)).min(300);
    Duration::from_secs(secs)
}

/// How long to wait before refreshing a binding granted for `granted` seconds: well before it
/// runs out, as RFC 3261 §10.2.4 advises, and never in a busy loop.
pub fn refresh_after(granted: u32) -> Duration {
    let g = u64::from(granted.max(20));
    Duration::from_secs((g * 3 / 4).max(g.saturating_sub(60)).max(10).min(g - 5))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TrunkRegistrationState {
    Disabled,
    Registering,
    Registered { expires_in: u32 },
    Failed { reason: String, retry_in: u64 },
}

/// Keeps whatsip registered to the trunk's PBX; the state is published on the watch channel.
pub fn spawn_registration(endpoint: Endpoint, trunk: Trunk, contact_host: String) -> watch::Receiver<TrunkRegistrationState> {
    let (tx, rx) = watch::channel(TrunkRegistrationState::Registering);
    let tx = Arc::new(tx);
    tokio::spawn(async move {
        let (user, _) = trunk.credentials.clone().expect("validated: register needs credentials");
        let registrar: SipUri = trunk.uri(None).parse().expect("trunk uri parses");
        let aor: SipUri = trunk.uri(Some(&user)).parse().expect("trunk uri parses");
        let contact_uri: SipUri = format!("sip:{user}@{contact_host}").parse().expect("contact parses");
        let mut proto = ezk_sip_ua::register::Registration::new(
            NameAddr::uri(aor),
            Contact::new(NameAddr::uri(contact_uri)),
            registrar,
            Duration::from_secs(trunk.register_expires.into()),
        );
        let mut auth = trunk.authenticator();
        let mut target = TargetTransportInfo::default();
        let mut failures = 0u32;
        loop {
            match register_once(&endpoint, &mut proto, &mut auth, &mut target).await {
                Ok(granted) => {
                    failures = 0;
                    tracing::info!(trunk = %trunk.id, granted, "registered to PBX");
                    tx.send_replace(TrunkRegistrationState::Registered { expires_in: granted });
                    tokio::time::sleep(refresh_after(granted)).await;
                }
                Err(reason) => {
                    failures += 1;
                    let wait = backoff(failures);
                    tracing::warn!(trunk = %trunk.id, %reason, retry_in = wait.as_secs(), "registration to PBX failed");
                    tx.send_replace(TrunkRegistrationState::Failed { reason, retry_in: wait.as_secs() });
                    // A fresh transport next time: the PBX may have moved or restarted.
                    target = TargetTransportInfo::default();
                    tokio::time::sleep(wait).await;
                }
            }
            if tx.is_closed() {
                break;
            }
        }
    });
    rx
}

/// One REGISTER exchange, answering up to two challenges. Returns the granted expiry.
async fn register_once(
    endpoint: &Endpoint,
    proto: &mut ezk_sip_ua::register::Registration,
    auth: &mut DigestAuthenticator,
    target: &mut TargetTransportInfo,
) -> Result<u32, String> {
    use ezk_sip_auth::{ClientAuthenticator, RequestParts, ResponseParts};
    use ezk_sip_types::header::typed::Expires;
    for _ in 0..3 {
        let mut request = proto.create_register(false);
        auth.authorize_request(&mut request.headers);
        let mut tsx = endpoint.send_request(request, target).await.map_err(|e| e.to_string())?;
        let response = tsx.receive_final().await.map_err(|e| format!("no answer: {e}"))?;
        match response.line.code.into_u16() {
            200..=299 => {
                let granted = granted_expiry(&response).unwrap_or_else(|| {
                    response.headers.get_named::<Expires>().map(|e| e.0).unwrap_or(60)
                });
                proto.receive_success_response(response);
                return Ok(granted);
            }
            401 | 407 => {
                let req = tsx.request();
                auth.handle_rejection(
                    RequestParts { line: &req.msg.line, headers: &req.msg.headers, body: &req.msg.body },
                    ResponseParts { line: &response.line, headers: &response.headers, body: &response.body },
                )
                .map_err(|e| format!("credentials refused: {e}"))?;
            }
            423 => {
                if !proto.receive_error_response(response) {
                    return Err("423 without Min-Expires".into());
                }
            }
            code => return Err(format!("{code} {}", response.line.reason.as_deref().unwrap_or(""))),
        }
    }
    Err("credentials refused".into())
}

/// The expiry the registrar granted, from our Contact's `expires` parameter (RFC 3261 §10.2.4).
fn granted_expiry(response: &ezk_sip_core::transaction::TsxResponse) -> Option<u32> {
    let contacts: Vec<Contact> = response.headers.get_named().ok()?;
    contacts.iter().find_map(|c| c.params.get_val("expires")?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        assert_eq!(parse_host_port("10.0.0.5:5060"), Some(("10.0.0.5".into(), 5060)));
        assert_eq!(parse_host_port("pbx.example.com:5080"), Some(("pbx.example.com".into(), 5080)));
        assert_eq!(parse_host_port("[::1]:5060"), Some(("::1".into(), 5060)));
        assert_eq!(parse_host_port("pbx.example.com"), None);
        assert_eq!(parse_host_port(":5060"), None);
        assert_eq!(parse_host_port("pbx:0"), None);
        assert_eq!(parse_host_port("bad host:5060"), None);
    }

    fn trunk(transport: Transport) -> Trunk {
        Trunk {
            id: TrunkId::new("pbx"),
            host: "10.0.0.5".into(),
            port: 5060,
            transport,
            credentials: None,
            register: false,
            register_expires: 600,
            accept_inbound: true,
            inbound_sources: vec!["10.0.0.5".parse().unwrap()],
        }
    }

    #[test]
    fn uris_carry_transport() {
        assert_eq!(trunk(Transport::Udp).uri(Some("2001")), "sip:2001@10.0.0.5:5060");
        assert_eq!(trunk(Transport::Tcp).uri(None), "sip:10.0.0.5:5060;transport=tcp");
        assert_eq!(trunk(Transport::Tls).uri(Some("1")), "sips:1@10.0.0.5:5060;transport=tls");
        for t in [Transport::Udp, Transport::Tcp, Transport::Tls] {
            trunk(t).uri(Some("2001")).parse::<SipUri>().unwrap();
        }
    }

    #[test]
    fn trusted_sources() {
        let trunks = vec![trunk(Transport::Udp)];
        assert!(trusted_source(&trunks, "10.0.0.5".parse().unwrap()).is_some());
        assert!(trusted_source(&trunks, "10.0.0.6".parse().unwrap()).is_none());
    }

    #[test]
    fn backoff_grows_to_a_cap_and_refresh_is_early() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), Duration::from_secs(300));
        assert_eq!(refresh_after(600), Duration::from_secs(540));
        assert_eq!(refresh_after(3600), Duration::from_secs(3540));
        assert!(refresh_after(60) < Duration::from_secs(60));
        assert!(refresh_after(1) >= Duration::from_secs(10));
    }
}
