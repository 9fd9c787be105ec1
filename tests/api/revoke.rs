//! RFC 7009 revocation: either token of a pair kills both, unknown tokens answer 200, and a client
//! may not revoke another client's tokens.

use reqwest::StatusCode;

use crate::helpers::{assert_oauth_error, assert_revoke_ok, inactive, spawn_app, Client, ConfigOverrides};

#[tokio::test]
async fn revoking_an_access_token_kills_its_refresh_token_too() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("revoker").await;
    let tokens = app.token_admin(&client, "openid").await;

    app.revoke_token(&client, &tokens.access_token).await;

    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
    assert_eq!(app.introspect(tokens.refresh()).await, inactive());
    let refresh = app.refresh_grant(&client, tokens.refresh(), None).await;
    assert_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn revoking_a_refresh_token_kills_its_access_token_too() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("revoker").await;
    let tokens = app.token_admin(&client, "openid").await;

    let response =
        app.revoke(&client, &[("token", tokens.refresh()), ("token_type_hint", "refresh_token")]).await;

    assert_revoke_ok(response).await;
    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
    assert_eq!(app.introspect(tokens.refresh()).await, inactive());
}

#[tokio::test]
async fn a_wrong_type_hint_still_revokes() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("revoker").await;
    let tokens = app.token_admin(&client, "openid").await;

    let response =
        app.revoke(&client, &[("token", &tokens.access_token), ("token_type_hint", "refresh_token")]).await;

    assert_revoke_ok(response).await;
    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
}

#[tokio::test]
async fn revoking_an_unknown_or_already_revoked_token_answers_ok() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("revoker").await;
    let tokens = app.token_admin(&client, "openid").await;

    app.revoke_token(&client, "no-such-token").await;
    app.revoke_token(&client, &tokens.access_token).await;
    app.revoke_token(&client, &tokens.access_token).await;
    app.revoke_token(&client, tokens.refresh()).await;
}

#[tokio::test]
async fn revoking_another_clients_token_is_refused_and_changes_nothing() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let owner = app.register_client("owner").await;
    let intruder = app.register_client("intruder").await;
    let tokens = app.token_admin(&owner, "openid").await;

    let by_access = app.revoke(&intruder, &[("token", &tokens.access_token)]).await;
    let by_refresh = app.revoke(&intruder, &[("token", tokens.refresh())]).await;

    assert_oauth_error(by_access, StatusCode::UNAUTHORIZED, "unauthorized_client").await;
    assert_oauth_error(by_refresh, StatusCode::UNAUTHORIZED, "unauthorized_client").await;
    assert!(app.is_active(&tokens.access_token).await);
    assert!(app.is_active(tokens.refresh()).await);
}

#[tokio::test]
async fn revoking_with_bad_client_credentials_is_invalid_client() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("revoker").await;
    let tokens = app.token_admin(&client, "openid").await;

    for caller in [client.with_secret("wrong"), Client::unknown()] {
        let response = app.revoke(&caller, &[("token", &tokens.access_token)]).await;
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    assert!(app.is_active(&tokens.access_token).await);
}

#[tokio::test]
async fn revoking_without_a_token_is_invalid_request() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("revoker").await;

    let response = app.revoke(&client, &[("token_type_hint", "access_token")]).await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn revocation_accepts_client_secret_post() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("revoker").await;
    let tokens = app.token_admin(&client, "openid").await;

    let response = app
        .http
        .post(app.url("/oauth2/revoke"))
        .form(&[
            ("token", tokens.access_token.as_str()),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();

    assert_revoke_ok(response).await;
    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
}

#[tokio::test]
async fn a_revoked_token_is_never_returned_again() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("revoker").await;
    let revoked = app.token_admin(&client, "openid").await;
    app.revoke_token(&client, &revoked.access_token).await;

    let fresh = app.token_admin(&client, "openid").await;

    assert_ne!(fresh.access_token, revoked.access_token);
    assert_ne!(fresh.refresh(), revoked.refresh());
    assert!(app.is_active(&fresh.access_token).await);
}
