//! Calls. Today: the admin's test call (`whatsip ring`). The per-call actor around a pure call
//! state machine arrives with inbound WhatsApp calls.

pub mod test_ring;
