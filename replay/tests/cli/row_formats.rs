//! Row formats (issue 11): a database that an older build wrote in format 1, upgraded and then
//! appended to in format 2, verifies, exports, replays and rebuilds exactly like the log it holds.

use ledger_replay::export::ExportedEvent;
use rusqlite::{params, Connection};
use token_ledger::store::log::StoredEvent;
use token_ledger::store::sqlite::log::insert;
use token_ledger::store::sqlite::migrate::{migrate, migrate_to};

use crate::helpers::{history, ledger_replay};

/// How a build before row format 2 appended an event.
fn insert_format_1(conn: &Connection, e: &StoredEvent) {
    let m = &e.meta;
    conn.execute(
        "INSERT INTO events (position, event_id, stream, version, event_type, schema_version,
            payload, recorded_at, request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            e.position,
            e.event_id,
            e.stream,
            e.version,
            e.event_type,
            e.schema_version,
            e.payload,
            e.recorded_at,
            m.request_id,
            m.client_id,
            m.username,
            m.grant_type,
            m.peer,
            e.prev_hash,
            e.hash
        ],
    )
    .expect("a format-1 row");
}

#[test]
fn a_format_1_log_upgraded_and_appended_in_format_2_verifies_exports_replays_and_rebuilds_alike() {
    let h = history();
    let original = h.deployment.db_arg();
    let dir = tempfile::tempdir().expect("a folder");
    let exported = dir.path().join("original.jsonl").display().to_string();
    ledger_replay(&["export", "--db", &original, "--out", &exported]).expect(0);
    let text = std::fs::read_to_string(&exported).expect("read the export");
    let events: Vec<StoredEvent> = text
        .lines()
        .map(|l| serde_json::from_str::<ExportedEvent>(l).expect("a line").into_stored().expect("an event"))
        .collect();

    // The first half written by the old schema in format 1, the rest after the upgrade.
    let copy = h.deployment.copy();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.db_arg()));
    }
    let conn = Connection::open(copy.database()).expect("a new database");
    migrate_to(&conn, 6).expect("the schema before row format 2");
    let half = events.len() / 2;
    events[..half].iter().for_each(|e| insert_format_1(&conn, e));
    migrate(&conn).expect("the upgrade");
    events[half..].iter().for_each(|e| insert(&conn, e).expect("a format-2 row"));
    let formats: Vec<(i64, i64)> = conn
        .prepare("SELECT row_format, COUNT(*) FROM events GROUP BY 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(formats, [(1, half as i64), (2, (events.len() - half) as i64)]);
    drop(conn);
    let mixed = copy.db_arg();

    let verdict = ledger_replay(&["verify", "--db", &mixed, "--json"]).expect(0).json();
    let expected = ledger_replay(&["verify", "--db", &original, "--json"]).expect(0).json();
    assert_eq!(verdict["head_hash"], expected["head_hash"]);
    assert_eq!(verdict["events"], expected["events"]);

    let again = dir.path().join("mixed.jsonl").display().to_string();
    ledger_replay(&["export", "--db", &mixed, "--out", &again]).expect(0);
    assert!(std::fs::read(&again).unwrap() == text.as_bytes(), "the export is byte-identical");

    for mark in &h.marks {
        let at = token_ledger::store::log::format_time(mark.at);
        let from_mixed = ledger_replay(&["replay", "--db", &mixed, "--at", &at, "--json"]).expect(0);
        let from_original = ledger_replay(&["replay", "--db", &original, "--at", &at, "--json"]).expect(0);
        assert_eq!(from_mixed.stdout, from_original.stdout, "at {at}");
    }

    // The views were never written here: rebuild folds both formats into them.
    ledger_replay(&["rebuild", "--db", &mixed]).expect(0);
    let check = ledger_replay(&["rebuild", "--check", "--db", &mixed, "--json"]).expect(0);
    assert_eq!(check.json()["drift"], false);
}
