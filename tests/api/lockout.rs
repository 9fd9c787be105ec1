//! Brute force: failed passwords and client secrets back off exponentially per (client, user,
//! address) and (client, address), are recorded as events, and every lock ends by itself.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{assert_oauth_error, header, spawn_app, ConfigOverrides};

#[tokio::test]
async fn repeated_wrong_passwords_lock_the_user_on_that_client_briefly_and_are_recorded() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("app").await;
    let other = app.register_client("other-app").await;
    for _ in 0..6 {
        let response = app.password_grant(&client, "admin", "wrong", "").await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    // The sixth failure locked the key for a second: even the right password waits.
    let locked = app.password_grant(&client, "admin", "admin", "").await;
    let retry = header(locked.headers(), "retry-after");
    assert_eq!(retry, "1");
    let body = assert_oauth_error(locked, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(body["error_description"].as_str().unwrap().contains("too many failed attempts"));

    // Another client of the same user is not locked out by these failures.
    app.token_admin(&other, "").await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.token_admin(&client, "").await;

    let failures: Vec<_> =
        app.events().into_iter().filter(|e| e.event_type == "AuthenticationFailed").collect();
    assert_eq!(failures.len(), 6, "one event per checked failure, none for refused attempts");
    assert_eq!(failures[5].payload["method"], "password");
    assert_eq!(failures[5].payload["username"], "admin");
    assert_eq!(failures[5].payload["consecutive_failures"], 6);
    assert!(failures[5].payload["locked_until"].is_i64());
    assert!(failures[4].payload.get("locked_until").is_none());
    assert!(failures.iter().all(|e| e.stream == "user-admin"));
}

#[tokio::test]
async fn repeated_wrong_client_secrets_lock_that_client_briefly_and_are_recorded() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("app").await;
    let wrong = client.with_secret("not-the-secret");
    for _ in 0..6 {
        let response = app.client_credentials_grant(&wrong, "").await;
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let locked = app.client_credentials_grant(&client, "").await;
    assert_eq!(header(locked.headers(), "retry-after"), "1");
    assert_oauth_error(locked, StatusCode::UNAUTHORIZED, "invalid_client").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.token_client_credentials(&client, "").await;

    let failures: Vec<_> =
        app.events().into_iter().filter(|e| e.event_type == "AuthenticationFailed").collect();
    assert_eq!(failures.len(), 6);
    assert!(failures.iter().all(|e| e.payload["method"] == "client_secret"));
    assert!(failures.iter().all(|e| e.stream == format!("client-{}", client.id)));
}

#[tokio::test]
async fn unknown_client_ids_are_refused_without_flooding_the_log() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    for i in 0..20 {
        let ghost = crate::helpers::Client::unknown().with_secret(&format!("guess-{i}"));
        let response = app.client_credentials_grant(&ghost, "").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(crate::helpers::count_of(&app.events(), "AuthenticationFailed"), 0);
}
