//! The scripted history every read-only test shares: one real server, driven through a known
//! sequence of requests, with the wall-clock instant after each step (a "mark") and the view
//! that must hold at that instant. Built once per test run, on first use.
//!
//! Client A, user tokens living 3 s, reuse grace 0 s, renewal off:
//!  1. T1 = password "read"; T2 = client_credentials "cc"; "read" again hands T1 back
//!  2. T3 = refresh of T1 (T1 refreshed); T2 revoked by its client
//!  3. T4 = password "write"; T1's rotated refresh token replayed: family (T3) revoked
//!  4. T4 expires; T5 = password "write" replaces it and carries T4's refresh token (IDENTITY-6777)
//!  5. client B registered, T6 = its client_credentials token, B deleted (T6 revoked)
//!  6. T7 = client_credentials "cc2"; restart with renewal on; T8 = "cc2" again renews T7

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::deployment::{Config, Deployment};
use super::server::{Client, Grant, Server};

/// The lifetime of the user tokens of the history, in milliseconds.
pub const USER_TOKEN_MS: i64 = 3_000;

/// A token of the history: its values and when it was asked for.
#[derive(Debug, Clone)]
pub struct Token {
    pub access: String,
    pub refresh: Option<String>,
    /// The request that issued it.
    pub request_id: String,
    /// Wall-clock bounds of its issuing request, in ms.
    pub sent: i64,
    pub received: i64,
    pub lifetime_ms: i64,
}

impl Token {
    /// Whether it is surely live (`Some(true)`), surely expired (`Some(false)`) at `at`, or too
    /// close to its expiry to say.
    pub fn live_at(&self, at: i64) -> Option<bool> {
        if at < self.sent + self.lifetime_ms - 100 {
            Some(true)
        } else if at >= self.received + self.lifetime_ms {
            Some(false)
        } else {
            None
        }
    }
}

/// An instant between two steps and the view rows (token names) the log holds then.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: i64,
    pub view: Vec<&'static str>,
}

pub struct History {
    pub deployment: Deployment,
    pub client_a: Client,
    pub client_b: Client,
    pub tokens: BTreeMap<&'static str, Token>,
    /// Request ids of the steps that issued no token.
    pub requests: BTreeMap<&'static str, String>,
    pub marks: Vec<Mark>,
    /// The super admin's introspection of every token value (access and refresh) at the end.
    pub introspections: Vec<(String, Value)>,
}

impl History {
    pub fn token(&self, name: &str) -> &Token {
        &self.tokens[name]
    }

    pub fn request(&self, step: &str) -> &str {
        &self.requests[step]
    }
}

/// The history, built on first use.
pub fn history() -> &'static History {
    static HISTORY: OnceLock<History> = OnceLock::new();
    HISTORY.get_or_init(build)
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_millis() as i64
}

struct Recorder {
    tokens: BTreeMap<&'static str, Token>,
    requests: BTreeMap<&'static str, String>,
    marks: Vec<Mark>,
}

impl Recorder {
    fn issue(&mut self, name: &'static str, lifetime_ms: i64, ask: impl FnOnce() -> Grant) -> Token {
        let sent = now_ms();
        let grant = ask();
        let token = Token {
            access: grant.access_token,
            refresh: grant.refresh_token,
            request_id: grant.request_id,
            sent,
            received: now_ms(),
            lifetime_ms,
        };
        self.tokens.insert(name, token.clone());
        token
    }

    /// Marks the instant after a step; the next step starts strictly later.
    fn mark(&mut self, view: &[&'static str]) {
        self.marks.push(Mark { at: now_ms(), view: view.to_vec() });
        std::thread::sleep(Duration::from_millis(5));
    }
}

const APP_TOKEN_MS: i64 = 3_600_000;
const HISTORY_PREFIX: &str = "history-";

/// The history lives in a static, which is never dropped, so each run removes the folders that
/// earlier runs left (any older than ten minutes: a run takes seconds).
fn sweep_old_histories() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(600)));
        if old && entry.file_name().to_string_lossy().starts_with(HISTORY_PREFIX) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn build() -> History {
    let config = Config {
        user_access_token_validity: "3s",
        refresh_token_reuse_grace_period: "0s",
        ..Config::default()
    };
    sweep_old_histories();
    let deployment = Deployment::with_prefix(HISTORY_PREFIX, &config);
    let server = Server::start(&deployment);
    let mut r = Recorder { tokens: BTreeMap::new(), requests: BTreeMap::new(), marks: Vec::new() };
    let a = server.register("history-a");
    r.mark(&[]);
    let t1 = r.issue("T1", USER_TOKEN_MS, || server.password(&a, "read"));
    r.mark(&["T1"]);
    r.issue("T2", APP_TOKEN_MS, || server.client_credentials(&a, "cc"));
    r.mark(&["T1", "T2"]);
    let again = server.password(&a, "read");
    assert_eq!(again.access_token, t1.access, "renewal off hands T1 back");
    r.requests.insert("returned", again.request_id);
    r.mark(&["T1", "T2"]);
    let t1_refresh = t1.refresh.clone().expect("T1 has a refresh token");
    r.issue("T3", USER_TOKEN_MS, || server.refresh(&a, &t1_refresh));
    r.mark(&["T2", "T3"]);
    let revoked = server.revoke(&a, &r.tokens["T2"].access);
    r.requests.insert("revoke T2", revoked);
    r.mark(&["T3"]);
    let t4 = r.issue("T4", USER_TOKEN_MS, || server.password(&a, "write"));
    r.mark(&["T3", "T4"]);
    let reuse = server.refresh_refused(&a, &t1_refresh);
    r.requests.insert("reuse", reuse);
    r.mark(&["T4"]);
    let expired = t4.received + USER_TOKEN_MS + 300;
    std::thread::sleep(Duration::from_millis((expired - now_ms()).max(0) as u64));
    r.mark(&["T4"]);
    let t5 = r.issue("T5", USER_TOKEN_MS, || server.password(&a, "write"));
    assert_eq!(t5.refresh, t4.refresh, "IDENTITY-6777: T4's refresh token is carried over");
    r.mark(&["T5"]);
    let b = server.register("history-b");
    r.issue("T6", APP_TOKEN_MS, || server.client_credentials(&b, ""));
    r.mark(&["T5", "T6"]);
    r.requests.insert("delete B", server.delete_client(&b));
    r.mark(&["T5"]);
    r.issue("T7", APP_TOKEN_MS, || server.client_credentials(&a, "cc2"));
    r.mark(&["T5", "T7"]);
    server.stop();
    deployment.configure(&Config { renew_access_token_per_request: true, ..config });
    let server = Server::start(&deployment);
    r.issue("T8", APP_TOKEN_MS, || server.client_credentials(&a, "cc2"));
    r.mark(&["T5", "T8"]);
    let mut introspections = Vec::new();
    for token in r.tokens.values() {
        for value in std::iter::once(&token.access).chain(token.refresh.as_ref()) {
            introspections.push((value.clone(), server.introspect(value)));
        }
    }
    server.stop();
    History {
        deployment,
        client_a: a,
        client_b: b,
        tokens: r.tokens,
        requests: r.requests,
        marks: r.marks,
        introspections,
    }
}
