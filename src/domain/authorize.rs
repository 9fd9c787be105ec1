//! The authorization endpoint's rules (RFC 6749 section 4.1, RFC 7636, OpenID Connect Core
//! section 3.1.2): which requests are shown an error page, which get an error at their redirect
//! URI, and whether the person must sign in, consent, or gets a code at once.

use super::client::ClientOAuth;
use super::events::Millis;
use super::pkce::{check_challenge, Challenge};
use super::types::{ClientId, GrantType, ScopeSet, Username};

/// The request's parameters as they arrived (query or form).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
}

/// What the rules need of the client.
#[derive(Debug, Clone)]
pub struct ClientView<'a> {
    pub client_id: &'a ClientId,
    pub grant_types: &'a [GrantType],
    pub oauth: &'a ClientOAuth,
}

/// Errors shown to the person, never redirected (RFC 6749 section 4.1.2.1): nobody can be
/// sent to an address the client did not register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("the client_id is missing or no such application is registered")]
    UnknownClient,
    #[error("the redirect_uri is missing or not registered for this application")]
    BadRedirectUri,
}

/// Errors sent to the redirect URI with `error` and `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    pub error: &'static str,
    pub description: String,
}

impl RedirectError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self { error, description: description.into() }
    }
}

/// `prompt` (OIDC Core section 3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
}

/// A request that passed every check: the client may get a code at `redirect_uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRequest {
    pub client_id: ClientId,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// Whether the request named it (the token request must then repeat it).
    pub redirect_uri_sent: bool,
    pub scopes: ScopeSet,
    pub state: Option<String>,
    pub challenge: Option<Challenge>,
    pub nonce: Option<String>,
    pub prompt: Prompt,
    pub max_age_ms: Option<Millis>,
}

/// Where the request may be answered, before anything else is checked.
pub fn redirect_target(client: Option<&ClientView<'_>>, p: &AuthorizeParams) -> Result<String, PageError> {
    let client = client.ok_or(PageError::UnknownClient)?;
    client.oauth.redirect_for(p.redirect_uri.as_deref()).ok_or(PageError::BadRedirectUri)
}

/// Checks the rest of the request; errors from here on go to `redirect_uri`.
pub fn validate(
    client: &ClientView<'_>,
    redirect_uri: String,
    p: &AuthorizeParams,
) -> Result<ValidRequest, RedirectError> {
    match p.response_type.as_deref() {
        Some("code") => {}
        None => return Err(RedirectError::new("invalid_request", "response_type is required")),
        Some(_) => {
            return Err(RedirectError::new(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(RedirectError::new(
            "unauthorized_client",
            "this application may not use the authorization_code grant",
        ));
    }
    let scopes = ScopeSet::parse(p.scope.as_deref().unwrap_or_default())
        .map_err(|_| RedirectError::new("invalid_scope", "the scope is malformed (RFC 6749 section 3.3)"))?;
    let challenge =
        check_challenge(client.oauth, p.code_challenge.as_deref(), p.code_challenge_method.as_deref())
            .map_err(|e| RedirectError::new("invalid_request", e.to_string()))?;
    let prompt = parse_prompt(p.prompt.as_deref())?;
    let max_age_ms = match p.max_age.as_deref() {
        None => None,
        Some(text) => Some(
            text.parse::<u32>()
                .map(|s| i64::from(s) * 1000)
                .map_err(|_| RedirectError::new("invalid_request", "max_age must be whole seconds"))?,
        ),
    };
    let bounded = |v: &Option<String>, name: &str| match v {
        Some(text) if text.len() > 512 => {
            Err(RedirectError::new("invalid_request", format!("{name} is longer than 512 characters")))
        }
        _ => Ok(v.clone()),
    };
    Ok(ValidRequest {
        client_id: client.client_id.clone(),
        redirect_uri,
        redirect_uri_sent: p.redirect_uri.is_some(),
        scopes,
        state: bounded(&p.state, "state")?,
        challenge,
        nonce: bounded(&p.nonce, "nonce")?,
        prompt,
        max_age_ms,
    })
}

fn parse_prompt(raw: Option<&str>) -> Result<Prompt, RedirectError> {
    let mut prompt = Prompt::default();
    for value in raw.unwrap_or_default().split(' ').filter(|v| !v.is_empty()) {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            // select_account has no meaning with one account per session: ignored.
            "select_account" => {}
            other => {
                return Err(RedirectError::new(
                    "invalid_request",
                    format!("unsupported prompt value {other:?}"),
                ))
            }
        }
    }
    if prompt.none && (prompt.login || prompt.consent) {
        return Err(RedirectError::new(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(prompt)
}

/// A signed-in person, from the login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    pub username: Username,
    pub auth_time: Millis,
}

/// What happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Show the login page.
    Login,
    /// Show the consent page for this person.
    Consent(SignedIn),
    /// Issue a code for this person now.
    IssueCode(SignedIn),
    /// Redirect with this error.
    Error(RedirectError),
}

/// Decides the next step from the session and the remembered consent (`remembered` holds the
/// scopes the person approved always for this client).
pub fn next_step(
    req: &ValidRequest,
    session: Option<SignedIn>,
    remembered: Option<&ScopeSet>,
    now: Millis,
) -> Next {
    let fresh = |s: &SignedIn| req.max_age_ms.is_none_or(|max| now - s.auth_time <= max);
    let signed_in = match session {
        Some(s) if !req.prompt.login && fresh(&s) => s,
        _ if req.prompt.none => {
            return Next::Error(RedirectError::new("login_required", "the person is not signed in"))
        }
        _ => return Next::Login,
    };
    let consented = remembered.is_some_and(|scopes| req.scopes.is_subset(scopes));
    if consented && !req.prompt.consent {
        return Next::IssueCode(signed_in);
    }
    if req.prompt.none {
        return Next::Error(RedirectError::new(
            "consent_required",
            "the person has not approved this application",
        ));
    }
    Next::Consent(signed_in)
}

#[cfg(test)]
#[path = "authorize_tests.rs"]
mod tests;
