//! Token cleanup (WSO2's `[oauth.token_cleanup]`): every `[ledger.archive] interval`, rows of the
//! views that expired more than `keep_in_database` ago leave them through one `ExpiredPruned`
//! event, so the active-token view, the memory view and every rebuild agree on what is gone.
//! The archiver (src/archive) bounds the log; this bounds the views.

use std::time::Duration;

use crate::domain::events::Millis;
use crate::domain::grant::Policy;
use crate::store::ledger::{system_clock, Command, Envelope};
use crate::store::log::RequestMeta;
use crate::store::reads::Readers;
use crate::store::writer::Writer;

/// What the cleanup task needs.
pub struct Cleanup {
    pub writer: Writer,
    pub readers: Readers,
    pub policy: Policy,
    /// Rows that expired less than this long ago stay (the same margin as the log's).
    pub keep: Millis,
    pub interval: Duration,
}

impl Cleanup {
    /// Runs until the writer is gone. A round appends an event only when a row would leave, so an
    /// idle server's log does not grow.
    pub fn spawn(self) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(self.interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if !self.round().await {
                    return;
                }
            }
        });
    }

    /// One round; false once the writer has stopped (shutdown).
    async fn round(&self) -> bool {
        let cutoffs = self.policy.cleanup_cutoffs(system_clock(), self.keep);
        let due = self.readers.with(move |store| Ok(store.prunable(&cutoffs)?)).await;
        match due {
            Ok(false) => return true,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(error = %e, "token cleanup could not read the views; retrying next round");
                return true;
            }
        }
        let command = Command::PruneExpired { keep: self.keep };
        match self.writer.execute(Envelope { command, meta: RequestMeta::default() }).await {
            Ok(_) => true,
            Err(crate::store::StoreError::WriterGone) => false,
            Err(e) => {
                tracing::warn!(error = %e, "token cleanup failed; retrying next round");
                true
            }
        }
    }
}
