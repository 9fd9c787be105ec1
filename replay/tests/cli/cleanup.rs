//! Token cleanup through the real binaries (issue 9): with short validities and retention, the
//! rows of tokens whose halves both expired leave the live views while the server serves, one
//! `ExpiredPruned` event in the log says when, and the audit tools still read the whole history.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{ledger_replay, Archiving, Config, Deployment, Server};

/// Rows of the live active-token view (a read-only look at the server's own file).
fn view_rows(d: &Deployment) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(d.database(), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the live database");
    conn.query_row("SELECT COUNT(*) FROM active_tokens", [], |r| r.get(0)).expect("a count")
}

#[test]
fn expired_tokens_leave_the_live_views_and_the_log_records_when() {
    let archive = Archiving { keep_in_database: "1s", interval: "1s", retain: true };
    let config = Config {
        user_access_token_validity: "1s",
        refresh_token_validity: "2s",
        archive: Some(archive),
        ..Config::default()
    };
    let d = Deployment::new(&config);
    let server = Server::start(&d);
    let client = server.register("cleaned");
    let user = server.password(&client, "openid");
    let rotated = server.refresh(&client, user.refresh());
    assert_eq!(view_rows(&d), 1, "the refreshed token is the one row");

    // Both halves expire within 2 s; a round after they are more than 1 s old removes the row.
    let deadline = Instant::now() + Duration::from_secs(20);
    while view_rows(&d) > 0 {
        assert!(Instant::now() < deadline, "the expired token stayed in the view for 20 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.introspect(&rotated.access_token)["active"], false);
    server.refresh_refused(&client, rotated.refresh());

    // The key gets a new token, and tokens that have not expired are untouched (1 h validity).
    assert_ne!(server.password(&client, "openid").access_token, rotated.access_token);
    let next = server.client_credentials(&client, "read");
    assert_eq!(server.introspect(&next.access_token)["active"], true);

    let config = d.config_path().display().to_string();
    let export = ledger_replay(&["export", "--config", &config]).expect(0);
    let pruned: Vec<Value> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a line"))
        .filter(|e| e.to_string().contains("ExpiredPruned"))
        .collect();
    assert!(!pruned.is_empty(), "the cleanup is in the log: {}", export.stdout);
    let verdict = ledger_replay(&["verify", "--config", &config, "--json"]).expect(0).json();
    assert_eq!(verdict["intact"], true, "{verdict}");
    // `replay` folds the cleanup too: the key's new token is no second row on its stream.
    let end =
        ledger_replay(&["replay", "--config", &config, "--at", "2099-01-01T00:00:00Z", "--json"]).expect(0);
    assert!(end.stdout.contains("\"position\""), "{}", end.stdout);
    server.stop();
    // A restart loads the pruned view and still serves the token that has not expired.
    let again = Server::start(&d);
    assert_eq!(again.introspect(&next.access_token)["active"], true);
}
