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
