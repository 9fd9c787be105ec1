//! Operating the service: readiness, Prometheus metrics, request ids, JSON logs, the issuer
//! and its metadata locations, and the OpenAPI document.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{expect_json, spawn_app, ConfigOverrides, TestApp, ADMIN_USER};

async fn get_json(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn ready_answers_200_with_the_log_position_when_writable_and_caught_up() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let (status, body) = get_json(&app, "/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert!(body["position"].as_i64().is_some_and(|p| p >= 1), "the super admin was added: {body}");
}

#[tokio::test]
async fn ready_answers_503_with_the_reason_while_the_views_are_behind_the_log() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    app.sql_execute("UPDATE checkpoints SET position = position - 1 WHERE projection = 'views'").unwrap();

    let (status, body) = get_json(&app, "/health/ready").await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(body["reason"].as_str().unwrap().contains("behind the log"), "{body}");
    let (live, _) = get_json(&app, "/health").await;
    assert_eq!(live, StatusCode::OK, "liveness is not readiness");
}

fn line<'a>(metrics: &'a str, prefix: &str) -> Option<&'a str> {
    metrics.lines().find(|l| l.starts_with(prefix))
}

fn value(metrics: &str, prefix: &str) -> f64 {
    let found = line(metrics, prefix).unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"));
    found.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn metrics_on_the_main_port_are_for_the_super_admin_and_count_what_happened() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("metrics-app").await;
    let first = app.token_admin(&client, "openid").await;
    let again = app.token_admin(&client, "openid").await;
    assert_eq!(again.access_token, first.access_token);
    app.password_grant(&client, ADMIN_USER, "wrong-password", "openid").await;
    app.introspect(&first.access_token).await;
    let dcr_read =
        app.http.get(app.dcr_url(Some(&client.id))).basic_auth(ADMIN_USER, Some("admin")).send().await;
    assert_eq!(dcr_read.unwrap().status(), StatusCode::OK);

    let anonymous = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let response =
        app.http.get(app.url("/metrics")).basic_auth(ADMIN_USER, Some("admin")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(crate::helpers::header(response.headers(), "content-type")
        .starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();

    let outcome = |grant: &str, outcome: &str| {
        value(&text, &format!("ledger_token_outcomes_total{{grant=\"{grant}\",outcome=\"{outcome}\"}}"))
    };
    assert_eq!(outcome("password", "issued"), 1.0);
    assert_eq!(outcome("password", "returned"), 1.0);
    assert_eq!(outcome("password", "refused"), 1.0);
    assert_eq!(value(&text, "ledger_events_appended_total{event_type=\"ClientRegistered\"}"), 1.0);
    assert_eq!(value(&text, "ledger_events_appended_total{event_type=\"AuthenticationFailed\"}"), 1.0);
    assert_eq!(value(&text, "ledger_active_tokens "), 1.0);
    assert_eq!(value(&text, "ledger_writer_queue_depth "), 0.0);
    assert!(value(&text, "ledger_writer_batch_size_count ") >= 3.0, "{text}");
    assert!(value(&text, "ledger_writer_commit_seconds_count ") >= 3.0, "{text}");
    assert!(line(&text, "ledger_lockouts_active ").is_some(), "{text}");
    let token_200 = "ledger_http_requests_total{route=\"/oauth2/token\",method=\"POST\",status=\"200\"}";
    assert_eq!(value(&text, token_200), 2.0);
    assert!(line(&text, "ledger_http_request_duration_seconds_count{route=\"/oauth2/introspect\"}").is_some());
    // Route templates, never raw paths; no secret anywhere.
    assert!(text.contains("route=\"/api/identity/oauth2/dcr/v1.1/register/{client_id}\""), "{text}");
    for secret in [&client.id, &client.secret, &first.access_token, first.refresh()] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }
}

#[tokio::test]
async fn metrics_on_their_own_listener_need_no_credentials_and_leave_the_main_port() {
    let app = spawn_app(ConfigOverrides { monitoring_port: Some(0), ..ConfigOverrides::renewal_off() }).await;
    let url = app.metrics_url().expect("the server printed `metrics on URL`");
    assert_ne!(url, app.url("/metrics"));
    assert_eq!(app.http.get(app.url("/health")).send().await.unwrap().status(), StatusCode::OK);

    let response = app.http.get(&url).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("ledger_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 1"),
        "{text}"
    );
    let main = app.http.get(app.url("/metrics")).basic_auth(ADMIN_USER, Some("admin")).send().await.unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
}

/// The `request_id` column of the events a request appended.
fn request_ids(app: &TestApp, event_type: &str) -> Vec<String> {
    let events = app.events().into_iter().filter(|e| e.event_type == event_type);
    events.map(|e| e.request_id.unwrap_or_default()).collect()
}

#[tokio::test]
async fn a_sane_x_request_id_is_echoed_and_recorded_in_the_event_log() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("rid-app").await;
    let response = app
        .token_request()
        .basic_auth(&client.id, Some(&client.secret))
        .header("X-Request-ID", "trace-4bf92f35.77:1")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(crate::helpers::header(response.headers(), "x-request-id"), "trace-4bf92f35.77:1");
    expect_json(response, StatusCode::OK).await;
    assert_eq!(request_ids(&app, "TokenIssued"), ["trace-4bf92f35.77:1"]);
}

#[tokio::test]
async fn an_unsafe_or_overlong_x_request_id_is_replaced_by_a_generated_one() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("rid-app").await;
    for (i, bad) in ["has space\"quote", &"a".repeat(65)].into_iter().enumerate() {
        let response = app
            .token_request()
            .basic_auth(&client.id, Some(&client.secret))
            .header("X-Request-ID", bad)
            .form(&[("grant_type", "client_credentials"), ("scope", &format!("s{i}"))])
            .send()
            .await
            .unwrap();
        let echoed = crate::helpers::header(response.headers(), "x-request-id");
        expect_json(response, StatusCode::OK).await;
        assert_ne!(echoed, bad);
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
        assert_eq!(request_ids(&app, "TokenIssued")[i], echoed, "the log has the id the caller was told");
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let app = spawn_app(ConfigOverrides {
        log_format: "json",
        rust_log: Some("info,token_ledger=debug"),
        ..ConfigOverrides::renewal_off()
    })
    .await;
    let response =
        app.http.get(app.url("/health")).header("X-Request-ID", "json-log-probe").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.http.get(app.url("/no/such/path?secret=x")).send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let logs = String::from_utf8_lossy(&app.logs()).into_owned();
    let objects: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
        .collect();
    let request = objects.iter().find(|o| o["request_id"] == "json-log-probe").expect("the request line");
    assert_eq!(request["message"], "request");
    assert_eq!(request["level"], "DEBUG");
    assert_eq!(request["route"], "/health");
    assert_eq!(request["status"], 200);
    assert!(request["duration_us"].is_u64(), "{request}");
    assert!(request["timestamp"].as_str().is_some_and(|t| t.contains('T')), "{request}");
    let unmatched = objects.iter().find(|o| o["status"] == 404).expect("the 404 line");
    assert_eq!(unmatched["route"], "unmatched", "raw paths never reach the log: {unmatched}");
    assert!(!logs.contains("secret=x"));
}

#[tokio::test]
async fn the_issuer_is_the_token_endpoint_in_metadata_found_by_path_insertion() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let port = app.base_url.rsplit(':').next().unwrap();
    let issuer = format!("http://localhost:{port}/oauth2/token");
    let (status, inserted) = get_json(&app, "/.well-known/oauth-authorization-server/oauth2/token").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inserted["issuer"], issuer.as_str());
    assert_eq!(inserted["token_endpoint"], issuer.as_str(), "the issuer is the token endpoint URL");
    let (_, bare) = get_json(&app, "/.well-known/oauth-authorization-server").await;
    assert_eq!(bare, inserted, "the old location keeps answering the same document");
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let (status, served) = get_json(&app, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    let committed: Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(served, committed, "regenerate it: cargo run -- openapi > openapi.json");
    assert_eq!(served["openapi"], "3.1.0");
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke", "/health/ready", "/metrics"] {
        assert!(served["paths"].get(path).is_some(), "{path} is in the contract");
    }
}
