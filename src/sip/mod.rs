//! The SIP side: the ezk endpoint with our layers, the registrar, trunks and outgoing call legs.

pub mod digest;
pub mod endpoint;
pub mod feature;
pub mod inbound;
pub mod leg;
pub mod location;
pub mod registrar;
pub mod sdp;
pub mod throttle;
pub mod trunk;

pub use endpoint::{SipError, SipStack};

/// A tag or branch-safe random token (RFC 3261 §19.3: at least 32 bits of randomness).
pub fn random_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}
