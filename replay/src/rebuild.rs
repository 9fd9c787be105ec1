//! `rebuild`: the offline projection rebuild. Folds the log through the server's `fold::ops`
//! into an in-memory image of the views (`token_ledger::store::image`), compares the image with
//! the live views table by table, and on drift writes it over them in large batches inside one
//! transaction on the live database, folding whatever the log gained meanwhile before the commit.
//!
//! Where the fold starts: at position 1 while the whole log is in the database. Once the archiver
//! has removed a prefix (issue 9), at the boundary snapshot the last archiving step recorded,
//! then the live tail; with `--full`, at position 1 again, reading every archive segment first
//! (refused when a dropped step left no segment).
//!
//! Safe to kill at any moment: until that last transaction the live database is only read, and
//! the database commits the transaction whole or not at all.

use std::path::{Path, PathBuf};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};
use serde::Serialize;
use token_ledger::app::{ServerLock, StartError};
use token_ledger::archive::snapshot;
use token_ledger::config::redact_url;
use token_ledger::store::image::{Cell, Image, Table, TABLES};
use token_ledger::store::log::{StoredEvent, GENESIS};
use token_ledger::store::sqlite::archive as sqlite_archive;
use token_ledger::store::sqlite::log::for_each_after;
use token_ledger::store::sqlite::open_writer;
use token_ledger::store::sqlite::projection::set_checkpoint;
use token_ledger::store::steps::{ArchiveStep, SnapshotRecord};
use token_ledger::store::StoreError;

use crate::archive::{walk_segments, Plan};
use crate::progress::Progress;
use crate::source::{open_existing, Flow, Location};
use crate::views_diff::{self, Difference};
use crate::ReplayError;

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Compare and report only; never write.
    pub check_only: bool,
    /// Swap even though a server holds the database's lock.
    pub force_while_serving: bool,
    /// After archiving: fold every archive segment from position 1 instead of starting from the
    /// boundary snapshot.
    pub full: bool,
    /// The archive folder (segments and boundary snapshots).
    pub archive: Option<PathBuf>,
}

/// The answer of `rebuild`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub database: PathBuf,
    /// The position the rebuilt views were folded to.
    pub position: i64,
    /// Where the fold started: 0 for the log's start, else the boundary snapshot's position.
    pub started_from: i64,
    /// The live views differ from the log's fold.
    pub drift: bool,
    pub differences: Vec<Difference>,
    /// The rebuilt views replaced the live ones.
    pub swapped: bool,
    /// Events appended while the rebuild ran, folded into the swapped views before the commit.
    pub caught_up: u64,
    pub check_only: bool,
}

/// Runs a rebuild (or a check) of the views of a SQLite file or a PostgreSQL database.
pub fn rebuild_at(
    location: &Location,
    options: Options,
    progress: &mut Progress,
) -> Result<Report, ReplayError> {
    match location {
        Location::Database(path) => rebuild(path, options, progress),
        Location::Postgres(url) => crate::rebuild_pg::rebuild(url, &redact_url(url), options, progress),
        Location::Log(path) => Err(ReplayError::NoDatabase(path.clone())),
    }
}

/// The image the fold of the live log starts from, given the archiving steps and the last
/// boundary snapshot the database recorded: the empty views without steps; the snapshot at the
/// last step's end; with `full`, every segment folded from position 1.
pub fn starting_image(
    steps: Vec<ArchiveStep>,
    last_snapshot: Option<SnapshotRecord>,
    options: &Options,
    progress: &mut Progress,
) -> Result<Image, ReplayError> {
    let Some(last) = steps.last().cloned() else {
        return Ok(Image::new());
    };
    let dir = options.archive.as_deref();
    if options.full {
        let plan = Plan::of(steps);
        if let Some(dropped) = &plan.dropped {
            return Err(ReplayError::DroppedHistory { first: 1, last: dropped.last_position });
        }
        let mut image = Image::new();
        // `fold` never asks to stop, so the walk reads every segment.
        let _ = walk_segments(dir, &plan, 0, &mut |event| {
            fold(&mut image, event)?;
            progress.inc();
            Ok(Flow::Continue(()))
        })?;
        return Ok(image);
    }
    let Some(record) = last_snapshot.filter(|r| r.last_position == last.last_position) else {
        return Err(ReplayError::NoSnapshot(last.last_position));
    };
    let dir = dir.ok_or(ReplayError::NoArchiveDir(last.last_position))?;
    let image = snapshot::read(dir, &record).map_err(ReplayError::Snapshot)?;
    if image.hash != last.last_hash {
        return Err(ReplayError::Snapshot(token_ledger::archive::segment::SegmentError::Invalid {
            path: dir.join(&record.file),
            reason: format!(
                "it ends at hash {}, the archiving step at {} at {}",
                hex::encode(&image.hash),
                last.last_position,
                hex::encode(&last.last_hash)
            ),
        }));
    }
    Ok(image)
}

/// Folds one event into the image, naming its position on failure.
pub fn fold(image: &mut Image, event: &StoredEvent) -> Result<(), ReplayError> {
    image.fold(event).map_err(|source| ReplayError::Fold { position: event.position, source })
}

/// Where a restored chain anchor points: the end of the last archiving step (where the server's
/// start-up check begins once the prefix is gone), else the log's start.
pub fn anchor_of(steps: &[ArchiveStep]) -> (i64, Vec<u8>) {
    steps.last().map_or((0, GENESIS.to_vec()), |s| (s.last_position, s.last_hash.clone()))
}

/// Runs a rebuild (or a check) of the views of the SQLite database at `db`.
pub fn rebuild(db: &Path, options: Options, progress: &mut Progress) -> Result<Report, ReplayError> {
    if !db.is_file() {
        return Err(ReplayError::NoDatabase(db.to_owned()));
    }
    // A check only reads, under one snapshot in which the views and the log agree by
    // construction, so it may run beside a server. A swap may not, unless told.
    let _lock = if options.check_only { None } else { server_lock(db, options.force_while_serving)? };
    let mut live = if options.check_only { open_existing(db)? } else { open_writer(db)? };
    let (image, started_from, differences, anchor) = fold_and_compare(&live, &options, progress)?;
    let drift = !differences.is_empty();
    let mut report = Report {
        database: db.to_owned(),
        position: image.position,
        started_from,
        drift,
        differences,
        swapped: false,
        caught_up: 0,
        check_only: options.check_only,
    };
    if drift && !options.check_only {
        let caught_up = swap(&mut live, &image, &anchor)?;
        report.caught_up = caught_up;
        report.swapped = true;
    }
    Ok(report)
}

fn server_lock(db: &Path, force: bool) -> Result<Option<ServerLock>, ReplayError> {
    match ServerLock::acquire(db) {
        Ok(lock) => Ok(Some(lock)),
        Err(StartError::AlreadyServing(_)) if force => Ok(None),
        Err(StartError::AlreadyServing(_)) => Err(ReplayError::Serving(db.to_owned())),
        Err(e) => Err(ReplayError::Lock { path: ServerLock::path(db), reason: e.to_string() }),
    }
}

type Folded = (Image, i64, Vec<Difference>, (i64, Vec<u8>));

/// Folds the log as of one read snapshot of the live database and compares the views of that
/// same snapshot with the fold, so a writer running beside a check cannot cause false drift.
fn fold_and_compare(
    live: &Connection,
    options: &Options,
    progress: &mut Progress,
) -> Result<Folded, ReplayError> {
    live.execute_batch("BEGIN")?;
    let snapshot: Result<_, ReplayError> = (|| {
        let steps = sqlite_archive::steps(live)?;
        let anchor = anchor_of(&steps);
        let (first, tail): (Option<i64>, i64) =
            live.query_row("SELECT MIN(position), COALESCE(MAX(position), 0) FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let archived = steps.last().map_or(0, |s| s.last_position);
        let live_events = first.map_or(0, |f| (tail - f.max(archived + 1) + 1).max(0));
        progress.set_total(live_events as u64 + if options.full { archived as u64 } else { 0 });
        let mut image = starting_image(steps, sqlite_archive::last_snapshot(live)?, options, progress)?;
        // With --full the fold started at position 1, through the segments.
        let started_from = if options.full { 0 } else { image.position };
        read_events(live, image.position, |event| {
            fold(&mut image, &event)?;
            progress.inc();
            Ok(())
        })?;
        progress.finish();
        let mut differences = views_diff::compare_image(&image, |table| live_rows(live, table))?;
        let checkpoint: Option<i64> = live
            .query_row("SELECT position FROM main.checkpoints WHERE projection = 'views'", [], |r| r.get(0))
            .optional()?;
        differences.extend(views_diff::checkpoint_difference(checkpoint, image.position));
        let anchored: bool =
            live.query_row("SELECT EXISTS(SELECT 1 FROM main.chain_anchor WHERE id = 1)", [], |r| r.get(0))?;
        differences.extend(views_diff::anchor_difference(anchored));
        Ok((image, started_from, differences, anchor))
    })();
    // Ends the read snapshot whatever happened; the live database was only read.
    let _ = live.execute_batch("COMMIT");
    snapshot
}

/// Calls `each` for the events after `after`, in position order, reading only what the fold
/// needs (one prepared statement, columns by index; no envelope metadata, no `prev_hash`).
fn read_events(
    conn: &Connection,
    after: i64,
    mut each: impl FnMut(StoredEvent) -> Result<(), ReplayError>,
) -> Result<(), ReplayError> {
    let mut stmt = conn.prepare(
        "SELECT position, stream, version, event_type, schema_version, payload, recorded_at, hash
         FROM events WHERE position > ?1 ORDER BY position",
    )?;
    let mut rows = stmt.query([after])?;
    while let Some(r) = rows.next()? {
        each(StoredEvent {
            position: r.get(0)?,
            event_id: String::new(),
            stream: r.get(1)?,
            version: r.get(2)?,
            event_type: r.get(3)?,
            schema_version: r.get(4)?,
            payload: r.get(5)?,
            recorded_at: r.get(6)?,
            meta: Default::default(),
            prev_hash: Vec::new(),
            hash: r.get(7)?,
        })?;
    }
    Ok(())
}

/// Every row of a live view, in the image's column order.
fn live_rows(conn: &Connection, table: &Table) -> Result<Vec<Vec<Cell>>, ReplayError> {
    let mut stmt = conn.prepare(&format!("SELECT {} FROM main.{}", table.column_list(), table.name))?;
    let mut rows = stmt.query([])?;
    let mut found = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(table.columns.len());
        for i in 0..table.columns.len() {
            row.push(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(n) => Cell::Int(n),
                ValueRef::Real(f) => Cell::Text(f.to_string()),
                ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
            });
        }
        found.push(row);
    }
    Ok(found)
}

/// Rows per INSERT statement: SQLite binds at most 32,766 values to one statement.
const ROWS_PER_INSERT: usize = 500;

/// Replaces the live views with the image in one transaction (multi-row INSERTs), restores the
/// derived rows, then folds whatever the log gained since the read snapshot through the server's
/// SQL, and moves the checkpoint.
fn swap(live: &mut Connection, image: &Image, anchor: &(i64, Vec<u8>)) -> Result<u64, ReplayError> {
    let tx = live.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (index, table) in TABLES.iter().enumerate() {
        tx.execute(&format!("DELETE FROM main.{}", table.name), [])?;
        let rows: Vec<&Vec<Cell>> = image.rows(index).values().collect();
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let one = format!("({})", vec!["?"; table.columns.len()].join(", "));
            let sql = format!(
                "INSERT INTO main.{} ({}) VALUES {}",
                table.name,
                table.column_list(),
                vec![one; chunk.len()].join(", ")
            );
            let values = chunk.iter().flat_map(|row| row.iter().map(sql_value));
            tx.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(values))?;
        }
    }
    // The derived rows may be gone altogether (`set_checkpoint` only updates): put them back.
    // A missing anchor restarts at the last archiving step's end (or the log's start), so the
    // next start verifies the whole live chain.
    tx.execute(
        "INSERT INTO main.checkpoints (projection, position) VALUES ('views', ?1)
         ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
        [image.position],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO main.chain_anchor (id, position, hash) VALUES (1, ?1, ?2)",
        rusqlite::params![anchor.0, anchor.1],
    )?;
    let mut caught_up = 0;
    let mut last = image.position;
    for_each_after(&tx, image.position, |stored| {
        crate::shadow::apply(&tx, &stored, &stored.decode()?)?;
        last = stored.position;
        caught_up += 1;
        Ok(())
    })
    .map_err(StoreError::Database)?;
    set_checkpoint(&tx, last)?;
    tx.commit()?;
    Ok(caught_up)
}

fn sql_value(cell: &Cell) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(match cell {
        Cell::Null => ValueRef::Null,
        Cell::Int(i) => ValueRef::Integer(*i),
        Cell::Text(t) => ValueRef::Text(t.as_bytes()),
        Cell::Blob(b) => ValueRef::Blob(b),
    })
}
