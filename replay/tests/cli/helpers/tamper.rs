//! What an attacker with write access to the file would do: drop the triggers that refuse
//! UPDATE and DELETE on the log, then edit it.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::Connection;
use token_ledger::store::row_format;

/// Opens the database for writing with the append-only triggers dropped.
pub fn open_without_triggers(db: &Path) -> Connection {
    let conn = Connection::open(db).expect("open the database");
    conn.execute_batch("DROP TRIGGER events_refuse_update; DROP TRIGGER events_refuse_delete;")
        .expect("drop the append-only triggers");
    conn
}

/// The position of the first event of a type (stored by name in format-1 rows, by number in
/// format-2 rows).
pub fn position_of(conn: &Connection, event_type: &str) -> i64 {
    let code = row_format::event_type_code(event_type);
    conn.query_row(
        "SELECT MIN(position) FROM events WHERE event_type = ?1 OR event_type = ?2",
        rusqlite::params![event_type, code],
        |r| r.get(0),
    )
    .expect("an event of that type")
}

/// Flips one byte of the payload, keeping it valid UTF-8 and JSON: the first 'a' becomes 'b'.
/// A format-2 row's compact payload is decoded, edited and written back compact, as an
/// attacker who knows the format would.
pub fn flip_payload_byte(conn: &Connection, position: i64) {
    let stored: Value = conn
        .query_row("SELECT payload FROM events WHERE position = ?1", [position], |r| r.get(0))
        .expect("the payload");
    let payload = match &stored {
        Value::Text(text) => text.clone(),
        Value::Blob(compact) => {
            let mut text = String::new();
            row_format::decode_into(compact, &mut text).expect("a compact payload");
            text
        }
        other => panic!("a payload of type {other:?}"),
    };
    let at = payload.find('a').expect("an 'a' in the payload");
    let mut bytes = payload.into_bytes();
    bytes[at] = b'b';
    let edited = String::from_utf8(bytes).expect("still UTF-8");
    let written = match (&stored, row_format::encode_text(&edited)) {
        (Value::Blob(_), Some(compact)) => Value::Blob(compact),
        _ => Value::Text(edited),
    };
    conn.execute("UPDATE events SET payload = ?2 WHERE position = ?1", rusqlite::params![position, written])
        .expect("edit the payload");
}

/// Flips the lowest bit of the last byte of a format-2 row's compact payload as stored (the
/// raw bytes of its last digest, sealed value or id), without decoding it.
pub fn flip_compact_payload_bit(conn: &Connection, position: i64) {
    let mut compact: Vec<u8> = conn
        .query_row(
            "SELECT payload FROM events WHERE position = ?1 AND typeof(payload) = 'blob'",
            [position],
            |r| r.get(0),
        )
        .expect("a compact payload");
    let at = compact.iter().rposition(|b| b.is_ascii_alphanumeric()).expect("a letter or digit");
    compact[at] ^= 1;
    conn.execute("UPDATE events SET payload = ?2 WHERE position = ?1", rusqlite::params![position, compact])
        .expect("edit the payload");
}

/// Flips the lowest bit of the hash's first byte.
pub fn flip_hash_byte(conn: &Connection, position: i64) {
    let mut hash: Vec<u8> = conn
        .query_row("SELECT hash FROM events WHERE position = ?1", [position], |r| r.get(0))
        .expect("the hash");
    hash[0] ^= 1;
    conn.execute("UPDATE events SET hash = ?2 WHERE position = ?1", rusqlite::params![position, hash])
        .expect("edit the hash");
}

/// Swaps the positions of two events (each keeps its own fields and hashes).
pub fn swap_positions(conn: &Connection, a: i64, b: i64) {
    conn.execute_batch(&format!(
        "UPDATE events SET position = -1 WHERE position = {a};
         UPDATE events SET position = {a} WHERE position = {b};
         UPDATE events SET position = {b} WHERE position = -1;"
    ))
    .expect("swap two events");
}
