//! The live calls, by Meta's call id: starts a [`CallActor`] for each new user-initiated call
//! and routes later webhooks about it there.
//!
//! The webhook ingress has already dropped duplicates, stale events and a connect that follows
//! its own terminate (`whatsapp::ingress`); what reaches here is each call's story once, in order.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::actor::{CallActor, CallDeps, CallEnded, CallMsg};
use crate::ids::CallId;
use crate::whatsapp::event::{Direction, SdpType, WaEvent};
use crate::whatsapp::Numbers;

pub struct CallRegistry {
    deps: Arc<CallDeps>,
    numbers: Numbers,
    calls: HashMap<CallId, Addr<CallActor>>,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Incoming(pub WaEvent);

/// How many calls are live; for the admin API and tests.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct LiveCalls;

/// Ends every live call (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct HangupAll;

impl CallRegistry {
    pub fn new(deps: Arc<CallDeps>, numbers: Numbers) -> CallRegistry {
        CallRegistry { deps, numbers, calls: HashMap::new() }
    }

    /// Starts the registry and feeds it what the webhook server emits.
    pub fn start_with(self, mut events: mpsc::Receiver<WaEvent>) -> Addr<CallRegistry> {
        let addr = self.start();
        let feed = addr.clone();
        actix::spawn(async move {
            while let Some(e) = events.recv().await {
                feed.do_send(Incoming(e));
            }
        });
        addr
    }
}

impl Actor for CallRegistry {
    type Context = Context<Self>;
}

impl Handler<Incoming> for CallRegistry {
    type Result = ();

    fn handle(&mut self, Incoming(event): Incoming, ctx: &mut Context<Self>) {
        match event {
            WaEvent::Connect(connect) => {
                let call_id = connect.call_id.clone();
                if self.calls.contains_key(&call_id) {
                    tracing::debug!(%call_id, "connect for a live call ignored");
                    return;
                }
                let user_offer = matches!(connect.session, Some((SdpType::Offer, _)));
                if connect.direction != Direction::UserInitiated || !user_offer {
                    // Business-initiated calls (Meta's answer to our offer) come with outbound
                    // calling; until then there is no call of ours to give it to.
                    tracing::info!(%call_id, direction = ?connect.direction, "connect without a user's offer ignored");
                    return;
                }
                let Some(number) = self.numbers.get(&connect.phone_number_id).cloned() else {
                    tracing::warn!(%call_id, number = %connect.phone_number_id, "call to a number we do not serve");
                    return;
                };
                let actor = CallActor::new(self.deps.clone(), connect, number, ctx.address().recipient());
                self.calls.insert(call_id, actor.start());
            }
            WaEvent::Terminate(t) => match self.calls.get(&t.call_id) {
                Some(call) => call.do_send(CallMsg::UserHungUp),
                None => tracing::debug!(call_id = %t.call_id, "terminate for a call that is not live"),
            },
            WaEvent::Status(s) => tracing::debug!(call_id = %s.call_id, status = %s.status, "call status"),
            WaEvent::PermissionReply(p) => tracing::info!(?p, "call permission reply (kept with outbound calling)"),
        }
    }
}

impl Handler<CallEnded> for CallRegistry {
    type Result = ();

    fn handle(&mut self, CallEnded(call_id): CallEnded, _: &mut Context<Self>) {
        self.calls.remove(&call_id);
    }
}

impl Handler<LiveCalls> for CallRegistry {
    type Result = usize;

    fn handle(&mut self, _: LiveCalls, _: &mut Context<Self>) -> usize {
        self.calls.len()
    }
}

impl Handler<HangupAll> for CallRegistry {
    type Result = ();

    fn handle(&mut self, _: HangupAll, _: &mut Context<Self>) {
        for call in self.calls.values() {
            call.do_send(CallMsg::Hangup);
        }
    }
}
