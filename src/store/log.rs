//! Appending to the log with its hash chain, and reading it back in position order.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::StoreError;
use crate::domain::events::{Event, Millis, Pending, SCHEMA_VERSION};

/// Who asked, from where, under which request: travels in the envelope, not the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub grant_type: Option<String>,
    pub peer: Option<String>,
}

/// An event as stored, with everything the hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub position: i64,
    pub event_id: String,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: String,
    pub recorded_at: String,
    pub meta: RequestMeta,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl StoredEvent {
    /// Decodes the payload (upcasting older schema versions).
    pub fn decode(&self) -> Result<Event, StoreError> {
        Event::decode(&self.event_type, self.schema_version, &self.payload)
            .map_err(|source| StoreError::Decode { position: self.position, source })
    }

    /// `recorded_at` in milliseconds since the epoch.
    pub fn recorded_at_ms(&self) -> Option<Millis> {
        DateTime::parse_from_rfc3339(&self.recorded_at).ok().map(|t| t.timestamp_millis())
    }
}

/// The hash of the empty log, which the first event chains from.
pub const GENESIS: [u8; 32] = [0; 32];

/// SHA-256 over the predecessor's hash and every stored field of the event, each length-prefixed
/// (8 bytes, big-endian) so that no field boundary can move. Absent metadata hashes as an empty
/// field with length u64::MAX. The audit CLI recomputes exactly this.
pub fn chain_hash(prev_hash: &[u8], e: &StoredEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    let mut field = |bytes: Option<&[u8]>| match bytes {
        Some(b) => {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
        None => h.update(u64::MAX.to_be_bytes()),
    };
    field(Some(&e.position.to_be_bytes()));
    field(Some(e.event_id.as_bytes()));
    field(Some(e.stream.as_bytes()));
    field(Some(&e.version.to_be_bytes()));
    field(Some(e.event_type.as_bytes()));
    field(Some(&e.schema_version.to_be_bytes()));
    field(Some(e.payload.as_bytes()));
    field(Some(e.recorded_at.as_bytes()));
    let m = &e.meta;
    for value in [&m.request_id, &m.client_id, &m.username, &m.grant_type, &m.peer] {
        field(value.as_deref().map(str::as_bytes));
    }
    h.finalize().into()
}

/// The end of the log: where the next event goes and what it chains from.
#[derive(Debug, Clone)]
pub struct Tail {
    pub position: i64,
    pub hash: Vec<u8>,
}

impl Tail {
    pub fn load(conn: &Connection) -> Result<Self, StoreError> {
        let last = conn
            .query_row("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1", [], |r| {
                Ok(Tail { position: r.get(0)?, hash: r.get(1)? })
            })
            .optional()?;
        Ok(last.unwrap_or(Tail { position: 0, hash: GENESIS.to_vec() }))
    }
}

/// Formats a time as stored in `recorded_at`: RFC 3339, UTC, milliseconds.
pub fn format_time(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Appends events after `tail` (which the caller loaded inside the same write transaction) and
/// returns them as stored, for the projections.
pub fn append(
    conn: &Connection,
    tail: &mut Tail,
    pending: Vec<Pending>,
    meta: &RequestMeta,
    now: Millis,
) -> Result<Vec<(StoredEvent, Event)>, StoreError> {
    let mut versions: HashMap<String, i64> = HashMap::new();
    let mut stored = Vec::with_capacity(pending.len());
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (position, event_id, stream, version, event_type, schema_version,
            payload, recorded_at, request_id, actor_client, actor_user, grant_type, peer,
            prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    for Pending { stream, event } in pending {
        let version = match versions.get(&stream) {
            Some(v) => v + 1,
            None => stream_version(conn, &stream)? + 1,
        };
        versions.insert(stream.clone(), version);
        let mut e = StoredEvent {
            position: tail.position + 1,
            event_id: Uuid::new_v4().to_string(),
            stream,
            version,
            event_type: event.event_type().to_owned(),
            schema_version: SCHEMA_VERSION,
            payload: event.payload(),
            recorded_at: format_time(now),
            meta: meta.clone(),
            prev_hash: tail.hash.clone(),
            hash: Vec::new(),
        };
        e.hash = chain_hash(&e.prev_hash, &e).to_vec();
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
        *tail = Tail { position: e.position, hash: e.hash.clone() };
        stored.push((e, event));
    }
    Ok(stored)
}

fn stream_version(conn: &Connection, stream: &str) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?1")?;
    Ok(stmt.query_row([stream], |r| r.get(0))?)
}

/// Reads the events after `after`, in position order, calling `each` for every one.
pub fn read_after(
    conn: &Connection,
    after: i64,
    mut each: impl FnMut(StoredEvent) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare(
        "SELECT position, event_id, stream, version, event_type, schema_version, payload,
            recorded_at, request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash
         FROM events WHERE position > ?1 ORDER BY position",
    )?;
    let mut rows = stmt.query([after])?;
    while let Some(r) = rows.next()? {
        each(StoredEvent {
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
        })?;
    }
    Ok(())
}

/// Where and why the hash chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event log's hash chain is broken at position {position}: {reason}")]
pub struct BrokenChain {
    pub position: i64,
    pub reason: String,
}

/// Verifies the chain from the start-up anchor to the end of the log and moves the anchor.
/// Returns how many events were checked. The full audit is `ledger-replay verify`.
pub fn verify_since_anchor(conn: &Connection) -> Result<Result<u64, BrokenChain>, StoreError> {
    let (anchor, anchor_hash): (i64, Vec<u8>) =
        conn.query_row("SELECT position, hash FROM chain_anchor WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let mut expected_prev = anchor_hash.clone();
    if anchor > 0 {
        let stored: Option<Vec<u8>> = conn
            .query_row("SELECT hash FROM events WHERE position = ?1", [anchor], |r| r.get(0))
            .optional()?;
        match stored {
            Some(h) if h == anchor_hash => {}
            Some(_) => {
                return Ok(Err(broken(anchor, "its hash differs from the one verified at the last start")))
            }
            None => return Ok(Err(broken(anchor, "the event verified at the last start is missing"))),
        }
    } else {
        expected_prev = GENESIS.to_vec();
    }
    let mut checked = 0;
    let mut position = anchor;
    let mut failure = None;
    read_after(conn, anchor, |e| {
        if failure.is_some() {
            return Ok(());
        }
        if e.position != position + 1 {
            failure = Some(broken(position + 1, "the position is missing"));
        } else if e.prev_hash != expected_prev {
            failure = Some(broken(e.position, "prev_hash does not match the previous event's hash"));
        } else if e.hash != chain_hash(&e.prev_hash, &e) {
            failure = Some(broken(e.position, "the hash does not match the event's content"));
        }
        position = e.position;
        expected_prev = e.hash;
        checked += 1;
        Ok(())
    })?;
    if let Some(f) = failure {
        return Ok(Err(f));
    }
    conn.execute(
        "UPDATE chain_anchor SET position = ?1, hash = ?2 WHERE id = 1",
        params![position, expected_prev],
    )?;
    Ok(Ok(checked))
}

fn broken(position: i64, reason: &str) -> BrokenChain {
    BrokenChain { position, reason: reason.to_owned() }
}
