//! A command that fails with a storage error in the middle of a batch: the batch runs without
//! savepoints until then, so the ledger rolls it back and runs it again with one savepoint per
//! command. The failing command leaves nothing; the others commit, in one chain.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use uuid::Uuid;

use super::{active_count, all_events, assert_one_chain, envelope, issue, register, Kind, Store};
use crate::store::backend::{ViewReads, WriteStore};
use crate::store::ledger::Reply;
use crate::store::records::{
    BResult, BackendError, ClientRow, CodeRow, RotatedRow, SessionRow, StoredEvent, Tail, TokenRow, UserRow,
    ViewOp,
};
use crate::store::StoreError;

/// A write store that refuses to insert any event of one stream, and counts savepoints.
struct Failing {
    inner: Box<dyn WriteStore>,
    stream: String,
    savepoints: Arc<AtomicUsize>,
}

impl ViewReads for Failing {
    fn token_by_stream(&mut self, stream: &str) -> BResult<Option<TokenRow>> {
        self.inner.token_by_stream(stream)
    }
    fn token_by_access(&mut self, digest: &[u8; 32]) -> BResult<Option<TokenRow>> {
        self.inner.token_by_access(digest)
    }
    fn token_by_refresh(&mut self, digest: &[u8; 32]) -> BResult<Option<TokenRow>> {
        self.inner.token_by_refresh(digest)
    }
    fn token_by_family(&mut self, family: Uuid) -> BResult<Option<TokenRow>> {
        self.inner.token_by_family(family)
    }
    fn tokens_of_client(&mut self, client: &str) -> BResult<Vec<TokenRow>> {
        self.inner.tokens_of_client(client)
    }
    fn rotated(&mut self, digest: &[u8; 32]) -> BResult<Option<RotatedRow>> {
        self.inner.rotated(digest)
    }
    fn client(&mut self, client: &str) -> BResult<Option<ClientRow>> {
        self.inner.client(client)
    }
    fn user(&mut self, key: &str) -> BResult<Option<UserRow>> {
        self.inner.user(key)
    }
    fn code(&mut self, digest: &[u8; 32]) -> BResult<Option<CodeRow>> {
        self.inner.code(digest)
    }
    fn session(&mut self, digest: &[u8; 32]) -> BResult<Option<SessionRow>> {
        self.inner.session(digest)
    }
}

impl WriteStore for Failing {
    fn begin(&mut self) -> BResult<Tail> {
        self.inner.begin()
    }
    fn stream_version(&mut self, stream: &str) -> BResult<i64> {
        self.inner.stream_version(stream)
    }
    fn insert_event(&mut self, event: &StoredEvent) -> BResult<()> {
        if event.stream == self.stream {
            return Err(BackendError::Other("the test refuses this stream".into()));
        }
        self.inner.insert_event(event)
    }
    fn project(&mut self, op: &ViewOp) -> BResult<()> {
        self.inner.project(op)
    }
    fn savepoint(&mut self) -> BResult<()> {
        self.savepoints.fetch_add(1, Ordering::Relaxed);
        self.inner.savepoint()
    }
    fn rollback_to_savepoint(&mut self) -> BResult<()> {
        self.inner.rollback_to_savepoint()
    }
    fn release_savepoint(&mut self) -> BResult<()> {
        self.inner.release_savepoint()
    }
    fn commit(&mut self, tail: Option<&Tail>) -> BResult<()> {
        self.inner.commit(tail)
    }
    fn rollback(&mut self) {
        self.inner.rollback()
    }
    fn checkpoint(&mut self) -> BResult<i64> {
        self.inner.checkpoint()
    }
    fn read_after(&mut self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
        self.inner.read_after(after, limit)
    }
    fn anchor(&mut self) -> BResult<(i64, Vec<u8>)> {
        self.inner.anchor()
    }
    fn set_anchor(&mut self, position: i64, hash: &[u8]) -> BResult<()> {
        self.inner.set_anchor(position, hash)
    }
    fn hash_at(&mut self, position: i64) -> BResult<Option<Vec<u8>>> {
        self.inner.hash_at(position)
    }
    fn unchanged_by_others(&self) -> bool {
        self.inner.unchanged_by_others()
    }
}

pub(super) fn a_command_failing_in_storage_leaves_the_rest_of_its_batch_committed(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let client = register(&mut s.ledger());
    let poisoned = match issue(&client, "poisoned") {
        crate::store::ledger::Command::Issue { key, .. } => key.stream(),
        other => panic!("{other:?}"),
    };
    let savepoints = Arc::new(AtomicUsize::new(0));
    let store = Failing { inner: s.writer(), stream: poisoned, savepoints: savepoints.clone() };
    let mut ledger = s.ledger().with_store(Box::new(store));

    let clean = ledger.execute_batch(vec![envelope(issue(&client, "a")), envelope(issue(&client, "b"))]);
    assert!(clean.iter().all(|r| matches!(r, Ok(Ok(Reply::Granted(_))))), "{clean:?}");
    assert_eq!(savepoints.load(Ordering::Relaxed), 0, "a batch that does not fail takes no savepoint");

    let results = ledger.execute_batch(vec![
        envelope(issue(&client, "c")),
        envelope(issue(&client, "poisoned")),
        envelope(issue(&client, "d")),
    ]);
    assert!(matches!(results[0], Ok(Ok(Reply::Granted(_)))), "{:?}", results[0]);
    assert!(matches!(results[1], Err(StoreError::Database(_))), "{:?}", results[1]);
    assert!(matches!(results[2], Ok(Ok(Reply::Granted(_)))), "{:?}", results[2]);
    assert_eq!(savepoints.load(Ordering::Relaxed), 3, "the batch ran again, a savepoint per command");

    let reads = s.reader();
    let events = all_events(reads.as_ref());
    assert_eq!(events.len(), 1 + 4, "the client, a, b, c and d: nothing of the failed command");
    assert_one_chain(&events);
    assert_eq!(active_count(reads.as_ref()), 4);
    assert_eq!(reads.checkpoint().unwrap(), 5);
}
