//! The event log is the audit record: every issue, return and revocation is an event with its
//! reason, and the database refuses to rewrite it.

use std::collections::HashSet;
use std::time::Duration;

use crate::helpers::{count_of, revocation_reasons, spawn_app, ConfigOverrides};

#[tokio::test]
async fn returning_an_existing_token_is_recorded_as_token_returned() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("audited").await;
    app.token_admin(&client, "openid").await;
    let after_issue = app.events();

    app.token_admin(&client, "openid").await;

    let appended = &app.events()[after_issue.len()..];
    assert!(count_of(&after_issue, "TokenIssued") >= 1, "{after_issue:#?}");
    assert_eq!(count_of(appended, "TokenReturned"), 1, "{appended:#?}");
    assert_eq!(count_of(appended, "TokenIssued"), 0, "{appended:#?}");
    assert_eq!(count_of(appended, "TokenRevoked"), 0, "{appended:#?}");
}

#[tokio::test]
async fn renewal_is_recorded_as_a_revocation_for_renewal_then_an_issue() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("audited").await;

    app.token_admin(&client, "openid").await;
    app.token_admin(&client, "openid").await;

    let events = app.events();
    assert_eq!(revocation_reasons(&events), ["renewal"]);
    let revoked = events.iter().position(|e| e.event_type == "TokenRevoked");
    let last_issue = events.iter().rposition(|e| e.event_type == "TokenIssued");
    assert!(revoked < last_issue, "the old token is revoked before the new one is issued");
}

#[tokio::test]
async fn every_revocation_is_recorded_with_its_reason() {
    let app = spawn_app(ConfigOverrides {
        refresh_token_reuse_grace_period: "0s",
        ..ConfigOverrides::renewal_off()
    })
    .await;
    let client = app.register_client("audited").await;
    let revoked = app.token_admin(&client, "revoked").await;
    app.revoke_token(&client, &revoked.access_token).await;
    let original = app.token_admin(&client, "refreshed").await;
    app.token_refresh(&client, original.refresh(), None).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    app.refresh_grant(&client, original.refresh(), None).await;

    let reasons: HashSet<String> = revocation_reasons(&app.events()).into_iter().collect();

    for reason in ["revocation_request", "refresh", "refresh_token_reuse"] {
        assert!(reasons.contains(reason), "no {reason} in {reasons:?}");
    }
}

#[tokio::test]
async fn replacing_an_expired_token_is_recorded_as_expiry_replacement() {
    let app =
        spawn_app(ConfigOverrides { user_access_token_validity: "2s", ..ConfigOverrides::renewal_off() })
            .await;
    let client = app.register_client("audited").await;
    app.token_admin(&client, "openid").await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    app.token_admin(&client, "openid").await;

    assert_eq!(revocation_reasons(&app.events()), ["expiry_replacement"]);
}

#[tokio::test]
async fn registrations_and_client_deletion_are_events() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let at_start = app.events();
    app.add_user("dave", "dave-password-1").await;
    let client = app.register_client_dcr("short-lived", &["password"]).await;
    app.token_admin(&client, "openid").await;
    let before_delete = app.events().len();

    let response = app
        .http
        .delete(app.dcr_url(Some(&client.id)))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);

    let events = app.events();
    let registered = &events[at_start.len()..before_delete];
    let deleted = &events[before_delete..];
    assert_eq!(count_of(registered, "UserAdded"), 1, "{registered:#?}");
    assert_eq!(count_of(registered, "ClientRegistered"), 1, "{registered:#?}");
    assert_eq!(count_of(deleted, "ClientDeleted"), 1, "{deleted:#?}");
    let reasons = revocation_reasons(deleted);
    assert!(!reasons.is_empty(), "deleting a client revoked no token: {deleted:#?}");
    assert!(reasons.iter().all(|r| r == "client_deleted"), "{reasons:?}");
}

#[tokio::test]
async fn the_log_is_ordered_and_versioned_per_stream() {
    let app = spawn_app(ConfigOverrides::renewal_on()).await;
    let client = app.register_client("audited").await;
    for _ in 0..3 {
        app.token_admin(&client, "openid").await;
    }

    let events = app.events();

    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    let versions: HashSet<(String, i64)> = events.iter().map(|e| (e.stream.clone(), e.version)).collect();
    assert_eq!(versions.len(), events.len(), "(stream, version) must be unique");
}

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_events() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("audited").await;
    app.token_admin(&client, "openid").await;
    let status = app.terminate().await;
    assert!(status.success(), "{status}");
    let before = app.events().len();

    let update = app.sql_execute("UPDATE events SET event_type = 'Tampered'");
    let delete = app.sql_execute("DELETE FROM events");

    assert!(update.is_err(), "UPDATE on the log succeeded");
    assert!(delete.is_err(), "DELETE on the log succeeded");
    if app.on_postgres() {
        assert!(app.sql_execute("TRUNCATE events").is_err(), "TRUNCATE on the log succeeded");
    }
    let after = app.events();
    assert_eq!(after.len(), before);
    assert_eq!(count_of(&after, "Tampered"), 0);
}
