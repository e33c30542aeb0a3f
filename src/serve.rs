//! `whatsip serve`: the threads and runtimes, in one place.
//!
//! Layout: SIP (ezk's transports and transactions) and every per-call media task run on one
//! multi-thread tokio runtime with a worker per core, so packet work spreads over the cores and
//! never waits behind signalling. The actix system on the main thread runs the admin API (one
//! worker: an admin's tool, not a hot path), Meta's webhook server, the call registry and one
//! actor per WhatsApp call; actors reach SIP, media and Graph through handles and tasks on the
//! media runtime, so no packet work ever lands on their thread.

use crate::api::{self, ApiState};
use crate::call::actor::CallDeps;
use crate::call::registry::{CallRegistry, HangupAll};
use crate::whatsapp::graph::{GraphClient, GraphConfig};
use crate::whatsapp::{webhook, Numbers};
use crate::config::Settings;
use crate::media::ports::PortPool;
use crate::routing::presence::Presence;
use crate::sip::SipStack;
use crate::routing::dialplan::PlanProblem;
use crate::routing::live::LivePlan;
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
    #[error("Graph client: {0}")]
    Graph(#[from] crate::whatsapp::graph::GraphError),
    #[error("webhook server: {0}")]
    Webhook(#[from] crate::whatsapp::webhook::WebhookError),
    #[error("the dialplan has {} problem(s):\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Dialplan(Vec<PlanProblem>),
}

impl ServeError {
    /// A broken dialplan is bad input, like a bad setting: exit status 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ServeError::Dialplan(_))
    }
}

pub fn run(settings: Settings) -> Result<(), ServeError> {
    let settings = Arc::new(settings);
    // Before anything binds a port: a plan no one could run stops startup cleanly.
    let plan = LivePlan::load(settings.clone()).map_err(ServeError::Dialplan)?;
    let store = Store::open(&settings.data_dir)?;
    let presence = Presence::load(store.clone())?;
    let token = api::load_or_create_token(&settings.api.token, &settings.data_dir)
        .map_err(|source| ServeError::Token { dir: settings.data_dir.display().to_string(), source })?;

    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let media_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .thread_name("whatsip-media")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let sip = media_rt.block_on(SipStack::start(settings.clone(), store.clone(), presence.clone()))?;
    let ports = Arc::new(PortPool::new(settings.rtp.port_min, settings.rtp.port_max).map_err(|e| ServeError::Ports(e.to_string()))?);
    let listen: SocketAddr = settings.api.listen.parse().expect("validated");
    let graph = media_rt.block_on(async { GraphClient::new(GraphConfig::from_settings(&settings)) })?;
    let deps = Arc::new(CallDeps {
        settings: settings.clone(),
        sip: sip.clone(),
        ports: ports.clone(),
        graph,
        store: store.clone(),
        plan: plan.clone(),
        presence: presence.clone(),
        media_rt: media_rt.handle().clone(),
    });
    plan.watch(media_rt.handle());
    let state = ApiState { sip, ports, media_rt: media_rt.handle().clone(), token: token.into(), store, plan, presence };

    tracing::info!(version = env!("CARGO_PKG_VERSION"), data_dir = %settings.data_dir.display(), "whatsip is up");
    let served = actix_web::rt::System::new().block_on(async {
        let numbers = Numbers::from_settings(&settings);
        let serve_whatsapp = !numbers.is_empty() && !settings.whatsapp.webhook_listen.is_empty();
        let (events_tx, events_rx) = tokio::sync::mpsc::channel(256);
        let registry = CallRegistry::new(deps, numbers).start_with(events_rx);
        if !serve_whatsapp {
            tracing::info!("no [[whatsapp.numbers]] (or no webhook_listen): WhatsApp calls are off");
        } else {
            let server = webhook::server(&settings, events_tx)?;
            tracing::info!(listen = %server.local_addr(), path = %settings.whatsapp.webhook_path, "webhook server listening");
            actix_web::rt::spawn(server.run());
        }
        let served = api::serve(state, listen).await;
        registry.do_send(HangupAll);
        // Give the calls a moment to send their BYEs and terminates.
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        Ok::<_, ServeError>(served)
    })?;
    tracing::info!("shutting down");
    media_rt.shutdown_timeout(Duration::from_secs(2));
    served.map_err(|source| ServeError::Api { addr: listen, source })
}
