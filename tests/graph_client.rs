//! The Graph client against a stand-in for graph.facebook.com on 127.0.0.1: the requests are
//! checked field by field (§1.2), and Meta-style error envelopes come back as typed errors (§1.4).

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use whatsip::ids::{CallId, PhoneNumberId, WaId};
use whatsip::whatsapp::{Action, CallAnswer, ErrorCode, GraphClient, GraphConfig, GraphError, Sdp};

const TOKEN: &str = "EAAG-test-token";
const NUMBER: &str = "106540352242922";
const ANSWER_SDP: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    auth: String,
    body: Value,
}

#[derive(Default)]
struct FakeMeta {
    seen: Mutex<Vec<Seen>>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl FakeMeta {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn envelope(code: i64, message: &str) -> Value {
    json!({ "error": { "message": message, "type": "OAuthException", "code": code,
                       "error_data": { "messaging_product": "whatsapp", "details": format!("details of {code}") },
                       "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam" } })
}

/// Answers by call id (or `to` for connect), the way Meta would in each case.
async fn calls(req: HttpRequest, body: web::Json<Value>, meta: web::Data<FakeMeta>) -> HttpResponse {
    let body = body.into_inner();
    meta.seen.lock().unwrap().push(Seen {
        path: req.path().to_string(),
        auth: req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string(),
        body: body.clone(),
    });
    let key = body["call_id"].as_str().or(body["to"].as_str()).unwrap_or_default().to_string();
    let attempt = {
        let mut attempts = meta.attempts.lock().unwrap();
        let n = attempts.entry(key.clone()).or_default();
        *n += 1;
        *n
    };
    match key.as_str() {
        "wacid.flaky" if attempt == 1 => HttpResponse::ServiceUnavailable().body("<html>try again</html>"),
        "wacid.flaky" => HttpResponse::Ok().json(json!({ "success": true })),
        "wacid.meta-hiccup" if attempt == 1 => HttpResponse::InternalServerError().json(envelope(138004, "Connection error")),
        "wacid.sip" => HttpResponse::BadRequest().json(envelope(131055, "(#131055) Method not allowed")),
        "wacid.bad-sdp" => HttpResponse::BadRequest().json(envelope(100, "(#100) Invalid parameter")),
        "wacid.unsure" => HttpResponse::Ok().json(json!({ "messaging_product": "whatsapp", "success": false })),
        "wacid.slow" => {
            actix_web::rt::time::sleep(Duration::from_secs(3)).await;
            HttpResponse::Ok().json(json!({ "success": true }))
        }
        "16315550000" => HttpResponse::Unauthorized().json(envelope(138006, "(#138006) No approved call permission")),
        "16315559999" => HttpResponse::ServiceUnavailable().body("down"),
        "16315553602" => HttpResponse::Ok().json(json!({ "messaging_product": "whatsapp", "calls": [{ "id": "wacid.NEW" }] })),
        _ => HttpResponse::Ok().json(json!({ "messaging_product": "whatsapp", "success": true })),
    }
}

fn start() -> (String, Arc<FakeMeta>, actix_web::dev::ServerHandle) {
    let meta = web::Data::new(FakeMeta::default());
    let shared = meta.clone().into_inner();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let server = HttpServer::new(move || App::new().app_data(meta.clone()).route("/{version}/{number}/calls", web::post().to(calls)))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (base, shared, handle)
}

fn client(base: &str) -> GraphClient {
    GraphClient::new(GraphConfig {
        base_url: format!("{base}/"),
        api_version: "v23.0".into(),
        access_token: TOKEN.into(),
        timeout: Duration::from_millis(500),
        retries: 2,
        retry_backoff: Duration::from_millis(10),
    })
    .unwrap()
}

fn number() -> PhoneNumberId {
    PhoneNumberId::new(NUMBER)
}

#[actix_web::test]
async fn user_initiated_call_actions_send_the_docs_bodies() {
    let (base, meta, handle) = start();
    let graph = client(&base);
    let answer = CallAnswer::new(number(), CallId::new("wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh"), Sdp::new(ANSWER_SDP)).unwrap();
    graph.pre_accept(&answer).await.unwrap();
    graph.accept(&answer, Some("cdr-17")).await.unwrap();
    graph.reject(&number(), &CallId::new("wacid.R")).await.unwrap();
    graph.terminate(&number(), &CallId::new("wacid.T")).await.unwrap();

    let seen = meta.seen();
    assert_eq!(seen.len(), 4);
    for s in &seen {
        assert_eq!(s.path, format!("/v23.0/{NUMBER}/calls"));
        assert_eq!(s.auth, format!("Bearer {TOKEN}"));
    }
    let session = json!({ "sdp_type": "answer", "sdp": ANSWER_SDP });
    assert_eq!(
        seen[0].body,
        json!({ "messaging_product": "whatsapp", "call_id": "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh", "action": "pre_accept", "session": session })
    );
    assert_eq!(
        seen[1].body,
        json!({ "messaging_product": "whatsapp", "call_id": "wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh", "action": "accept",
                "session": session, "biz_opaque_callback_data": "cdr-17" })
    );
    // §1.2: accept's SDP must be pre_accept's, byte for byte.
    assert_eq!(seen[0].body["session"]["sdp"], seen[1].body["session"]["sdp"]);
    assert_eq!(seen[2].body, json!({ "messaging_product": "whatsapp", "call_id": "wacid.R", "action": "reject" }));
    assert_eq!(seen[3].body, json!({ "messaging_product": "whatsapp", "call_id": "wacid.T", "action": "terminate" }));
    handle.stop(true).await;
}

#[actix_web::test]
async fn business_initiated_connect_returns_the_call_id() {
    let (base, meta, handle) = start();
    let graph = client(&base);
    let offer = Sdp::new(ANSWER_SDP);
    let id = graph.connect(&number(), &WaId::new("16315553602"), &offer, Some("ticket-9")).await.unwrap();
    assert_eq!(id, CallId::new("wacid.NEW"));
    assert_eq!(
        meta.seen()[0].body,
        json!({ "messaging_product": "whatsapp", "to": "16315553602", "action": "connect",
                "session": { "sdp_type": "offer", "sdp": ANSWER_SDP }, "biz_opaque_callback_data": "ticket-9" })
    );

    let err = graph.connect(&number(), &WaId::new("16315550000"), &offer, None).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NoCallPermission));
    assert!(matches!(&err, GraphError::Meta { action: Action::Connect, status: 401, .. }), "{err:?}");
    assert!(err.to_string().contains("138006 (no approved call permission from the user)"), "{err}");

    // Never retried, even on a 503: a second try might place a second call.
    let err = graph.connect(&number(), &WaId::new("16315559999"), &offer, None).await.unwrap_err();
    assert!(matches!(err, GraphError::Http { status: 503, .. }), "{err:?}");
    let tries = meta.seen().iter().filter(|s| s.body["to"] == "16315559999").count();
    assert_eq!(tries, 1);

    let long = "x".repeat(513);
    assert!(matches!(
        graph.connect(&number(), &WaId::new("16315553602"), &offer, Some(&long)).await,
        Err(GraphError::InvalidRequest { .. })
    ));
    handle.stop(true).await;
}

#[actix_web::test]
async fn meta_errors_are_typed_and_idempotent_actions_are_retried() {
    let (base, meta, handle) = start();
    let graph = client(&base);

    let err = graph.terminate(&number(), &CallId::new("wacid.sip")).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::SipEnabled));
    let GraphError::Meta { status, error, .. } = &err else { panic!("{err:?}") };
    assert_eq!(*status, 400);
    assert_eq!(error.fbtrace_id.as_deref(), Some("Az8or2yhqkZfEZ-_4Qn_Bam"));
    assert_eq!(error.details.as_deref(), Some("details of 131055"));

    let answer = CallAnswer::new(number(), CallId::new("wacid.bad-sdp"), Sdp::new(ANSWER_SDP)).unwrap();
    let err = graph.pre_accept(&answer).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidParameter));

    let err = graph.accept(&CallAnswer::new(number(), CallId::new("wacid.unsure"), Sdp::new(ANSWER_SDP)).unwrap(), None).await;
    assert!(matches!(err, Err(GraphError::BadResponse { .. })), "{err:?}");

    // A 503 and Meta's own connection error (138004) are tried again, and the retry succeeds.
    graph.terminate(&number(), &CallId::new("wacid.flaky")).await.unwrap();
    graph.reject(&number(), &CallId::new("wacid.meta-hiccup")).await.unwrap();
    let count = |id: &str| meta.seen().iter().filter(|s| s.body["call_id"] == id).count();
    assert_eq!((count("wacid.flaky"), count("wacid.meta-hiccup"), count("wacid.sip"), count("wacid.bad-sdp")), (2, 2, 1, 1));
    handle.stop(true).await;
}

#[actix_web::test]
async fn timeouts_and_unreachable_graph_are_their_own_errors() {
    let (base, _meta, handle) = start();
    let mut config = GraphConfig {
        base_url: base.clone(),
        access_token: TOKEN.into(),
        timeout: Duration::from_millis(300),
        retries: 0,
        ..GraphConfig::default()
    };
    let graph = GraphClient::new(config.clone()).unwrap();
    let err = graph.terminate(&number(), &CallId::new("wacid.slow")).await.unwrap_err();
    assert!(matches!(err, GraphError::Timeout { action: Action::Terminate, .. }), "{err:?}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.base_url = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    config.retries = 1;
    config.retry_backoff = Duration::from_millis(5);
    let err = GraphClient::new(config).unwrap().terminate(&number(), &CallId::new("wacid.T")).await.unwrap_err();
    assert!(matches!(err, GraphError::Transport { .. }), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
    // The slow answer is still pending; no need to wait for it.
    handle.stop(false).await;
}
