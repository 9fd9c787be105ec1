//! OpenID Connect: the ID token (RS256 by default, an RSA key in the key store and the JWKS),
//! UserInfo, and the discovery document at WSO2's paths. The issuer is the token endpoint URL,
//! the same `iss` as JWT access tokens (`AppState::issuer`, `config::issuer`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::Header;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::error::ApiError;
use super::form::OAuthForm;
use super::pages::Csrf;
use super::token::no_store;
use super::AppState;
use crate::domain::types::Digest;
use crate::store::authz_commands::Redeemed;
use crate::store::ledger::system_clock;
use crate::store::lookup::Half;
use crate::tokens::keys::KeyStore;

/// What the code flow adds to the shared state.
pub struct AuthzState {
    pub csrf: Csrf,
    /// The ID-token signing keys (RS256), published in the JWKS beside the access-token keys.
    pub id_keys: Arc<KeyStore>,
}

/// The claims of an ID token (OIDC Core section 2).
#[derive(Debug, Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    azp: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    at_hash: String,
}

/// The left half of the SHA-256 of the access token, base64url (OIDC Core section 3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// Signs the ID token for a redeemed code.
pub fn id_token(
    app: &AppState,
    client_id: &str,
    r: &Redeemed,
) -> Result<String, jsonwebtoken::errors::Error> {
    let signing = app.authz.id_keys.signing();
    let mut header = Header::new(signing.alg);
    header.kid = Some(signing.kid.clone());
    let now = system_clock() / 1000;
    let issuer = app.issuer();
    let claims = IdTokenClaims {
        iss: &issuer,
        sub: r.username.as_str(),
        aud: client_id,
        azp: client_id,
        exp: now + r.granted.expires_in,
        iat: now,
        auth_time: r.auth_time / 1000,
        nonce: r.nonce.as_deref(),
        at_hash: at_hash(&r.granted.access_token),
    };
    jsonwebtoken::encode(&header, &claims, &signing.key)
}

/// The OpenID Provider configuration (OIDC Discovery section 3), served at
/// `/oauth2/token/.well-known/openid-configuration` (issuer + the well-known suffix),
/// `/oauth2/oidcdiscovery/.well-known/openid-configuration` and `/.well-known/openid-configuration`.
#[utoipa::path(
    get, path = "/oauth2/token/.well-known/openid-configuration", tag = "oidc",
    responses((status = 200, description = "The OpenID Provider configuration (OIDC Discovery section 3)",
        body = Object))
)]
pub async fn discovery(State(app): State<AppState>) -> Json<serde_json::Value> {
    let base = &app.base_url;
    Json(json!({
        "issuer": app.issuer(),
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "userinfo_endpoint": format!("{base}/oauth2/userinfo"),
        "jwks_uri": format!("{base}/oauth2/jwks"),
        "end_session_endpoint": format!("{base}/oidc/logout"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "registration_endpoint": format!("{base}/api/identity/oauth2/dcr/v1.1/register"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "password", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash", "preferred_username"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}

/// RFC 6750 section 3: `401` with a `Bearer` challenge.
fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let mut response =
        (status, Json(json!({"error": error, "error_description": description}))).into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    no_store(response)
}

/// The bearer token of a UserInfo request: the header, or a form body's `access_token`.
fn bearer(headers: &HeaderMap, form: Option<&OAuthForm>) -> Option<String> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    from_header.or_else(|| form.and_then(|f| f.get("access_token")).map(str::to_owned))
}

/// `GET` and `POST /oauth2/userinfo`: `sub` and `preferred_username` for a live access token
/// with the `openid` scope; 401 for anything revoked, expired or unknown.
pub async fn userinfo(app: &AppState, headers: &HeaderMap, form: Option<&OAuthForm>) -> Response {
    let Some(token) = bearer(headers, form) else {
        let mut response = (StatusCode::UNAUTHORIZED, "").into_response();
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return no_store(response);
    };
    let found = match app.readers.active_token(&app.memory, Digest::of(token.as_bytes())).await {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let live = found.filter(|(half, t)| *half == Half::Access && t.expires_at > system_clock());
    let Some((_, info)) = live else {
        return bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the access token is invalid, revoked or expired",
        );
    };
    let Some(username) = info.username.as_ref() else {
        return bearer_error(StatusCode::FORBIDDEN, "insufficient_scope", "an application token has no user");
    };
    if !info.scopes.split(' ').any(|s| s == "openid") {
        return bearer_error(StatusCode::FORBIDDEN, "insufficient_scope", "the openid scope is required");
    }
    let name: &str = username;
    no_store(Json(json!({"sub": name, "preferred_username": name})).into_response())
}

/// `GET /oauth2/userinfo` with `Authorization: Bearer`.
#[utoipa::path(
    get, path = "/oauth2/userinfo", tag = "oidc",
    responses(
        (status = 200, description = "The signed-in person's claims (`Cache-Control: no-store`)", body = crate::http::openapi::UserInfo),
        (status = 401, description = "No bearer token (an empty body), or `invalid_token` (RFC 6750 section 3.1, with `WWW-Authenticate`)", content(
            (crate::http::openapi::OAuthError = "application/json"),
            (String = "text/plain"),
        )),
        (status = 403, description = "`insufficient_scope`: an application token, or no `openid` scope", body = crate::http::openapi::OAuthError),
    )
)]
pub async fn userinfo_get(State(app): State<AppState>, headers: HeaderMap) -> Response {
    userinfo(&app, &headers, None).await
}

/// `POST /oauth2/userinfo`: the bearer token in the header or as the form's `access_token`.
#[utoipa::path(
    post, path = "/oauth2/userinfo", tag = "oidc",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded", description = "`access_token`, when not in the header"),
    responses(
        (status = 200, description = "The signed-in person's claims (`Cache-Control: no-store`)", body = crate::http::openapi::UserInfo),
        (status = 401, description = "No bearer token (an empty body), or `invalid_token` (RFC 6750 section 3.1, with `WWW-Authenticate`)", content(
            (crate::http::openapi::OAuthError = "application/json"),
            (String = "text/plain"),
        )),
        (status = 403, description = "`insufficient_scope`: an application token, or no `openid` scope", body = crate::http::openapi::OAuthError),
        (status = 400, description = "A body that is not a form", body = crate::http::openapi::OAuthError),
        (status = 408, description = "The body did not arrive in time", body = crate::http::openapi::OAuthError),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::http::openapi::OAuthError),
    )
)]
pub async fn userinfo_post(State(app): State<AppState>, headers: HeaderMap, form: OAuthForm) -> Response {
    userinfo(&app, &headers, Some(&form)).await
}

/// The JWK Set: the access-token keys and the ID-token keys.
pub fn jwks(app: &AppState, now: i64) -> serde_json::Value {
    let max = app.settings.max_access_token_ms();
    let mut keys = app.keys.jwks(now, max);
    let id = app.authz.id_keys.jwks(now, max);
    if let (Some(all), Some(more)) = (keys["keys"].as_array_mut(), id["keys"].as_array()) {
        all.extend(more.iter().cloned());
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_is_the_left_half_of_the_sha256_base64url() {
        // 16 bytes give 22 base64url characters without padding.
        let hash = at_hash("an-access-token");
        assert_eq!(hash.len(), 22);
        let full = Sha256::digest(b"an-access-token");
        assert_eq!(URL_SAFE_NO_PAD.decode(&hash).unwrap(), full[..16].to_vec());
    }
}
