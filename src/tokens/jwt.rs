//! Self-contained access tokens per RFC 9068, signed with the data folder's key. The ledger
//! keeps only the `jti` (the token id) and the digest; JWTs renew on every request.

use std::sync::Arc;

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::KeyStore;
use super::{AccessTokenClaims, GeneratorError, TokenGenerator};
use crate::domain::events::Millis;
use crate::domain::types::Subject;

/// The claims of an access token JWT (RFC 9068 section 2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

/// Signs access tokens as JWTs; renews per request, as WSO2's `JWTTokenIssuer` does.
pub struct JwtGenerator {
    keys: Arc<KeyStore>,
    issuer: String,
}

impl JwtGenerator {
    /// `issuer` is the token endpoint URL (the `iss` claim).
    pub fn new(keys: Arc<KeyStore>, issuer: String) -> Self {
        Self { keys, issuer }
    }
}

impl TokenGenerator for JwtGenerator {
    fn access_token(&self, input: &AccessTokenClaims<'_>) -> Result<String, GeneratorError> {
        let c = input.draft;
        let signing = self.keys.signing();
        let mut header = Header::new(signing.alg);
        header.typ = Some("at+jwt".into());
        header.kid = Some(signing.kid.clone());
        let claims = JwtClaims {
            iss: self.issuer.clone(),
            sub: match c.subject {
                Subject::User(u) => u.as_str().to_owned(),
                Subject::Application => c.client_id.to_string(),
            },
            aud: c.client_id.to_string(),
            client_id: c.client_id.to_string(),
            scope: (!c.scopes.is_empty()).then(|| c.scopes.to_string()),
            iat: c.issued_at / 1000,
            nbf: c.issued_at / 1000,
            exp: c.expires_at / 1000,
            jti: input.jti.to_string(),
        };
        jsonwebtoken::encode(&header, &claims, &signing.key).map_err(|e| GeneratorError(e.to_string()))
    }

    fn renew_per_request(&self) -> Option<bool> {
        Some(true)
    }
}

/// Checks a presented JWT's signature (a published key), `typ`, issuer and time claims.
/// `None` for anything that is not a valid access token JWT of this server.
pub fn verify(
    keys: &KeyStore,
    issuer: &str,
    token: &str,
    now: Millis,
    max_lifetime: Millis,
) -> Option<JwtClaims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some("at+jwt") {
        return None;
    }
    let key = keys.published(header.kid.as_deref()?, now, max_lifetime)?;
    if key.alg != header.alg {
        return None;
    }
    let mut validation = Validation::new(key.alg);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
    let claims = jsonwebtoken::decode::<JwtClaims>(token, &key.decoding, &validation).ok()?.claims;
    // jsonwebtoken reads its own clock; the ledger's `now` is the one that counts.
    (claims.exp * 1000 > now && claims.nbf * 1000 <= now).then_some(claims)
}

/// Whether a presented token looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}
