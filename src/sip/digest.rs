//! Server-side HTTP digest for SIP (RFC 3261 §22.4, RFC 7616, SHA-256 per RFC 8760).
//!
//! ezk has the client half only. This is the other half: stateless nonces that carry their own
//! issue time and a MAC, so a restart or many phones need no nonce table, and a check that takes
//! the time as a value.

use sha2::{Digest as _, Sha256};
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, input: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(md5::Md5::digest(input.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(input.as_bytes())),
        }
    }
}

/// What a client sent in Authorization / Proxy-Authorization, already parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestAnswer {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: String,
    /// `Some((qop, nc, cnonce))` when the client used qop=auth.
    pub qop: Option<(String, String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("realm does not match")]
    WrongRealm,
    #[error("nonce was not issued by us")]
    ForeignNonce,
    #[error("nonce has expired")]
    StaleNonce,
    #[error("algorithm not offered")]
    UnsupportedAlgorithm,
    #[error("qop not supported")]
    UnsupportedQop,
    #[error("response does not match the password")]
    WrongResponse,
}

/// Issues challenges and checks answers for one realm.
#[derive(Clone)]
pub struct DigestServer {
    realm: String,
    algorithms: Vec<Algorithm>,
    secret: [u8; 32],
    nonce_lifetime_secs: u64,
}

impl DigestServer {
    pub fn new(realm: &str, algorithms: Vec<Algorithm>, secret: [u8; 32]) -> DigestServer {
        DigestServer { realm: realm.into(), algorithms, secret, nonce_lifetime_secs: 300 }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// One header value per offered algorithm, strongest first (RFC 8760 §2.4: a client uses
    /// the first it supports, so SHA-256-capable phones never fall back to MD5).
    pub fn challenges(&self, now_unix: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now_unix);
        self.algorithms
            .iter()
            .map(|alg| {
                let mut h = format!(
                    "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
                    self.realm,
                    nonce,
                    alg.name()
                );
                if stale {
                    h.push_str(", stale=true");
                }
                h
            })
            .collect()
    }

    /// Checks `answer` for a request with `method` against `password`.
    pub fn verify(
        &self,
        now_unix: u64,
        method: &str,
        answer: &DigestAnswer,
        password: &str,
    ) -> Result<(), DigestError> {
        if answer.realm != self.realm {
            return Err(DigestError::WrongRealm);
        }
        let issued = self.nonce_issued_at(&answer.nonce).ok_or(DigestError::ForeignNonce)?;
        let alg = Algorithm::from_name(&answer.algorithm)
            .filter(|a| self.algorithms.contains(a))
            .ok_or(DigestError::UnsupportedAlgorithm)?;
        let ha1 = alg.hash(&format!("{}:{}:{}", answer.username, self.realm, password));
        let ha2 = alg.hash(&format!("{method}:{}", answer.uri));
        let expected = match &answer.qop {
            None => alg.hash(&format!("{ha1}:{}:{ha2}", answer.nonce)),
            Some((qop, nc, cnonce)) if qop.eq_ignore_ascii_case("auth") => {
                alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", answer.nonce))
            }
            Some(_) => return Err(DigestError::UnsupportedQop),
        };
        if !constant_time_eq(expected.as_bytes(), answer.response.to_ascii_lowercase().as_bytes()) {
            return Err(DigestError::WrongResponse);
        }
        // Checked after the password so that a stale answer with the right password is told
        // `stale=true` (RFC 7616 §3.3) and retried silently, while a wrong one is not.
        if now_unix.saturating_sub(issued) > self.nonce_lifetime_secs || issued > now_unix + 5 {
            return Err(DigestError::StaleNonce);
        }
        Ok(())
    }

    fn nonce(&self, now_unix: u64) -> String {
        let ts = format!("{now_unix:016x}");
        format!("{ts}{}", self.mac(&ts))
    }

    fn nonce_issued_at(&self, nonce: &str) -> Option<u64> {
        if nonce.len() != 48 || !nonce.is_ascii() {
            return None;
        }
        let (ts, mac) = nonce.split_at(16);
        if !constant_time_eq(self.mac(ts).as_bytes(), mac.as_bytes()) {
            return None;
        }
        u64::from_str_radix(ts, 16).ok()
    }

    fn mac(&self, ts: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(ts.as_bytes());
        h.update(self.realm.as_bytes());
        let digest = h.finalize();
        let mut out = String::with_capacity(32);
        for b in &digest[..16] {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Computes a client's answer; used by tests here and by the integration tests' raw SIP client.
/// The arguments are the RFC 7616 §3.4.1 inputs, in its order.
#[allow(clippy::too_many_arguments)]
pub fn client_response(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    let ha1 = alg.hash(&format!("{username}:{realm}:{password}"));
    let ha2 = alg.hash(&format!("{method}:{uri}"));
    match qop {
        None => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
        Some((qop, nc, cnonce)) => alg.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> DigestServer {
        DigestServer::new("whatsip", vec![Algorithm::Sha256, Algorithm::Md5], [7; 32])
    }

    fn nonce_of(challenge: &str) -> String {
        challenge.split("nonce=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
    }

    fn answer(alg: Algorithm, nonce: &str, password: &str, qop: bool) -> DigestAnswer {
        let q = qop.then_some(("auth", "00000001", "abcdef"));
        DigestAnswer {
            username: "1001".into(),
            realm: "whatsip".into(),
            nonce: nonce.into(),
            uri: "sip:127.0.0.1".into(),
            response: client_response(alg, "1001", "whatsip", password, "REGISTER", "sip:127.0.0.1", nonce, q),
            algorithm: alg.name().into(),
            qop: q.map(|(a, b, c)| (a.into(), b.into(), c.into())),
        }
    }

    #[test]
    fn rfc2617_md5_vector() {
        // RFC 2617 §3.5 example, with its values.
        let r = client_response(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("auth", "00000001", "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn challenges_offer_sha256_first() {
        let c = server().challenges(1000, false);
        assert_eq!(c.len(), 2);
        assert!(c[0].contains("algorithm=SHA-256"));
        assert!(c[1].contains("algorithm=MD5"));
        assert!(!c[0].contains("stale"));
        assert!(server().challenges(1000, true)[0].ends_with("stale=true"));
    }

    #[test]
    fn right_password_passes_with_and_without_qop_both_algorithms() {
        let s = server();
        let nonce = nonce_of(&s.challenges(1000, false)[0]);
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            for qop in [false, true] {
                s.verify(1010, "REGISTER", &answer(alg, &nonce, "secret", qop), "secret").unwrap();
            }
        }
    }

    #[test]
    fn wrong_password_realm_nonce_and_method_fail() {
        let s = server();
        let nonce = nonce_of(&s.challenges(1000, false)[0]);
        let good = answer(Algorithm::Md5, &nonce, "secret", true);
        assert_eq!(s.verify(1010, "REGISTER", &good, "other"), Err(DigestError::WrongResponse));
        assert_eq!(s.verify(1010, "INVITE", &good, "secret"), Err(DigestError::WrongResponse));
        let mut bad = good.clone();
        bad.realm = "elsewhere".into();
        assert_eq!(s.verify(1010, "REGISTER", &bad, "secret"), Err(DigestError::WrongRealm));
        let forged = format!("{:016x}{}", 1000, "0".repeat(32));
        let bad = answer(Algorithm::Md5, &forged, "secret", false);
        assert_eq!(s.verify(1010, "REGISTER", &bad, "secret"), Err(DigestError::ForeignNonce));
        let other_server = DigestServer::new("whatsip", vec![Algorithm::Md5], [9; 32]);
        assert_eq!(other_server.verify(1010, "REGISTER", &good, "secret"), Err(DigestError::ForeignNonce));
    }

    #[test]
    fn old_nonce_is_stale_only_with_right_password() {
        let s = server();
        let nonce = nonce_of(&s.challenges(1000, false)[0]);
        let good = answer(Algorithm::Sha256, &nonce, "secret", true);
        assert_eq!(s.verify(1301, "REGISTER", &good, "secret"), Err(DigestError::StaleNonce));
        let bad = answer(Algorithm::Sha256, &nonce, "nope", true);
        assert_eq!(s.verify(1301, "REGISTER", &bad, "secret"), Err(DigestError::WrongResponse));
    }

    #[test]
    fn algorithm_not_offered_is_refused() {
        let s = DigestServer::new("whatsip", vec![Algorithm::Sha256], [7; 32]);
        let nonce = nonce_of(&s.challenges(1000, false)[0]);
        let md5 = answer(Algorithm::Md5, &nonce, "secret", false);
        assert_eq!(s.verify(1001, "REGISTER", &md5, "secret"), Err(DigestError::UnsupportedAlgorithm));
    }
}
