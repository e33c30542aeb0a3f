//! sled has reports of losing data when a process dies mid-write. whatsip flushes a
//! registration before it answers 200; this kills the gateway with SIGKILL in the middle of a
//! burst of REGISTERs and checks every registration that got its 200 is there after restart.

mod common;

use common::gateway::{Gateway, GatewayConfig};
use common::sip_client::RawSip;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn registrations_confirmed_before_sigkill_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.users = (0..400).map(|i| (format!("u{i:03}"), format!("pw-{i:03}"))).collect();
    let mut gw = Gateway::start(&cfg);

    for round in 0..3 {
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (confirmed, stop, server) = (confirmed.clone(), stop.clone(), gw.sip);
                std::thread::spawn(move || {
                    let phone = RawSip::new(server);
                    let mut i = w;
                    while !stop.load(Ordering::Relaxed) && i < 400 {
                        let user = format!("u{i:03}");
                        if let Some(r) = phone.register(&user, &format!("pw-{i:03}"), 3600) {
                            if r.code == 200 {
                                confirmed.lock().unwrap().push(user);
                            }
                        }
                        i += 4;
                    }
                })
            })
            .collect();
        // Let the burst get going, then kill the gateway under it.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while confirmed.lock().unwrap().len() < 40 + round * 40 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        gw.kill();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        let confirmed = confirmed.lock().unwrap().clone();
        assert!(confirmed.len() >= 40, "burst too small to prove anything: {}", confirmed.len());

        gw.restart_after_kill();
        let stored = gw.registered_users();
        let missing: Vec<_> = confirmed.iter().filter(|u| !stored.contains(u)).collect();
        eprintln!("round {round}: {} confirmed before SIGKILL, {} stored after restart", confirmed.len(), stored.len());
        assert!(missing.is_empty(), "lost after SIGKILL: {missing:?}");
    }
}
