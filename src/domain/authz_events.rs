//! The events of the authorization code flow: codes, sign-ins, sessions and consents. Codes and
//! session ids are recorded only as SHA-256 digests, never as bearer values.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::events::Millis;
use super::pkce::Challenge;
use super::types::{ClientId, Digest, ScopeSet, Username};

/// A code was handed to a client's redirect URI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeIssued {
    pub code_digest: Digest,
    pub client_id: ClientId,
    pub username: Username,
    pub scopes: ScopeSet,
    /// The `redirect_uri` the authorization request sent; the token request must repeat it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Challenge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// When the person signed in (the ID token's `auth_time`).
    pub auth_time: Millis,
    pub issued_at: Millis,
    pub expires_at: Millis,
}

/// A code was exchanged for the token `token_id` (of refresh family `family_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRedeemed {
    pub code_digest: Digest,
    pub token_id: Uuid,
    pub family_id: Uuid,
}

/// A failed exchange burned the code (wrong verifier, redirect URI or client, or expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRejected {
    pub code_digest: Digest,
    pub reason: String,
}

/// A used or burned code was presented again; the token issued from it, if still active, is
/// revoked by a `TokenRevoked{reason: code_replay}` that follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeReplayed {
    pub code_digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_token_id: Option<Uuid>,
}

/// A person signed in on the login page for a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginSucceeded {
    pub username: Username,
    pub client_id: ClientId,
}

/// A wrong username or password on the login page; `locked_until` once the back-off locks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailed {
    pub username: String,
    pub client_id: ClientId,
    pub consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<Millis>,
}

/// A login session began; the cookie holds the value whose digest this is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStarted {
    pub session_digest: Digest,
    pub username: Username,
    pub auth_time: Millis,
    pub expires_at: Millis,
}

/// A login session ended (`/oidc/logout`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub session_digest: Digest,
    pub username: Username,
}

/// A person approved a client's scopes; `remember` ("approve always") skips the page later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGiven {
    pub username: Username,
    pub client_id: ClientId,
    pub scopes: ScopeSet,
    pub remember: bool,
}

/// A person denied a client; any remembered consent for it is forgotten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentWithdrawn {
    pub username: Username,
    pub client_id: ClientId,
}
