//! The archiving steps' SQL on PostgreSQL (schema/postgres/0004_archive.sql).

use postgres::Row;

use super::rows::Conn;
use super::PgStore;
use crate::store::records::{BResult, BackendError};
use crate::store::steps::{ArchiveStep, ArchiveStore, SnapshotRecord, StepKind};

fn step(r: &Row) -> BResult<ArchiveStep> {
    let kind: String = r.try_get(7)?;
    Ok(ArchiveStep {
        first_position: r.try_get(0)?,
        last_position: r.try_get(1)?,
        event_count: r.try_get(2)?,
        prev_hash: r.try_get(3)?,
        last_hash: r.try_get(4)?,
        first_recorded_at: r.try_get(5)?,
        last_recorded_at: r.try_get(6)?,
        kind: StepKind::parse(&kind)
            .ok_or_else(|| BackendError::Corrupt(format!("archiving step kind {kind:?}")))?,
        segment: r.try_get(8)?,
        sha256: r.try_get(9)?,
        recorded_at: r.try_get(10)?,
    })
}

/// Every recorded step, oldest first (none before the archive schema).
pub fn steps(c: &mut Conn) -> BResult<Vec<ArchiveStep>> {
    let exists: bool = c.client.query_one("SELECT to_regclass('archive_steps') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = c.query(
        "SELECT first_position, last_position, event_count, prev_hash, last_hash, first_recorded_at,
            last_recorded_at, kind, segment, sha256, recorded_at FROM archive_steps ORDER BY last_position",
        &[],
    )?;
    rows.iter().map(step).collect()
}

pub fn last_step(c: &mut Conn) -> BResult<Option<ArchiveStep>> {
    c.query_opt(
        "SELECT first_position, last_position, event_count, prev_hash, last_hash, first_recorded_at,
            last_recorded_at, kind, segment, sha256, recorded_at
         FROM archive_steps ORDER BY last_position DESC LIMIT 1",
        &[],
    )?
    .as_ref()
    .map(step)
    .transpose()
}

pub fn record_step(c: &mut Conn, s: &ArchiveStep) -> BResult<()> {
    c.execute(
        "INSERT INTO archive_steps (first_position, last_position, event_count, prev_hash, last_hash,
            first_recorded_at, last_recorded_at, kind, segment, sha256, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &s.first_position,
            &s.last_position,
            &s.event_count,
            &s.prev_hash,
            &s.last_hash,
            &s.first_recorded_at,
            &s.last_recorded_at,
            &s.kind.as_str(),
            &s.segment,
            &s.sha256,
            &s.recorded_at,
        ],
    )?;
    Ok(())
}

/// Removes the oldest archived events (at most `limit`), carrying their streams' versions.
pub fn remove_archived(c: &mut Conn, limit: usize) -> BResult<u64> {
    let Some(last) = last_step(c)?.map(|s| s.last_position) else {
        return Ok(0);
    };
    let first: Option<i64> = c.query_opt("SELECT MIN(position) FROM events", &[])?.and_then(|r| r.get(0));
    let Some(first) = first.filter(|f| *f <= last) else {
        return Ok(0);
    };
    let upto = last.min(first.saturating_add(limit as i64 - 1));
    c.execute(
        "INSERT INTO archived_streams (stream, version)
         SELECT stream, MAX(version) FROM events WHERE position BETWEEN $1 AND $2 GROUP BY stream
         ON CONFLICT (stream) DO UPDATE SET version = GREATEST(archived_streams.version, EXCLUDED.version)",
        &[&first, &upto],
    )?;
    c.execute("DELETE FROM events WHERE position BETWEEN $1 AND $2", &[&first, &upto])
}

/// The snapshot of the latest step that has one (none before the snapshot schema).
pub fn last_snapshot(c: &mut Conn) -> BResult<Option<SnapshotRecord>> {
    let exists: bool = c.client.query_one("SELECT to_regclass('archive_snapshots') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(None);
    }
    let row = c.query_opt(
        "SELECT last_position, file, sha256, row_count FROM archive_snapshots
         ORDER BY last_position DESC LIMIT 1",
        &[],
    )?;
    row.map(|r| {
        Ok(SnapshotRecord {
            last_position: r.try_get(0)?,
            file: r.try_get(1)?,
            sha256: r.try_get(2)?,
            row_count: r.try_get(3)?,
        })
    })
    .transpose()
}

pub fn record_snapshot(c: &mut Conn, s: &SnapshotRecord) -> BResult<()> {
    c.execute(
        "INSERT INTO archive_snapshots (last_position, file, sha256, row_count) VALUES ($1, $2, $3, $4)",
        &[&s.last_position, &s.file, &s.sha256, &s.row_count],
    )?;
    Ok(())
}

impl ArchiveStore for PgStore {
    fn steps(&mut self) -> BResult<Vec<ArchiveStep>> {
        self.run(steps)
    }
    fn last_step(&mut self) -> BResult<Option<ArchiveStep>> {
        self.run(last_step)
    }
    fn record_step(&mut self, step: &ArchiveStep) -> BResult<()> {
        self.run(|c| record_step(c, step))
    }
    fn remove_archived(&mut self, limit: usize) -> BResult<u64> {
        self.run(|c| remove_archived(c, limit))
    }
    fn last_snapshot(&mut self) -> BResult<Option<SnapshotRecord>> {
        self.run(last_snapshot)
    }
    fn record_snapshot(&mut self, snapshot: &SnapshotRecord) -> BResult<()> {
        self.run(|c| record_snapshot(c, snapshot))
    }
}
