//! The refresh_token grant: rotation, scope narrowing, reuse detection with its grace period, and
//! the token key it shares with the password grant.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{assert_oauth_error, inactive, spawn_app, ConfigOverrides};

#[tokio::test]
async fn refresh_issues_a_new_pair_and_kills_the_old_access_token_at_once() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "read write").await;

    let refreshed = app.token_refresh(&client, original.refresh(), None).await;

    assert_ne!(refreshed.access_token, original.access_token);
    assert_ne!(refreshed.refresh(), original.refresh());
    assert_eq!(refreshed.scope.as_deref(), Some("read write"));
    assert_eq!(refreshed.token_type, "Bearer");
    assert_eq!(refreshed.expires_in, 3600);
    assert_eq!(app.introspect(&original.access_token).await, inactive());
    assert!(app.is_active(&refreshed.access_token).await);
    assert!(app.is_active(refreshed.refresh()).await);
}

#[tokio::test]
async fn refresh_may_narrow_the_scope() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "read write").await;

    let narrowed = app.token_refresh(&client, original.refresh(), Some("read")).await;

    assert_eq!(narrowed.scope.as_deref(), Some("read"));
    assert_eq!(app.introspect(&narrowed.access_token).await["scope"], "read");
}

#[tokio::test]
async fn refresh_may_not_widen_the_scope() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "read").await;

    let response = app.refresh_grant(&client, original.refresh(), Some("read admin")).await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_scope").await;
    assert!(app.is_active(&original.access_token).await, "a refused refresh changes nothing");
}

#[tokio::test]
async fn a_rotated_refresh_token_replayed_within_the_grace_period_only_gets_invalid_grant() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "openid").await;
    let rotated = app.token_refresh(&client, original.refresh(), None).await;

    let replay = app.refresh_grant(&client, original.refresh(), None).await;

    assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(app.is_active(&rotated.access_token).await);
    assert!(app.is_active(rotated.refresh()).await);
}

#[tokio::test]
async fn a_rotated_refresh_token_replayed_after_the_grace_period_revokes_its_family() {
    let app = spawn_app(ConfigOverrides {
        refresh_token_reuse_grace_period: "0s",
        ..ConfigOverrides::renewal_off()
    })
    .await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "openid").await;
    let rotated = app.token_refresh(&client, original.refresh(), None).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let replay = app.refresh_grant(&client, original.refresh(), None).await;

    assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_eq!(app.introspect(&rotated.access_token).await, inactive());
    assert_eq!(app.introspect(rotated.refresh()).await, inactive());
    let with_new_token = app.refresh_grant(&client, rotated.refresh(), None).await;
    assert_oauth_error(with_new_token, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn reuse_detection_off_leaves_the_family_alive_after_a_replay() {
    let app = spawn_app(ConfigOverrides {
        refresh_token_reuse_grace_period: "0s",
        revoke_token_family_on_refresh_token_reuse: false,
        ..ConfigOverrides::renewal_off()
    })
    .await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "openid").await;
    let rotated = app.token_refresh(&client, original.refresh(), None).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let replay = app.refresh_grant(&client, original.refresh(), None).await;

    assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(app.is_active(&rotated.access_token).await);
    assert!(app.is_active(rotated.refresh()).await);
}

#[tokio::test]
async fn refresh_keeps_the_refresh_token_when_its_renewal_is_off() {
    let app =
        spawn_app(ConfigOverrides { renew_refresh_token: false, ..ConfigOverrides::renewal_off() }).await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "openid").await;

    let refreshed = app.token_refresh(&client, original.refresh(), None).await;

    assert_ne!(refreshed.access_token, original.access_token);
    assert_eq!(refreshed.refresh(), original.refresh());
    assert_eq!(app.introspect(&original.access_token).await, inactive());
    assert!(app.is_active(refreshed.refresh()).await);
}

#[tokio::test]
async fn a_password_grant_after_a_refresh_returns_the_refreshed_token() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "openid").await;
    let refreshed = app.token_refresh(&client, original.refresh(), None).await;

    let again = app.token_admin(&client, "openid").await;

    assert_eq!(again.access_token, refreshed.access_token);
    assert_eq!(again.refresh_token, refreshed.refresh_token);
}

#[tokio::test]
async fn with_renewal_on_a_password_grant_revokes_the_refreshed_token() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("refresher").await;
    let original = app.token_admin(&client, "openid").await;
    let refreshed = app.token_refresh(&client, original.refresh(), None).await;

    let again = app.token_admin(&client, "openid").await;

    assert_ne!(again.access_token, refreshed.access_token);
    assert_eq!(app.introspect(&refreshed.access_token).await, inactive());
    assert!(app.is_active(&again.access_token).await);
}

#[tokio::test]
async fn another_clients_refresh_token_is_invalid_grant_and_harms_nothing() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let owner = app.register_client("owner").await;
    let intruder = app.register_client("intruder").await;
    let tokens = app.token_admin(&owner, "openid").await;

    let response = app.refresh_grant(&intruder, tokens.refresh(), None).await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(app.is_active(&tokens.access_token).await);
    assert!(app.is_active(tokens.refresh()).await);
}
