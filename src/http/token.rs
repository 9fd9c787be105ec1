//! `POST /oauth2/token`: the password, client_credentials and refresh_token grants.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use super::auth::{record_failure, retry_after};
use super::error::ApiError;
use super::form::{reject_sensitive_query, OAuthForm};
use super::token_code::{calling_client, code_command, id_token_for};
use super::{AppState, RequestContext};
use crate::crypto;
use crate::domain::events::AuthMethod;
use crate::domain::types::{ClientId, Digest, GrantType, ScopeSet, Subject, TokenKey, Username};
use crate::lockout::LockKey;
use crate::store::ledger::{system_clock, Command, Envelope, Granted, Reply};
use crate::store::log::RequestMeta;
use crate::store::lookup;

/// A successful token response (RFC 6749 section 5.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenBody {
    access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

/// Adds the headers RFC 6749 section 5.1 requires on responses that carry tokens.
pub fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The token endpoint.
#[utoipa::path(
    post, path = "/oauth2/token", tag = "oauth2",
    request_body(content = crate::http::openapi::TokenRequest, content_type = "application/x-www-form-urlencoded"),
    security(("basic" = []), ()),
    responses(
        (status = 200, description = "Tokens (`Cache-Control: no-store`)", body = TokenBody),
        (status = 400, description = "RFC 6749 section 5.2 error", body = crate::http::openapi::OAuthError),
        (status = 401, description = "Client authentication failed (`invalid_client`, with `WWW-Authenticate`)", body = crate::http::openapi::OAuthError),
        (status = 408, description = "The body did not arrive in time", body = crate::http::openapi::OAuthError),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::http::openapi::OAuthError),
        (status = 503, description = "The ledger cannot be written right now (`server_error`, `Retry-After`)", body = crate::http::openapi::OAuthError),
    )
)]
pub async fn token(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    uri: Uri,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, ApiError> {
    // The grant is known before anything can fail; the metrics count refusals by it.
    let grant = form.get("grant_type").unwrap_or("none").to_owned();
    let metrics = app.metrics.clone();
    let answer = grant_tokens(app, ctx, uri, headers, form).await;
    if answer.is_err() {
        metrics.token_refused(&grant);
    }
    answer
}

async fn grant_tokens(
    app: AppState,
    ctx: RequestContext,
    uri: Uri,
    headers: HeaderMap,
    form: OAuthForm,
) -> Result<Response, ApiError> {
    reject_sensitive_query(uri.query())?;
    let client = calling_client(&app, &ctx, &headers, &form).await?;
    let grant_name = form
        .get("grant_type")
        .ok_or_else(|| ApiError::invalid_request("Missing grant_type parameter value"))?;
    let grant = GrantType::parse(grant_name).ok_or(ApiError::UnsupportedGrantType)?;
    if !client.allows(grant) {
        return Err(ApiError::UnauthorizedClient(
            "The authenticated client is not authorized to use this authorization grant type".into(),
        ));
    }
    let (command, username) = match grant {
        GrantType::Password => password_command(&app, &ctx, &form, client.client_id.clone()).await?,
        GrantType::ClientCredentials => {
            // openid has no meaning without a user (WSO2 drops it for client_credentials).
            let scopes = scopes(&form)?.without("openid");
            let key = TokenKey { client: client.client_id.clone(), subject: Subject::Application, scopes };
            (Command::Issue { key, grant_type: grant }, None)
        }
        GrantType::RefreshToken => {
            let [refresh] = form.require(["refresh_token"])?;
            let requested = form.get("scope").map(ScopeSet::parse).transpose().map_err(|_| bad_scope())?;
            let refresh_digest = Digest::of(refresh.as_bytes());
            (Command::Refresh { client: client.client_id.clone(), refresh_digest, scopes: requested }, None)
        }
        GrantType::AuthorizationCode => (code_command(&form, &client)?, None),
    };
    let meta = RequestMeta {
        request_id: Some(ctx.request_id.clone()),
        client_id: Some(client.client_id.to_string()),
        username,
        grant_type: Some(grant.as_str().to_owned()),
        peer: Some(ctx.peer.clone()),
    };
    match app.writer.execute(Envelope { command, meta }).await?? {
        Reply::Granted(granted) => Ok(token_response(granted, None)),
        Reply::Redeemed(r) => {
            let id_token = id_token_for(&app, &client, &r)?;
            Ok(token_response(r.granted, id_token))
        }
        other => {
            tracing::error!(?other, "the ledger answered a token command without a token");
            Err(ApiError::Internal)
        }
    }
}

fn bad_scope() -> ApiError {
    ApiError::InvalidScope("the scope is malformed (RFC 6749 section 3.3)".into())
}

fn scopes(form: &OAuthForm) -> Result<ScopeSet, ApiError> {
    ScopeSet::parse(form.get("scope").unwrap_or_default()).map_err(|_| bad_scope())
}

/// Checks the resource owner's password (argon2id, off the async threads) and builds the
/// command for the user's key.
async fn password_command(
    app: &AppState,
    ctx: &RequestContext,
    form: &OAuthForm,
    client: ClientId,
) -> Result<(Command, Option<String>), ApiError> {
    let [username, password] = form.require(["username", "password"])?;
    let failed = || ApiError::InvalidGrant(format!("Authentication failed for {username}").into());
    let name = Username::parse(username).map_err(|_| failed())?;
    let scopes = scopes(form)?;
    let key = LockKey::Password {
        client: client.to_string(),
        username: name.canonical().to_owned(),
        peer: ctx.peer_ip,
    };
    let now = system_clock();
    if let Some(left) = app.lockouts.locked(&key, now) {
        return Err(ApiError::PasswordLockedOut { retry_after_secs: retry_after(left) });
    }
    let password = password.to_owned();
    let wanted = name.clone();
    // Closed only at shutdown; then the request fails as the server is going away.
    let _permit = app.password_checks.acquire().await.map_err(|_| ApiError::Unavailable)?;
    let user = app
        .readers
        .with(move |r| {
            let user = lookup::read_user(r, &wanted)?;
            let hash = user.as_ref().map_or(crypto::decoy_password_hash(), |u| u.password_hash.as_str());
            let ok = crypto::verify_password(&password, hash);
            Ok(user.filter(|_| ok))
        })
        .await?;
    let Some(user) = user else {
        let failure = app.lockouts.fail(key, now);
        let shown = Some(name.as_str().to_owned());
        record_failure(app, ctx, AuthMethod::Password, client, shown, failure).await?;
        return Err(failed());
    };
    app.lockouts.succeed(&key);
    let display = user.username.as_str().to_owned();
    let key = TokenKey { client, subject: Subject::User(user.username), scopes };
    Ok((Command::Issue { key, grant_type: GrantType::Password }, Some(display)))
}

fn token_response(g: Granted, id_token: Option<String>) -> Response {
    let body = TokenBody {
        access_token: g.access_token,
        refresh_token: g.refresh_token,
        scope: (!g.scopes.is_empty()).then(|| g.scopes.to_string()),
        token_type: "Bearer",
        expires_in: g.expires_in,
        id_token,
    };
    no_store(Json(body).into_response())
}
