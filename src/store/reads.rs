//! The read side handed to request handlers: any backend's `ReadStore`, used off the async
//! executor's threads.

use std::sync::Arc;

use super::backend::ReadStore;
use super::StoreError;

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

    /// The backend, for blocking callers.
    pub fn store(&self) -> &Arc<dyn ReadStore> {
        &self.0
    }
}
