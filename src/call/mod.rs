//! Calls: the admin's test call (`whatsip ring`), and WhatsApp calls: the pure state machine of
//! one call (`machine`), the actor that drives it (`actor`) and the registry of live calls.

pub mod actor;
pub mod machine;
pub mod registry;
pub mod ringing;
pub mod test_ring;
