//! `stats`: events by type and by day, live tokens by client, and the size on disk.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::Connection;
use serde::Serialize;

use token_ledger::store::postgres::stats::live_stats;
use token_ledger::store::postgres::PgOptions;
use token_ledger::store::steps::StepKind;
use token_ledger::store::StoreError;

use crate::archive::Plan;
use crate::replay::{replay, Moment};
use crate::source::{Flow, Source};
use crate::time;
use crate::ReplayError;

/// The answer of `stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub events: u64,
    pub by_type: BTreeMap<String, u64>,
    /// Day (UTC, from `recorded_at`) → event type → count.
    pub by_day: BTreeMap<String, BTreeMap<String, u64>>,
    /// Access tokens live now.
    pub active_tokens: u64,
    pub active_by_client: BTreeMap<String, u64>,
    /// The views' checkpoint (databases only).
    pub checkpoint: Option<i64>,
    pub size: Size,
    /// What left the live database (databases only; `events` counts the live log there).
    pub archive: Option<ArchiveSize>,
}

/// The archived part of a database's log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveSize {
    /// Events in archive segments.
    pub archived_events: u64,
    pub segments: u64,
    /// The segments' compressed bytes.
    pub segment_bytes: u64,
    /// Events verified and dropped (`retain_access_tokens_for_auditing = false`).
    pub dropped_events: u64,
}

/// Bytes on disk.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    /// The database or log file.
    pub file_bytes: u64,
    /// The database's write-ahead log, not yet checkpointed into the file.
    pub wal_bytes: Option<u64>,
    /// Pages SQLite holds free for reuse.
    pub free_bytes: Option<u64>,
}

/// Counts from the database with SQL, or from a log by walking and folding it.
pub fn stats(source: &Source) -> Result<Stats, ReplayError> {
    let mut stats = match (source.database(), source.postgres()) {
        (Some(conn), _) => from_database(conn, source.path())?,
        (None, Some(options)) => from_postgres(options)?,
        (None, None) => from_log(source)?,
    };
    if source.is_database() {
        stats.archive = Some(archive_size(source)?);
    }
    Ok(stats)
}

/// Counted from the recorded steps; the bytes from the segments' manifests.
fn archive_size(source: &Source) -> Result<ArchiveSize, ReplayError> {
    let steps = source.archive_steps()?;
    let mut size = ArchiveSize::default();
    for step in &steps {
        match step.kind {
            StepKind::Segment => size.archived_events += step.event_count as u64,
            StepKind::Dropped => size.dropped_events += step.event_count as u64,
        }
    }
    let (segments, bytes) = crate::archive::sizes(source.archive_dir(), &Plan::of(steps));
    size.segments = segments;
    size.segment_bytes = bytes;
    Ok(size)
}

fn from_database(conn: &Connection, path: &Path) -> Result<Stats, ReplayError> {
    // One read snapshot for every number.
    conn.execute_batch("BEGIN")?;
    let result = (|| {
        let mut by_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut stmt = conn
            .prepare("SELECT substr(recorded_at, 1, 10), event_type, COUNT(*) FROM events GROUP BY 1, 2")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?)))?;
        for row in rows {
            let (day, event_type, count) = row?;
            by_day.entry(day).or_default().insert(event_type, count);
        }
        let active_by_client = live_by_client(conn, time::now())?;
        let checkpoint = token_ledger::store::sqlite::projection::checkpoint(conn)?;
        let page = |name: &str| -> Result<u64, ReplayError> {
            Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))? as u64)
        };
        let free_bytes = page("freelist_count")? * page("page_size")?;
        Ok::<_, ReplayError>((by_day, active_by_client, checkpoint, free_bytes))
    })();
    let _ = conn.execute_batch("COMMIT");
    let (by_day, active_by_client, checkpoint, free_bytes) = result?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    Ok(assemble(
        by_day,
        active_by_client,
        Some(checkpoint),
        Size {
            file_bytes: file_size(path)?,
            wal_bytes: std::fs::metadata(&wal).ok().map(|m| m.len()),
            free_bytes: Some(free_bytes),
        },
    ))
}

/// Counted by the database from its live tables, as for SQLite: archived events are in
/// `archive`, never in `events`.
fn from_postgres(options: &PgOptions) -> Result<Stats, ReplayError> {
    let live = live_stats(options, time::now()).map_err(StoreError::from)?;
    let mut by_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (day, event_type, count) in live.by_day {
        by_day.entry(day).or_default().insert(event_type, count as u64);
    }
    let active_by_client = live.active_by_client.into_iter().map(|(c, n)| (c, n as u64)).collect();
    Ok(assemble(
        by_day,
        active_by_client,
        Some(live.checkpoint),
        Size { file_bytes: live.database_bytes as u64, wal_bytes: None, free_bytes: None },
    ))
}

fn from_log(source: &Source) -> Result<Stats, ReplayError> {
    let mut by_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    source.walk(|event| {
        let day = event.recorded_at.get(..10).unwrap_or("?").to_owned();
        *by_day.entry(day).or_default().entry(event.event_type).or_default() += 1;
        Ok(Flow::Continue(()))
    })?;
    let now = replay(source, Moment::Now)?;
    Ok(assemble(
        by_day,
        now.by_client,
        None,
        Size { file_bytes: file_size(source.path())?, wal_bytes: None, free_bytes: None },
    ))
}

fn assemble(
    by_day: BTreeMap<String, BTreeMap<String, u64>>,
    active_by_client: BTreeMap<String, u64>,
    checkpoint: Option<i64>,
    size: Size,
) -> Stats {
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for counts in by_day.values() {
        for (event_type, n) in counts {
            *by_type.entry(event_type.clone()).or_default() += n;
        }
    }
    Stats {
        events: by_type.values().sum(),
        by_type,
        by_day,
        active_tokens: active_by_client.values().sum(),
        active_by_client,
        checkpoint,
        size,
        archive: None,
    }
}

/// Live access tokens per client in a views database, judged as introspection does.
fn live_by_client(conn: &Connection, now: i64) -> Result<BTreeMap<String, u64>, ReplayError> {
    let mut stmt = conn
        .prepare("SELECT client_id, COUNT(*) FROM active_tokens WHERE expires_at > ?1 GROUP BY client_id")?;
    let rows = stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn file_size(path: &Path) -> Result<u64, ReplayError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| ReplayError::Read { path: path.to_owned(), source })
}
