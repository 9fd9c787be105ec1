//! The in-memory active-token view that introspection reads, and a cache of client records for
//! client authentication. The writer thread changes it after each commit and before any reply,
//! so once a revocation is acknowledged introspection cannot see the token active. At start-up
//! it is loaded from the SQL view in the background (`loader`): until then lookups say
//! `Loading` and introspection asks the SQL view, and the changes handed over meanwhile are
//! replayed over the snapshot by position. On a shared log it also records the position it
//! has applied, so that other nodes' events are folded in order (`follow`).

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

/// A lookup in a view that is still loading: the answer must come from the SQL view instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loading;

/// Why a snapshot could not be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("the active-token view is loaded already")]
    AlreadyLoaded,
    /// Changes between the two positions were neither in the snapshot nor buffered.
    #[error("the snapshot at position {snapshot} is older than position {from}, where loading began")]
    Stale { snapshot: i64, from: i64 },
}

/// The token maps built from a snapshot of the SQL view, off any lock, waiting to be installed.
pub struct LoadedTokens {
    position: i64,
    tokens: TokenMaps,
}

impl LoadedTokens {
    /// Builds the maps from the rows of the SQL active-token view at log position `position`.
    pub fn build(position: i64, rows: Vec<TokenRow>) -> Self {
        // Sized once: growing two maps of a million entries step by step rehashes them ~20 times.
        let mut tokens = TokenMaps {
            by_digest: FxHashMap::with_capacity_and_hasher(rows.len() * 2, Default::default()),
            by_id: FxHashMap::with_capacity_and_hasher(rows.len(), Default::default()),
        };
        let mut clients: HashMap<String, Arc<str>> = HashMap::new();
        for r in rows {
            let client_id =
                clients.entry(r.client_id.clone()).or_insert_with(|| r.client_id.as_str().into()).clone();
            let (token_id, access, refresh, info) = TokenInfo::of_row(r, client_id);
            tokens.insert(token_id, access, refresh, Arc::new(info));
        }
        Self { position, tokens }
    }

    /// The log position of the snapshot.
    pub fn position(&self) -> i64 {
        self.position
    }

    /// How many tokens the snapshot holds.
    pub fn len(&self) -> usize {
        self.tokens.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.by_id.is_empty()
    }
}

impl TokenInfo {
    /// A row of the SQL view as the token's id, digests and what introspection needs of it.
    pub fn of_row(r: TokenRow, client_id: Arc<str>) -> (Uuid, Digest, Option<Digest>, Self) {
        let info = TokenInfo {
            client_id,
            username: r.username.map(Into::into),
            scopes: r.scopes.into(),
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            refresh: r.refresh.as_ref().map(|x| (x.issued_at, x.expires_at)),
        };
        (r.token_id, Digest(r.access_digest), r.refresh.map(|x| Digest(x.digest)), info)
    }
}

/// The tokens and, for revocations, each token's digests by id.
#[derive(Default)]
struct TokenMaps {
    by_digest: FxHashMap<Digest, (Half, Arc<TokenInfo>)>,
    by_id: FxHashMap<Uuid, (Digest, Option<Digest>)>,
}

/// The token changes handed over while the view loads, each with the log position it took
/// effect at; replayed over the snapshot when it is installed.
struct Pending {
    /// Where the view stood when loading began: every later change is here.
    from: i64,
    changes: Vec<(i64, Change)>,
}

#[derive(Default)]
struct Tokens {
    maps: TokenMaps,
    /// Token changes at or before this position are in the maps already: the snapshot they
    /// were built from holds them. A change handed over after the snapshot was installed may
    /// still be one of them (its batch committed before the snapshot was read).
    loaded_at: i64,
    /// `Some` while the view loads.
    pending: Option<Pending>,
}

/// The view. Cheap to share; reads take a read lock for a hash lookup.
///
/// It is either ready, or loading: created empty by `loading` at the SQL view's checkpoint,
/// serving no lookups, buffering every token change handed to it, until `install` puts the
/// maps built from a snapshot in place and replays the buffered changes that came after it.
/// Client changes are never buffered: the client cache is not part of a snapshot, and a
/// deletion must reach it at once.
#[derive(Default)]
pub struct MemoryView {
    tokens: RwLock<Tokens>,
    clients: RwLock<HashMap<ClientId, Arc<ClientRecord>>>,
    /// Bumped whenever a client is deleted, so a cache fill that raced a deletion is dropped.
    client_generation: AtomicU64,
    /// The log position whose changes the view has been handed, in order (moved under the
    /// `tokens` write lock). A follower reads the log from here.
    applied: AtomicI64,
}

impl MemoryView {
    /// Builds a ready view from the rows of the SQL active-token view at log position `position`.
    pub fn load(position: i64, rows: Vec<TokenRow>) -> Self {
        let view = Self::loading(position);
        // Cannot fail: a fresh loading view at the snapshot's own position.
        let _ = view.install(LoadedTokens::build(position, rows));
        view
    }

    /// An empty view that loads in the background: `position` is the SQL view's checkpoint
    /// read before the snapshot that `install` will get, so the snapshot is never older.
    pub fn loading(position: i64) -> Self {
        let tokens = Tokens {
            maps: TokenMaps::default(),
            loaded_at: position,
            pending: Some(Pending { from: position, changes: Vec::new() }),
        };
        Self { tokens: RwLock::new(tokens), applied: AtomicI64::new(position), ..Self::default() }
    }

    /// Installs the maps built from a snapshot, replays every token change handed over since
    /// with a position after the snapshot's, in order, and marks the view ready. Returns how
    /// many changes were replayed. A change at or before the snapshot's position is already in
    /// it: replaying it would undo nothing, but replaying an issue that a later revocation in
    /// the snapshot removed would bring a revoked token back.
    pub fn install(&self, loaded: LoadedTokens) -> Result<usize, InstallError> {
        let mut tokens = self.write_tokens();
        let Some(pending) = tokens.pending.as_ref() else {
            return Err(InstallError::AlreadyLoaded);
        };
        if loaded.position < pending.from {
            return Err(InstallError::Stale { snapshot: loaded.position, from: pending.from });
        }
        let pending = tokens.pending.take().map(|p| p.changes).unwrap_or_default();
        tokens.maps = loaded.tokens;
        tokens.loaded_at = loaded.position;
        let mut replayed = 0;
        for (position, change) in pending {
            if position > loaded.position {
                tokens.maps.apply(change);
                replayed += 1;
            }
        }
        Ok(replayed)
    }

    /// Whether the view answers lookups (it has been loaded).
    pub fn is_ready(&self) -> bool {
        self.read_tokens().pending.is_none()
    }

    /// The log position whose changes the view has been handed.
    pub fn applied(&self) -> i64 {
        self.applied.load(Ordering::Acquire)
    }

    /// The active token whose access or refresh digest is `d`; `Err(Loading)` while the view
    /// loads, when only the SQL view can answer.
    pub fn token(&self, d: &Digest) -> Result<Option<(Half, Arc<TokenInfo>)>, Loading> {
        let tokens = self.read_tokens();
        if tokens.pending.is_some() {
            return Err(Loading);
        }
        Ok(tokens.maps.by_digest.get(d).cloned())
    }

    /// Every entry, sorted: for comparing two views.
    pub fn snapshot(&self) -> Vec<(Digest, Half, TokenInfo)> {
        let tokens = self.read_tokens();
        let mut all: Vec<_> =
            tokens.maps.by_digest.iter().map(|(d, (h, i))| (*d, *h, (**i).clone())).collect();
        all.sort_by_key(|(d, _, _)| d.0);
        all
    }

    /// The active tokens the view holds: 0 while it loads (see `is_ready`).
    pub fn token_count(&self) -> usize {
        self.read_tokens().maps.by_digest.values().filter(|(h, _)| *h == Half::Access).count()
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

    /// Applies the changes of a batch that committed the log up to position `end`, from the
    /// log's only writer (no contiguity check: nobody else appends).
    pub fn apply(&self, end: i64, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut tokens = self.write_tokens();
        self.hand_over(&mut tokens, changes.into_iter().map(|c| (end, c)));
        self.applied.fetch_max(end, Ordering::AcqRel);
    }

    /// Applies the changes of the log positions `start + 1 ..= end` if the view stands exactly at
    /// `start`; otherwise changes nothing and returns false (the caller reads the log instead).
    /// A batch is one commit and a snapshot's position is a commit's end, so giving every
    /// change the batch's end position never puts it on the wrong side of a snapshot.
    pub fn apply_at(&self, start: i64, end: i64, changes: Vec<Change>) -> bool {
        self.apply_events_at(start, end, changes.into_iter().map(|c| (end, c)).collect())
    }

    /// As `apply_at`, for changes read from the log with their own positions (a follower's
    /// page need not end where a commit did).
    pub fn apply_events_at(&self, start: i64, end: i64, changes: Vec<(i64, Change)>) -> bool {
        let mut tokens = self.write_tokens();
        if self.applied.load(Ordering::Acquire) != start {
            return false;
        }
        self.hand_over(&mut tokens, changes.into_iter());
        self.applied.store(end, Ordering::Release);
        true
    }

    /// Client changes go to the cache at once; token changes are buffered while loading,
    /// dropped when the installed snapshot holds them, and applied otherwise.
    fn hand_over(&self, tokens: &mut Tokens, changes: impl Iterator<Item = (i64, Change)>) {
        for (position, change) in changes {
            match change {
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
                token_change => match &mut tokens.pending {
                    Some(pending) => pending.changes.push((position, token_change)),
                    None if position <= tokens.loaded_at => {}
                    None => tokens.maps.apply(token_change),
                },
            }
        }
    }

    fn read_tokens(&self) -> std::sync::RwLockReadGuard<'_, Tokens> {
        self.tokens.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_tokens(&self) -> std::sync::RwLockWriteGuard<'_, Tokens> {
        self.tokens.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl TokenMaps {
    /// Applies one token change (client changes never reach here).
    fn apply(&mut self, change: Change) {
        match change {
            Change::Issued { token_id, access, refresh, info } => {
                self.insert(token_id, access, refresh, info)
            }
            Change::Revoked { token_id } => {
                // A refresh token carried over to a newer token is re-inserted by that
                // token's `Issued`, which always follows the revocation.
                if let Some((access, refresh)) = self.by_id.remove(&token_id) {
                    self.by_digest.remove(&access);
                    if let Some(rd) = refresh {
                        self.by_digest.remove(&rd);
                    }
                }
            }
            Change::Pruned { expired_before } => self.prune(expired_before),
            Change::ClientRegistered(_) | Change::ClientDeleted(_) => {}
        }
    }

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

#[cfg(test)]
mod tests;
