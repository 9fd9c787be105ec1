//! Dynamic client registration (RFC 7591) at WSO2's path, for the super admin:
//! `POST /api/identity/oauth2/dcr/v1.1/register`, `GET` and `DELETE .../register/{client_id}`.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::auth::require_super_admin;
use super::error::ApiError;
use super::form::read_body;
use super::token::no_store;
use super::{AppState, RequestContext};
use crate::domain::types::{ClientId, GrantType};
use crate::store::ledger::{Command, Envelope, Refusal, Reply};
use crate::store::log::RequestMeta;
use crate::store::lookup;

#[derive(Deserialize)]
struct Registration {
    client_name: Option<String>,
    grant_types: Option<Vec<String>>,
    /// `opaque` or `jwt` (or a registered custom generator); absent: the server's default.
    access_token_type: Option<String>,
}

/// A registered client (RFC 7591 section 3.2.1).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientBody {
    client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    client_name: String,
    grant_types: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token_type: Option<String>,
}

/// A client name: 1 to 255 characters, no control characters.
pub fn parse_client_name(raw: &str) -> Result<String, &'static str> {
    let n = raw.chars().count();
    if n == 0 || n > 255 || raw.chars().any(char::is_control) || raw.trim().is_empty() {
        return Err("client_name must have 1 to 255 characters and no control characters");
    }
    Ok(raw.to_owned())
}

/// Grant type names, all known; an empty list means all three.
pub fn parse_grant_types<S: AsRef<str>>(names: &[S]) -> Result<Vec<GrantType>, String> {
    if names.is_empty() {
        return Ok(GrantType::ALL.to_vec());
    }
    let mut grants = Vec::new();
    for name in names {
        let grant = GrantType::parse(name.as_ref().trim())
            .ok_or_else(|| format!("unsupported grant type {:?}", name.as_ref()))?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    Ok(grants)
}

fn meta(ctx: RequestContext) -> RequestMeta {
    RequestMeta { request_id: Some(ctx.request_id), peer: Some(ctx.peer), ..RequestMeta::default() }
}

/// Registers a client; the secret is shown only in this answer.
#[utoipa::path(
    post, path = "/api/identity/oauth2/dcr/v1.1/register", tag = "dcr",
    request_body(content = crate::http::openapi::ClientRegistration, content_type = "application/json"),
    security(("basic" = [])),
    responses(
        (status = 201, description = "The new client", body = ClientBody),
        (status = 400, description = "`invalid_client_metadata` or `invalid_request`", body = crate::http::openapi::OAuthError),
        (status = 401, description = "Not the super admin", body = crate::http::openapi::OAuthError),
        (status = 408, description = "The body did not arrive in time", body = crate::http::openapi::OAuthError),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::http::openapi::OAuthError),
        (status = 503, description = "The ledger cannot be written right now", body = crate::http::openapi::OAuthError),
    )
)]
pub async fn register(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    req: Request,
) -> Result<Response, ApiError> {
    require_super_admin(&app, &headers)?;
    let body = read_body(req).await?;
    let reg: Registration = serde_json::from_slice(&body)
        .map_err(|_| ApiError::InvalidClientMetadata("the body is not a JSON client registration".into()))?;
    let name = parse_client_name(reg.client_name.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::InvalidClientMetadata(e.into()))?;
    let grant_types = parse_grant_types(&reg.grant_types.unwrap_or_default())
        .map_err(|e| ApiError::InvalidClientMetadata(e.into()))?;
    let access_token_type = reg.access_token_type.filter(|t| !t.is_empty());
    if let Some(t) = access_token_type.as_deref().filter(|t| !app.generators.contains(t)) {
        return Err(ApiError::InvalidClientMetadata(format!("unknown access_token_type {t:?}").into()));
    }
    let command = Command::RegisterClient { name, grant_types, access_token_type };
    match app.writer.execute(Envelope { command, meta: meta(ctx) }).await?? {
        Reply::Client(c) => {
            let body = ClientBody {
                client_id: c.client_id.to_string(),
                client_secret: Some(c.client_secret),
                client_name: c.client_name,
                grant_types: c.grant_types.iter().map(|g| g.as_str()).collect(),
                access_token_type: c.access_token_type,
            };
            Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
        }
        _ => Err(ApiError::Internal),
    }
}

/// A registered client (without its secret).
#[utoipa::path(
    get, path = "/api/identity/oauth2/dcr/v1.1/register/{client_id}", tag = "dcr",
    params(("client_id" = String, Path, description = "The client id")),
    security(("basic" = [])),
    responses(
        (status = 200, description = "The client", body = ClientBody),
        (status = 401, description = "Not the super admin", body = crate::http::openapi::OAuthError),
        (status = 404, description = "No such client", body = crate::http::openapi::OAuthError),
    )
)]
pub async fn read(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    require_super_admin(&app, &headers)?;
    let id = ClientId::parse(&client_id).map_err(|_| ApiError::NotFound)?;
    let client = app.readers.with(move |r| lookup::read_client(r, &id)).await?.ok_or(ApiError::NotFound)?;
    let body = ClientBody {
        client_id: client.client_id.to_string(),
        client_secret: None,
        client_name: client.client_name,
        grant_types: client.grant_types.iter().map(|g| g.as_str()).collect(),
        access_token_type: client.access_token_type,
    };
    Ok(no_store(Json(body).into_response()))
}

/// Deletes a client; its active tokens are revoked by events first.
#[utoipa::path(
    delete, path = "/api/identity/oauth2/dcr/v1.1/register/{client_id}", tag = "dcr",
    params(("client_id" = String, Path, description = "The client id")),
    security(("basic" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not the super admin", body = crate::http::openapi::OAuthError),
        (status = 404, description = "No such client", body = crate::http::openapi::OAuthError),
        (status = 503, description = "The ledger cannot be written right now", body = crate::http::openapi::OAuthError),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    require_super_admin(&app, &headers)?;
    let client_id = ClientId::parse(&client_id).map_err(|_| ApiError::NotFound)?;
    match app
        .writer
        .execute(Envelope { command: Command::DeleteClient { client_id }, meta: meta(ctx) })
        .await?
    {
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(Refusal::UnknownClient) => Err(ApiError::NotFound),
        Err(other) => Err(other.into()),
    }
}
