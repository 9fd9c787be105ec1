//! RFC 7591 dynamic client registration, guarded by the super admin.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_oauth_error, expect_json, inactive, spawn_app, ConfigOverrides, ADMIN_USER};

#[tokio::test]
async fn dcr_registers_a_client_that_can_get_tokens() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;

    let client = app.register_client_dcr("portal", &["password", "refresh_token"]).await;

    assert_eq!(client.name, "portal");
    assert_eq!(client.sorted_grant_types(), ["password", "refresh_token"]);
    assert!(!client.id.is_empty() && !client.secret.is_empty());
    let tokens = app.token_admin(&client, "openid").await;
    assert!(app.is_active(&tokens.access_token).await);
}

#[tokio::test]
async fn dcr_get_describes_the_client() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client_dcr("portal", &["client_credentials"]).await;

    let response = app
        .http
        .get(app.dcr_url(Some(&client.id)))
        .basic_auth(ADMIN_USER, Some("admin"))
        .send()
        .await
        .unwrap();

    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["client_id"], client.id.as_str());
    assert_eq!(body["client_name"], "portal");
    assert_eq!(body["grant_types"], json!(["client_credentials"]));
}

#[tokio::test]
async fn dcr_grant_types_limit_what_the_client_may_use() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client_dcr("machine", &["client_credentials"]).await;

    let response = app.password_grant(&client, ADMIN_USER, "admin", "openid").await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    app.token_client_credentials(&client, "read").await;
}

#[tokio::test]
async fn dcr_delete_revokes_the_clients_tokens_and_credentials() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client =
        app.register_client_dcr("doomed", &["password", "client_credentials", "refresh_token"]).await;
    let user = app.token_admin(&client, "openid").await;
    let application = app.token_client_credentials(&client, "read").await;

    let response = app
        .http
        .delete(app.dcr_url(Some(&client.id)))
        .basic_auth(ADMIN_USER, Some("admin"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.introspect(&user.access_token).await, inactive());
    assert_eq!(app.introspect(user.refresh()).await, inactive());
    assert_eq!(app.introspect(&application.access_token).await, inactive());
    let again = app.client_credentials_grant(&client, "read").await;
    assert_oauth_error(again, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn dcr_requires_the_super_admin() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("existing").await;
    let body = json!({"client_name": "sneaky", "grant_types": ["password"]});
    let callers = [None, Some((ADMIN_USER, "wrong")), Some((client.id.as_str(), client.secret.as_str()))];

    for caller in callers {
        let with = |request: reqwest::RequestBuilder| match caller {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        };
        let requests = [
            with(app.http.post(app.dcr_url(None)).json(&body)),
            with(app.http.get(app.dcr_url(Some(&client.id)))),
            with(app.http.delete(app.dcr_url(Some(&client.id)))),
        ];
        for request in requests {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "caller {caller:?}");
        }
    }
    app.token_client_credentials(&client, "read").await;
}
