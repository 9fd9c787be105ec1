//! Concurrent identical requests: one writer decides, so a key never ends up with two active
//! tokens and a refresh token is redeemed exactly once (WSO2 product-is #24206, product-apim #4006).

use std::collections::HashSet;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, ConfigOverrides, Tokens};

const IDENTICAL_REQUESTS: usize = 50;
const CONCURRENT_REFRESHES: usize = 20;

#[tokio::test]
async fn fifty_identical_requests_get_one_token_when_renewal_is_off() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("burst").await;

    let responses =
        join_all((0..IDENTICAL_REQUESTS).map(|_| app.password_grant(&client, "admin", "admin", "openid")))
            .await;
    let tokens = join_all(responses.into_iter().map(Tokens::from_response)).await;

    let access: HashSet<_> = tokens.iter().map(|t| t.access_token.clone()).collect();
    let refresh: HashSet<_> = tokens.iter().map(|t| t.refresh().to_string()).collect();
    assert_eq!(access.len(), 1, "{} access tokens for one key", access.len());
    assert_eq!(refresh.len(), 1, "{} refresh tokens for one key", refresh.len());
    assert!(app.is_active(&tokens[0].access_token).await);
}

#[tokio::test]
async fn fifty_identical_requests_leave_exactly_one_active_token_when_renewal_is_on() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("burst").await;

    let responses =
        join_all((0..IDENTICAL_REQUESTS).map(|_| app.password_grant(&client, "admin", "admin", "openid")))
            .await;
    let tokens = join_all(responses.into_iter().map(Tokens::from_response)).await;

    let distinct: HashSet<_> = tokens.iter().map(|t| t.access_token.clone()).collect();
    let activity = join_all(distinct.iter().map(|token| app.is_active(token))).await;
    let active = activity.into_iter().filter(|active| *active).count();
    assert_eq!(active, 1, "{active} of {} returned tokens are active", distinct.len());
}

#[tokio::test]
async fn fifty_identical_client_credentials_requests_leave_exactly_one_active_token() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("burst").await;

    let responses =
        join_all((0..IDENTICAL_REQUESTS).map(|_| app.client_credentials_grant(&client, "read"))).await;
    let tokens = join_all(responses.into_iter().map(Tokens::from_response)).await;

    let distinct: HashSet<_> = tokens.iter().map(|t| t.access_token.clone()).collect();
    let activity = join_all(distinct.iter().map(|token| app.is_active(token))).await;
    let active = activity.into_iter().filter(|active| *active).count();
    assert_eq!(active, 1, "{active} of {} returned tokens are active", distinct.len());
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_have_exactly_one_winner() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("racer").await;
    let original = app.token_admin(&client, "openid").await;

    let responses =
        join_all((0..CONCURRENT_REFRESHES).map(|_| app.refresh_grant(&client, original.refresh(), None)))
            .await;

    let mut winners = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::OK => winners.push(Tokens::from_response(response).await),
            StatusCode::BAD_REQUEST => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "invalid_grant", "{body}");
            }
            other => panic!("a concurrent refresh answered {other}: {:?}", response.text().await),
        }
    }
    assert_eq!(winners.len(), 1, "{} refreshes succeeded", winners.len());
    assert!(app.is_active(&winners[0].access_token).await);
    assert!(app.is_active(winners[0].refresh()).await);
}

/// Invariant: a revocation racing a refresh of the same pair ends with the family either fully
/// revoked (the revocation came first: the refresh fails) or with exactly the refreshed pair
/// active (the refresh came first: the revocation of the old pair is a no-op), never with the old
/// pair active; and the log never holds two active tokens for the key.
#[tokio::test]
async fn a_revocation_racing_a_refresh_never_leaves_the_old_pair_active() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("race").await;
    for round in 0..10 {
        let scope = format!("round-{round}");
        let old = app.token_admin(&client, &scope).await;
        let revoke_form = [("token", old.refresh())];
        let (refreshed, revoked) =
            tokio::join!(app.refresh_grant(&client, old.refresh(), None), app.revoke(&client, &revoke_form),);
        assert_eq!(revoked.status(), StatusCode::OK);
        assert!(!app.is_active(&old.access_token).await, "round {round}: the old access token is dead");
        assert!(!app.is_active(old.refresh()).await, "round {round}: the old refresh token is dead");
        match refreshed.status() {
            StatusCode::OK => {
                let new = crate::helpers::Tokens::from_response(refreshed).await;
                assert!(app.is_active(&new.access_token).await, "round {round}: the refresh won");
            }
            StatusCode::BAD_REQUEST => {
                let body: Value = refreshed.json().await.unwrap();
                assert_eq!(body["error"], "invalid_grant", "round {round}");
            }
            other => panic!("round {round}: the refresh answered {other}"),
        }
    }
    let events = app.events();
    let mut active: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for e in &events {
        match e.event_type.as_str() {
            "TokenIssued" => *active.entry(e.stream.clone()).or_default() += 1,
            "TokenRevoked" => {
                let issued = events.iter().find(|i| {
                    i.event_type == "TokenIssued" && i.payload["token_id"] == e.payload["token_id"]
                });
                let stream = issued.expect("every revocation names an issued token").stream.clone();
                *active.get_mut(&stream).expect("revoked after issued") -= 1;
            }
            _ => {}
        }
    }
    assert!(active.values().all(|n| *n <= 1), "a key with two active tokens: {active:?}");
}

/// Invariant: once the deletion of a client is acknowledged, no token of that client is active,
/// whatever token requests were in flight; tokens answered before it are revoked by it.
#[tokio::test]
async fn a_client_deletion_racing_issuance_leaves_no_token_of_the_client_active() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("doomed").await;
    let issue = (0..20).map(|i| app.client_credentials_grant(&client, if i % 2 == 0 { "a" } else { "b" }));
    let delete = async {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        app.http
            .delete(app.dcr_url(Some(&client.id)))
            .basic_auth("admin", Some("admin"))
            .send()
            .await
            .unwrap()
    };
    let (responses, deleted) = tokio::join!(join_all(issue), delete);
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let mut answered = Vec::new();
    for response in responses {
        match response.status() {
            StatusCode::OK => answered.push(crate::helpers::Tokens::from_response(response).await),
            StatusCode::UNAUTHORIZED => {}
            other => panic!("a racing token request answered {other}"),
        }
    }
    for tokens in &answered {
        assert!(!app.is_active(&tokens.access_token).await, "a token of a deleted client is active");
    }
    let late = app.client_credentials_grant(&client, "a").await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
}
