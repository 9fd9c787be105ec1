//! Reader connections for PostgreSQL: a small pool, grown on demand up to `pool_size` idle
//! connections; a connection that failed is dropped, so the pool heals when the database is back.

use std::sync::Mutex;

use super::authz;
use super::rows::{self, Conn};
use super::PgOptions;
use crate::domain::events::ExpiredPruned;
use crate::store::backend::ReadStore;
use crate::store::records::{
    BResult, BackendError, ClientRow, ConsentRow, SessionRow, StoredEvent, TokenRow, UserRow,
};

pub struct PgReads {
    options: PgOptions,
    idle: Mutex<Vec<Conn>>,
}

impl PgReads {
    pub fn new(options: PgOptions) -> Self {
        Self { options, idle: Mutex::default() }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Conn) -> BResult<R>) -> BResult<R> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut conn = match pooled {
            Some(c) if !c.client.is_closed() => c,
            _ => Conn::new(self.options.connect()?),
        };
        let result = f(&mut conn);
        if matches!(result, Err(BackendError::Unavailable(_))) {
            return result;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.options.pool_size {
            idle.push(conn);
        }
        result
    }
}

impl ReadStore for PgReads {
    fn client(&self, client: &str) -> BResult<Option<ClientRow>> {
        self.with(|c| rows::client(c, client))
    }
    fn user(&self, key: &str) -> BResult<Option<UserRow>> {
        self.with(|c| rows::user(c, key))
    }
    fn session(&self, digest: &[u8; 32]) -> BResult<Option<SessionRow>> {
        self.with(|c| authz::session(c, digest))
    }
    fn consent(&self, username_key: &str, client: &str) -> BResult<Option<ConsentRow>> {
        self.with(|c| authz::consent(c, username_key, client))
    }
    fn checkpoint(&self) -> BResult<i64> {
        self.with(rows::checkpoint)
    }
    fn head(&self) -> BResult<i64> {
        self.with(rows::head)
    }
    fn read_after(&self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
        self.with(|c| rows::read_after(c, after, limit))
    }
    fn prunable(&self, cutoffs: &ExpiredPruned) -> BResult<bool> {
        self.with(|c| {
            let row = c.query_opt(PRUNABLE, &[&cutoffs.expired_before, &cutoffs.rotated_before])?;
            Ok(row.map(|r| r.try_get(0)).transpose()?.unwrap_or(false))
        })
    }
    fn snapshot(&self) -> BResult<(i64, Vec<TokenRow>)> {
        self.with(|c| {
            c.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
            let read = rows::checkpoint(c).and_then(|at| Ok((at, rows::all_tokens(c)?)));
            let ended = c.client.batch_execute("COMMIT");
            let read = read?;
            ended?;
            Ok(read)
        })
    }
    fn token_by_digest(&self, digest: &[u8; 32]) -> BResult<Option<TokenRow>> {
        self.with(|c| match rows::token_by_access(c, digest)? {
            Some(row) => Ok(Some(row)),
            None => rows::token_by_refresh(c, digest),
        })
    }
    fn active_token_count(&self) -> BResult<u64> {
        self.with(|c| {
            let row = c.query_opt("SELECT count(*) FROM active_tokens", &[])?;
            let count: i64 = row.map(|r| r.try_get(0)).transpose()?.unwrap_or(0);
            Ok(u64::try_from(count).unwrap_or(0))
        })
    }
    fn archive_steps(&self) -> BResult<Vec<crate::store::steps::ArchiveStep>> {
        self.with(super::archive::steps)
    }
}

/// Whether token cleanup has anything to remove (`ViewOp::PruneExpired`'s rows), read off the
/// writer's connection so the check never holds up a commit.
const PRUNABLE: &str = "SELECT EXISTS (SELECT 1 FROM active_tokens
        WHERE expires_at < $1 AND COALESCE(refresh_expires_at, 0) < $1)
    OR EXISTS (SELECT 1 FROM rotated_refresh_tokens WHERE rotated_at < $2)
    OR EXISTS (SELECT 1 FROM authorization_codes WHERE expires_at < $1)
    OR EXISTS (SELECT 1 FROM login_sessions WHERE expires_at < $1)";
