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

/// How long the writer waits for more commands when fewer are queued than its previous batch
/// held. The requests that batch answered are on their way back (a closed loop of clients);
/// a short wait lets a few more of them share the next commit and its sync. Bounded, so a
/// lone request waits at most this long, and only after a batch of more than one. The
/// environment variable `TOKEN_LEDGER_WRITER_LINGER_US` replaces it for measurements (`0`: the
/// writer never waits, as before issue 11's second round).
pub const LINGER: Duration = Duration::from_micros(150);

fn linger() -> Duration {
    std::env::var("TOKEN_LEDGER_WRITER_LINGER_US")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(LINGER, Duration::from_micros)
}

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

/// The next batch: `first`, whatever is queued behind it, and, while fewer than the previous
/// batch (`last`) are in, what arrives within `linger`.
fn gather(queue: &mpsc::Receiver<Job>, first: Job, last: usize, linger: Duration) -> Vec<Job> {
    let mut batch = vec![first];
    let drain = |batch: &mut Vec<Job>| {
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
    };
    drain(&mut batch);
    let wanted = last.min(MAX_BATCH);
    if batch.len() >= wanted {
        return batch;
    }
    let deadline = Instant::now() + linger;
    while batch.len() < wanted {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
        match queue.recv_timeout(left) {
            Ok(job) => {
                batch.push(job);
                drain(&mut batch);
            }
            Err(_) => break,
        }
    }
    batch
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
            let (mut last, linger) = (0, linger());
            while let Ok(first) = queue.recv() {
                let batch = gather(&queue, first, last, linger);
                last = batch.len();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ledger::Command;
    use crate::store::log::RequestMeta;

    fn job() -> Job {
        let envelope = Envelope { command: Command::PruneExpired { keep: 0 }, meta: RequestMeta::default() };
        Job { envelope, reply: oneshot::channel().0 }
    }

    #[test]
    fn a_batch_takes_what_is_queued_and_waits_for_nothing_after_a_batch_of_one() {
        let (jobs, queue) = mpsc::channel();
        for _ in 0..3 {
            jobs.send(job()).unwrap();
        }
        let started = Instant::now();
        assert_eq!(gather(&queue, job(), 1, Duration::from_secs(30)).len(), 4);
        assert_eq!(gather(&queue, job(), 0, Duration::from_secs(30)).len(), 1, "nothing queued, no wait");
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_short_batch_waits_for_as_many_as_the_last_one_held_and_no_longer() {
        let (jobs, queue) = mpsc::channel();
        let sender = std::thread::spawn(move || {
            for _ in 0..2 {
                std::thread::sleep(Duration::from_millis(20));
                jobs.send(job()).unwrap();
            }
            jobs
        });
        let started = Instant::now();
        assert_eq!(gather(&queue, job(), 3, Duration::from_secs(30)).len(), 3, "the two late jobs joined");
        assert!(started.elapsed() < Duration::from_secs(30), "it stopped waiting once three were in");
        let jobs = sender.join().unwrap();
        jobs.send(job()).unwrap();
        let batch = gather(&queue, job(), MAX_BATCH * 2, Duration::from_millis(5));
        assert_eq!(batch.len(), 2, "after the linger it goes with what it has");
    }
}
