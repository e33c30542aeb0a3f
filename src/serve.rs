//! `whatsip serve`: the threads and runtimes, in one place.
//!
//! Layout: SIP (ezk's transports and transactions) and every per-call media task run on one
//! multi-thread tokio runtime with a worker per core, so packet work spreads over the cores and
//! never waits behind signalling. The admin API runs on the actix system on the main thread,
//! with a single worker: it is an admin's tool, not a hot path. Call actors (inbound WhatsApp
//! calls) will live on actix arbiters beside it and reach SIP and media through handles.

use crate::api::{self, ApiState};
use crate::config::Settings;
use crate::media::ports::PortPool;
use crate::sip::SipStack;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Sip(#[from] crate::sip::SipError),
    #[error("cannot create the API token in {dir}: {source}")]
    Token { dir: String, source: std::io::Error },
    #[error("admin API on {addr}: {source}")]
    Api { addr: SocketAddr, source: std::io::Error },
    #[error("RTP ports: {0}")]
    Ports(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

pub fn run(settings: Settings) -> Result<(), ServeError> {
    let settings = Arc::new(settings);
    let store = Store::open(&settings.data_dir)?;
    let token = api::load_or_create_token(&settings.api.token, &settings.data_dir)
        .map_err(|source| ServeError::Token { dir: settings.data_dir.display().to_string(), source })?;

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let media_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("whatsip-media")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let sip = media_rt.block_on(SipStack::start(settings.clone(), store))?;
    let ports = Arc::new(PortPool::new(settings.rtp.port_min, settings.rtp.port_max).map_err(|e| ServeError::Ports(e.to_string()))?);
    let listen: SocketAddr = settings.api.listen.parse().expect("validated");
    let state = ApiState { sip, ports, media_rt: media_rt.handle().clone(), token: token.into() };

    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %settings.data_dir.display(), "whatsip is up");
    let served = actix_web::rt::System::new().block_on(api::serve(state, listen));
    tracing::info!("shutting down");
    media_rt.shutdown_timeout(Duration::from_secs(2));
    served.map_err(|source| ServeError::Api { addr: listen, source })
}
