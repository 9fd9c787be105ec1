//! A memory view loaded in the background while the ledger writes (issue 9), on every backend:
//! whatever is committed before the loader's snapshot, between the snapshot and the install,
//! and after it, the view ends equal to a fresh load, and a revocation acknowledged while it
//! loaded is never undone. The loader is held at each step by its test hook.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::{envelope, granted, issue, register, Kind, Store};
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, Subject, TokenKey, Username};
use crate::store::clock::SimulatedClock;
use crate::store::follow::Follower;
use crate::store::ledger::{Command, Ledger};
use crate::store::loader::{LoadHook, LoadStep, ViewLoader};
use crate::store::lookup::read_active_token;
use crate::store::memory::{Loading, MemoryView};

const HOUR: i64 = 3_600_000;

fn password_grant(username: &str, client: &ClientId) -> Command {
    let key = TokenKey {
        client: client.clone(),
        subject: Subject::User(Username::parse(username).unwrap()),
        scopes: ScopeSet::parse("profile").unwrap(),
    };
    Command::Issue { key, grant_type: GrantType::Password }
}

/// A hook that reports each step and waits for the test's go-ahead.
fn held() -> (LoadHook, Receiver<LoadStep>, Sender<()>) {
    let (reached, steps) = channel();
    let (go, wait) = channel::<()>();
    let wait = Mutex::new(wait);
    let hook: LoadHook = Arc::new(move |step| {
        reached.send(step).unwrap();
        wait.lock().unwrap().recv().unwrap();
    });
    (hook, steps, go)
}

fn revoke(ledger: &mut Ledger, client: &ClientId, token: &str) {
    let command = Command::Revoke { client: client.clone(), digest: Digest::of(token.as_bytes()) };
    ledger.execute(envelope(command)).unwrap().unwrap();
}

fn active(memory: &MemoryView, token: &str) -> bool {
    matches!(memory.token(&Digest::of(token.as_bytes())), Ok(Some(_)))
}

pub(super) fn a_view_loaded_while_the_ledger_writes_ends_equal_to_a_fresh_load(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let clock = SimulatedClock::starting_at(1_700_000_000_000);
    // Before the server starts: an application token that will expire, a user token, two more.
    let mut before = s.ledger().with_clock(clock.clock());
    let client = register(&mut before);
    let expiring = granted(before.execute(envelope(issue(&client, "a"))));
    let user = granted(before.execute(envelope(password_grant("alice", &client))));
    let b = granted(before.execute(envelope(issue(&client, "b"))));
    let c = granted(before.execute(envelope(issue(&client, "c"))));
    drop(before);
    clock.advance(2 * HOUR);

    // The server's start-up: a loading view at the checkpoint, the writer (and on a shared log
    // the follower) handing it every change, the loader in the background.
    let reads = s.reader();
    let memory = Arc::new(MemoryView::loading(reads.checkpoint().unwrap()));
    let mut ledger = s.ledger().with_clock(clock.clock()).with_memory(memory.clone());
    let follower = match kind {
        Kind::Sqlite => None,
        Kind::Postgres => Some(Arc::new(Follower::new(memory.clone(), reads.clone()))),
    };
    if let Some(f) = &follower {
        ledger = ledger.with_follower(f.clone());
    }
    let mut other = s.ledger().with_clock(clock.clock());
    let (hook, steps, go) = held();
    let loader = ViewLoader::new(memory.clone(), reads.clone()).with_hook(hook).spawn().unwrap();

    // Before the snapshot is read.
    assert_eq!(steps.recv().unwrap(), LoadStep::Snapshot);
    revoke(&mut ledger, &client, &b.access_token);
    let d = granted(ledger.execute(envelope(issue(&client, "d"))));
    go.send(()).unwrap();

    // The snapshot is read and its maps built: every write now must be replayed over it.
    assert_eq!(steps.recv().unwrap(), LoadStep::Install);
    assert_eq!(memory.token(&Digest::of(c.access_token.as_bytes())), Err(Loading));
    revoke(&mut ledger, &client, &c.access_token);
    let sql = read_active_token(reads.as_ref(), &Digest::of(c.access_token.as_bytes())).unwrap();
    assert!(sql.is_none(), "the SQL view answers while loading, and it moved with the revocation");
    ledger.execute(envelope(Command::PruneExpired { keep: 30 * 60_000 })).unwrap().unwrap();
    let refresh = user.refresh_token.clone().unwrap();
    let rotate = Command::Refresh {
        client: client.clone(),
        refresh_digest: Digest::of(refresh.as_bytes()),
        scopes: None,
    };
    let rotated = granted(ledger.execute(envelope(rotate)));
    let e = granted(ledger.execute(envelope(issue(&client, "e"))));
    let f = follower.as_ref().map(|follower| {
        // Another node writes; this node's follower hands its events over, still loading.
        revoke(&mut other, &client, &d.access_token);
        let f = granted(other.execute(envelope(issue(&client, "f"))));
        follower.sync().unwrap();
        f
    });
    assert!(!memory.is_ready());
    go.send(()).unwrap();
    loader.join().unwrap();
    assert!(memory.is_ready());

    // After the install.
    let g = granted(ledger.execute(envelope(issue(&client, "g"))));
    if let Some(follower) = &follower {
        revoke(&mut other, &client, &e.access_token);
        follower.sync().unwrap();
    }

    for (gone, what) in [
        (&b.access_token, "revoked before the snapshot"),
        (&c.access_token, "revoked while loading"),
        (&expiring.access_token, "pruned while loading"),
        (&user.access_token, "rotated away while loading"),
        (&refresh, "the rotated refresh token"),
    ] {
        assert!(!active(&memory, gone), "{what}");
    }
    assert!(active(&memory, &rotated.access_token) && active(&memory, &g.access_token));
    assert_eq!(active(&memory, &d.access_token), f.is_none(), "the other node revoked d");
    assert_eq!(active(&memory, &e.access_token), f.is_none(), "the other node revoked e");
    if let Some(f) = f {
        assert!(active(&memory, &f.access_token));
    }
    let (at, rows) = reads.snapshot().unwrap();
    assert_eq!(memory.snapshot(), MemoryView::load(at, rows).snapshot());
    if follower.is_some() {
        assert_eq!(memory.applied(), reads.head().unwrap());
    }
}
