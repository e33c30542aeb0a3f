//! Shared integration-test harness: the real gateway and real peers (baresip, sipp) on
//! 127.0.0.1. Every process a test starts is owned by a guard that kills and reaps it when
//! dropped, also when the test panics. Each test binary uses only part of it.
#![allow(dead_code)]

pub mod audio;
pub mod baresip;
pub mod ctrl;
pub mod gateway;
pub mod meta_peer;
pub mod pesq;
pub mod ports;
pub mod process;
pub mod sip_client;
pub mod sipp;
