//! The archiver: moves the prefix of the log older than `keep_in_database` out of the live
//! database, one step at a time, each step safe to interrupt:
//!
//! 1. read the eligible events (outside the write lock) and check their chain from the last
//!    step's hash; with `retain`, write them to a segment, fsync it and its manifest;
//! 2. in one short write transaction, record the step (the database refuses a step that does not
//!    continue the last one) and move the start-up chain anchor to its end;
//! 3. remove the step's events in small transactions, carrying their streams' versions.
//!
//! A crash before 2 leaves a segment file that no step names (written again next time); after 2,
//! the next round (or start) completes 3. The views are never touched: they already carry the
//! state (active and rotated tokens, clients, users), so the service answers as before.
//!
//! Each step also writes the views' image at its last position (`snapshot`): the previous
//! step's snapshot with the step's events folded in through `fold::ops`, recorded in the step's
//! transaction, so `ledger-replay rebuild` can restore the views once the prefix is gone.

use std::path::PathBuf;

use super::segment::{SegmentError, SegmentWriter};
use super::snapshot;
use crate::domain::events::Millis;
use crate::store::image::Image;
use crate::store::log::{chain_hash, format_time, BrokenChain, StoredEvent, GENESIS};
use crate::store::steps::{ArchiveStep, ArchiveStore, SnapshotRecord, StepKind};
use crate::store::StoreError;

/// What the archiver does, from `[oauth.token_cleanup]` and `[ledger.archive]`.
#[derive(Debug, Clone)]
pub struct ArchivePolicy {
    pub dir: PathBuf,
    /// Events younger than this stay in the live database.
    pub keep_ms: Millis,
    /// true: archive into segments; false: verify, then drop.
    pub retain: bool,
    /// Most events in one segment (one step).
    pub segment_events: usize,
    /// Most events removed per transaction: bounds how long a request waits for the write lock.
    pub remove_batch: usize,
}

impl ArchivePolicy {
    /// The defaults for a folder and a retention.
    pub fn new(dir: PathBuf, keep_ms: Millis, retain: bool) -> Self {
        Self { dir, keep_ms, retain, segment_events: 50_000, remove_batch: 500 }
    }
}

/// Why a round stopped.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the archive: {0}")]
    Segment(#[from] SegmentError),
    /// The log is damaged: nothing of it is archived or dropped.
    #[error("{0}; nothing is archived from a damaged log")]
    Broken(BrokenChain),
}

impl From<crate::store::BackendError> for ArchiveError {
    fn from(e: crate::store::BackendError) -> Self {
        Self::Store(e.into())
    }
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub steps: u64,
    pub archived: u64,
    pub removed: u64,
    /// Compressed bytes written.
    pub bytes: u64,
}

/// Events read per query.
const PAGE: usize = 1000;

/// Archives (or drops) everything eligible at `now`, finishing any interrupted removal first.
pub fn run_round(
    store: &mut dyn ArchiveStore,
    policy: &ArchivePolicy,
    now: Millis,
) -> Result<RoundReport, ArchiveError> {
    let mut report = RoundReport { removed: finish_removal(store, policy)?, ..RoundReport::default() };
    while let Some((step, bytes)) = archive_step(store, policy, now)? {
        report.steps += 1;
        report.archived += step.event_count as u64;
        report.bytes += bytes;
        report.removed += finish_removal(store, policy)?;
    }
    Ok(report)
}

/// Removes the events recorded steps account for that are still in the database, in small
/// transactions. Returns how many.
pub fn finish_removal(store: &mut dyn ArchiveStore, policy: &ArchivePolicy) -> Result<u64, ArchiveError> {
    let mut removed = 0;
    loop {
        store.begin()?;
        let n = match store.remove_archived(policy.remove_batch) {
            Ok(n) => n,
            Err(e) => {
                store.rollback();
                return Err(e.into());
            }
        };
        if let Err(e) = store.commit(None) {
            store.rollback();
            return Err(e.into());
        }
        removed += n;
        if n == 0 {
            return Ok(removed);
        }
    }
}

/// One step: the eligible events after the last step (at most `segment_events`), checked,
/// written (with `retain`) and recorded. `None` when nothing is eligible.
fn archive_step(
    store: &mut dyn ArchiveStore,
    policy: &ArchivePolicy,
    now: Millis,
) -> Result<Option<(ArchiveStep, u64)>, ArchiveError> {
    let boundary = store.last_step()?;
    let (after, prev) =
        boundary.as_ref().map_or((0, GENESIS.to_vec()), |s| (s.last_position, s.last_hash.clone()));
    // Only what the views have folded may leave: they must carry its state.
    let folded = store.checkpoint()?;
    let cutoff = format_time(now - policy.keep_ms);
    // Created with the first eligible event, so a round with nothing to do writes nothing.
    let mut writer: Option<SegmentWriter> = None;
    let mut chain = Chain { position: after, hash: prev.clone(), first: None, last: None, count: 0 };
    // The views at the boundary, to carry to the step's end; `None` when no snapshot reaches it.
    let mut image: Option<Image> = None;
    'read: loop {
        let page = store.read_after(chain.position, PAGE)?;
        if page.is_empty() {
            break;
        }
        for event in page {
            let eligible = event.recorded_at < cutoff && event.position <= folded;
            if !eligible || chain.count >= policy.segment_events as i64 {
                break 'read;
            }
            chain.check(&event).map_err(ArchiveError::Broken)?;
            if chain.count == 0 {
                image = boundary_image(store, policy, boundary.as_ref())?;
            }
            if let Some(image) = image.as_mut() {
                image.fold(&event)?;
            }
            if policy.retain {
                if writer.is_none() {
                    writer = Some(SegmentWriter::create(&policy.dir)?);
                }
                if let Some(w) = writer.as_mut() {
                    w.push(&event)?;
                }
            }
            chain.accept(event);
        }
    }
    let (Some(first), Some(last)) = (chain.first.take(), chain.last.take()) else {
        return Ok(None);
    };
    let (segment, sha256, bytes) = match writer {
        Some(w) => {
            let m = w.finish()?;
            let sha = hex::decode(&m.sha256).expect("the manifest's digest is hex");
            (Some(m.file), Some(sha), m.bytes)
        }
        None => (None, None, 0),
    };
    let snapshot = match &image {
        Some(image) => Some(snapshot::write(&policy.dir, image)?),
        None => None,
    };
    let step = ArchiveStep {
        first_position: first.position,
        last_position: last.position,
        event_count: chain.count,
        prev_hash: prev,
        last_hash: last.hash.clone(),
        first_recorded_at: first.recorded_at,
        last_recorded_at: last.recorded_at,
        kind: if policy.retain { StepKind::Segment } else { StepKind::Dropped },
        segment,
        sha256,
        recorded_at: format_time(now),
    };
    if !record(store, &step, boundary.as_ref(), snapshot.as_ref())? {
        return Ok(None);
    }
    if snapshot.is_some() {
        // The previous snapshot is kept too; older ones are no longer any boundary's.
        snapshot::prune(&policy.dir, after);
    }
    Ok(Some((step, bytes)))
}

/// The views' image at the boundary the next step starts from: the empty views before the
/// first step, else the snapshot recorded with the last step. `None` (no snapshot written) when
/// that step has none, as after archiving with an older build, or it cannot be read.
fn boundary_image(
    store: &mut dyn ArchiveStore,
    policy: &ArchivePolicy,
    boundary: Option<&ArchiveStep>,
) -> Result<Option<Image>, ArchiveError> {
    let Some(boundary) = boundary else {
        return Ok(Some(Image::new()));
    };
    let Some(record) = store.last_snapshot()?.filter(|r| r.last_position == boundary.last_position) else {
        return Ok(None);
    };
    match snapshot::read(&policy.dir, &record) {
        Ok(image) if image.hash == boundary.last_hash => Ok(Some(image)),
        Ok(_) => {
            tracing::warn!(
                position = record.last_position,
                "the boundary snapshot holds another hash; no snapshot is written"
            );
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the boundary snapshot cannot be read; no snapshot is written");
            Ok(None)
        }
    }
}

/// Records the step and moves the start-up anchor to its end, in one transaction under the
/// log's write lock. `false` when another archiver recorded a step meanwhile (a shared log).
fn record(
    store: &mut dyn ArchiveStore,
    step: &ArchiveStep,
    boundary: Option<&ArchiveStep>,
    snapshot: Option<&SnapshotRecord>,
) -> Result<bool, ArchiveError> {
    store.begin()?;
    let done: Result<bool, crate::store::BackendError> = (|| {
        if store.last_step()?.as_ref() != boundary {
            return Ok(false);
        }
        store.record_step(step)?;
        if let Some(snapshot) = snapshot {
            store.record_snapshot(snapshot)?;
        }
        // Everything up to the step's end was just verified; the anchor must not point at an
        // event that is about to leave the database.
        if store.anchor()?.0 < step.last_position {
            store.set_anchor(step.last_position, &step.last_hash)?;
        }
        Ok(true)
    })();
    match done {
        Ok(recorded) => {
            store.commit(None)?;
            Ok(recorded)
        }
        Err(e) => {
            store.rollback();
            Err(ArchiveError::from(e))
        }
    }
}

/// The chain check of the events a step takes, from the previous step's hash.
struct Chain {
    position: i64,
    hash: Vec<u8>,
    first: Option<StoredEvent>,
    last: Option<StoredEvent>,
    count: i64,
}

impl Chain {
    fn check(&self, e: &StoredEvent) -> Result<(), BrokenChain> {
        let broken = |reason: &str| BrokenChain { position: e.position, reason: reason.to_owned() };
        if e.position != self.position + 1 {
            return Err(BrokenChain {
                position: self.position + 1,
                reason: "the position is missing".into(),
            });
        }
        if e.prev_hash != self.hash {
            return Err(broken("prev_hash does not match the previous event's hash"));
        }
        if e.hash != chain_hash(&e.prev_hash, e) {
            return Err(broken("the hash does not match the event's content"));
        }
        Ok(())
    }

    fn accept(&mut self, e: StoredEvent) {
        self.position = e.position;
        self.hash = e.hash.clone();
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(e.clone());
        }
        self.last = Some(e);
    }
}
