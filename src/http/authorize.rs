//! `GET` and `POST /oauth2/authorize` (RFC 6749 section 4.1, RFC 7636, OIDC Core 3.1.2): the
//! checks, the login and consent pages, the consent answer, and the redirect with a code or an
//! error (with `iss`, RFC 9207). Unknown clients and unregistered redirect URIs get an error
//! page, never a redirect.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::error::ApiError;
use super::form::OAuthForm;
use super::pages::{self, error_page, render, ConsentPage, LoginPage, CSRF_COOKIE, SESSION_COOKIE};
use super::{AppState, RequestContext};
use crate::crypto;
use crate::domain::authorize::{
    next_step, redirect_target, validate, AuthorizeParams, ClientView, Next, PageError, SignedIn,
    ValidRequest,
};
use crate::domain::authz_events::{CodeIssued, ConsentGiven};
use crate::domain::types::{ClientId, Digest};
use crate::store::authz;
use crate::store::authz_commands::AuthzCommand;
use crate::store::ledger::{system_clock, Command, Envelope};
use crate::store::log::RequestMeta;
use crate::store::lookup::{self, ClientRecord};

/// A request that passed the checks, with its client and its parameters as sent.
pub struct Checked {
    pub client: Arc<ClientRecord>,
    pub req: ValidRequest,
    pub params: AuthorizeParams,
}

/// The authorization parameters of a query or form.
pub fn params_from(form: &OAuthForm) -> AuthorizeParams {
    let get = |name: &str| form.get(name).map(str::to_owned);
    AuthorizeParams {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        scope: get("scope"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        nonce: get("nonce"),
        prompt: get("prompt"),
        max_age: get("max_age"),
    }
}

/// The parameters as name-value pairs: the forms' hidden fields and the URL back to this
/// endpoint after the login.
pub fn params_pairs(p: &AuthorizeParams) -> Vec<(String, String)> {
    let fields = [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
        ("nonce", &p.nonce),
        ("prompt", &p.prompt),
        ("max_age", &p.max_age),
    ];
    fields.into_iter().filter_map(|(n, v)| v.as_ref().map(|v| (n.to_owned(), v.clone()))).collect()
}

/// The URL of this endpoint with these parameters (and maybe `auth_failure`).
pub fn authorize_url(p: &AuthorizeParams, failure: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params_pairs(p));
    if let Some(f) = failure {
        query.append_pair("auth_failure", f);
    }
    format!("/oauth2/authorize?{}", query.finish())
}

/// 303 See Other to `location` (RFC 9700 section 4.12: never 307 after a form).
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "The redirect address is not valid.", None),
    }
}

/// Redirects to the client with these parameters, plus `state` and `iss` (RFC 9207).
pub fn to_client(app: &AppState, req: &ValidRequest, pairs: &[(&str, &str)]) -> Response {
    let Ok(mut url) = url::Url::parse(&req.redirect_uri) else {
        return error_page(StatusCode::BAD_REQUEST, "The application's redirect address is not valid.", None);
    };
    {
        let mut query = url.query_pairs_mut();
        query.extend_pairs(pairs.iter().copied());
        if let Some(state) = &req.state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &app.issuer());
    }
    see_other(url.as_str())
}

/// A client by id: from the cache, or the database once.
pub async fn load_client(app: &AppState, id: Option<&str>) -> Result<Option<Arc<ClientRecord>>, ApiError> {
    let Some(id) = id.and_then(|i| ClientId::parse(i).ok()) else {
        return Ok(None);
    };
    if let Some(record) = app.memory.client(&id) {
        return Ok(Some(record));
    }
    let generation = app.memory.client_generation();
    let read = app.readers.with(move |r| lookup::read_client(r, &id)).await?.map(Arc::new);
    if let Some(r) = &read {
        app.memory.cache_client(r.clone(), generation);
    }
    Ok(read)
}

/// Checks a request: `Err(response)` is the error page or the error redirect to send.
pub async fn check(app: &AppState, form: &OAuthForm) -> Result<Result<Checked, Response>, ApiError> {
    let params = params_from(form);
    let client = load_client(app, params.client_id.as_deref()).await?;
    let view = client.as_ref().map(|c| ClientView {
        client_id: &c.client_id,
        grant_types: &c.grant_types,
        oauth: &c.oauth,
    });
    let target = match redirect_target(view.as_ref(), &params) {
        Ok(target) => target,
        Err(e) => {
            let code = match e {
                PageError::UnknownClient => "invalid_client",
                PageError::BadRedirectUri => "invalid_redirect_uri",
            };
            return Ok(Err(error_page(StatusCode::BAD_REQUEST, e.to_string(), Some(code))));
        }
    };
    let (Some(client), Some(view)) = (client.clone(), view) else {
        return Err(ApiError::Internal);
    };
    match validate(&view, target.clone(), &params) {
        Ok(req) => Ok(Ok(Checked { client, req, params })),
        Err(e) => {
            // The error still goes back with the request's state (RFC 6749 section 4.1.2.1).
            let req = ValidRequest {
                client_id: client.client_id.clone(),
                redirect_uri: target,
                redirect_uri_sent: params.redirect_uri.is_some(),
                scopes: Default::default(),
                state: params.state.clone().filter(|s| s.len() <= 512),
                challenge: None,
                nonce: None,
                prompt: Default::default(),
                max_age_ms: None,
            };
            Ok(Err(to_client(
                app,
                &req,
                &[("error", e.error), ("error_description", e.description.as_str())],
            )))
        }
    }
}

/// The person signed in by the request's session cookie, and the session's digest.
pub async fn signed_in(app: &AppState, headers: &HeaderMap) -> Result<Option<(SignedIn, Digest)>, ApiError> {
    let Some(value) = pages::cookie_value(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let digest = Digest::of(value.as_bytes());
    let now = system_clock();
    let found = app.readers.with(move |r| authz::session(r, &digest, now)).await?;
    Ok(found.map(|s| (s, digest)))
}

/// Runs a request: a page, a code, or an error redirect.
pub async fn authorize(
    app: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Response {
    match run(app, ctx, headers, form).await {
        Ok(response) => response,
        Err(e) => failure_page(e),
    }
}

/// A storage failure on a page: a page, not JSON.
pub fn failure_page(e: ApiError) -> Response {
    let status = match e {
        ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_page(status, "The service cannot answer right now. Try again in a moment.", None)
}

async fn run(
    app: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    form: &OAuthForm,
) -> Result<Response, ApiError> {
    let Checked { client, req, params } = match check(app, form).await? {
        Ok(checked) => checked,
        Err(response) => return Ok(response),
    };
    let session = signed_in(app, headers).await?.map(|(s, _)| s);
    let remembered = match &session {
        Some(s) => {
            let (user, id) = (s.username.clone(), client.client_id.clone());
            app.readers.with(move |r| authz::remembered(r, &user, &id)).await?
        }
        None => None,
    };
    Ok(match next_step(&req, session, remembered.as_ref(), system_clock()) {
        Next::Login => login_page(app, headers, &client, &params, form.get("auth_failure")),
        Next::Consent(person) => consent_page(app, headers, &client, &req, &params, &person),
        Next::IssueCode(person) => issue_code(app, ctx, &client, &req, &person, None).await?,
        Next::Error(e) => {
            to_client(app, &req, &[("error", e.error), ("error_description", e.description.as_str())])
        }
    })
}

/// A page with a form: the CSRF cookie is set when the request had none.
fn with_csrf(app: &AppState, headers: &HeaderMap, page: impl FnOnce(String) -> Response) -> Response {
    let (cookie, fresh) = app.authz.csrf.cookie_for(headers);
    let mut response = page(app.authz.csrf.token(&cookie));
    if fresh {
        let secure = app.settings.transport.https.enabled;
        response
            .headers_mut()
            .append(header::SET_COOKIE, pages::set_cookie(CSRF_COOKIE, Some(&cookie), secure));
    }
    response
}

fn login_page(
    app: &AppState,
    headers: &HeaderMap,
    client: &ClientRecord,
    params: &AuthorizeParams,
    failure: Option<&str>,
) -> Response {
    let error = failure.map(|f| match f {
        "locked" => "Too many failed attempts. Wait a few minutes, then try again.".to_owned(),
        _ => "The user name or password is not right.".to_owned(),
    });
    with_csrf(app, headers, |csrf| {
        let page = LoginPage {
            client_name: client.client_name.clone(),
            error,
            csrf,
            params: params_pairs(params),
            username: String::new(),
        };
        render(StatusCode::OK, &page)
    })
}

fn consent_page(
    app: &AppState,
    headers: &HeaderMap,
    client: &ClientRecord,
    req: &ValidRequest,
    params: &AuthorizeParams,
    person: &SignedIn,
) -> Response {
    let scopes = req.scopes.to_string();
    let scopes: Vec<(String, String)> =
        scopes.split(' ').filter(|s| !s.is_empty()).map(|s| (s.to_owned(), pages::scope_words(s))).collect();
    with_csrf(app, headers, |csrf| {
        let page = ConsentPage {
            client_name: client.client_name.clone(),
            username: person.username.as_str().to_owned(),
            scopes,
            csrf,
            params: params_pairs(params),
        };
        render(StatusCode::OK, &page)
    })
}

/// The envelope of a page's events.
pub fn page_meta(ctx: &RequestContext, client: &ClientId, username: Option<&str>) -> RequestMeta {
    RequestMeta {
        request_id: Some(ctx.request_id.clone()),
        client_id: Some(client.to_string()),
        username: username.map(str::to_owned),
        grant_type: Some("authorization_code".into()),
        peer: Some(ctx.peer.clone()),
    }
}

/// Records a new code (and the consent given for it) and sends it to the client.
pub(super) async fn issue_code(
    app: &AppState,
    ctx: &RequestContext,
    client: &ClientRecord,
    req: &ValidRequest,
    person: &SignedIn,
    consent: Option<ConsentGiven>,
) -> Result<Response, ApiError> {
    let code = crypto::new_secret();
    let now = system_clock();
    let validity = app.settings.oauth.token_validation.authorization_code_validity.millis();
    let issued = CodeIssued {
        code_digest: Digest::of(code.as_bytes()),
        client_id: client.client_id.clone(),
        username: person.username.clone(),
        scopes: req.scopes.clone(),
        redirect_uri: req.redirect_uri_sent.then(|| req.redirect_uri.clone()),
        challenge: req.challenge.clone(),
        nonce: req.nonce.clone(),
        auth_time: person.auth_time,
        issued_at: now,
        expires_at: now + validity,
    };
    let meta = page_meta(ctx, &client.client_id, Some(person.username.as_str()));
    let command =
        Command::Authz(AuthzCommand::IssueCode { code: Box::new(issued), consent: consent.map(Box::new) });
    app.writer.execute(Envelope { command, meta }).await??;
    Ok(to_client(app, req, &[("code", code.as_str())]))
}

/// `GET /oauth2/authorize`.
#[utoipa::path(
    get, path = "/oauth2/authorize", tag = "pages",
    params(crate::http::openapi::AuthorizeRequest),
    responses(
        (status = 200, description = "A page: sign-in, consent, or an error to show the person", content_type = "text/html", body = String),
        (status = 303, description = "Redirect: to the client's redirect URI with `code` or `error`, `state` and `iss`, or back to a page", headers(("Location" = String))),
        (status = 400, description = "The client or redirect URI is unknown or invalid, or a parameter is repeated: an HTML page, never a redirect", content_type = "text/html", body = String),
        (status = 503, description = "The ledger cannot be written or read right now (an HTML page)", content_type = "text/html", body = String),
    )
)]
pub async fn authorize_get(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match OAuthForm::parse(uri.query().unwrap_or_default().as_bytes()) {
        Ok(form) => authorize(&app, &ctx, &headers, &form).await,
        Err(_) => {
            error_page(StatusCode::BAD_REQUEST, "The request has repeated or malformed parameters.", None)
        }
    }
}

/// `POST /oauth2/authorize`: an authorization request sent as a form (OIDC Core 3.1.2.1), or
/// the consent page's answer (`consent` = approve, approveAlways or deny, WSO2's values).
#[utoipa::path(
    post, path = "/oauth2/authorize", tag = "pages",
    request_body(content = crate::http::openapi::PageForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A page: sign-in, consent, or an error to show the person", content_type = "text/html", body = String),
        (status = 303, description = "Redirect: to the client's redirect URI with `code` or `error`, `state` and `iss`, or back to a page", headers(("Location" = String))),
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
pub async fn authorize_post(
    State(app): State<AppState>,
    Extension(ctx): Extension<RequestContext>,
    headers: HeaderMap,
    form: OAuthForm,
) -> Response {
    if form.get("consent").is_none() {
        return authorize(&app, &ctx, &headers, &form).await;
    }
    match super::consent::answer(&app, &ctx, &headers, &form).await {
        Ok(response) => response,
        Err(e) => failure_page(e),
    }
}
