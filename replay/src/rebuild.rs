//! `rebuild`: the offline projection rebuild. Folds the whole log, from position 1, through the
//! server's `projection::apply` into a scratch database, compares it with the live views, and
//! swaps it in with one transaction on the live database.
//!
//! Safe to kill at any moment: until that last transaction the live database is only read, and
//! SQLite commits the transaction whole or not at all. The scratch lives in the temporary folder
//! and is worthless after a crash.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;
use token_ledger::app::{ServerLock, StartError};
use token_ledger::config::redact_url;
use token_ledger::store::sqlite::log::for_each_after;
use token_ledger::store::sqlite::open_writer;
use token_ledger::store::sqlite::projection::set_checkpoint;
use token_ledger::store::StoreError;

use crate::progress::Progress;
use crate::shadow::Shadow;
use crate::source::{open_existing, walk_database, Flow, Location};
use crate::views_diff::{self, Difference, VIEW_TABLES};
use crate::ReplayError;

/// What the operator asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Compare and report only; never write.
    pub check_only: bool,
    /// Swap even though a server holds the database's lock.
    pub force_while_serving: bool,
}

/// The answer of `rebuild`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub database: PathBuf,
    /// The position the rebuilt views were folded to.
    pub position: i64,
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

/// Runs a rebuild (or a check) of the views of the SQLite database at `db`.
pub fn rebuild(db: &Path, options: Options, progress: &mut Progress) -> Result<Report, ReplayError> {
    if !db.is_file() {
        return Err(ReplayError::NoDatabase(db.to_owned()));
    }
    // A check only reads, under one snapshot in which the views and the log agree by
    // construction, so it may run beside a server. A swap may not, unless told.
    let _lock = if options.check_only { None } else { server_lock(db, options.force_while_serving)? };
    let mut live = if options.check_only { open_existing(db)? } else { open_writer(db)? };
    let scratch = tempfile::Builder::new()
        .prefix("ledger-rebuild-")
        .suffix(".db")
        .tempfile()
        .map_err(ReplayError::Scratch)?;
    let shadow = Shadow::in_file(scratch.path())?;
    live.execute("ATTACH DATABASE ?1 AS shadow", [scratch.path().to_string_lossy()])?;
    let (position, differences) = fold_and_compare(&live, shadow, progress)?;
    let drift = !differences.is_empty();
    let mut report = Report {
        database: db.to_owned(),
        position,
        drift,
        differences,
        swapped: false,
        caught_up: 0,
        check_only: options.check_only,
    };
    if drift && !options.check_only {
        report.caught_up = swap(&mut live, position)?;
        report.swapped = true;
    }
    live.execute("DETACH DATABASE shadow", [])?;
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

/// Folds the log as of one read snapshot of the live database and compares the views of that
/// same snapshot with the fold, so a writer running beside a check cannot cause false drift.
fn fold_and_compare(
    live: &Connection,
    mut shadow: Shadow,
    progress: &mut Progress,
) -> Result<(i64, Vec<Difference>), ReplayError> {
    live.execute_batch("BEGIN")?;
    let snapshot: Result<_, ReplayError> = (|| {
        let tail: i64 = live.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| r.get(0))?;
        progress.set_total(tail as u64);
        walk_database(live, 0, |event| {
            shadow.fold(&event)?;
            progress.inc();
            Ok(Flow::Continue(()))
        })?;
        progress.finish();
        let position = shadow.position();
        shadow.finish()?;
        Ok((position, views_diff::compare(live)?))
    })();
    // Ends the read snapshot whatever happened; the live database was only read.
    let _ = live.execute_batch("COMMIT");
    snapshot
}

/// Replaces the live views with the shadow's in one transaction, then folds whatever the log
/// gained since the snapshot through the same `apply`, and moves the checkpoint.
fn swap(live: &mut Connection, snapshot: i64) -> Result<u64, ReplayError> {
    let tx = live.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for table in VIEW_TABLES {
        let (names, _) = views_diff::columns(&tx, table)?;
        let list = names.join(", ");
        tx.execute(&format!("DELETE FROM main.{table}"), [])?;
        tx.execute(&format!("INSERT INTO main.{table} ({list}) SELECT {list} FROM shadow.{table}"), [])?;
    }
    // The derived rows may be gone altogether (`set_checkpoint` only updates): put them back.
    // A missing anchor restarts at the log's start, so the next start verifies the whole chain.
    tx.execute(
        "INSERT INTO main.checkpoints (projection, position) VALUES ('views', ?1)
         ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
        [snapshot],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO main.chain_anchor (id, position, hash) VALUES (1, 0, zeroblob(32))",
        [],
    )?;
    let mut caught_up = 0;
    let mut last = snapshot;
    for_each_after(&tx, snapshot, |stored| {
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
