//! `X-Hub-Signature-256` (§2.1): `sha256=<hex>` of HMAC-SHA256 over the raw request body, keyed
//! with the app secret. Checked before the body is even parsed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header Meta signs its POSTs with.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no X-Hub-Signature-256 header")]
    Missing,
    #[error("X-Hub-Signature-256 is not sha256=<64 hex digits>")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body (wrong app_secret, or the body was altered)")]
    Mismatch,
}

/// Checks a POST's signature header against its raw body. The comparison is constant-time
/// (`Mac::verify_slice`), so timing tells an attacker nothing about the expected value.
pub fn verify(app_secret: &[u8], header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim();
    let hex_part = header
        .get(..7)
        .filter(|prefix| prefix.eq_ignore_ascii_case("sha256="))
        .map(|_| &header[7..])
        .ok_or(SignatureError::Malformed)?;
    let given = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    mac(app_secret, body).verify_slice(&given).map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body`: for tests and the sandbox that plays Meta.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(app_secret, body).finalize().into_bytes()))
}

fn mac(app_secret: &[u8], body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // RFC 4231 §4.3 test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(sign(b"Jefe", b"what do ya want for nothing?"), expected);
        assert_eq!(verify(b"Jefe", Some(expected), b"what do ya want for nothing?"), Ok(()));
        assert_eq!(verify(b"Jefe", Some(&expected.to_uppercase()), b"what do ya want for nothing?"), Ok(()));
    }

    #[test]
    fn refusals() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let good = sign(b"secret", body);
        assert_eq!(verify(b"secret", None, body), Err(SignatureError::Missing));
        assert_eq!(verify(b"secret", Some(""), body), Err(SignatureError::Malformed));
        assert_eq!(verify(b"secret", Some(&good[7..]), body), Err(SignatureError::Malformed));
        assert_eq!(verify(b"secret", Some("sha256=zz"), body), Err(SignatureError::Malformed));
        assert_eq!(verify(b"secret", Some(&good[..good.len() - 2]), body), Err(SignatureError::Malformed));
        assert_eq!(verify(b"other", Some(&good), body), Err(SignatureError::Mismatch));
        let mut altered = body.to_vec();
        altered.push(b' ');
        assert_eq!(verify(b"secret", Some(&good), &altered), Err(SignatureError::Mismatch));
        assert_eq!(verify(b"secret", Some(&good), body), Ok(()));
    }
}
