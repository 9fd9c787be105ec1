//! The single writer: one thread owns the write connection and commits whatever commands are
//! waiting together (group commit). A reply is sent only after the commit returned, so every
//! answer the HTTP layer gives is already durable.

use std::sync::mpsc;
use std::thread::JoinHandle;

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
}

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
    pub fn spawn(mut ledger: Ledger) -> std::io::Result<(Writer, WriterThread)> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new().name("ledger-writer".into()).spawn(move || {
            while let Ok(first) = queue.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let (envelopes, replies): (Vec<_>, Vec<_>) =
                    batch.into_iter().map(|j| (j.envelope, j.reply)).unzip();
                for (result, reply) in ledger.execute_batch(envelopes).into_iter().zip(replies) {
                    // The requester may have gone away; its events are committed all the same.
                    let _ = reply.send(result);
                }
            }
            // Every handle is gone: the server is stopping (SQLite: leave a self-contained file).
            ledger.close();
        })?;
        Ok((Writer { jobs }, WriterThread(thread)))
    }

    /// Sends a command and waits until it is committed (or refused).
    pub async fn execute(&self, envelope: Envelope) -> CommandResult {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { envelope, reply }).map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}
