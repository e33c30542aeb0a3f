//! Plain-RTP media: G.711, RFC 4733 DTMF, minimal RTCP, port allocation, the per-call RTP leg
//! task, WAV I/O and tone analysis.

pub mod dtmf;
pub mod g711;
mod leg_core;
pub mod ports;
pub mod record;
pub mod rtcp;
pub mod rtp_header;
pub mod rtp_leg;
mod rx_stats;
pub mod tone;
pub mod wav;

pub use g711::G711;
pub use ports::{PortError, PortPool};
pub use record::RecordTap;
pub use rtp_leg::{
    spawn_rtp_leg, RtpCommand, RtpEvent, RtpLeg, RtpLegError, RtpLegOutcome, RtpLegParams,
    RtpLegStats,
};
