//! Routing: what rings when a WhatsApp call arrives. Pure cores only, the clock passed in
//! (ARCHITECTURE.md rule 1): `ring` runs one ring group for one call. Dialplans, schedules and
//! availability tracking come later and feed `ring` plain data.

pub mod ring;
