//! The event store behind one seam: the log, its projections, the single writer and the
//! readers. `backend` is the interface, `records` what crosses it; `sqlite` and `postgres` are
//! the two backends, and nothing outside them holds SQL. The ledger (command execution), the
//! fold and the memory view work on any backend.

pub mod authz;
pub mod authz_commands;
pub mod backend;
pub mod clock;
pub mod fold;
pub mod follow;
pub mod image;
pub mod ledger;
pub mod loader;
pub mod log;
pub mod lookup;
pub mod memory;
pub mod mint;
pub mod postgres;
pub mod reads;
pub mod records;
pub mod sqlite;
pub mod steps;
pub mod writer;

pub use records::BackendError;

use crate::crypto::CryptoError;
use crate::domain::events::DecodeError;

/// Any error of a database driver, boxed so the shared code names no backend.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A storage failure. The HTTP layer maps `Unavailable` to 503 and the rest to 500.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database cannot be written or read right now: {0}")]
    Unavailable(Cause),
    #[error("a concurrent write to the same stream version was refused: {0}")]
    Conflict(Cause),
    /// A serialization failure (SQLSTATE 40001): the ledger runs the batch again.
    #[error("the transaction was serialised out: {0}")]
    Retry(Cause),
    #[error("database error: {0}")]
    Database(Cause),
    #[error(
        "the database has schema version {found}, newer than this build's {supported}; upgrade the binary"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("a stored value is corrupt: {0}")]
    Corrupt(String),
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

impl From<BackendError> for StoreError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Unavailable(c) => Self::Unavailable(c),
            BackendError::Conflict(c) => Self::Conflict(c),
            BackendError::Retry(c) => Self::Retry(c),
            BackendError::SchemaTooNew { found, supported } => Self::SchemaTooNew { found, supported },
            BackendError::Corrupt(what) => Self::Corrupt(what),
            BackendError::Other(c) => Self::Database(c),
        }
    }
}

#[cfg(test)]
mod conformance;
