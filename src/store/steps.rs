//! The archiving seam (issue 9): what a backend records when a prefix of the log leaves the live
//! database, and the few operations the archiver needs beyond `WriteStore`. The archiver itself
//! (`crate::archive`) holds the rules; a backend only stores steps and removes the events a
//! recorded step accounts for.

use super::backend::WriteStore;
use super::records::BResult;

/// How a step's events left the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    /// Written to a segment file first (`retain_access_tokens_for_auditing = true`).
    Segment,
    /// Verified, then dropped; the step is the chain anchor that keeps the live log verifiable.
    Dropped,
}

impl StepKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Segment => "segment",
            Self::Dropped => "dropped",
        }
    }

    /// The stored name back; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "segment" => Some(Self::Segment),
            "dropped" => Some(Self::Dropped),
            _ => None,
        }
    }
}

/// One recorded archiving step: positions `first_position..=last_position` left the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveStep {
    pub first_position: i64,
    pub last_position: i64,
    pub event_count: i64,
    /// The hash the first event chains from.
    pub prev_hash: Vec<u8>,
    /// The hash of the last event: what the live log (or the next step) chains from.
    pub last_hash: Vec<u8>,
    pub first_recorded_at: String,
    pub last_recorded_at: String,
    pub kind: StepKind,
    /// The segment's file name in the archive folder (kind `Segment`).
    pub segment: Option<String>,
    /// The SHA-256 of the segment file (kind `Segment`).
    pub sha256: Option<Vec<u8>>,
    /// When the step was recorded (RFC 3339).
    pub recorded_at: String,
}

/// The views' snapshot at the end of a recorded step (schema `archive_snapshots`): a file in
/// the archive folder (`crate::archive::snapshot`) and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The step's last position: the snapshot holds the views folded up to here.
    pub last_position: i64,
    /// The file's name in the archive folder.
    pub file: String,
    /// The SHA-256 of the file.
    pub sha256: Vec<u8>,
    /// How many view rows it holds.
    pub row_count: i64,
}

/// The write side of a store that can archive. Every method runs inside the transaction that
/// `WriteStore::begin` opened (the log's write lock), except `steps`, which may run outside.
pub trait ArchiveStore: WriteStore {
    /// Every recorded step, oldest first.
    fn steps(&mut self) -> BResult<Vec<ArchiveStep>>;
    /// The last recorded step, if any.
    fn last_step(&mut self) -> BResult<Option<ArchiveStep>>;
    /// Records a step. The database refuses one that does not start right after the last.
    fn record_step(&mut self, step: &ArchiveStep) -> BResult<()>;
    /// Removes up to `limit` of the oldest events that a recorded step accounts for, carrying
    /// their streams' last versions into `archived_streams`. Returns how many it removed.
    fn remove_archived(&mut self, limit: usize) -> BResult<u64>;
    /// The snapshot of the latest step that has one.
    fn last_snapshot(&mut self) -> BResult<Option<SnapshotRecord>>;
    /// Names a step's snapshot; in the transaction that records the step.
    fn record_snapshot(&mut self, snapshot: &SnapshotRecord) -> BResult<()>;
}
