//! The in-memory active-token view that introspection reads, and a cache of client records for
//! client authentication. The writer thread changes it after each commit and before any reply,
//! so once a revocation is acknowledged introspection cannot see the token active; at start-up
//! it is loaded from the SQL view. On a shared log it also records the position it has applied,
//! so that other nodes' events are folded in order (`follow`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustc_hash::FxHashMap;
use uuid::Uuid;

use super::lookup::{ClientRecord, Half};
use super::records::TokenRow;
use crate::domain::events::{Event, Millis, TokenIssued};
use crate::domain::types::{ClientId, Digest};

/// What introspection needs of an active token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub client_id: Arc<str>,
    pub username: Option<Arc<str>>,
    /// The scopes, sorted and space-separated.
    pub scopes: Arc<str>,
    pub issued_at: Millis,
    pub expires_at: Millis,
    /// Issue and expiry of the refresh token.
    pub refresh: Option<(Millis, Millis)>,
}

/// A change to apply once its transaction has committed.
#[derive(Debug, Clone)]
pub enum Change {
    Issued {
        token_id: Uuid,
        access: Digest,
        refresh: Option<Digest>,
        info: Arc<TokenInfo>,
    },
    Revoked {
        token_id: Uuid,
    },
    ClientRegistered(Arc<ClientRecord>),
    ClientDeleted(ClientId),
    /// Token cleanup: every token whose halves both expired before this instant leaves.
    Pruned {
        expired_before: Millis,
    },
}

impl Change {
    pub fn issued(t: &TokenIssued) -> Self {
        let info = TokenInfo {
            client_id: t.client_id.as_str().into(),
            username: t.username.as_ref().map(|u| u.as_str().into()),
            scopes: t.scopes.to_string().into(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            refresh: t.refresh.as_ref().map(|r| (r.issued_at, r.expires_at)),
        };
        Change::Issued {
            token_id: t.token_id,
            access: t.access_digest,
            refresh: t.refresh.as_ref().map(|r| r.digest),
            info: Arc::new(info),
        }
    }

    /// What an event changes in the memory view (the view keeps each token's digests by id, so
    /// no database read is needed, and a follower can fold other nodes' events the same way).
    pub fn of(event: &Event) -> Option<Self> {
        match event {
            Event::TokenIssued(t) => Some(Change::issued(t)),
            Event::TokenRevoked(r) => Some(Change::Revoked { token_id: r.token_id }),
            Event::ClientRegistered(c) => Some(Change::ClientRegistered(Arc::new(ClientRecord {
                client_id: c.client_id.clone(),
                client_name: c.client_name.clone(),
                secret_digest: c.secret_digest,
                grant_types: c.grant_types.clone(),
                access_token_type: c.access_token_type.clone(),
                oauth: c.oauth.clone(),
            }))),
            Event::ClientDeleted(c) => Some(Change::ClientDeleted(c.client_id.clone())),
            Event::ExpiredPruned(p) => Some(Change::Pruned { expired_before: p.expired_before }),
            _ => None,
        }
    }
}

/// The tokens and, for revocations, each token's digests by id.
#[derive(Default)]
struct Tokens {
    by_digest: FxHashMap<Digest, (Half, Arc<TokenInfo>)>,
    by_id: FxHashMap<Uuid, (Digest, Option<Digest>)>,
}

/// The view. Cheap to share; reads take a read lock for a hash lookup.
#[derive(Default)]
pub struct MemoryView {
    tokens: RwLock<Tokens>,
    clients: RwLock<HashMap<ClientId, Arc<ClientRecord>>>,
    /// Bumped whenever a client is deleted, so a cache fill that raced a deletion is dropped.
    client_generation: AtomicU64,
    /// The log position the view reflects (moved under the `tokens` write lock).
    applied: AtomicI64,
}

impl MemoryView {
    /// Builds the view from the rows of the SQL active-token view at log position `position`.
    pub fn load(position: i64, rows: Vec<TokenRow>) -> Self {
        // Sized once: growing two maps of a million entries step by step rehashes them ~20 times.
        let mut tokens = Tokens {
            by_digest: FxHashMap::with_capacity_and_hasher(rows.len() * 2, Default::default()),
            by_id: FxHashMap::with_capacity_and_hasher(rows.len(), Default::default()),
        };
        let mut clients: HashMap<String, Arc<str>> = HashMap::new();
        for r in rows {
            let client_id =
                clients.entry(r.client_id.clone()).or_insert_with(|| r.client_id.as_str().into()).clone();
            let info = Arc::new(TokenInfo {
                client_id,
                username: r.username.map(Into::into),
                scopes: r.scopes.into(),
                issued_at: r.issued_at,
                expires_at: r.expires_at,
                refresh: r.refresh.as_ref().map(|x| (x.issued_at, x.expires_at)),
            });
            let access = Digest(r.access_digest);
            let refresh = r.refresh.map(|x| Digest(x.digest));
            tokens.insert(r.token_id, access, refresh, info);
        }
        Self { tokens: RwLock::new(tokens), applied: AtomicI64::new(position), ..Self::default() }
    }

    /// The log position the view reflects.
    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The active token whose access or refresh digest is `d`.
    pub fn token(&self, d: &Digest) -> Option<(Half, Arc<TokenInfo>)> {
        self.tokens.read().unwrap_or_else(|p| p.into_inner()).by_digest.get(d).cloned()
    }

    /// Every entry, sorted: for comparing two views.
    pub fn snapshot(&self) -> Vec<(Digest, Half, TokenInfo)> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = tokens.by_digest.iter().map(|(d, (h, i))| (*d, *h, (**i).clone())).collect();
        all.sort_by_key(|(d, _, _)| d.0);
        all
    }

    pub fn token_count(&self) -> usize {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_digest
            .values()
            .filter(|(h, _)| *h == Half::Access)
            .count()
    }

    /// A cached client record.
    pub fn client(&self, id: &ClientId) -> Option<Arc<ClientRecord>> {
        self.clients.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// The deletion generation to pass to `cache_client` after a database read.
    pub fn client_generation(&self) -> u64 {
        self.client_generation.load(Ordering::Acquire)
    }

    /// Caches a client read from the database, unless a client was deleted meanwhile.
    pub fn cache_client(&self, record: Arc<ClientRecord>, generation: u64) {
        let mut clients = self.clients.write().unwrap_or_else(|p| p.into_inner());
        if self.client_generation.load(Ordering::Acquire) == generation {
            clients.insert(record.client_id.clone(), record);
        }
    }

    /// Applies committed changes in order (the only writer of the log: no position check).
    pub fn apply(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        self.apply_locked(&mut tokens, changes);
    }

    /// Applies the changes of the log positions `start + 1 ..= end` if the view stands exactly at
    /// `start`; otherwise changes nothing and returns false (the caller reads the log instead).
    pub fn apply_at(&self, start: i64, end: i64, changes: Vec<Change>) -> bool {
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        if self.applied.load(Ordering::Acquire) != start {
            return false;
        }
        self.apply_locked(&mut tokens, changes);
        self.applied.store(end, Ordering::Release);
        true
    }

    fn apply_locked(&self, tokens: &mut Tokens, changes: Vec<Change>) {
        for change in changes {
            match change {
                Change::Issued { token_id, access, refresh, info } => {
                    tokens.insert(token_id, access, refresh, info);
                }
                Change::Revoked { token_id } => {
                    // A refresh token carried over to a newer token is re-inserted by that
                    // token's `Issued`, which always follows the revocation.
                    if let Some((access, refresh)) = tokens.by_id.remove(&token_id) {
                        tokens.by_digest.remove(&access);
                        if let Some(rd) = refresh {
                            tokens.by_digest.remove(&rd);
                        }
                    }
                }
                Change::ClientRegistered(record) => {
                    self.clients
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(record.client_id.clone(), record);
                }
                Change::ClientDeleted(id) => {
                    let mut clients = self.clients.write().unwrap_or_else(|p| p.into_inner());
                    self.client_generation.fetch_add(1, Ordering::AcqRel);
                    clients.remove(&id);
                }
                Change::Pruned { expired_before } => tokens.prune(expired_before),
            }
        }
    }
}

impl Tokens {
    fn insert(&mut self, token_id: Uuid, access: Digest, refresh: Option<Digest>, info: Arc<TokenInfo>) {
        if let Some(rd) = refresh {
            self.by_digest.insert(rd, (Half::Refresh, info.clone()));
        }
        self.by_digest.insert(access, (Half::Access, info));
        self.by_id.insert(token_id, (access, refresh));
    }

    /// Removes every token whose access and refresh halves both expired before `before`: the
    /// same rows `ViewOp::PruneExpired` deletes from the SQL view.
    fn prune(&mut self, before: Millis) {
        let Self { by_digest, by_id } = self;
        by_id.retain(|_, (access, refresh)| {
            let expired = by_digest.get(access).is_none_or(|(_, info)| {
                info.expires_at < before
                    && info.refresh.is_none_or(|(_, refresh_expiry)| refresh_expiry < before)
            });
            if expired {
                by_digest.remove(access);
                if let Some(rd) = refresh {
                    by_digest.remove(rd);
                }
            }
            !expired
        });
    }
}
