//! Start-up on a damaged database: the server refuses to serve, names the problem, and names the
//! command that diagnoses it.

use crate::helpers::{spawn_app, ConfigOverrides};

#[tokio::test]
async fn a_truncated_database_is_refused_with_the_diagnosing_command() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    if app.on_postgres() {
        println!("skipped on PostgreSQL: a truncated file is SQLite's damage (the tampered-event test runs on both)");
        return;
    }
    let client = app.register_client("app").await;
    for scope in ["a", "b", "c"] {
        app.token_admin(&client, scope).await;
    }
    assert!(app.terminate().await.success());
    let db = app.database_path();
    let bytes = std::fs::read(&db).unwrap();
    std::fs::write(&db, &bytes[..bytes.len() / 3]).unwrap();

    let output = app.cli(&["serve"]).await;
    assert!(!output.status.success(), "a damaged database must not be served");
    assert!(output.stderr.contains("ledger-replay verify --db"), "{}", output.stderr);
    assert!(output.stderr.contains(&db.display().to_string()), "{}", output.stderr);
}

#[tokio::test]
async fn a_tampered_event_is_refused_naming_its_position() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("app").await;
    app.token_admin(&client, "a").await;
    app.token_admin(&client, "b").await;
    assert!(app.terminate().await.success());
    let position = app.sql_i64("SELECT MAX(position) FROM events WHERE event_type = 'TokenIssued'");
    // As an attacker would: drop the guard, then rewrite history.
    let drop_guard = if app.on_postgres() {
        "ALTER TABLE events DISABLE TRIGGER events_refuse_update_delete"
    } else {
        "DROP TRIGGER events_refuse_update"
    };
    app.sql_execute(drop_guard).unwrap();
    app.sql_execute(&format!(
        "UPDATE events SET payload = replace(payload, '\"b\"', '\"x\"') WHERE position = {position}"
    ))
    .unwrap();

    let output = app.cli(&["serve"]).await;
    assert!(!output.status.success());
    assert!(output.stderr.contains(&format!("broken at position {position}")), "{}", output.stderr);
    assert!(output.stderr.contains("ledger-replay verify --db"), "{}", output.stderr);
}

#[tokio::test]
async fn an_untouched_log_restarts_and_verifies_only_what_is_new() {
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("app").await;
    let tokens = app.token_admin(&client, "a").await;
    for _ in 0..2 {
        assert!(app.terminate().await.success());
        app.restart().await;
        assert_eq!(app.introspect(&tokens.access_token).await["active"], true);
    }
    let anchor = app.sql_i64("SELECT position FROM chain_anchor");
    let last = app.sql_i64("SELECT MAX(position) FROM events");
    assert_eq!(anchor, last, "the anchor moved to the end of the verified log");
}
