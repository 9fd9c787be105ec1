//! The server certificate: the configured files, or a self-signed one for the hostname made
//! once and kept in the data folder.

use std::path::{Path, PathBuf};

use axum_server::tls_rustls::RustlsConfig;

use crate::config::Settings;
use crate::crypto::write_private;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot load the certificate {cert} and key {key}: {source}")]
    Load { cert: PathBuf, key: PathBuf, source: std::io::Error },
}

/// The certificate and key files to serve, generating them on first start when none are set.
pub fn certificate_files(settings: &Settings) -> Result<(PathBuf, PathBuf), TlsError> {
    let https = &settings.transport.https;
    if let (Some(cert), Some(key)) = (&https.cert_file, &https.key_file) {
        return Ok((cert.clone(), key.clone()));
    }
    let dir = settings.data_dir();
    let (cert, key) = (dir.join("tls-cert.pem"), dir.join("tls-key.pem"));
    if !cert.exists() || !key.exists() {
        generate(&settings.server.hostname, &cert, &key)?;
    }
    Ok((cert, key))
}

fn generate(hostname: &str, cert: &Path, key: &Path) -> Result<(), TlsError> {
    let mut names = vec![hostname.to_owned()];
    for extra in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n == extra) {
            names.push(extra.to_owned());
        }
    }
    let generated = rcgen::generate_simple_self_signed(names)?;
    let write = |path: &Path, text: String| {
        let _ = std::fs::remove_file(path);
        write_private(path, text.as_bytes())
            .map_err(|source| TlsError::Write { path: path.to_owned(), source })
    };
    write(key, generated.signing_key.serialize_pem())?;
    write(cert, generated.cert.pem())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for {hostname}");
    Ok(())
}

/// Loads the rustls configuration (rustls defaults: TLS 1.2 and 1.3, modern suites).
pub async fn rustls_config(settings: &Settings) -> Result<RustlsConfig, TlsError> {
    let (cert, key) = certificate_files(settings)?;
    RustlsConfig::from_pem_file(&cert, &key).await.map_err(|source| TlsError::Load { cert, key, source })
}
