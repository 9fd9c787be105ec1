//! What crosses the storage seam: stored events, view rows and view operations, in plain types
//! (strings, integers, byte arrays). Backends see only these; the shared code turns them into
//! domain types and back. Nothing here knows the rules or the database.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// Milliseconds since the Unix epoch, UTC (the domain's `Millis`).
pub type Ms = i64;

/// Who asked, from where, under which request: travels in the envelope, not the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub request_id: Option<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub grant_type: Option<String>,
    pub peer: Option<String>,
}

/// An event as stored, with everything the hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub position: i64,
    pub event_id: String,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: String,
    pub recorded_at: String,
    pub meta: RequestMeta,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl StoredEvent {
    /// `recorded_at` in milliseconds since the epoch.
    pub fn recorded_at_ms(&self) -> Option<Ms> {
        DateTime::parse_from_rfc3339(&self.recorded_at).ok().map(|t| t.timestamp_millis())
    }
}

/// The hash of the empty log, which the first event chains from.
pub const GENESIS: [u8; 32] = [0; 32];

/// SHA-256 over the predecessor's hash and every stored field of the event, each length-prefixed
/// (8 bytes, big-endian) so that no field boundary can move. Absent metadata hashes as an empty
/// field with length u64::MAX. The audit CLI recomputes exactly this.
pub fn chain_hash(prev_hash: &[u8], e: &StoredEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    let mut field = |bytes: Option<&[u8]>| match bytes {
        Some(b) => {
            h.update((b.len() as u64).to_be_bytes());
            h.update(b);
        }
        None => h.update(u64::MAX.to_be_bytes()),
    };
    field(Some(&e.position.to_be_bytes()));
    field(Some(e.event_id.as_bytes()));
    field(Some(e.stream.as_bytes()));
    field(Some(&e.version.to_be_bytes()));
    field(Some(e.event_type.as_bytes()));
    field(Some(&e.schema_version.to_be_bytes()));
    field(Some(e.payload.as_bytes()));
    field(Some(e.recorded_at.as_bytes()));
    let m = &e.meta;
    for value in [&m.request_id, &m.client_id, &m.username, &m.grant_type, &m.peer] {
        field(value.as_deref().map(str::as_bytes));
    }
    h.finalize().into()
}

/// The end of the log: where the next event goes and what it chains from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub position: i64,
    pub hash: Vec<u8>,
}

impl Tail {
    /// The tail of the empty log.
    pub fn genesis() -> Self {
        Tail { position: 0, hash: GENESIS.to_vec() }
    }
}

/// Formats a time as stored in `recorded_at`: RFC 3339, UTC, milliseconds.
pub fn format_time(ms: Ms) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Where and why the hash chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event log's hash chain is broken at position {position}: {reason}")]
pub struct BrokenChain {
    pub position: i64,
    pub reason: String,
}

/// The refresh half of an active-token row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRow {
    pub digest: [u8; 32],
    pub issued_at: Ms,
    pub expires_at: Ms,
    pub sealed: String,
}

/// A row of the active-token view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub token_id: Uuid,
    pub family_id: Uuid,
    pub stream: String,
    pub client_id: String,
    pub username: Option<String>,
    /// Sorted and space-separated.
    pub scopes: String,
    pub grant_type: String,
    pub access_digest: [u8; 32],
    pub issued_at: Ms,
    pub expires_at: Ms,
    pub sealed_access: Option<String>,
    pub refresh: Option<RefreshRow>,
}

/// A row of the client view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub client_id: String,
    pub client_name: String,
    pub secret_digest: [u8; 32],
    /// Space-separated grant type names.
    pub grant_types: String,
    pub access_token_type: Option<String>,
    /// Redirect URIs, public flag and PKCE rules, as JSON (`{}` for a client without them).
    pub oauth: String,
}

/// A row of the authorization-code view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    pub code_digest: [u8; 32],
    pub client_id: String,
    /// The JSON of the code's `CodeIssued` event.
    pub issued: String,
    /// `active`, `redeemed` or `burned`.
    pub status: String,
    /// The refresh family of the token a redeemed code was exchanged for.
    pub family_id: Option<Uuid>,
    pub expires_at: Ms,
}

/// A row of the login-session view (expired rows may remain; readers compare `expires_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub session_digest: [u8; 32],
    pub username: String,
    pub auth_time: Ms,
    pub expires_at: Ms,
}

/// A consent remembered with "approve always".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    /// The case-folded username.
    pub username_key: String,
    pub client_id: String,
    /// Sorted and space-separated.
    pub scopes: String,
}

/// A row of the user view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub username: String,
    pub password_hash: String,
}

/// A row of the rotated-refresh-token view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatedRow {
    pub family_id: Uuid,
    pub client_id: String,
    pub stream: String,
    pub rotated_at: Ms,
}

/// One change to the views. The shared projection turns each event into these; a backend
/// applies them with its own SQL and holds no rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewOp {
    /// Insert or replace a client.
    PutClient(ClientRow),
    /// Remove a client with its rotated refresh tokens, codes and remembered consents.
    DeleteClient {
        client_id: String,
    },
    /// Insert or replace a user under its case-folded key.
    PutUser {
        key: String,
        user: UserRow,
    },
    SetPassword {
        key: String,
        password_hash: String,
    },
    /// A new active token; a refresh digest it carries is no longer rotated.
    InsertToken(TokenRow),
    /// Remember the token's refresh digest as rotated at `rotated_at` (before it is deleted).
    RotateRefresh {
        token_id: Uuid,
        rotated_at: Ms,
    },
    DeleteToken {
        token_id: Uuid,
    },
    /// A new (active) authorization code; replaces a row with the same digest.
    PutCode(CodeRow),
    /// The code was exchanged for a token of refresh family `family_id`.
    RedeemCode {
        code_digest: [u8; 32],
        family_id: Uuid,
    },
    /// A failed exchange burned the code.
    BurnCode {
        code_digest: [u8; 32],
    },
    /// Token cleanup: remove every token whose access and refresh halves both expired before
    /// `expired_before`, every code and login session expired before it, and every rotated
    /// refresh token rotated before `rotated_before`.
    PruneExpired {
        expired_before: Ms,
        rotated_before: Ms,
    },
    /// Insert or replace a login session.
    PutSession(SessionRow),
    DeleteSession {
        session_digest: [u8; 32],
    },
    /// Insert or replace the consent of a user for a client.
    PutConsent(ConsentRow),
    DeleteConsent {
        username_key: String,
        client_id: String,
    },
}

/// A storage failure as a backend reports it, classified by the database's own codes.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The database cannot be reached, is busy, full or read-only: worth a retry later (503).
    #[error("the database cannot be written or read right now: {0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
    /// A UNIQUE constraint refused the write (SQLite's extended code, SQLSTATE 23505).
    #[error("a concurrent write to the same stream version was refused: {0}")]
    Conflict(Box<dyn std::error::Error + Send + Sync>),
    /// A serialization failure (SQLSTATE 40001): the whole transaction may be retried.
    #[error("the transaction was serialised out and may be retried: {0}")]
    Retry(Box<dyn std::error::Error + Send + Sync>),
    #[error(
        "the database has schema version {found}, newer than this build's {supported}; upgrade the binary"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    /// A stored value that cannot be what the schema promises.
    #[error("a stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// Results at the seam.
pub type BResult<T> = Result<T, BackendError>;
