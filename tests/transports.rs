//! SIP over TCP and TLS (TLS is what Meta's SIP mode will use): OPTIONS and REGISTER work on
//! each, with a certificate and key from the configuration.

mod common;

use common::gateway::{Gateway, GatewayConfig};
use std::io::{Read, Write};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn options(local: &str, server: &str, transport: &str) -> String {
    format!(
        "OPTIONS sip:{server};transport={t} SIP/2.0\r\n\
         Via: SIP/2.0/{T} {local};branch=z9hG4bK{b:x}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=1\r\n\
         To: <sip:{server}>\r\n\
         Call-ID: {b:x}@probe\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        t = transport.to_lowercase(),
        T = transport,
        b = common::sip_client::rand_u64(),
    )
}

/// The first complete response head in what a stream has delivered so far. ezk pings each
/// new connection with an RFC 5626 CRLFCRLF keep-alive, which may arrive before the answer.
fn first_response(received: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(received);
    let text = text.trim_start_matches(['\r', '\n']);
    text.contains("\r\n\r\n").then(|| text.to_string())
}

#[test]
fn options_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&GatewayConfig::new(&dir.path().join("data")));
    let mut conn = std::net::TcpStream::connect(gw.sip).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let local = conn.local_addr().unwrap().to_string();
    conn.write_all(options(&local, &gw.sip.to_string(), "TCP").as_bytes()).unwrap();
    let mut received = Vec::new();
    let text = loop {
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed after {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
        if let Some(text) = first_response(&received) {
            break text;
        }
    };
    assert!(text.starts_with("SIP/2.0 200"), "{text}");
}

#[tokio::test]
async fn options_over_tls_with_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let tls_port = common::ports::free_tcp_port();
    let mut cfg = GatewayConfig::new(&dir.path().join("data"));
    cfg.sip_extra = format!(
        "listen_tls = \"127.0.0.1:{tls_port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let gw = Gateway::start(&cfg);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    let local = tcp.local_addr().unwrap().to_string();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake with the configured certificate");
    tls.write_all(options(&local, &format!("127.0.0.1:{tls_port}"), "TLS").as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let text = loop {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "connection closed after {:?}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buf[..n]);
        if let Some(text) = first_response(&received) {
            break text;
        }
    };
    assert!(text.starts_with("SIP/2.0 200"), "{text}\n{}", gw.log_tail());
}

#[test]
fn tls_without_a_readable_certificate_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[sip]\nlisten_tls = \"127.0.0.1:5061\"\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_whatsip")).args(["check", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sip.tls_cert = \"/nonexistent.pem\": no such file"), "{err}");
    assert!(err.contains("sip.tls_key"), "{err}");
}
