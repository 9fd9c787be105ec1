//! RFC 7662 introspection: the fields of an active answer, exactly `{"active":false}` for anything
//! not live, and who may ask.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;

use crate::helpers::{expect_json, inactive, spawn_app, ConfigOverrides, ADMIN_USER};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn an_active_user_token_introspects_with_every_field() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("inspector").await;
    let tokens = app.token_admin(&client, "write read").await;

    let body = app.introspect(&tokens.access_token).await;

    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["username"], ADMIN_USER);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["aut"], "APPLICATION_USER");
    let (exp, iat, nbf) = (
        body["exp"].as_i64().expect("exp"),
        body["iat"].as_i64().expect("iat"),
        body["nbf"].as_i64().expect("nbf"),
    );
    assert_eq!(exp - iat, 3600, "{body}");
    assert!((now() - iat).abs() <= 5, "iat is not the issue time: {body}");
    assert!(nbf <= now() + 1, "nbf lies in the future: {body}");
}

#[tokio::test]
async fn an_application_token_has_no_username() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("machine").await;
    let tokens = app.token_client_credentials(&client, "read").await;

    let body = app.introspect(&tokens.access_token).await;

    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["aut"], "APPLICATION");
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("username").is_none(), "{body}");
}

#[tokio::test]
async fn a_refresh_token_introspects_as_a_refresh_token() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("inspector").await;
    let tokens = app.token_admin(&client, "openid").await;

    let body = app.introspect(tokens.refresh()).await;

    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["token_type"], "Refresh");
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["username"], ADMIN_USER);
    assert_eq!(body["scope"], "openid");
    let lifetime = body["exp"].as_i64().unwrap() - body["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 86_400, "{body}");
}

#[tokio::test]
async fn an_unknown_token_is_exactly_inactive() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;

    assert_eq!(app.introspect("no-such-token").await, inactive());
}

#[tokio::test]
async fn an_expired_access_token_is_exactly_inactive() {
    let app =
        spawn_app(ConfigOverrides { user_access_token_validity: "2s", ..ConfigOverrides::renewal_off() })
            .await;
    let client = app.register_client("inspector").await;
    let tokens = app.token_admin(&client, "openid").await;
    assert!(app.is_active(&tokens.access_token).await);

    tokio::time::sleep(Duration::from_millis(2_300)).await;

    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
}

#[tokio::test]
async fn a_wrong_type_hint_does_not_hide_a_token() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("inspector").await;
    let tokens = app.token_admin(&client, "openid").await;
    let admin = Some((ADMIN_USER, "admin"));

    let access = app
        .introspect_with(admin, &[("token", &tokens.access_token), ("token_type_hint", "refresh_token")])
        .await;
    let refresh =
        app.introspect_with(admin, &[("token", tokens.refresh()), ("token_type_hint", "access_token")]).await;

    let access: serde_json::Value = access.json().await.unwrap();
    let refresh: serde_json::Value = refresh.json().await.unwrap();
    assert_eq!(access["token_type"], "Bearer", "{access}");
    assert_eq!(refresh["token_type"], "Refresh", "{refresh}");
}

#[tokio::test]
async fn introspection_without_a_token_is_a_bad_request() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;

    let response =
        app.introspect_with(Some((ADMIN_USER, "admin")), &[("token_type_hint", "access_token")]).await;

    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn introspection_without_valid_credentials_is_unauthorized() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("inspector").await;
    let tokens = app.token_admin(&client, "openid").await;
    let form = [("token", tokens.access_token.as_str())];

    let callers = [
        None,
        Some((ADMIN_USER, "wrong-password")),
        Some((client.id.as_str(), "wrong-secret")),
        Some(("no-such-client", "no-such-secret")),
    ];
    for caller in callers {
        let response = app.introspect_with(caller, &form).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "caller {caller:?}");
    }
}

#[tokio::test]
async fn a_client_sees_only_its_own_tokens_as_active() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let owner = app.register_client("owner").await;
    let other = app.register_client("other").await;
    let tokens = app.token_admin(&owner, "openid").await;

    let by_owner = app.introspect_as_client(&owner, &tokens.access_token).await;
    let by_other = app.introspect_as_client(&other, &tokens.access_token).await;

    assert_eq!(by_owner["active"], true, "{by_owner}");
    assert_eq!(by_owner["client_id"], owner.id.as_str());
    assert_eq!(by_other, inactive());
}

#[tokio::test]
async fn the_super_admins_remembered_header_never_lets_a_wrong_password_through() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("inspector").await;
    let tokens = app.token_admin(&client, "openid").await;
    let form = [("token", tokens.access_token.as_str())];
    let password = app.admin_password().to_owned();

    // The first answer fills the server's cache of the accepted header's digest; the second
    // is served from it.
    for _ in 0..2 {
        let body = expect_json(
            app.introspect_with(Some((ADMIN_USER, password.as_str())), &form).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(body["active"], true, "{body}");
    }
    let wrong_ones =
        [format!("{password} "), password.to_uppercase(), String::new(), format!("{password}\u{0}")];
    for wrong in &wrong_ones {
        let response = app.introspect_with(Some((ADMIN_USER, wrong.as_str())), &form).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "password {wrong:?}");
    }
    let by_client = app.introspect_as_client(&client, &tokens.access_token).await;
    assert_eq!(by_client["active"], true, "a client still introspects as itself: {by_client}");
    let body =
        expect_json(app.introspect_with(Some((ADMIN_USER, password.as_str())), &form).await, StatusCode::OK)
            .await;
    assert_eq!(body["active"], true, "{body}");
}
