//! `export`: an exported log verifies and replays exactly like the database it came from.

use crate::helpers::{history, ledger_replay};

fn export(args: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("a folder");
    let log = dir.path().join("log.jsonl").display().to_string();
    let db = history().deployment.db_arg();
    let mut all = vec!["export", "--db", db.as_str(), "--out", log.as_str()];
    all.extend_from_slice(args);
    ledger_replay(&all).expect(0);
    (dir, log)
}

#[test]
fn an_exported_log_verifies_with_the_same_head_hash_as_the_database() {
    let (_dir, log) = export(&[]);
    let db = history().deployment.db_arg();
    let from_db = ledger_replay(&["verify", "--db", &db, "--json"]).expect(0).json();
    let from_log = ledger_replay(&["verify", "--log", &log, "--json"]).expect(0).json();
    assert_eq!(from_log["head_hash"], from_db["head_hash"]);
    assert_eq!(from_log["events"], from_db["events"]);
}

#[test]
fn an_exported_log_replays_exactly_like_the_database() {
    let (_dir, log) = export(&[]);
    let db = history().deployment.db_arg();
    for mark in &history().marks {
        let at = token_ledger::store::log::format_time(mark.at);
        let from_db = ledger_replay(&["replay", "--db", &db, "--at", &at, "--json"]).expect(0);
        let from_log = ledger_replay(&["replay", "--log", &log, "--at", &at, "--json"]).expect(0);
        assert_eq!(from_log.stdout, from_db.stdout, "at {at}");
    }
}

#[test]
fn each_line_carries_every_column_with_hashes_in_hex() {
    let (_dir, log) = export(&[]);
    let text = std::fs::read_to_string(&log).expect("read the export");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    for column in [
        "position",
        "event_id",
        "stream",
        "version",
        "event_type",
        "schema_version",
        "payload",
        "recorded_at",
        "request_id",
        "actor_client",
        "actor_user",
        "grant_type",
        "peer",
        "prev_hash",
        "hash",
    ] {
        assert!(first.get(column).is_some(), "{column} missing from {first}");
    }
    assert_eq!(first["prev_hash"], "0".repeat(64), "the first event chains from genesis");
}

#[test]
fn an_export_since_a_position_starts_after_it_and_verifies_as_a_partial_log() {
    let (_dir, log) = export(&["--since", "5"]);
    let text = std::fs::read_to_string(&log).expect("read the export");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["position"], 6);
    let verdict = ledger_replay(&["verify", "--log", &log, "--json"]).expect(0).json();
    assert_eq!(verdict["partial"], true);
    assert_eq!(verdict["first_position"], 6);
    let replay = ledger_replay(&["replay", "--log", &log]).expect(2);
    assert!(replay.stderr.contains("needs the whole log"), "{}", replay.stderr);
}

#[test]
fn one_changed_byte_in_an_exported_log_is_named_by_its_position() {
    let (_dir, log) = export(&[]);
    let text = std::fs::read_to_string(&log).expect("read the export");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let index =
        lines.iter().position(|l| l.contains("\"event_type\":\"TokenRevoked\"")).expect("a revocation");
    // The first revocation is T1's, by refresh: one byte of its reason changes.
    let edited = lines[index].replacen("\\\"refresh\\\"", "\\\"refrash\\\"", 1);
    assert_ne!(edited, lines[index], "the reason was found");
    lines[index] = edited;
    std::fs::write(&log, lines.join("\n") + "\n").expect("write the edited log");
    let verdict = ledger_replay(&["verify", "--log", &log, "--json"]).expect(1).json();
    assert_eq!(verdict["problem"]["position"], index as i64 + 1);
    assert_eq!(verdict["problem"]["check"], "hash");
}

#[test]
fn a_line_that_is_not_an_event_is_named_by_its_line_number() {
    let (_dir, log) = export(&[]);
    let text = std::fs::read_to_string(&log).expect("read the export");
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"position\": 3, truncated";
    std::fs::write(&log, lines.join("\n") + "\n").expect("write the broken log");
    let verdict = ledger_replay(&["verify", "--log", &log, "--json"]).expect(1).json();
    assert_eq!(verdict["problem"]["line"], 3);
    assert_eq!(verdict["problem"]["check"], "unreadable");
}
