//! A local stand-in for Meta (ARCHITECTURE.md: Graph endpoints, signed webhooks, a WhatsApp
//! user's WebRTC peer), for tests and the `sandbox` command. So far: the WhatsApp user's peer.

pub mod wa_peer;

pub use wa_peer::{
    Arrival, AudioSource, Heard, PacketKind, PeerTransport, Sent, WaPeer, WaPeerConfig,
    WaPeerError, WaPeerEvent, WaPeerReport,
};
