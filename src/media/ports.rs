//! RTP/RTCP port pairs from a configured range (RTP even, RTCP = RTP + 1, RFC 3550 §11).
//!
//! The pool keeps only a round-robin cursor: a pair in use is one whose sockets are still
//! bound, and the OS refuses to bind it again, so "in use" needs no bookkeeping of ours that
//! could drift from the truth. Round-robin rather than lowest-free avoids handing a just-freed
//! port to the next call while stray packets of the previous call may still arrive there.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use thiserror::Error;
use tokio::net::UdpSocket;

#[derive(Debug, Error)]
pub enum PortError {
    #[error("port range {min}-{max} holds no even/odd pair")]
    EmptyRange { min: u16, max: u16 },
    #[error("all {tried} RTP port pairs are in use")]
    Exhausted { tried: usize },
    #[error("binding {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

#[derive(Debug)]
pub struct PortPool {
    /// Lowest even RTP port.
    first: u16,
    /// Number of pairs in the range.
    pairs: usize,
    cursor: AtomicUsize,
}

impl PortPool {
    /// Pairs whose both ports lie in the inclusive range `[min, max]`.
    pub fn new(min: u16, max: u16) -> Result<PortPool, PortError> {
        let first = min
            .checked_add(min % 2)
            .ok_or(PortError::EmptyRange { min, max })?;
        if max <= first {
            return Err(PortError::EmptyRange { min, max });
        }
        // RTP ports first, first+2, ..., up to the last even port whose RTCP port is <= max.
        let pairs = usize::from((max - first - 1) / 2) + 1;
        Ok(PortPool {
            first,
            pairs,
            cursor: AtomicUsize::new(0),
        })
    }

    pub fn pair_count(&self) -> usize {
        self.pairs
    }

    /// The RTP port the next allocation tries first.
    fn port_at(&self, index: usize) -> u16 {
        // Cannot overflow: index < pairs, and new() derived pairs from a range inside u16.
        self.first + 2 * (index % self.pairs) as u16
    }

    /// Binds the next free pair on `ip`: `(rtp, rtcp, rtp_port)`.
    ///
    /// Pairs that fail with "address in use" (ours or another process's) are skipped; any
    /// other bind error (e.g. `ip` is not local) fails at once, as every pair would fail alike.
    pub async fn bind_pair(&self, ip: IpAddr) -> Result<(UdpSocket, UdpSocket, u16), PortError> {
        for _ in 0..self.pairs {
            let port = self.port_at(self.cursor.fetch_add(1, Ordering::Relaxed));
            let rtp_addr = SocketAddr::new(ip, port);
            let rtp = match UdpSocket::bind(rtp_addr).await {
                Ok(s) => s,
                Err(e) if skippable(&e) => continue,
                Err(source) => {
                    return Err(PortError::Bind {
                        addr: rtp_addr,
                        source,
                    })
                }
            };
            let rtcp_addr = SocketAddr::new(ip, port + 1);
            match UdpSocket::bind(rtcp_addr).await {
                Ok(rtcp) => return Ok((rtp, rtcp, port)),
                Err(e) if skippable(&e) => continue, // rtp socket closes as it drops
                Err(source) => {
                    return Err(PortError::Bind {
                        addr: rtcp_addr,
                        source,
                    })
                }
            }
        }
        Err(PortError::Exhausted { tried: self.pairs })
    }
}

fn skippable(e: &io::Error) -> bool {
    // Privileged ports in a misconfigured range fail with PermissionDenied: skip those too.
    matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn range_arithmetic() {
        let p = PortPool::new(10000, 10009).unwrap();
        assert_eq!((p.first, p.pair_count()), (10000, 5)); // 10008/10009 is the last pair
        let p = PortPool::new(10001, 10008).unwrap();
        assert_eq!((p.first, p.pair_count()), (10002, 3)); // 10008 has no RTCP port in range
        assert_eq!(p.port_at(3), 10002);
        let p = PortPool::new(65534, 65535).unwrap();
        assert_eq!((p.first, p.pair_count()), (65534, 1));
        assert!(PortPool::new(10000, 10000).is_err());
        assert!(PortPool::new(10001, 10002).is_err());
        assert!(PortPool::new(65535, 65535).is_err());
        assert!(PortPool::new(20000, 10000).is_err());
    }

    #[tokio::test]
    async fn binds_even_odd_pairs_round_robin() {
        let pool = PortPool::new(23100, 23105).unwrap();
        let (rtp, rtcp, port) = pool.bind_pair(LOCAL).await.unwrap();
        assert_eq!(port % 2, 0);
        assert_eq!(rtp.local_addr().unwrap().port(), port);
        assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
        drop((rtp, rtcp));
        // Freed, but round-robin moves on to the next pair anyway.
        let (_a, _b, next) = pool.bind_pair(LOCAL).await.unwrap();
        assert_eq!(next, port + 2);
    }

    #[tokio::test]
    async fn skips_pairs_in_use_and_reports_exhaustion() {
        let pool = PortPool::new(23200, 23205).unwrap();
        // Someone else holds the RTCP port of the first pair.
        let squatter = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 23201)).unwrap();
        let (_r1, _c1, p1) = pool.bind_pair(LOCAL).await.unwrap();
        assert_eq!(p1, 23202);
        let (_r2, _c2, p2) = pool.bind_pair(LOCAL).await.unwrap();
        assert_eq!(p2, 23204);
        // Everything is taken: the pool must not hand out a pair that is in use.
        assert!(matches!(
            pool.bind_pair(LOCAL).await,
            Err(PortError::Exhausted { tried: 3 })
        ));
        drop(squatter);
        let (_r3, _c3, p3) = pool.bind_pair(LOCAL).await.unwrap();
        assert_eq!(p3, 23200);
    }

    #[tokio::test]
    async fn non_local_address_fails_fast() {
        let pool = PortPool::new(23300, 23399).unwrap();
        // TEST-NET-1 (RFC 5737) is never assigned to this host; binding it is refused at once.
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert!(matches!(
            pool.bind_pair(ip).await,
            Err(PortError::Bind { .. })
        ));
    }
}
