//! The hand-over from a loading view to a loaded one: every change reaches the view exactly
//! once and in order, and a revocation handed over while loading is never undone.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::store::records::RefreshRow;

fn access(n: u32) -> Digest {
    Digest::of(format!("access {n}").as_bytes())
}

fn refresh(n: u32) -> Digest {
    Digest::of(format!("refresh {n}").as_bytes())
}

fn id(n: u32) -> Uuid {
    Uuid::from_u128(u128::from(n) + 1)
}

/// Token `n`: its access half expires at `expires`, its refresh half 1000 ms later.
fn info(expires: Millis) -> TokenInfo {
    TokenInfo {
        client_id: "c".into(),
        username: None,
        scopes: "s".into(),
        issued_at: 0,
        expires_at: expires,
        refresh: Some((0, expires + 1000)),
    }
}

fn issued(n: u32, expires: Millis) -> Change {
    Change::Issued {
        token_id: id(n),
        access: access(n),
        refresh: Some(refresh(n)),
        info: Arc::new(info(expires)),
    }
}

fn revoked(n: u32) -> Change {
    Change::Revoked { token_id: id(n) }
}

/// The SQL view's row for token `n`.
fn row(n: u32, expires: Millis) -> TokenRow {
    TokenRow {
        token_id: id(n),
        family_id: id(n),
        stream: format!("stream {n}"),
        client_id: "c".into(),
        username: None,
        scopes: "s".into(),
        grant_type: "client_credentials".into(),
        access_digest: access(n).0,
        issued_at: 0,
        expires_at: expires,
        sealed_access: None,
        refresh: Some(RefreshRow {
            digest: refresh(n).0,
            issued_at: 0,
            expires_at: expires + 1000,
            sealed: String::new(),
        }),
    }
}

fn snapshot_of(position: i64, tokens: &[(u32, Millis)]) -> LoadedTokens {
    LoadedTokens::build(position, tokens.iter().map(|&(n, e)| row(n, e)).collect())
}

fn active(view: &MemoryView, n: u32) -> bool {
    matches!(view.token(&access(n)), Ok(Some(_)))
}

#[test]
fn lookups_say_loading_until_the_snapshot_is_installed() {
    let view = MemoryView::loading(3);
    assert_eq!(view.token(&access(1)), Err(Loading));
    assert!(!view.is_ready());
    assert_eq!(view.token_count(), 0);
    assert_eq!(view.install(snapshot_of(3, &[(1, 100)])), Ok(0));
    assert!(view.is_ready());
    assert!(active(&view, 1));
    assert_eq!(view.token(&refresh(1)).unwrap().map(|(h, _)| h), Some(Half::Refresh));
    assert_eq!(view.token_count(), 1);
}

#[test]
fn a_revocation_handed_over_while_loading_removes_a_token_of_the_snapshot() {
    let view = MemoryView::loading(5);
    // Committed after the snapshot at 6 was read, before it was installed.
    view.apply(7, vec![revoked(1)]);
    assert_eq!(view.install(snapshot_of(6, &[(1, 100), (2, 100)])), Ok(1));
    assert!(!active(&view, 1), "the revocation acknowledged during loading holds");
    assert!(view.token(&refresh(1)).unwrap().is_none());
    assert!(active(&view, 2));
    assert_eq!(view.applied(), 7);
}

#[test]
fn changes_at_or_before_the_snapshot_are_dropped_and_later_ones_replayed_in_order() {
    let view = MemoryView::loading(10);
    // Token 1 was issued at 11 and revoked at 12, both before the snapshot at 12: replaying the
    // issue would bring a revoked token back.
    view.apply(11, vec![issued(1, 100)]);
    view.apply(12, vec![revoked(1), issued(2, 100)]);
    // After the snapshot: 3 issued, then revoked; 4 issued.
    view.apply(13, vec![issued(3, 100)]);
    view.apply(15, vec![revoked(3), issued(4, 100)]);
    assert_eq!(view.install(snapshot_of(12, &[(2, 100)])), Ok(3));
    assert!(!active(&view, 1) && active(&view, 2) && !active(&view, 3) && active(&view, 4));
    let fresh = MemoryView::load(15, vec![row(2, 100), row(4, 100)]);
    assert_eq!(view.snapshot(), fresh.snapshot());
}

#[test]
fn a_batch_handed_over_after_the_snapshot_that_holds_it_was_installed_changes_nothing() {
    let view = MemoryView::loading(10);
    // The writer committed 11 (issue 1) and 12 (revoke 1), the loader read the snapshot at 12
    // and installed it before the writer handed the batch of 11 over.
    assert_eq!(view.install(snapshot_of(12, &[])), Ok(0));
    view.apply(11, vec![issued(1, 100)]);
    view.apply(12, vec![revoked(1)]);
    assert!(!active(&view, 1));
    view.apply(13, vec![issued(2, 100)]);
    assert!(active(&view, 2), "later batches apply as usual");
}

#[test]
fn a_prune_handed_over_while_loading_applies_to_the_snapshot_after_it() {
    let view = MemoryView::loading(1);
    view.apply(2, vec![Change::Pruned { expired_before: 50 }]);
    view.apply(3, vec![issued(3, 10)]);
    view.apply(4, vec![Change::Pruned { expired_before: 5_000 }]);
    // Token 1 expired long ago (both halves before 5000), token 2 lives on.
    assert_eq!(view.install(snapshot_of(2, &[(1, 10), (2, 10_000)])), Ok(2));
    assert!(!active(&view, 1) && active(&view, 2) && !active(&view, 3));
}

#[test]
fn a_prune_before_the_snapshot_is_not_replayed_over_a_token_it_did_not_see() {
    let view = MemoryView::loading(1);
    // The prune at 2 ran before token 3 was issued at 3; the snapshot at 3 holds token 3,
    // which the prune's cutoff would remove if it were replayed (it is not: 2 <= 3).
    view.apply(2, vec![Change::Pruned { expired_before: 50 }]);
    view.apply(3, vec![issued(3, -2000)]);
    assert_eq!(view.install(snapshot_of(3, &[(3, -2000)])), Ok(0));
    assert!(active(&view, 3));
}

#[test]
fn client_changes_reach_the_cache_at_once_while_loading() {
    let view = MemoryView::loading(1);
    let record = Arc::new(ClientRecord {
        client_id: ClientId::parse("gone").unwrap(),
        client_name: "gone".into(),
        secret_digest: Digest([0; 32]),
        grant_types: vec![],
        access_token_type: None,
        oauth: Default::default(),
    });
    view.cache_client(record.clone(), view.client_generation());
    assert!(view.client(&record.client_id).is_some());
    view.apply(2, vec![Change::ClientDeleted(record.client_id.clone())]);
    assert!(view.client(&record.client_id).is_none(), "a deleted client stops authenticating at once");
    // A batch the snapshot already holds still reaches the cache.
    view.install(snapshot_of(3, &[])).unwrap();
    view.cache_client(record.clone(), view.client_generation());
    view.apply(3, vec![Change::ClientDeleted(record.client_id.clone())]);
    assert!(view.client(&record.client_id).is_none());
}

#[test]
fn a_follower_page_that_straddles_the_snapshot_is_split_by_event_position() {
    let view = MemoryView::loading(10);
    assert!(!view.apply_events_at(9, 12, vec![(12, issued(9, 100))]), "not where the view stands");
    let page = vec![(11, issued(1, 100)), (12, revoked(1)), (13, issued(2, 100)), (14, revoked(5))];
    assert!(view.apply_events_at(10, 14, page));
    assert_eq!(view.applied(), 14);
    assert!(view.apply_at(14, 16, vec![issued(6, 100)]));
    assert_eq!(view.install(snapshot_of(12, &[(5, 100)])), Ok(3));
    assert!(!active(&view, 1) && active(&view, 2) && !active(&view, 5) && active(&view, 6));
    assert_eq!(view.applied(), 16);
}

#[test]
fn a_follower_behind_the_installed_snapshot_applies_only_client_changes_up_to_it() {
    let view = MemoryView::loading(10);
    assert_eq!(view.install(snapshot_of(14, &[(2, 100)])), Ok(0));
    assert_eq!(view.applied(), 10, "the follower still reads the log from where it stood");
    // Token 1 was issued at 11 and revoked at 12: the follower's first page ends between.
    assert!(view.apply_events_at(10, 11, vec![(11, issued(1, 100))]));
    assert!(!active(&view, 1), "the snapshot at 14 holds the revocation: never active again");
    let page = vec![(12, revoked(1)), (13, issued(2, 100)), (15, issued(3, 100))];
    assert!(view.apply_events_at(11, 15, page));
    assert!(!active(&view, 1) && active(&view, 2) && active(&view, 3));
    assert_eq!(view.token_count(), 2);
}

#[test]
fn a_stale_snapshot_is_refused_and_a_second_install_too() {
    let view = MemoryView::loading(10);
    view.apply(11, vec![issued(1, 100)]);
    assert_eq!(view.install(snapshot_of(9, &[])), Err(InstallError::Stale { snapshot: 9, from: 10 }));
    assert!(!view.is_ready(), "still loading, nothing lost");
    assert_eq!(view.install(snapshot_of(10, &[])), Ok(1));
    assert!(active(&view, 1));
    assert_eq!(view.install(snapshot_of(11, &[])), Err(InstallError::AlreadyLoaded));
    assert!(active(&view, 1));
}

/// One event of a generated log.
#[derive(Debug, Clone)]
enum Op {
    Issue(Millis),
    /// Revokes the active token at this index (modulo their number), if any.
    Revoke(usize),
    Prune(Millis),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..200i64).prop_map(Op::Issue),
        2 => any::<usize>().prop_map(Op::Revoke),
        1 => (0..300i64).prop_map(Op::Prune),
    ]
}

/// The SQL view's fold of a log: what a snapshot at each position holds.
#[derive(Default, Clone)]
struct Model {
    active: BTreeMap<u32, Millis>,
    next: u32,
}

impl Model {
    fn change(&mut self, op: &Op) -> Change {
        match *op {
            Op::Issue(expires) => {
                self.next += 1;
                self.active.insert(self.next, expires);
                issued(self.next, expires)
            }
            Op::Revoke(i) => {
                let n = self.active.keys().copied().nth(i % self.active.len().max(1)).unwrap_or(u32::MAX);
                self.active.remove(&n);
                revoked(n)
            }
            Op::Prune(before) => {
                self.active.retain(|_, e| !(*e < before && *e + 1000 < before));
                Change::Pruned { expired_before: before }
            }
        }
    }

    fn rows(&self) -> Vec<TokenRow> {
        self.active.iter().map(|(&n, &e)| row(n, e)).collect()
    }
}

proptest! {
    /// Whatever the log, wherever loading begins (C), wherever the snapshot was read (P >= C)
    /// and however many hand-overs came before the install: the view ends equal to a fresh
    /// load of the final SQL view. Hand-overs come as the writer's batches or as a follower's
    /// pages, which may end anywhere.
    #[test]
    fn the_view_ends_equal_to_a_fresh_load_wherever_the_snapshot_and_the_install_fall(
        ops in prop::collection::vec(op(), 1..40),
        cuts in prop::collection::vec(any::<bool>(), 40),
        loading_at in any::<prop::sample::Index>(),
        snapshot_at in any::<prop::sample::Index>(),
        install_after in any::<prop::sample::Index>(),
        by_follower in any::<bool>(),
    ) {
        // Positions 1..=n; the commits end where `cuts` says (and at n).
        let n = ops.len();
        let mut model = Model::default();
        let mut states = vec![model.clone()];
        let mut changes = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            changes.push((i as i64 + 1, model.change(op)));
            states.push(model.clone());
        }
        let ends: Vec<usize> = (1..=n).filter(|&e| e == n || cuts[e - 1]).collect();
        let boundaries: Vec<usize> = std::iter::once(0).chain(ends.iter().copied()).collect();
        let c = boundaries[loading_at.index(boundaries.len())];
        let later: Vec<usize> = boundaries.iter().copied().filter(|&b| b >= c).collect();
        let p = later[snapshot_at.index(later.len())];

        // The hand-over units after C: commits, or follower pages cut anywhere.
        let units: Vec<(usize, usize)> = if by_follower {
            let mut units = Vec::new();
            let mut start = c;
            for e in c + 1..=n {
                if e == n || cuts[(e * 7) % cuts.len()] {
                    units.push((start, e));
                    start = e;
                }
            }
            units
        } else {
            ends.iter().filter(|&&e| e > c).scan(c, |s, &e| { let u = (*s, e); *s = e; Some(u) }).collect()
        };
        let installed_after = install_after.index(units.len() + 1);

        let view = MemoryView::loading(c as i64);
        for (k, &(start, end)) in units.iter().enumerate() {
            if k == installed_after {
                prop_assert!(view.install(LoadedTokens::build(p as i64, states[p].rows())).is_ok());
            }
            let batch: Vec<(i64, Change)> = changes[start..end].to_vec();
            if by_follower {
                prop_assert!(view.apply_events_at(start as i64, end as i64, batch));
            } else {
                view.apply(end as i64, batch.into_iter().map(|(_, ch)| ch).collect());
            }
        }
        if installed_after == units.len() {
            prop_assert!(view.install(LoadedTokens::build(p as i64, states[p].rows())).is_ok());
        }
        let fresh = MemoryView::load(n as i64, states[n].rows());
        prop_assert_eq!(view.snapshot(), fresh.snapshot());
        prop_assert_eq!(view.applied(), n as i64);
    }
}
