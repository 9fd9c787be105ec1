//! Registering clients of the code flow: redirect URIs, public clients and PKCE settings, through
//! DCR (WSO2's field names) and the CLI, with clear refusals for what cannot be registered.

use reqwest::StatusCode;

use crate::helpers::{assert_oauth_error, expect_json, spawn_app, ConfigOverrides, ADMIN_USER};

#[tokio::test]
async fn dcr_registers_a_public_client_with_redirect_uris_and_pkce_and_shows_no_secret() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let body = serde_json::json!({
        "client_name": "spa",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://spa.example/cb", "http://127.0.0.1/cb"],
        "token_endpoint_auth_method": "none",
        "ext_pkce_support_plain": true,
    });
    let response = app
        .http
        .post(app.dcr_url(None))
        .basic_auth(ADMIN_USER, Some(app.admin_password()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let created = expect_json(response, StatusCode::CREATED).await;
    assert!(created.get("client_secret").is_none(), "a public client has no secret: {created}");
    assert_eq!(created["token_endpoint_auth_method"], "none");
    assert_eq!(created["ext_pkce_mandatory"], true, "public clients must use PKCE");
    assert_eq!(created["ext_pkce_support_plain"], true);
    assert_eq!(created["redirect_uris"], body["redirect_uris"]);
    let id = created["client_id"].as_str().unwrap();
    let read = app
        .http
        .get(app.dcr_url(Some(id)))
        .basic_auth(ADMIN_USER, Some(app.admin_password()))
        .send()
        .await
        .unwrap();
    let read = expect_json(read, StatusCode::OK).await;
    assert_eq!(read["redirect_uris"], body["redirect_uris"]);
    assert_eq!(read["grant_types"], serde_json::json!(["authorization_code", "refresh_token"]));
}

#[tokio::test]
async fn redirect_uris_that_cannot_be_registered_are_refused_by_dcr_and_the_cli() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    for (uris, error) in [
        (serde_json::json!(["http://app.example/cb"]), "invalid_redirect_uri"),
        (serde_json::json!(["https://app.example/cb#fragment"]), "invalid_redirect_uri"),
        (serde_json::json!(["/relative"]), "invalid_redirect_uri"),
        (serde_json::json!([]), "invalid_client_metadata"),
    ] {
        let body = serde_json::json!({
            "client_name": "web", "grant_types": ["authorization_code"], "redirect_uris": uris,
        });
        let response = app
            .http
            .post(app.dcr_url(None))
            .basic_auth(ADMIN_USER, Some(app.admin_password()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_oauth_error(response, StatusCode::BAD_REQUEST, error).await;
    }
    let output = app
        .cli(&[
            "client",
            "register",
            "--name",
            "web",
            "--grant-types",
            "authorization_code",
            "--redirect-uris",
            "http://app.example/cb",
        ])
        .await;
    assert!(!output.status.success());
    assert_eq!(output.stderr.trim().lines().count(), 1, "one line: {}", output.stderr);
    assert!(output.stderr.contains("http://app.example/cb"), "{}", output.stderr);
    let public_password =
        app.cli(&["client", "register", "--name", "x", "--grant-types", "password", "--public"]).await;
    assert!(!public_password.status.success(), "a public client cannot use the password grant");
}
