//! Appending to the log with its hash chain, and checking the chain, over any backend. The
//! stored shapes and the chain hash itself live in `records`.

use std::collections::HashMap;

use uuid::Uuid;

pub use super::records::{chain_hash, format_time, BrokenChain, RequestMeta, StoredEvent, Tail, GENESIS};

use super::backend::WriteStore;
use super::StoreError;
use crate::domain::events::{Event, Millis, Pending, SCHEMA_VERSION};

impl StoredEvent {
    /// Decodes the payload (upcasting older schema versions).
    pub fn decode(&self) -> Result<Event, StoreError> {
        Event::decode(&self.event_type, self.schema_version, &self.payload)
            .map_err(|source| StoreError::Decode { position: self.position, source })
    }
}

/// A random (version 4) UUID from the thread's CSPRNG (`rand::thread_rng`, seeded from the
/// OS): `Uuid::new_v4` asks the kernel for 16 bytes on every call, one system call per event
/// and per token.
pub fn new_id() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// Appends events after `tail` (which the caller loaded inside the same write transaction) and
/// returns them as stored, for the projections.
pub fn append(
    store: &mut dyn WriteStore,
    tail: &mut Tail,
    pending: Vec<Pending>,
    meta: &RequestMeta,
    now: Millis,
) -> Result<Vec<(StoredEvent, Event)>, StoreError> {
    let mut versions: HashMap<String, i64> = HashMap::new();
    let mut stored = Vec::with_capacity(pending.len());
    for Pending { stream, event } in pending {
        let version = match versions.get(&stream) {
            Some(v) => v + 1,
            None => store.stream_version(&stream)? + 1,
        };
        versions.insert(stream.clone(), version);
        let mut e = StoredEvent {
            position: tail.position + 1,
            event_id: new_id().to_string(),
            stream,
            version,
            event_type: event.event_type().to_owned(),
            schema_version: SCHEMA_VERSION,
            payload: event.payload(),
            recorded_at: format_time(now),
            meta: meta.clone(),
            prev_hash: tail.hash.clone(),
            hash: Vec::new(),
        };
        e.hash = chain_hash(&e.prev_hash, &e).to_vec();
        store.insert_event(&e)?;
        *tail = Tail { position: e.position, hash: e.hash.clone() };
        stored.push((e, event));
    }
    Ok(stored)
}

/// How many events a verification reads per query.
const PAGE: usize = 1000;

/// Verifies the chain from the start-up anchor to the end of the log and moves the anchor, in
/// one write transaction. Returns how many events were checked. The full audit is
/// `ledger-replay verify`.
pub fn verify_since_anchor(store: &mut dyn WriteStore) -> Result<Result<u64, BrokenChain>, StoreError> {
    store.begin()?;
    let verified = verify_in(store);
    match &verified {
        Ok(Ok(_)) => store.commit(None)?,
        _ => store.rollback(),
    }
    verified
}

fn verify_in(store: &mut dyn WriteStore) -> Result<Result<u64, BrokenChain>, StoreError> {
    let (anchor, anchor_hash) = store.anchor()?;
    let mut expected_prev = anchor_hash.clone();
    if anchor > 0 {
        match store.hash_at(anchor)? {
            Some(h) if h == anchor_hash => {}
            Some(_) => {
                return Ok(Err(broken(anchor, "its hash differs from the one verified at the last start")))
            }
            None => return Ok(Err(broken(anchor, "the event verified at the last start is missing"))),
        }
    } else {
        expected_prev = GENESIS.to_vec();
    }
    let mut checked = 0;
    let mut position = anchor;
    loop {
        let page = store.read_after(position, PAGE)?;
        if page.is_empty() {
            break;
        }
        for e in page {
            if e.position != position + 1 {
                return Ok(Err(broken(position + 1, "the position is missing")));
            } else if e.prev_hash != expected_prev {
                return Ok(Err(broken(e.position, "prev_hash does not match the previous event's hash")));
            } else if e.hash != chain_hash(&e.prev_hash, &e) {
                return Ok(Err(broken(e.position, "the hash does not match the event's content")));
            }
            position = e.position;
            expected_prev = e.hash;
            checked += 1;
        }
    }
    if checked > 0 {
        store.set_anchor(position, &expected_prev)?;
    }
    Ok(Ok(checked))
}

fn broken(position: i64, reason: &str) -> BrokenChain {
    BrokenChain { position, reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn new_ids_are_random_version_4_uuids() {
        let (a, b) = (super::new_id(), super::new_id());
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
    }
}
