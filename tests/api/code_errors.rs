//! Every error path of the code flow: error pages that never redirect, errors at the redirect
//! URI with `state` and `iss`, forms without their CSRF token, replayed codes, PKCE failures,
//! and the pages' security headers.

use reqwest::StatusCode;

use crate::helpers::{
    assert_oauth_error, authorize_url, count_of, header, page_form, param, query_of, revocation_reasons,
    see_other, spawn_app, Agent, ConfigOverrides, TestApp, Tokens, ALICE, CALLBACK, VERIFIER,
};

async fn app_with_alice() -> TestApp {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    app.add_user(ALICE.0, ALICE.1).await;
    app
}

/// The status and body of a page that must be an error page, not a redirect.
async fn assert_error_page(response: reqwest::Response) -> String {
    let status = response.status();
    assert!(response.headers().get("location").is_none(), "an error page never redirects");
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("<html lang=\"en\">"), "{body}");
    body
}

#[tokio::test]
async fn an_unknown_client_or_an_unregistered_redirect_uri_gets_an_error_page_never_a_redirect() {
    let app = app_with_alice().await;
    let client = app.register_code_client("web", &[]).await;
    let agent = Agent::new(&app);
    let unknown = crate::helpers::Client::unknown();
    assert_error_page(agent.get(&authorize_url(&unknown, &[])).await).await;
    let attempts = [
        "http://127.0.0.1:9/cb/other",
        "https://evil.example/cb",
        "http://127.0.0.1.evil.example:9/cb",
        "http://127.0.0.1:9/cb?next=https://evil.example",
        "http://localhost:9/cb",
    ];
    for attempt in attempts {
        let body =
            assert_error_page(agent.get(&authorize_url(&client, &[("redirect_uri", attempt)])).await).await;
        assert!(body.contains("redirect_uri"), "{body}");
    }
    assert_eq!(count_of(&app.events(), "CodeIssued"), 0);
}

#[tokio::test]
async fn later_errors_go_to_the_redirect_uri_with_state_and_iss() {
    let app = app_with_alice().await;
    let public = app.register_code_client("spa", &["--public"]).await;
    let agent = Agent::new(&app);
    let issuer =
        format!("http://localhost:{}/oauth2/token", url::Url::parse(&app.base_url).unwrap().port().unwrap());
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("prompt", "none")], "login_required"),
        (&[("code_challenge_method", "S512")], "invalid_request"),
        (&[("max_age", "soon")], "invalid_request"),
    ];
    for (extra, error) in cases {
        let url = authorize_url(&public, extra);
        let location = see_other(&agent.get(&url).await);
        assert!(location.starts_with(CALLBACK), "{location}");
        let q = query_of(&location);
        assert_eq!(param(&q, "error").as_deref(), Some(error), "{location}");
        assert!(param(&q, "error_description").is_some());
        assert_eq!(param(&q, "state").as_deref(), Some("state-1"));
        assert_eq!(param(&q, "iss"), Some(issuer.clone()));
    }
    // A public client must use PKCE.
    let no_pkce = authorize_url(&public, &[("code_challenge", ""), ("code_challenge_method", "")]);
    let q = query_of(&see_other(&agent.get(&no_pkce).await));
    assert_eq!(param(&q, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused() {
    let app = app_with_alice().await;
    let client = app.register_code_client("web", &[]).await;
    let agent = Agent::new(&app);
    let url = authorize_url(&client, &[]);
    let mut login = agent.form_of(&url, "loginForm").await;
    assert!(login.get("csrf_token").is_some_and(|t| t.len() >= 40), "the form carries a CSRF token");
    login.set("username", ALICE.0);
    login.set("password", ALICE.1);
    let forged = agent.submit(&login.clone().without("csrf_token")).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let mut wrong = login.clone();
    wrong.set("csrf_token", "AAAA");
    assert_eq!(agent.submit(&wrong).await.status(), StatusCode::FORBIDDEN);
    // Another browser (no CSRF cookie) cannot replay this browser's form either.
    let other = Agent::new(&app);
    assert_eq!(other.submit(&login).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(count_of(&app.events(), "SessionStarted"), 0);

    let back = see_other(&agent.submit(&login).await);
    let consent = agent.form_of(&back, "consentForm").await;
    let mut approve = consent.without("csrf_token");
    approve.set("consent", "approve");
    assert_eq!(agent.submit(&approve).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(count_of(&app.events(), "CodeIssued"), 0);
}

#[tokio::test]
async fn a_wrong_password_shows_the_login_page_again_and_is_recorded() {
    let app = app_with_alice().await;
    let client = app.register_code_client("web", &[]).await;
    let agent = Agent::new(&app);
    let url = authorize_url(&client, &[]);
    let back = agent.sign_in(&url, (ALICE.0, "wrong")).await;
    assert!(back.contains("auth_failure=invalid"), "{back}");
    let page = agent.get(&back).await.text().await.unwrap();
    assert!(page.contains("id=\"login-error\""), "{page}");
    let failures: Vec<_> = app.events().into_iter().filter(|e| e.event_type == "LoginFailed").collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].payload["username"], "alice");
    assert_eq!(failures[0].stream, "user-alice");
    for _ in 0..5 {
        agent.sign_in(&url, (ALICE.0, "wrong")).await;
    }
    // The back-off now locks even the right password for a moment.
    let locked = agent.sign_in(&url, ALICE).await;
    assert!(locked.contains("auth_failure=locked"), "{locked}");
}

#[tokio::test]
async fn a_replayed_code_is_invalid_grant_and_revokes_the_token_issued_from_it() {
    let app = app_with_alice().await;
    let client = app.register_code_client("web", &[]).await;
    let agent = Agent::new(&app);
    let code = param(&agent.code_for(&authorize_url(&client, &[]), ALICE).await, "code").unwrap();
    let tokens = Tokens::from_response(app.exchange(&client, &code, Some(VERIFIER)).await).await;
    assert!(app.is_active(&tokens.access_token).await);
    let replay = app.exchange(&client, &code, Some(VERIFIER)).await;
    assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(!app.is_active(&tokens.access_token).await);
    assert!(!app.is_active(tokens.refresh()).await);
    let events = app.events();
    assert_eq!(count_of(&events, "CodeReplayed"), 1);
    assert_eq!(revocation_reasons(&events), ["code_replay"]);
    // A fresh flow for the same user, client and scopes gets a different token (WSO2 T11).
    let code = param(&agent.code_for(&authorize_url(&client, &[]), ALICE).await, "code");
    let code = code.unwrap_or_default();
    let again = Tokens::from_response(app.exchange(&client, &code, Some(VERIFIER)).await).await;
    assert_ne!(again.access_token, tokens.access_token);
}

#[tokio::test]
async fn pkce_failures_are_invalid_grant_and_burn_the_code() {
    let app = app_with_alice().await;
    let client = app.register_code_client("web", &[]).await;
    let agent = Agent::new(&app);
    let url = authorize_url(&client, &[]);
    let code = param(&agent.code_for(&url, ALICE).await, "code").unwrap();
    let wrong = format!("{}A", &VERIFIER[..42]);
    assert_oauth_error(
        app.exchange(&client, &code, Some(&wrong)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // Burned: the right verifier no longer helps.
    assert_oauth_error(
        app.exchange(&client, &code, Some(VERIFIER)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // A missing verifier for a code with a challenge.
    let code = param(&agent.code_for(&url, ALICE).await, "code").unwrap();
    assert_oauth_error(app.exchange(&client, &code, None).await, StatusCode::BAD_REQUEST, "invalid_grant")
        .await;
    // A verifier for a code issued without a challenge: a PKCE downgrade (RFC 9700 4.8.2).
    let no_pkce = authorize_url(&client, &[("code_challenge", ""), ("code_challenge_method", "")]);
    let code = param(&agent.code_for(&no_pkce, ALICE).await, "code").unwrap();
    let body = assert_oauth_error(
        app.exchange(&client, &code, Some(VERIFIER)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    assert!(body["error_description"].is_string());
    assert_eq!(count_of(&app.events(), "CodeRejected"), 3);
    assert_eq!(count_of(&app.events(), "TokenIssued"), 0);
}

#[tokio::test]
async fn a_different_redirect_uri_or_another_client_at_the_token_endpoint_is_invalid_grant() {
    let app = app_with_alice().await;
    let client = app.register_code_client("web", &[]).await;
    let thief = app.register_code_client("thief", &[]).await;
    let agent = Agent::new(&app);
    let url = authorize_url(&client, &[]);
    let code = param(&agent.code_for(&url, ALICE).await, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://127.0.0.1:9/other"),
        ("code_verifier", VERIFIER),
    ];
    assert_oauth_error(app.post_token(&client, &form).await, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let code = param(&agent.code_for(&url, ALICE).await, "code").unwrap();
    assert_oauth_error(
        app.exchange(&thief, &code, Some(VERIFIER)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    // A confidential client must still authenticate.
    let code = param(&agent.code_for(&url, ALICE).await, "code").unwrap();
    let anonymous = app
        .token_request()
        .form(&[("grant_type", "authorization_code"), ("code", &code), ("client_id", &client.id)])
        .send()
        .await
        .unwrap();
    assert_oauth_error(anonymous, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn deny_sends_access_denied_and_pages_carry_the_security_headers() {
    let app = app_with_alice().await;
    let client = app.register_code_client("web", &[]).await;
    let agent = Agent::new(&app);
    let url = authorize_url(&client, &[]);
    let page = agent.get(&url).await;
    let headers = page.headers().clone();
    assert_eq!(header(&headers, "x-frame-options"), "DENY");
    assert!(header(&headers, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let cookie = header(&headers, "set-cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let mut login = page_form(page, "loginForm").await;
    login.set("username", ALICE.0);
    login.set("password", ALICE.1);
    let after_login = agent.submit(&login).await;
    let session_cookie = header(after_login.headers(), "set-cookie");
    assert!(
        session_cookie.starts_with("tl_session=") && session_cookie.contains("HttpOnly"),
        "{session_cookie}"
    );
    let back = see_other(&after_login);
    let denied = query_of(&agent.consent(&back, "deny").await);
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&denied, "state").as_deref(), Some("state-1"));
    assert_eq!(count_of(&app.events(), "ConsentWithdrawn"), 1);
}

#[tokio::test]
async fn discovery_is_served_at_the_three_wso2_paths_and_rfc_8414_lists_the_new_endpoints() {
    let app = app_with_alice().await;
    let mut issuers = Vec::new();
    for path in [
        "/oauth2/token/.well-known/openid-configuration",
        "/oauth2/oidcdiscovery/.well-known/openid-configuration",
        "/.well-known/openid-configuration",
    ] {
        let doc: serde_json::Value = app.http.get(app.url(path)).send().await.unwrap().json().await.unwrap();
        assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
        assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256", "plain"]));
        issuers.push(doc["issuer"].as_str().unwrap().to_owned());
    }
    assert!(issuers.iter().all(|i| i.ends_with("/oauth2/token") && *i == issuers[0]), "{issuers:?}");
    let meta: serde_json::Value = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(meta["authorization_endpoint"].as_str().unwrap().ends_with("/oauth2/authorize"));
    assert!(meta["grant_types_supported"].as_array().unwrap().iter().any(|g| g == "authorization_code"));
    let jwks: serde_json::Value =
        app.http.get(app.url("/oauth2/jwks")).send().await.unwrap().json().await.unwrap();
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kty"] == "RSA" && k["alg"] == "RS256"));
}
