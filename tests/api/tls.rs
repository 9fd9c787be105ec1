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
