//! Builds the ezk endpoint: transports from the settings, our layers around ezk's dialog and
//! invite layers, trunk registrations and the registrar's housekeeping.

use super::feature::FeatureCodes;
use super::inbound::{CheckLayer, ServiceLayer};
use super::registrar::Registrar;
use super::trunk::{spawn_registration, Trunk, TrunkRegistrationState};
use crate::config::Settings;
use crate::ids::TrunkId;
use crate::routing::presence::Presence;
use crate::store::{Store, StoreError};
use ezk_sip_core::Endpoint;
use ezk_sip_ua::dialog::DialogLayer;
use ezk_sip_ua::invite::InviteLayer;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot listen on {transport} {addr}: {source}")]
    Listen { transport: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("TLS certificate or key ({path}): {reason}")]
    Tls { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The running SIP side, shared by the API and (later) the call actors.
#[derive(Clone)]
pub struct SipStack {
    pub endpoint: Endpoint,
    pub registrar: Arc<Registrar>,
    pub trunks: Arc<Vec<Trunk>>,
    pub trunk_states: Arc<BTreeMap<TrunkId, watch::Receiver<TrunkRegistrationState>>>,
    /// Host:port we put in Contact and From of calls we place.
    pub contact_addr: SocketAddr,
    pub settings: Arc<Settings>,
}

impl SipStack {
    /// Binds every configured transport; must run inside the tokio runtime that will drive SIP.
    /// `presence` takes the do-not-disturb feature codes phones dial.
    pub async fn start(settings: Arc<Settings>, store: Store, presence: Arc<Presence>) -> Result<SipStack, SipError> {
        let s = &settings.sip;
        let registrar = Arc::new(Registrar::new(&settings, store).await?);
        let trunks: Arc<Vec<Trunk>> = Arc::new(s.trunks.iter().map(Trunk::from_settings).collect());

        let mut builder = Endpoint::builder();
        builder.user_agent(s.user_agent.clone());
        builder.add_layer(CheckLayer);
        builder.add_layer(DialogLayer::default());
        builder.add_layer(InviteLayer::default());
        builder.add_layer(ServiceLayer {
            registrar: registrar.clone(),
            trunks: trunks.clone(),
            presence,
            features: FeatureCodes::from_settings(s),
        });

        let mut contact_addr = None;
        if let Ok(addr) = s.listen_udp.parse::<SocketAddr>() {
            let tp = builder
                .bind_udp(addr)
                .await
                .map_err(|source| SipError::Listen { transport: "udp", addr, source })?;
            contact_addr = Some(tp.bound());
        }
        if let Ok(addr) = s.listen_tcp.parse::<SocketAddr>() {
            builder
                .listen_tcp(addr)
                .await
                .map_err(|source| SipError::Listen { transport: "tcp", addr, source })?;
            contact_addr.get_or_insert(addr);
        }
        if let Ok(addr) = s.listen_tls.parse::<SocketAddr>() {
            let acceptor = tls_acceptor(&s.tls_cert, &s.tls_key)?;
            builder
                .listen_rustls(addr, acceptor)
                .await
                .map_err(|source| SipError::Listen { transport: "tls", addr, source })?;
            contact_addr.get_or_insert(addr);
        }
        builder.use_rustls_connector(tls_connector());
        let endpoint = builder.build();
        let contact_addr = contact_addr.expect("validated: at least one transport");
        tracing::info!(%contact_addr, udp = %s.listen_udp, tcp = %s.listen_tcp, tls = %s.listen_tls, "SIP listening");

        let mut trunk_states = BTreeMap::new();
        for trunk in trunks.iter() {
            let rx = if trunk.register {
                spawn_registration(endpoint.clone(), trunk.clone(), contact_addr.to_string())
            } else {
                watch::channel(TrunkRegistrationState::Disabled).1
            };
            trunk_states.insert(trunk.id.clone(), rx);
        }

        let housekeeping = registrar.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(15));
            loop {
                tick.tick().await;
                housekeeping.housekeeping().await;
            }
        });

        Ok(SipStack { endpoint, registrar, trunks, trunk_states: Arc::new(trunk_states), contact_addr, settings })
    }
}

fn tls_acceptor(cert: &str, key: &str) -> Result<tokio_rustls::TlsAcceptor, SipError> {
    let config = crate::tls::server_config(cert, key).map_err(|e| SipError::Tls { path: e.path, reason: e.reason })?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Outgoing TLS (trunks over TLS, later Meta's SIP mode) trusts the system's CA store.
fn tls_connector() -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}
