//! RFC 6749 §5.2 errors of the token endpoint, each with its status and error code, and clean
//! refusals of broken requests (a 4xx, never a 5xx).

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::helpers::{
    assert_client_error, assert_oauth_error, basic_header, spawn_app, Client, ConfigOverrides, TestApp,
    ADMIN_USER,
};

const FORM: &str = "application/x-www-form-urlencoded";

type Params<'a> = Vec<(&'a str, &'a str)>;

async fn app_with_client() -> (TestApp, Client) {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("errors").await;
    (app, client)
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client_with_a_challenge() {
    let (app, client) = app_with_client().await;

    let response = app.password_grant(&client.with_secret("wrong"), ADMIN_USER, "admin", "openid").await;

    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn an_unknown_client_is_invalid_client() {
    let (app, _) = app_with_client().await;

    let response = app.password_grant(&Client::unknown(), ADMIN_USER, "admin", "openid").await;

    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn a_wrong_secret_in_the_body_is_invalid_client() {
    let (app, client) = app_with_client().await;

    let response = app
        .token_request()
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.id.as_str()),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();

    assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn a_request_without_client_authentication_is_refused() {
    let (app, _) = app_with_client().await;

    let response = app.token_request().form(&[("grant_type", "client_credentials")]).send().await.unwrap();

    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        (status == StatusCode::UNAUTHORIZED && body["error"] == "invalid_client")
            || (status == StatusCode::BAD_REQUEST && body["error"] == "invalid_request"),
        "{status}: {body}"
    );
}

#[tokio::test]
async fn basic_and_body_credentials_together_are_invalid_request() {
    let (app, client) = app_with_client().await;

    let response = app
        .post_token(
            &client,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client.id.as_str()),
                ("client_secret", client.secret.as_str()),
            ],
        )
        .await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn a_wrong_user_password_is_invalid_grant() {
    let (app, client) = app_with_client().await;

    let response = app.password_grant(&client, ADMIN_USER, "wrong", "openid").await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn an_unknown_user_is_invalid_grant() {
    let (app, client) = app_with_client().await;

    let response = app.password_grant(&client, "nobody", "admin", "openid").await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported_grant_type() {
    let (app, client) = app_with_client().await;

    let response = app.post_token(&client, &[("grant_type", "urn:example:no-such-grant")]).await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}

#[tokio::test]
async fn missing_parameters_are_invalid_request() {
    let (app, client) = app_with_client().await;
    let cases: [&[(&str, &str)]; 4] = [
        &[("username", ADMIN_USER), ("password", "admin")],
        &[("grant_type", "password"), ("password", "admin")],
        &[("grant_type", "password"), ("username", ADMIN_USER)],
        &[("grant_type", "refresh_token")],
    ];

    for form in cases {
        let response = app.post_token(&client, form).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_repeated_parameter_is_invalid_request() {
    let (app, client) = app_with_client().await;

    let response = app
        .post_token(
            &client,
            &[
                ("grant_type", "password"),
                ("username", ADMIN_USER),
                ("password", "admin"),
                ("password", "admin"),
            ],
        )
        .await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn credentials_in_the_query_string_are_invalid_request() {
    let (app, client) = app_with_client().await;
    // (query string, form body, authenticate with Basic)
    let cases: [(Params, Params, bool); 3] = [
        (vec![("password", "admin")], vec![("grant_type", "password"), ("username", ADMIN_USER)], true),
        (vec![("username", ADMIN_USER)], vec![("grant_type", "password"), ("password", "admin")], true),
        (
            vec![("client_id", &client.id), ("client_secret", &client.secret)],
            vec![("grant_type", "client_credentials")],
            false,
        ),
    ];

    for (query, form, basic) in cases {
        let mut request = app.token_request().query(&query).form(&form);
        if basic {
            request = request.basic_auth(&client.id, Some(&client.secret));
        }
        let response = request.send().await.unwrap();
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
}

#[tokio::test]
async fn a_client_without_the_grant_type_is_unauthorized_client() {
    let (app, _) = app_with_client().await;
    let machine = app.register_client_with_grants("machine-only", &["client_credentials"]).await;

    let password = app.password_grant(&machine, ADMIN_USER, "admin", "openid").await;
    let refresh = app.refresh_grant(&machine, "some-refresh-token", None).await;

    assert_oauth_error(password, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert_oauth_error(refresh, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

#[tokio::test]
async fn an_unknown_refresh_token_is_invalid_grant() {
    let (app, client) = app_with_client().await;

    let response = app.refresh_grant(&client, "no-such-refresh-token", None).await;

    assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn malformed_bodies_get_a_clean_4xx() {
    let (app, client) = app_with_client().await;
    let bodies: [(&str, Vec<u8>); 4] = [
        (FORM, b"%%%=&&==%zz".to_vec()),
        (FORM, b"grant_type=password&username=\xff\xfe&password=admin".to_vec()),
        (FORM, b"grant_type=password&username=%FF%FE&password=admin".to_vec()),
        ("application/json", br#"{"grant_type":"password"}"#.to_vec()),
    ];

    for (content_type, body) in bodies {
        let response = app
            .token_request()
            .basic_auth(&client.id, Some(&client.secret))
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_client_error(response).await;
    }
}

#[tokio::test]
async fn an_oversized_body_gets_a_clean_4xx() {
    let (app, client) = app_with_client().await;
    let body = format!("grant_type=client_credentials&scope={}", "a".repeat(100 * 1024));

    let response = app
        .token_request()
        .basic_auth(&client.id, Some(&client.secret))
        .header(CONTENT_TYPE, FORM)
        .body(body)
        .send()
        .await
        .unwrap();

    assert_client_error(response).await;
}

#[tokio::test]
async fn broken_basic_headers_get_a_clean_4xx() {
    let (app, client) = app_with_client().await;
    let invalid_utf8 = format!(
        "Basic {}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b"\xff\xfe:\xfd")
    );
    let headers = [
        "Basic !!!not-base64!!!".to_string(),
        "Basic".to_string(),
        basic_header("no-colon-here"),
        basic_header(":"),
        basic_header(&format!("{}:{}:extra", client.id, client.secret)),
        invalid_utf8,
        "Bearer abc".to_string(),
    ];

    for value in headers {
        let response = app
            .token_request()
            .header(AUTHORIZATION, value.as_str())
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_client_error(response).await;
    }
}
