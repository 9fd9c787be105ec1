//! The events of the ledger: the audit record. Each has a stable type string and a schema
//! version; payloads hold digests and sealed (encrypted) values, never a bearer value.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::authz_events::{
    CodeIssued, CodeRedeemed, CodeRejected, CodeReplayed, ConsentGiven, ConsentWithdrawn, LoginFailed,
    LoginSucceeded, SessionEnded, SessionStarted,
};
use super::client::ClientOAuth;
use super::types::{ClientId, Digest, GrantType, ScopeSet, Username};

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Why a token stopped being active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// `renew_access_token_per_request`: a new request for the key replaced it.
    Renewal,
    /// The refresh grant replaced it.
    Refresh,
    /// RFC 7009 revocation by its client.
    RevocationRequest,
    /// A rotated refresh token of its family was replayed after the grace period (RFC 9700).
    RefreshTokenReuse,
    /// It had expired and a new request for the key replaced it.
    ExpiryReplacement,
    /// Its client was deleted.
    ClientDeleted,
    /// The authorization code it was issued from was presented again (RFC 6749 section 4.1.2).
    CodeReplay,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Renewal => "renewal",
            Self::Refresh => "refresh",
            Self::RevocationRequest => "revocation_request",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::ExpiryReplacement => "expiry_replacement",
            Self::ClientDeleted => "client_deleted",
            Self::CodeReplay => "code_replay",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRegistered {
    pub client_id: ClientId,
    pub client_name: String,
    pub secret_digest: Digest,
    pub grant_types: Vec<GrantType>,
    /// The client's token generator (`opaque`, `jwt`, or a custom one); absent: the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_type: Option<String>,
    /// Redirect URIs, public client, PKCE rules (absent in logs from before the code flow).
    #[serde(flatten)]
    pub oauth: ClientOAuth,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientDeleted {
    pub client_id: ClientId,
}

/// A user was created. `password_hash` is an argon2id PHC string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAdded {
    pub username: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPasswordChanged {
    pub username: String,
    pub password_hash: String,
}

/// The refresh half of a token pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshPart {
    pub digest: Digest,
    pub issued_at: Millis,
    pub expires_at: Millis,
    /// The refresh token value sealed with AES-256-GCM under the data folder's key (base64).
    pub sealed: String,
}

/// A new access token (and maybe refresh token) became the key's active token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssued {
    pub token_id: Uuid,
    /// The refresh family: the first token of a chain of refreshes; reuse detection revokes it.
    pub family_id: Uuid,
    pub client_id: ClientId,
    /// The user; `None` for application (client_credentials) tokens.
    pub username: Option<Username>,
    pub scopes: ScopeSet,
    pub grant_type: GrantType,
    pub access_digest: Digest,
    pub issued_at: Millis,
    pub expires_at: Millis,
    /// The access token value sealed with AES-256-GCM under the data folder's key (base64), kept
    /// so that the same token can be handed back while renewal is off. Absent when the token
    /// will never be handed back (renewal per request, JWTs): then only its digest and id exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_access: Option<String>,
    pub refresh: Option<RefreshPart>,
}

/// The key's active token was handed back again (renewal off).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenReturned {
    pub token_id: Uuid,
    pub expires_in: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    pub token_id: Uuid,
    pub reason: RevokeReason,
}

/// A rotated refresh token was presented again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenReplayed {
    pub family_id: Uuid,
    pub refresh_digest: Digest,
    pub within_grace_period: bool,
}

/// How a caller failed to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A resource owner's password (password grant).
    Password,
    /// A client's secret.
    ClientSecret,
}

/// A failed authentication of a known client, or of a user through the password grant; the
/// peer address travels in the envelope. `locked_until` is set once the back-off locks the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticationFailed {
    pub method: AuthMethod,
    pub client_id: ClientId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<Millis>,
}

/// Token cleanup (WSO2's `[oauth.token_cleanup]`): rows that can no longer answer anything left
/// the views. An access token whose refresh token (if any) also expired before `expired_before`,
/// codes and login sessions that expired before it, and rotated refresh tokens rotated before
/// `rotated_before` (chosen so that those refresh tokens had expired by then too, which keeps
/// RFC 9700 reuse detection for every rotated token that could still be presented). The event
/// carries the cutoffs, so a fold of the log removes exactly the same rows as the server did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredPruned {
    pub expired_before: Millis,
    pub rotated_before: Millis,
}

/// Every event of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    ClientRegistered(ClientRegistered),
    ClientDeleted(ClientDeleted),
    UserAdded(UserAdded),
    UserPasswordChanged(UserPasswordChanged),
    TokenIssued(TokenIssued),
    TokenReturned(TokenReturned),
    TokenRevoked(TokenRevoked),
    RefreshTokenReplayed(RefreshTokenReplayed),
    AuthenticationFailed(AuthenticationFailed),
    CodeIssued(CodeIssued),
    CodeRedeemed(CodeRedeemed),
    CodeRejected(CodeRejected),
    CodeReplayed(CodeReplayed),
    LoginSucceeded(LoginSucceeded),
    LoginFailed(LoginFailed),
    SessionStarted(SessionStarted),
    SessionEnded(SessionEnded),
    ConsentGiven(ConsentGiven),
    ConsentWithdrawn(ConsentWithdrawn),
    ExpiredPruned(ExpiredPruned),
}

/// An event that could not be decoded from its stored form.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} has schema version {version}, which this build does not know")]
    UnknownVersion { event_type: String, version: u32 },
    #[error("{event_type} payload does not decode: {source}")]
    Payload { event_type: String, source: serde_json::Error },
}

/// The schema version every event is written with today.
pub const SCHEMA_VERSION: u32 = 1;

macro_rules! event_codec {
    ($($variant:ident),* $(,)?) => {
        impl Event {
            /// The stable type string stored beside the payload.
            pub fn event_type(&self) -> &'static str {
                match self { $(Event::$variant(_) => stringify!($variant),)* }
            }

            /// The JSON payload.
            pub fn payload(&self) -> String {
                let encoded = match self { $(Event::$variant(e) => serde_json::to_string(e),)* };
                // Serialising these plain structs cannot fail: no maps with non-string keys.
                encoded.expect("event payloads always serialise")
            }

            /// Decodes a stored event. Older schema versions are upcast here when they exist.
            pub fn decode(event_type: &str, version: u32, payload: &str) -> Result<Self, DecodeError> {
                if version != SCHEMA_VERSION {
                    return Err(DecodeError::UnknownVersion { event_type: event_type.to_owned(), version });
                }
                let wrap = |source| DecodeError::Payload { event_type: event_type.to_owned(), source };
                match event_type {
                    $(stringify!($variant) => serde_json::from_str(payload).map(Event::$variant).map_err(wrap),)*
                    other => Err(DecodeError::UnknownType(other.to_owned())),
                }
            }
        }
    };
}

event_codec!(
    ClientRegistered,
    ClientDeleted,
    UserAdded,
    UserPasswordChanged,
    TokenIssued,
    TokenReturned,
    TokenRevoked,
    RefreshTokenReplayed,
    AuthenticationFailed,
    CodeIssued,
    CodeRedeemed,
    CodeRejected,
    CodeReplayed,
    LoginSucceeded,
    LoginFailed,
    SessionStarted,
    SessionEnded,
    ConsentGiven,
    ConsentWithdrawn,
    ExpiredPruned,
);

/// An event on its way into the log, with the stream it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub stream: String,
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_through_its_stored_form() {
        let event = Event::TokenRevoked(TokenRevoked {
            token_id: Uuid::nil(),
            reason: RevokeReason::RefreshTokenReuse,
        });
        let payload = event.payload();
        assert!(payload.contains("\"refresh_token_reuse\""));
        let back = Event::decode(event.event_type(), SCHEMA_VERSION, &payload).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn a_client_registered_before_the_code_flow_still_decodes() {
        let old = r#"{"client_id":"c1","client_name":"n","secret_digest":"0000000000000000000000000000000000000000000000000000000000000000","grant_types":["password"]}"#;
        match Event::decode("ClientRegistered", SCHEMA_VERSION, old).unwrap() {
            Event::ClientRegistered(c) => assert_eq!(c.oauth, ClientOAuth::default()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_types_and_versions_are_errors_not_panics() {
        assert!(matches!(Event::decode("Nope", 1, "{}"), Err(DecodeError::UnknownType(_))));
        assert!(matches!(Event::decode("TokenRevoked", 99, "{}"), Err(DecodeError::UnknownVersion { .. })));
        assert!(matches!(Event::decode("TokenRevoked", 1, "{"), Err(DecodeError::Payload { .. })));
    }
}
