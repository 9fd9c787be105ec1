//! `export`: the log as JSON Lines, one event a line with every column of `events`, hashes in
//! hex. The payload stays the exact stored text, so every hash can be recomputed from the file.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use token_ledger::store::log::{RequestMeta, StoredEvent};

use crate::source::{Flow, Source};
use crate::ReplayError;

/// One line of an export. Unknown fields are refused: a column this build does not know would
/// be a field the hash covers and this build cannot check.
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
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub events: u64,
    pub first_position: Option<i64>,
    pub last_position: Option<i64>,
}

/// Writes the events after `since` to `out`, one JSON object a line.
pub fn export(source: &Source, since: i64, out: &mut dyn Write) -> Result<ExportSummary, ReplayError> {
    let mut summary = ExportSummary { events: 0, first_position: None, last_position: None };
    source.walk_after(Some(since), |event| {
        let line = serde_json::to_string(&ExportedEvent::from(&event))
            .expect("an exported event is plain strings and numbers");
        writeln!(out, "{line}").map_err(ReplayError::Output)?;
        summary.events += 1;
        summary.first_position.get_or_insert(event.position);
        summary.last_position = Some(event.position);
        Ok(Flow::Continue(()))
    })?;
    Ok(summary)
}

/// Exports into `file` atomically: a temporary file beside it, renamed once complete, so a
/// killed export never leaves a truncated log that looks whole.
pub fn export_to_file(source: &Source, since: i64, file: &Path) -> Result<ExportSummary, ReplayError> {
    let write_error = |source: std::io::Error| ReplayError::Write { path: file.to_owned(), source };
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(write_error)?;
    let mut writer = std::io::BufWriter::new(temp);
    let summary = export(source, since, &mut writer)?;
    let temp = writer.into_inner().map_err(|e| write_error(e.into_error()))?;
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(file).map_err(|e| write_error(e.error))?;
    Ok(summary)
}
