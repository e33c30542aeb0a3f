//! Media. The plain-RTP side: G.711, RFC 4733 DTMF, minimal RTCP, port allocation, the per-call
//! RTP leg task, WAV I/O and tone analysis. The transcoding core for the WhatsApp leg (issue 4):
//! Opus over libopus, streaming resampler, jitter buffer and the two per-call directions (pure,
//! allocation-free), the bridge's decision core, Meta's SDP rules (`wa_sdp`) and the WebRTC leg
//! that answers Meta's offer (`webrtc_leg`). The per-call bridge task that joins the two legs
//! through these is `bridge`; `tap` hands what each side of a bridged call hears to a recorder.

pub mod bridge;
pub mod bridge_core;
pub mod dtmf;
pub mod g711;
pub mod jitter;
mod latch;
mod leg_core;
pub mod opus;
pub mod ports;
pub mod record;
pub mod resample;
pub mod rtcp;
pub mod rtp_header;
pub mod rtp_leg;
mod rx_stats;
pub mod tap;
pub mod tone;
pub mod transcode;
pub mod wa_sdp;
mod wa_sdp_build;
pub mod webrtc_leg;
pub mod wav;

pub use g711::G711;
pub use ports::{PortError, PortPool};
pub use record::RecordTap;
pub use rtp_leg::{
    spawn_rtp_leg, RtpCommand, RtpEvent, RtpLeg, RtpLegError, RtpLegOutcome, RtpLegParams,
    RtpLegStats,
};
