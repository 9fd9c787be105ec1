//! Given a client and a session, when an authorization request arrives, then this page, this
//! redirect or this code.

use super::*;

const CB: &str = "https://app.example/cb";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn oauth() -> ClientOAuth {
    ClientOAuth::new(vec![CB.into()], true, None, false)
}

fn params() -> AuthorizeParams {
    AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some("c1".into()),
        redirect_uri: Some(CB.into()),
        scope: Some("openid".into()),
        state: Some("xyz".into()),
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..AuthorizeParams::default()
    }
}

fn valid(p: &AuthorizeParams) -> Result<ValidRequest, RedirectError> {
    let id = ClientId::parse("c1").unwrap();
    let o = oauth();
    let view = ClientView { client_id: &id, grant_types: &[GrantType::AuthorizationCode], oauth: &o };
    let target = redirect_target(Some(&view), p).unwrap();
    validate(&view, target, p)
}

fn alice(auth_time: Millis) -> SignedIn {
    SignedIn { username: Username::parse("alice").unwrap(), auth_time }
}

#[test]
fn an_unknown_client_or_unregistered_redirect_uri_gets_a_page_not_a_redirect() {
    assert_eq!(redirect_target(None, &params()), Err(PageError::UnknownClient));
    let id = ClientId::parse("c1").unwrap();
    let o = oauth();
    let view = ClientView { client_id: &id, grant_types: &[GrantType::AuthorizationCode], oauth: &o };
    let evil = AuthorizeParams { redirect_uri: Some("https://evil.example/cb".into()), ..params() };
    assert_eq!(redirect_target(Some(&view), &evil), Err(PageError::BadRedirectUri));
}

#[test]
fn a_public_client_without_a_challenge_gets_invalid_request_at_its_redirect_uri() {
    let p = AuthorizeParams { code_challenge: None, code_challenge_method: None, ..params() };
    assert_eq!(valid(&p).unwrap_err().error, "invalid_request");
}

#[test]
fn other_response_types_are_unsupported() {
    let p = AuthorizeParams { response_type: Some("token".into()), ..params() };
    assert_eq!(valid(&p).unwrap_err().error, "unsupported_response_type");
}

#[test]
fn a_client_without_the_code_grant_is_unauthorized() {
    let id = ClientId::parse("c1").unwrap();
    let o = oauth();
    let view = ClientView { client_id: &id, grant_types: &[GrantType::Password], oauth: &o };
    assert_eq!(validate(&view, CB.into(), &params()).unwrap_err().error, "unauthorized_client");
}

#[test]
fn without_a_session_the_login_page_comes_first_and_prompt_none_answers_login_required() {
    let req = valid(&params()).unwrap();
    assert_eq!(next_step(&req, None, None, 0), Next::Login);
    let none = valid(&AuthorizeParams { prompt: Some("none".into()), ..params() }).unwrap();
    assert!(matches!(next_step(&none, None, None, 0), Next::Error(e) if e.error == "login_required"));
}

#[test]
fn a_session_skips_the_login_and_remembered_consent_skips_the_consent_page() {
    let req = valid(&params()).unwrap();
    assert_eq!(next_step(&req, Some(alice(0)), None, 10), Next::Consent(alice(0)));
    let remembered = ScopeSet::parse("openid profile").unwrap();
    assert_eq!(next_step(&req, Some(alice(0)), Some(&remembered), 10), Next::IssueCode(alice(0)));
}

#[test]
fn prompt_login_and_an_old_sign_in_under_max_age_force_a_new_login() {
    let login = valid(&AuthorizeParams { prompt: Some("login".into()), ..params() }).unwrap();
    assert_eq!(next_step(&login, Some(alice(0)), None, 10), Next::Login);
    let aged = valid(&AuthorizeParams { max_age: Some("5".into()), ..params() }).unwrap();
    assert_eq!(next_step(&aged, Some(alice(0)), None, 6_000), Next::Login);
    assert_eq!(next_step(&aged, Some(alice(0)), None, 4_000), Next::Consent(alice(0)));
}

#[test]
fn prompt_consent_shows_the_page_even_when_consent_is_remembered_and_none_answers_consent_required() {
    let remembered = ScopeSet::parse("openid").unwrap();
    let consent = valid(&AuthorizeParams { prompt: Some("consent".into()), ..params() }).unwrap();
    assert_eq!(next_step(&consent, Some(alice(0)), Some(&remembered), 1), Next::Consent(alice(0)));
    let none = valid(&AuthorizeParams { prompt: Some("none".into()), ..params() }).unwrap();
    assert!(
        matches!(next_step(&none, Some(alice(0)), None, 1), Next::Error(e) if e.error == "consent_required")
    );
}

#[test]
fn prompt_none_with_another_value_is_invalid() {
    let p = AuthorizeParams { prompt: Some("none login".into()), ..params() };
    assert_eq!(valid(&p).unwrap_err().error, "invalid_request");
}
