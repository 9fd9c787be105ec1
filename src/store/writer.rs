//! The single writer: one thread owns the write connection and commits whatever commands are
//! waiting together (group commit). A reply is sent only after the commit returned, so every
//! answer the HTTP layer gives is already durable.

use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::ledger::{CommandResult, Envelope, Ledger};
use super::StoreError;

/// Most commands committed in one transaction: bounds the latency a batch adds.
pub const MAX_BATCH: usize = 256;

struct Job {
    envelope: Envelope,
    reply: oneshot::Sender<CommandResult>,
}

/// A handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
    observer: Arc<dyn WriterObserver>,
}

/// Hooks for metrics and readiness; each is called on the hot path, so keep them to atomics.
pub trait WriterObserver: Send + Sync {
    /// A command was queued for the writer.
    fn queued(&self) {}
    /// The writer took `count` commands off the queue.
    fn dequeued(&self, _count: usize) {}
    /// A batch of `size` commands ran and its commit returned after `took`; `ok` is false when
    /// the database refused it (nothing of it was committed).
    fn committed(&self, _size: usize, _took: Duration, _ok: bool) {}
}

struct NoObserver;
impl WriterObserver for NoObserver {}

/// Joins the writer thread once every `Writer` handle is gone.
pub struct WriterThread(JoinHandle<()>);

impl WriterThread {
    /// Waits for the writer to finish the commands already queued.
    pub fn join(self) {
        if self.0.join().is_err() {
            tracing::error!("the writer thread panicked");
        }
    }
}

impl Writer {
    /// Starts the writer thread with the ledger it owns.
    pub fn spawn(ledger: Ledger) -> std::io::Result<(Writer, WriterThread)> {
        Self::spawn_observed(ledger, Arc::new(NoObserver))
    }

    /// Starts the writer thread, reporting its queue and batches to `observer`.
    pub fn spawn_observed(
        mut ledger: Ledger,
        observer: Arc<dyn WriterObserver>,
    ) -> std::io::Result<(Writer, WriterThread)> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let watcher = observer.clone();
        let thread = std::thread::Builder::new().name("ledger-writer".into()).spawn(move || {
            while let Ok(first) = queue.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                watcher.dequeued(batch.len());
                let (envelopes, replies): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|j| (j.envelope, j.reply)).unzip();
                let (size, started) = (envelopes.len(), Instant::now());
                let results = ledger.execute_batch(envelopes);
                watcher.committed(size, started.elapsed(), !results.iter().any(|r| r.is_err()));
                for (result, reply) in results.into_iter().zip(replies) {
                    // The requester may have gone away; its events are committed all the same.
                    let _ = reply.send(result);
                }
            }
            // Every handle is gone: the server is stopping (SQLite: leave a self-contained file).
            ledger.close();
        })?;
        Ok((Writer { jobs, observer }, WriterThread(thread)))
    }

    /// Sends a command and waits until it is committed (or refused).
    pub async fn execute(&self, envelope: Envelope) -> CommandResult {
        let (reply, answer) = oneshot::channel();
        // Counted before the send, so the writer never takes off the queue more than was put on.
        self.observer.queued();
        if self.jobs.send(Job { envelope, reply }).is_err() {
            self.observer.dequeued(1);
            return Err(StoreError::WriterGone);
        }
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}
