//! The log's lifecycle (issue 9): finished history leaves the live database into sealed archive
//! segments (or, with `retain_access_tokens_for_auditing = false`, is verified and dropped),
//! while the live log continues the same hash chain. `line` is the exported event format,
//! `segment` the files, `archiver` the steps, and `spawn` runs it in the background.

pub mod archiver;
pub mod line;
pub mod segment;
pub mod snapshot;

use std::time::Duration;

pub use archiver::{run_round, ArchiveError, ArchivePolicy, RoundReport};

use crate::store::clock::Clock;
use crate::store::steps::ArchiveStore;

/// A temporary file in the archive folder older than this is left by an interrupted step (a
/// step writes for seconds; the margin covers a slow disk and another node's write).
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// Runs a round now and then every `interval` on a thread of its own, with its own write
/// connection, until the process ends. Each step's transactions are short (one record, then
/// removals of `remove_batch` events), so requests never wait long for the write lock; a
/// process killed mid-round leaves a state the next round completes (its
/// temporary files are swept by a later round once stale).
pub fn spawn(
    mut store: Box<dyn ArchiveStore>,
    policy: ArchivePolicy,
    interval: Duration,
    clock: Clock,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("ledger-archiver".into()).spawn(move || loop {
        let started = std::time::Instant::now();
        match segment::sweep_temporaries(&policy.dir, STALE_TEMPORARY) {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed temporary files an interrupted archiving step left"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep the archive folder's temporary files"),
        }
        match run_round(store.as_mut(), &policy, clock()) {
            Ok(r) if r.steps > 0 || r.removed > 0 => tracing::info!(
                steps = r.steps,
                archived = r.archived,
                removed = r.removed,
                bytes = r.bytes,
                retained = policy.retain,
                took_ms = started.elapsed().as_millis() as u64,
                "archived finished history out of the live database"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "archiving failed; the next round tries again"),
        }
        std::thread::sleep(interval);
    })?;
    Ok(())
}
