//! Symmetric RTP and RTCP (RFC 4961): send to wherever the peer's packets really come from,
//! which behind NAT is not the address its SDP names.
//!
//! We latch once, on the first valid packet, and then ignore other sources, so a stray or
//! malicious sender cannot take the stream over later in the call ("RTP bleed"). One source
//! always wins the latch back: the address the peer's own SDP named. When a call forks to
//! several phones on one port, the phone that loses the race may send a few packets before its
//! BYE; latched to it for good, we would drop the winner's audio. The address from the SDP
//! stays untouched in the caller's hands, so decisions made on the negotiated values (rtcp-mux,
//! RFC 5761) keep their meaning after a latch.

use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Latch {
    sdp: SocketAddr,
    dest: SocketAddr,
    latched: bool,
}

/// What [`Latch::admit`] made of a packet's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// The first valid packet: its source is where we send from now on.
    First,
    /// From the latched source.
    Known,
    /// From somewhere else after the latch: not part of this stream.
    Stranger,
}

impl Latch {
    /// Sends to `sdp` until the first packet arrives.
    pub(super) fn new(sdp: SocketAddr) -> Latch {
        Latch { sdp, dest: sdp, latched: false }
    }

    pub(super) fn dest(&self) -> SocketAddr {
        self.dest
    }

    pub(super) fn admit(&mut self, from: SocketAddr) -> Admit {
        if from == self.sdp {
            if self.latched && self.dest != from {
                tracing::info!(sdp = %self.sdp, was = %self.dest, "symmetric RTP: the negotiated source takes the stream back");
            }
            let first = !self.latched;
            self.latched = true;
            self.dest = from;
            return if first { Admit::First } else { Admit::Known };
        }
        if self.latched {
            return if from == self.dest { Admit::Known } else { Admit::Stranger };
        }
        self.latched = true;
        if from != self.dest {
            tracing::info!(sdp = %self.dest, actual = %from, "symmetric RTP: latching to media source");
            self.dest = from;
        }
        Admit::First
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn latches_once_to_the_first_source_and_refuses_others() {
        let mut l = Latch::new(addr("10.0.0.1:4000"));
        assert_eq!(l.dest(), addr("10.0.0.1:4000"));
        assert_eq!(l.admit(addr("192.0.2.7:31000")), Admit::First);
        assert_eq!(l.dest(), addr("192.0.2.7:31000"));
        assert_eq!(l.admit(addr("192.0.2.7:31000")), Admit::Known);
        assert_eq!(l.admit(addr("198.51.100.9:4000")), Admit::Stranger);
        assert_eq!(l.dest(), addr("192.0.2.7:31000"));
    }

    #[test]
    fn the_negotiated_address_takes_the_latch_back() {
        // A forked call: the losing phone's packets arrive first, then the winner's, from the
        // address its SDP named.
        let mut l = Latch::new(addr("10.0.0.1:4000"));
        assert_eq!(l.admit(addr("10.0.0.2:5000")), Admit::First);
        assert_eq!(l.admit(addr("10.0.0.1:4000")), Admit::Known);
        assert_eq!(l.dest(), addr("10.0.0.1:4000"));
        assert_eq!(l.admit(addr("10.0.0.1:4000")), Admit::Known);
        assert_eq!(l.admit(addr("10.0.0.2:5000")), Admit::Stranger);
    }

    #[test]
    fn first_packet_from_the_sdp_address_keeps_it() {
        let mut l = Latch::new(addr("10.0.0.1:4000"));
        assert_eq!(l.admit(addr("10.0.0.1:4000")), Admit::First);
        assert_eq!(l.admit(addr("10.0.0.1:4001")), Admit::Stranger);
    }
}
