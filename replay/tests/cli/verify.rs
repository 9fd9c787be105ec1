//! `verify`: an untouched log passes; one changed byte, one changed hash, two swapped events, a
//! deleted event, or a forged event with a recomputed chain is named by its position.

use ledger_replay::export::ExportedEvent;
use token_ledger::store::log::chain_hash;

use crate::helpers::tamper::{
    flip_hash_byte, flip_payload_byte, open_without_triggers, position_of, swap_positions,
};
use crate::helpers::{history, ledger_replay};

#[test]
fn verify_passes_on_the_log_the_server_wrote() {
    let h = history();
    let run = ledger_replay(&["verify", "--db", &h.deployment.db_arg(), "--json"]).expect(0);
    let verdict = run.json();
    assert_eq!(verdict["intact"], true);
    assert_eq!(verdict["first_position"], 1);
    assert_eq!(verdict["partial"], false);
    assert!(verdict["head_hash"].as_str().is_some_and(|h| h.len() == 64));
}

#[test]
fn verify_reads_the_database_path_from_the_servers_config() {
    let h = history();
    let config = h.deployment.config_path().display().to_string();
    let run = ledger_replay(&["verify", "--config", &config]).expect(0);
    assert!(run.stdout.starts_with("intact: "), "{}", run.stdout);
}

/// Runs verify on a damaged copy and returns its verdict, asserting exit 1.
fn broken(damage: impl FnOnce(&rusqlite::Connection) -> i64) -> (i64, serde_json::Value) {
    let copy = history().deployment.copy();
    let position = damage(&open_without_triggers(&copy.database()));
    let run = ledger_replay(&["verify", "--db", &copy.db_arg(), "--json"]).expect(1);
    (position, run.json())
}

#[test]
fn one_changed_byte_of_a_payload_is_named_by_its_position() {
    let (position, verdict) = broken(|conn| {
        let p = position_of(conn, "TokenRevoked");
        flip_payload_byte(conn, p);
        p
    });
    assert_eq!(verdict["intact"], false);
    assert_eq!(verdict["problem"]["position"], position);
    assert_eq!(verdict["problem"]["check"], "hash");
}

#[test]
fn one_changed_byte_of_a_hash_is_named_by_its_position() {
    let (position, verdict) = broken(|conn| {
        let p = position_of(conn, "TokenIssued");
        flip_hash_byte(conn, p);
        p
    });
    assert_eq!(verdict["problem"]["position"], position);
    assert_eq!(verdict["problem"]["check"], "hash");
}

#[test]
fn two_swapped_events_are_named_by_the_first_position() {
    let (position, verdict) = broken(|conn| {
        let p = position_of(conn, "TokenReturned");
        swap_positions(conn, p, p + 1);
        p
    });
    assert_eq!(verdict["problem"]["position"], position);
    assert_eq!(verdict["problem"]["check"], "chain");
}

#[test]
fn a_deleted_event_is_named_as_a_gap_in_the_positions() {
    let (position, verdict) = broken(|conn| {
        let p = position_of(conn, "TokenReturned");
        conn.execute("DELETE FROM events WHERE position = ?1", [p]).expect("delete an event");
        p + 1
    });
    assert_eq!(verdict["problem"]["position"], position);
    assert_eq!(verdict["problem"]["check"], "position");
}

#[test]
fn the_text_report_names_the_position_and_the_reason_in_one_line() {
    let copy = history().deployment.copy();
    let conn = open_without_triggers(&copy.database());
    let p = position_of(&conn, "TokenRevoked");
    flip_payload_byte(&conn, p);
    drop(conn);
    let run = ledger_replay(&["verify", "--db", &copy.db_arg()]).expect(1);
    assert!(run.stdout.starts_with(&format!("BROKEN at position {p} (Hash check): ")), "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
}

#[test]
fn a_forged_event_with_a_recomputed_chain_fails_the_consistency_check() {
    let h = history();
    let dir = tempfile::tempdir().expect("a folder");
    let log = dir.path().join("log.jsonl");
    let log_arg = log.display().to_string();
    ledger_replay(&["export", "--db", &h.deployment.db_arg(), "--out", &log_arg]).expect(0);
    // The attacker copies the issue of T8 (still active) as a second token on the same key and
    // recomputes the hash chain with the server's own function, so every hash checks out.
    let text = std::fs::read_to_string(&log).expect("read the export");
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("an exported event")).collect();
    let tail = lines.last().expect("a last event").clone();
    let issued = lines.iter().rev().find(|e| e["event_type"] == "TokenIssued").expect("an issue");
    let mut payload: serde_json::Value = serde_json::from_str(issued["payload"].as_str().unwrap()).unwrap();
    payload["token_id"] = uuid::Uuid::new_v4().to_string().into();
    let stream = issued["stream"].as_str().unwrap();
    let version = lines.iter().filter(|e| e["stream"] == stream).count() as i64 + 1;
    let mut forged = issued.clone();
    forged["position"] = (tail["position"].as_i64().unwrap() + 1).into();
    forged["event_id"] = uuid::Uuid::new_v4().to_string().into();
    forged["version"] = version.into();
    forged["payload"] = payload.to_string().into();
    forged["prev_hash"] = tail["hash"].clone();
    let stored: ExportedEvent = serde_json::from_value(forged.clone()).expect("an event");
    let stored = stored.into_stored().expect("hex hashes");
    forged["hash"] = hex::encode(chain_hash(&stored.prev_hash, &stored)).into();
    std::fs::write(&log, format!("{text}{forged}\n")).expect("write the forged log");

    let run = ledger_replay(&["verify", "--log", &log_arg, "--json"]).expect(1);
    let verdict = run.json();
    assert_eq!(verdict["problem"]["position"], forged["position"]);
    assert_eq!(verdict["problem"]["check"], "consistency");
    assert!(verdict["problem"]["detail"].as_str().unwrap().contains("is still active"), "{verdict}");
}

#[test]
fn an_event_smuggled_in_before_position_1_is_named_by_its_position() {
    for position in [0, -7, i64::MIN] {
        let (named, verdict) = broken(|conn| {
            conn.execute(
                "INSERT INTO events SELECT ?1, 'smuggled', 'smuggled', version, event_type, schema_version,
                    payload, recorded_at, request_id, actor_client, actor_user, grant_type, peer,
                    prev_hash, hash
                 FROM events WHERE position = 1",
                [position],
            )
            .expect("insert an event before the first");
            position
        });
        assert_eq!(verdict["problem"]["position"], named);
        assert_eq!(verdict["problem"]["check"], "position");
    }
}

#[test]
fn a_database_log_whose_first_events_were_deleted_is_tampered_with_and_names_the_gap() {
    // The attack of issue 9: drop the triggers, delete positions 1 to 5 (the first client
    // registrations); no archive segment or recorded archiving step accounts for them.
    let (position, verdict) = broken(|conn| {
        conn.execute("DELETE FROM events WHERE position <= 5", []).expect("delete the first events");
        6
    });
    assert_eq!(verdict["intact"], false, "{verdict}");
    assert_eq!(verdict["problem"]["position"], position);
    assert_eq!(verdict["problem"]["check"], "position");
    let detail = verdict["problem"]["detail"].as_str().unwrap();
    assert!(detail.contains("positions 1 to 5 are missing"), "{detail}");
}

#[test]
fn an_export_made_with_since_stays_a_legitimate_partial_log() {
    let h = history();
    let dir = tempfile::tempdir().expect("a folder");
    let log = dir.path().join("tail.jsonl").display().to_string();
    ledger_replay(&["export", "--db", &h.deployment.db_arg(), "--since", "5", "--out", &log]).expect(0);
    let verdict = ledger_replay(&["verify", "--log", &log, "--json"]).expect(0).json();
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!(verdict["partial"], true);
    assert_eq!(verdict["first_position"], 6);
}
