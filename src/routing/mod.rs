//! Routing: dialplans, ring groups, schedules and availability, as pure code (time passed in).
pub mod schedule;
