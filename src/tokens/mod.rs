//! The token-generator extension point (WSO2's `OauthTokenIssuer`): a generator makes access
//! token values and may force or forbid renewal per request; code beats config. Two ship:
//! `opaque` (the default) and `jwt` (RFC 9068). Downstream crates register their own by name.

pub mod jwt;
pub mod keys;
mod ring_jws;

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use crate::crypto;
use crate::domain::grant::Draft;

/// What the access token is about: the core's draft of it, and `jti`, the ledger's token id.
#[derive(Debug, Clone, Copy)]
pub struct AccessTokenClaims<'a> {
    pub jti: Uuid,
    pub draft: &'a Draft<'a>,
}

/// A generator failed to make a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GeneratorError(pub String);

/// Makes access token values.
pub trait TokenGenerator: Send + Sync {
    /// A new access token value for these claims. It must carry at least 160 random bits or be
    /// unforgeable (signed), and be unique per `jti`.
    fn access_token(&self, claims: &AccessTokenClaims<'_>) -> Result<String, GeneratorError>;

    /// `Some(true)`: renew on every request whatever the config says; `Some(false)`: never
    /// renew per request; `None`: `renew_access_token_per_request` decides.
    fn renew_per_request(&self) -> Option<bool> {
        None
    }
}

/// Random opaque tokens: 256 bits from the OS, base64url.
#[derive(Debug, Default)]
pub struct Opaque;

impl TokenGenerator for Opaque {
    fn access_token(&self, _claims: &AccessTokenClaims<'_>) -> Result<String, GeneratorError> {
        Ok(crypto::new_secret())
    }
}

/// Generators by name, and the server-wide default.
#[derive(Clone)]
pub struct Generators {
    by_name: HashMap<String, Arc<dyn TokenGenerator>>,
    default: String,
}

impl std::fmt::Debug for Generators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Generators").field("names", &names).field("default", &self.default).finish()
    }
}

/// The name of the built-in opaque generator.
pub const OPAQUE: &str = "opaque";
/// The name of the built-in JWT generator.
pub const JWT: &str = "jwt";

impl Generators {
    /// Only the opaque generator, as the default.
    pub fn opaque() -> Self {
        let mut by_name: HashMap<String, Arc<dyn TokenGenerator>> = HashMap::new();
        by_name.insert(OPAQUE.into(), Arc::new(Opaque));
        Self { by_name, default: OPAQUE.into() }
    }

    /// Adds (or replaces) a generator under `name`.
    pub fn register(&mut self, name: &str, generator: Arc<dyn TokenGenerator>) -> &mut Self {
        self.by_name.insert(name.to_owned(), generator);
        self
    }

    /// Makes `name` the server-wide default; it must be registered.
    pub fn set_default(&mut self, name: &str) -> Result<&mut Self, GeneratorError> {
        if !self.by_name.contains_key(name) {
            return Err(GeneratorError(format!("no token generator is registered as {name:?}")));
        }
        self.default = name.to_owned();
        Ok(self)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The client's generator, or the default when the client has none or names one this
    /// server does not have (logged).
    pub fn for_client(&self, name: Option<&str>) -> &dyn TokenGenerator {
        if let Some(n) = name {
            match self.by_name.get(n) {
                Some(g) => return g.as_ref(),
                None => {
                    tracing::warn!(generator = n, "unknown token generator for a client; using the default")
                }
            }
        }
        self.by_name.get(&self.default).or_else(|| self.by_name.get(OPAQUE)).map_or(&Opaque, |g| g.as_ref())
    }
}
