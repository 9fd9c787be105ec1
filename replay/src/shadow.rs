//! The shadow: a views database of its own (the server's migrations, so the same tables) into
//! which events are folded through the server's `projection::apply`, the one implementation of
//! the views. `replay` folds into memory, `rebuild` into a scratch file.

use std::path::Path;

use rusqlite::Connection;
use token_ledger::store::fold;
use token_ledger::store::log::StoredEvent;
use token_ledger::store::sqlite::migrate::migrate;
use token_ledger::store::sqlite::projection::set_checkpoint;
use token_ledger::store::StoreError;

use crate::ReplayError;

/// Applies one event to SQLite views through the server's fold (`fold::ops`) and the SQLite
/// backend's SQL for each view operation: the one implementation of the views.
pub fn apply(
    conn: &Connection,
    stored: &StoredEvent,
    event: &token_ledger::domain::events::Event,
) -> Result<(), StoreError> {
    for op in fold::ops(stored, event) {
        token_ledger::store::sqlite::projection::apply(conn, &op)?;
    }
    Ok(())
}

/// A views database being folded, inside one open transaction.
pub struct Shadow {
    conn: Connection,
    position: i64,
    last_recorded_at: Option<String>,
}

impl Shadow {
    /// An empty shadow in memory.
    pub fn in_memory() -> Result<Self, ReplayError> {
        Self::start(Connection::open_in_memory()?)
    }

    /// An empty shadow in a scratch file. It is disposable, so it is written without a journal
    /// or fsync: a crash can only lose the scratch, never the live views.
    pub fn in_file(path: &Path) -> Result<Self, ReplayError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "OFF")?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        Self::start(conn)
    }

    fn start(conn: Connection) -> Result<Self, ReplayError> {
        migrate(&conn)?;
        conn.execute_batch("BEGIN")?;
        Ok(Self { conn, position: 0, last_recorded_at: None })
    }

    /// Folds one event: decodes it (upcasting older versions) and applies it as the server does.
    pub fn fold(&mut self, stored: &StoredEvent) -> Result<(), ReplayError> {
        let fold_error = |source| ReplayError::Fold { position: stored.position, source };
        let event = stored.decode().map_err(fold_error)?;
        apply(&self.conn, stored, &event).map_err(fold_error)?;
        self.position = stored.position;
        self.last_recorded_at = Some(stored.recorded_at.clone());
        Ok(())
    }

    /// The position of the last event folded (0 for none).
    pub fn position(&self) -> i64 {
        self.position
    }

    /// `recorded_at` of the last event folded.
    pub fn last_recorded_at(&self) -> Option<&str> {
        self.last_recorded_at.as_deref()
    }

    /// Sets the checkpoint to the last event folded and commits; the views can then be read.
    pub fn finish(self) -> Result<Connection, ReplayError> {
        set_checkpoint(&self.conn, self.position)?;
        self.conn.execute_batch("COMMIT")?;
        Ok(self.conn)
    }
}
