//! Counts the RTCP the business sends, so a test can see the pre-accept keep-alive (§5.2, §8
//! item 5). webrtc-rs hands inbound RTCP to its own interceptors and no further, and drops an
//! empty receiver report (our gateway's keep-alive) before any track sees it, because it names
//! no media SSRC; an interceptor is the one place every compound packet passes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

/// A pass-through that counts inbound compound RTCP packets into a shared counter.
pub(crate) struct RtcpCounter {
    seen: Arc<AtomicU64>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl RtcpCounter {
    pub(crate) fn new(seen: Arc<AtomicU64>) -> RtcpCounter {
        RtcpCounter {
            seen,
            reads: VecDeque::new(),
            writes: VecDeque::new(),
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpCounter {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        // An empty compound is webrtc-rs's internal attribute carrier, never wire traffic.
        if matches!(&msg.message.packet, Packet::Rtcp(p) if !p.is_empty()) {
            self.seen.fetch_add(1, Ordering::Relaxed);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for RtcpCounter {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
