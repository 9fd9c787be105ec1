//! The log's SQL: appending an event row, reading rows back in position order, the tail and
//! the start-up anchor of the hash chain.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row, ToSql};

use crate::store::records::{format_time, BResult, RequestMeta, StoredEvent, Tail, GENESIS};
use crate::store::row_format;

/// The last event's position and hash; when every event was archived, the last archiving
/// step's (genesis for an empty log).
pub fn tail(conn: &Connection) -> BResult<Tail> {
    let last = conn
        .prepare_cached(
            "SELECT position, hash FROM (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1)
             UNION ALL
             SELECT * FROM (SELECT last_position, last_hash FROM archive_steps ORDER BY last_position DESC LIMIT 1)
             ORDER BY 1 DESC LIMIT 1",
        )?
        .query_row([], |r| Ok(Tail { position: r.get(0)?, hash: r.get(1)? }))
        .optional()?;
    Ok(last.unwrap_or_else(Tail::genesis))
}

/// A stream's highest version, in the live log (under its name in format-1 rows, its id in
/// format-2 rows) or carried over the archive boundary.
pub fn stream_version(conn: &Connection, stream: &str) -> BResult<i64> {
    // The id first: compared with a subquery, the untyped `stream` column's index goes unused.
    let id: Option<i64> = conn
        .prepare_cached("SELECT id FROM streams WHERE name = ?1")?
        .query_row([stream_key(stream)], |r| r.get(0))
        .optional()?;
    let mut stmt = conn.prepare_cached(
        "SELECT MAX(v) FROM (SELECT COALESCE(MAX(version), 0) AS v FROM events WHERE stream = ?1
         UNION ALL SELECT MAX(version) FROM events WHERE stream = ?2
         UNION ALL SELECT version FROM archived_streams WHERE stream = ?1)",
    )?;
    Ok(stmt.query_row(params![stream, id], |r| r.get(0))?)
}

/// Appends an event as a format-2 row (see `schema/sqlite/0007_compact_rows.sql`).
pub fn insert(conn: &Connection, e: &StoredEvent) -> BResult<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (position, event_id, stream, version, event_type, schema_version,
            payload, recorded_at, request_id, actor_client, actor_user, grant_type, peer,
            prev_hash, hash, row_format)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 2)",
    )?;
    let m = &e.meta;
    let recorded_at = match e.recorded_at_ms().filter(|ms| format_time(*ms) == e.recorded_at) {
        Some(ms) => Field::Int(ms),
        None => Field::Text(&e.recorded_at),
    };
    let event_type = match row_format::event_type_code(&e.event_type) {
        Some(code) => Field::Int(code),
        None => Field::Text(&e.event_type),
    };
    // The predecessor's hash is held by the predecessor: keep only enough of it to name a
    // row that was moved (the chain check), the whole hash when it is anything else.
    let prev_hash = match predecessor_hash(conn, e.position)? {
        Some(held) if held == e.prev_hash => &e.prev_hash[..PREV_PREFIX.min(held.len())],
        _ => &e.prev_hash[..],
    };
    insert.execute(params![
        e.position,
        compact(&e.event_id),
        stream_id(conn, &e.stream)?,
        e.version,
        event_type,
        e.schema_version,
        compact(&e.payload),
        recorded_at,
        optional(&m.request_id),
        optional(&m.client_id),
        optional(&m.username),
        optional(&m.grant_type),
        optional(&m.peer),
        prev_hash,
        e.hash
    ])?;
    Ok(())
}

/// How many bytes of the predecessor's hash a format-2 row keeps when it chains from it.
pub const PREV_PREFIX: usize = 4;

/// A field's stored value in a format-2 row.
enum Field<'a> {
    Text(&'a str),
    Blob(Vec<u8>),
    Int(i64),
    Null,
}

impl ToSql for Field<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Field::Text(t) => ValueRef::Text(t.as_bytes()),
            Field::Blob(b) => ValueRef::Blob(b),
            Field::Int(i) => ValueRef::Integer(*i),
            Field::Null => ValueRef::Null,
        }))
    }
}

/// A text field's compact form when there is a shorter exact one, else the text.
fn compact(text: &str) -> Field<'_> {
    row_format::encode_text(text).map_or(Field::Text(text), Field::Blob)
}

fn optional(text: &Option<String>) -> Field<'_> {
    text.as_deref().map_or(Field::Null, compact)
}

/// How `streams.name` holds a stream's name.
fn stream_key(stream: &str) -> Field<'_> {
    compact(stream)
}

/// The id of a stream's `streams` row, added on first use.
fn stream_id(conn: &Connection, stream: &str) -> BResult<i64> {
    let key = stream_key(stream);
    let found = conn
        .prepare_cached("SELECT id FROM streams WHERE name = ?1")?
        .query_row([&key], |r| r.get(0))
        .optional()?;
    match found {
        Some(id) => Ok(id),
        None => Ok(conn
            .prepare_cached("INSERT INTO streams (name) VALUES (?1) RETURNING id")?
            .query_row([&key], |r| r.get(0))?),
    }
}

/// The hash the event at `position` chains from: genesis for the first event, else the hash
/// of the event at `position - 1` (live, or where an archiving step or the start-up anchor
/// ended). `None` when nothing holds it any more.
pub fn predecessor_hash(conn: &Connection, position: i64) -> BResult<Option<Vec<u8>>> {
    if position == 1 {
        return Ok(Some(GENESIS.to_vec()));
    }
    let before = position.saturating_sub(1);
    let live = conn
        .prepare_cached("SELECT hash FROM events WHERE position = ?1")?
        .query_row([before], |r| r.get(0))
        .optional()?;
    if live.is_some() {
        return Ok(live);
    }
    let sql = "SELECT last_hash FROM archive_steps WHERE last_position = ?1
               UNION ALL SELECT hash FROM chain_anchor WHERE position = ?1 LIMIT 1";
    Ok(conn.prepare_cached(sql)?.query_row([before], |r| r.get(0)).optional()?)
}

/// The columns every reader of whole events selects, in the order [`RowReader`] reads them;
/// append `WHERE`/`ORDER BY` on `e.position`.
const EVENT_SELECT: &str = "SELECT e.position, e.event_id, e.stream, s.name, e.version, e.event_type,
    e.schema_version, e.payload, e.recorded_at, e.request_id, e.actor_client, e.actor_user,
    e.grant_type, e.peer, e.prev_hash, e.hash, e.row_format
 FROM events e LEFT JOIN streams s ON s.id = e.stream AND e.row_format = 2";

/// The same columns from a database that no writer of this build has migrated yet (the audit
/// CLI opens databases read-only): every row is format 1.
const LEGACY_EVENT_SELECT: &str = "SELECT e.position, e.event_id, e.stream, NULL, e.version, e.event_type,
    e.schema_version, e.payload, e.recorded_at, e.request_id, e.actor_client, e.actor_user,
    e.grant_type, e.peer, e.prev_hash, e.hash, 1
 FROM events e";

/// The `SELECT … FROM events e` that reads whole events on this database, for [`RowReader`];
/// append `WHERE`/`ORDER BY` on `e.position`.
pub fn event_select(conn: &Connection) -> BResult<&'static str> {
    let compact: bool = conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'streams')",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(if compact { EVENT_SELECT } else { LEGACY_EVENT_SELECT })
}

/// Reads rows of [`event_select`] back into the exact field values that were appended, in
/// either row format. Remembers the last row's hash, so a scan in position order resolves a
/// format-2 row's omitted `prev_hash` without a query.
#[derive(Debug, Default)]
pub struct RowReader {
    last: Option<(i64, Vec<u8>)>,
}

impl RowReader {
    /// Reads `r` into `e`, reusing its buffers.
    pub fn refill(&mut self, conn: &Connection, r: &Row<'_>, e: &mut StoredEvent) -> rusqlite::Result<()> {
        let format: i64 = r.get(16)?;
        let compact = format == row_format::FORMAT_COMPACT;
        e.position = r.get(0)?;
        text(r, 1, compact, &mut e.event_id)?;
        match r.get_ref(2)? {
            ValueRef::Integer(_) if compact => text(r, 3, true, &mut e.stream)?,
            _ => text(r, 2, false, &mut e.stream)?,
        }
        e.version = r.get(4)?;
        match r.get_ref(5)? {
            ValueRef::Integer(code) if compact => {
                let name = row_format::event_type_name(code)
                    .ok_or_else(|| corrupt(5, "an unknown event type code"))?;
                e.event_type.clear();
                e.event_type.push_str(name);
            }
            _ => text(r, 5, false, &mut e.event_type)?,
        }
        e.schema_version = r.get(6)?;
        text(r, 7, compact, &mut e.payload)?;
        match r.get_ref(8)? {
            ValueRef::Integer(ms) if compact => e.recorded_at = format_time(ms),
            _ => text(r, 8, false, &mut e.recorded_at)?,
        }
        let m = &mut e.meta;
        for (index, field) in
            [&mut m.request_id, &mut m.client_id, &mut m.username, &mut m.grant_type, &mut m.peer]
                .into_iter()
                .enumerate()
        {
            if let ValueRef::Null = r.get_ref(9 + index)? {
                *field = None;
            } else {
                text(r, 9 + index, compact, field.get_or_insert_with(String::new))?;
            }
        }
        blob(r, 15, &mut e.hash)?;
        blob(r, 14, &mut e.prev_hash)?;
        if compact && e.prev_hash.len() == PREV_PREFIX {
            let held = match &self.last {
                Some((p, hash)) if *p == e.position - 1 => Some(hash.clone()),
                _ => predecessor_hash(conn, e.position).map_err(|e| corrupt(14, &e.to_string()))?,
            };
            // A prefix that is not the predecessor's stays as read: the chain check names it.
            if let Some(full) = held.filter(|h| h.starts_with(&e.prev_hash)) {
                e.prev_hash = full;
            }
        }
        match &mut self.last {
            Some((p, hash)) => {
                *p = e.position;
                hash.clone_from(&e.hash);
            }
            None => self.last = Some((e.position, e.hash.clone())),
        }
        Ok(())
    }
}

/// A stored value that is not what its row format allows.
fn corrupt(index: usize, why: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Blob, why.to_owned().into())
}

/// A text field: its text, or in a format-2 row its compact form decoded.
fn text(r: &Row<'_>, index: usize, compact: bool, into: &mut String) -> rusqlite::Result<()> {
    match r.get_ref(index)? {
        ValueRef::Text(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(rusqlite::Error::Utf8Error)?;
            into.clear();
            into.push_str(text);
            Ok(())
        }
        ValueRef::Blob(bytes) if compact => {
            row_format::decode_into(bytes, into).map_err(|e| corrupt(index, &e.to_string()))
        }
        other => Err(rusqlite::Error::InvalidColumnType(index, format!("column {index}"), other.data_type())),
    }
}

fn blob(r: &Row<'_>, index: usize, into: &mut Vec<u8>) -> rusqlite::Result<()> {
    match r.get_ref(index)? {
        ValueRef::Blob(bytes) => {
            into.clear();
            into.extend_from_slice(bytes);
            Ok(())
        }
        other => Err(rusqlite::Error::InvalidColumnType(index, format!("column {index}"), other.data_type())),
    }
}

/// An event with empty fields, to be filled by [`RowReader::refill`].
pub fn empty_event() -> StoredEvent {
    StoredEvent {
        position: 0,
        event_id: String::new(),
        stream: String::new(),
        version: 0,
        event_type: String::new(),
        schema_version: 0,
        payload: String::new(),
        recorded_at: String::new(),
        meta: RequestMeta::default(),
        prev_hash: Vec::new(),
        hash: Vec::new(),
    }
}

/// Up to `limit` events after `after`, in position order.
pub fn read_after(conn: &Connection, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
    let select = event_select(conn)?;
    let mut stmt =
        conn.prepare_cached(&format!("{select} WHERE e.position > ?1 ORDER BY e.position LIMIT ?2"))?;
    let mut rows = stmt.query(params![after, limit as i64])?;
    let mut reader = RowReader::default();
    let mut events = Vec::new();
    while let Some(r) = rows.next()? {
        let mut event = empty_event();
        reader.refill(conn, r, &mut event)?;
        events.push(event);
    }
    Ok(events)
}

/// Calls `each` for every event after `after`, in position order, in one statement (the audit
/// CLI's full scans).
pub fn for_each_after(
    conn: &Connection,
    after: i64,
    mut each: impl FnMut(StoredEvent) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let select = event_select(conn)?;
    let mut stmt = conn.prepare(&format!("{select} WHERE e.position > ?1 ORDER BY e.position"))?;
    let mut rows = stmt.query([after])?;
    let mut reader = RowReader::default();
    while let Some(r) = rows.next()? {
        let mut event = empty_event();
        reader.refill(conn, r, &mut event)?;
        each(event)?;
    }
    Ok(())
}

pub fn anchor(conn: &Connection) -> BResult<(i64, Vec<u8>)> {
    Ok(conn.query_row("SELECT position, hash FROM chain_anchor WHERE id = 1", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?)
}

pub fn set_anchor(conn: &Connection, position: i64, hash: &[u8]) -> BResult<()> {
    conn.execute("UPDATE chain_anchor SET position = ?1, hash = ?2 WHERE id = 1", params![position, hash])?;
    Ok(())
}

/// The hash of the event at `position`, from the log or, once archived, from the archiving step
/// that ended there.
pub fn hash_at(conn: &Connection, position: i64) -> BResult<Option<Vec<u8>>> {
    let sql = "SELECT hash FROM events WHERE position = ?1
               UNION ALL SELECT last_hash FROM archive_steps WHERE last_position = ?1 LIMIT 1";
    Ok(conn.prepare_cached(sql)?.query_row([position], |r| r.get(0)).optional()?)
}

/// Tries to rewrite and to delete the log; whether each was refused (the conformance suite).
#[cfg(test)]
pub(crate) fn tamper_for_tests(conn: &Connection) -> [bool; 2] {
    [
        conn.execute("UPDATE events SET payload = '{}'", []).is_err(),
        conn.execute("DELETE FROM events", []).is_err(),
    ]
}

#[cfg(test)]
#[path = "log_tests.rs"]
pub(crate) mod tests;
