//! The harness every test uses: a real `token-ledger` process on its own temporary folder, and
//! short methods for the requests the specifications make.

mod agent;
mod app;
mod config;
mod database;
mod deployment;
mod events;
mod oauth;
pub mod postgres;
mod tools;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use reqwest::{Response, StatusCode};
use serde_json::Value;

pub use agent::{
    authorize_url, page_form, param, query_of, see_other, Agent, ALICE, CALLBACK, CHALLENGE, VERIFIER,
};
pub use app::{assert_revoke_ok, spawn_app, TestApp};
pub use config::{ConfigOverrides, ADMIN_USER};
pub use database::SqlValue;
pub use deployment::Deployment;
pub use events::{count_of, revocation_reasons};
pub use oauth::{Client, Tokens};
pub use tools::{in_ci, tool_available};

/// Exactly what introspection must say about anything that is not live.
pub fn inactive() -> Value {
    serde_json::json!({"active": false})
}

pub fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers.get(name).map(|v| v.to_str().unwrap_or("<not ascii>").to_string()).unwrap_or_default()
}

/// Asserts the status and returns the JSON body, showing the body when either is wrong.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("read the response body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"))
}

/// Asserts an RFC 6749 §5.2 error: the status, the `error` code and an `error_description`;
/// `invalid_client` must also carry `WWW-Authenticate`.
pub async fn assert_oauth_error(response: Response, status: StatusCode, error: &str) -> Value {
    let has_challenge = response.headers().contains_key("www-authenticate");
    let body = expect_json(response, status).await;
    assert_eq!(body["error"], error, "wrong error code in {body}");
    assert!(body["error_description"].is_string(), "error_description missing in {body}");
    if error == "invalid_client" {
        assert!(has_challenge, "a 401 invalid_client must carry WWW-Authenticate");
    }
    body
}

/// Asserts a clean refusal: any 4xx, never a 5xx.
pub async fn assert_client_error(response: Response) {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    assert!(status.is_client_error(), "expected a 4xx, got {status}: {body}");
}

/// `Basic base64(raw)` for hand-made, possibly broken, headers.
pub fn basic_header(raw: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
}

/// A random, unguessable value, so that finding it in a file cannot be a coincidence.
pub fn unique_secret(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// Every regular file under `root`, recursively.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a folder") {
            let path = entry.expect("folder entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
