//! TLS server set-up shared by the listeners that terminate TLS themselves (SIP over TLS, the
//! WhatsApp webhook server): rustls with the ring provider, PEM files from the configuration.

use std::sync::Arc;

/// A certificate or key file that cannot be used, with the path and why.
#[derive(Debug, thiserror::Error)]
#[error("TLS certificate or key ({path}): {reason}")]
pub struct TlsFileError {
    pub path: String,
    pub reason: String,
}

/// A rustls server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(cert: &str, key: &str) -> Result<rustls::ServerConfig, TlsFileError> {
    let err = |path: &str, reason: String| TlsFileError { path: path.into(), reason };
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).map_err(|e| err(cert, e.to_string()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| err(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(err(cert, "no PEM certificate in file".into()));
    }
    let key_der = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).map_err(|e| err(key, e.to_string()))?,
    ))
    .map_err(|e| err(key, e.to_string()))?
    .ok_or_else(|| err(key, "no PEM private key in file".into()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| err(cert, e.to_string()))
}
