//! The SQLite event store: the log, its projections, the single writer and the readers.

pub mod authz;
pub mod authz_commands;
pub mod ledger;
pub mod log;
pub mod memory;
pub mod migrate;
pub mod mint;
pub mod projection;
pub mod readers;
pub mod views;
pub mod writer;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::crypto::CryptoError;
use crate::domain::events::DecodeError;

/// A storage failure. The HTTP layer maps `Unavailable` to 503 and the rest to 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database cannot be written or read right now: {0}")]
    Unavailable(rusqlite::Error),
    #[error("a concurrent write to the same stream version was refused: {0}")]
    Conflict(rusqlite::Error),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error(
        "the database has schema version {found}, newer than this build's {supported}; upgrade the binary"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("stored event at position {position} is unreadable: {source}")]
    Decode { position: i64, source: DecodeError },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("the batch could not be committed: {0}")]
    BatchFailed(String),
    #[error("cannot make a token value: {0}")]
    Mint(String),
    #[error("the writer has stopped")]
    WriterGone,
}

impl From<rusqlite::Error> for StoreError {
    /// One mapper, by SQLite's result codes, never by message text.
    fn from(e: rusqlite::Error) -> Self {
        let Some(code) = e.sqlite_error() else {
            return Self::Sqlite(e);
        };
        match code.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::OutOfMemory => Self::Unavailable(e),
            ErrorCode::ConstraintViolation
                if matches!(
                    code.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                Self::Conflict(e)
            }
            _ => Self::Sqlite(e),
        }
    }
}

/// How long a connection waits for another writer (the CLI, or the server) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the database for writing: WAL, `synchronous = FULL` so a commit that returned is on
/// disk, foreign writers waited for. Applies the embedded migrations.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Each command runs under a savepoint, which needs a statement journal: keep it in memory
    // rather than in a temporary file written on every commit.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    migrate::migrate(&conn)?;
    Ok(conn)
}

/// Checkpoints the WAL from its own connection every `every`, so that no request's commit
/// pays for copying pages back into the database file. The server's writer turns SQLite's
/// automatic checkpoint off and relies on this thread; it runs until the process ends.
pub fn spawn_checkpointer(path: &Path, every: Duration) -> std::io::Result<()> {
    let path = path.to_owned();
    std::thread::Builder::new().name("wal-checkpoint".into()).spawn(move || {
        let conn = match Connection::open(&path) {
            Ok(c) => c,
            Err(e) => return tracing::error!(error = %e, "the WAL checkpointer cannot open the database"),
        };
        let _ = conn.busy_timeout(BUSY_TIMEOUT);
        loop {
            std::thread::sleep(every);
            // PASSIVE never blocks the writer; whatever it cannot copy now it copies next time.
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        }
    })?;
    Ok(())
}

/// Opens a read-only connection (the writer must have created the database first).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

#[cfg(test)]
mod tests;
