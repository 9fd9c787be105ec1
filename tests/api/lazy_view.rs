//! Start-up with the active-token view loading in the background (issue 9): while it loads the
//! server answers from the SQL view, and whatever is revoked, refreshed or issued meanwhile
//! stays so once the view is loaded. The loader is held after reading its snapshot by a test
//! hook in the server's environment (`TOKEN_LEDGER_TEST_VIEW_GATE`), so every write below comes
//! after the snapshot and must be replayed over it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{expect_json, spawn_app, Client, ConfigOverrides, TestApp, Tokens, ADMIN_USER};

const SNAPSHOT_READ: &str = "read the active-token view snapshot";
const READY: &str = "active-token view ready";

fn logged(app: &TestApp, line: &str) -> usize {
    String::from_utf8_lossy(&app.logs()).matches(line).count()
}

/// Waits until the server has logged `line` `times` times in all.
async fn wait_for_log(app: &TestApp, line: &str, times: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while logged(app, line) < times {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `{line}` in the log:\n{}",
            String::from_utf8_lossy(&app.logs())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn active_tokens_metric(app: &TestApp) -> String {
    let response =
        app.http.get(app.url("/metrics")).basic_auth(ADMIN_USER, Some("admin")).send().await.unwrap();
    let text = response.text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("ledger_active_tokens ")).expect("the gauge");
    line.rsplit(' ').next().unwrap().to_owned()
}

async fn userinfo(app: &TestApp, token: &str) -> (StatusCode, Option<Value>) {
    let response =
        app.http.get(app.url("/oauth2/userinfo")).bearer_auth(token).send().await.expect("GET userinfo");
    let status = response.status();
    (status, response.json().await.ok())
}

/// What the service says of every token of the scenario, in order.
async fn answers(app: &TestApp, tokens: &[&str]) -> Vec<Value> {
    let mut all = Vec::new();
    for token in tokens {
        all.push(app.introspect(token).await);
    }
    all
}

/// The writes made while the view loads: a revocation, a refresh, a new token.
async fn write_while_loading(app: &TestApp, client: &Client, doomed: &Tokens, rotated: &Tokens) -> Tokens {
    assert!(app.is_active(&doomed.access_token).await);
    app.revoke_token(client, &doomed.access_token).await;
    assert!(!app.is_active(&doomed.access_token).await, "the revocation holds at once");
    let refreshed = app.token_refresh(client, rotated.refresh(), None).await;
    assert!(!app.is_active(&rotated.access_token).await && !app.is_active(rotated.refresh()).await);
    refreshed
}

#[tokio::test]
async fn introspection_revocation_and_refresh_answer_while_the_view_loads_and_hold_once_it_is_loaded() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("lazy-view").await;
    let kept = app.token_admin(&client, "openid").await;
    let doomed = app.token_client_credentials(&client, "doomed").await;
    let rotated = app.token_admin(&client, "rotated").await;
    let kept_before = app.introspect(&kept.access_token).await;
    wait_for_log(&app, READY, 1).await;
    let gate = app.data_dir().join("view-gate");
    app.set_server_env("TOKEN_LEDGER_TEST_VIEW_GATE", gate.to_str().unwrap());
    app.kill_and_restart().await;
    wait_for_log(&app, SNAPSHOT_READ, 2).await;

    // Held after its snapshot: the SQL view answers.
    assert_eq!(app.introspect(&kept.access_token).await, kept_before);
    let refreshed = write_while_loading(&app, &client, &doomed, &rotated).await;
    let fresh = app.token_client_credentials(&client, "fresh").await;
    let (status, claims) = userinfo(&app, &kept.access_token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(claims.unwrap()["sub"], ADMIN_USER);
    assert_eq!(userinfo(&app, &doomed.access_token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(active_tokens_metric(&app).await, "3", "counted in the SQL view while loading");
    let tokens = [
        kept.access_token.as_str(),
        doomed.access_token.as_str(),
        rotated.access_token.as_str(),
        rotated.refresh(),
        refreshed.access_token.as_str(),
        refreshed.refresh(),
        fresh.access_token.as_str(),
    ];
    let while_loading = answers(&app, &tokens).await;
    let live: Vec<bool> = while_loading.iter().map(|a| a["active"] == true).collect();
    assert_eq!(live, [true, false, false, false, true, true, true]);
    assert_eq!(logged(&app, READY), 1, "still loading");

    std::fs::write(&gate, b"").unwrap();
    wait_for_log(&app, READY, 2).await;

    // The memory view answers now, exactly as the SQL view did.
    assert_eq!(answers(&app, &tokens).await, while_loading);
    assert_eq!(userinfo(&app, &doomed.access_token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(active_tokens_metric(&app).await, "3");
    app.revoke_token(&client, &fresh.access_token).await;
    assert!(!app.is_active(&fresh.access_token).await);
}

#[tokio::test]
async fn a_server_whose_view_is_still_loading_answers_an_unknown_token_inactive() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    wait_for_log(&app, READY, 1).await;
    let gate = app.data_dir().join("never-opened");
    app.set_server_env("TOKEN_LEDGER_TEST_VIEW_GATE", gate.to_str().unwrap());
    app.kill_and_restart().await;
    wait_for_log(&app, SNAPSHOT_READ, 2).await;
    let body = app.introspect("no-such-token").await;
    assert_eq!(body, crate::helpers::inactive());
    let response = app.introspect_with(Some((ADMIN_USER, "admin")), &[]).await;
    let error = expect_json(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(error["error"], "invalid_request");
}
