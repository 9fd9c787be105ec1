//! Faults under concurrent load, on several nodes sharing one PostgreSQL database: a node killed
//! with SIGKILL while tasks keep requesting through all three, and PostgreSQL itself stopped and
//! started under load. Nothing acknowledged is lost, the survivors answer without errors, and
//! no node answers a stale `active`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use reqwest::StatusCode;
use token_ledger::domain::types::Digest;

use crate::helpers::postgres::{assert_final_log_verifies, pg_cluster, spawn_nodes, spawn_nodes_on};
use crate::helpers::{Client, ConfigOverrides, TestApp, Tokens, ADMIN_USER};

/// Concurrent request loops.
const TASKS: usize = 6;

/// What a load saw: tokens acknowledged (with the node that issued them), answers by kind, and
/// every answer that breaks a guarantee.
#[derive(Default)]
struct Tally {
    acknowledged: Vec<(usize, String)>,
    unavailable: usize,
    failures: Vec<String>,
}

/// One introspection: `Some(active)` on 200, `None` on a 503 (the view cannot be proven
/// current); any other answer is an error.
async fn introspect(node: &TestApp, token: &str) -> Result<Option<bool>, String> {
    let response = node.introspect_with(Some((ADMIN_USER, node.admin_password())), &[("token", token)]).await;
    match response.status() {
        StatusCode::OK => {
            let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
            Ok(Some(body["active"] == true))
        }
        StatusCode::SERVICE_UNAVAILABLE => Ok(None),
        other => Err(format!("introspection answered {other}")),
    }
}

/// SIGKILL by pid, without waiting: the load keeps its borrow of the nodes.
fn kill_9(node: &TestApp) {
    let pid = node.pid().expect("the node runs").to_string();
    let status = std::process::Command::new("kill").args(["-KILL", &pid]).status().expect("run kill");
    assert!(status.success(), "kill -KILL {pid}");
}

/// The access-token digests of every TokenIssued event in the log.
fn issued_digests(node: &TestApp) -> HashSet<String> {
    node.events()
        .into_iter()
        .filter(|e| e.event_type == "TokenIssued")
        .filter_map(|e| e.payload["access_digest"].as_str().map(str::to_owned))
        .collect()
}

/// One task of the kill test: round-robin issues, each token introspected at once on the next
/// live node. Requests to node 0 after its kill are the load balancer's to retry, not errors.
async fn issue_round_robin(
    nodes: &[TestApp],
    client: &Client,
    task: usize,
    killed: &AtomicBool,
    tally: &Mutex<Tally>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut i = task;
    while tokio::time::Instant::now() < deadline {
        i += 1;
        let n = i % nodes.len();
        let scope = format!("t{task}-{i}");
        let sent = nodes[n]
            .token_request()
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("grant_type", "client_credentials"), ("scope", scope.as_str())])
            .send()
            .await;
        // Read after the answer: a request that was in flight when the kill came counts as
        // one to the dead node.
        let to_the_dead = n == 0 && killed.load(Ordering::SeqCst);
        let response = match sent {
            Ok(r) if r.status() == StatusCode::OK => r,
            _ if to_the_dead => continue,
            Ok(r) => {
                tally.lock().unwrap().failures.push(format!("node {n} answered {}", r.status()));
                continue;
            }
            Err(e) => {
                tally.lock().unwrap().failures.push(format!("node {n}: {e}"));
                continue;
            }
        };
        let token = Tokens::from_response(response).await.access_token;
        let next = 1 + (n % 2);
        match introspect(&nodes[next], &token).await {
            Ok(Some(true)) => {}
            other => {
                tally.lock().unwrap().failures.push(format!("node {next} on node {n}'s new token: {other:?}"))
            }
        }
        tally.lock().unwrap().acknowledged.push((n, token));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_concurrent_load_loses_nothing_and_the_others_answer_without_errors() {
    let Some(mut nodes) = spawn_nodes(3, ConfigOverrides::renewal_off()).await else { return };
    let client = nodes[0].register_client("load").await;
    let (killed, tally) = (AtomicBool::new(false), Mutex::new(Tally::default()));
    let load = join_all((0..TASKS).map(|task| issue_round_robin(&nodes, &client, task, &killed, &tally)));
    let kill = async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        killed.store(true, Ordering::SeqCst);
        kill_9(&nodes[0]);
    };
    tokio::join!(load, kill);
    nodes[0].kill().await;

    let tally = tally.into_inner().unwrap();
    assert!(tally.failures.is_empty(), "the surviving nodes failed: {:?}", tally.failures);
    let by_victim = tally.acknowledged.iter().filter(|(n, _)| *n == 0).count();
    assert!(by_victim > 0 && tally.acknowledged.len() > by_victim, "the load reached every node");
    let logged = issued_digests(&nodes[1]);
    for (n, token) in &tally.acknowledged {
        assert!(
            logged.contains(&Digest::of(token.as_bytes()).to_hex()),
            "node {n}'s token is not in the log"
        );
        for survivor in &nodes[1..] {
            assert!(survivor.is_active(token).await, "node {n}'s acknowledged token is not active");
        }
    }
    nodes[0].restart().await;
    let rejoined = nodes[0].token_client_credentials(&client, "after-restart").await;
    assert!(nodes[1].is_active(&rejoined.access_token).await);
    for (_, token) in tally.acknowledged.iter().step_by(5) {
        assert!(nodes[0].is_active(token).await, "the restarted node does not see an acknowledged token");
    }
    println!(
        "kill -9 under load: {} tokens acknowledged, {by_victim} by the killed node",
        tally.acknowledged.len()
    );
    assert_final_log_verifies(&nodes[0].config_url()).await;
}

/// One task of the outage test: issues (200, or 503 `server_error` with `Retry-After`) and
/// introspects a revoked token (never active) and a token it was given (never inactive).
async fn issue_and_probe(
    nodes: &[TestApp],
    client: &Client,
    revoked: &str,
    task: usize,
    until: tokio::time::Instant,
    tally: &Mutex<Tally>,
) {
    let mut i = task;
    let mut mine: Option<String> = None;
    while tokio::time::Instant::now() < until {
        i += 1;
        let node = &nodes[i % nodes.len()];
        let response = node.client_credentials_grant(client, &format!("o{task}-{i}")).await;
        let status = response.status();
        if status == StatusCode::OK {
            let token = Tokens::from_response(response).await.access_token;
            tally.lock().unwrap().acknowledged.push((i % nodes.len(), token.clone()));
            mine = Some(token);
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            let retry = response.headers().contains_key("retry-after");
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let mut tally = tally.lock().unwrap();
            tally.unavailable += 1;
            if !retry || body["error"] != "server_error" {
                tally.failures.push(format!("a 503 without Retry-After or server_error: {body}"));
            }
        } else {
            tally.lock().unwrap().failures.push(format!("a write answered {status}"));
        }
        let probes = [(revoked.to_owned(), false)].into_iter().chain(mine.clone().map(|t| (t, true)));
        for (token, live) in probes {
            match introspect(node, &token).await {
                Ok(None) => tally.lock().unwrap().unavailable += 1,
                Ok(Some(active)) if active == live => {}
                other => tally
                    .lock()
                    .unwrap()
                    .failures
                    .push(format!("a stale answer {other:?}, expected active={live}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// PostgreSQL stopped and started while tasks issue and introspect through two nodes: writes
/// answer 200 or 503 `server_error` with `Retry-After`, introspection is never stale (503
/// instead), the nodes recover without a restart, nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_under_concurrent_load_loses_nothing_and_is_never_stale() {
    let Some(cluster) = pg_cluster::own_cluster() else { return };
    let cluster = std::sync::Arc::new(cluster);
    let c = cluster.clone();
    let url = tokio::task::spawn_blocking(move || c.create_database()).await.expect("create a database");
    let config = ConfigOverrides { postgres_url: Some(url), ..ConfigOverrides::renewal_off() };
    let nodes = spawn_nodes_on(2, config).await;
    let client = nodes[0].register_client("outage").await;
    let revoked = nodes[0].token_client_credentials(&client, "revoked").await.access_token;
    nodes[1].revoke_token(&client, &revoked).await;

    let tally = Mutex::new(Tally::default());
    let until = tokio::time::Instant::now() + Duration::from_secs(6);
    let load =
        join_all((0..TASKS).map(|task| issue_and_probe(&nodes, &client, &revoked, task, until, &tally)));
    let outage = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.stop_server()).await.expect("join").expect("stop PostgreSQL");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.start_server()).await.expect("join").expect("start PostgreSQL");
    };
    tokio::join!(load, outage);
    let tally = tally.into_inner().unwrap();
    assert!(tally.failures.is_empty(), "{:?}", tally.failures);
    assert!(tally.unavailable > 0, "the outage was seen as 503s");

    // Recovered by itself: every node writes and answers again, and nothing acknowledged is gone.
    for node in &nodes {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while node.client_credentials_grant(&client, "after").await.status() != StatusCode::OK {
            assert!(tokio::time::Instant::now() < deadline, "a node did not recover within 20 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let logged = issued_digests(&nodes[0]);
    for (n, token) in &tally.acknowledged {
        assert!(
            logged.contains(&Digest::of(token.as_bytes()).to_hex()),
            "node {n}'s token is not in the log"
        );
        for node in &nodes {
            assert!(node.is_active(token).await, "an acknowledged token is not active after the outage");
        }
    }
    assert!(!nodes[0].is_active(&revoked).await && !nodes[1].is_active(&revoked).await);
    println!(
        "outage under load: {} tokens acknowledged, {} answers 503",
        tally.acknowledged.len(),
        tally.unavailable
    );
    assert_final_log_verifies(&nodes[0].config_url()).await;
}
