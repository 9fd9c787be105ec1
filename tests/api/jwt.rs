//! Self-contained access tokens (RFC 9068): verified here with an independent ES256 verifier
//! built from the published JWKS, never through the service's own code.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::EncodedPoint;
use serde_json::Value;

use crate::helpers::{expect_json, inactive, spawn_app, ConfigOverrides, TestApp};

fn jwt_server() -> ConfigOverrides {
    ConfigOverrides { access_token_type: "jwt", ..ConfigOverrides::renewal_off() }
}

fn part(token: &str, index: usize) -> Value {
    let raw = token.split('.').nth(index).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).expect("base64url")).expect("JSON")
}

async fn jwks(app: &TestApp) -> Vec<Value> {
    let response = app.http.get(app.url("/oauth2/jwks")).send().await.unwrap();
    let body = expect_json(response, reqwest::StatusCode::OK).await;
    body["keys"].as_array().expect("a JWK Set").clone()
}

/// Verifies the ES256 signature with the JWK named by the header's `kid`; returns the claims.
async fn verify_independently(app: &TestApp, token: &str) -> Value {
    let header = part(token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().expect("kid");
    let keys = jwks(app).await;
    let jwk = keys.iter().find(|k| k["kid"] == kid).unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let (x, y) = (coordinate("x"), coordinate("y"));
    let point = EncodedPoint::from_affine_coordinates(x.as_slice().into(), y.as_slice().into(), false);
    let key = VerifyingKey::from_encoded_point(&point).expect("a P-256 public key");
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).expect("r || s");
    key.verify(signed.as_bytes(), &signature).expect("the signature verifies against the JWKS");
    part(token, 1)
}

#[tokio::test]
async fn jwt_access_tokens_carry_rfc_9068_claims_that_verify_against_the_jwks() {
    let app = spawn_app(jwt_server()).await;
    let client = app.register_client("jwt-app").await;
    let tokens = app.token_admin(&client, "write read").await;
    let claims = verify_independently(&app, &tokens.access_token).await;
    assert_eq!(claims["iss"], format!("{}/oauth2/token", app.base_url.replace("127.0.0.1", "localhost")));
    assert_eq!(claims["sub"], "admin");
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["client_id"], client.id.as_str());
    assert_eq!(claims["scope"], "read write");
    let (iat, nbf, exp) =
        (claims["iat"].as_i64().unwrap(), claims["nbf"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(iat, nbf);
    assert_eq!(exp - iat, 3600);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 32));

    let app_token = app.token_client_credentials(&client, "").await;
    let app_claims = verify_independently(&app, &app_token.access_token).await;
    assert_eq!(app_claims["sub"], client.id.as_str(), "application tokens name the client");
}

#[tokio::test]
async fn jwts_renew_on_every_request_even_with_the_flag_off_and_keep_the_refresh_token() {
    let app = spawn_app(jwt_server()).await;
    let client = app.register_client("jwt-app").await;
    let first = app.token_admin(&client, "openid").await;
    let second = app.token_admin(&client, "openid").await;
    assert_ne!(first.access_token, second.access_token);
    assert_eq!(first.refresh(), second.refresh(), "the refresh token is carried over (product-is #10684)");
    assert_eq!(app.introspect(&first.access_token).await, inactive());
    let active = app.introspect(&second.access_token).await;
    assert_eq!(active["active"], true);
    let claims = part(&second.access_token, 1);
    for name in ["jti", "sub", "iss", "aud"] {
        assert_eq!(active[name], claims[name], "introspection adds {name}");
    }
}

#[tokio::test]
async fn with_the_flag_on_jwts_also_get_a_new_refresh_token() {
    let app = spawn_app(ConfigOverrides { access_token_type: "jwt", ..ConfigOverrides::renewal_on() }).await;
    let client = app.register_client("jwt-app").await;
    let first = app.token_admin(&client, "").await;
    let second = app.token_admin(&client, "").await;
    assert_ne!(first.refresh(), second.refresh());
}

#[tokio::test]
async fn a_revoked_jwt_introspects_inactive_at_once_though_its_signature_is_valid() {
    let app = spawn_app(jwt_server()).await;
    let client = app.register_client("jwt-app").await;
    let tokens = app.token_admin(&client, "").await;
    verify_independently(&app, &tokens.access_token).await;
    app.revoke_token(&client, &tokens.access_token).await;
    assert_eq!(app.introspect(&tokens.access_token).await, inactive());
}

#[tokio::test]
async fn a_tampered_jwt_is_inactive() {
    let app = spawn_app(jwt_server()).await;
    let client = app.register_client("jwt-app").await;
    let tokens = app.token_admin(&client, "").await;
    let mut claims = part(&tokens.access_token, 1);
    claims["sub"] = "mallory".into();
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let pieces: Vec<&str> = tokens.access_token.split('.').collect();
    let forged = format!("{}.{forged_payload}.{}", pieces[0], pieces[2]);
    assert_eq!(app.introspect(&forged).await, inactive());
    assert_eq!(app.introspect(&tokens.access_token).await["active"], true);
}

#[tokio::test]
async fn a_client_may_choose_jwts_on_a_server_whose_default_is_opaque() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let output = app.cli(&["client", "register", "--name", "jwt-app", "--access-token-type", "jwt"]).await;
    assert!(output.status.success(), "{}", output.stderr);
    let json: Value = serde_json::from_str(output.stdout.trim()).unwrap();
    assert_eq!(json["access_token_type"], "jwt");
    let jwt_client = crate::helpers::Client::from_json(&json);
    let opaque_client = app.register_client("opaque-app").await;
    let jwt = app.token_admin(&jwt_client, "").await;
    verify_independently(&app, &jwt.access_token).await;
    let opaque = app.token_admin(&opaque_client, "").await;
    assert_eq!(opaque.access_token.split('.').count(), 1, "the default stays opaque");

    let response = app
        .http
        .post(app.dcr_url(None))
        .basic_auth("admin", Some("admin"))
        .json(&serde_json::json!({"client_name": "dcr-jwt", "access_token_type": "jwt"}))
        .send()
        .await
        .unwrap();
    let body = expect_json(response, reqwest::StatusCode::CREATED).await;
    assert_eq!(body["access_token_type"], "jwt");
    let dcr_client = crate::helpers::Client::from_json(&body);
    let token = app.token_admin(&dcr_client, "").await;
    verify_independently(&app, &token.access_token).await;
}

#[tokio::test]
async fn key_rotation_signs_new_tokens_with_the_new_key_and_old_tokens_stay_valid() {
    let app = spawn_app(jwt_server()).await;
    let client = app.register_client("jwt-app").await;
    let before = app.token_admin(&client, "before").await;
    let old_kid = part(&before.access_token, 0)["kid"].clone();
    let output = app.cli(&["keys", "rotate"]).await;
    assert!(output.status.success(), "{}", output.stderr);
    let rotated: Value = serde_json::from_str(output.stdout.trim()).unwrap();
    // The server checks the key list at most once a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = app.token_admin(&client, "after").await;
    let new_kid = part(&after.access_token, 0)["kid"].clone();
    assert_eq!(new_kid, rotated["kid"]);
    assert_ne!(new_kid, old_kid);
    let kids: Vec<Value> = jwks(&app).await.iter().map(|k| k["kid"].clone()).collect();
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "both keys are published: {kids:?}");
    verify_independently(&app, &before.access_token).await;
    verify_independently(&app, &after.access_token).await;
    assert_eq!(app.introspect(&before.access_token).await["active"], true);
    assert_eq!(app.introspect(&after.access_token).await["active"], true);
}

#[tokio::test]
async fn only_the_jti_and_a_digest_of_a_jwt_reach_the_log() {
    let mut app = spawn_app(jwt_server()).await;
    let client = app.register_client("jwt-app").await;
    let tokens = app.token_admin(&client, "").await;
    let jti = part(&tokens.access_token, 1)["jti"].as_str().unwrap().to_owned();
    app.terminate().await;
    let db = app.stored_bytes();
    let signature = tokens.access_token.rsplit('.').next().unwrap();
    assert!(!crate::helpers::contains_bytes(&db, signature.as_bytes()));
    assert!(!crate::helpers::contains_bytes(&db, tokens.access_token.as_bytes()));
    let events = app.events();
    let issued =
        events.iter().find(|e| e.event_type == "TokenIssued" && e.payload["token_id"] == jti.as_str());
    let issued = issued.expect("a TokenIssued event whose token_id is the jti");
    assert!(issued.payload.get("sealed_access").is_none(), "no sealed JWT in the log");
}
