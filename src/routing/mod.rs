//! Routing: what rings when a WhatsApp call arrives. Pure cores only, the clock passed in
//! (ARCHITECTURE.md rule 1): `ring` runs one ring group for one call; `schedule` says whether
//! named, timezone-aware weekly hours with holidays are open at an instant. Dialplan files and
//! availability tracking come next and feed both plain data.

pub mod ring;
pub mod schedule;
