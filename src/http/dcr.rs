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
use crate::domain::client::ClientOAuth;
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
    /// RFC 7591 section 2: where codes may be sent.
    redirect_uris: Option<Vec<String>>,
    /// `none` makes a public client (no secret, PKCE required); else `client_secret_basic`.
    token_endpoint_auth_method: Option<String>,
    /// WSO2's names for the per-client PKCE rules.
    ext_pkce_mandatory: Option<bool>,
    ext_pkce_support_plain: Option<bool>,
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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: &'static str,
    ext_pkce_mandatory: bool,
    ext_pkce_support_plain: bool,
}

impl ClientBody {
    fn new(
        id: &ClientId,
        secret: Option<String>,
        name: String,
        grants: &[GrantType],
        att: Option<String>,
        oauth: ClientOAuth,
    ) -> Self {
        Self {
            client_id: id.to_string(),
            client_secret: secret.filter(|_| !oauth.public),
            client_name: name,
            grant_types: grants.iter().map(|g| g.as_str()).collect(),
            access_token_type: att,
            token_endpoint_auth_method: if oauth.public { "none" } else { "client_secret_basic" },
            ext_pkce_mandatory: oauth.pkce_mandatory,
            ext_pkce_support_plain: oauth.pkce_support_plain,
            redirect_uris: oauth.redirect_uris,
        }
    }
}

/// Why a registration's code-flow settings are refused.
#[derive(Debug, thiserror::Error)]
pub enum OAuthMetadataError {
    #[error(transparent)]
    RedirectUri(#[from] crate::domain::client::RedirectUriError),
    #[error("{0}")]
    Metadata(&'static str),
}

impl From<OAuthMetadataError> for ApiError {
    fn from(e: OAuthMetadataError) -> Self {
        match e {
            OAuthMetadataError::RedirectUri(e) => ApiError::InvalidRedirectUri(e.to_string().into()),
            OAuthMetadataError::Metadata(m) => ApiError::InvalidClientMetadata(m.into()),
        }
    }
}

/// The code-flow settings of a registration: redirect URIs checked, PKCE rules, public or not.
pub fn parse_oauth(
    redirect_uris: Vec<String>,
    public: bool,
    pkce_mandatory: Option<bool>,
    pkce_plain: bool,
    grants: &[GrantType],
) -> Result<ClientOAuth, OAuthMetadataError> {
    let oauth = ClientOAuth::new(redirect_uris, public, pkce_mandatory, pkce_plain);
    oauth.check()?;
    if grants.contains(&GrantType::AuthorizationCode) && oauth.redirect_uris.is_empty() {
        return Err(OAuthMetadataError::Metadata(
            "the authorization_code grant needs at least one redirect URI",
        ));
    }
    if public && grants.iter().any(|g| matches!(g, GrantType::Password | GrantType::ClientCredentials)) {
        return Err(OAuthMetadataError::Metadata(
            "a public client may use only the authorization_code and refresh_token grants",
        ));
    }
    Ok(oauth)
}

/// A client name: 1 to 255 characters, no control characters.
pub fn parse_client_name(raw: &str) -> Result<String, &'static str> {
    let n = raw.chars().count();
    if n == 0 || n > 255 || raw.chars().any(char::is_control) || raw.trim().is_empty() {
        return Err("client_name must have 1 to 255 characters and no control characters");
    }
    Ok(raw.to_owned())
}

/// Grant type names, all known; an empty list means password, client_credentials, refresh_token.
pub fn parse_grant_types<S: AsRef<str>>(names: &[S]) -> Result<Vec<GrantType>, String> {
    if names.is_empty() {
        return Ok(GrantType::DEFAULT.to_vec());
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
    let public = match reg.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") | Some("client_secret_post") => false,
        Some("none") => true,
        Some(other) => {
            return Err(ApiError::InvalidClientMetadata(
                format!("unsupported token_endpoint_auth_method {other:?}").into(),
            ))
        }
    };
    let oauth = parse_oauth(
        reg.redirect_uris.unwrap_or_default(),
        public,
        reg.ext_pkce_mandatory,
        reg.ext_pkce_support_plain.unwrap_or(false),
        &grant_types,
    )?;
    let command = Command::RegisterClient { name, grant_types, access_token_type, oauth };
    match app.writer.execute(Envelope { command, meta: meta(ctx) }).await?? {
        Reply::Client(c) => {
            let body = ClientBody::new(
                &c.client_id,
                Some(c.client_secret),
                c.client_name,
                &c.grant_types,
                c.access_token_type,
                c.oauth,
            );
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
    let body = ClientBody::new(
        &client.client_id,
        None,
        client.client_name,
        &client.grant_types,
        client.access_token_type,
        client.oauth,
    );
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
