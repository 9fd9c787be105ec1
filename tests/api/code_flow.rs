//! The authorization code flow as relying parties drive it: a real OpenID Connect library
//! (openidconnect-rs) does discovery, PKCE, the token request, verifies the ID token against
//! the JWKS and calls UserInfo; the login and consent forms are followed over HTTPS as a
//! browser would follow them, cookies and hidden fields included.

use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;

use crate::helpers::{
    authorize_url, param, query_of, see_other, spawn_app, Agent, ConfigOverrides, Tokens, ALICE, CALLBACK,
    VERIFIER,
};

fn https() -> ConfigOverrides {
    ConfigOverrides { https: true, ..ConfigOverrides::renewal_off() }
}

#[tokio::test]
async fn an_openid_connect_library_completes_the_code_flow_and_verifies_the_id_token() {
    let app = spawn_app(https()).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let registered = app.register_code_client("oidc-rp", &[]).await;
    let agent = Agent::new(&app);
    let port = url::Url::parse(&app.base_url).unwrap().port().unwrap();
    // The issuer is the token endpoint URL, as in WSO2; discovery lives under it.
    let issuer = IssuerUrl::new(format!("https://localhost:{port}/oauth2/token")).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &agent.http).await.expect("discovery");
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered.id.clone()),
        Some(ClientSecret::new(registered.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let callback = agent.code_for(url.as_str(), ALICE).await;
    assert_eq!(param(&callback, "state").as_deref(), Some(state.secret().as_str()));
    assert_eq!(param(&callback, "iss"), Some(format!("https://localhost:{port}/oauth2/token")));
    let code = param(&callback, "code").expect("a code in the callback");

    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&agent.http)
        .await
        .expect("the code exchange");
    let id_token = tokens.id_token().expect("an id_token for the openid scope");
    let verifier = rp.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).expect("the ID token verifies against the JWKS");
    assert_eq!(claims.subject().as_str(), "alice");
    assert!(claims.auth_time().is_some());
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));
    let header = id_token.to_string();
    assert!(header.starts_with("eyJ"), "a compact JWS");

    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&agent.http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), "alice");
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));

    let refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed =
        rp.exchange_refresh_token(&refresh).unwrap().request_async(&agent.http).await.expect("refresh");
    assert_ne!(refreshed.access_token().secret(), tokens.access_token().secret());

    // Revoked: UserInfo answers 401 at once.
    let access = refreshed.access_token().secret().clone();
    app.revoke_token(&registered, &access).await;
    let after = agent
        .http
        .get(format!("{}/oauth2/userinfo", app.base_url))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert!(crate::helpers::header(after.headers(), "www-authenticate").starts_with("Bearer"));
}

#[tokio::test]
async fn a_second_authorization_reuses_the_session_and_approve_always_skips_the_consent_page() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let client = app.register_code_client("spa", &["--public"]).await;
    let agent = Agent::new(&app);
    let url = authorize_url(&client, &[]);
    let back = agent.sign_in(&url, ALICE).await;
    let first = query_of(&agent.consent(&back, "approveAlways").await);
    assert!(param(&first, "code").is_some());

    // Same browser: no login page, no consent page: straight back with a code.
    let again = agent.get(&url).await;
    let location = see_other(&again);
    assert!(location.starts_with(CALLBACK), "{location}");
    let code = param(&query_of(&location), "code").expect("a code without any page");
    let tokens = Tokens::from_response(app.exchange(&client, &code, Some(VERIFIER)).await).await;
    assert!(tokens.refresh_token.is_some());

    // prompt=none works too while signed in; after /oidc/logout it answers login_required.
    let silent = see_other(&agent.get(&authorize_url(&client, &[("prompt", "none")])).await);
    assert!(param(&query_of(&silent), "code").is_some(), "{silent}");
    let logout = agent.form_of("/oidc/logout", "logoutForm").await;
    assert_eq!(see_other(&agent.submit(&logout).await), "/oidc/logout");
    let silent = see_other(&agent.get(&authorize_url(&client, &[("prompt", "none")])).await);
    assert_eq!(param(&query_of(&silent), "error").as_deref(), Some("login_required"));

    let types: Vec<String> = app.events().into_iter().map(|e| e.event_type).collect();
    for expected in
        ["LoginSucceeded", "SessionStarted", "ConsentGiven", "CodeIssued", "CodeRedeemed", "SessionEnded"]
    {
        assert!(types.iter().any(|t| t == expected), "no {expected} in {types:?}");
    }
}

#[tokio::test]
async fn with_renewal_off_a_code_for_a_key_with_a_password_token_hands_that_token_back() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    app.add_user(ALICE.0, ALICE.1).await;
    // A client that may use both the password grant and the code flow.
    let output = app
        .cli(&[
            "client",
            "register",
            "--name",
            "both-grants",
            "--grant-types",
            "authorization_code,password,refresh_token",
            "--redirect-uris",
            CALLBACK,
        ])
        .await;
    assert!(output.status.success(), "{}", output.stderr);
    let both = crate::helpers::Client::from_json(&serde_json::from_str(output.stdout.trim()).unwrap());
    let password = app.token_password(&both, ALICE.0, ALICE.1, "openid").await;
    let agent = Agent::new(&app);
    let callback = agent.code_for(&authorize_url(&both, &[]), ALICE).await;
    let code = param(&callback, "code").unwrap();
    let from_code = Tokens::from_response(app.exchange(&both, &code, Some(VERIFIER)).await).await;
    // The grant type is not part of the token key: the key's active token comes back.
    assert_eq!(from_code.access_token, password.access_token);
    assert!(from_code.body["id_token"].is_string());

    // Replaying the code revokes the token handed out for it, shared with the password grant.
    let replay = app.exchange(&both, &code, Some(VERIFIER)).await;
    crate::helpers::assert_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(!app.is_active(&password.access_token).await);
    assert_eq!(crate::helpers::revocation_reasons(&app.events()), ["code_replay"]);
}

#[tokio::test]
async fn the_audit_cli_shows_the_code_flows_events_and_rebuilds_their_views() {
    let Some(cli) = ledger_replay() else {
        println!("skipped: no ledger-replay binary next to token-ledger (cargo test --workspace builds it)");
        return;
    };
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    app.add_user(ALICE.0, ALICE.1).await;
    let client = app.register_code_client("audited", &[]).await;
    let agent = Agent::new(&app);
    let code = param(&agent.code_for(&authorize_url(&client, &[]), ALICE).await, "code").unwrap();
    Tokens::from_response(app.exchange(&client, &code, Some(VERIFIER)).await).await;
    let replay = app.exchange(&client, &code, Some(VERIFIER)).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(app.terminate().await.success());
    let db = app.db_arg();
    let run = |args: Vec<String>| {
        let output = std::process::Command::new(&cli).args(&args).arg("--db").arg(&db).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "ledger-replay {args:?}: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        text
    };
    let user = run(vec!["audit".into(), "--user".into(), "alice".into()]);
    for event in ["LoginSucceeded", "SessionStarted", "ConsentGiven", "CodeIssued", "TokenIssued"] {
        assert!(user.contains(event), "no {event} in the audit of alice:\n{user}");
    }
    let by_client = run(vec!["audit".into(), "--client".into(), client.id.clone()]);
    for event in ["CodeIssued", "CodeRedeemed", "CodeReplayed", "code_replay"] {
        assert!(by_client.contains(event), "no {event} in the audit of the client:\n{by_client}");
    }
    run(vec!["verify".into()]);
    run(vec!["rebuild".into(), "--check".into()]);
}

/// The audit CLI, built next to the server binary by `cargo test --workspace`.
fn ledger_replay() -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_token-ledger")).with_file_name("ledger-replay");
    path.is_file().then_some(path)
}
