//! Loading the memory view in the background, so that the server answers at once: the view
//! starts empty and `Loading` (introspection asks the SQL view meanwhile), this thread reads a
//! snapshot of the SQL view at position P, builds the maps off any lock, and installs them; the
//! view replays the changes committed meanwhile after P (`MemoryView::install`).
//!
//! The handshake: the view is created at the SQL view's checkpoint C before the snapshot is
//! read (so P >= C), and from then on every change reaches it with its position, from the
//! writer and (on a shared log) from the follower, which reads the log from C. Changes at or
//! before P are in the snapshot and are dropped, the rest are replayed in order: a revocation
//! committed while loading can never be undone by the snapshot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backend::ReadStore;
use super::memory::{InstallError, LoadedTokens, MemoryView};
use super::StoreError;

/// Where the loader is about to go next (a test holds it there to write meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStep {
    /// About to read the snapshot.
    Snapshot,
    /// The snapshot was read and its maps built; about to install them.
    Install,
}

/// Called before each step.
pub type LoadHook = Arc<dyn Fn(LoadStep) + Send + Sync>;

/// Why one attempt to load failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the snapshot failed: {0}")]
    Read(#[from] StoreError),
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// Loads a `MemoryView::loading` view from the read side.
pub struct ViewLoader {
    memory: Arc<MemoryView>,
    reads: Arc<dyn ReadStore>,
    hook: Option<LoadHook>,
}

/// The longest pause between two failed attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl ViewLoader {
    pub fn new(memory: Arc<MemoryView>, reads: Arc<dyn ReadStore>) -> Self {
        Self { memory, reads, hook: None }
    }

    /// Calls `hook` before each step.
    pub fn with_hook(mut self, hook: LoadHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Loads on a thread of its own.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("view-loader".into()).spawn(move || self.run())
    }

    /// Loads until the view is ready. A failed attempt is retried after a pause: meanwhile
    /// the SQL view keeps answering, so nothing but speed is lost.
    pub fn run(&self) {
        let mut pause = Duration::from_millis(50);
        loop {
            match self.load_once() {
                Ok(()) | Err(LoadError::Install(InstallError::AlreadyLoaded)) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "loading the active-token view failed; retrying");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One attempt: read the snapshot, build the maps, install them.
    pub fn load_once(&self) -> Result<(), LoadError> {
        let started = Instant::now();
        self.step(LoadStep::Snapshot);
        let (position, rows) = self.reads.snapshot().map_err(StoreError::from)?;
        tracing::info!(position, rows = rows.len(), "read the active-token view snapshot");
        let loaded = LoadedTokens::build(position, rows);
        self.step(LoadStep::Install);
        let replayed = self.memory.install(loaded)?;
        let active_tokens = self.memory.token_count();
        tracing::info!(
            active_tokens,
            position,
            replayed,
            took_ms = started.elapsed().as_millis() as u64,
            "active-token view ready"
        );
        Ok(())
    }

    fn step(&self, step: LoadStep) {
        if let Some(hook) = &self.hook {
            hook(step);
        }
    }
}
