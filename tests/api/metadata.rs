//! `GET /health` and RFC 8414 authorization server metadata.

use reqwest::StatusCode;

use crate::helpers::{expect_json, spawn_app, ConfigOverrides};

#[tokio::test]
async fn health_answers_ok() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;

    let response = app.http.get(app.url("/health")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn authorization_server_metadata_names_every_endpoint_and_grant() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;

    let response = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap();

    let body = expect_json(response, StatusCode::OK).await;
    assert!(body["issuer"].is_string(), "{body}");
    for (field, path) in [
        ("token_endpoint", "/oauth2/token"),
        ("introspection_endpoint", "/oauth2/introspect"),
        ("revocation_endpoint", "/oauth2/revoke"),
    ] {
        let url = body[field].as_str().unwrap_or_else(|| panic!("no {field}: {body}"));
        assert!(url.ends_with(path), "{field} = {url}");
    }
    let grants = body["grant_types_supported"].as_array().expect("grant_types_supported");
    for grant in ["password", "client_credentials", "refresh_token"] {
        assert!(grants.iter().any(|g| g == grant), "{grant} missing: {body}");
    }
}
