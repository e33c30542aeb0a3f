//! Routing: what rings when a WhatsApp call arrives. Pure cores only, the clock passed in
//! (ARCHITECTURE.md rule 1): `ring` runs one ring group for one call; `schedule` says whether
//! named, timezone-aware weekly hours with holidays are open at an instant; `dialplan` reads and
//! checks the dialplan files and picks a call's route. Availability tracking comes next.

pub mod dialplan;
pub mod live;
pub mod presence;
pub mod ring;
pub mod schedule;
pub mod simulate;
