//! Reading the `events` table, only through the columns the contract names.

use std::time::Duration;

use rusqlite::types::ValueRef;
use serde_json::Value;

use super::deployment::Deployment;

/// One row of the `events` table.
#[derive(Debug, Clone)]
pub struct Event {
    pub position: i64,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    pub payload: Value,
}

impl Event {
    /// The `reason` of a `TokenRevoked` payload.
    pub fn reason(&self) -> Option<&str> {
        self.payload.get("reason").and_then(Value::as_str)
    }
}

impl Deployment {
    /// The event log in position order, read through a read-only connection.
    pub fn events(&self) -> Vec<Event> {
        let connection = rusqlite::Connection::open_with_flags(
            self.database_path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the ledger read-only");
        connection.busy_timeout(Duration::from_secs(5)).expect("set a busy timeout");
        let mut statement = connection
            .prepare("SELECT position, stream, version, event_type, payload FROM events ORDER BY position")
            .expect("query the events table");
        statement
            .query_map([], |row| {
                Ok(Event {
                    position: row.get(0)?,
                    stream: text_of(row.get_ref(1)?),
                    version: row.get(2)?,
                    event_type: text_of(row.get_ref(3)?),
                    payload: serde_json::from_str(&text_of(row.get_ref(4)?)).unwrap_or(Value::Null),
                })
            })
            .expect("read the events")
            .collect::<Result<_, _>>()
            .expect("decode the events")
    }
}

fn text_of(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Null => String::new(),
    }
}

/// The reasons of every `TokenRevoked` event, in log order.
pub fn revocation_reasons(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event_type == "TokenRevoked")
        .map(|e| e.reason().unwrap_or("<no reason>").to_string())
        .collect()
}

/// How many events of one type the log holds.
pub fn count_of(events: &[Event], event_type: &str) -> usize {
    events.iter().filter(|e| e.event_type == event_type).count()
}
