//! Reading the archive as part of the log: the segments the database's archiving steps name,
//! each checked against its step and its manifest (positions, count, hashes, file digest) and
//! read in position order before the live events. A problem names the segment and, where it
//! can, the position.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use token_ledger::archive::segment::{self, Manifest};
use token_ledger::store::log::StoredEvent;
use token_ledger::store::steps::{ArchiveStep, StepKind};

use crate::source::Flow;
use crate::ReplayError;

/// What of the log lives outside the database: the segments to read, and where the history
/// begins (after the last dropped step, whose events are gone for good).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// The last dropped step: the log's readable history starts after it.
    pub dropped: Option<ArchiveStep>,
    /// The segment steps after it, oldest first.
    pub segments: Vec<ArchiveStep>,
    /// The last position any step accounts for (0 without steps).
    pub archived_through: i64,
}

impl Plan {
    /// The plan of a database's steps.
    pub fn of(steps: Vec<ArchiveStep>) -> Self {
        let archived_through = steps.last().map_or(0, |s| s.last_position);
        let cut = steps.iter().rposition(|s| s.kind == StepKind::Dropped);
        let dropped = cut.map(|i| steps[i].clone());
        let segments = steps.into_iter().skip(cut.map_or(0, |i| i + 1)).collect();
        Self { dropped, segments, archived_through }
    }
}

fn problem(step: &ArchiveStep, position: Option<i64>, reason: impl Into<String>) -> ReplayError {
    let (name, _) = segment::names(step.first_position, step.last_position);
    ReplayError::Segment { segment: step.segment.clone().unwrap_or(name), position, reason: reason.into() }
}

/// Calls `each` for every archived event after `after`, segment by segment.
pub fn walk_segments(
    dir: Option<&Path>,
    plan: &Plan,
    after: i64,
    each: &mut dyn FnMut(&StoredEvent) -> Result<Flow, ReplayError>,
) -> Result<Flow, ReplayError> {
    for step in plan.segments.iter().filter(|s| s.last_position > after) {
        let Some(dir) = dir else {
            return Err(problem(
                step,
                Some(step.first_position),
                "no archive folder to read it from (pass --archive DIR)",
            ));
        };
        if walk_one(dir, step, after, each)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Checks one segment against its step and manifest, then reads it.
fn walk_one(
    dir: &Path,
    step: &ArchiveStep,
    after: i64,
    each: &mut dyn FnMut(&StoredEvent) -> Result<Flow, ReplayError>,
) -> Result<Flow, ReplayError> {
    let at = Some(step.first_position);
    let manifest = segment::read_manifest(dir, step.first_position, step.last_position)
        .map_err(|e| problem(step, at, format!("its manifest is missing or unreadable: {e}")))?;
    check_manifest(step, &manifest)?;
    let path: PathBuf = dir.join(&manifest.file);
    let (sha, _) =
        segment::file_sha256(&path).map_err(|e| problem(step, at, format!("missing or unreadable: {e}")))?;
    if sha != manifest.sha256 {
        return Err(problem(
            step,
            at,
            format!("the file's SHA-256 is {sha}, its manifest and step recorded {}", manifest.sha256),
        ));
    }
    let events = segment::read_events(&path).map_err(|e| problem(step, at, e.to_string()))?;
    let (mut count, mut last_hash) = (0i64, None);
    for event in events {
        let event = event.map_err(|e| problem(step, None, e.to_string()))?;
        let position = event.position;
        if position < step.first_position || position > step.last_position {
            return Err(problem(
                step,
                Some(position),
                format!("holds position {position}, outside its range"),
            ));
        }
        count += 1;
        last_hash = Some(event.hash.clone());
        if position > after && each(&event)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    if count != step.event_count || last_hash.as_deref() != Some(&step.last_hash[..]) {
        return Err(problem(
            step,
            Some(step.last_position),
            format!(
                "holds {count} events ending in another hash than its step recorded ({} events)",
                step.event_count
            ),
        ));
    }
    Ok(ControlFlow::Continue(()))
}

/// The manifest must say what the database's step recorded.
fn check_manifest(step: &ArchiveStep, m: &Manifest) -> Result<(), ReplayError> {
    let recorded_sha = step.sha256.as_deref().map(hex::encode).unwrap_or_default();
    let agrees = m.first_position == step.first_position
        && m.last_position == step.last_position
        && m.count == step.event_count
        && m.prev_hash == hex::encode(&step.prev_hash)
        && m.last_hash == hex::encode(&step.last_hash)
        && m.sha256 == recorded_sha
        && Some(&m.file) == step.segment.as_ref();
    if agrees {
        Ok(())
    } else {
        Err(problem(
            step,
            Some(step.first_position),
            "its manifest differs from the archiving step the database recorded",
        ))
    }
}

/// The archive's size: segments and compressed bytes (from the manifests).
pub fn sizes(dir: Option<&Path>, plan: &Plan) -> (u64, u64) {
    let mut bytes = 0;
    for step in &plan.segments {
        if let Some(m) =
            dir.and_then(|d| segment::read_manifest(d, step.first_position, step.last_position).ok())
        {
            bytes += m.bytes;
        }
    }
    (plan.segments.len() as u64, bytes)
}
