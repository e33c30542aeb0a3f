//! A tiny raw SIP-over-UDP client for tests that need many registrations fast or exact bytes
//! on the wire (bursts, malformed messages). Real phones are baresip; this is for the rest.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use whatsip::sip::digest::{client_response, Algorithm};

pub struct RawSip {
    pub socket: UdpSocket,
    pub local: SocketAddr,
    pub server: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct SipResponse {
    pub code: u16,
    pub text: String,
}

impl SipResponse {
    pub fn header(&self, name: &str) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .collect()
    }
}

impl RawSip {
    pub fn new(server: SocketAddr) -> RawSip {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let local = socket.local_addr().unwrap();
        RawSip { socket, local, server }
    }

    pub fn send(&self, msg: &str) {
        self.socket.send_to(msg.as_bytes(), self.server).unwrap();
    }

    /// Waits for a final (or any non-100) response whose Call-ID is `call_id`.
    pub fn recv_final(&self, call_id: &str) -> Option<SipResponse> {
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, _) = self.socket.recv_from(&mut buf).ok()?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
            let resp = SipResponse { code, text };
            let matches = resp.header("Call-ID").iter().any(|c| c == call_id);
            if matches && code >= 200 {
                return Some(resp);
            }
        }
    }

    pub fn register_msg(&self, user: &str, call_id: &str, cseq: u32, expires: u32, auth: Option<&str>) -> String {
        let branch = format!("z9hG4bK{:x}", rand_u64());
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        format!(
            "REGISTER sip:{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{server}>;tag={tag}\r\n\
             To: <sip:{user}@{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             Expires: {expires}\r\n\
             {auth}\
             Content-Length: 0\r\n\r\n",
            server = self.server,
            local = self.local,
            tag = rand_u64(),
        )
    }

    /// An INVITE from `user` (at this socket's address) to `target` at the server, with a PCMU
    /// offer and `auth` as Proxy-Authorization.
    pub fn invite_msg(&self, user: &str, target: &str, call_id: &str, auth: Option<&str>) -> String {
        let auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
        let sdp = "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        format!(
            "INVITE sip:{target}@{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch:x}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{local}>;tag={tag:x}\r\n\
             To: <sip:{target}@{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:{user}@{local}>\r\n\
             {auth}\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{sdp}",
            server = self.server,
            local = self.local,
            branch = rand_u64(),
            tag = rand_u64(),
            len = sdp.len(),
        )
    }

    /// REGISTER with digest auth (MD5 or SHA-256, whichever is offered first that we know).
    /// Returns the final response to the authenticated attempt.
    pub fn register(&self, user: &str, password: &str, expires: u32) -> Option<SipResponse> {
        let call_id = format!("{:x}@test", rand_u64());
        self.send(&self.register_msg(user, &call_id, 1, expires, None));
        let challenge = self.recv_final(&call_id)?;
        if challenge.code != 401 {
            return Some(challenge);
        }
        let www = challenge.header("WWW-Authenticate");
        let first = www.first()?;
        let param = |name: &str| -> String {
            first.split(&format!("{name}=")).nth(1).map(|v| v.trim_start_matches('"').split(['"', ',']).next().unwrap().to_string()).unwrap_or_default()
        };
        let (realm, nonce, alg) = (param("realm"), param("nonce"), param("algorithm"));
        let algorithm = Algorithm::from_name(&alg).unwrap_or(Algorithm::Md5);
        let uri = format!("sip:{}", self.server);
        let response = client_response(algorithm, user, &realm, password, "REGISTER", &uri, &nonce, Some(("auth", "00000001", "c0ffee")));
        let auth = format!(
            "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, qop=auth, nc=00000001, cnonce=\"c0ffee\"",
            algorithm.name()
        );
        self.send(&self.register_msg(user, &call_id, 2, expires, Some(&auth)));
        self.recv_final(&call_id)
    }

    pub fn options(&self) -> Option<SipResponse> {
        let call_id = format!("{:x}@test", rand_u64());
        self.send(&format!(
            "OPTIONS sip:{server} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK{b:x}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:probe@{local}>;tag={t:x}\r\n\
             To: <sip:{server}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            server = self.server,
            local = self.local,
            b = rand_u64(),
            t = rand_u64(),
        ));
        self.recv_final(&call_id)
    }
}

pub fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    t ^ (COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ u64::from(std::process::id())
}
