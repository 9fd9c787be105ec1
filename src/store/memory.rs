//! The in-memory active-token view that introspection reads, and a cache of client records for
//! client authentication. The writer thread changes it after each commit and before any reply,
//! so once a revocation is acknowledged introspection cannot see the token active; at start-up
//! it is loaded from the SQL view.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rusqlite::Connection;

use super::views::{ClientRecord, Half};
use super::StoreError;
use crate::domain::events::{Millis, TokenIssued};
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
    Issued { access: Digest, refresh: Option<Digest>, info: Arc<TokenInfo> },
    Revoked { access: Digest, refresh: Option<Digest> },
    ClientRegistered(Arc<ClientRecord>),
    ClientDeleted(ClientId),
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
            access: t.access_digest,
            refresh: t.refresh.as_ref().map(|r| r.digest),
            info: Arc::new(info),
        }
    }
}

/// The view. Cheap to share; reads take a read lock for a hash lookup.
#[derive(Default)]
pub struct MemoryView {
    tokens: RwLock<HashMap<Digest, (Half, Arc<TokenInfo>)>>,
    clients: RwLock<HashMap<ClientId, Arc<ClientRecord>>>,
    /// Bumped whenever a client is deleted, so a cache fill that raced a deletion is dropped.
    client_generation: AtomicU64,
}

impl MemoryView {
    /// Loads every active token from the SQL view.
    pub fn load(conn: &Connection) -> Result<Self, StoreError> {
        let mut stmt = conn.prepare(
            "SELECT access_digest, refresh_digest, client_id, username, scopes, issued_at, expires_at,
                refresh_issued_at, refresh_expires_at FROM active_tokens",
        )?;
        let mut rows = stmt.query([])?;
        let mut tokens = HashMap::new();
        let mut clients: HashMap<String, Arc<str>> = HashMap::new();
        while let Some(r) = rows.next()? {
            let digest = |i: usize| -> rusqlite::Result<Option<Digest>> {
                Ok(r.get::<_, Option<Vec<u8>>>(i)?.and_then(|b| <[u8; 32]>::try_from(b).ok()).map(Digest))
            };
            let (Some(access), refresh) = (digest(0)?, digest(1)?) else {
                continue;
            };
            let client: String = r.get(2)?;
            let client_id = clients.entry(client.clone()).or_insert_with(|| client.as_str().into()).clone();
            let refresh_times = match (r.get::<_, Option<i64>>(7)?, r.get::<_, Option<i64>>(8)?) {
                (Some(i), Some(e)) => Some((i, e)),
                _ => None,
            };
            let info = Arc::new(TokenInfo {
                client_id,
                username: r.get::<_, Option<String>>(3)?.map(Into::into),
                scopes: r.get::<_, String>(4)?.into(),
                issued_at: r.get(5)?,
                expires_at: r.get(6)?,
                refresh: refresh_times,
            });
            if let Some(rd) = refresh {
                tokens.insert(rd, (Half::Refresh, info.clone()));
            }
            tokens.insert(access, (Half::Access, info));
        }
        Ok(Self { tokens: RwLock::new(tokens), ..Self::default() })
    }

    /// The active token whose access or refresh digest is `d`.
    pub fn token(&self, d: &Digest) -> Option<(Half, Arc<TokenInfo>)> {
        self.tokens.read().unwrap_or_else(|p| p.into_inner()).get(d).cloned()
    }

    /// Every entry, sorted: for comparing two views.
    pub fn snapshot(&self) -> Vec<(Digest, Half, TokenInfo)> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = tokens.iter().map(|(d, (h, i))| (*d, *h, (**i).clone())).collect();
        all.sort_by_key(|(d, _, _)| d.0);
        all
    }

    pub fn token_count(&self) -> usize {
        self.tokens
            .read()
            .unwrap_or_else(|p| p.into_inner())
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

    /// Applies committed changes in order.
    pub fn apply(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        for change in changes {
            match change {
                Change::Issued { access, refresh, info } => {
                    if let Some(rd) = refresh {
                        tokens.insert(rd, (Half::Refresh, info.clone()));
                    }
                    tokens.insert(access, (Half::Access, info));
                }
                Change::Revoked { access, refresh } => {
                    // A refresh token carried over to a newer token is re-inserted by that
                    // token's `Issued`, which always follows the revocation.
                    tokens.remove(&access);
                    if let Some(rd) = refresh {
                        tokens.remove(&rd);
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
            }
        }
    }
}
