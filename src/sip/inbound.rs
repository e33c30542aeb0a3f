//! Requests that arrive outside any dialog: checked first, then OPTIONS, REGISTER and INVITE
//! (feature codes such as `*78` among them).
//!
//! Two ezk layers: [`CheckLayer`] runs before ezk's dialog and invite layers and answers 400 to
//! anything malformed (so no later code sees a request it cannot read), and [`ServiceLayer`]
//! runs after them and answers what is left.
//!
//! What ezk's transport cannot parse at all (no request line, unreadable Via/From/To/Call-ID/
//! CSeq) it drops before any layer sees it: without those headers there is no address to send
//! a response to that RFC 3261 §18.2.2 would accept.

use super::feature::{Feature, FeatureCodes};
use super::registrar::{Authenticated, Registrar, Reply};
use super::trunk::{trusted_source, Trunk};
use crate::routing::presence::Presence;
use ezk_sip_core::{Endpoint, IncomingRequest, Layer, MayTake};
use ezk_sip_types::header::typed::{Contact, ContentType};
use ezk_sip_types::{Method, Name};
use std::sync::Arc;
use tracing::Instrument;

/// Finds what makes a request unreadable; `None` when it is fine.
pub fn malformation(req: &IncomingRequest) -> Option<(u16, String)> {
    if let Some(raw) = req.headers.get_raw(&Name::MAX_FORWARDS).next() {
        match raw.trim().parse::<u8>() {
            Err(_) => return Some((400, format!("Max-Forwards {raw:?} is not a number 0-255"))),
            Ok(0) if req.line.method != Method::REGISTER && req.line.method != Method::OPTIONS => {
                return Some((483, "Too Many Hops".into()));
            }
            Ok(_) => {}
        }
    }
    if req.base_headers.cseq.method != req.line.method {
        return Some((400, "CSeq method does not match the request line".into()));
    }
    let needs_contact = req.line.method == Method::INVITE;
    let has_contact = req.headers.contains(&Name::CONTACT);
    if needs_contact && !has_contact {
        return Some((400, "INVITE without Contact".into()));
    }
    if has_contact {
        let star = req.headers.get_raw(&Name::CONTACT).any(|v| v.trim() == "*");
        if !star && req.headers.get_named::<Vec<Contact>>().is_err() {
            return Some((400, "Contact header does not parse".into()));
        }
    }
    if !req.body.is_empty() {
        match req.headers.get_named::<ContentType>() {
            Err(_) => return Some((400, "Body without a readable Content-Type".into())),
            Ok(ct) if ct.0.eq_ignore_ascii_case("application/sdp") => {
                if let Err(e) = super::sdp::parse(&req.body) {
                    return Some((400, format!("Bad SDP: {e}")));
                }
            }
            Ok(_) => {}
        }
    }
    None
}

pub struct CheckLayer;

#[async_trait::async_trait]
impl Layer for CheckLayer {
    fn name(&self) -> &'static str {
        "whatsip-check"
    }

    async fn receive(&self, endpoint: &Endpoint, request: MayTake<'_, IncomingRequest>) {
        if request.line.method == Method::ACK {
            return;
        }
        if let Some((code, reason)) = malformation(&request) {
            let mut req = request.take();
            tracing::warn!(method = %req.line.method, source = %req.tp_info.source, code, %reason, "refused malformed request");
            send_reply(endpoint, &mut req, Reply::new(code, reason)).await;
        }
    }
}

pub struct ServiceLayer {
    pub registrar: Arc<Registrar>,
    pub trunks: Arc<Vec<Trunk>>,
    pub presence: Arc<Presence>,
    pub features: FeatureCodes,
}

#[async_trait::async_trait]
impl Layer for ServiceLayer {
    fn name(&self) -> &'static str {
        "whatsip-service"
    }

    fn init(&mut self, endpoint: &mut ezk_sip_core::EndpointBuilder) {
        endpoint.add_allow(Method::OPTIONS);
        endpoint.add_allow(Method::REGISTER);
    }

    async fn receive(&self, endpoint: &Endpoint, request: MayTake<'_, IncomingRequest>) {
        let method = request.line.method.clone();
        if method == Method::ACK || method == Method::CANCEL || method == Method::BYE {
            // Stray ACKs are dropped; CANCEL and BYE for dialogs we do not know get ezk's 481.
            return;
        }
        let mut req = request.take();
        let span = tracing::info_span!("sip", call_id = %req.base_headers.call_id.0, method = %method, source = %req.tp_info.source);
        async {
            let reply = if method == Method::OPTIONS {
                options_reply(endpoint)
            } else if method == Method::REGISTER {
                self.registrar.register(&req).await
            } else if method == Method::INVITE {
                self.invite(&req).await
            } else {
                let allow = endpoint.allowed().iter().map(|a| a.0.to_string()).collect::<Vec<_>>().join(", ");
                Reply::new(405, "Method Not Allowed").with(Name::ALLOW, allow)
            };
            tracing::debug!(code = reply.code, reason = %reply.reason, "answered");
            send_reply(endpoint, &mut req, reply).await;
        }
        .instrument(span)
        .await
    }
}

impl ServiceLayer {
    /// INVITEs from a PBX or a desk phone are feature codes or calls towards WhatsApp. We
    /// authenticate them now; placing business-initiated calls is not built yet, so an
    /// authenticated caller hears a clear "temporarily unavailable" rather than a silent failure.
    async fn invite(&self, req: &IncomingRequest) -> Reply {
        let target = super::registrar::request_uri_user(req).unwrap_or_default();
        if let Some(feature) = self.features.lookup(&target) {
            return self.feature(req, feature).await;
        }
        let source = req.tp_info.source.ip();
        let who = match trusted_source(&self.trunks, source) {
            Some(trunk) => Authenticated::Trunk(trunk.id.clone()),
            None => match self.registrar.authenticate(req, Name::PROXY_AUTHORIZATION, "INVITE") {
                Ok(who) => who,
                Err(reply) => return reply,
            },
        };
        tracing::info!(?who, %target, "call towards WhatsApp refused: business-initiated calling is not enabled");
        Reply::new(480, "WhatsApp calling from phones is not enabled")
            .with(Name::RETRY_AFTER, "3600")
    }

    /// A feature code changes the caller's own settings, so it must know which user calls:
    /// always digest, never trust by source address (that vouches for a PBX, not a user), and
    /// it applies to the authenticated user, whatever the From header claims.
    async fn feature(&self, req: &IncomingRequest, feature: Feature) -> Reply {
        let user = match self.registrar.authenticate(req, Name::PROXY_AUTHORIZATION, "INVITE") {
            Ok(Authenticated::User(user)) => user,
            Ok(Authenticated::Trunk(trunk)) => {
                tracing::warn!(%trunk, ?feature, "feature code from a trunk refused");
                return Reply::new(403, "Feature codes are for whatsip users");
            }
            Err(challenge_or_refusal) => return challenge_or_refusal,
        };
        match self.presence.set_dnd(&user, feature.dnd()).await {
            Ok(()) => {
                tracing::info!(%user, dnd = feature.dnd(), "do-not-disturb set from the phone");
                feature.done_reply()
            }
            Err(e) => {
                tracing::error!(error = %e, %user, "cannot store do-not-disturb");
                Reply::new(500, "Cannot store do-not-disturb")
            }
        }
    }
}

fn options_reply(endpoint: &Endpoint) -> Reply {
    let allow = endpoint.allowed().iter().map(|a| a.0.to_string()).collect::<Vec<_>>().join(", ");
    Reply::new(200, "OK")
        .with(Name::ALLOW, allow)
        .with(Name::ACCEPT, "application/sdp")
}

/// Sends `reply` on the request's own server transaction.
pub async fn send_reply(endpoint: &Endpoint, req: &mut IncomingRequest, reply: Reply) {
    let mut response = endpoint.create_response(req, reply.status(), Some(reply.reason.clone().into()));
    if reply.code > 100 && req.base_headers.to.tag.is_none() {
        // A final response outside a dialog needs a To tag (RFC 3261 §8.2.6.2).
        response.msg.headers.edit(Name::TO, |to: &mut ezk_sip_types::header::typed::FromTo| {
            to.tag = Some(super::random_tag().into());
        }).ok();
    }
    for (name, value) in reply.headers {
        response.msg.headers.insert(name, value);
    }
    let result = if req.line.method == Method::INVITE {
        let tsx = endpoint.create_server_inv_tsx(req);
        if reply.code >= 300 {
            tsx.respond_failure(response).await
        } else {
            // Only failures are sent here; a 2xx to INVITE belongs to a call leg.
            tracing::error!(code = reply.code, "refusing to send a non-failure INVITE reply outside a call");
            Ok(())
        }
    } else {
        endpoint.create_server_tsx(req).respond(response).await
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not send response");
    }
}
