//! `POST /oauth2/introspect` (RFC 7662), read from the active-token view.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use super::auth::{introspection_caller, Caller};
use super::error::ApiError;
use super::form::OAuthForm;
use super::token::no_store;
use super::{AppState, RequestContext};
use crate::domain::types::Digest;
use crate::store::ledger::system_clock;
use crate::store::lookup::Half;
use crate::store::memory::TokenInfo;
use crate::tokens::jwt;

/// An introspection answer (RFC 7662 section 2.2); anything not live is `{"active":false}`.
#[derive(Serialize, Default, utoipa::ToSchema)]
pub struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aut: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<String>,
}

/// Token introspection, as the super admin or as a client (its own tokens only).
#[utoipa::path(
    post, path = "/oauth2/introspect", tag = "oauth2",
    request_body(content = crate::http::openapi::TokenParameter, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = [])),
    responses(
        (status = 200, description = "The token's state", body = Introspection),
        (status = 400, description = "RFC 6749 section 5.2 error", body = crate::http::openapi::OAuthError),
        (status = 401, description = "Client authentication failed (`invalid_client`, with `WWW-Authenticate`)", body = crate::http::openapi::OAuthError),
        (status = 408, description = "The body did not arrive in time", body = crate::http::openapi::OAuthError),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::http::openapi::OAuthError),
        (status = 503, description = "The ledger cannot be written right now (`server_error`, `Retry-After`)", body = crate::http::openapi::OAuthError),
    )
)]
pub async fn introspect(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, ApiError> {
    let caller = introspection_caller(&app, &ctx, &headers).await?;
    let token =
        form.get("token").ok_or_else(|| ApiError::invalid_request("the token parameter is missing"))?;
    let now = system_clock();
    let digest = Digest::of(token.as_bytes());
    if let Some(barrier) = &app.barrier {
        // On a shared log the view must have applied everything committed before this request:
        // a revocation (or an issue) on another node that returned is then seen here.
        barrier.wait().await?;
    }
    // The ledger decides first: a revoked, unknown or forged token is inactive without any
    // signature work. While the memory view loads at start-up, the SQL view answers.
    let found = app.readers.active_token(&app.memory, digest).await?;
    // An active JWT is one this service minted (the ledger holds the digest of exactly these
    // bytes), so its signature is not verified again; its header, key and claims still are.
    let claims = match (&found, jwt::looks_like_jwt(token)) {
        (Some(_), true) => {
            let max = app.settings.max_access_token_ms();
            match jwt::minted_claims(&app.keys, &app.jwt_issuer(), token, now, max) {
                Some(claims) => Some(claims),
                None => return Ok(no_store(Json(Introspection::default()).into_response())),
            }
        }
        _ => None,
    };
    let visible = found.filter(|(_, t)| match &caller {
        Caller::SuperAdmin => true,
        Caller::Client(id) => *t.client_id == *id.as_str(),
    });
    let mut body = match visible {
        Some((half, token)) => describe(&token, half, now),
        None => Introspection::default(),
    };
    if let Some(c) = claims.filter(|_| body.active) {
        body.jti = Some(c.jti);
        body.sub = Some(c.sub);
        body.iss = Some(c.iss);
        body.aud = Some(c.aud);
    }
    Ok(no_store(Json(body).into_response()))
}

/// Anything not live is exactly `{"active":false}` (RFC 7662 section 2.2).
fn describe(t: &TokenInfo, half: Half, now: i64) -> Introspection {
    let (issued_at, expires_at, token_type) = match (half, t.refresh) {
        (Half::Access, _) => (t.issued_at, t.expires_at, "Bearer"),
        (Half::Refresh, Some((issued, expires))) => (issued, expires, "Refresh"),
        (Half::Refresh, None) => return Introspection::default(),
    };
    if expires_at <= now {
        return Introspection::default();
    }
    Introspection {
        active: true,
        scope: (!t.scopes.is_empty()).then(|| t.scopes.to_string()),
        client_id: Some(t.client_id.to_string()),
        username: t.username.as_ref().map(|u| u.to_string()),
        token_type: Some(token_type),
        exp: Some(expires_at / 1000),
        iat: Some(issued_at / 1000),
        nbf: Some(issued_at / 1000),
        aut: Some(if t.username.is_some() { "APPLICATION_USER" } else { "APPLICATION" }),
        ..Introspection::default()
    }
}
