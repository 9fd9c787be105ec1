//! What an attacker with write access to the file would do: drop the triggers that refuse
//! UPDATE and DELETE on the log, then edit it.

use std::path::Path;

use rusqlite::Connection;

/// Opens the database for writing with the append-only triggers dropped.
pub fn open_without_triggers(db: &Path) -> Connection {
    let conn = Connection::open(db).expect("open the database");
    conn.execute_batch("DROP TRIGGER events_refuse_update; DROP TRIGGER events_refuse_delete;")
        .expect("drop the append-only triggers");
    conn
}

/// The position of the first event of a type.
pub fn position_of(conn: &Connection, event_type: &str) -> i64 {
    conn.query_row("SELECT MIN(position) FROM events WHERE event_type = ?1", [event_type], |r| r.get(0))
        .expect("an event of that type")
}

/// Flips one byte of a text column, keeping it valid UTF-8 and JSON: the first 'a' becomes 'b'.
pub fn flip_payload_byte(conn: &Connection, position: i64) {
    let payload: String = conn
        .query_row("SELECT payload FROM events WHERE position = ?1", [position], |r| r.get(0))
        .expect("the payload");
    let at = payload.find('a').expect("an 'a' in the payload");
    let mut bytes = payload.into_bytes();
    bytes[at] = b'b';
    let edited = String::from_utf8(bytes).expect("still UTF-8");
    conn.execute("UPDATE events SET payload = ?2 WHERE position = ?1", rusqlite::params![position, edited])
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
