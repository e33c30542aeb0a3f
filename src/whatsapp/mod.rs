//! Meta's side in Graph mode (docs/whatsapp-calling-api.md §1, §2): the webhook calls arrive on
//! and the Graph client whatsip acts with.
//!
//! - [`webhook`]: the HTTP server (handshake, signature, parse, queue) — a thin shell;
//! - [`ingress`]: the pure reorder/dedupe core between the webhook and the call registry;
//! - [`model`]: Meta's webhook JSON, read leniently, into [`WaEvent`]s;
//! - [`graph`]: `pre_accept`, `accept`, `reject`, `terminate`, `connect`, with typed errors;
//! - [`signature`]: `X-Hub-Signature-256`; [`codes`]: Meta's calling error codes.

pub mod codes;
pub mod event;
pub mod graph;
pub mod ingress;
pub mod model;
pub mod signature;
pub mod webhook;

pub use codes::ErrorCode;
pub use event::{
    CallConnect, CallStatus, CallStatusUpdate, CallTerminate, Direction, PermissionContext, PermissionReply,
    PermissionResponse, PermissionSource, ReportedError, Sdp, SdpType, TerminateStatus, WaEvent,
};
pub use graph::{Action, CallAnswer, GraphClient, GraphConfig, GraphError, MetaError};
pub use ingress::{Ingress, IngressConfig, Verdict};
pub use webhook::{server, WebhookConfig, WebhookError, WebhookServer};

use crate::config::Settings;
use crate::ids::PhoneNumberId;
use std::collections::BTreeMap;

/// One configured business number (`[[whatsapp.numbers]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessNumber {
    pub phone_number_id: PhoneNumberId,
    pub display_number: String,
}

/// The configured business numbers, by Meta's id.
#[derive(Debug, Clone, Default)]
pub struct Numbers(BTreeMap<PhoneNumberId, BusinessNumber>);

impl Numbers {
    /// From validated settings.
    pub fn from_settings(settings: &Settings) -> Numbers {
        Numbers(
            settings
                .whatsapp
                .numbers
                .iter()
                .map(|n| {
                    let id = PhoneNumberId::new(&n.phone_number_id);
                    (id.clone(), BusinessNumber { phone_number_id: id, display_number: n.display_number.clone() })
                })
                .collect(),
        )
    }

    pub fn get(&self, id: &PhoneNumberId) -> Option<&BusinessNumber> {
        self.0.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &BusinessNumber> {
        self.0.values()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
