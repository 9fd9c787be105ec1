//! Newtypes built once at the edge (parse, don't validate): domain functions never take a bare
//! `String` for a client id, a username, a scope set or a digest.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Why a value from the outside world was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the client id is empty, longer than 128 characters or not printable ASCII")]
    ClientId,
    #[error("the username is empty, longer than 128 characters or contains control characters")]
    Username,
    #[error("the scope contains characters outside RFC 6749 section 3.3 or is too long")]
    Scope,
    #[error("the digest is not 64 hexadecimal digits")]
    Digest,
}

/// A registered client's identifier: 1 to 128 printable ASCII characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let ok = !raw.is_empty() && raw.len() <= 128 && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(raw.to_owned())).ok_or(ParseError::ClientId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A username as typed, with its case-insensitive canonical form (WSO2 compares usernames in lower
/// case when the user store is case-insensitive, which is its default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username {
    display: String,
    canonical: String,
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let chars = raw.chars().count();
        if chars == 0 || chars > 128 || raw.chars().any(char::is_control) || raw.trim() != raw {
            return Err(ParseError::Username);
        }
        Ok(Self { display: raw.to_owned(), canonical: raw.to_lowercase() })
    }

    /// The form used as a key: lower case.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }
}

impl TryFrom<String> for Username {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<Username> for String {
    fn from(name: Username) -> String {
        name.display
    }
}

/// A set of scopes: order and duplicates ignored, case kept (WSO2 `OAuth2Util.buildScopeString`).
/// Its text form is the scopes sorted and joined by single spaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Longest scope string accepted, in bytes.
    pub const MAX_LEN: usize = 4096;

    /// Parses a space-delimited `scope` parameter (RFC 6749 section 3.3: scope-token =
    /// 1*( %x21 / %x23-5B / %x5D-7E )).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.len() > Self::MAX_LEN {
            return Err(ParseError::Scope);
        }
        let valid = |b: u8| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b);
        let mut set = BTreeSet::new();
        for token in raw.split([' ', '\t', '\n', '\r']).filter(|t| !t.is_empty()) {
            if !token.bytes().all(valid) {
                return Err(ParseError::Scope);
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The set without `scope`.
    pub fn without(&self, scope: &str) -> ScopeSet {
        Self(self.0.iter().filter(|s| *s != scope).cloned().collect())
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
            first = false;
        }
        Ok(())
    }
}

impl TryFrom<String> for ScopeSet {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse(&raw)
    }
}

impl From<ScopeSet> for String {
    fn from(set: ScopeSet) -> String {
        set.to_string()
    }
}

/// A SHA-256 digest: how tokens, refresh tokens and client secrets are kept at rest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub fn of(value: &[u8]) -> Self {
        Self(Sha256::digest(value).into())
    }

    pub fn parse_hex(raw: &str) -> Result<Self, ParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(raw, &mut out).map_err(|_| ParseError::Digest)?;
        Ok(Self(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl TryFrom<String> for Digest {
    type Error = ParseError;
    fn try_from(raw: String) -> Result<Self, ParseError> {
        Self::parse_hex(&raw)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_hex()
    }
}

/// The grants this service implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Password,
    ClientCredentials,
    RefreshToken,
    /// RFC 6749 section 4.1 with PKCE (RFC 7636).
    AuthorizationCode,
}

impl GrantType {
    pub const ALL: [GrantType; 4] =
        [Self::Password, Self::ClientCredentials, Self::RefreshToken, Self::AuthorizationCode];
    /// What a client gets when its registration names no grant types (as before the code flow:
    /// a code client must register redirect URIs, so it names its grants).
    pub const DEFAULT: [GrantType; 3] = [Self::Password, Self::ClientCredentials, Self::RefreshToken];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::AuthorizationCode => "authorization_code",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == raw)
    }
}

/// Whom a token speaks for: a user (password and refresh grants) or the application itself
/// (client_credentials). Part of the token key, which avoids WSO2's product-is #28440 collision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(Username),
    Application,
}

/// The token key: one active token at most per key. Grant type is deliberately not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    pub client: ClientId,
    pub subject: Subject,
    pub scopes: ScopeSet,
}

impl TokenKey {
    /// The event stream of this key: `grant-` and the hex SHA-256 of its length-prefixed parts,
    /// so that no username or scope text can make two keys collide.
    pub fn stream(&self) -> String {
        let mut h = Sha256::new();
        let scopes = self.scopes.to_string();
        let (kind, user) = match &self.subject {
            Subject::User(u) => ("user", u.canonical()),
            Subject::Application => ("application", ""),
        };
        for part in [self.client.as_str(), kind, user, scopes.as_str()] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        format!("grant-{}", hex::encode(h.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_sets_ignore_order_and_duplicates_but_keep_case() {
        let a = ScopeSet::parse("write read read").unwrap();
        let b = ScopeSet::parse("read  write").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "read write");
        assert_ne!(a, ScopeSet::parse("Read write").unwrap());
    }

    #[test]
    fn scopes_outside_rfc_6749_are_refused() {
        assert_eq!(ScopeSet::parse("a\"b"), Err(ParseError::Scope));
        assert_eq!(ScopeSet::parse("a\\b"), Err(ParseError::Scope));
        assert_eq!(ScopeSet::parse(&"a".repeat(5000)), Err(ParseError::Scope));
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn usernames_share_a_key_whatever_their_case() {
        let client = ClientId::parse("c1").unwrap();
        let key = |name: &str| TokenKey {
            client: client.clone(),
            subject: Subject::User(Username::parse(name).unwrap()),
            scopes: ScopeSet::default(),
        };
        assert_eq!(key("Admin").stream(), key("admin").stream());
        let app =
            TokenKey { client: client.clone(), subject: Subject::Application, scopes: ScopeSet::default() };
        assert_ne!(app.stream(), key("admin").stream());
    }

    #[test]
    fn digests_round_trip_through_hex() {
        let d = Digest::of(b"token");
        assert_eq!(Digest::parse_hex(&d.to_hex()).unwrap(), d);
        assert!(Digest::parse_hex("zz").is_err());
    }
}
