//! The storage seam: the two narrow interfaces every backend (SQLite, PostgreSQL) implements.
//! The ledger (command execution), the projection and the memory view use only these, with the
//! plain records of `records`; a backend knows neither events nor rules.

use uuid::Uuid;

use super::records::{
    BResult, ClientRow, CodeRow, ConsentRow, RotatedRow, SessionRow, StoredEvent, Tail, TokenRow, UserRow,
    ViewOp,
};

/// Lookups on the views. Inside a write transaction they see its own uncommitted changes.
pub trait ViewReads {
    fn token_by_stream(&mut self, stream: &str) -> BResult<Option<TokenRow>>;
    fn token_by_access(&mut self, digest: &[u8; 32]) -> BResult<Option<TokenRow>>;
    fn token_by_refresh(&mut self, digest: &[u8; 32]) -> BResult<Option<TokenRow>>;
    fn token_by_family(&mut self, family: Uuid) -> BResult<Option<TokenRow>>;
    /// Ordered by token id.
    fn tokens_of_client(&mut self, client: &str) -> BResult<Vec<TokenRow>>;
    fn rotated(&mut self, digest: &[u8; 32]) -> BResult<Option<RotatedRow>>;
    fn client(&mut self, client: &str) -> BResult<Option<ClientRow>>;
    /// By the case-folded username.
    fn user(&mut self, key: &str) -> BResult<Option<UserRow>>;
    /// An authorization code by its digest, whatever its status.
    fn code(&mut self, digest: &[u8; 32]) -> BResult<Option<CodeRow>>;
    /// A login session by its digest, expired or not.
    fn session(&mut self, digest: &[u8; 32]) -> BResult<Option<SessionRow>>;
}

/// The write side of one store: a connection that runs batch transactions.
///
/// `begin` opens a transaction that holds the log's write lock until `commit` or `rollback`
/// (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: the `log_head` row `FOR UPDATE`), so appenders are
/// serialised through COMMIT: positions are gap-free and no reader can pass a late commit.
pub trait WriteStore: ViewReads + Send {
    /// Opens the batch transaction and returns the log's tail, read under the lock.
    fn begin(&mut self) -> BResult<Tail>;
    /// The highest version of a stream (0 when it has none).
    fn stream_version(&mut self, stream: &str) -> BResult<i64>;
    /// Inserts one event (position, version and hash already set by the caller).
    fn insert_event(&mut self, event: &StoredEvent) -> BResult<()>;
    /// Applies one change to the views.
    fn project(&mut self, op: &ViewOp) -> BResult<()>;
    /// Starts a savepoint for one command of the batch.
    fn savepoint(&mut self) -> BResult<()>;
    /// Undoes the command since the savepoint (and releases it).
    fn rollback_to_savepoint(&mut self) -> BResult<()>;
    /// Keeps the command since the savepoint.
    fn release_savepoint(&mut self) -> BResult<()>;
    /// Moves the views' checkpoint (and the log head) to `tail` and commits.
    fn commit(&mut self, tail: Option<&Tail>) -> BResult<()>;
    /// Abandons the transaction.
    fn rollback(&mut self);
    /// The views' checkpoint, inside the transaction.
    fn checkpoint(&mut self) -> BResult<i64>;
    /// Up to `limit` events after `after`, in position order (inside the transaction if any).
    fn read_after(&mut self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>>;
    /// The start-up anchor of the hash chain: position and hash verified last.
    fn anchor(&mut self) -> BResult<(i64, Vec<u8>)>;
    fn set_anchor(&mut self, position: i64, hash: &[u8]) -> BResult<()>;
    /// The stored hash of the event at `position`.
    fn hash_at(&mut self, position: i64) -> BResult<Option<Vec<u8>>>;
    /// Work a backend does when the writer stops (SQLite: a final WAL checkpoint).
    fn close(&mut self) {}
    /// Inside a transaction `begin` opened: whether no other connection has committed since
    /// this connection's previous transaction, so what the caller remembers of the views is
    /// still true. `false` when the backend cannot tell (the caller reads again).
    fn unchanged_by_others(&self) -> bool {
        false
    }
}

/// The read side: shared by request handlers, used from blocking threads. Each call takes a
/// connection of its own from the backend's pool.
pub trait ReadStore: Send + Sync {
    fn client(&self, client: &str) -> BResult<Option<ClientRow>>;
    /// By the case-folded username.
    fn user(&self, key: &str) -> BResult<Option<UserRow>>;
    /// A login session by its digest, expired or not.
    fn session(&self, digest: &[u8; 32]) -> BResult<Option<SessionRow>>;
    /// The consent a user (case-folded) remembered for a client.
    fn consent(&self, username_key: &str, client: &str) -> BResult<Option<ConsentRow>>;
    /// The views' checkpoint.
    fn checkpoint(&self) -> BResult<i64>;
    /// The log's committed head: the position every node's view must reach.
    fn head(&self) -> BResult<i64>;
    /// Up to `limit` events after `after`, in position order.
    fn read_after(&self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>>;
    /// Every row of the active-token view with the checkpoint they reflect, read in one
    /// snapshot (loading the memory view). The sealed values are left empty.
    fn snapshot(&self) -> BResult<(i64, Vec<TokenRow>)>;
    /// The active token whose access or refresh digest is `digest` (introspection while the
    /// memory view loads).
    fn token_by_digest(&self, digest: &[u8; 32]) -> BResult<Option<TokenRow>>;
    /// How many tokens the active-token view holds (metrics while the memory view loads).
    fn active_token_count(&self) -> BResult<u64>;
    /// Every archiving step recorded, oldest first (`super::steps`).
    fn archive_steps(&self) -> BResult<Vec<super::steps::ArchiveStep>>;
    /// Whether token cleanup at these cutoffs would remove any row of the views.
    fn prunable(&self, cutoffs: &crate::domain::events::ExpiredPruned) -> BResult<bool>;
}
