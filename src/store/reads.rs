//! The read side handed to request handlers: any backend's `ReadStore`, used off the async
//! executor's threads.

use std::sync::Arc;

use super::backend::ReadStore;
use super::lookup::{read_active_token, Half};
use super::memory::{MemoryView, TokenInfo};
use super::StoreError;
use crate::domain::types::Digest;

/// Shared read access to the store; cheap to clone.
#[derive(Clone)]
pub struct Readers(Arc<dyn ReadStore>);

impl Readers {
    pub fn new(store: Arc<dyn ReadStore>) -> Self {
        Self(store)
    }

    /// Runs `f` on the blocking thread pool.
    pub async fn with<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&dyn ReadStore) -> Result<R, StoreError> + Send + 'static,
    {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref())).await.map_err(|_| StoreError::WriterGone)?
    }

    /// The active token whose access or refresh digest is `d`: from the memory view, or while
    /// that is still loading from the SQL view (on the blocking pool).
    pub async fn active_token(
        &self,
        memory: &MemoryView,
        d: Digest,
    ) -> Result<Option<(Half, Arc<TokenInfo>)>, StoreError> {
        match memory.token(&d) {
            Ok(found) => Ok(found),
            Err(_loading) => self.with(move |r| read_active_token(r, &d)).await,
        }
    }

    /// The backend, for blocking callers.
    pub fn store(&self) -> &Arc<dyn ReadStore> {
        &self.0
    }
}
