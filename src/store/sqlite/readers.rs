//! Read-only connections for introspection and client authentication, used off the async
//! executor's threads.

use std::path::PathBuf;
use std::sync::Mutex;

use rusqlite::Connection;

use super::{authz, log, open_reader, projection, views};
use crate::domain::events::ExpiredPruned;
use crate::store::backend::ReadStore;
use crate::store::records::{BResult, ClientRow, ConsentRow, SessionRow, StoredEvent, TokenRow, UserRow};

/// A small pool of read-only connections; grows on demand, keeps at most `MAX_IDLE`.
pub struct SqliteReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

const MAX_IDLE: usize = 16;

impl SqliteReads {
    pub fn new(path: PathBuf) -> Self {
        Self { path, idle: Mutex::default() }
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> BResult<R>) -> BResult<R> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }
}

impl ReadStore for SqliteReads {
    fn client(&self, client: &str) -> BResult<Option<ClientRow>> {
        self.with(|c| views::client(c, client))
    }
    fn user(&self, key: &str) -> BResult<Option<UserRow>> {
        self.with(|c| views::user(c, key))
    }
    fn session(&self, digest: &[u8; 32]) -> BResult<Option<SessionRow>> {
        self.with(|c| authz::session(c, digest))
    }
    fn consent(&self, username_key: &str, client: &str) -> BResult<Option<ConsentRow>> {
        self.with(|c| authz::consent(c, username_key, client))
    }
    fn checkpoint(&self) -> BResult<i64> {
        self.with(projection::checkpoint)
    }
    fn head(&self) -> BResult<i64> {
        self.with(|c| Ok(log::tail(c)?.position))
    }
    fn read_after(&self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
        self.with(|c| log::read_after(c, after, limit))
    }
    fn prunable(&self, cutoffs: &ExpiredPruned) -> BResult<bool> {
        self.with(|c| {
            Ok(c.prepare_cached(PRUNABLE)?
                .query_row([cutoffs.expired_before, cutoffs.rotated_before], |r| r.get(0))?)
        })
    }
    fn snapshot(&self) -> BResult<(i64, Vec<TokenRow>)> {
        self.with(|c| {
            c.execute_batch("BEGIN")?;
            let read = projection::checkpoint(c).and_then(|at| Ok((at, views::all_active(c)?)));
            let _ = c.execute_batch("COMMIT");
            read
        })
    }
    fn token_by_digest(&self, digest: &[u8; 32]) -> BResult<Option<TokenRow>> {
        self.with(|c| match views::active_by_access(c, digest)? {
            Some(row) => Ok(Some(row)),
            None => views::active_by_refresh(c, digest),
        })
    }
    fn active_token_count(&self) -> BResult<u64> {
        self.with(|c| {
            Ok(c.prepare_cached("SELECT count(*) FROM active_tokens")?.query_row([], |r| r.get(0))?)
        })
    }
    fn archive_steps(&self) -> BResult<Vec<crate::store::steps::ArchiveStep>> {
        self.with(super::archive::steps)
    }
}

/// Whether token cleanup has anything to remove (`ViewOp::PruneExpired`'s rows), read off the
/// writer's connection so the check never holds up a commit.
const PRUNABLE: &str = "SELECT EXISTS (SELECT 1 FROM active_tokens
        WHERE expires_at < ?1 AND COALESCE(refresh_expires_at, 0) < ?1)
    OR EXISTS (SELECT 1 FROM rotated_refresh_tokens WHERE rotated_at < ?2)
    OR EXISTS (SELECT 1 FROM authorization_codes WHERE expires_at < ?1)
    OR EXISTS (SELECT 1 FROM login_sessions WHERE expires_at < ?1)";
