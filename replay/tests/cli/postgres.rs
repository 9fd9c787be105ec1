//! `--db` with a PostgreSQL connection string: the reading commands work on a log that nodes
//! wrote to PostgreSQL, through the server's own backend, and `rebuild --check` finds the
//! views the CLI projected equal to the log's fold. (Damaged views on PostgreSQL and nodes
//! serving during a rebuild: tests/api/replay_cli.rs, which runs on both backends.)

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
fn verify_stats_export_and_rebuild_check_read_a_postgres_log() {
    let Some((_dir, url)) = written_log() else { return };
    let verdict = ledger_replay(&["verify", "--db", &url, "--json"]).expect(0).json();
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!(verdict["head_position"], 2, "{verdict}");
    let stats = ledger_replay(&["stats", "--db", &url]).expect(0);
    assert!(stats.stdout.contains("ClientRegistered: 2"), "{}", stats.stdout);
    let export = ledger_replay(&["export", "--db", &url]).expect(0);
    assert_eq!(export.stdout.lines().count(), 2, "{}", export.stdout);
    let check = ledger_replay(&["rebuild", "--check", "--db", &url, "--json"]).expect(0).json();
    assert_eq!(check["drift"], false, "{check}");
    assert_eq!(check["position"], 2, "{check}");
}
