//! The token endpoint's successful paths outside the seed scenario: client_credentials, client
//! authentication methods, how the token key separates clients and token kinds, token values.

use std::collections::HashSet;

use crate::helpers::{inactive, spawn_app, ConfigOverrides, Tokens, ADMIN_USER};

#[tokio::test]
async fn client_credentials_gives_no_refresh_token_and_drops_openid() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("machine").await;

    let tokens = app.token_client_credentials(&client, "openid read").await;

    assert_eq!(tokens.scope.as_deref(), Some("read"));
    assert!(tokens.refresh_token.is_none(), "{}", tokens.body);
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 3600);
}

#[tokio::test]
async fn client_credentials_with_only_openid_has_no_scope() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("machine").await;

    let tokens = app.token_client_credentials(&client, "openid").await;

    assert!(tokens.body.get("scope").is_none(), "{}", tokens.body);
}

#[tokio::test]
async fn client_credentials_gives_a_refresh_token_when_the_config_allows_it() {
    let app = spawn_app(ConfigOverrides {
        client_credentials_refresh_tokens: true,
        ..ConfigOverrides::renewal_off()
    })
    .await;
    let client = app.register_client("machine").await;

    let tokens = app.token_client_credentials(&client, "read").await;

    assert!(app.is_active(tokens.refresh()).await);
}

#[tokio::test]
async fn client_credentials_returns_the_same_token_while_renewal_is_off() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("machine").await;

    let first = app.token_client_credentials(&client, "read").await;
    let second = app.token_client_credentials(&client, "read").await;

    assert_eq!(second.access_token, first.access_token);
}

#[tokio::test]
async fn client_credentials_renewal_revokes_the_previous_application_token() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("machine").await;

    let first = app.token_client_credentials(&client, "read").await;
    let second = app.token_client_credentials(&client, "read").await;

    assert_ne!(second.access_token, first.access_token);
    assert_eq!(app.introspect(&first.access_token).await, inactive());
    assert!(app.is_active(&second.access_token).await);
}

#[tokio::test]
async fn application_and_user_tokens_of_one_client_have_separate_keys() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("both").await;

    let user = app.token_admin(&client, "read").await;
    let application = app.token_client_credentials(&client, "read").await;

    assert_ne!(application.access_token, user.access_token);
    assert!(app.is_active(&user.access_token).await);
    assert!(app.is_active(&application.access_token).await);
}

#[tokio::test]
async fn each_client_has_its_own_token_for_the_same_user_and_scope() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let first_client = app.register_client("first").await;
    let second_client = app.register_client("second").await;

    let first = app.token_admin(&first_client, "openid").await;
    let second = app.token_admin(&second_client, "openid").await;

    assert_ne!(second.access_token, first.access_token);
    assert!(
        app.is_active(&first.access_token).await,
        "renewal for one client must not touch another client's token"
    );
}

#[tokio::test]
async fn client_secret_post_authenticates_like_basic() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("poster").await;
    let by_basic = app.token_admin(&client, "openid").await;

    let response = app
        .token_request()
        .form(&[
            ("grant_type", "password"),
            ("username", ADMIN_USER),
            ("password", "admin"),
            ("scope", "openid"),
            ("client_id", client.id.as_str()),
            ("client_secret", client.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let by_post = Tokens::from_response(response).await;

    assert_eq!(by_post.access_token, by_basic.access_token);
}

#[tokio::test]
async fn token_values_are_unique_url_safe_and_at_least_160_bits_long() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("values").await;
    let mut seen = HashSet::new();

    for _ in 0..10 {
        let tokens = app.token_admin(&client, "openid").await;
        for value in [tokens.access_token.clone(), tokens.refresh().to_string()] {
            // 160 bits need at least 27 base64url characters (or 40 hex digits).
            assert!(value.len() >= 27, "token too short to hold 160 bits: {value}");
            assert!(
                value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
                "token is not URL-safe: {value}"
            );
            assert!(seen.insert(value), "a token value was issued twice");
        }
    }
}
