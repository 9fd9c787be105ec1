//! The PostgreSQL write side of the seam: one connection running the group-commit batches,
//! reconnecting by itself when the database comes back.

use std::time::Instant;

use uuid::Uuid;

use super::authz;
use super::heartbeat::Heartbeat;
use super::rows::{self, Conn};
use super::{migrate, stats, PgOptions};
use crate::store::backend::{ViewReads, WriteStore};
use crate::store::records::{
    BResult, BackendError, ClientRow, CodeRow, RotatedRow, SessionRow, StoredEvent, Tail, TokenRow, UserRow,
    ViewOp,
};

/// The writer connection; `None` after a failure until the next batch reconnects.
pub struct PgStore {
    options: PgOptions,
    conn: Option<Conn>,
    /// When the current transaction took the `log_head` lock.
    locked_at: Option<Instant>,
    /// A serving node's beat in `node_heartbeats`; `None` for CLI commands.
    heartbeat: Option<Heartbeat>,
}

impl PgStore {
    /// Connects and applies the migrations the database lacks.
    pub fn open(options: PgOptions) -> BResult<Self> {
        let mut client = options.connect()?;
        migrate::migrate(&mut client)?;
        Ok(Self { options, conn: Some(Conn::new(client)), locked_at: None, heartbeat: None })
    }

    /// Marks this process as a serving node for as long as the store lives (`rebuild` refuses
    /// to swap the views under it).
    pub fn serve(&mut self) {
        self.heartbeat.get_or_insert_with(|| Heartbeat::start(self.options.clone()));
    }

    fn conn(&mut self) -> BResult<&mut Conn> {
        if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            if self.locked_at.is_some() {
                // A new connection would run the rest of the batch outside its transaction.
                return Err(BackendError::Unavailable("the connection was lost inside a batch".into()));
            }
            self.conn = Some(Conn::new(self.options.connect()?));
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Runs `f` on the connection; a connection-level failure drops it so the next call
    /// reconnects.
    fn with<R>(&mut self, f: impl FnOnce(&mut Conn) -> BResult<R>) -> BResult<R> {
        let result = f(self.conn()?);
        if let Err(BackendError::Unavailable(_)) = &result {
            self.conn = None;
        }
        result
    }

    /// `with`, for the archiving steps (`super::archive`).
    pub(super) fn run<R>(&mut self, f: impl FnOnce(&mut Conn) -> BResult<R>) -> BResult<R> {
        self.with(f)
    }

    fn simple(&mut self, sql: &str) -> BResult<()> {
        self.with(|c| Ok(c.client.batch_execute(sql)?))
    }
}

impl ViewReads for PgStore {
    fn token_by_stream(&mut self, stream: &str) -> BResult<Option<TokenRow>> {
        self.with(|c| rows::token_by_stream(c, stream))
    }
    fn token_by_access(&mut self, digest: &[u8; 32]) -> BResult<Option<TokenRow>> {
        self.with(|c| rows::token_by_access(c, digest))
    }
    fn token_by_refresh(&mut self, digest: &[u8; 32]) -> BResult<Option<TokenRow>> {
        self.with(|c| rows::token_by_refresh(c, digest))
    }
    fn token_by_family(&mut self, family: Uuid) -> BResult<Option<TokenRow>> {
        self.with(|c| rows::token_by_family(c, family))
    }
    fn tokens_of_client(&mut self, client: &str) -> BResult<Vec<TokenRow>> {
        self.with(|c| rows::tokens_of_client(c, client))
    }
    fn rotated(&mut self, digest: &[u8; 32]) -> BResult<Option<RotatedRow>> {
        self.with(|c| rows::rotated(c, digest))
    }
    fn client(&mut self, client: &str) -> BResult<Option<ClientRow>> {
        self.with(|c| rows::client(c, client))
    }
    fn user(&mut self, key: &str) -> BResult<Option<UserRow>> {
        self.with(|c| rows::user(c, key))
    }
    fn code(&mut self, digest: &[u8; 32]) -> BResult<Option<CodeRow>> {
        self.with(|c| authz::code(c, digest))
    }
    fn session(&mut self, digest: &[u8; 32]) -> BResult<Option<SessionRow>> {
        self.with(|c| authz::session(c, digest))
    }
}

impl WriteStore for PgStore {
    fn begin(&mut self) -> BResult<Tail> {
        // READ COMMITTED: every statement after the lock sees what the previous holder committed.
        self.simple("BEGIN ISOLATION LEVEL READ COMMITTED")?;
        self.locked_at = Some(Instant::now());
        match self.with(rows::lock_head) {
            Ok(tail) => {
                // The hold time counts from the lock granted, not from the wait for it.
                self.locked_at = Some(Instant::now());
                Ok(tail)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }
    fn stream_version(&mut self, stream: &str) -> BResult<i64> {
        self.with(|c| rows::stream_version(c, stream))
    }
    fn insert_event(&mut self, event: &StoredEvent) -> BResult<()> {
        self.with(|c| rows::insert_event(c, event))
    }
    fn project(&mut self, op: &ViewOp) -> BResult<()> {
        self.with(|c| rows::project(c, op))
    }
    fn savepoint(&mut self) -> BResult<()> {
        self.simple("SAVEPOINT command")
    }
    fn rollback_to_savepoint(&mut self) -> BResult<()> {
        self.simple("ROLLBACK TO SAVEPOINT command; RELEASE SAVEPOINT command")
    }
    fn release_savepoint(&mut self) -> BResult<()> {
        self.simple("RELEASE SAVEPOINT command")
    }
    fn commit(&mut self, tail: Option<&Tail>) -> BResult<()> {
        if let Some(tail) = tail {
            self.with(|c| rows::move_head(c, tail))?;
        }
        self.simple("COMMIT")?;
        if let Some(at) = self.locked_at.take() {
            stats::record(at.elapsed());
        }
        Ok(())
    }
    fn rollback(&mut self) {
        self.locked_at = None;
        if let Some(c) = self.conn.as_mut() {
            if c.client.batch_execute("ROLLBACK").is_err() {
                self.conn = None;
            }
        }
    }
    fn checkpoint(&mut self) -> BResult<i64> {
        self.with(rows::checkpoint)
    }
    fn read_after(&mut self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
        self.with(|c| rows::read_after(c, after, limit))
    }
    fn anchor(&mut self) -> BResult<(i64, Vec<u8>)> {
        self.with(rows::anchor)
    }
    fn set_anchor(&mut self, position: i64, hash: &[u8]) -> BResult<()> {
        self.with(|c| rows::set_anchor(c, position, hash))
    }
    fn hash_at(&mut self, position: i64) -> BResult<Option<Vec<u8>>> {
        self.with(|c| rows::hash_at(c, position))
    }
}
