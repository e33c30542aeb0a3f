//! The webhook server (§2.1): Meta's GET handshake and signed POSTs on one path.
//!
//! A thin shell. A POST is checked against its signature first: a missing or wrong
//! `X-Hub-Signature-256` gets 401 and nothing of the body is looked at. A signed body is parsed
//! (`model`), queued, and answered 200 at once; Meta times out after about 20 s and then
//! delivers again (§2.1), so no call logic ever runs before the answer. A pump task takes the
//! queued batches through the reorder/dedupe core (`ingress`) with the time, and sends what
//! survives to the sink. When the queue is full the POST gets 503 and nothing of it is taken,
//! so Meta's redelivery brings it back and no event is lost or half-taken.

use super::event::WaEvent;
use super::ingress::{Ingress, IngressConfig, Verdict};
use super::model::parse_notification;
use super::signature::{self, SIGNATURE_HEADER};
use crate::config::Settings;
use crate::ids::PhoneNumberId;
use crate::tls::TlsFileError;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::SystemTime;
use tokio::sync::mpsc;
use tracing::Instrument;

/// §2.1: payloads of up to 3 MB; a little room above that.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// What the webhook server needs, usually from [`WebhookConfig::from_settings`].
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub listen: SocketAddr,
    pub path: String,
    pub app_secret: String,
    pub verify_token: String,
    /// PEM certificate and key files; `None` serves plain HTTP (behind a TLS proxy).
    pub tls: Option<(String, String)>,
    /// Events for other numbers are logged and dropped.
    pub numbers: HashSet<PhoneNumberId>,
    pub ingress: IngressConfig,
    /// POSTs waiting for the pump; beyond this Meta is told to come back (503).
    pub queue: usize,
}

impl WebhookConfig {
    pub fn from_settings(settings: &Settings) -> Result<WebhookConfig, WebhookError> {
        let w = &settings.whatsapp;
        if w.webhook_listen.is_empty() {
            return Err(WebhookError::Disabled);
        }
        let tls = (!w.webhook_tls_cert.is_empty() || !w.webhook_tls_key.is_empty())
            .then(|| (w.webhook_tls_cert.clone(), w.webhook_tls_key.clone()));
        Ok(WebhookConfig {
            listen: w.webhook_listen.parse().map_err(|_| WebhookError::BadListen(w.webhook_listen.clone()))?,
            path: w.webhook_path.clone(),
            app_secret: w.app_secret.clone(),
            verify_token: w.verify_token.clone(),
            tls,
            numbers: w.numbers.iter().map(|n| PhoneNumberId::new(&n.phone_number_id)).collect(),
            ingress: IngressConfig::default(),
            queue: 1024,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("whatsapp.webhook_listen is empty: the webhook server is disabled")]
    Disabled,
    #[error("whatsapp.webhook_listen {0:?} is not ip:port")]
    BadListen(String),
    // An empty key would make every signature computable by anyone.
    #[error("whatsapp.app_secret is empty: webhooks could not be checked")]
    NoAppSecret,
    #[error("whatsapp.verify_token is empty: Meta's handshake could not be answered")]
    NoVerifyToken,
    #[error(transparent)]
    Tls(#[from] TlsFileError),
    #[error("webhook server on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// A bound webhook server, not yet running: [`WebhookServer::run`] serves until stopped.
pub struct WebhookServer {
    local_addr: SocketAddr,
    tls: bool,
    server: actix_web::dev::Server,
    pump: Pump,
}

impl WebhookServer {
    /// Where it listens (the real port when the configuration said port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the server: `handle().stop(true).await`.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (by the handle or by SIGINT/SIGTERM). Must run inside a tokio
    /// runtime (the actix system is one): the pump is spawned on it.
    pub async fn run(self) -> std::io::Result<()> {
        tracing::info!(addr = %self.local_addr, tls = self.tls, "WhatsApp webhook listening");
        tokio::spawn(self.pump.run());
        self.server.await
    }
}

/// Binds the webhook server with the settings' `[whatsapp]` keys; events go to `sink`.
pub fn server(settings: &Settings, sink: mpsc::Sender<WaEvent>) -> Result<WebhookServer, WebhookError> {
    server_with(WebhookConfig::from_settings(settings)?, sink)
}

/// As [`server`], with the configuration spelled out.
pub fn server_with(config: WebhookConfig, sink: mpsc::Sender<WaEvent>) -> Result<WebhookServer, WebhookError> {
    if config.app_secret.is_empty() {
        return Err(WebhookError::NoAppSecret);
    }
    if config.verify_token.is_empty() {
        return Err(WebhookError::NoVerifyToken);
    }
    let tls = config.tls.as_ref().map(|(cert, key)| crate::tls::server_config(cert, key)).transpose()?;
    let (queue, batches) = mpsc::channel(config.queue.max(1));
    let shared = web::Data::new(Shared {
        app_secret: config.app_secret.into_bytes(),
        verify_token: config.verify_token,
        queue,
    });
    let path = config.path.clone();
    let listen_err = |source| WebhookError::Listen { addr: config.listen, source };
    let listener = std::net::TcpListener::bind(config.listen).map_err(listen_err)?;
    let local_addr = listener.local_addr().map_err(listen_err)?;
    let http = HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route(&path, web::get().to(handshake))
            .route(&path, web::post().to(receive))
    })
    .workers(1)
    .shutdown_timeout(5);
    let http = match tls {
        Some(tls) => http.listen_rustls_0_23(listener, tls),
        None => http.listen(listener),
    }
    .map_err(listen_err)?;
    let pump = Pump { batches, sink, ingress: Ingress::new(config.ingress), numbers: config.numbers };
    Ok(WebhookServer { local_addr, tls: config.tls.is_some(), server: http.run(), pump })
}

struct Shared {
    app_secret: Vec<u8>,
    verify_token: String,
    queue: mpsc::Sender<Vec<WaEvent>>,
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// §2.1: answer the challenge only to someone who knows the verify token.
async fn handshake(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let Ok(query) = web::Query::<Handshake>::from_query(req.query_string()) else {
        return HttpResponse::BadRequest().body("unreadable query string");
    };
    let token_ok = query
        .verify_token
        .as_deref()
        .is_some_and(|t| constant_time_eq(t.as_bytes(), shared.verify_token.as_bytes()));
    if query.mode.as_deref() != Some("subscribe") || !token_ok {
        tracing::warn!(peer = ?req.peer_addr(), mode = ?query.mode, "webhook verification refused: wrong hub.mode or hub.verify_token");
        return HttpResponse::Forbidden().body("verification refused");
    }
    match &query.challenge {
        Some(challenge) => {
            tracing::info!("webhook verified by Meta");
            HttpResponse::Ok().content_type("text/plain").body(challenge.clone())
        }
        None => HttpResponse::BadRequest().body("no hub.challenge"),
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let header = req.headers().get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(&shared.app_secret, header, &body) {
        tracing::warn!(peer = ?req.peer_addr(), error = %e, "webhook refused");
        return HttpResponse::Unauthorized().body(e.to_string());
    }
    let notification = match parse_notification(&body) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "signed webhook body is not a notification");
            return HttpResponse::BadRequest().body(e.to_string());
        }
    };
    for s in &notification.skipped {
        tracing::warn!(item = %s.place, reason = %s.reason, "webhook item skipped");
    }
    for s in &notification.ignored {
        tracing::debug!(item = %s.place, reason = %s.reason, "webhook item not about calls");
    }
    if notification.events.is_empty() {
        return HttpResponse::Ok().finish();
    }
    match shared.queue.try_send(notification.events) {
        Ok(()) => HttpResponse::Ok().finish(),
        Err(e) => {
            // Nothing of this POST is taken; Meta delivers it again later (§2.1).
            tracing::warn!(error = %e, "webhook queue unavailable: asking Meta to retry");
            HttpResponse::ServiceUnavailable().insert_header(("Retry-After", "5")).finish()
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Feeds queued batches through the ingress core and on to the sink, in arrival order.
struct Pump {
    batches: mpsc::Receiver<Vec<WaEvent>>,
    sink: mpsc::Sender<WaEvent>,
    ingress: Ingress,
    numbers: HashSet<PhoneNumberId>,
}

impl Pump {
    async fn run(mut self) {
        while let Some(batch) = self.batches.recv().await {
            let now = SystemTime::now();
            for event in batch {
                let span = tracing::info_span!("webhook", call_id = event.call_id().map(|c| c.as_str()).unwrap_or("-"), kind = %event.kind());
                if !self.take(now, event).instrument(span).await {
                    tracing::error!("the WhatsApp event sink is closed: webhook events are no longer taken");
                    return;
                }
            }
        }
    }

    /// False once the sink is gone.
    async fn take(&mut self, now: SystemTime, event: WaEvent) -> bool {
        if !self.numbers.contains(event.phone_number_id()) {
            tracing::warn!(phone_number_id = %event.phone_number_id(), "webhook for a number not in [[whatsapp.numbers]]: dropped");
            return true;
        }
        match self.ingress.admit(now, &event) {
            Verdict::Deliver => {
                tracing::debug!("webhook event handed on");
                self.sink.send(event).await.is_ok()
            }
            verdict @ (Verdict::ConnectAfterTerminate | Verdict::Stale { .. }) => {
                tracing::info!(%verdict, "webhook event dropped");
                true
            }
            verdict => {
                tracing::debug!(%verdict, "webhook event dropped");
                true
            }
        }
    }
}
