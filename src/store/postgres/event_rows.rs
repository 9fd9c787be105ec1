//! The log's rows on PostgreSQL in both row formats (schema/postgres/0006_compact_rows.sql):
//! appending in format 2, reading either format back into the exact stored strings.

use postgres::Row;

use super::rows::Conn;
use crate::store::records::{format_time, BResult, BackendError, RequestMeta, StoredEvent, GENESIS};
use crate::store::row_format;

/// How many bytes of the predecessor's hash a format-2 row keeps when it chains from it.
const PREV_PREFIX: usize = 4;

fn corrupt(what: String) -> BackendError {
    BackendError::Corrupt(what)
}

/// A text field as a format-2 row holds it: `(text, compact)`, exactly one of them set.
fn split(text: &str) -> (Option<&str>, Option<Vec<u8>>) {
    match row_format::encode_text(text) {
        Some(compact) => (None, Some(compact)),
        None => (Some(text), None),
    }
}

fn split_optional(text: &Option<String>) -> (Option<&str>, Option<Vec<u8>>) {
    text.as_deref().map_or((None, None), split)
}

/// The id of a stream's `streams` row, added on first use (appenders hold the `log_head` lock,
/// so no two add the same name).
fn stream_id(c: &mut Conn, stream: &str) -> BResult<i64> {
    let (name, compact) = split(stream);
    let found =
        c.query_opt("SELECT id FROM streams WHERE name = $1 OR compact_name = $2", &[&name, &compact])?;
    match found {
        Some(r) => Ok(r.try_get(0)?),
        None => Ok(c
            .query_opt(
                "INSERT INTO streams (name, compact_name) VALUES ($1, $2) RETURNING id",
                &[&name, &compact],
            )?
            .ok_or_else(|| corrupt("the new stream has no id".into()))?
            .try_get(0)?),
    }
}

/// A stream's highest version over both formats and the archive boundary.
pub fn stream_version(c: &mut Conn, stream: &str) -> BResult<i64> {
    let (name, compact) = split(stream);
    let r = c.query_opt(
        "SELECT GREATEST((SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = $1),
                         (SELECT COALESCE(MAX(version), 0) FROM events WHERE stream_id =
                            (SELECT id FROM streams WHERE name = $2 OR compact_name = $3)),
                         (SELECT COALESCE(MAX(version), 0) FROM archived_streams WHERE stream = $1))::BIGINT",
        &[&stream, &name, &compact],
    )?;
    Ok(r.map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
}

/// The hash the event at `position` chains from, where something still holds it.
pub fn predecessor_hash(c: &mut Conn, position: i64) -> BResult<Option<Vec<u8>>> {
    if position == 1 {
        return Ok(Some(GENESIS.to_vec()));
    }
    let sql = "SELECT hash FROM events WHERE position = $1
               UNION ALL SELECT last_hash FROM archive_steps WHERE last_position = $1
               UNION ALL SELECT hash FROM chain_anchor WHERE position = $1 LIMIT 1";
    Ok(c.query_opt(sql, &[&position.saturating_sub(1)])?.map(|r| r.try_get(0)).transpose()?)
}

/// Appends an event as a format-2 row.
pub fn insert_event(c: &mut Conn, e: &StoredEvent) -> BResult<()> {
    let m = &e.meta;
    let schema_version =
        i32::try_from(e.schema_version).map_err(|_| corrupt("schema version too large".into()))?;
    let (event_id, compact_event_id) = split(&e.event_id);
    let (payload, compact_payload) = split(&e.payload);
    let (request_id, compact_request_id) = split_optional(&m.request_id);
    let (actor_client, compact_actor_client) = split_optional(&m.client_id);
    let type_code = row_format::event_type_code(&e.event_type).map(|code| code as i16);
    let event_type = type_code.is_none().then_some(e.event_type.as_str());
    let recorded_ms = e.recorded_at_ms().filter(|ms| format_time(*ms) == e.recorded_at);
    let recorded_at = recorded_ms.is_none().then_some(e.recorded_at.as_str());
    let stream_id = stream_id(c, &e.stream)?;
    let prev_hash = match predecessor_hash(c, e.position)? {
        Some(held) if held == e.prev_hash => &e.prev_hash[..PREV_PREFIX.min(held.len())],
        _ => &e.prev_hash[..],
    };
    c.execute(
        "INSERT INTO events (position, event_id, compact_event_id, stream_id, version, event_type,
            type_code, schema_version, payload, compact_payload, recorded_at, recorded_ms,
            request_id, compact_request_id, actor_client, compact_actor_client, actor_user,
            grant_type, peer, prev_hash, hash, row_format)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
            $19, $20, $21, 2)",
        &[
            &e.position,
            &event_id,
            &compact_event_id,
            &stream_id,
            &e.version,
            &event_type,
            &type_code,
            &schema_version,
            &payload,
            &compact_payload,
            &recorded_at,
            &recorded_ms,
            &request_id,
            &compact_request_id,
            &actor_client,
            &compact_actor_client,
            &m.username,
            &m.grant_type,
            &m.peer,
            &prev_hash,
            &e.hash,
        ],
    )?;
    Ok(())
}

/// Up to `limit` events after `after`, in position order, in either format.
pub fn read_after(c: &mut Conn, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
    let rows = c.query(
        "SELECT e.position, e.event_id, e.compact_event_id, e.stream, s.name, s.compact_name,
            e.version, e.event_type, e.type_code, e.schema_version, e.payload, e.compact_payload,
            e.recorded_at, e.recorded_ms, e.request_id, e.compact_request_id, e.actor_client,
            e.compact_actor_client, e.actor_user, e.grant_type, e.peer, e.prev_hash, e.hash
         FROM events e LEFT JOIN streams s ON s.id = e.stream_id
         WHERE e.position > $1 ORDER BY e.position LIMIT $2",
        &[&after, &(limit as i64)],
    )?;
    let mut events: Vec<StoredEvent> = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut e = stored_event(r)?;
        if e.prev_hash.len() == PREV_PREFIX {
            let held = match events.last() {
                Some(before) if before.position == e.position - 1 => Some(before.hash.clone()),
                _ => predecessor_hash(c, e.position)?,
            };
            // A prefix that is not the predecessor's stays as read: the chain check names it.
            if let Some(full) = held.filter(|h| h.starts_with(&e.prev_hash)) {
                e.prev_hash = full;
            }
        }
        events.push(e);
    }
    Ok(events)
}

/// A text field from its text column or, decoded, its compact twin.
fn text(r: &Row, text_at: usize, compact_at: usize) -> BResult<Option<String>> {
    if let Some(text) = r.try_get::<_, Option<String>>(text_at)? {
        return Ok(Some(text));
    }
    let Some(compact) = r.try_get::<_, Option<Vec<u8>>>(compact_at)? else {
        return Ok(None);
    };
    let mut decoded = String::new();
    row_format::decode_into(&compact, &mut decoded).map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(decoded))
}

fn required(r: &Row, text_at: usize, compact_at: usize, what: &str) -> BResult<String> {
    text(r, text_at, compact_at)?.ok_or_else(|| corrupt(format!("an event row without its {what}")))
}

fn plain(r: &Row, at: usize, what: &str) -> BResult<String> {
    r.try_get::<_, Option<String>>(at)?.ok_or_else(|| corrupt(format!("an event row without its {what}")))
}

fn stored_event(r: &Row) -> BResult<StoredEvent> {
    let schema_version: i32 = r.try_get(9)?;
    let event_type = match r.try_get::<_, Option<i16>>(8)? {
        Some(code) => row_format::event_type_name(code.into())
            .ok_or_else(|| corrupt(format!("unknown event type code {code}")))?
            .to_owned(),
        None => plain(r, 7, "event type")?,
    };
    let recorded_at = match r.try_get::<_, Option<i64>>(13)? {
        Some(ms) => format_time(ms),
        None => plain(r, 12, "time")?,
    };
    Ok(StoredEvent {
        position: r.try_get(0)?,
        event_id: required(r, 1, 2, "event id")?,
        stream: match r.try_get::<_, Option<String>>(3)? {
            Some(stream) => stream,
            None => required(r, 4, 5, "stream")?,
        },
        version: r.try_get(6)?,
        event_type,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| corrupt("negative schema version".into()))?,
        payload: required(r, 10, 11, "payload")?,
        recorded_at,
        meta: RequestMeta {
            request_id: text(r, 14, 15)?,
            client_id: text(r, 16, 17)?,
            username: r.try_get(18)?,
            grant_type: r.try_get(19)?,
            peer: r.try_get(20)?,
        },
        prev_hash: r.try_get(21)?,
        hash: r.try_get(22)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::pg_cluster;
    use crate::store::postgres::{migrate, PgOptions};
    use crate::store::records::chain_hash;
    use crate::store::sqlite::log::tests::{event, STREAM};

    /// Whether to write format 1, the stream, and how the event differs from the usual.
    type Step = (bool, &'static str, fn(&mut StoredEvent));

    /// A format-1 row as a build before schema 0006 wrote it (text columns, whole prev_hash).
    fn insert_format_1(c: &mut Conn, e: &StoredEvent) {
        let m = &e.meta;
        c.client
            .execute(
                "INSERT INTO events (position, event_id, stream, version, event_type, schema_version,
                    payload, recorded_at, request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                &[
                    &e.position, &e.event_id, &e.stream, &e.version, &e.event_type, &(e.schema_version as i32),
                    &e.payload, &e.recorded_at, &m.request_id, &m.client_id, &m.username, &m.grant_type,
                    &m.peer, &e.prev_hash, &e.hash,
                ],
            )
            .unwrap();
    }

    #[test]
    fn format_1_rows_then_format_2_rows_read_back_exactly_and_chain_on_postgres() {
        let Some(cluster) = pg_cluster::cluster() else { return };
        let options = PgOptions::parse(&cluster.create_database(), None, 1).unwrap();
        let mut client = options.connect().unwrap();
        migrate::migrate(&mut client).unwrap();
        let mut c = Conn::new(client);
        let mut events: Vec<StoredEvent> = Vec::new();
        let plan: [Step; 7] = [
            (true, STREAM, |_| {}),
            (true, "user-user000010", |e| e.event_id = "NOT-A-UUID".into()),
            (true, STREAM, |e| e.meta = RequestMeta::default()),
            (false, STREAM, |_| {}),
            (false, "user-user000010", |e| {
                e.event_type = "SomethingNew".into();
                e.recorded_at = "2026-12-07T23:17:02.263+00:00".into();
                e.payload = "{\"odd\":\"\u{1} é\"}".into();
            }),
            (false, "grant-new", |e| e.meta = RequestMeta::default()),
            (false, STREAM, |_| {}),
        ];
        for (format_1, stream, edit) in plan {
            let prev = events.last().map_or(GENESIS.to_vec(), |e| e.hash.clone());
            let version = stream_version(&mut c, stream).unwrap() + 1;
            let e = event(events.len() as i64 + 1, &prev, stream, version, edit);
            if format_1 {
                insert_format_1(&mut c, &e);
            } else {
                insert_event(&mut c, &e).unwrap();
            }
            events.push(e);
        }
        assert_eq!(read_after(&mut c, 0, 100).unwrap(), events);
        assert_eq!(read_after(&mut c, 4, 100).unwrap(), events[4..]);
        let mut prev = GENESIS.to_vec();
        for e in &events {
            assert_eq!(chain_hash(&prev, e).to_vec(), e.hash, "position {}", e.position);
            prev = e.hash.clone();
        }
        assert_eq!(stream_version(&mut c, STREAM).unwrap(), 4);
        let compact: (i16, Option<String>, Option<i64>, i32) = {
            let r = c
                .client
                .query_one(
                    "SELECT row_format, payload, stream_id, length(prev_hash) FROM events WHERE position = 4",
                    &[],
                )
                .unwrap();
            (r.get(0), r.get(1), r.get(2), r.get(3))
        };
        assert_eq!((compact.0, compact.1, compact.2.is_some(), compact.3), (2, None, true, 4));
        let again = event(8, &prev, STREAM, 4, |_| {});
        assert!(matches!(insert_event(&mut c, &again), Err(BackendError::Conflict(_))));
    }
}
