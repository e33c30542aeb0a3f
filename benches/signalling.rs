//! Signalling and media costs that matter for the SIP side, printed as figures:
//!
//! - digest verification per REGISTER (both algorithms),
//! - location service: applying a REGISTER, looking up a user,
//! - G.711 encode + decode of one 20 ms frame,
//! - end to end: authenticated REGISTERs per second through a running gateway, each flushed
//!   to sled before its 200 OK, with median and p99 latency.
//!
//! `cargo bench --bench signalling`. Figures, not assertions: these machines are small and
//! noisy, so nothing here fails on a number.

#[path = "../tests/common/sip_client.rs"]
#[allow(dead_code)]
mod sip_client;

use std::hint::black_box;
use std::time::{Duration, Instant};
use whatsip::ids::UserName;
use whatsip::media::g711::G711;
use whatsip::sip::digest::{client_response, Algorithm, DigestAnswer, DigestServer};
use whatsip::sip::location::{Contacts, ExpiryPolicy, Location, RegisterRequest};

fn per_op(label: &str, n: u32, mut f: impl FnMut(u32)) {
    // Five runs, report the median: one run is noise on a 2-core machine.
    let mut runs: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for i in 0..n {
                f(i);
            }
            t.elapsed() / n
        })
        .collect();
    runs.sort();
    println!("{label:<44} {:>10.2} µs/op (median of 5 × {n})", runs[2].as_secs_f64() * 1e6);
}

fn main() {
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let server = DigestServer::new("whatsip", vec![alg], [1; 32]);
        let nonce = server.challenges(1_000, false)[0].split("nonce=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let uri = "sip:127.0.0.1";
        let answer = DigestAnswer {
            username: "1001".into(),
            realm: "whatsip".into(),
            nonce: nonce.clone(),
            uri: uri.into(),
            response: client_response(alg, "1001", "whatsip", "secret", "REGISTER", uri, &nonce, Some(("auth", "00000001", "abc"))),
            algorithm: alg.name().into(),
            qop: Some(("auth".into(), "00000001".into(), "abc".into())),
        };
        per_op(&format!("digest verify ({})", alg.name()), 20_000, |_| {
            server.verify(1_001, "REGISTER", black_box(&answer), "secret").unwrap();
        });
    }

    let policy = ExpiryPolicy { min: 60, max: 3600, default: 3600 };
    let mut loc = Location::default();
    let mut cseq = 0;
    per_op("location: REGISTER (10k users, 2 contacts)", 20_000, |i| {
        let (user, phone) = (i % 10_000, (i / 10_000) % 2);
        cseq += 1;
        let req = RegisterRequest {
            user: UserName::new(format!("u{user}")),
            contacts: Contacts::List(vec![(format!("sip:u{user}@10.0.{phone}.1:5060"), None)]),
            expires_header: Some(600),
            call_id: format!("c{user}-{phone}"),
            cseq,
            source: "10.0.0.1:5060".into(),
            transport: "udp".into(),
            user_agent: None,
        };
        black_box(loc.register(1_000, &req, policy).unwrap());
    });
    per_op("location: lookup", 100_000, |i| {
        black_box(loc.lookup(&UserName::new(format!("u{}", i % 10_000)), 1_000));
    });

    let pcm: Vec<i16> = (0..160).map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16).collect();
    let (mut bytes, mut back) = ([0u8; 160], [0i16; 160]);
    for codec in [G711::Pcmu, G711::Pcma] {
        per_op(&format!("{} encode+decode, 20 ms frame", codec.encoding_name()), 200_000, |_| {
            codec.encode(black_box(&pcm), &mut bytes);
            codec.decode(black_box(&bytes), &mut back);
        });
    }

    register_throughput();
}

/// Starts the gateway binary with 2000 users and registers them all from 4 threads.
fn register_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let sip_port = free_port();
    let api_port = free_port();
    let mut cfg = format!(
        "data_dir = \"{}\"\n[log]\nfilter = \"warn\"\n[sip]\nlisten_udp = \"127.0.0.1:{sip_port}\"\nlisten_tcp = \"\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\ntoken = \"bench-token-0123456789\"\n",
        dir.path().join("data").display()
    );
    const USERS: u32 = 2000;
    for i in 0..USERS {
        cfg.push_str(&format!("[[sip.users]]\nname = \"b{i}\"\npassword = \"pass{i}\"\n"));
    }
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_whatsip"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let api: std::net::SocketAddr = format!("127.0.0.1:{api_port}").parse().unwrap();
    while std::net::TcpStream::connect(api).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("whatsip exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let server: std::net::SocketAddr = format!("127.0.0.1:{sip_port}").parse().unwrap();
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let phone = sip_client::RawSip::new(server);
                let mut latencies = Vec::new();
                for i in (t..USERS).step_by(4) {
                    let t0 = Instant::now();
                    let r = phone.register(&format!("b{i}"), &format!("pass{i}"), 3600).expect("answer");
                    assert_eq!(r.code, 200);
                    latencies.push(t0.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "REGISTER end to end (challenge + auth + flush): {:.0}/s from 4 clients; latency p50 {:.2} ms, p99 {:.2} ms ({} registrations)",
        f64::from(USERS) / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        USERS
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
