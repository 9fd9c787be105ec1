//! The login form's `POST /commonauth` (WSO2's path and field names `username`, `password`)
//! with the brute-force back-off, and `/oidc/logout`, which ends the login session.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;

use super::authorize::{authorize_url, check, failure_page, page_meta, see_other, signed_in, Checked};
use super::consent::{csrf_ok, csrf_refused};
use super::error::ApiError;
use super::form::OAuthForm;
use super::pages::{self, render, LogoutPage, CSRF_COOKIE, SESSION_COOKIE};
use super::{AppState, RequestContext};
use crate::crypto;
use crate::domain::authz_events::{LoginFailed, SessionStarted};
use crate::domain::types::{Digest, Username};
use crate::lockout::LockKey;
use crate::store::authz_commands::AuthzCommand;
use crate::store::ledger::{system_clock, Command, Envelope};
use crate::store::log::RequestMeta;
use crate::store::lookup;

/// How long a login session lasts.
pub const SESSION_MS: i64 = 8 * 3600 * 1000;

/// `POST /commonauth`: checks the password; on success a session begins and the person goes
/// back to the authorization endpoint (303), which then shows the consent page.
#[utoipa::path(
    post, path = "/commonauth", tag = "pages",
    request_body(content = crate::http::openapi::PageForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page: sign-in, consent, or an error to show the person", content_type = "text/html", body = String),
        (status = 303, description = "Back to the authorization endpoint: signed in (with the session cookie), or with `auth_failure` (`invalid` credentials, or `locked` for a while)", headers(("Location" = String))),
        (status = 400, description = "An HTML error page (the request cannot be answered to the client), or an RFC 6749 error for a body that is not a form", content(
            (String = "text/html"),
            (crate::http::openapi::OAuthError = "application/json"),
        )),
        (status = 403, description = "The form's CSRF token does not match its cookie (an HTML page)", content_type = "text/html", body = String),
        (status = 408, description = "The body did not arrive in time", body = crate::http::openapi::OAuthError),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::http::openapi::OAuthError),
        (status = 503, description = "The ledger cannot be written or read right now (an HTML page)", content_type = "text/html", body = String),
    )
)]
pub async fn login(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Response {
    if !csrf_ok(&app, &headers, &form) {
        return csrf_refused();
    }
    match sign_in(&app, &ctx, &form).await {
        Ok(response) => response,
        Err(e) => failure_page(e),
    }
}

async fn sign_in(app: &AppState, ctx: &RequestContext, form: &OAuthForm) -> Result<Response, ApiError> {
    let Checked { client, mut params, .. } = match check(app, form).await? {
        Ok(checked) => checked,
        Err(response) => return Ok(response),
    };
    let (Some(typed), Some(password)) = (form.get("username"), form.get("password")) else {
        return Ok(see_other(&authorize_url(&params, Some("invalid"))));
    };
    let Ok(name) = Username::parse(typed) else {
        return Ok(see_other(&authorize_url(&params, Some("invalid"))));
    };
    let key = LockKey::Password {
        client: client.client_id.to_string(),
        username: name.canonical().to_owned(),
        peer: ctx.peer_ip,
    };
    let now = system_clock();
    if app.lockouts.locked(&key, now).is_some() {
        return Ok(see_other(&authorize_url(&params, Some("locked"))));
    }
    let (password, wanted) = (password.to_owned(), name.clone());
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
    let meta = page_meta(ctx, &client.client_id, Some(name.as_str()));
    let Some(user) = user else {
        let failure = app.lockouts.fail(key, now);
        let event = LoginFailed {
            username: name.as_str().to_owned(),
            client_id: client.client_id.clone(),
            consecutive_failures: failure.consecutive,
            locked_until: failure.locked_until,
        };
        app.writer
            .execute(Envelope { command: Command::Authz(AuthzCommand::RecordLoginFailure(event)), meta })
            .await??;
        return Ok(see_other(&authorize_url(&params, Some("invalid"))));
    };
    app.lockouts.succeed(&key);
    let value = crypto::new_secret();
    let session = SessionStarted {
        session_digest: Digest::of(value.as_bytes()),
        username: user.username.clone(),
        auth_time: now,
        expires_at: now + SESSION_MS,
    };
    let meta = RequestMeta { username: Some(user.username.as_str().to_owned()), ..meta };
    let command = Command::Authz(AuthzCommand::StartSession { client_id: client.client_id.clone(), session });
    app.writer.execute(Envelope { command, meta }).await??;
    // The person just signed in: `prompt=login` is satisfied and must not ask again.
    params.prompt =
        params.prompt.map(|p| p.split(' ').filter(|v| *v != "login").collect::<Vec<_>>().join(" "));
    params.prompt = params.prompt.filter(|p| !p.is_empty());
    let mut response = see_other(&authorize_url(&params, None));
    let secure = app.settings.transport.https.enabled;
    response
        .headers_mut()
        .append(header::SET_COOKIE, pages::set_cookie(SESSION_COOKIE, Some(&value), secure));
    Ok(response)
}

/// `GET /oidc/logout`: who is signed in, and a form to sign out.
#[utoipa::path(
    get, path = "/oidc/logout", tag = "pages",
    responses(
        (status = 200, description = "Who is signed in, and a form to sign out", content_type = "text/html", body = String),
        (status = 503, description = "The ledger cannot be written or read right now (an HTML page)", content_type = "text/html", body = String),
    )
)]
pub async fn logout_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let person = match signed_in(&app, &headers).await {
        Ok(found) => found.map(|(s, _)| s.username.as_str().to_owned()),
        Err(e) => return failure_page(e),
    };
    let (cookie, fresh) = app.authz.csrf.cookie_for(&headers);
    let page = LogoutPage { username: person, csrf: app.authz.csrf.token(&cookie) };
    let mut response = render(StatusCode::OK, &page);
    if fresh {
        let secure = app.settings.transport.https.enabled;
        response
            .headers_mut()
            .append(header::SET_COOKIE, pages::set_cookie(CSRF_COOKIE, Some(&cookie), secure));
    }
    response
}

/// `POST /oidc/logout`: ends the session (an event) and clears its cookie.
#[utoipa::path(
    post, path = "/oidc/logout", tag = "pages",
    request_body(content = crate::http::openapi::PageForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Signed out: back to the logout page, the session cookie cleared", headers(("Location" = String))),
        (status = 400, description = "An HTML error page (the request cannot be answered to the client), or an RFC 6749 error for a body that is not a form", content(
            (String = "text/html"),
            (crate::http::openapi::OAuthError = "application/json"),
        )),
        (status = 403, description = "The form's CSRF token does not match its cookie (an HTML page)", content_type = "text/html", body = String),
        (status = 408, description = "The body did not arrive in time", body = crate::http::openapi::OAuthError),
        (status = 413, description = "The body is larger than 64 KiB", body = crate::http::openapi::OAuthError),
        (status = 503, description = "The ledger cannot be written or read right now (an HTML page)", content_type = "text/html", body = String),
    )
)]
pub async fn logout(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Response {
    if !csrf_ok(&app, &headers, &form) {
        return csrf_refused();
    }
    if let Some(value) = pages::cookie_value(&headers, SESSION_COOKIE) {
        let meta = RequestMeta {
            request_id: Some(ctx.request_id.clone()),
            peer: Some(ctx.peer.clone()),
            ..RequestMeta::default()
        };
        let command =
            Command::Authz(AuthzCommand::EndSession { session_digest: Digest::of(value.as_bytes()) });
        match app.writer.execute(Envelope { command, meta }).await {
            Ok(Ok(_)) => {}
            Ok(Err(refusal)) => return failure_page(refusal.into()),
            Err(e) => return failure_page(e.into()),
        }
    }
    let mut response = see_other("/oidc/logout");
    let secure = app.settings.transport.https.enabled;
    response.headers_mut().append(header::SET_COOKIE, pages::set_cookie(SESSION_COOKIE, None, secure));
    response
}
