//! The admin HTTP API, on loopback with a bearer token. The CLI's commands that act on a
//! running gateway (`ring`, `registrations`, `users`, `dnd`) are its clients: the gateway holds
//! the store's lock and the phones' registrations, so a second process could not do their work.

pub mod client;
pub mod dialplan;

use crate::call::test_ring::{self, RingRequest};
use crate::ids::UserName;
use crate::media::ports::PortPool;
use crate::routing::presence::Presence;
use crate::sip::SipStack;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub sip: SipStack,
    pub ports: Arc<PortPool>,
    /// The runtime that owns SIP and media; calls run there, not on the API's thread.
    pub media_rt: tokio::runtime::Handle,
    pub token: Arc<str>,
    pub store: crate::store::Store,
    pub plan: Arc<crate::routing::live::LivePlan>,
    pub presence: Arc<Presence>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RegistrationView {
    pub user: String,
    pub contact: String,
    pub expires_in: u64,
    pub source: String,
    pub transport: String,
    pub user_agent: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TrunkView {
    pub name: String,
    pub address: String,
    pub registration: serde_json::Value,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// Body of `PUT /api/users/{user}/dnd`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DndRequest {
    pub on: bool,
}

/// Reads the token from settings, or from `<data_dir>/api.token`, creating it on first start.
pub fn load_or_create_token(configured: &str, data_dir: &Path) -> std::io::Result<String> {
    if !configured.is_empty() {
        return Ok(configured.to_string());
    }
    let path = data_dir.join("api.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let token = format!("{:032x}", rand::random::<u128>());
    write_private(&path, &token)?;
    Ok(token)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// Runs the API until the process is asked to stop (SIGINT/SIGTERM, handled by actix).
pub async fn serve(state: ApiState, listen: SocketAddr) -> std::io::Result<()> {
    let data = web::Data::new(state);
    tracing::info!(%listen, "admin API listening");
    HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::JsonConfig::default().limit(64 * 1024 * 1024).error_handler(|err, _| {
                let body = ApiError { error: format!("bad request body: {err}") };
                actix_web::error::InternalError::from_response(err, HttpResponse::BadRequest().json(body)).into()
            }))
            .route("/api/health", web::get().to(health))
            .route("/api/registrations", web::get().to(registrations))
            .route("/api/users", web::get().to(users))
            .route("/api/users/{user}/dnd", web::put().to(set_dnd))
            .route("/api/trunks", web::get().to(trunks))
            .route("/api/ring", web::post().to(ring))
            .route("/api/calls", web::get().to(calls))
            .route("/api/dialplan", web::get().to(dialplan::status))
            .route("/api/dialplan/reload", web::post().to(dialplan::reload))
            .default_service(web::to(|| async { HttpResponse::NotFound().json(ApiError { error: "no such endpoint".into() }) }))
    })
    .workers(1)
    .bind(listen)?
    .run()
    .await
}

/// The 401 to send, unless the request carries the right bearer token.
pub(crate) fn unauthorized(req: &HttpRequest, state: &ApiState) -> Option<HttpResponse> {
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), state.token.as_bytes()) => None,
        _ => Some(
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer"))
                .json(ApiError { error: "missing or wrong API token".into() }),
        ),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Debug, Deserialize)]
struct CallsQuery {
    limit: Option<usize>,
}

/// The most recent call records, newest first (`?limit=`, default 50, at most 1000).
async fn calls(req: HttpRequest, state: web::Data<ApiState>, query: web::Query<CallsQuery>) -> HttpResponse {
    if let Some(refusal) = unauthorized(&req, &state) {
        return refusal;
    }
    let limit = query.limit.unwrap_or(50).min(1000);
    match state.store.recent_calls(limit) {
        Ok(list) => HttpResponse::Ok().json(list),
        Err(e) => HttpResponse::InternalServerError().json(ApiError { error: e.to_string() }),
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn registrations(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refusal) = unauthorized(&req, &state) {
        return refusal;
    }
    let now = crate::sip::registrar::unix_now();
    let list: Vec<RegistrationView> = state
        .sip
        .registrar
        .all_bindings()
        .await
        .into_iter()
        .map(|b| RegistrationView {
            user: b.user.to_string(),
            contact: b.contact,
            expires_in: b.expires_at.saturating_sub(now),
            source: b.source,
            transport: b.transport,
            user_agent: b.user_agent,
        })
        .collect();
    HttpResponse::Ok().json(list)
}

/// Every configured user: registered contacts, do-not-disturb, busy.
async fn users(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refusal) = unauthorized(&req, &state) {
        return refusal;
    }
    HttpResponse::Ok().json(state.presence.users(&state.sip).await)
}

/// Sets a user's do-not-disturb; answers with the user's presence after the change. The body
/// is read by hand, after the token check, so a caller without the token learns nothing from
/// how its body was judged.
async fn set_dnd(req: HttpRequest, state: web::Data<ApiState>, user: web::Path<String>, body: web::Bytes) -> HttpResponse {
    if let Some(refusal) = unauthorized(&req, &state) {
        return refusal;
    }
    let user = UserName::new(user.into_inner());
    if !state.sip.registrar.is_user(&user) {
        return HttpResponse::NotFound().json(ApiError { error: format!("no user {user} in [[sip.users]]") });
    }
    let request: DndRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return HttpResponse::BadRequest().json(ApiError { error: format!("bad request body: {e}; expected {{\"on\": true}} or {{\"on\": false}}") }),
    };
    if let Err(e) = state.presence.set_dnd(&user, request.on).await {
        return HttpResponse::InternalServerError().json(ApiError { error: e.to_string() });
    }
    tracing::info!(%user, dnd = request.on, "do-not-disturb set through the API");
    let presence = state.presence.users(&state.sip).await.into_iter().find(|p| p.user == user);
    // is_user above and users() both read [[sip.users]], so the user is listed.
    HttpResponse::Ok().json(presence.expect("a configured user is in users()"))
}

async fn trunks(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refusal) = unauthorized(&req, &state) {
        return refusal;
    }
    let list: Vec<TrunkView> = state
        .sip
        .trunks
        .iter()
        .map(|t| TrunkView {
            name: t.id.to_string(),
            address: format!("{}:{}", t.host, t.port),
            registration: state
                .sip
                .trunk_states
                .get(&t.id)
                .map(|rx| serde_json::to_value(&*rx.borrow()).unwrap_or_default())
                .unwrap_or_default(),
        })
        .collect();
    HttpResponse::Ok().json(list)
}

async fn ring(req: HttpRequest, state: web::Data<ApiState>, body: web::Json<RingRequest>) -> HttpResponse {
    if let Some(refusal) = unauthorized(&req, &state) {
        return refusal;
    }
    let request = body.into_inner();
    if let Err(e) = request.check() {
        return HttpResponse::BadRequest().json(ApiError { error: e });
    }
    let st = state.get_ref().clone();
    let call = st.media_rt.spawn(async move { test_ring::run(&st.sip, &st.ports, request).await });
    match call.await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => HttpResponse::BadRequest().json(ApiError { error: e.to_string() }),
        Err(e) => HttpResponse::InternalServerError().json(ApiError { error: format!("ring task failed: {e}") }),
    }
}
