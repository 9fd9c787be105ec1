//! The storage specification: what every write through the ledger guarantees, on every backend.
//! As pyeventsourcing's recorder tests: each test is written once over the seam and run once per
//! backend (`mod sqlite`, `mod postgres` at the end). The PostgreSQL runs use a throwaway cluster
//! (`tests/support/pg_cluster.rs`) and skip, saying so, where PostgreSQL is missing (never under
//! `CI=true`).

#[path = "conformance/archive.rs"]
mod archive;
mod cleanup;
#[path = "conformance/code_flow.rs"]
mod code_flow;
mod failing;
#[path = "conformance/lazy_view.rs"]
mod lazy_view;
#[path = "conformance/props.rs"]
mod props;

use std::sync::Arc;

use archive::{
    a_removal_interrupted_after_the_step_was_recorded_is_completed_by_the_next_round,
    a_step_that_does_not_continue_the_last_is_refused,
    archiving_moves_the_prefix_out_and_the_ledger_continues_chain_positions_and_versions,
    dropping_verifies_then_keeps_only_the_step_as_the_chain_anchor,
    only_young_events_stay_and_deleting_them_by_hand_is_still_refused,
};
use cleanup::cleanup_removes_only_rows_that_expired_more_than_keep_ago_and_a_refold_agrees;
use code_flow::{
    a_replayed_code_revokes_its_token_and_logout_denial_and_deletion_clear_the_views,
    codes_sessions_and_consents_are_written_read_and_refolded,
};
use failing::a_command_failing_in_storage_leaves_the_rest_of_its_batch_committed;
use lazy_view::a_view_loaded_while_the_ledger_writes_ends_equal_to_a_fresh_load;

use super::backend::{ReadStore, WriteStore};
use super::ledger::{Command, CommandResult, Envelope, Ledger, Reply};
use super::log::{chain_hash, RequestMeta, StoredEvent, GENESIS};
use super::memory::MemoryView;
use super::postgres::{PgOptions, PgReads, PgStore};
use super::sqlite::{SqliteReads, SqliteStore};
use super::{fold, log, lookup, BackendError, StoreError};
use crate::config::Settings;
use crate::crypto::Sealer;
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, Subject, TokenKey};

#[path = "../../tests/support/pg_cluster.rs"]
pub(crate) mod pg_cluster;

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

/// One empty store of a backend: open as many writers and readers on it as a test wants.
pub(crate) struct Store {
    kind: Kind,
    dir: tempfile::TempDir,
    /// The PostgreSQL connection string (unused for SQLite).
    url: String,
}

impl Store {
    /// An empty store, or `None` when the backend is missing here (the reason was printed).
    pub(crate) fn new(kind: Kind) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let url = match kind {
            Kind::Sqlite => String::new(),
            Kind::Postgres => pg_cluster::cluster()?.create_database(),
        };
        Some(Self { kind, dir, url })
    }

    fn options(&self) -> PgOptions {
        PgOptions::parse(&self.url, None, 4).unwrap()
    }

    /// A new write connection (migrating the store on first use).
    pub(crate) fn writer(&self) -> Box<dyn WriteStore> {
        match self.kind {
            Kind::Sqlite => Box::new(SqliteStore::open(&self.dir.path().join("ledger.db")).unwrap()),
            Kind::Postgres => Box::new(PgStore::open(self.options()).unwrap()),
        }
    }

    /// A new write connection for the archiver.
    pub(crate) fn archive_writer(&self) -> Box<dyn super::steps::ArchiveStore> {
        match self.kind {
            Kind::Sqlite => Box::new(SqliteStore::open(&self.dir.path().join("ledger.db")).unwrap()),
            Kind::Postgres => Box::new(PgStore::open(self.options()).unwrap()),
        }
    }

    /// Tries to rewrite and to delete the whole log by hand; whether each was refused.
    fn tamper(&self) -> [bool; 2] {
        match self.kind {
            Kind::Sqlite => {
                let conn = rusqlite::Connection::open(self.dir.path().join("ledger.db")).unwrap();
                super::sqlite::log::tamper_for_tests(&conn)
            }
            Kind::Postgres => super::postgres::rows::tamper_for_tests(&mut self.options().connect().unwrap()),
        }
    }

    pub(crate) fn reader(&self) -> Arc<dyn ReadStore> {
        match self.kind {
            Kind::Sqlite => Arc::new(SqliteReads::new(self.dir.path().join("ledger.db"))),
            Kind::Postgres => Arc::new(PgReads::new(self.options())),
        }
    }

    /// A ledger with the default policy on a new write connection.
    fn ledger(&self) -> Ledger {
        let sealer = Sealer::load_or_create(&self.dir.path().join("token.key")).unwrap();
        Ledger::new(self.writer(), sealer, Settings::default().policy(), crate::tokens::Generators::opaque())
    }

    /// Empties the views and their checkpoint, as a damaged or restored database might be.
    fn forget_views(&self) {
        match self.kind {
            Kind::Sqlite => {
                let conn = rusqlite::Connection::open(self.dir.path().join("ledger.db")).unwrap();
                super::sqlite::projection::forget_views(&conn).unwrap();
            }
            Kind::Postgres => {
                super::postgres::rows::forget_views(&mut self.options().connect().unwrap()).unwrap()
            }
        }
    }
}

fn envelope(command: Command) -> Envelope {
    Envelope { command, meta: RequestMeta { request_id: Some("r1".into()), ..RequestMeta::default() } }
}

fn register(ledger: &mut Ledger) -> ClientId {
    let command = Command::RegisterClient {
        access_token_type: None,
        name: "app".into(),
        grant_types: GrantType::ALL.to_vec(),
        oauth: Default::default(),
    };
    match ledger.execute(envelope(command)).unwrap().unwrap() {
        Reply::Client(c) => c.client_id,
        other => panic!("{other:?}"),
    }
}

fn issue(client: &ClientId, scopes: &str) -> Command {
    let key = TokenKey {
        client: client.clone(),
        subject: Subject::Application,
        scopes: ScopeSet::parse(scopes).unwrap(),
    };
    Command::Issue { key, grant_type: GrantType::ClientCredentials }
}

fn granted(r: CommandResult) -> super::ledger::Granted {
    match r.unwrap().unwrap() {
        Reply::Granted(g) => g,
        other => panic!("{other:?}"),
    }
}

fn all_events(reads: &dyn ReadStore) -> Vec<StoredEvent> {
    reads.read_after(0, 1_000_000).unwrap()
}

fn active_count(reads: &dyn ReadStore) -> usize {
    reads.snapshot().unwrap().1.len()
}

/// Positions 1..=n without gaps, each event chained from its predecessor.
fn assert_one_chain(events: &[StoredEvent]) {
    let mut prev = GENESIS.to_vec();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position, i as i64 + 1, "positions have no gaps");
        assert_eq!(e.prev_hash, prev, "position {} chains from its predecessor", e.position);
        assert_eq!(e.hash, chain_hash(&prev, e).to_vec());
        prev = e.hash.clone();
    }
}

fn every_event_chains_from_its_predecessor(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let mut ledger = s.ledger();
    let client = register(&mut ledger);
    ledger.execute(envelope(issue(&client, "a"))).unwrap().unwrap();
    let events = all_events(s.reader().as_ref());
    assert_eq!(events.len(), 2);
    assert_one_chain(&events);
    assert!(events.iter().all(|e| e.meta.request_id.as_deref() == Some("r1")));
}

fn a_refused_command_in_a_batch_leaves_the_others_committed(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let mut ledger = s.ledger();
    let client = register(&mut ledger);
    let ghost = ClientId::parse("no-such-client").unwrap();
    let results = ledger.execute_batch(vec![
        envelope(issue(&client, "a")),
        envelope(issue(&ghost, "a")),
        envelope(issue(&client, "b")),
    ]);
    assert!(matches!(results[0], Ok(Ok(Reply::Granted(_)))));
    assert!(matches!(results[1], Ok(Err(_))));
    assert!(matches!(results[2], Ok(Ok(Reply::Granted(_)))));
    let reads = s.reader();
    assert_eq!(active_count(reads.as_ref()), 2);
    assert_eq!(reads.checkpoint().unwrap(), 3);
    assert_eq!(reads.head().unwrap(), 3);
}

fn identical_commands_in_one_batch_share_one_token(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let mut ledger = s.ledger();
    let client = register(&mut ledger);
    let results = ledger.execute_batch((0..10).map(|_| envelope(issue(&client, "x"))).collect());
    let tokens: std::collections::HashSet<String> =
        results.into_iter().map(|r| granted(r).access_token).collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(active_count(s.reader().as_ref()), 1);
}

fn views_behind_their_checkpoint_catch_up_from_the_log(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let mut ledger = s.ledger();
    let client = register(&mut ledger);
    ledger.execute(envelope(issue(&client, "a"))).unwrap().unwrap();
    ledger.execute(envelope(issue(&client, "b"))).unwrap().unwrap();
    let before = lookup::active_of_client(ledger.store(), &client).unwrap();
    drop(ledger);
    s.forget_views();
    let mut store = s.writer();
    assert_eq!(fold::catch_up(store.as_mut()).unwrap(), 3);
    assert_eq!(lookup::active_of_client(store.as_mut(), &client).unwrap(), before);
    assert!(lookup::client(store.as_mut(), &client).unwrap().is_some());
    assert_eq!(fold::catch_up(store.as_mut()).unwrap(), 0, "nothing left to apply");
}

fn a_duplicate_stream_version_is_a_typed_conflict(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    register(&mut s.ledger());
    let first = all_events(s.reader().as_ref()).remove(0);
    let mut store = s.writer();
    let tail = store.begin().unwrap();
    let duplicate = StoredEvent { position: tail.position + 1, event_id: "dup".into(), ..first };
    let err = store.insert_event(&duplicate).unwrap_err();
    store.rollback();
    assert!(matches!(StoreError::from(err), StoreError::Conflict(_)));
}

fn the_memory_view_stays_equal_to_the_sql_view_through_issues_refreshes_and_revocations(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let memory = Arc::new(MemoryView::default());
    let mut ledger = s.ledger().with_memory(memory.clone());
    let client = register(&mut ledger);
    let a = granted(ledger.execute(envelope(issue(&client, "a"))));
    granted(ledger.execute(envelope(issue(&client, "b"))));
    let revoke = Command::Revoke { client: client.clone(), digest: Digest::of(a.access_token.as_bytes()) };
    ledger.execute(envelope(revoke)).unwrap().unwrap();
    let batch = ledger.execute_batch(vec![envelope(issue(&client, "c")), envelope(issue(&client, "c"))]);
    assert!(batch.iter().all(|r| matches!(r, Ok(Ok(Reply::Granted(_))))));
    let (at, rows) = s.reader().snapshot().unwrap();
    let loaded = MemoryView::load(at, rows);
    assert_eq!(memory.snapshot(), loaded.snapshot());
    assert_eq!(memory.token_count(), 2);
    assert!(matches!(memory.token(&Digest::of(a.access_token.as_bytes())), Ok(None)));
}

/// Two writers on one store (two nodes, or the CLI beside the server) race for one key: they
/// serialise on the log's write lock, so one chain, one order and one active token remain.
fn concurrent_writers_keep_one_chain_and_one_active_token_per_key(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let client = register(&mut s.ledger());
    let s = Arc::new(s);
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let (s, client) = (s.clone(), client.clone());
            std::thread::spawn(move || {
                let mut ledger = s.ledger();
                (0..15)
                    .map(|_| granted(ledger.execute(envelope(issue(&client, "x")))).access_token)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let tokens: std::collections::HashSet<String> =
        threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    assert_eq!(tokens.len(), 1, "renewal off: every writer hands back the one active token");
    let reads = s.reader();
    assert_eq!(active_count(reads.as_ref()), 1);
    let events = all_events(reads.as_ref());
    assert_eq!(events.len(), 2 + 44, "one issue, then 44 hand-backs, after the registration");
    assert_one_chain(&events);
    let mut store = s.writer();
    assert_eq!(log::verify_since_anchor(store.as_mut()).unwrap(), Ok(46));
}

/// Writers taking turns (the server's writer and a CLI command): each batch continues the chain
/// the other one committed, although a writer remembers its own tail between batches.
fn writers_taking_turns_continue_each_others_chain(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let (mut a, mut b) = (s.ledger(), s.ledger());
    let client = register(&mut a);
    for round in 0..4 {
        granted(a.execute(envelope(issue(&client, &format!("a{round}")))));
        granted(a.execute(envelope(issue(&client, &format!("a{round}x")))));
        granted(b.execute(envelope(issue(&client, &format!("b{round}")))));
    }
    let events = all_events(s.reader().as_ref());
    assert_eq!(events.len(), 1 + 12);
    assert_one_chain(&events);
    let mut store = s.writer();
    assert_eq!(log::verify_since_anchor(store.as_mut()).unwrap(), Ok(13));
}

/// A node's memory view that another writer appended behind catches up from the log by
/// position, revocations included.
fn a_follower_applies_what_another_writer_appended(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let mut other = s.ledger();
    let client = register(&mut other);
    let reads = s.reader();
    let (at, rows) = reads.snapshot().unwrap();
    let memory = Arc::new(MemoryView::load(at, rows));
    let follower = super::follow::Follower::new(memory.clone(), reads.clone());
    let a = granted(other.execute(envelope(issue(&client, "a"))));
    let b = granted(other.execute(envelope(issue(&client, "b"))));
    let revoke = Command::Revoke { client: client.clone(), digest: Digest::of(a.access_token.as_bytes()) };
    other.execute(envelope(revoke)).unwrap().unwrap();
    assert_eq!(memory.token_count(), 0, "nothing applied before the follower runs");
    assert_eq!(follower.sync().unwrap(), reads.head().unwrap());
    assert_eq!(memory.applied(), reads.head().unwrap());
    assert!(
        matches!(memory.token(&Digest::of(a.access_token.as_bytes())), Ok(None)),
        "the revocation was applied"
    );
    assert!(matches!(memory.token(&Digest::of(b.access_token.as_bytes())), Ok(Some(_))));
    let (at, rows) = reads.snapshot().unwrap();
    assert_eq!(memory.snapshot(), MemoryView::load(at, rows).snapshot());
}

/// The log refuses to be rewritten by the database itself, on every backend.
fn the_log_refuses_update_and_delete(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    register(&mut s.ledger());
    let refused = match kind {
        Kind::Sqlite => {
            let conn = rusqlite::Connection::open(s.dir.path().join("ledger.db")).unwrap();
            super::sqlite::log::tamper_for_tests(&conn)
        }
        Kind::Postgres => super::postgres::rows::tamper_for_tests(&mut s.options().connect().unwrap()),
    };
    assert_eq!(refused, [true, true], "UPDATE and DELETE on the log are both refused");
    assert_eq!(all_events(s.reader().as_ref()).len(), 1);
}

fn an_unreachable_database_is_unavailable_not_an_internal_error(kind: Kind) {
    let reads: Box<dyn ReadStore> = match kind {
        Kind::Sqlite => Box::new(SqliteReads::new("/nonexistent-folder/ledger.db".into())),
        Kind::Postgres => {
            let url = "host=/nonexistent-socket-folder port=1 user=x dbname=x";
            Box::new(PgReads::new(PgOptions::parse(url, None, 1).unwrap()))
        }
    };
    assert!(matches!(reads.head(), Err(BackendError::Unavailable(_))));
    assert!(matches!(reads.client("c").map_err(StoreError::from), Err(StoreError::Unavailable(_))));
}

/// Every test above, run once per backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $test() { super::$test(super::Kind::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $test() { super::$test(super::Kind::Postgres) } )*
        }
    };
}

conformance!(
    every_event_chains_from_its_predecessor,
    a_refused_command_in_a_batch_leaves_the_others_committed,
    a_command_failing_in_storage_leaves_the_rest_of_its_batch_committed,
    identical_commands_in_one_batch_share_one_token,
    views_behind_their_checkpoint_catch_up_from_the_log,
    a_duplicate_stream_version_is_a_typed_conflict,
    the_memory_view_stays_equal_to_the_sql_view_through_issues_refreshes_and_revocations,
    concurrent_writers_keep_one_chain_and_one_active_token_per_key,
    writers_taking_turns_continue_each_others_chain,
    a_follower_applies_what_another_writer_appended,
    the_log_refuses_update_and_delete,
    an_unreachable_database_is_unavailable_not_an_internal_error,
    codes_sessions_and_consents_are_written_read_and_refolded,
    a_replayed_code_revokes_its_token_and_logout_denial_and_deletion_clear_the_views,
    archiving_moves_the_prefix_out_and_the_ledger_continues_chain_positions_and_versions,
    dropping_verifies_then_keeps_only_the_step_as_the_chain_anchor,
    only_young_events_stay_and_deleting_them_by_hand_is_still_refused,
    a_step_that_does_not_continue_the_last_is_refused,
    a_removal_interrupted_after_the_step_was_recorded_is_completed_by_the_next_round,
    cleanup_removes_only_rows_that_expired_more_than_keep_ago_and_a_refold_agrees,
    a_view_loaded_while_the_ledger_writes_ends_equal_to_a_fresh_load,
);
