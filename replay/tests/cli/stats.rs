//! `stats`: events by type and day, active tokens by client, size on disk.

use rusqlite::Connection;

use crate::helpers::history::{now_ms, USER_TOKEN_MS};
use crate::helpers::{history, ledger_replay};

#[test]
fn stats_count_every_event_by_type_and_day_as_the_database_holds_them() {
    let h = history();
    let db = h.deployment.db_arg();
    let stats = ledger_replay(&["stats", "--db", &db, "--json"]).expect(0).json();
    let conn = Connection::open(h.deployment.database()).expect("open the database");
    let mut stmt = conn.prepare("SELECT event_type, COUNT(*) FROM events GROUP BY event_type").unwrap();
    let counts: Vec<(String, i64)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().collect::<Result<_, _>>().unwrap();
    for (event_type, n) in &counts {
        assert_eq!(stats["by_type"][event_type], *n, "{event_type}");
    }
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(stats["events"], total);
    let by_day: i64 = stats["by_day"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|types| types.as_object().unwrap().values())
        .map(|n| n.as_i64().unwrap())
        .sum();
    assert_eq!(by_day, total);
    assert!(stats["size"]["file_bytes"].as_u64().unwrap() > 0);
    assert_eq!(stats["checkpoint"], total);
}

#[test]
fn stats_of_an_exported_log_match_the_database() {
    let h = history();
    // T5 lives 3 s: past its expiry, "live now" is the same for both runs.
    let t5_gone = h.token("T5").received + USER_TOKEN_MS;
    std::thread::sleep(std::time::Duration::from_millis((t5_gone - now_ms()).max(0) as u64));
    let db = h.deployment.db_arg();
    let dir = tempfile::tempdir().expect("a folder");
    let log = dir.path().join("log.jsonl").display().to_string();
    ledger_replay(&["export", "--db", &db, "--out", &log]).expect(0);
    let from_db = ledger_replay(&["stats", "--db", &db, "--json"]).expect(0).json();
    let from_log = ledger_replay(&["stats", "--log", &log, "--json"]).expect(0).json();
    assert_eq!(from_log["by_day"], from_db["by_day"]);
    assert_eq!(from_log["active_by_client"], from_db["active_by_client"]);
    assert_eq!(
        from_db["active_by_client"][&h.client_a.id], 1,
        "only T8 is live at the end (T5 is a 3 s token): {from_db}"
    );
}
