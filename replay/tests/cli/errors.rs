//! Failures: one line on stderr, exit 2, never a panic; findings exit 1.

use crate::helpers::ledger_replay;

#[test]
fn a_missing_database_is_one_line_on_stderr_and_exit_2() {
    let run = ledger_replay(&["verify", "--db", "/nonexistent/ledger.db"]).expect(2);
    assert_eq!(run.stderr.trim(), "ledger-replay: the database /nonexistent/ledger.db does not exist");
    assert!(run.stdout.is_empty());
}

#[test]
fn no_command_creates_a_database_that_is_not_there() {
    let dir = tempfile::tempdir().expect("a folder");
    let db = dir.path().join("ledger.db");
    let db_arg = db.display().to_string();
    for command in ["verify", "stats", "replay", "rebuild", "export"] {
        ledger_replay(&[command, "--db", &db_arg]).expect(2);
    }
    assert!(!db.exists());
}

#[test]
fn a_bad_time_names_the_expected_format() {
    let run = ledger_replay(&["replay", "--db", "x.db", "--at", "yesterday"]).expect(2);
    assert!(run.stderr.contains("RFC 3339"), "{}", run.stderr);
}

#[test]
fn a_bad_config_is_reported_by_the_servers_own_check() {
    let dir = tempfile::tempdir().expect("a folder");
    let config = dir.path().join("deployment.toml");
    std::fs::write(&config, "[database]\npaht = \"x.db\"\n").expect("write a config");
    let run = ledger_replay(&["stats", "--config", &config.display().to_string()]).expect(2);
    assert!(run.stderr.contains("paht"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[test]
fn a_log_that_is_not_json_lines_is_an_error_for_replay_and_a_finding_for_verify() {
    let dir = tempfile::tempdir().expect("a folder");
    let log = dir.path().join("log.jsonl");
    std::fs::write(&log, "not an event\n").expect("write a log");
    let log = log.display().to_string();
    let replay = ledger_replay(&["replay", "--log", &log]).expect(2);
    assert!(replay.stderr.contains("line 1: not an exported event"), "{}", replay.stderr);
    let verify = ledger_replay(&["verify", "--log", &log]).expect(1);
    assert!(verify.stdout.starts_with("BROKEN at line 1"), "{}", verify.stdout);
}

#[test]
fn audit_needs_exactly_one_subject() {
    ledger_replay(&["audit", "--db", "x.db"]).expect(2);
    ledger_replay(&["audit", "--db", "x.db", "--client", "a", "--user", "b"]).expect(2);
}
