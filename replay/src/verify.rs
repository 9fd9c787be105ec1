//! `verify`: walks the whole log and checks, for every event in position order, that positions
//! have no gap, that the hash chain holds (`chain_hash`, the server's own function, recomputed),
//! that per-stream versions are consecutive, that the event decodes (upcasting included), and
//! that it is consistent with what came before. Stops at the first problem and names it.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use token_ledger::domain::events::{Event, Millis};
use token_ledger::domain::types::{Subject, TokenKey};
use token_ledger::store::ledger::CLEANUP_STREAM;
use token_ledger::store::log::{chain_hash, StoredEvent, GENESIS};
use token_ledger::store::steps::ArchiveStep;
use token_ledger::store::StoreError;
use uuid::Uuid;

use crate::source::{Flow, Source};
use crate::ReplayError;

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// A line of an exported log is not an event.
    Unreadable,
    /// A position is missing, repeated or out of order.
    Position,
    /// `prev_hash` is not the previous event's hash.
    Chain,
    /// `hash` is not the hash of the event's own fields.
    Hash,
    /// A stream's versions are not 1, 2, 3...
    Version,
    /// The payload does not decode as its type and schema version.
    Decode,
    /// The event contradicts the events before it.
    Consistency,
    /// An archive segment is missing, altered or disagrees with its recorded step.
    Archive,
}

/// The first problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The position of the bad event (absent when a log line could not be read at all).
    pub position: Option<i64>,
    /// The line of an exported log, when the source is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub check: Check,
    pub detail: String,
}

/// The answer of `verify`.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub intact: bool,
    pub events: u64,
    pub first_position: Option<i64>,
    /// The last event checked, and its hash: keep it to detect a rewritten history later.
    pub head_position: Option<i64>,
    pub head_hash: Option<String>,
    /// The log starts after position 1 (an `export --since`): its chain is checked from its first
    /// event's `prev_hash`, and the consistency checks, which need the whole history, are skipped.
    pub partial: bool,
    pub problem: Option<Problem>,
}

/// Walks the source and returns what it found. Errors are failures to read, not findings.
pub fn verify(source: &Source) -> Result<Verdict, ReplayError> {
    let mut walker = Walker::default();
    let mut verdict = Verdict {
        intact: true,
        events: 0,
        first_position: None,
        head_position: None,
        head_hash: None,
        partial: false,
        problem: None,
    };
    if source.has_position_min()? {
        verdict.intact = false;
        verdict.problem = Some(Problem {
            position: Some(i64::MIN),
            line: None,
            check: Check::Position,
            detail: "an event is stored at the smallest integer position, before the log's first".into(),
        });
        return Ok(verdict);
    }
    let steps = if source.is_database() { Some(source.archive_steps()?) } else { None };
    // Payloads are decoded on the reading thread while this walk checks the events before them.
    let walked = source.scan_pipelined(
        None,
        |event| event.decode(),
        |event, decoded| {
            if verdict.first_position.is_none() {
                verdict.first_position = Some(event.position);
                verdict.partial = event.position != 1;
                if let Some(detail) = steps.as_deref().and_then(|steps| unaccounted_start(event, steps)) {
                    verdict.problem = Some(Problem {
                        position: Some(event.position),
                        line: None,
                        check: Check::Position,
                        detail,
                    });
                    return Ok(Flow::Break(()));
                }
            }
            if let Err(detail) = walker.check(event, decoded, verdict.partial) {
                verdict.problem = Some(Problem {
                    position: Some(event.position),
                    line: None,
                    check: detail.0,
                    detail: detail.1,
                });
                return Ok(Flow::Break(()));
            }
            verdict.events += 1;
            Ok(Flow::Continue(()))
        },
    );
    // The head is the last event that passed every check; its hash is shown once, at the end.
    if let Some((position, hash)) = &walker.previous {
        verdict.head_position = Some(*position);
        verdict.head_hash = Some(hex::encode(hash));
    }
    match walked {
        Ok(()) => {}
        Err(ReplayError::BadLine { line, reason, .. }) => {
            verdict.problem = Some(unreadable(&verdict, line, reason))
        }
        Err(ReplayError::Segment { segment, position, reason }) => {
            let detail = format!("archive segment {segment}: {reason}");
            verdict.problem = Some(Problem { position, line: None, check: Check::Archive, detail });
        }
        Err(e) => return Err(e),
    }
    verdict.intact = verdict.problem.is_none();
    Ok(verdict)
}

/// Why a database log that starts at `first` is missing its beginning, if it is: a database log
/// starts at position 1 with the genesis hash, or right after what the recorded archiving steps
/// account for (chained from the last one's hash). An export made with `--since` is no database
/// and stays a legitimate partial log.
fn unaccounted_start(first: &StoredEvent, steps: &[ArchiveStep]) -> Option<String> {
    if first.position == 1 {
        return None;
    }
    let accounted = steps.last().map_or(0, |s| s.last_position);
    if first.position > accounted.saturating_add(1) {
        let missing = if accounted + 1 == first.position - 1 {
            format!("position {} is", accounted + 1)
        } else {
            format!("positions {} to {} are", accounted + 1, first.position - 1)
        };
        let by = if accounted == 0 {
            "no archive segment or recorded archiving step accounts for them".to_owned()
        } else {
            format!("the archiving steps account only for positions 1 to {accounted}")
        };
        return Some(format!(
            "the log starts at position {}: {missing} missing from the database and {by}; events were deleted",
            first.position
        ));
    }
    // The events of the last steps may still be leaving the database (a removal in progress);
    // where the live log starts at a step's end, it chains from that step's last hash.
    match steps.iter().find(|s| s.last_position + 1 == first.position) {
        Some(step) if step.last_hash != first.prev_hash => Some(format!(
            "the log starts at position {} with prev_hash {}, but the archiving step ending at position {} recorded hash {}",
            first.position,
            hex::encode(&first.prev_hash),
            step.last_position,
            hex::encode(&step.last_hash)
        )),
        _ => None,
    }
}

/// A line of an exported log that is not an event at all: named by its line number.
fn unreadable(verdict: &Verdict, line: u64, reason: String) -> Problem {
    let after = match verdict.head_position {
        Some(p) => format!(" (the line after position {p})"),
        None => String::new(),
    };
    Problem { position: None, line: Some(line), check: Check::Unreadable, detail: format!("{reason}{after}") }
}

type Finding = (Check, String);

/// What the walk remembers of the events already checked.
#[derive(Default)]
struct Walker {
    previous: Option<(i64, Vec<u8>)>,
    versions: HashMap<String, i64>,
    state: Consistency,
}

impl Walker {
    /// Checks one event, `decoded` being what `StoredEvent::decode` made of it.
    fn check(
        &mut self,
        e: &StoredEvent,
        decoded: Result<Event, StoreError>,
        partial: bool,
    ) -> Result<(), Finding> {
        self.check_chain(e)?;
        self.check_version(e, partial)?;
        let event = decoded.map_err(|err| (Check::Decode, source_text(&err)))?;
        if !partial {
            self.state.apply(e, &event).map_err(|detail| (Check::Consistency, detail))?;
        }
        // The buffer of the previous hash is reused: no allocation per event.
        let previous = self.previous.get_or_insert_with(|| (0, Vec::with_capacity(32)));
        previous.0 = e.position;
        previous.1.clear();
        previous.1.extend_from_slice(&e.hash);
        Ok(())
    }

    fn check_chain(&self, e: &StoredEvent) -> Result<(), Finding> {
        if e.position < 1 {
            let detail = format!("position {} is before the log's first position, 1", e.position);
            return Err((Check::Position, detail));
        }
        let expected_prev = match &self.previous {
            Some((position, hash)) => {
                // Checked: a hostile log may hold i64::MAX, after which no position can follow.
                if position.checked_add(1) != Some(e.position) {
                    return Err((
                        Check::Position,
                        format!(
                            "position {} follows position {position}: events are missing, repeated or out of order",
                            e.position
                        ),
                    ));
                }
                hash.as_slice()
            }
            None if e.position == 1 => &GENESIS[..],
            // A partial export: the chain is checked from the first event's own link.
            None => e.prev_hash.as_slice(),
        };
        if e.prev_hash != expected_prev {
            return Err((
                Check::Chain,
                format!(
                    "prev_hash {} is not the hash of the event before it ({})",
                    hex::encode(&e.prev_hash),
                    hex::encode(expected_prev)
                ),
            ));
        }
        let computed = chain_hash(&e.prev_hash, e);
        if e.hash != computed {
            return Err((
                Check::Hash,
                format!(
                    "stored hash {} does not match the event's contents (computed {}): the event was altered",
                    hex::encode(&e.hash),
                    hex::encode(computed)
                ),
            ));
        }
        Ok(())
    }

    fn check_version(&mut self, e: &StoredEvent, partial: bool) -> Result<(), Finding> {
        // `Some(None)`: the stream's last version was i64::MAX, so no version can follow it.
        let last = self.versions.get_mut(e.stream.as_str());
        let due = match &last {
            Some(v) => Some(v.checked_add(1)),
            None if partial => None,
            None => Some(Some(1)),
        };
        if let Some(due) = due.filter(|v| *v != Some(e.version)) {
            let due = due.map_or("none (the last was the largest integer)".to_owned(), |v| v.to_string());
            return Err((
                Check::Version,
                format!("stream {} has version {} where {due} was due", e.stream, e.version),
            ));
        }
        // A known stream's entry is updated in place; only a new stream's name is copied.
        match last {
            Some(v) => *v = e.version,
            None => {
                self.versions.insert(e.stream.clone(), e.version);
            }
        }
        Ok(())
    }
}

/// The state the consistency checks fold: registered clients and each key's active token.
#[derive(Default)]
struct Consistency {
    clients: HashSet<String>,
    /// Active token id → (its stream, its client, when its last usable half expires).
    active: HashMap<Uuid, (String, String, Millis)>,
    by_stream: HashMap<String, Uuid>,
    seen: HashSet<Uuid>,
}

impl Consistency {
    fn apply(&mut self, e: &StoredEvent, event: &Event) -> Result<(), String> {
        match event {
            Event::ClientRegistered(c) => {
                expect_stream(e, &format!("client-{}", c.client_id))?;
                self.clients.insert(c.client_id.to_string());
            }
            Event::ClientDeleted(c) => self.delete_client(e, c.client_id.as_str())?,
            Event::UserAdded(u) => expect_stream(e, &format!("user-{}", u.username.to_lowercase()))?,
            Event::UserPasswordChanged(u) => {
                expect_stream(e, &format!("user-{}", u.username.to_lowercase()))?
            }
            Event::TokenIssued(t) => {
                let subject = match &t.username {
                    Some(u) => Subject::User(u.clone()),
                    None => Subject::Application,
                };
                let key = TokenKey { client: t.client_id.clone(), subject, scopes: t.scopes.clone() };
                expect_stream(e, &key.stream())?;
                if !self.clients.contains(t.client_id.as_str()) {
                    return Err(format!(
                        "issues token {} to client {}, which is not registered",
                        t.token_id, t.client_id
                    ));
                }
                if let Some(other) = self.by_stream.get(&e.stream) {
                    return Err(format!(
                        "issues token {} on a key whose token {other} is still active",
                        t.token_id
                    ));
                }
                if !self.seen.insert(t.token_id) {
                    return Err(format!("issues token id {} a second time", t.token_id));
                }
                self.by_stream.insert(e.stream.clone(), t.token_id);
                let usable_until =
                    t.refresh.as_ref().map_or(t.expires_at, |r| r.expires_at.max(t.expires_at));
                let owner = (e.stream.clone(), t.client_id.to_string(), usable_until);
                self.active.insert(t.token_id, owner);
            }
            Event::TokenReturned(t) => {
                self.expect_active(e, t.token_id, "returns")?;
            }
            Event::TokenRevoked(t) => {
                self.expect_active(e, t.token_id, "revokes")?;
                self.active.remove(&t.token_id);
                self.by_stream.remove(&e.stream);
            }
            // Token cleanup removes exactly the tokens whose halves both expired before the cutoff.
            Event::ExpiredPruned(p) => {
                expect_stream(e, CLEANUP_STREAM)?;
                let by_stream = &mut self.by_stream;
                self.active.retain(|_, (stream, _, usable_until)| {
                    let keep = *usable_until >= p.expired_before;
                    if !keep {
                        by_stream.remove(stream.as_str());
                    }
                    keep
                });
            }
            // Replays and failed authentications change no state these checks follow.
            _ => {}
        }
        Ok(())
    }

    fn expect_active(&self, e: &StoredEvent, token: Uuid, verb: &str) -> Result<(), String> {
        match self.active.get(&token) {
            None if self.seen.contains(&token) => {
                Err(format!("{verb} token {token}, which is no longer active"))
            }
            None => Err(format!("{verb} token {token}, which was never issued")),
            Some((stream, _, _)) if *stream != e.stream => {
                Err(format!("{verb} token {token} on stream {}, but it is active on {stream}", e.stream))
            }
            Some(_) => Ok(()),
        }
    }

    fn delete_client(&mut self, e: &StoredEvent, client: &str) -> Result<(), String> {
        expect_stream(e, &format!("client-{client}"))?;
        if !self.clients.remove(client) {
            return Err(format!("deletes client {client}, which is not registered"));
        }
        if let Some((token, _)) = self.active.iter().find(|(_, (_, c, _))| c == client) {
            return Err(format!("deletes client {client} while its token {token} is still active"));
        }
        Ok(())
    }
}

fn expect_stream(e: &StoredEvent, expected: &str) -> Result<(), String> {
    if e.stream == expected {
        Ok(())
    } else {
        Err(format!("{} belongs to stream {expected}, but is stored on {}", e.event_type, e.stream))
    }
}

/// The innermost message, so "does not decode" names the serde reason too.
fn source_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use token_ledger::store::log::RequestMeta;

    use super::*;
    use crate::export::ExportedEvent;
    use crate::source::Location;

    /// A valid log of `n` users added, each on its own stream, chained from genesis.
    fn users_added(n: i64) -> Vec<StoredEvent> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|position| {
                let mut e = StoredEvent {
                    position,
                    event_id: format!("event-{position}"),
                    stream: format!("user-u{position}"),
                    version: 1,
                    event_type: "UserAdded".into(),
                    schema_version: 1,
                    payload: format!(r#"{{"username":"u{position}","password_hash":"x"}}"#),
                    recorded_at: "2026-12-07T20:00:00.000Z".into(),
                    meta: RequestMeta::default(),
                    prev_hash: prev.clone(),
                    hash: Vec::new(),
                };
                e.hash = chain_hash(&e.prev_hash, &e).to_vec();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    fn verify_log(events: &[StoredEvent]) -> Verdict {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        for e in events {
            let line = serde_json::to_string(&ExportedEvent::from(e)).expect("serialises");
            writeln!(file, "{line}").expect("write the log");
        }
        let source = Source::open(&Location::Log(file.path().to_owned())).expect("open the log");
        verify(&source).expect("the log can be read")
    }

    #[test]
    fn a_log_of_several_batches_verifies_with_its_last_event_as_head() {
        let events = users_added(1_500);
        let verdict = verify_log(&events);
        assert!(verdict.intact, "{:?}", verdict.problem);
        assert_eq!(verdict.events, 1_500);
        assert_eq!(verdict.head_position, Some(1_500));
        assert_eq!(verdict.head_hash, Some(hex::encode(&events[1_499].hash)));
    }

    #[test]
    fn tampering_past_the_first_batches_is_named_at_its_position_with_the_head_before_it() {
        for position in [512, 513, 1_025, 1_500] {
            let mut events = users_added(1_500);
            let index = position as usize - 1;
            events[index].payload = events[index].payload.replace("\"x\"", "\"y\"");
            let verdict = verify_log(&events);
            let problem = verdict.problem.expect("the altered payload is found");
            assert_eq!((problem.position, problem.check), (Some(position), Check::Hash));
            assert_eq!(verdict.events, position as u64 - 1);
            assert_eq!(verdict.head_position, Some(position - 1));
            assert_eq!(verdict.head_hash, Some(hex::encode(&events[index - 1].hash)));
        }
    }

    #[test]
    fn an_undecodable_payload_behind_a_broken_chain_is_not_reported_first() {
        let mut events = users_added(1_200);
        events[699].prev_hash = vec![7; 32];
        events[899].payload = "not json".into();
        let problem = verify_log(&events).problem.expect("a problem");
        assert_eq!((problem.position, problem.check), (Some(700), Check::Chain));
    }
}
