//! The token endpoint's part of the code flow: public clients (no secret, `client_id` in the
//! body), `grant_type=authorization_code`, and the ID token in the response.

use std::sync::Arc;

use axum::http::HeaderMap;

use super::auth::{authenticate, basic, client_credentials};
use super::authorize::load_client;
use super::error::ApiError;
use super::form::OAuthForm;
use super::{oidc, AppState, RequestContext};
use crate::domain::types::{Digest, GrantType};
use crate::store::authz_commands::{AuthzCommand, Redeemed};
use crate::store::ledger::Command;
use crate::store::lookup::ClientRecord;

/// The calling client: a public client by its `client_id` alone (RFC 6749 section 2.1), for the
/// grants a public client may use, or a confidential client by its credentials.
pub async fn calling_client(
    app: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Arc<ClientRecord>, ApiError> {
    let no_secret = basic(headers)?.is_none() && form.get("client_secret").is_none();
    if no_secret {
        if let Some(client) = load_client(app, form.get("client_id")).await?.filter(|c| c.oauth.public) {
            let grant = form.get("grant_type").and_then(GrantType::parse);
            if !matches!(grant, Some(GrantType::AuthorizationCode | GrantType::RefreshToken)) {
                return Err(ApiError::UnauthorizedClient(
                    "a public client may use only the authorization_code and refresh_token grants".into(),
                ));
            }
            return Ok(client);
        }
    }
    authenticate(app, ctx, client_credentials(headers, form)?).await
}

/// The ledger command of `grant_type=authorization_code`.
pub fn code_command(form: &OAuthForm, client: &ClientRecord) -> Result<Command, ApiError> {
    let [code] = form.require(["code"])?;
    Ok(Command::Authz(AuthzCommand::Redeem {
        client: client.client_id.clone(),
        code_digest: Digest::of(code.as_bytes()),
        redirect_uri: form.get("redirect_uri").map(str::to_owned),
        code_verifier: form.get("code_verifier").map(str::to_owned),
    }))
}

/// The ID token of a redeemed code, when the `openid` scope was granted.
pub fn id_token_for(app: &AppState, client: &ClientRecord, r: &Redeemed) -> Result<Option<String>, ApiError> {
    if !r.granted.scopes.to_string().split(' ').any(|s| s == "openid") {
        return Ok(None);
    }
    oidc::id_token(app, client.client_id.as_str(), r).map(Some).map_err(|e| {
        tracing::error!(error = %e, "cannot sign an ID token");
        ApiError::Internal
    })
}
