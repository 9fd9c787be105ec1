//! The SQLite backend: one database file, one writer connection (WAL, `synchronous = FULL`),
//! read-only connections for the readers. Its SQL lives in this folder and `schema/sqlite/`.

pub mod archive;
pub mod authz;
pub mod log;
pub mod migrate;
pub mod projection;
pub mod readers;
pub mod store;
pub mod views;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

pub use readers::SqliteReads;
pub use store::SqliteStore;

use crate::store::records::BackendError;

impl From<rusqlite::Error> for BackendError {
    /// One mapper, by SQLite's result codes, never by message text.
    fn from(e: rusqlite::Error) -> Self {
        let Some(code) = e.sqlite_error() else {
            return Self::Other(Box::new(e));
        };
        match code.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::OutOfMemory => Self::Unavailable(Box::new(e)),
            ErrorCode::ConstraintViolation
                if matches!(
                    code.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                Self::Conflict(Box::new(e))
            }
            _ => Self::Other(Box::new(e)),
        }
    }
}

/// How long a connection waits for another writer (the CLI, or the server) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the database for writing: WAL, `synchronous = FULL` so a commit that returned is on
/// disk, foreign writers waited for. Applies the embedded migrations.
pub fn open_writer(path: &Path) -> Result<Connection, BackendError> {
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
pub fn open_reader(path: &Path) -> Result<Connection, BackendError> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}
