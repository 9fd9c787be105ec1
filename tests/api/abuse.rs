//! Hostile HTTP: oversized and malformed bodies, hostile bytes in every field, floods of
//! connections and senders too slow to finish. Each gets a clean 4xx (never a 5xx) or a closed
//! connection, and after each the server still serves a normal token request.

mod raw;

use std::time::Duration;

use futures::future::join_all;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use token_ledger::domain::types::ScopeSet;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::helpers::{
    assert_oauth_error, assert_revoke_ok, basic_header, expect_json, inactive, spawn_app, Client,
    ConfigOverrides, TestApp, ADMIN_USER,
};
use raw::{authority, exchange, post, read_ending, trickle, Ending};

const FORM: &str = "application/x-www-form-urlencoded";
/// `src/http/form.rs` MAX_BODY.
const MAX_BODY: usize = 64 * 1024;
/// The longest a sender that never finishes its request may hold a connection. The server needs
/// a request timeout shorter than this.
const SLOW_CLIENT_CUTOFF: Duration = Duration::from_secs(20);

/// SQL metacharacters and classic injections, each a value for every field.
const INJECTIONS: [&str; 8] = [
    "' OR '1'='1",
    "admin' --",
    "'; DROP TABLE events; --",
    "\" OR \"\"=\"",
    "1; DELETE FROM active_tokens",
    "%' OR 1=1 --",
    "') UNION SELECT client_id, secret_digest FROM clients --",
    "\\'; SELECT sqlite_version(); --",
];

async fn app_with_client() -> (TestApp, Client) {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("abuse").await;
    (app, client)
}

/// Everyone else is still served: a normal token request succeeds.
async fn assert_still_serving(app: &TestApp, client: &Client) {
    let tokens = app.token_client_credentials(client, "still-serving").await;
    assert!(app.is_active(&tokens.access_token).await);
}

/// A token request with a hand-made body and client_secret_basic.
async fn post_raw_token(app: &TestApp, client: &Client, body: Vec<u8>) -> reqwest::Response {
    app.token_request()
        .basic_auth(&client.id, Some(&client.secret))
        .header(CONTENT_TYPE, FORM)
        .body(body)
        .send()
        .await
        .expect("POST /oauth2/token")
}

async fn post_form(
    app: &TestApp,
    path: &str,
    basic: (&str, &str),
    form: &[(&str, &str)],
) -> reqwest::Response {
    let request = app.http.post(app.url(path)).basic_auth(basic.0, Some(basic.1)).form(form);
    request.send().await.expect("POST a form")
}

#[tokio::test]
async fn a_body_of_exactly_the_size_limit_is_read() {
    let (app, client) = app_with_client().await;
    let mut body = b"grant_type=client_credentials&scope=exact&pad=".to_vec();
    body.resize(MAX_BODY, b'x');

    let tokens = crate::helpers::Tokens::from_response(post_raw_token(&app, &client, body).await).await;

    assert_eq!(tokens.scope.as_deref(), Some("exact"));
}

#[tokio::test]
async fn a_body_past_the_size_limit_is_refused_with_413() {
    let (app, client) = app_with_client().await;
    let mut body = b"grant_type=client_credentials&pad=".to_vec();
    body.resize(MAX_BODY + 1, b'x');

    let response = post_raw_token(&app, &client, body).await;
    assert_oauth_error(response, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;

    let huge = post("/oauth2/token", &[&format!("Content-Type: {FORM}")], &vec![b'a'; 8 << 20]);
    let ending = exchange(&authority(&app.base_url), &huge).await;
    assert!(ending == Ending::Status(413) || ending == Ending::Closed, "8 MiB body: {ending:?}");
    let chunk = format!("{:x}\r\n{}\r\n", 32 * 1024, "a".repeat(32 * 1024));
    let chunked = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(8)
    );
    let ending = exchange(&authority(&app.base_url), chunked.as_bytes()).await;
    assert!(ending == Ending::Status(413) || ending == Ending::Closed, "chunked: {ending:?}");
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn ten_thousand_parameters_are_an_invalid_request() {
    let (app, client) = app_with_client().await;
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let distinct: Vec<String> = (0..10_000)
        .map(|i| (0..3).map(|d| char::from(alphabet[i / 36usize.pow(d) % 36])).collect())
        .collect();
    let bodies = [distinct.join("&"), vec!["a"; 10_000].join("&")];

    for body in bodies {
        assert!(body.len() < MAX_BODY, "the body must stay under the size limit");
        let response = post_raw_token(&app, &client, body.into_bytes()).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn every_repeated_parameter_is_an_invalid_request() {
    let (app, client) = app_with_client().await;
    let (id, secret) = (client.id.as_str(), client.secret.as_str());
    let token_forms: [Vec<(&str, &str)>; 6] = [
        vec![("grant_type", "client_credentials"), ("grant_type", "password")],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_id", id),
            ("client_secret", secret),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("client_secret", secret),
        ],
        vec![("grant_type", "password"), ("username", ADMIN_USER), ("username", "x"), ("password", "admin")],
        vec![("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")],
        vec![("grant_type", "refresh_token"), ("refresh_token", "a"), ("refresh_token", "b")],
    ];
    for form in &token_forms {
        let response = app.token_request().form(form).send().await.expect("POST /oauth2/token");
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let response = post_form(&app, path, (id, secret), &[("token", "a"), ("token", "b")]).await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    }
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn bytes_that_are_not_utf8_get_a_clean_4xx_in_every_place() {
    let (app, client) = app_with_client().await;
    let fields =
        ["grant_type", "client_id", "client_secret", "username", "password", "scope", "refresh_token"];
    for field in fields {
        for bad in [&b"\xff\xfe"[..], b"%C0%AF", b"%ED%A0%80", b"%FF"] {
            let body =
                [b"grant_type=client_credentials&scope=a&".as_slice(), field.as_bytes(), b"=", bad].concat();
            let response = post_raw_token(&app, &client, body).await;
            assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_request").await;
        }
    }
    let authority = authority(&app.base_url);
    let raw_cases: [Vec<u8>; 3] = [
        post(
            "/oauth2/token",
            &[&format!("Content-Type: {FORM}"), "Authorization: Basic \u{ff}\u{fe}"],
            b"grant_type=client_credentials",
        ),
        b"POST /oauth2/tok\xffen HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_vec(),
        [
            &b"POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic "[..],
            b"\xc3\x28\xa0\xa1",
            b"\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat(),
    ];
    for request in raw_cases {
        let ending = exchange(&authority, &request).await;
        assert!(ending.is_clean_refusal(), "{:?}: {ending:?}", String::from_utf8_lossy(&request));
    }
    assert_still_serving(&app, &client).await;
}

/// The answers an honest request gets when one field is garbage: NUL bytes and SQL are data.
async fn assert_field_is_only_data(app: &TestApp, client: &Client, value: &str) {
    let (id, secret) = (client.id.as_str(), client.secret.as_str());
    for form in [
        vec![("grant_type", "client_credentials"), ("client_id", value), ("client_secret", secret)],
        vec![("grant_type", "client_credentials"), ("client_id", id), ("client_secret", value)],
    ] {
        let response = app.token_request().form(&form).send().await.expect("POST /oauth2/token");
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let basic = app
        .post_token(
            &Client { id: value.to_string(), ..client.clone() },
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_oauth_error(basic, StatusCode::UNAUTHORIZED, "invalid_client").await;
    for (username, password) in [(value, "admin"), (ADMIN_USER, value)] {
        let response = app.password_grant(client, username, password, "").await;
        assert_oauth_error(response, StatusCode::BAD_REQUEST, "invalid_grant").await;
    }
    let refresh = app.refresh_grant(client, value, None).await;
    assert_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let scoped = app.client_credentials_grant(client, value).await;
    match ScopeSet::parse(value) {
        Ok(set) => {
            let body = expect_json(scoped, StatusCode::OK).await;
            assert_eq!(body["scope"], set.to_string(), "the scope is echoed as the set it parses to");
        }
        Err(_) => {
            assert_oauth_error(scoped, StatusCode::BAD_REQUEST, "invalid_scope").await;
        }
    }
    assert_eq!(app.introspect(value).await, inactive());
    assert_revoke_ok(app.revoke(client, &[("token", value)]).await).await;
}

#[tokio::test]
async fn nul_bytes_in_any_field_are_refused_as_the_data_they_are() {
    let (app, client) = app_with_client().await;
    for value in ["\0", "admin\0", "a\0b", "\0' OR 1=1 --"] {
        assert_field_is_only_data(&app, &client, value).await;
    }
    let nul_header =
        post("/oauth2/token", &["Authorization: Basic a\0b", &format!("Content-Type: {FORM}")], b"");
    let ending = exchange(&authority(&app.base_url), &nul_header).await;
    assert!(ending.is_clean_refusal(), "a NUL in a header: {ending:?}");
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn sql_metacharacters_in_every_field_are_only_data() {
    let (app, client) = app_with_client().await;
    let events_before = app.events().len();

    for value in INJECTIONS {
        assert_field_is_only_data(&app, &client, value).await;
        let named = app.register_client_dcr(value, &["client_credentials"]).await;
        assert_eq!(named.name, value, "a client name is stored verbatim");
        let read =
            app.http.get(app.dcr_url(Some(&named.id))).basic_auth(ADMIN_USER, Some("admin")).send().await;
        let body = expect_json(read.expect("GET the client"), StatusCode::OK).await;
        assert_eq!(body["client_name"], value);
    }

    let events = app.events();
    assert!(events.len() > events_before, "the log grew and was never truncated");
    assert!(events.windows(2).all(|w| w[1].position == w[0].position + 1), "no event was lost");
    let admin = app.password_grant(&client, ADMIN_USER, INJECTIONS[0], "").await;
    assert_oauth_error(admin, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn a_one_megabyte_scope_is_refused_cleanly() {
    let (app, client) = app_with_client().await;
    let megabyte = "s".repeat(1 << 20);

    let body = format!("grant_type=client_credentials&scope={megabyte}");
    let in_body = post("/oauth2/token", &[&format!("Content-Type: {FORM}")], body.as_bytes());
    let ending = exchange(&authority(&app.base_url), &in_body).await;
    assert!(ending == Ending::Status(413) || ending == Ending::Closed, "a 1 MB body: {ending:?}");
    let under_the_body_limit = app.client_credentials_grant(&client, &"s".repeat(60_000)).await;
    assert_oauth_error(under_the_body_limit, StatusCode::BAD_REQUEST, "invalid_scope").await;
    let in_url = format!(
        "POST /oauth2/token?scope={megabyte} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    );
    let ending = exchange(&authority(&app.base_url), in_url.as_bytes()).await;
    assert!(ending.is_clean_refusal(), "a 1 MB URL: {ending:?}");
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn an_oversized_header_section_is_refused_cleanly() {
    let (app, client) = app_with_client().await;
    let many: Vec<String> = (0..1_000).map(|i| format!("X-Flood-{i}: {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let long = format!("X-Long: {}", "h".repeat(1 << 20));

    for headers in [many, vec![long.as_str()]] {
        let request = post("/oauth2/token", &headers, b"grant_type=client_credentials");
        let ending = exchange(&authority(&app.base_url), &request).await;
        assert!(ending.is_clean_refusal(), "{ending:?}");
    }
    let basic = app
        .token_request()
        .header(AUTHORIZATION, basic_header(&format!("{}:{}", "i".repeat(200_000), client.secret)))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    if let Ok(response) = basic {
        assert_oauth_error(response, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn five_hundred_idle_connections_do_not_keep_anyone_else_waiting() {
    let (app, client) = app_with_client().await;
    let idle = raw::idle_connections(&authority(&app.base_url), 500).await;

    let started = Instant::now();
    let tokens = join_all((0..20).map(|i| {
        let scope = format!("busy-{}", i % 4);
        let (app, client) = (&app, &client);
        async move { app.token_client_credentials(client, &scope).await }
    }))
    .await;

    assert_eq!(tokens.len(), 20);
    assert!(started.elapsed() < Duration::from_secs(10), "normal requests took {:?}", started.elapsed());
    drop(idle);
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn a_client_trickling_header_bytes_is_disconnected() {
    let (app, client) = app_with_client().await;
    let mut stream = raw::connect(&authority(&app.base_url)).await;
    stream.write_all(b"POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nX-Slow: ").await.expect("write");

    let trickling = trickle(&mut stream, b"a", Duration::from_millis(500), SLOW_CLIENT_CUTOFF);
    let ((ending, after), ()) = tokio::join!(trickling, assert_still_serving(&app, &client));

    assert!(ending.is_clean_refusal(), "after {after:?} of trickling: {ending:?}");
    assert_still_serving(&app, &client).await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_cut_off() {
    let (app, client) = app_with_client().await;
    let mut stream = raw::connect(&authority(&app.base_url)).await;
    let head = format!(
        "POST /oauth2/token HTTP/1.1\r\nHost: localhost\r\nContent-Type: {FORM}\r\nContent-Length: 1000\r\n\r\ngrant_type"
    );
    stream.write_all(head.as_bytes()).await.expect("write");

    let waiting = read_ending(&mut stream, Instant::now() + SLOW_CLIENT_CUTOFF);
    let (ending, ()) = tokio::join!(waiting, assert_still_serving(&app, &client));

    assert!(ending.is_clean_refusal(), "a stalled body: {ending:?}");
    assert_still_serving(&app, &client).await;
}
