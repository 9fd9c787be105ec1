//! The storage specification: what every write through the ledger guarantees.

use rusqlite::Connection;

use super::ledger::{Command, CommandResult, Envelope, Ledger, Reply};
use super::log::{chain_hash, read_after, RequestMeta, StoredEvent, GENESIS};
use super::projection::{catch_up, checkpoint};
use super::{open_writer, views, StoreError};
use crate::config::Settings;
use crate::crypto::Sealer;
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, Subject, TokenKey};

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    ledger: Ledger,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let sealer = Sealer::load_or_create(&dir.path().join("token.key")).unwrap();
    let ledger = Ledger::new(
        open_writer(&path).unwrap(),
        sealer,
        Settings::default().policy(),
        crate::tokens::Generators::opaque(),
    );
    Fixture { _dir: dir, path, ledger }
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

fn all_events(conn: &Connection) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    read_after(conn, 0, |e| {
        out.push(e);
        Ok(())
    })
    .unwrap();
    out
}

fn active_count(conn: &Connection) -> i64 {
    conn.query_row("SELECT COUNT(*) FROM active_tokens", [], |r| r.get(0)).unwrap()
}

#[test]
fn every_event_chains_from_its_predecessor() {
    let mut f = fixture();
    let client = register(&mut f.ledger);
    f.ledger.execute(envelope(issue(&client, "a"))).unwrap().unwrap();
    let events = all_events(&Connection::open(&f.path).unwrap());
    assert_eq!(events.len(), 2);
    let mut prev = GENESIS.to_vec();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position, i as i64 + 1, "positions have no gaps");
        assert_eq!(e.prev_hash, prev);
        assert_eq!(e.hash, chain_hash(&prev, e).to_vec());
        assert_eq!(e.meta.request_id.as_deref(), Some("r1"));
        prev = e.hash.clone();
    }
}

#[test]
fn a_refused_command_in_a_batch_leaves_the_others_committed() {
    let mut f = fixture();
    let client = register(&mut f.ledger);
    let ghost = ClientId::parse("no-such-client").unwrap();
    let results = f.ledger.execute_batch(vec![
        envelope(issue(&client, "a")),
        envelope(issue(&ghost, "a")),
        envelope(issue(&client, "b")),
    ]);
    assert!(matches!(results[0], Ok(Ok(Reply::Granted(_)))));
    assert!(matches!(results[1], Ok(Err(_))));
    assert!(matches!(results[2], Ok(Ok(Reply::Granted(_)))));
    let conn = Connection::open(&f.path).unwrap();
    assert_eq!(active_count(&conn), 2);
    assert_eq!(checkpoint(&conn).unwrap(), 3);
}

#[test]
fn identical_commands_in_one_batch_share_one_token() {
    let mut f = fixture();
    let client = register(&mut f.ledger);
    let results = f.ledger.execute_batch((0..10).map(|_| envelope(issue(&client, "x"))).collect());
    let tokens: std::collections::HashSet<String> = results
        .into_iter()
        .map(|r| match r.unwrap().unwrap() {
            Reply::Granted(g) => g.access_token,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(active_count(&Connection::open(&f.path).unwrap()), 1);
}

#[test]
fn views_behind_their_checkpoint_catch_up_from_the_log() {
    let mut f = fixture();
    let client = register(&mut f.ledger);
    f.ledger.execute(envelope(issue(&client, "a"))).unwrap().unwrap();
    f.ledger.execute(envelope(issue(&client, "b"))).unwrap().unwrap();
    let mut conn = Connection::open(&f.path).unwrap();
    let before = views::active_of_client(&conn, &client).unwrap();
    conn.execute_batch(
        "DELETE FROM active_tokens; DELETE FROM clients; UPDATE checkpoints SET position = 0;",
    )
    .unwrap();
    assert_eq!(catch_up(&mut conn).unwrap(), 3);
    assert_eq!(views::active_of_client(&conn, &client).unwrap(), before);
    assert!(views::client(&conn, &client).unwrap().is_some());
    assert_eq!(catch_up(&mut conn).unwrap(), 0, "nothing left to apply");
}

#[test]
fn a_duplicate_stream_version_is_a_typed_conflict() {
    let mut f = fixture();
    register(&mut f.ledger);
    let conn = Connection::open(&f.path).unwrap();
    let err = conn
        .execute(
            "INSERT INTO events (position, event_id, stream, version, event_type, schema_version,
             payload, recorded_at, prev_hash, hash)
             SELECT 99, 'dup', stream, version, event_type, 1, payload, recorded_at, hash, hash
             FROM events WHERE position = 1",
            [],
        )
        .unwrap_err();
    assert!(matches!(StoreError::from(err), StoreError::Conflict(_)));
}

#[test]
fn the_memory_view_stays_equal_to_the_sql_view_through_issues_refreshes_and_revocations() {
    let Fixture { _dir, path, ledger } = fixture();
    let memory = std::sync::Arc::new(super::memory::MemoryView::default());
    let mut ledger = ledger.with_memory(memory.clone());
    let client = register(&mut ledger);
    let granted = |r: CommandResult| match r.unwrap().unwrap() {
        Reply::Granted(g) => g,
        other => panic!("{other:?}"),
    };
    let a = granted(ledger.execute(envelope(issue(&client, "a"))));
    granted(ledger.execute(envelope(issue(&client, "b"))));
    ledger
        .execute(envelope(Command::Revoke {
            client: client.clone(),
            digest: Digest::of(a.access_token.as_bytes()),
        }))
        .unwrap()
        .unwrap();
    let batch = ledger.execute_batch(vec![envelope(issue(&client, "c")), envelope(issue(&client, "c"))]);
    assert!(batch.iter().all(|r| matches!(r, Ok(Ok(Reply::Granted(_))))));
    let loaded = super::memory::MemoryView::load(&Connection::open(&path).unwrap()).unwrap();
    assert_eq!(memory.snapshot(), loaded.snapshot());
    assert_eq!(memory.token_count(), 2);
    assert!(memory.token(&Digest::of(a.access_token.as_bytes())).is_none());
}
