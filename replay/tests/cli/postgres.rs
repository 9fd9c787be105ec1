//! `--db` with a PostgreSQL connection string: the reading commands work on a log that nodes
//! wrote to PostgreSQL, through the server's own backend; `rebuild` says it is SQLite-only.

use std::process::Command;

use crate::helpers::binaries::{ledger_replay, token_ledger};

#[path = "../../../tests/support/pg_cluster.rs"]
pub mod pg_cluster;

/// A PostgreSQL database with a few events the real CLI wrote, and its connection string.
fn written_log() -> Option<(tempfile::TempDir, String)> {
    let url = pg_cluster::cluster()?.create_database();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let config = dir.path().join("deployment.toml");
    let text = format!("[database]\ntype = \"postgres\"\nurl = \"{url}\"\npath = \"data/ledger.db\"\n");
    std::fs::write(&config, text).expect("write deployment.toml");
    for name in ["one", "two"] {
        let out = Command::new(token_ledger())
            .args(["client", "register", "--name", name, "--config"])
            .arg(&config)
            .output()
            .expect("run token-ledger");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    Some((dir, url))
}

#[test]
fn verify_stats_and_export_read_a_postgres_log_and_rebuild_says_it_is_sqlite_only() {
    let Some((_dir, url)) = written_log() else { return };
    let verdict = ledger_replay(&["verify", "--db", &url, "--json"]).expect(0).json();
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!(verdict["head_position"], 2, "{verdict}");
    let stats = ledger_replay(&["stats", "--db", &url]).expect(0);
    assert!(stats.stdout.contains("ClientRegistered: 2"), "{}", stats.stdout);
    let export = ledger_replay(&["export", "--db", &url]).expect(0);
    assert_eq!(export.stdout.lines().count(), 2, "{}", export.stdout);
    let rebuild = ledger_replay(&["rebuild", "--db", &url]);
    assert_ne!(rebuild.code, 0);
    assert!(rebuild.stderr.contains("SQLite views only"), "{}", rebuild.stderr);
}
