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
    let key = header_key(keys, &header, now, max_lifetime)?;
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

/// The claims of a JWT that this service minted itself, known because the ledger holds the
/// SHA-256 digest of exactly these bytes as an active token: its signature was made by this
/// service's key when it was minted, so it is not checked again (a P-256 verification is most of
/// an introspection's CPU). Everything else `verify` checks still is: `typ`, a published key of
/// the header's algorithm, the issuer and the time claims. A token the ledger does not hold
/// never gets here: it is inactive whatever its signature.
pub fn minted_claims(
    keys: &KeyStore,
    issuer: &str,
    token: &str,
    now: Millis,
    max_lifetime: Millis,
) -> Option<JwtClaims> {
    let data = jsonwebtoken::dangerous::insecure_decode::<JwtClaims>(token).ok()?;
    header_key(keys, &data.header, now, max_lifetime)?;
    let claims = data.claims;
    (claims.iss == issuer && claims.exp * 1000 > now && claims.nbf * 1000 <= now).then_some(claims)
}

/// The published key an access token JWT's header names, if its `typ` is `at+jwt` and its
/// algorithm is the key's.
fn header_key(
    keys: &KeyStore,
    header: &jsonwebtoken::Header,
    now: Millis,
    max_lifetime: Millis,
) -> Option<std::sync::Arc<crate::tokens::keys::Published>> {
    if header.typ.as_deref() != Some("at+jwt") {
        return None;
    }
    let key = keys.published(header.kid.as_deref()?, now, max_lifetime)?;
    (key.alg == header.alg).then_some(key)
}

/// Whether a presented token looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::grant::Draft;
    use crate::domain::types::{ClientId, ScopeSet};
    use crate::tokens::keys::SigningAlgorithm;

    const ISSUER: &str = "https://issuer.example/oauth2/token";
    const HOUR: Millis = 3_600_000;

    fn minted(keys: &Arc<KeyStore>, issued_at: Millis) -> String {
        let (client, subject, scopes) =
            (ClientId::parse("client-1").unwrap(), Subject::Application, ScopeSet::parse("a").unwrap());
        let draft = Draft {
            client_id: &client,
            subject: &subject,
            scopes: &scopes,
            issued_at,
            expires_at: issued_at + HOUR,
            with_refresh: false,
        };
        let generator = JwtGenerator::new(keys.clone(), ISSUER.into());
        generator.access_token(&AccessTokenClaims { jti: uuid::Uuid::nil(), draft: &draft }).unwrap()
    }

    #[test]
    fn a_minted_tokens_claims_are_read_as_the_full_verification_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let keys = Arc::new(KeyStore::open(dir.path(), SigningAlgorithm::ES256, now).unwrap());
        let token = minted(&keys, now - 1_000);
        let full = verify(&keys, ISSUER, &token, now, HOUR).expect("the signature verifies");
        assert_eq!(minted_claims(&keys, ISSUER, &token, now, HOUR), Some(full));
    }

    #[test]
    fn a_minted_token_of_another_issuer_or_out_of_its_time_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let keys = Arc::new(KeyStore::open(dir.path(), SigningAlgorithm::ES256, now).unwrap());
        let token = minted(&keys, now - 1_000);
        assert_eq!(minted_claims(&keys, "https://other.example/oauth2/token", &token, now, HOUR), None);
        assert_eq!(minted_claims(&keys, ISSUER, &token, now + 2 * HOUR, HOUR), None, "expired");
        assert_eq!(minted_claims(&keys, ISSUER, &token, now - 60_000, HOUR), None, "not yet valid");
        assert_eq!(minted_claims(&keys, ISSUER, "a.b.c", now, HOUR), None);
    }
}
