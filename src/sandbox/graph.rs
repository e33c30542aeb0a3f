//! The sandbox's graph.facebook.com: `POST /{version}/{PHONE_NUMBER_ID}/calls` (§1.2) on
//! 127.0.0.1. A thin shell: each request goes to the [`Ledger`] with the time, its reply is
//! rendered as Meta's JSON (§1.2 success bodies, §1.4 error envelope), and its effects are
//! handed to the call's driver (`session`), which owns the user's peer.
//!
//! The ledger and the drivers' inboxes sit behind one lock ([`MetaState`]): a request is decided
//! and its effects queued in one step, so two requests on one call cannot interleave. Nothing
//! is awaited while it is held.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use actix_web::dev::ServerHandle;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rand::Rng;
use serde_json::json;
use tokio::sync::{mpsc, watch};

use super::ledger::{CallState, Effect, GraphRequest, Ledger, Party, RecordedAction, Refusal, Reply};
use crate::ids::{CallId, PhoneNumberId, WaId};

/// Well above a 3 kB SDP; Graph bodies are small.
const MAX_BODY: usize = 256 * 1024;

/// What a call's driver is told by the Graph side.
#[derive(Debug)]
pub(crate) enum Inbox {
    /// An effect of a request, and when the request arrived.
    Effect(Effect, Instant),
    /// A request about the call was recorded (for progress reports).
    Seen(RecordedAction),
}

/// Where a call stands, as a [`super::SandboxCall`] watches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub state: CallState,
    /// Every state the call has been in, in order.
    pub reached: Vec<CallState>,
    pub ended_by: Option<Party>,
    /// The user's peer has ICE and DTLS up.
    pub peer_connected: bool,
    /// The driver has closed the user's peer and sent what Meta sends at the end.
    pub closed: bool,
}

impl Progress {
    pub(crate) fn offered() -> Progress {
        Progress {
            state: CallState::Offered,
            reached: vec![CallState::Offered],
            ended_by: None,
            peer_connected: false,
            closed: false,
        }
    }
}

/// A call the business placed with `connect`. The sandbox records it and answers with a call
/// id; no user answers it yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCall {
    pub call_id: CallId,
    pub phone_number_id: PhoneNumberId,
    pub to: WaId,
    pub offer: String,
}

pub(crate) struct CallLink {
    pub(crate) inbox: mpsc::UnboundedSender<Inbox>,
    pub(crate) progress: watch::Sender<Progress>,
}

/// The sandbox's Meta: the ledger, and how to reach each call's driver.
pub(crate) struct MetaState {
    inner: Mutex<Inner>,
}

pub(crate) struct Inner {
    pub(crate) ledger: Ledger,
    links: HashMap<CallId, CallLink>,
    business_calls: Vec<BusinessCall>,
}

impl MetaState {
    pub(crate) fn new(ledger: Ledger) -> MetaState {
        MetaState { inner: Mutex::new(Inner { ledger, links: HashMap::new(), business_calls: Vec::new() }) }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // Poisoning cannot happen: the ledger is pure and does not panic on any input.
        self.inner.lock().expect("unpoisoned")
    }

    /// Decides one Graph request, queues its effects for the call's driver, and publishes the
    /// call's new state.
    fn graph_request(&self, now: SystemTime, at: Instant, req: GraphRequest<'_>) -> Reply {
        let mut inner = self.lock();
        let handled = inner.ledger.handle(now, req, fresh_call_id());
        let recorded = &handled.recorded;
        match &recorded.outcome {
            Ok(()) => tracing::info!(call_id = ?recorded.call_id, action = %recorded.raw_action, "sandbox Graph: done"),
            Err(refusal) => tracing::warn!(call_id = ?recorded.call_id, action = %recorded.raw_action, %refusal, "sandbox Graph: refused"),
        }
        if let Some(link) = recorded.call_id.as_ref().and_then(|id| inner.links.get(id)) {
            let _ = link.inbox.send(Inbox::Seen(recorded.clone()));
        }
        for effect in handled.effects {
            match effect {
                Effect::Placed { call_id, phone_number_id, to, offer } => {
                    tracing::info!(%call_id, %to, "sandbox Graph: business-initiated call recorded (no user answers it)");
                    inner.business_calls.push(BusinessCall { call_id, phone_number_id, to, offer });
                }
                Effect::Answer { ref call_id, .. } | Effect::Talk { ref call_id } => {
                    let id = call_id.clone();
                    inner.send(&id, Inbox::Effect(effect, at));
                }
                Effect::End(ref ending) => {
                    let id = ending.call_id.clone();
                    inner.send(&id, Inbox::Effect(effect, at));
                }
            }
        }
        if let Some(id) = &handled.recorded.call_id {
            inner.publish(id);
        }
        handled.reply
    }

    pub(crate) fn business_calls(&self) -> Vec<BusinessCall> {
        self.lock().business_calls.clone()
    }
}

impl Inner {
    pub(crate) fn link(&mut self, call_id: CallId, link: CallLink) {
        self.links.insert(call_id, link);
    }

    /// Tells the watchers of a call where the ledger says it stands.
    pub(crate) fn publish(&self, call_id: &CallId) {
        let (Some(link), Some(state)) = (self.links.get(call_id), self.ledger.state(call_id)) else {
            return;
        };
        let ended_by = self.ledger.ended_by(call_id);
        link.progress.send_if_modified(|p| {
            let changed = p.state != state || p.ended_by != ended_by;
            if p.reached.last() != Some(&state) {
                p.reached.push(state);
            }
            p.state = state;
            p.ended_by = ended_by;
            changed
        });
    }

    /// Changes what the driver knows of a call (its peer's state) for the call's watchers.
    pub(crate) fn modify_progress(&self, call_id: &CallId, change: impl FnOnce(&mut Progress)) {
        if let Some(link) = self.links.get(call_id) {
            link.progress.send_modify(change);
        }
    }

    fn send(&self, call_id: &CallId, message: Inbox) {
        if let Some(link) = self.links.get(call_id) {
            // A driver that has gone (its SandboxCall dropped) needs nothing more.
            let _ = link.inbox.send(message);
        }
    }
}

/// The running server; stopped by [`GraphServer::stop`] or when dropped.
pub(crate) struct GraphServer {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl GraphServer {
    /// Binds `listen` and serves on the current tokio runtime.
    pub(crate) fn start(listen: SocketAddr, meta: Arc<MetaState>) -> std::io::Result<GraphServer> {
        let listener = std::net::TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let data = web::Data::from(meta);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY))
                .route("/{version}/{phone_number_id}/calls", web::post().to(calls))
                .default_service(web::to(unknown_endpoint))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "sandbox Graph server stopped");
            }
        });
        tracing::info!(%addr, "sandbox Graph API listening");
        Ok(GraphServer { addr, handle })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

impl Drop for GraphServer {
    fn drop(&mut self) {
        // The command is sent at once; the future only waits for its completion.
        drop(self.handle.stop(false));
    }
}

async fn calls(req: HttpRequest, path: web::Path<(String, String)>, body: web::Bytes, meta: web::Data<MetaState>) -> HttpResponse {
    let (version, phone_number_id) = path.into_inner();
    let bearer = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let request = GraphRequest { version: &version, phone_number_id: &phone_number_id, bearer, body: &body };
    render(&meta.graph_request(SystemTime::now(), Instant::now(), request))
}

/// Graph answers paths it does not know with code 2500; no call is touched.
async fn unknown_endpoint(req: HttpRequest) -> HttpResponse {
    tracing::warn!(method = %req.method(), path = %req.path(), "sandbox Graph: unknown endpoint");
    HttpResponse::BadRequest().json(json!({ "error": {
        "message": format!("Unknown path components: {}", req.path()),
        "type": "OAuthException",
        "code": 2500,
        "fbtrace_id": fbtrace_id(),
    }}))
}

fn render(reply: &Reply) -> HttpResponse {
    match reply {
        Reply::Success => HttpResponse::Ok().json(json!({ "messaging_product": "whatsapp", "success": true })),
        Reply::Placed(id) => HttpResponse::Ok().json(json!({ "messaging_product": "whatsapp", "calls": [{ "id": id.as_str() }] })),
        Reply::Refused(refusal) => refused(refusal),
    }
}

fn refused(r: &Refusal) -> HttpResponse {
    let mut error = json!({
        "message": r.message,
        "type": r.error_type,
        "code": r.code.code(),
        "error_data": { "messaging_product": "whatsapp", "details": r.details },
        "fbtrace_id": fbtrace_id(),
    });
    if let Some(sub) = r.subcode {
        error["error_subcode"] = json!(sub);
    }
    let status = actix_web::http::StatusCode::from_u16(r.http_status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    let mut response = HttpResponse::build(status);
    if r.http_status == 401 {
        response.insert_header(("WWW-Authenticate", "OAuth \"Facebook Platform\" \"invalid_token\""));
    }
    response.json(json!({ "error": error }))
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn random_text(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| char::from(ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())])).collect()
}

/// A call id shaped like Meta's (`wacid.` and 28 characters, §2.2).
pub(crate) fn fresh_call_id() -> CallId {
    CallId::new(format!("wacid.{}", random_text(28)))
}

fn fbtrace_id() -> String {
    format!("A{}", random_text(22))
}
