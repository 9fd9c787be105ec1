//! The log's SQL: appending an event row, reading rows back in position order, the tail and
//! the start-up anchor of the hash chain.

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::store::records::{BResult, RequestMeta, StoredEvent, Tail};

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

/// A stream's highest version, in the live log or carried over the archive boundary.
pub fn stream_version(conn: &Connection, stream: &str) -> BResult<i64> {
    let mut stmt = conn.prepare_cached(
        "SELECT MAX(v) FROM (SELECT COALESCE(MAX(version), 0) AS v FROM events WHERE stream = ?1
         UNION ALL SELECT version FROM archived_streams WHERE stream = ?1)",
    )?;
    Ok(stmt.query_row([stream], |r| r.get(0))?)
}

pub fn insert(conn: &Connection, e: &StoredEvent) -> BResult<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (position, event_id, stream, version, event_type, schema_version,
            payload, recorded_at, request_id, actor_client, actor_user, grant_type, peer,
            prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    let m = &e.meta;
    insert.execute(params![
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
    ])?;
    Ok(())
}

fn stored_event(r: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        position: r.get(0)?,
        event_id: r.get(1)?,
        stream: r.get(2)?,
        version: r.get(3)?,
        event_type: r.get(4)?,
        schema_version: r.get(5)?,
        payload: r.get(6)?,
        recorded_at: r.get(7)?,
        meta: RequestMeta {
            request_id: r.get(8)?,
            client_id: r.get(9)?,
            username: r.get(10)?,
            grant_type: r.get(11)?,
            peer: r.get(12)?,
        },
        prev_hash: r.get(13)?,
        hash: r.get(14)?,
    })
}

/// Up to `limit` events after `after`, in position order.
pub fn read_after(conn: &Connection, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT position, event_id, stream, version, event_type, schema_version, payload,
            recorded_at, request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash
         FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after, limit as i64], stored_event)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Calls `each` for every event after `after`, in position order, in one statement (the audit
/// CLI's full scans).
pub fn for_each_after(
    conn: &Connection,
    after: i64,
    mut each: impl FnMut(StoredEvent) -> Result<(), Box<dyn std::error::Error + Send + Sync>>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut stmt = conn.prepare(
        "SELECT position, event_id, stream, version, event_type, schema_version, payload,
            recorded_at, request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash
         FROM events WHERE position > ?1 ORDER BY position",
    )?;
    let mut rows = stmt.query([after])?;
    while let Some(r) = rows.next()? {
        each(stored_event(r)?)?;
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
