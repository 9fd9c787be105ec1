//! `POST /oauth2/revoke` (RFC 7009).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::auth::{authenticate, client_credentials};
use super::error::ApiError;
use super::form::{reject_sensitive_query, OAuthForm};
use super::token::no_store;
use super::{AppState, RequestContext};
use crate::domain::types::Digest;
use crate::store::ledger::{Command, Envelope};
use crate::store::log::RequestMeta;

/// Token revocation.
#[utoipa::path(
    post, path = "/oauth2/revoke", tag = "oauth2",
    request_body(content = crate::http::openapi::TokenParameter, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = []), ()),
    responses(
        (status = 200, description = "Revoked, or unknown (RFC 7009 section 2.2); empty body"),
        (status = 400, description = "RFC 6749 section 5.2 error", body = crate::http::openapi::OAuthError),
        (status = 401, description = "Client authentication failed (`invalid_client`, with `WWW-Authenticate`)", body = crate::http::openapi::OAuthError),
        (status = 408, description = "The body did not arrive in time", body = crate::http::openapi::OAuthError),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::http::openapi::OAuthError),
        (status = 503, description = "The ledger cannot be written right now (`server_error`, `Retry-After`)", body = crate::http::openapi::OAuthError),
    )
)]
/// Revokes an access or refresh token of the calling client; both halves of the pair go.
/// Unknown and already revoked tokens also answer 200 (RFC 7009 section 2.2).
pub async fn revoke(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    uri: Uri,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, ApiError> {
    reject_sensitive_query(uri.query())?;
    let client = authenticate(&app, &ctx, client_credentials(&headers, &form)?).await?;
    let token =
        form.get("token").ok_or_else(|| ApiError::invalid_request("the token parameter is missing"))?;
    // token_type_hint only orders a search; digests of both halves are distinct, so it is not needed.
    let command = Command::Revoke { client: client.client_id.clone(), digest: Digest::of(token.as_bytes()) };
    let meta = RequestMeta {
        request_id: Some(ctx.request_id),
        client_id: Some(client.client_id.to_string()),
        peer: Some(ctx.peer),
        ..RequestMeta::default()
    };
    app.writer.execute(Envelope { command, meta }).await??;
    Ok(no_store(StatusCode::OK.into_response()))
}
