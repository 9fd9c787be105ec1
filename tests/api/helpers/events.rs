//! The event log as tests read it: a few columns of every event, whichever backend holds it.

use serde_json::Value;

use super::deployment::Deployment;

/// One event of the log.
#[derive(Debug, Clone)]
pub struct Event {
    pub position: i64,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    pub payload: Value,
    /// The `X-Request-ID` of the request that appended it.
    pub request_id: Option<String>,
}

impl Event {
    /// The `reason` of a `TokenRevoked` payload.
    pub fn reason(&self) -> Option<&str> {
        self.payload.get("reason").and_then(Value::as_str)
    }
}

impl Deployment {
    /// The event log in position order, read through the backend's own reader.
    pub fn events(&self) -> Vec<Event> {
        self.stored_events()
            .into_iter()
            .map(|e| Event {
                position: e.position,
                stream: e.stream,
                version: e.version,
                event_type: e.event_type,
                payload: serde_json::from_str(&e.payload).unwrap_or(Value::Null),
                request_id: e.meta.request_id,
            })
            .collect()
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
