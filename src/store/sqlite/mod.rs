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
    // Each time the WAL starts over from its beginning, cut the file back to this size: without
    // it the file keeps the largest size it ever reached (hundreds of MB after a burst).
    conn.pragma_update(None, "journal_size_limit", WAL_KEEP as i64)?;
    migrate::migrate(&conn)?;
    Ok(conn)
}

/// The WAL file size a writer leaves when the log starts over (`journal_size_limit`).
const WAL_KEEP: u64 = 64 << 20;
/// A WAL file larger than this did not start over (a reader kept old pages alive, or commits
/// never paused): the checkpointer then waits briefly for a moment to empty it.
const WAL_LIMIT: u64 = 256 << 20;
/// How long that truncating checkpoint may hold up the writer while it waits for readers.
const TRUNCATE_WAIT: Duration = Duration::from_millis(20);

/// Checkpoints the WAL from its own connection every `every`, so that no request's commit
/// pays for copying pages back into the database file. The server's writer turns SQLite's
/// automatic checkpoint off and relies on this thread; it runs until the process ends.
pub fn spawn_checkpointer(path: &Path, every: Duration) -> std::io::Result<()> {
    spawn_checkpointer_limited(path, every, WAL_LIMIT)
}

/// `spawn_checkpointer` with the WAL size above which it truncates.
fn spawn_checkpointer_limited(path: &Path, every: Duration, limit: u64) -> std::io::Result<()> {
    let path = path.to_owned();
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
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
            if std::fs::metadata(&wal).is_ok_and(|m| m.len() > limit) {
                truncate_wal(&conn);
            }
        }
    })?;
    Ok(())
}

/// A TRUNCATE checkpoint, waiting at most `TRUNCATE_WAIT` for readers (the writer waits that
/// long at most too); if a reader outlasts it, the next round tries again.
fn truncate_wal(conn: &Connection) {
    let _ = conn.busy_timeout(TRUNCATE_WAIT);
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0)) {
        Ok(0) => tracing::info!("the WAL outgrew its limit and was emptied"),
        Ok(_) => tracing::debug!("the WAL is over its limit; readers kept it busy, trying again"),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
            tracing::debug!("the WAL is over its limit; the database was busy, trying again")
        }
        Err(e) => tracing::warn!(error = %e, "truncating the WAL failed"),
    }
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
}

/// Opens a read-only connection (the writer must have created the database first).
pub fn open_reader(path: &Path) -> Result<Connection, BackendError> {
    let flags =
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_bytes(db: &Path) -> u64 {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(std::path::PathBuf::from(wal)).map_or(0, |m| m.len())
    }

    #[test]
    fn a_wal_over_its_limit_is_emptied_while_the_writer_keeps_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.db");
        let writer = open_writer(&db).unwrap();
        // As the server's writer: no automatic checkpoint, the checkpointer thread does it.
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer.execute_batch("CREATE TABLE filler (b BLOB)").unwrap();
        let blob = vec![7u8; 64 << 10];
        for _ in 0..64 {
            writer.execute("INSERT INTO filler VALUES (?1)", [&blob]).unwrap();
        }
        let grown = wal_bytes(&db);
        assert!(grown > 4 << 20, "the WAL should hold the 4 MiB written, has {grown}");
        // A reader between commits, as the server's read pool has.
        let reader = open_reader(&db).unwrap();
        let rows: i64 = reader.query_row("SELECT count(*) FROM filler", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 64);

        spawn_checkpointer_limited(&db, Duration::from_millis(10), 1 << 20).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while wal_bytes(&db) > 1 << 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(wal_bytes(&db) <= 1 << 20, "the WAL stayed at {} bytes", wal_bytes(&db));
        // Nothing was lost, and the writer goes on.
        writer.execute("INSERT INTO filler VALUES (?1)", [&blob]).unwrap();
        let rows: i64 = reader.query_row("SELECT count(*) FROM filler", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 65);
    }

    #[test]
    fn token_cleanup_finds_expired_rows_by_index_not_by_reading_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("ledger.db")).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map([1i64], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        // The statements of `ViewOp::PruneExpired` (projection.rs) and of `prunable` (readers.rs).
        let tokens =
            plan("DELETE FROM active_tokens WHERE expires_at < ?1 AND COALESCE(refresh_expires_at, 0) < ?1");
        assert!(tokens.contains("USING INDEX active_tokens_by_expiry"), "{tokens}");
        let rotated = plan("DELETE FROM rotated_refresh_tokens WHERE rotated_at < ?1");
        assert!(rotated.contains("USING INDEX rotated_refresh_tokens_by_rotation"), "{rotated}");
    }
}
