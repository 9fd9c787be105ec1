//! The consent page's answer (`POST /oauth2/authorize` with `consent` = approve, approveAlways
//! or deny, WSO2's values) and the CSRF check every form goes through.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::authorize::{
    authorize_url, check, issue_code, page_meta, see_other, signed_in, to_client, Checked,
};
use super::error::ApiError;
use super::form::OAuthForm;
use super::pages::{self, error_page, CSRF_COOKIE};
use super::{AppState, RequestContext};
use crate::domain::authz_events::{ConsentGiven, ConsentWithdrawn};
use crate::store::authz_commands::AuthzCommand;
use crate::store::ledger::{Command, Envelope};

/// Checks the CSRF token of a form.
pub fn csrf_ok(app: &AppState, headers: &HeaderMap, form: &OAuthForm) -> bool {
    let cookie = pages::cookie_value(headers, CSRF_COOKIE);
    app.authz.csrf.verify(cookie.as_deref(), form.get("csrf_token"))
}

/// The page for a form without a valid CSRF token.
pub fn csrf_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "This form has expired or was not sent from this site. Start again from the application.",
        Some("csrf"),
    )
}

/// Records the answer: a code for approve and approveAlways (remembered), `access_denied`
/// for deny.
pub async fn answer(
    app: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Response, ApiError> {
    if !csrf_ok(app, headers, form) {
        return Ok(csrf_refused());
    }
    let Checked { client, req, params } = match check(app, form).await? {
        Ok(checked) => checked,
        Err(response) => return Ok(response),
    };
    let Some((person, _)) = signed_in(app, headers).await? else {
        // The session ended meanwhile: sign in again, then the consent page comes back.
        return Ok(see_other(&authorize_url(&params, None)));
    };
    let remember = match form.get("consent") {
        Some("approve") => false,
        Some("approveAlways") => true,
        Some("deny") => {
            let withdrawn =
                ConsentWithdrawn { username: person.username.clone(), client_id: client.client_id.clone() };
            let meta = page_meta(ctx, &client.client_id, Some(person.username.as_str()));
            let command = Command::Authz(AuthzCommand::Deny(withdrawn));
            app.writer.execute(Envelope { command, meta }).await??;
            let pairs = [("error", "access_denied"), ("error_description", "the person denied the request")];
            return Ok(to_client(app, &req, &pairs));
        }
        _ => {
            let pairs = [
                ("error", "invalid_request"),
                ("error_description", "consent must be approve, approveAlways or deny"),
            ];
            return Ok(to_client(app, &req, &pairs));
        }
    };
    let given = ConsentGiven {
        username: person.username.clone(),
        client_id: client.client_id.clone(),
        scopes: req.scopes.clone(),
        remember,
    };
    issue_code(app, ctx, &client, &req, &person, Some(given)).await
}
