//! The one error type of the audit CLI. Every failure becomes one line on stderr.

use std::path::PathBuf;

use token_ledger::config::ConfigError;
use token_ledger::store::{BackendError, StoreError};

/// Why a command could not run (as opposed to a finding, such as a broken chain, that a command
/// reports as its answer).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("position {position}: {source}")]
    Fold { position: i64, source: StoreError },
    #[error("the database {0} does not exist")]
    NoDatabase(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
    #[error("{path}, line {line}: not an exported event: {reason}")]
    BadLine { path: PathBuf, line: u64, reason: String },
    #[error(
        "the log starts at position {0}, not 1: this command needs the whole log (export without --since)"
    )]
    PartialLog(i64),
    #[error("a server is serving {0} (its lock file is held): stop it first, or pass --force-while-serving")]
    Serving(PathBuf),
    #[error("nodes are serving {database}: {nodes}; stop them first, or pass --force-while-serving")]
    NodesServing { database: String, nodes: String },
    #[error("cannot take the server lock of {path}: {reason}")]
    Lock { path: PathBuf, reason: String },
    #[error("position {0} is not in the log (it ends at {1})")]
    NoSuchPosition(i64, i64),
    #[error("{0:?} is not a time: expected RFC 3339, such as 2026-01-31T12:00:00Z")]
    BadTime(String),
    #[error("position {position}: recorded_at {value:?} is not a time")]
    BadRecordedAt { position: i64, value: String },
    #[error("{0:?} is not a digest: expected 64 hexadecimal digits")]
    BadDigest(String),
    #[error("cannot read the token from standard input: {0}")]
    Stdin(std::io::Error),
    #[error("cannot create a scratch database: {0}")]
    Scratch(std::io::Error),
    #[error("{0}")]
    Postgres(String),
    #[error(
        "positions 1 to {0} were archived without a boundary snapshot (by an older build): rebuild them with --full from every segment"
    )]
    NoSnapshot(i64),
    #[error(
        "positions {first} to {last} were dropped (retain_access_tokens_for_auditing = false), so no archive holds them: rebuild without --full starts from the boundary snapshot"
    )]
    DroppedHistory { first: i64, last: i64 },
    #[error(
        "positions 1 to {0} were archived: pass --archive DIR (or --config) so rebuild can read the archive folder"
    )]
    NoArchiveDir(i64),
    #[error("the boundary snapshot: {0}")]
    Snapshot(token_ledger::archive::segment::SegmentError),
    #[error("archive segment {segment}: {reason}")]
    Segment { segment: String, position: Option<i64>, reason: String },
}

impl From<rusqlite::Error> for ReplayError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(BackendError::from(e).into())
    }
}

impl From<BackendError> for ReplayError {
    fn from(e: BackendError) -> Self {
        Self::Store(e.into())
    }
}
