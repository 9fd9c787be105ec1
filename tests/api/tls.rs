//! `[transport.https] enabled = true` without certificate files: a self-signed certificate is
//! generated once, stored in the data folder and reused on restart.

use reqwest::tls::TlsInfo;
use reqwest::StatusCode;

use crate::helpers::{spawn_app, ConfigOverrides, TestApp};

async fn peer_certificate(app: &TestApp) -> Vec<u8> {
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response
        .extensions()
        .get::<TlsInfo>()
        .and_then(TlsInfo::peer_certificate)
        .expect("a TLS peer certificate")
        .to_vec()
}

#[tokio::test]
async fn https_serves_a_generated_certificate_and_keeps_it_across_restarts() {
    let mut app = spawn_app(ConfigOverrides { https: true, ..ConfigOverrides::renewal_off() }).await;
    assert!(app.base_url.starts_with("https://"), "{}", app.base_url);
    let client = app.register_client("tls-client").await;
    let tokens = app.token_admin(&client, "openid").await;
    let first = peer_certificate(&app).await;

    app.kill_and_restart().await;

    assert_eq!(peer_certificate(&app).await, first, "the certificate was regenerated");
    assert!(app.is_active(&tokens.access_token).await);
}

/// Runs `openssl s_client` with one protocol version; `None` when there is no openssl command.
fn handshake(authority: &str, version_flag: &str) -> Option<bool> {
    let output = std::process::Command::new("openssl")
        .args(["s_client", "-connect", authority, version_flag, "-servername", "localhost"])
        // The client must be willing to speak old versions, so that a refusal is the server's.
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    // A finished handshake prints the negotiated protocol and a cipher other than "(NONE)".
    Some(output.status.success() && text.contains("Cipher is") && !text.contains("Cipher is (NONE)"))
}

#[tokio::test]
async fn tls_1_1_is_refused_and_tls_1_2_and_1_3_are_served() {
    let app = spawn_app(ConfigOverrides { https: true, ..ConfigOverrides::renewal_off() }).await;
    let authority = app.base_url.trim_start_matches("https://").to_owned();
    let Some(tls13) = handshake(&authority, "-tls1_3") else {
        eprintln!("SKIPPED tls_1_1_is_refused…: no openssl command here; nothing was checked");
        return;
    };
    assert!(tls13, "TLS 1.3 is served");
    assert_eq!(handshake(&authority, "-tls1_2"), Some(true), "TLS 1.2 is served");
    assert_eq!(handshake(&authority, "-tls1_1"), Some(false), "TLS 1.1 is refused");
}
