//! The SQLite write side of the seam: the writer connection running batch transactions.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use uuid::Uuid;

use super::{log, projection, views};
use crate::store::backend::{ViewReads, WriteStore};
use crate::store::records::{
    BResult, ClientRow, CodeRow, RotatedRow, SessionRow, StoredEvent, Tail, TokenRow, UserRow, ViewOp,
};

/// The writer connection. `BEGIN IMMEDIATE` takes SQLite's write lock for the whole batch.
pub struct SqliteStore {
    conn: Connection,
    /// The log's tail as this connection last committed it, with the `PRAGMA data_version` it
    /// saw then: while no other connection has committed since (the version is unchanged), the
    /// tail needs no query. A CLI command or the archiver writing meanwhile changes the version.
    known_tail: Option<(i64, Tail)>,
    /// Whether the transaction `begin` opened found the remembered version unchanged.
    alone: bool,
}

impl SqliteStore {
    /// Opens (and migrates) the database for writing.
    pub fn open(path: &Path) -> BResult<Self> {
        Ok(Self { conn: super::open_writer(path)?, known_tail: None, alone: false })
    }

    /// Wraps a connection opened elsewhere (tests, the audit CLI).
    pub fn from_connection(conn: Connection) -> Self {
        Self { conn, known_tail: None, alone: false }
    }

    /// The server's writer: automatic WAL checkpoints off, a checkpointer thread instead.
    pub fn serve(&self, path: &Path) -> BResult<()> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        super::spawn_checkpointer(path, Duration::from_millis(250))
            .map_err(|e| crate::store::records::BackendError::Other(Box::new(e)))
    }

    /// The connection, for SQLite-only tools (benchmark pragmas).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn exec(&self, sql: &str) -> BResult<()> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// Changes whenever another connection commits (never for this connection's own commits).
    fn data_version(&self) -> BResult<i64> {
        Ok(self.conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?)
    }

    /// The tail inside the write transaction just begun: the remembered one if nobody else
    /// committed since, else read.
    fn tail_in_transaction(&mut self) -> BResult<Tail> {
        let version = self.data_version()?;
        self.alone = false;
        if let Some((seen, tail)) = &self.known_tail {
            if *seen == version {
                self.alone = true;
                return Ok(tail.clone());
            }
        }
        let tail = log::tail(&self.conn)?;
        self.known_tail = Some((version, tail.clone()));
        Ok(tail)
    }
}

impl ViewReads for SqliteStore {
    fn token_by_stream(&mut self, stream: &str) -> BResult<Option<TokenRow>> {
        views::active_by_stream(&self.conn, stream)
    }
    fn token_by_access(&mut self, digest: &[u8; 32]) -> BResult<Option<TokenRow>> {
        views::active_by_access(&self.conn, digest)
    }
    fn token_by_refresh(&mut self, digest: &[u8; 32]) -> BResult<Option<TokenRow>> {
        views::active_by_refresh(&self.conn, digest)
    }
    fn token_by_family(&mut self, family: Uuid) -> BResult<Option<TokenRow>> {
        views::active_by_family(&self.conn, family)
    }
    fn tokens_of_client(&mut self, client: &str) -> BResult<Vec<TokenRow>> {
        views::active_of_client(&self.conn, client)
    }
    fn rotated(&mut self, digest: &[u8; 32]) -> BResult<Option<RotatedRow>> {
        views::rotated(&self.conn, digest)
    }
    fn client(&mut self, client: &str) -> BResult<Option<ClientRow>> {
        views::client(&self.conn, client)
    }
    fn user(&mut self, key: &str) -> BResult<Option<UserRow>> {
        views::user(&self.conn, key)
    }
    fn code(&mut self, digest: &[u8; 32]) -> BResult<Option<CodeRow>> {
        super::authz::code(&self.conn, digest)
    }
    fn session(&mut self, digest: &[u8; 32]) -> BResult<Option<SessionRow>> {
        super::authz::session(&self.conn, digest)
    }
}

impl WriteStore for SqliteStore {
    fn begin(&mut self) -> BResult<Tail> {
        self.exec("BEGIN IMMEDIATE")?;
        match self.tail_in_transaction() {
            Ok(tail) => Ok(tail),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }
    fn stream_version(&mut self, stream: &str) -> BResult<i64> {
        log::stream_version(&self.conn, stream)
    }
    fn insert_event(&mut self, event: &StoredEvent) -> BResult<()> {
        log::insert(&self.conn, event)
    }
    fn project(&mut self, op: &ViewOp) -> BResult<()> {
        projection::apply(&self.conn, op)
    }
    fn savepoint(&mut self) -> BResult<()> {
        self.exec("SAVEPOINT command")
    }
    fn rollback_to_savepoint(&mut self) -> BResult<()> {
        self.exec("ROLLBACK TO command")?;
        self.exec("RELEASE command")
    }
    fn release_savepoint(&mut self) -> BResult<()> {
        self.exec("RELEASE command")
    }
    fn commit(&mut self, tail: Option<&Tail>) -> BResult<()> {
        if let Some(tail) = tail {
            projection::set_checkpoint(&self.conn, tail.position)?;
        }
        // Forgotten first: if COMMIT fails, the next batch reads the tail again.
        let known = self.known_tail.take();
        self.exec("COMMIT")?;
        self.known_tail = match (known, tail) {
            (Some((version, _)), Some(tail)) => Some((version, tail.clone())),
            (known, None) => known,
            (None, Some(_)) => None,
        };
        Ok(())
    }
    fn rollback(&mut self) {
        // What `begin` read stays true (nothing of this transaction is kept), but a failed
        // COMMIT may have left the database in any state: read it again.
        self.known_tail = None;
        if !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
    fn checkpoint(&mut self) -> BResult<i64> {
        projection::checkpoint(&self.conn)
    }
    fn read_after(&mut self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
        log::read_after(&self.conn, after, limit)
    }
    fn anchor(&mut self) -> BResult<(i64, Vec<u8>)> {
        log::anchor(&self.conn)
    }
    fn set_anchor(&mut self, position: i64, hash: &[u8]) -> BResult<()> {
        log::set_anchor(&self.conn, position, hash)
    }
    fn hash_at(&mut self, position: i64) -> BResult<Option<Vec<u8>>> {
        log::hash_at(&self.conn, position)
    }
    fn unchanged_by_others(&self) -> bool {
        self.alone
    }
    fn close(&mut self) {
        // Leave a self-contained database file.
        if let Err(e) = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "the final WAL checkpoint failed");
        }
    }
}
