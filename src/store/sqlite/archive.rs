//! The archiving steps' SQL on SQLite (schema/sqlite/0005_archive.sql).

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::store::records::{BResult, BackendError};
use crate::store::steps::{ArchiveStep, SnapshotRecord, StepKind};

const COLUMNS: &str = "first_position, last_position, event_count, prev_hash, last_hash,
    first_recorded_at, last_recorded_at, kind, segment, sha256, recorded_at";

fn step(r: &Row<'_>) -> rusqlite::Result<(ArchiveStep, String)> {
    let kind: String = r.get(7)?;
    Ok((
        ArchiveStep {
            first_position: r.get(0)?,
            last_position: r.get(1)?,
            event_count: r.get(2)?,
            prev_hash: r.get(3)?,
            last_hash: r.get(4)?,
            first_recorded_at: r.get(5)?,
            last_recorded_at: r.get(6)?,
            kind: StepKind::Dropped,
            segment: r.get(8)?,
            sha256: r.get(9)?,
            recorded_at: r.get(10)?,
        },
        kind,
    ))
}

fn with_kind((mut step, kind): (ArchiveStep, String)) -> BResult<ArchiveStep> {
    step.kind = StepKind::parse(&kind)
        .ok_or_else(|| BackendError::Corrupt(format!("archiving step kind {kind:?}")))?;
    Ok(step)
}

/// Every recorded step, oldest first (none on a database older than the archive schema).
pub fn steps(conn: &Connection) -> BResult<Vec<ArchiveStep>> {
    if !has_steps_table(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM archive_steps ORDER BY last_position"))?;
    let rows = stmt.query_map([], step)?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(with_kind).collect()
}

/// The last recorded step.
pub fn last_step(conn: &Connection) -> BResult<Option<ArchiveStep>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM archive_steps ORDER BY last_position DESC LIMIT 1"
    ))?;
    stmt.query_row([], step).optional()?.map(with_kind).transpose()
}

/// Whether the database has the archive schema (the audit CLI reads older files too).
fn has_steps_table(conn: &Connection) -> BResult<bool> {
    Ok(conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archive_steps')",
        [],
        |r| r.get(0),
    )?)
}

pub fn record_step(conn: &Connection, s: &ArchiveStep) -> BResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO archive_steps ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        s.first_position,
        s.last_position,
        s.event_count,
        s.prev_hash,
        s.last_hash,
        s.first_recorded_at,
        s.last_recorded_at,
        s.kind.as_str(),
        s.segment,
        s.sha256,
        s.recorded_at
    ])?;
    Ok(())
}

/// Removes the oldest archived events (at most `limit`), carrying their streams' versions.
pub fn remove_archived(conn: &Connection, limit: usize) -> BResult<u64> {
    let Some(last) = last_step(conn)?.map(|s| s.last_position) else {
        return Ok(0);
    };
    let first: Option<i64> =
        conn.prepare_cached("SELECT MIN(position) FROM events")?.query_row([], |r| r.get(0))?;
    let Some(first) = first.filter(|f| *f <= last) else {
        return Ok(0);
    };
    let upto = last.min(first.saturating_add(limit as i64 - 1));
    conn.prepare_cached(
        "INSERT INTO archived_streams (stream, version)
         SELECT stream, MAX(version) FROM events WHERE position BETWEEN ?1 AND ?2 GROUP BY stream
         ON CONFLICT (stream) DO UPDATE SET version = MAX(version, excluded.version)",
    )?
    .execute([first, upto])?;
    let removed =
        conn.prepare_cached("DELETE FROM events WHERE position BETWEEN ?1 AND ?2")?.execute([first, upto])?;
    Ok(removed as u64)
}

/// The snapshot of the latest step that has one (none before the snapshot schema).
pub fn last_snapshot(conn: &Connection) -> BResult<Option<SnapshotRecord>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archive_snapshots')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT last_position, file, sha256, row_count FROM archive_snapshots
         ORDER BY last_position DESC LIMIT 1",
    )?;
    Ok(stmt
        .query_row([], |r| {
            Ok(SnapshotRecord {
                last_position: r.get(0)?,
                file: r.get(1)?,
                sha256: r.get(2)?,
                row_count: r.get(3)?,
            })
        })
        .optional()?)
}

pub fn record_snapshot(conn: &Connection, s: &SnapshotRecord) -> BResult<()> {
    conn.prepare_cached(
        "INSERT INTO archive_snapshots (last_position, file, sha256, row_count) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![s.last_position, s.file, s.sha256, s.row_count])?;
    Ok(())
}

impl crate::store::steps::ArchiveStore for super::SqliteStore {
    fn steps(&mut self) -> BResult<Vec<ArchiveStep>> {
        steps(self.connection())
    }
    fn last_step(&mut self) -> BResult<Option<ArchiveStep>> {
        last_step(self.connection())
    }
    fn record_step(&mut self, step: &ArchiveStep) -> BResult<()> {
        record_step(self.connection(), step)
    }
    fn remove_archived(&mut self, limit: usize) -> BResult<u64> {
        remove_archived(self.connection(), limit)
    }
    fn last_snapshot(&mut self) -> BResult<Option<SnapshotRecord>> {
        last_snapshot(self.connection())
    }
    fn record_snapshot(&mut self, snapshot: &SnapshotRecord) -> BResult<()> {
        record_snapshot(self.connection(), snapshot)
    }
}
