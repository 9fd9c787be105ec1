//! Durability: whatever the server acknowledged survives a crash (SIGKILL) and a clean shutdown.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_oauth_error, inactive, spawn_app, ConfigOverrides, TestApp};

/// Introspects every token, in order.
async fn states(app: &TestApp, tokens: &[String]) -> Vec<Value> {
    let mut states = Vec::new();
    for token in tokens {
        states.push(app.introspect(token).await);
    }
    states
}

#[tokio::test]
async fn a_crash_keeps_every_token_and_its_state() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("durable").await;
    let kept = app.token_admin(&client, "openid").await;
    let revoked = app.token_admin(&client, "revoked").await;
    app.revoke_token(&client, &revoked.access_token).await;
    let before_refresh = app.token_admin(&client, "refreshed").await;
    let refreshed = app.token_refresh(&client, before_refresh.refresh(), None).await;
    let application = app.token_client_credentials(&client, "machine").await;
    let tokens: Vec<String> = [&kept, &revoked, &before_refresh, &refreshed]
        .iter()
        .flat_map(|t| [t.access_token.clone(), t.refresh().to_string()])
        .chain([application.access_token.clone()])
        .collect();
    let before = states(&app, &tokens).await;

    app.kill_and_restart().await;

    assert_eq!(states(&app, &tokens).await, before);
    let live: Vec<bool> = before.iter().map(|state| state["active"] == true).collect();
    assert_eq!(live, [true, true, false, false, false, false, true, true, true]);
    assert_eq!(before[2], inactive());
}

#[tokio::test]
async fn the_same_token_comes_back_after_a_crash_when_renewal_is_off() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("durable").await;
    let first = app.token_admin(&client, "openid").await;

    app.kill_and_restart().await;
    let again = app.token_admin(&client, "openid").await;

    assert_eq!(again.access_token, first.access_token);
    assert_eq!(again.refresh_token, first.refresh_token);
    assert!(again.expires_in <= 3600);
}

#[tokio::test]
async fn renewal_after_a_crash_revokes_the_token_issued_before_it() {
    let mut app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("durable").await;
    let first = app.token_admin(&client, "openid").await;
    let second = app.token_admin(&client, "openid").await;

    app.kill_and_restart().await;

    assert_eq!(app.introspect(&first.access_token).await, inactive());
    assert!(app.is_active(&second.access_token).await);
    let third = app.token_admin(&client, "openid").await;
    assert_eq!(app.introspect(&second.access_token).await, inactive());
    assert!(app.is_active(&third.access_token).await);
    let replay = app.refresh_grant(&client, first.refresh(), None).await;
    assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn sigterm_shuts_the_server_down_cleanly_and_loses_nothing() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("durable").await;
    let tokens = app.token_admin(&client, "openid").await;

    let status = app.terminate().await;
    app.restart().await;

    assert!(status.success(), "the server exited with {status}");
    assert!(app.is_active(&tokens.access_token).await);
    assert_eq!(app.token_admin(&client, "openid").await.access_token, tokens.access_token);
}
