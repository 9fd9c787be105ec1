//! `export`: the log as JSON Lines, one event a line with every column of `events`, hashes in
//! hex. The payload stays the exact stored text, so every hash can be recomputed from the file.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::source::{Flow, Source};
use crate::ReplayError;

/// One line of an export (the library's format, shared with archive segments).
pub use token_ledger::archive::line::ExportedEvent;

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
    source.scan_after(Some(since), |event| {
        let line = serde_json::to_string(&ExportedEvent::from(event))
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
