//! Free loopback ports for the processes a test starts.
//!
//! A port is "free" when we could bind it a moment ago; the child binds it a little
//! later, so another test may grab it in between. Two things shrink that window:
//! every port handed out is remembered for the life of the process (parallel test
//! threads never get the same one twice, even when the kernel would reuse it), and
//! ranges come from a band below the kernel's ephemeral range (32768-60999 on
//! Linux), where no `bind(0)` or outgoing `connect` of anyone else lands, walked
//! by a process-wide cursor that starts at an offset derived from the pid, so
//! separate test binaries (nextest runs one process per test) start apart.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// The band for pairs and ranges: 20000..32000, below the ephemeral range.
const BAND_START: u32 = 20_000;
const BAND_LEN: u32 = 12_000;

/// A UDP port that was free a moment ago, chosen by the kernel (`bind` to port 0).
pub fn free_udp_port() -> u16 {
    pick_kernel_port(|port| UdpSocket::bind(SocketAddrV4::new(LOOPBACK, port)).map(|s| port_of(s.local_addr())))
}

/// A TCP port that was free a moment ago, chosen by the kernel (`bind` to port 0).
pub fn free_tcp_port() -> u16 {
    pick_kernel_port(|port| TcpListener::bind(SocketAddrV4::new(LOOPBACK, port)).map(|s| port_of(s.local_addr())))
}

/// A port `p` such that `p` and `p + 1` are free for both UDP and TCP.
///
/// baresip listens for SIP on `p` (UDP and TCP) and for SIP over TLS on `p + 1`.
pub fn free_port_pair() -> u16 {
    free_block(2, true)
}

/// A port `p` such that `p .. p + len` are all free for UDP: RTP port ranges
/// (baresip `rtp_ports`) and sipp's media ports (`-mp p` binds `p` and `p + 2`).
pub fn free_udp_block(len: u16) -> u16 {
    free_block(len, false)
}

fn pick_kernel_port(bind: impl Fn(u16) -> std::io::Result<u16>) -> u16 {
    for _ in 0..100 {
        let port = bind(0).expect("binding port 0 on 127.0.0.1");
        if reserve(&[port]) {
            return port;
        }
    }
    panic!("no free port after 100 tries: the kernel keeps returning ports this process already handed out");
}

fn free_block(len: u16, tcp_too: bool) -> u16 {
    assert!(len > 0 && u32::from(len) < BAND_LEN, "block length {len} out of range");
    for _ in 0..(BAND_LEN / u32::from(len)) {
        let first = next_candidate(len);
        let ports: Vec<u16> = (first..first + len).collect();
        if ports.iter().all(|&p| bindable(p, tcp_too)) && reserve(&ports) {
            return first;
        }
    }
    panic!("no free block of {len} ports in {BAND_START}..{}", BAND_START + BAND_LEN);
}

/// Advances the shared cursor by `len` and returns the start of a block that does
/// not wrap past the end of the band.
fn next_candidate(len: u16) -> u16 {
    static CURSOR: OnceLock<AtomicU32> = OnceLock::new();
    let cursor = CURSOR.get_or_init(|| AtomicU32::new((std::process::id().wrapping_mul(7919)) % BAND_LEN));
    loop {
        let offset = cursor.fetch_add(u32::from(len), Ordering::Relaxed) % BAND_LEN;
        if offset + u32::from(len) <= BAND_LEN {
            return (BAND_START + offset) as u16;
        }
    }
}

fn bindable(port: u16, tcp_too: bool) -> bool {
    let addr = SocketAddrV4::new(LOOPBACK, port);
    // Both sockets are held at once so that a pair check sees one moment in time.
    let udp = UdpSocket::bind(addr);
    let tcp = if tcp_too { TcpListener::bind(addr).map(Some) } else { Ok(None) };
    udp.is_ok() && tcp.is_ok()
}

/// Records `ports` as handed out; false if any of them already was.
fn reserve(ports: &[u16]) -> bool {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let mut set = HANDED_OUT.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if ports.iter().any(|p| set.contains(p)) {
        return false;
    }
    set.extend(ports.iter().copied());
    true
}

fn port_of(addr: std::io::Result<std::net::SocketAddr>) -> u16 {
    addr.expect("local_addr of a bound socket").port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            assert!(seen.insert(free_udp_port()));
            assert!(seen.insert(free_tcp_port()));
            let pair = free_port_pair();
            assert!(seen.insert(pair) && seen.insert(pair + 1));
            let block = free_udp_block(4);
            for p in block..block + 4 {
                assert!(seen.insert(p), "port {p} handed out twice");
            }
        }
    }

    #[test]
    fn pair_is_bindable_for_udp_and_tcp() {
        let p = free_port_pair();
        for port in [p, p + 1] {
            let addr = SocketAddrV4::new(LOOPBACK, port);
            let _u = UdpSocket::bind(addr).unwrap();
            let _t = TcpListener::bind(addr).unwrap();
        }
    }
}
