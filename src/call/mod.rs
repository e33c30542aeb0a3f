//! Calls: the admin's test call (`whatsip ring`) and the pure state machine of a WhatsApp call
//! (`machine`), which the per-call actor drives.

pub mod machine;
pub mod test_ring;
