//! Keeping a node's memory view in step with a log that several nodes append to: the view
//! follows the log by position (polled every few milliseconds, and caught up on demand), and
//! introspection passes a coalesced read barrier before it may answer `active`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::backend::ReadStore;
use super::memory::{Change, MemoryView};
use super::StoreError;

/// How many events one catch-up query reads.
const PAGE: usize = 1000;

/// Folds the log into the memory view from the position it has applied.
pub struct Follower {
    memory: Arc<MemoryView>,
    reads: Arc<dyn ReadStore>,
    /// One catch-up at a time: two would read the same events twice for nothing.
    running: Mutex<()>,
}

impl Follower {
    pub fn new(memory: Arc<MemoryView>, reads: Arc<dyn ReadStore>) -> Self {
        Self { memory, reads, running: Mutex::new(()) }
    }

    /// Reads and applies the events after the view's position until it reaches `target` (or
    /// the end of the log). Blocking. A reconnect is just the next call: the position is kept.
    pub fn catch_up_to(&self, target: i64) -> Result<i64, StoreError> {
        let _one = self.running.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let from = self.memory.applied();
            if from >= target {
                return Ok(from);
            }
            let page = self.reads.read_after(from, PAGE)?;
            let Some(end) = page.last().map(|e| e.position) else {
                return Ok(from);
            };
            let mut changes = Vec::new();
            for stored in &page {
                // Each change keeps its event's position: a page may end inside a commit, and a
                // view still loading must put every change on the right side of its snapshot.
                changes.extend(Change::of(&stored.decode()?).map(|c| (stored.position, c)));
            }
            // Only this thread and the writer move the view; the writer applies only batches
            // that start exactly where the view stands, so this cannot fail for long.
            self.memory.apply_events_at(from, end, changes);
        }
    }

    /// Catches up to the log's committed head; returns that head.
    pub fn sync(&self) -> Result<i64, StoreError> {
        let head = self.reads.head()?;
        self.catch_up_to(head)?;
        Ok(head)
    }

    /// Polls the log every `every` on a thread of its own, for as long as the process runs.
    pub fn spawn_poller(self: &Arc<Self>, every: Duration) -> std::io::Result<()> {
        let this = self.clone();
        std::thread::Builder::new().name("log-follower".into()).spawn(move || {
            let mut failing = false;
            loop {
                std::thread::sleep(every);
                match this.sync() {
                    Ok(_) if failing => {
                        tracing::info!("the log follower reached the database again");
                        failing = false;
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "the log follower cannot read the log; retrying");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        })?;
        Ok(())
    }
}

/// The state of the barrier's rounds: a round started after a request arrived proves freshness
/// for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rounds {
    started: u64,
    finished: u64,
    /// The outcome of round `finished`.
    ok: bool,
    running: bool,
}

/// A coalesced read barrier: before introspection answers from the memory view, one query for
/// the log's committed head (and a catch-up to it) serves every request that arrived before the
/// query was sent. Costs one round trip per batch of concurrent introspections.
pub struct ReadBarrier {
    follower: Arc<Follower>,
    rounds: Arc<watch::Sender<Rounds>>,
}

impl ReadBarrier {
    pub fn new(follower: Arc<Follower>) -> Self {
        let (rounds, _) = watch::channel(Rounds { started: 0, finished: 0, ok: true, running: false });
        Self { follower, rounds: Arc::new(rounds) }
    }

    /// Returns once the view has applied everything committed before this call, or an error if
    /// that cannot be proven (the database is unreachable): then nothing may be answered active.
    pub async fn wait(&self) -> Result<(), StoreError> {
        let mut seen = self.rounds.subscribe();
        // A round that starts after this point covers this request.
        let needed = self.rounds.borrow().started + 1;
        loop {
            let state = *seen.borrow_and_update();
            if state.finished >= needed {
                return if state.ok { Ok(()) } else { Err(unproven()) };
            }
            if !state.running && self.claim() {
                // On a task of its own: a request dropped mid-round must not leave it running.
                tokio::spawn(run_round(self.follower.clone(), self.rounds.clone()));
            }
            if seen.changed().await.is_err() {
                return Err(unproven());
            }
        }
    }

    /// Marks a round as running; false if another caller got there first.
    fn claim(&self) -> bool {
        self.rounds.send_if_modified(|r| {
            if r.running {
                return false;
            }
            r.running = true;
            r.started += 1;
            true
        })
    }
}

async fn run_round(follower: Arc<Follower>, rounds: Arc<watch::Sender<Rounds>>) {
    let number = rounds.borrow().started;
    let ok = match tokio::task::spawn_blocking(move || follower.sync()).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "introspection cannot prove its view current");
            false
        }
        Err(_) => false,
    };
    rounds.send_modify(|r| {
        r.running = false;
        r.finished = number;
        r.ok = ok;
    });
}

fn unproven() -> StoreError {
    StoreError::Unavailable("the log's head could not be read: the view may be behind".into())
}
