//! How fast the gateway reacts to a WhatsApp call: from the moment Meta's connect webhook is
//! POSTed to (a) our `pre_accept` reaching Graph and (b) our INVITE reaching the phone. The
//! target is p99 under 20 ms each, excluding Meta's and the phone's own time.
//!
//! Everything runs on loopback in this process: the real gateway (`whatsip::serve::run` on its
//! own thread, release build), the sandbox as Meta (Graph endpoints + signed webhooks + a
//! WhatsApp user's WebRTC peer), and a bare UDP "PBX" behind a trunk that stamps each INVITE
//! and answers 486 Busy 200 ms later, so every call ends with a `reject` and the next starts.
//! The user's offer (ICE gathering) is made before the clock starts.
//!
//! Run: `cargo bench --bench inbound` (`INBOUND_BENCH_CALLS`, default 200).

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use whatsip::config::Settings;
use whatsip::ids::{PhoneNumberId, WaId};
use whatsip::sandbox::{CallSpec, CallState, Sandbox, SandboxConfig, SandboxNumber};
use whatsip::whatsapp::graph::Action;

const NUMBER_ID: &str = "106540352242922";
const BUSY_AFTER: Duration = Duration::from_millis(200);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The PBX: stamps each INVITE's arrival (by Call-ID) and refuses it with 486.
fn run_pbx(socket: UdpSocket, arrivals: Arc<Mutex<Vec<(String, SystemTime)>>>) {
    let mut buf = [0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf) else { return };
        let at = SystemTime::now();
        let msg = String::from_utf8_lossy(&buf[..n]).to_string();
        if !msg.starts_with("INVITE ") {
            continue; // ACKs for our 486
        }
        let header = |name: &str| {
            msg.lines()
                .filter(|l| l.len() > name.len() && l[..name.len()].eq_ignore_ascii_case(name) && l[name.len()..].starts_with(':'))
                .map(|l| l[name.len() + 1..].trim().to_owned())
                .collect::<Vec<_>>()
        };
        let call_id = header("Call-ID").pop().unwrap_or_default();
        if !arrivals.lock().unwrap().iter().any(|(c, _)| *c == call_id) {
            arrivals.lock().unwrap().push((call_id.clone(), at));
        }
        let mut reply = String::from("SIP/2.0 486 Busy Here\r\n");
        for via in header("Via") {
            reply.push_str(&format!("Via: {via}\r\n"));
        }
        for name in ["From", "Call-ID", "CSeq"] {
            if let Some(v) = header(name).pop() {
                reply.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        if let Some(to) = header("To").pop() {
            reply.push_str(&format!("To: {to};tag=pbx1\r\n"));
        }
        reply.push_str("Content-Length: 0\r\n\r\n");
        // Busy only after a while, as a phone would ring first: an instant 486 would end the
        // call before our WebRTC answer exists, and there would be no pre_accept to time.
        let socket = socket.try_clone().expect("clone the PBX socket");
        std::thread::spawn(move || {
            std::thread::sleep(BUSY_AFTER);
            let _ = socket.send_to(reply.as_bytes(), from);
        });
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn show(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{what:<34} n={:<4} p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.9),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(0.0)
    );
}

fn main() {
    let calls: usize = std::env::var("INBOUND_BENCH_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let pbx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let pbx_addr: SocketAddr = pbx.local_addr().unwrap();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let pbx_arrivals = arrivals.clone();
    std::thread::spawn(move || run_pbx(pbx, pbx_arrivals));

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (webhook_port, sip_port, api_port) = (free_port(), free_port(), free_port());
    let numbers = vec![SandboxNumber { phone_number_id: PhoneNumberId::new(NUMBER_ID), display_number: "+15550100".into() }];
    let webhook_url = format!("http://127.0.0.1:{webhook_port}/webhook");
    let sandbox = rt
        .block_on(Sandbox::start(SandboxConfig::local(webhook_url, "bench-app-secret-0123", "bench-access-token-0123", numbers)))
        .expect("sandbox");
    let config = format!(
        r#"data_dir = "{data}"
[log]
filter = "error"
[sip]
listen_udp = "127.0.0.1:{sip_port}"
listen_tcp = ""
[[sip.trunks]]
name = "pbx"
address = "{pbx_addr}"
[webrtc]
port_min = 41000
port_max = 41999
[whatsapp]
app_secret = "bench-app-secret-0123"
verify_token = "bench-verify"
access_token = "bench-access-token-0123"
graph_base_url = "{graph}"
webhook_listen = "127.0.0.1:{webhook_port}"
[[whatsapp.numbers]]
phone_number_id = "{NUMBER_ID}"
display_number = "+15550100"
target = "trunk:pbx/2001"
[api]
listen = "127.0.0.1:{api_port}"
token = "bench-token-0123456789"
"#,
        data = dir.path().join("data").display(),
        graph = sandbox.graph_base_url(),
    );
    let path = dir.path().join("whatsip.toml");
    std::fs::write(&path, config).unwrap();
    let settings = Settings::load(Some(&path)).unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || whatsip::serve::run(settings));
    rt.block_on(async {
        // The gateway is up once its webhook server answers.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", webhook_port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (mut to_pre_accept, mut to_invite) = (Vec::new(), Vec::new());
        for i in 0..calls + 5 {
            let mut spec = CallSpec::new(PhoneNumberId::new(NUMBER_ID));
            spec.from = WaId::new(format!("1555{:07}", i));
            let call = sandbox.place_call(spec).await.expect("call placed");
            call.wait_for_state(CallState::Rejected, Duration::from_secs(10)).await.expect("the busy PBX makes the gateway reject");
            let sent = call.connect_sent_at();
            // The first few warm up connection pools and caches.
            if i < 5 {
                continue;
            }
            if let Some(pre) = call.actions().iter().find(|a| a.action == Some(Action::PreAccept)) {
                to_pre_accept.push(pre.at.duration_since(sent).unwrap_or_default().as_secs_f64() * 1000.0);
            }
            let invite_at = arrivals.lock().unwrap().last().map(|(_, at)| *at);
            if let Some(at) = invite_at {
                to_invite.push(at.duration_since(sent).unwrap_or_default().as_secs_f64() * 1000.0);
            }
        }
        println!("inbound bench: {calls} calls, one at a time, on loopback (release build)");
        show("connect webhook -> pre_accept", to_pre_accept);
        show("connect webhook -> INVITE at PBX", to_invite);
        if !sandbox.violations().is_empty() {
            println!("Meta's rules broken: {:?}", sandbox.violations());
        }
    });
    std::process::exit(0);
}
