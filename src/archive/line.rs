//! The exported event format: one JSON object a line with every column of `events`, hashes in
//! hex. `ledger-replay export` writes it and archive segments hold it, so every hash can be
//! recomputed from the file.

use serde::{Deserialize, Serialize};

use crate::store::records::{RequestMeta, StoredEvent};

/// One line of an export or a segment. Unknown fields are refused: a column this build does not
/// know would be a field the hash covers and this build cannot check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedEvent {
    pub position: i64,
    pub event_id: String,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: u32,
    /// The stored JSON text, byte for byte (the hash covers these bytes, not their meaning).
    pub payload: String,
    pub recorded_at: String,
    pub request_id: Option<String>,
    pub actor_client: Option<String>,
    pub actor_user: Option<String>,
    pub grant_type: Option<String>,
    pub peer: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl From<&StoredEvent> for ExportedEvent {
    fn from(e: &StoredEvent) -> Self {
        Self {
            position: e.position,
            event_id: e.event_id.clone(),
            stream: e.stream.clone(),
            version: e.version,
            event_type: e.event_type.clone(),
            schema_version: e.schema_version,
            payload: e.payload.clone(),
            recorded_at: e.recorded_at.clone(),
            request_id: e.meta.request_id.clone(),
            actor_client: e.meta.client_id.clone(),
            actor_user: e.meta.username.clone(),
            grant_type: e.meta.grant_type.clone(),
            peer: e.meta.peer.clone(),
            prev_hash: hex::encode(&e.prev_hash),
            hash: hex::encode(&e.hash),
        }
    }
}

impl ExportedEvent {
    /// Back to the stored form; fails only on hashes that are not hex.
    pub fn into_stored(self) -> Result<StoredEvent, String> {
        let unhex =
            |name: &str, text: &str| hex::decode(text).map_err(|e| format!("{name} is not hexadecimal: {e}"));
        Ok(StoredEvent {
            prev_hash: unhex("prev_hash", &self.prev_hash)?,
            hash: unhex("hash", &self.hash)?,
            position: self.position,
            event_id: self.event_id,
            stream: self.stream,
            version: self.version,
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload: self.payload,
            recorded_at: self.recorded_at,
            meta: RequestMeta {
                request_id: self.request_id,
                client_id: self.actor_client,
                username: self.actor_user,
                grant_type: self.grant_type,
                peer: self.peer,
            },
        })
    }

    /// The line's JSON text (without the newline).
    pub fn line(e: &StoredEvent) -> String {
        serde_json::to_string(&Self::from(e)).expect("an exported event is plain strings and numbers")
    }
}
