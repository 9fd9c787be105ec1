//! Several nodes, one log: three `token-ledger serve` processes on one PostgreSQL database,
//! requests spread over them. Every guarantee of one node must hold across nodes.

use std::collections::HashSet;

use futures::future::join_all;
use reqwest::StatusCode;

use crate::helpers::postgres::{assert_final_log_verifies, spawn_nodes};
use crate::helpers::{assert_revoke_ok, inactive, ConfigOverrides, TestApp, Tokens};

const NODES: usize = 3;

/// The node a request number goes to, round-robin.
fn node(nodes: &[TestApp], i: usize) -> &TestApp {
    &nodes[i % nodes.len()]
}

#[tokio::test]
async fn a_token_issued_on_one_node_is_active_on_every_node_at_once() {
    let Some(nodes) = spawn_nodes(NODES, ConfigOverrides::renewal_off()).await else { return };
    let client = nodes[0].register_client("spread").await;
    for i in 0..9 {
        let scope = format!("s{i}");
        let tokens = node(&nodes, i).token_client_credentials(&client, &scope).await;
        // Straight to the next node: its view must already have the token.
        let seen = node(&nodes, i + 1).introspect(&tokens.access_token).await;
        assert_eq!(
            seen["active"],
            true,
            "node {} does not see node {}'s token: {seen}",
            (i + 1) % NODES,
            i % NODES
        );
        assert_eq!(seen["scope"], scope.as_str());
    }
}

#[tokio::test]
async fn a_burst_for_one_key_across_nodes_gets_one_token_when_renewal_is_off() {
    let Some(nodes) = spawn_nodes(NODES, ConfigOverrides::renewal_off()).await else { return };
    let client = nodes[1].register_client("burst").await;
    let responses =
        join_all((0..30).map(|i| node(&nodes, i).client_credentials_grant(&client, "read"))).await;
    let tokens = join_all(responses.into_iter().map(Tokens::from_response)).await;
    let distinct: HashSet<_> = tokens.iter().map(|t| t.access_token.clone()).collect();
    assert_eq!(distinct.len(), 1, "{} tokens for one key across {NODES} nodes", distinct.len());
}

#[tokio::test]
async fn a_burst_for_one_key_across_nodes_leaves_one_active_token_when_renewal_is_on() {
    let Some(nodes) = spawn_nodes(NODES, ConfigOverrides::renewal_on()).await else { return };
    let client = nodes[2].register_client("burst").await;
    let responses =
        join_all((0..30).map(|i| node(&nodes, i).client_credentials_grant(&client, "read"))).await;
    let tokens = join_all(responses.into_iter().map(Tokens::from_response)).await;
    let distinct: HashSet<_> = tokens.iter().map(|t| t.access_token.clone()).collect();
    assert_eq!(distinct.len(), 30, "renewal on: each request gets its own token");
    for (n, app) in nodes.iter().enumerate() {
        let activity = join_all(distinct.iter().map(|t| app.is_active(t))).await;
        let active = activity.into_iter().filter(|a| *a).count();
        assert_eq!(active, 1, "node {n} sees {active} active tokens for one key");
    }
}

#[tokio::test]
async fn a_token_revoked_on_one_node_is_inactive_on_the_others_at_once() {
    let Some(nodes) = spawn_nodes(NODES, ConfigOverrides::renewal_off()).await else { return };
    let client = nodes[0].register_client("revoker").await;
    for round in 0..5 {
        let scope = format!("r{round}");
        let tokens = nodes[round % NODES].token_client_credentials(&client, &scope).await;
        assert!(nodes[(round + 2) % NODES].is_active(&tokens.access_token).await);
        nodes[(round + 1) % NODES].revoke_token(&client, &tokens.access_token).await;
        let views = join_all(nodes.iter().map(|n| n.introspect(&tokens.access_token))).await;
        for (n, view) in views.into_iter().enumerate() {
            assert_eq!(view, inactive(), "round {round}: node {n} still answers {view}");
        }
    }
}

#[tokio::test]
async fn concurrent_refreshes_of_one_refresh_token_through_different_nodes_have_exactly_one_winner() {
    let Some(nodes) = spawn_nodes(NODES, ConfigOverrides::renewal_off()).await else { return };
    let client = nodes[0].register_client("refresher").await;
    let first = nodes[0].token_password(&client, "admin", "admin", "openid").await;
    let responses =
        join_all((0..12).map(|i| node(&nodes, i).refresh_grant(&client, first.refresh(), None))).await;
    let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
    let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(winners, 1, "statuses: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST), "{statuses:?}");
}

#[tokio::test]
async fn a_client_deleted_on_one_node_is_refused_and_its_tokens_inactive_on_every_node() {
    let Some(nodes) = spawn_nodes(NODES, ConfigOverrides::renewal_off()).await else { return };
    let client = nodes[0].register_client_dcr("doomed", &["client_credentials"]).await;
    let tokens = nodes[1].token_client_credentials(&client, "read").await;
    // Warm every node's client cache, so the deletion must reach the caches too.
    for n in &nodes {
        assert!(n.is_active(&tokens.access_token).await);
        n.token_client_credentials(&client, "read").await;
    }
    let deleted = nodes[2]
        .http
        .delete(nodes[2].dcr_url(Some(&client.id)))
        .basic_auth("admin", Some(nodes[2].admin_password()))
        .send()
        .await
        .expect("DELETE the client");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n.introspect(&tokens.access_token).await, inactive(), "node {i}");
        let refused = n.client_credentials_grant(&client, "read").await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "node {i} still accepts the deleted client");
    }
}

#[tokio::test]
async fn a_killed_node_loses_nothing_it_acknowledged_and_the_others_keep_serving() {
    let Some(mut nodes) = spawn_nodes(NODES, ConfigOverrides::renewal_off()).await else { return };
    let client = nodes[0].register_client("crash").await;
    let mut acknowledged = Vec::new();
    for i in 0..12 {
        let response = node(&nodes, i).client_credentials_grant(&client, &format!("k{i}")).await;
        acknowledged.push(Tokens::from_response(response).await.access_token);
    }
    nodes[0].kill().await;
    for (i, token) in acknowledged.iter().enumerate() {
        let n = &nodes[1 + i % (NODES - 1)];
        assert!(n.is_active(token).await, "token {i} acknowledged before the kill is gone");
    }
    let during = nodes[1].token_client_credentials(&client, "after-kill").await;
    nodes[0].restart().await;
    assert!(nodes[0].is_active(&during.access_token).await, "the restarted node rejoined the log");
    for token in &acknowledged {
        assert!(nodes[0].is_active(token).await);
    }
    let url = nodes[0].config_url();
    assert!(assert_final_log_verifies(&url).await >= 14);
}

#[tokio::test]
async fn a_revocation_reaches_every_node_through_the_same_log_position() {
    let Some(nodes) = spawn_nodes(2, ConfigOverrides::renewal_off()).await else { return };
    let client = nodes[0].register_client("positions").await;
    let tokens = nodes[0].token_client_credentials(&client, "p").await;
    assert_revoke_ok(nodes[1].revoke(&client, &[("token", &tokens.access_token)]).await).await;
    let health = join_all(nodes.iter().map(|n| async move {
        let response = n.http.get(n.url("/health")).send().await.expect("GET /health");
        response.json::<serde_json::Value>().await.expect("health JSON")
    }))
    .await;
    assert_eq!(health[0]["position"], health[1]["position"], "one log, one checkpoint: {health:?}");
}

/// PostgreSQL stopped under load: writes answer 503 `server_error` with `Retry-After`,
/// introspection 503 rather than a possibly stale `active`; once it is back every node recovers
/// by itself and nothing acknowledged is lost.
#[tokio::test]
async fn postgres_stopped_and_started_under_load_answers_503_then_recovers_by_itself() {
    let Some(cluster) = crate::helpers::postgres::pg_cluster::own_cluster() else { return };
    let cluster = std::sync::Arc::new(cluster);
    let url = {
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.create_database()).await.expect("create the database")
    };
    let config = ConfigOverrides { postgres_url: Some(url), ..ConfigOverrides::renewal_off() };
    let nodes = crate::helpers::postgres::spawn_nodes_on(2, config).await;
    let client = nodes[0].register_client("outage").await;
    let before = nodes[0].token_client_credentials(&client, "before").await;

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.stop_server()).await.expect("join").expect("stop PostgreSQL");
    let writes = join_all((0..6).map(|i| node(&nodes, i).client_credentials_grant(&client, "during"))).await;
    for response in writes {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));
        let body: serde_json::Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"], "server_error");
    }
    for n in &nodes {
        let response = n
            .http
            .post(n.url("/oauth2/introspect"))
            .basic_auth("admin", Some(n.admin_password()))
            .form(&[("token", before.access_token.as_str())])
            .send()
            .await
            .expect("POST /oauth2/introspect");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "an unprovable view must not answer");
    }

    let c = cluster.clone();
    tokio::task::spawn_blocking(move || c.start_server()).await.expect("join").expect("start PostgreSQL");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let after = loop {
        let response = nodes[1].client_credentials_grant(&client, "after").await;
        if response.status() == StatusCode::OK {
            break Tokens::from_response(response).await;
        }
        assert!(tokio::time::Instant::now() < deadline, "no recovery within 20 s: {}", response.status());
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for n in &nodes {
        assert!(n.is_active(&before.access_token).await, "the token acknowledged before the outage");
        assert!(n.is_active(&after.access_token).await);
    }
    assert_final_log_verifies(&nodes[0].config_url()).await;
}
