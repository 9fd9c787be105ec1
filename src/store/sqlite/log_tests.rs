//! Row formats 1 and 2 side by side: a database written by an older build, upgraded, then
//! appended to, reads back every field exactly and its hash chain holds.

use rusqlite::{params, Connection};

use super::*;
use crate::store::records::{chain_hash, BackendError};
use crate::store::sqlite::migrate::{migrate, migrate_to};

const ISSUED: &str = r#"{"token_id":"5e2a99e9-4ec2-48c3-ba78-72f5deb53923","family_id":"5e2a99e9-4ec2-48c3-ba78-72f5deb53923","client_id":"a1c3f688323e46fb943e5f74d30ea15a","username":"user001667","scopes":"","grant_type":"password","access_digest":"29bf0b7ce1122ac2fe67cb37d4dcf662fff7df620c25256bae7ff0d9c1eb95af","issued_at":1796685422766,"expires_at":1796689022766,"sealed_access":"QTManN+8ohsR9pm+khYlzO77Zd1yl0yDW2rWOlyqBfXA9iEEj2AwHuaQY920DjhKuB+HZ8wa37OEdnFvL4c2X1aRPEw0Qeo="}"#;
pub(crate) const STREAM: &str = "grant-7728f76c1134339d5492fffad5c71538d37bb8edfa953f412f8ec2bc91099f45";

/// An event chained from `prev`, with canonical ids and times unless the caller changes them.
pub(crate) fn event(
    position: i64,
    prev: &[u8],
    stream: &str,
    version: i64,
    edit: impl FnOnce(&mut StoredEvent),
) -> StoredEvent {
    let mut e = StoredEvent {
        position,
        event_id: uuid::Uuid::new_v4().to_string(),
        stream: stream.to_owned(),
        version,
        event_type: "TokenIssued".to_owned(),
        schema_version: 1,
        payload: ISSUED.to_owned(),
        recorded_at: format_time(1_796_685_422_766 + position),
        meta: RequestMeta {
            request_id: Some("f352cc26-a332-cf60-5d9b-8dfa30fee9ed".to_owned()),
            client_id: Some("a1c3f688323e46fb943e5f74d30ea15a".to_owned()),
            username: Some("user001667".to_owned()),
            grant_type: Some("password".to_owned()),
            peer: Some("198.51.100.209:30050".to_owned()),
        },
        prev_hash: prev.to_vec(),
        hash: Vec::new(),
    };
    edit(&mut e);
    e.hash = chain_hash(&e.prev_hash, &e).to_vec();
    e
}

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
    .unwrap();
}

/// Events 1-4 written in format 1 by the old schema, the database upgraded, events 5-9
/// appended in format 2 (two of them with fields no compact form reproduces).
fn mixed_log() -> (Connection, Vec<StoredEvent>) {
    let conn = Connection::open_in_memory().unwrap();
    migrate_to(&conn, 6).unwrap();
    let mut events: Vec<StoredEvent> = Vec::new();
    let mut append = |conn: &Connection, format_1: bool, stream: &str, edit: &dyn Fn(&mut StoredEvent)| {
        let prev = events.last().map_or(GENESIS.to_vec(), |e| e.hash.clone());
        let version = events.iter().filter(|e| e.stream == stream).count() as i64 + 1;
        let e = event(events.len() as i64 + 1, &prev, stream, version, edit);
        if format_1 {
            insert_format_1(conn, &e);
        } else {
            insert(conn, &e).unwrap();
        }
        events.push(e);
    };
    append(&conn, true, STREAM, &|_| {});
    append(&conn, true, "client-08be3ddf1fde41a3a52df7a2200dcfae", &|e| {
        e.event_type = "ClientRegistered".into()
    });
    append(&conn, true, "user-user000010", &|e| e.event_id = "NOT-A-UUID".into());
    append(&conn, true, STREAM, &|e| e.meta = RequestMeta::default());
    migrate(&conn).unwrap();
    append(&conn, false, STREAM, &|_| {});
    append(&conn, false, "user-user000010", &|e| {
        e.event_id = e.event_id.to_uppercase();
        e.recorded_at = "2026-12-07T23:17:02.263+00:00".into();
        e.event_type = "SomethingNew".into();
        e.payload = "{\"odd\":\"\u{1}\u{7} é 0042 QTManN+8ohsR9pm+khYlzO77Zd1yl0yDW\"}".into();
        e.meta.request_id = Some("F352CC26-A332-CF60-5D9B-8DFA30FEE9ED".into());
    });
    append(&conn, false, "grant-new", &|e| e.meta = RequestMeta::default());
    append(&conn, false, STREAM, &|_| {});
    (conn, events)
}

#[test]
fn a_format_1_log_upgraded_and_appended_in_format_2_reads_back_every_field_exactly() {
    let (conn, events) = mixed_log();
    assert_eq!(read_after(&conn, 0, 100).unwrap(), events);
    let mut scanned = Vec::new();
    for_each_after(&conn, 0, |e| {
        scanned.push(e);
        Ok(())
    })
    .unwrap();
    assert_eq!(scanned, events);
    // A read that starts inside the format-2 rows fetches the first predecessor's hash.
    assert_eq!(read_after(&conn, 6, 100).unwrap(), events[6..]);
    let mut prev = GENESIS.to_vec();
    for e in &events {
        assert_eq!(e.prev_hash, prev, "position {}", e.position);
        assert_eq!(chain_hash(&prev, e).to_vec(), e.hash, "position {}", e.position);
        prev = e.hash.clone();
    }
    assert_eq!(tail(&conn).unwrap(), Tail { position: 8, hash: prev });
}

#[test]
fn format_2_rows_hold_compact_values_and_old_rows_stay_as_they_were() {
    let (conn, _) = mixed_log();
    let one: (i64, String, String, String, i64) = conn
        .query_row(
            "SELECT row_format, typeof(event_id), typeof(payload), typeof(recorded_at), length(prev_hash)
             FROM events WHERE position = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(one, (1, "text".into(), "text".into(), "text".into(), 32));
    let row = |position: i64| -> (i64, String, String, String, String, String, String, i64) {
        conn.query_row(
            "SELECT row_format, typeof(event_id), typeof(stream), typeof(event_type), typeof(payload),
                typeof(recorded_at), typeof(request_id), length(prev_hash) FROM events WHERE position = ?1",
            [position],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
        )
        .unwrap()
    };
    let s = |t: &str| t.to_owned();
    assert_eq!(row(5), (2, s("blob"), s("integer"), s("integer"), s("blob"), s("integer"), s("blob"), 4));
    // Nothing shorter reproduces these exactly: kept as text (an uppercase id may still shrink
    // by its digit runs, exactly).
    let (format, _, stream, event_type, payload, recorded_at, request_id, prev) = row(6);
    assert_eq!(
        (format, stream, event_type, payload, recorded_at, request_id, prev),
        (2, s("integer"), s("text"), s("text"), s("text"), s("text"), 4)
    );
    let payload_bytes: i64 =
        conn.query_row("SELECT length(payload) FROM events WHERE position = 5", [], |r| r.get(0)).unwrap();
    assert!(payload_bytes * 2 < ISSUED.len() as i64, "{payload_bytes} bytes");
}

#[test]
fn stream_versions_span_both_formats_and_the_same_version_twice_is_a_conflict() {
    let (conn, events) = mixed_log();
    assert_eq!(stream_version(&conn, STREAM).unwrap(), 4);
    assert_eq!(stream_version(&conn, "user-user000010").unwrap(), 2);
    assert_eq!(stream_version(&conn, "grant-unknown").unwrap(), 0);
    let last = events.last().unwrap();
    let again = event(9, &last.hash, STREAM, 4, |_| {});
    assert!(matches!(insert(&conn, &again), Err(BackendError::Conflict(_))));
}

#[test]
fn a_row_that_does_not_chain_from_its_predecessor_keeps_its_whole_prev_hash() {
    let (conn, _) = mixed_log();
    let forged = event(9, &[9; 32], "grant-forged", 1, |_| {});
    insert(&conn, &forged).unwrap();
    let stored: Vec<u8> =
        conn.query_row("SELECT prev_hash FROM events WHERE position = 9", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, vec![9; 32]);
    assert_eq!(read_after(&conn, 8, 1).unwrap(), vec![forged]);
}
