//! A local stand-in for Meta (ARCHITECTURE.md: Graph endpoints, signed webhooks, a WhatsApp
//! user's WebRTC peer), for tests and the `whatsip sandbox` command. Nothing here needs a Meta
//! account; everything listens on 127.0.0.1.
//!
//! - [`Sandbox`] (`session`): starts the fake Graph API and places calls from WhatsApp users;
//!   [`SandboxCall`] follows one call (states, Graph actions seen, rules broken, what the user
//!   heard) and steers it (hang up, press a key).
//! - `ledger`: the pure core — call states and Meta's rules for `/calls` requests (§1.2, §1.4).
//! - `graph`: the actix-web shell serving `POST /{version}/{PHONE_NUMBER_ID}/calls`.
//! - `webhooks`: Meta-shaped, signed `connect`/`terminate` webhooks and their delivery (retries,
//!   and on purpose: duplicates, reordering, bad signatures).
//! - `wa_peer`: the WhatsApp user's WebRTC peer as Meta presents it.
//! - `cli`: the `whatsip sandbox` command.

pub mod cli;
pub mod config;
pub mod graph;
pub mod ledger;
pub mod session;
pub mod wa_peer;
pub mod webhooks;

pub use config::{SandboxConfig, SandboxConfigError, SandboxNumber};
pub use graph::{BusinessCall, Progress};
pub use ledger::{CallState, Party, RecordedAction, Refusal, Rule, Violation};
pub use session::{CallSpec, Loss, Sandbox, SandboxCall, SandboxError, SandboxEvent, DEFAULT_ANSWER_WINDOW};
pub use wa_peer::{
    Arrival, AudioSource, Heard, PacketKind, PeerTransport, Sent, WaPeer, WaPeerConfig,
    WaPeerError, WaPeerEvent, WaPeerReport,
};
pub use webhooks::{Delivery, Retry, SendError, Signing, WebhookSender};
