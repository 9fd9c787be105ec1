//! The archiving seam on every backend (issue 9): a step records what left the database, the
//! events it accounts for are removed through the archiver's path only, and the ledger carries
//! on after the boundary with the same chain, positions and stream versions.

use super::{all_events, envelope, granted, issue, register, Kind, Store};
use crate::archive::segment::{names, read_events};
use crate::archive::{run_round, ArchivePolicy};
use crate::store::clock::SimulatedClock;
use crate::store::ledger::Ledger;
use crate::store::log::{self, GENESIS};
use crate::store::records::StoredEvent;
use crate::store::steps::{ArchiveStep, StepKind};

const DAY: i64 = 86_400_000;

/// A ledger on a simulated clock, a client and two commands on one key (an issue, a return).
fn history(s: &Store, clock: &SimulatedClock) -> (Ledger, crate::domain::types::ClientId) {
    let mut ledger = s.ledger().with_clock(clock.clock());
    let client = register(&mut ledger);
    granted(ledger.execute(envelope(issue(&client, "a"))));
    granted(ledger.execute(envelope(issue(&client, "a"))));
    (ledger, client)
}

fn policy(s: &Store, retain: bool) -> ArchivePolicy {
    ArchivePolicy::new(s.dir.path().join("archive"), DAY, retain)
}

pub(super) fn archiving_moves_the_prefix_out_and_the_ledger_continues_chain_positions_and_versions(
    kind: Kind,
) {
    let Some(s) = Store::new(kind) else { return };
    let clock = SimulatedClock::starting_at(1_700_000_000_000);
    let (mut ledger, client) = history(&s, &clock);
    let before: Vec<StoredEvent> = all_events(s.reader().as_ref());
    assert_eq!(before.len(), 3);
    let mut archiver = s.archive_writer();
    // The archiver judges ten days later; the ledger's token is still live at its own time.
    let later = clock.now() + 10 * DAY;
    let report = run_round(archiver.as_mut(), &policy(&s, true), later).unwrap();
    assert_eq!((report.steps, report.archived, report.removed), (1, 3, 3));
    assert!(all_events(s.reader().as_ref()).is_empty(), "the live log is empty");
    let steps = s.reader().archive_steps().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!((steps[0].first_position, steps[0].last_position, steps[0].kind), (1, 3, StepKind::Segment));
    assert_eq!(steps[0].last_hash, before[2].hash);
    let (file, _) = names(1, 3);
    let archived: Vec<StoredEvent> =
        read_events(&s.dir.path().join("archive").join(file)).unwrap().map(Result::unwrap).collect();
    assert_eq!(archived, before, "the segment holds the events byte for byte");

    // The same key again: a hand-back whose version and position continue across the boundary.
    granted(ledger.execute(envelope(issue(&client, "a"))));
    let after = all_events(s.reader().as_ref());
    assert_eq!(after.len(), 1);
    assert_eq!((after[0].position, after[0].version), (4, 3));
    assert_eq!(after[0].prev_hash, before[2].hash, "the live log continues the same chain");
    let mut store = s.writer();
    assert_eq!(log::verify_since_anchor(store.as_mut()).unwrap(), Ok(1));
    assert_eq!(run_round(archiver.as_mut(), &policy(&s, true), clock.now()).unwrap().steps, 0, "it is young");
}

pub(super) fn dropping_verifies_then_keeps_only_the_step_as_the_chain_anchor(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let clock = SimulatedClock::starting_at(1_700_000_000_000);
    let (mut ledger, client) = history(&s, &clock);
    let mut archiver = s.archive_writer();
    let report = run_round(archiver.as_mut(), &policy(&s, false), clock.now() + 10 * DAY).unwrap();
    assert_eq!((report.steps, report.archived, report.bytes), (1, 3, 0));
    let step = s.reader().archive_steps().unwrap().remove(0);
    assert_eq!((step.kind, step.segment, step.sha256), (StepKind::Dropped, None, None));
    assert!(!s.dir.path().join("archive").join(names(1, 3).0).exists(), "no segment is written");
    granted(ledger.execute(envelope(issue(&client, "b"))));
    assert_eq!(all_events(s.reader().as_ref())[0].prev_hash, step.last_hash);
    assert_eq!(log::verify_since_anchor(s.writer().as_mut()).unwrap(), Ok(1));
}

pub(super) fn only_young_events_stay_and_deleting_them_by_hand_is_still_refused(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let clock = SimulatedClock::starting_at(1_700_000_000_000);
    let (mut ledger, client) = history(&s, &clock);
    clock.advance(10 * DAY);
    granted(ledger.execute(envelope(issue(&client, "young"))));
    let mut archiver = s.archive_writer();
    run_round(archiver.as_mut(), &policy(&s, true), clock.now()).unwrap();
    let live = all_events(s.reader().as_ref());
    assert_eq!(live.iter().map(|e| e.position).collect::<Vec<_>>(), vec![4]);
    assert_eq!(s.tamper(), [true, true], "the live event can be neither rewritten nor deleted");
    assert_eq!(all_events(s.reader().as_ref()).len(), 1);
}

pub(super) fn a_step_that_does_not_continue_the_last_is_refused(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    register(&mut s.ledger());
    let mut store = s.archive_writer();
    let gap = ArchiveStep {
        first_position: 2,
        last_position: 2,
        event_count: 1,
        prev_hash: GENESIS.to_vec(),
        last_hash: GENESIS.to_vec(),
        first_recorded_at: "2026-01-01T00:00:00.000Z".into(),
        last_recorded_at: "2026-01-01T00:00:00.000Z".into(),
        kind: StepKind::Dropped,
        segment: None,
        sha256: None,
        recorded_at: "2026-01-01T00:00:00.000Z".into(),
    };
    store.begin().unwrap();
    assert!(store.record_step(&gap).is_err(), "a step must start at position 1, then after the last");
    store.rollback();
    assert!(s.reader().archive_steps().unwrap().is_empty());
}

pub(super) fn a_removal_interrupted_after_the_step_was_recorded_is_completed_by_the_next_round(kind: Kind) {
    let Some(s) = Store::new(kind) else { return };
    let clock = SimulatedClock::starting_at(1_700_000_000_000);
    let (_ledger, _client) = history(&s, &clock);
    let events = all_events(s.reader().as_ref());
    let mut store = s.archive_writer();
    // What a kill -9 right after the step's transaction leaves: the step, and its events.
    store.begin().unwrap();
    let step = ArchiveStep {
        first_position: 1,
        last_position: 3,
        event_count: 3,
        prev_hash: GENESIS.to_vec(),
        last_hash: events[2].hash.clone(),
        first_recorded_at: events[0].recorded_at.clone(),
        last_recorded_at: events[2].recorded_at.clone(),
        kind: StepKind::Dropped,
        segment: None,
        sha256: None,
        recorded_at: events[2].recorded_at.clone(),
    };
    store.record_step(&step).unwrap();
    store.commit(None).unwrap();
    assert_eq!(all_events(s.reader().as_ref()).len(), 3);
    let mut small = policy(&s, true);
    small.remove_batch = 2;
    let report = run_round(store.as_mut(), &small, clock.now() + 10 * DAY).unwrap();
    assert_eq!((report.removed, report.steps), (3, 0));
    assert!(all_events(s.reader().as_ref()).is_empty());
}
