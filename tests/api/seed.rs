//! The seed scenario (`issue-new-tokens-per-request.md`): register an app, ask for a token twice
//! with the password grant, introspect the first one; in both settings of the renewal flag.

use crate::helpers::{inactive, spawn_app, ConfigOverrides};

#[tokio::test]
async fn renewal_off_returns_the_same_tokens_and_keeps_the_first_active() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("seed-app").await;

    let first = app.token_admin(&client, "openid").await;
    let second = app.token_admin(&client, "openid").await;

    assert_eq!(second.access_token, first.access_token);
    assert_eq!(second.refresh_token, first.refresh_token);
    let introspection = app.introspect(&first.access_token).await;
    assert_eq!(introspection["active"], true, "{introspection}");
}

#[tokio::test]
async fn renewal_revokes_the_previous_token_before_issuing() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("seed-app").await;

    let first = app.token_admin(&client, "openid").await;
    let second = app.token_admin(&client, "openid").await;

    assert_ne!(second.access_token, first.access_token);
    assert_ne!(second.refresh(), first.refresh());
    assert_eq!(app.introspect(&first.access_token).await, inactive());
    assert_eq!(app.introspect(first.refresh()).await, inactive());
    assert!(app.is_active(&second.access_token).await);
    assert!(app.is_active(second.refresh()).await);
}

#[tokio::test]
async fn a_new_token_response_has_every_documented_field() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("seed-app").await;

    let tokens = app.token_admin(&client, "openid").await;

    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.scope.as_deref(), Some("openid"));
    assert_eq!(tokens.expires_in, 3600, "a new token reports its full lifetime");
    assert!(tokens.refresh_token.is_some(), "{}", tokens.body);
    assert_ne!(tokens.refresh(), tokens.access_token);
}

#[tokio::test]
async fn a_returned_token_reports_the_whole_seconds_it_has_left() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("seed-app").await;
    let first = app.token_admin(&client, "openid").await;

    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let again = app.token_admin(&client, "openid").await;

    assert_eq!(again.access_token, first.access_token);
    assert!(
        (3590..3600).contains(&again.expires_in),
        "expected the seconds left after ~1.1 s, got {}",
        again.expires_in
    );
}

#[tokio::test]
async fn scopes_come_back_sorted_and_space_separated() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("seed-app").await;

    let tokens = app.token_admin(&client, "write read").await;

    assert_eq!(tokens.scope.as_deref(), Some("read write"));
    assert_eq!(app.introspect(&tokens.access_token).await["scope"], "read write");
}

#[tokio::test]
async fn scope_order_and_duplicates_do_not_change_the_token_key() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("seed-app").await;

    let first = app.token_admin(&client, "write read").await;
    let reordered = app.token_admin(&client, "read write").await;
    let duplicated = app.token_admin(&client, "read write read").await;

    assert_eq!(reordered.access_token, first.access_token);
    assert_eq!(duplicated.access_token, first.access_token);
}

#[tokio::test]
async fn scope_case_and_scope_set_are_part_of_the_token_key() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("seed-app").await;

    let lower = app.token_admin(&client, "read").await;
    let upper = app.token_admin(&client, "Read").await;
    let wider = app.token_admin(&client, "read write").await;

    assert_eq!(upper.scope.as_deref(), Some("Read"));
    assert_ne!(upper.access_token, lower.access_token);
    assert_ne!(wider.access_token, lower.access_token);
    for token in [&lower, &upper, &wider] {
        assert!(app.is_active(&token.access_token).await, "each key keeps its own token");
    }
}

#[tokio::test]
async fn no_requested_scope_leaves_the_scope_out_of_the_response() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("seed-app").await;

    let tokens = app.token_admin(&client, "").await;

    assert!(tokens.body.get("scope").is_none(), "{}", tokens.body);
}

#[tokio::test]
async fn usernames_differing_only_in_case_share_one_token() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("seed-app").await;
    app.add_user("Alice", "alice-password-1").await;

    let lower = app.token_password(&client, "alice", "alice-password-1", "read").await;
    let upper = app.token_password(&client, "ALICE", "alice-password-1", "read").await;

    assert_eq!(upper.access_token, lower.access_token);
    assert_eq!(upper.refresh_token, lower.refresh_token);
}

#[tokio::test]
async fn durations_given_as_plain_integers_are_seconds() {
    let app = spawn_app(ConfigOverrides {
        user_access_token_validity: "120",
        refresh_token_validity: "600",
        ..ConfigOverrides::renewal_off()
    })
    .await;
    let client = app.register_client("seed-app").await;

    let tokens = app.token_admin(&client, "openid").await;
    let refresh = app.introspect(tokens.refresh()).await;

    assert_eq!(tokens.expires_in, 120);
    let lifetime = refresh["exp"].as_i64().unwrap() - refresh["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 600, "{refresh}");
}
