//! whatsip: rings the SIP desk phones and PBXs a business already has with WhatsApp Business
//! calls. See ARCHITECTURE.md in the shared docs for the map.

pub mod api;
pub mod call;
pub mod config;
pub mod ids;
pub mod logging;
pub mod media;
pub mod routing;
pub mod sandbox;
pub mod serve;
pub mod sip;
pub mod store;
pub mod tls;
pub mod whatsapp;
