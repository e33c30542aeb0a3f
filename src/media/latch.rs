//! Symmetric RTP and RTCP (RFC 4961): send to wherever the peer's packets really come from,
//! which behind NAT is not the address its SDP names.
//!
//! We latch once, on the first valid packet, and then ignore other sources, so a stray or
//! malicious sender cannot take the stream over later in the call ("RTP bleed"). The address
//! from the SDP stays untouched in the caller's hands, so decisions made on the negotiated
//! values (rtcp-mux, RFC 5761) keep their meaning after a latch.

use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Latch {
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
        Latch { dest: sdp, latched: false }
    }

    pub(super) fn dest(&self) -> SocketAddr {
        self.dest
    }

    pub(super) fn admit(&mut self, from: SocketAddr) -> Admit {
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
    fn first_packet_from_the_sdp_address_keeps_it() {
        let mut l = Latch::new(addr("10.0.0.1:4000"));
        assert_eq!(l.admit(addr("10.0.0.1:4000")), Admit::First);
        assert_eq!(l.admit(addr("10.0.0.1:4001")), Admit::Stranger);
    }
}
