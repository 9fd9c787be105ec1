//! Renewal off and an expired token: WSO2's IDENTITY-6777 timeline, scaled down from
//! AT 60 s / RT 150 s to AT 4 s / RT 10 s. The old refresh token is reused only while its time left
//! exceeds a new access token's lifetime.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use crate::helpers::{inactive, spawn_app, ConfigOverrides};

#[tokio::test]
async fn identity_6777_reuses_the_refresh_token_only_while_it_outlives_a_new_access_token() {
    let app = spawn_app(ConfigOverrides {
        user_access_token_validity: "4s",
        refresh_token_validity: "10s",
        ..ConfigOverrides::renewal_off()
    })
    .await;
    let client = app.register_client("identity-6777").await;
    let start = Instant::now();
    let at = |seconds: f64| sleep_until(start + Duration::from_secs_f64(seconds));

    let t0 = app.token_admin(&client, "RO").await;

    at(1.0).await;
    let t1 = app.token_admin(&client, "RO").await;
    assert_eq!(t1.access_token, t0.access_token, "t≈1: AT0 is still usable");
    assert_eq!(t1.refresh_token, t0.refresh_token, "t≈1: RT0 is still usable");

    at(4.5).await;
    let t4 = app.token_admin(&client, "RO").await;
    assert_ne!(t4.access_token, t0.access_token, "t≈4.5: AT0 expired");
    assert_eq!(t4.expires_in, 4, "t≈4.5: a new access token has a full lifetime");
    assert_eq!(
        t4.refresh_token, t0.refresh_token,
        "t≈4.5: RT0 has ~5.5 s left, more than a new AT's 4 s, so it is reused"
    );
    assert_eq!(app.introspect(&t0.access_token).await, inactive());

    at(9.0).await;
    let t9 = app.token_admin(&client, "RO").await;
    assert_ne!(t9.access_token, t4.access_token, "t≈9: AT1 expired");
    assert_ne!(
        t9.refresh(),
        t0.refresh(),
        "t≈9: RT0 has ~1 s left, less than a new AT's 4 s, so a new RT is issued"
    );
    assert_eq!(app.introspect(&t4.access_token).await, inactive());

    at(10.0).await;
    let t10 = app.token_admin(&client, "RO").await;
    assert_eq!(t10.access_token, t9.access_token, "t≈10: AT2 is still usable");
    assert_eq!(t10.refresh_token, t9.refresh_token, "t≈10: RT1 is still usable");
}

#[tokio::test]
async fn an_application_token_with_a_second_or_less_left_is_replaced() {
    let app =
        spawn_app(ConfigOverrides { app_access_token_validity: "2s", ..ConfigOverrides::renewal_off() })
            .await;
    let client = app.register_client("machine").await;
    let first = app.token_client_credentials(&client, "CC").await;
    // Counted from the answer, not the request: the token was issued before it, so a slow first
    // request (a loaded machine) cannot push the expiry past the later checks.
    let start = Instant::now();
    sleep_until(start + Duration::from_millis(300)).await;
    let same = app.token_client_credentials(&client, "CC").await;
    sleep_until(start + Duration::from_millis(1_600)).await;
    let replaced = app.token_client_credentials(&client, "CC").await;

    assert_eq!(same.access_token, first.access_token, "more than 1 s left: reused");
    assert_ne!(replaced.access_token, first.access_token, "1 s or less left: replaced");
    assert_eq!(replaced.expires_in, 2);
    assert_eq!(app.introspect(&first.access_token).await, inactive());
}

#[tokio::test]
async fn a_refresh_token_with_a_second_or_less_left_makes_the_pair_unusable() {
    let app =
        spawn_app(ConfigOverrides { refresh_token_validity: "3s", ..ConfigOverrides::renewal_off() }).await;
    let client = app.register_client("short-refresh").await;
    let first = app.token_admin(&client, "openid").await;
    // Counted from the answer, not the request: the token was issued before it, so a slow first
    // request (a loaded machine) cannot push the expiry past the later checks.
    let start = Instant::now();
    sleep_until(start + Duration::from_millis(500)).await;
    let same = app.token_admin(&client, "openid").await;
    sleep_until(start + Duration::from_millis(2_300)).await;
    let replaced = app.token_admin(&client, "openid").await;

    assert_eq!(same.access_token, first.access_token, "both parts usable: reused");
    assert_eq!(same.refresh_token, first.refresh_token);
    assert_ne!(replaced.access_token, first.access_token, "RT has ≤ 1 s left");
    assert_ne!(replaced.refresh(), first.refresh(), "RT outlives no new AT");
    assert_eq!(app.introspect(&first.access_token).await, inactive());
}
