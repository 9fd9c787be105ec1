//! Token cleanup on every backend (issue 9): `ExpiredPruned` removes exactly the rows that can
//! no longer answer anything, the memory view follows, and a refold of the log agrees.

use std::sync::Arc;

use super::{all_events, envelope, granted, issue, register, Kind, Store};
use crate::domain::events::Event;
use crate::domain::types::{Digest, GrantType, ScopeSet, Subject, TokenKey, Username};
use crate::store::clock::SimulatedClock;
use crate::store::fold;
use crate::store::ledger::{Command, CLEANUP_STREAM};
use crate::store::memory::MemoryView;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn password_grant(username: &str, client: &crate::domain::types::ClientId) -> Command {
    let key = TokenKey {
        client: client.clone(),
        subject: Subject::User(Username::parse(username).unwrap()),
        scopes: ScopeSet::parse("profile").unwrap(),
    };
    Command::Issue { key, grant_type: GrantType::Password }
}

pub(super) fn cleanup_removes_only_rows_that_expired_more_than_keep_ago_and_a_refold_agrees(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let start = 1_700_000_000_000;
    let clock = SimulatedClock::starting_at(start);
    let memory = Arc::new(MemoryView::default());
    let mut ledger = s.ledger().with_clock(clock.clock()).with_memory(memory.clone());
    let client = register(&mut ledger);
    // t0: an application token (1 h, no refresh) and a user token (1 h access, 1 day refresh).
    let app = granted(ledger.execute(envelope(issue(&client, "a"))));
    let user = granted(ledger.execute(envelope(password_grant("alice", &client))));
    let refresh = user.refresh_token.clone().expect("the password grant gets a refresh token");
    // t0 + 2 h: the user's refresh token is rotated; a new application token on another key.
    clock.advance(2 * HOUR);
    let refreshed = Command::Refresh {
        client: client.clone(),
        refresh_digest: Digest::of(refresh.as_bytes()),
        scopes: None,
    };
    granted(ledger.execute(envelope(refreshed)));
    let fresh = granted(ledger.execute(envelope(issue(&client, "b"))));
    let reads = s.reader();
    let keep = 30 * 60_000;
    let policy = crate::config::Settings::default().policy();

    // Only the first application token is gone: both its halves expired more than `keep` ago.
    assert!(reads.prunable(&policy.cleanup_cutoffs(clock.now(), keep)).unwrap());
    ledger.execute(envelope(Command::PruneExpired { keep })).unwrap().unwrap();
    assert!(!reads.prunable(&policy.cleanup_cutoffs(clock.now(), keep)).unwrap(), "nothing left to prune");
    let (_, rows) = reads.snapshot().unwrap();
    assert_eq!(rows.len(), 2, "the new application token and the refreshed user token stay: {rows:?}");
    assert!(matches!(memory.token(&Digest::of(app.access_token.as_bytes())), Ok(None)));
    assert!(matches!(memory.token(&Digest::of(fresh.access_token.as_bytes())), Ok(Some(_))));
    assert!(
        ledger.store().rotated(&Digest::of(refresh.as_bytes()).0).unwrap().is_some(),
        "a rotated refresh token that has not expired keeps its reuse detection"
    );

    // Three days on, everything has expired longer ago than `keep` plus a refresh lifetime.
    clock.advance(3 * DAY);
    ledger.execute(envelope(Command::PruneExpired { keep })).unwrap().unwrap();
    assert!(reads.snapshot().unwrap().1.is_empty());
    assert_eq!(memory.token_count(), 0);
    assert!(ledger.store().rotated(&Digest::of(refresh.as_bytes()).0).unwrap().is_none());
    let (at, rows) = reads.snapshot().unwrap();
    assert_eq!(memory.snapshot(), MemoryView::load(at, rows).snapshot());

    // The log says what left and when, and a fold from the log removes the same rows.
    let events = all_events(reads.as_ref());
    let pruned: Vec<_> = events.iter().filter(|e| e.stream == CLEANUP_STREAM).collect();
    assert_eq!(pruned.len(), 2);
    assert!(
        matches!(pruned[1].decode().unwrap(), Event::ExpiredPruned(p) if p.expired_before == clock.now() - keep)
    );
    drop(ledger);
    s.forget_views();
    let mut store = s.writer();
    fold::catch_up(store.as_mut()).unwrap();
    assert!(reads.snapshot().unwrap().1.is_empty());
    assert!(store.rotated(&Digest::of(refresh.as_bytes()).0).unwrap().is_none());
}
