//! Routing: what rings when a WhatsApp call arrives. Pure cores only, the clock passed in
//! (ARCHITECTURE.md rule 1): `ring` runs one ring group for one call; `schedule` says whether
//! named, timezone-aware weekly hours with holidays are open at an instant; `dialplan` reads and
//! checks the dialplan files and picks a call's route; `presence` keeps who can ring (registered,
//! busy, do-not-disturb) and the ring memory between calls, the shell state those cores are fed;
//! `live` holds the plan the running gateway routes by and reloads it.

pub mod dialplan;
pub mod live;
pub mod presence;
pub mod ring;
pub mod schedule;
pub mod simulate;
