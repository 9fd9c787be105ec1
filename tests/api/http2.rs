//! HTTP/2: a representative set of the API over TLS with ALPN `h2` (what curl and browsers
//! negotiate), and the protections HTTP/2 needs (stream and header-list bounds, the rapid-reset
//! defence, the body limit and timeouts) checked with a raw HTTP/2 client on cleartext HTTP/2
//! (prior knowledge), which the server also speaks. The whole suite also runs over HTTP/2 when
//! `TOKEN_LEDGER_TEST_HTTP2=1` (`.ci/run` does both passes).

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::{StatusCode, Version};
use tokio::net::TcpStream;

use crate::helpers::{expect_json, inactive, spawn_app, ConfigOverrides, TestApp, ADMIN_USER};

const FORM: &str = "application/x-www-form-urlencoded";

fn h2_over_tls() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client that offers h2 and http/1.1, as curl does")
}

#[tokio::test]
async fn tls_clients_that_offer_h2_get_the_whole_token_flow_over_http2() {
    let app = spawn_app(ConfigOverrides { https: true, ..ConfigOverrides::renewal_off() }).await;
    let http = h2_over_tls();
    let admin = (ADMIN_USER, Some(app.admin_password()));
    let registered = http
        .post(app.dcr_url(None))
        .basic_auth(admin.0, admin.1)
        .json(&serde_json::json!({"client_name": "h2-app", "grant_types": ["password", "refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.version(), Version::HTTP_2);
    let client = crate::helpers::Client::from_json(&expect_json(registered, StatusCode::CREATED).await);
    let token = |form: Vec<(&'static str, String)>| {
        http.post(app.url("/oauth2/token")).basic_auth(&client.id, Some(&client.secret)).form(&form).send()
    };
    let password = [("grant_type", "password"), ("username", ADMIN_USER), ("scope", "openid")];
    let mut form: Vec<(&str, String)> = password.iter().map(|(k, v)| (*k, v.to_string())).collect();
    form.push(("password", app.admin_password().to_owned()));
    let issued = token(form).await.unwrap();
    assert_eq!(issued.version(), Version::HTTP_2);
    let issued = expect_json(issued, StatusCode::OK).await;
    let refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    let refreshed =
        token(vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh)]).await.unwrap();
    let refreshed = expect_json(refreshed, StatusCode::OK).await;
    let introspect = |t: String| {
        http.post(app.url("/oauth2/introspect")).basic_auth(admin.0, admin.1).form(&[("token", t)]).send()
    };
    let old = introspect(issued["access_token"].as_str().unwrap().to_owned()).await.unwrap();
    assert_eq!(old.version(), Version::HTTP_2);
    assert_eq!(expect_json(old, StatusCode::OK).await, inactive(), "refreshed away");
    let new_access = refreshed["access_token"].as_str().unwrap().to_owned();
    let revoked = http
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("token", new_access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!((revoked.version(), revoked.status()), (Version::HTTP_2, StatusCode::OK));
    assert_eq!(expect_json(introspect(new_access).await.unwrap(), StatusCode::OK).await, inactive());
}

#[tokio::test]
async fn an_oversized_body_over_http2_is_refused_with_413() {
    let app = spawn_app(ConfigOverrides { https: true, ..ConfigOverrides::renewal_off() }).await;
    let body = vec![b'a'; 64 * 1024 + 1];
    let response = h2_over_tls()
        .post(app.url("/oauth2/token"))
        .header("content-type", FORM)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    let body = expect_json(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["error"], "invalid_request");
}

/// A raw HTTP/2 connection with prior knowledge (cleartext) to the server.
async fn h2_connect(
    app: &TestApp,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<Result<(), h2::Error>>) {
    let authority = app.base_url.trim_start_matches("http://").to_owned();
    let tcp = TcpStream::connect(&authority).await.expect("connect");
    let (send, connection) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    (send, tokio::spawn(connection))
}

fn post(app: &TestApp, path: &str) -> http::Request<()> {
    http::Request::post(app.url(path)).header("content-type", FORM).body(()).unwrap()
}

#[tokio::test]
async fn the_server_bounds_concurrent_streams_per_connection() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let (mut send, _connection) = h2_connect(&app).await;
    let (response, _) =
        send.send_request(http::Request::get(app.url("/health")).body(()).unwrap(), true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    assert_eq!(send.current_max_send_streams(), 100, "SETTINGS_MAX_CONCURRENT_STREAMS");
}

/// Opens `count` streams on one connection, each cancelled at once when `reset`; returns the
/// connection task's end, if the server ended the connection within 10 s of the last stream.
async fn flood(app: &TestApp, count: usize, reset: bool) -> Option<Result<(), h2::Error>> {
    let (mut send, connection) = h2_connect(app).await;
    for _ in 0..count {
        let Ok(ready) = send.clone().ready().await else { break };
        send = ready;
        let Ok((response, mut stream)) = send.send_request(post(app, "/oauth2/introspect"), !reset) else {
            break;
        };
        if reset {
            stream.send_reset(h2::Reason::CANCEL);
        } else {
            let _ = response.await;
        }
    }
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .ok()
        .map(|joined| joined.expect("the task"))
}

#[tokio::test]
async fn a_rapid_reset_flood_gets_the_connection_closed() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    // Control: the same number of ordinary requests keeps the connection open.
    assert!(flood(&app, 500, false).await.is_none(), "500 ordinary streams must not close the connection");

    // CVE-2023-44487: open streams and cancel them at once, as fast as the client can.
    let ended = flood(&app, 500, true).await.expect("the server closes a rapid-reset connection");

    let error = ended.expect_err("the connection ends with an error");
    let calm = error.is_go_away() && error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM);
    // The client may still be writing when the server closes: then it sees the closed socket.
    assert!(calm || error.is_io(), "{error:?}");
    // The service itself is unaffected.
    assert_eq!(app.http.get(app.url("/health")).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test]
async fn an_http2_body_that_stalls_gets_408_after_the_body_timeout() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let (mut send, _connection) = h2_connect(&app).await;
    let (response, mut body) = send.send_request(post(&app, "/oauth2/token"), false).unwrap();
    body.send_data(Bytes::from_static(b"grant_type=client_cre"), false).unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(20), response).await.expect("an answer").unwrap();
    assert_eq!(response.status(), 408);
    assert!(started.elapsed() >= Duration::from_secs(9), "answered after {:?}", started.elapsed());
}

#[tokio::test]
async fn an_http2_connection_that_sends_no_request_is_closed() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let started = Instant::now();
    let (_send, connection) = h2_connect(&app).await;
    let ended = tokio::time::timeout(Duration::from_secs(20), connection).await;
    assert!(ended.is_ok(), "an idle new HTTP/2 connection must not be kept open");
    assert!(started.elapsed() >= Duration::from_secs(9), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn an_oversized_http2_header_list_is_refused() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let (mut send, connection) = h2_connect(&app).await;
    let huge = "x".repeat(20 * 1024);
    let request = http::Request::get(app.url("/health")).header("x-padding", huge).body(()).unwrap();
    let refused = match send.send_request(request, true) {
        Ok((response, _)) => match response.await {
            Ok(r) => r.status() == 431,
            Err(_) => true,
        },
        Err(_) => true,
    };
    assert!(refused, "a 20 KiB header list is over the 16 KiB bound");
    drop(send);
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
}
