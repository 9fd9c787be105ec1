//! A strict client library no one here wrote, panva's oauth4webapi (npm), drives the server over
//! TLS: discovery from the issuer by RFC 8414 section 3.1 path insertion, client_credentials,
//! password, refresh, introspection, revocation, and the RFC 9068 resource-server check
//! `validateJwtAccessToken` (which used to refuse every JWT: `iss` differed from the metadata's
//! `issuer`). `tests/interop/drive.mjs` is the script; `.ci/run` runs `npm ci` for it.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{in_ci, spawn_app, tool_available, ConfigOverrides, ADMIN_USER};

const INTEROP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");

#[tokio::test]
async fn oauth4webapi_discovers_the_issuer_and_validates_its_jwt_access_tokens() {
    let test = "interop::oauth4webapi_discovers_the_issuer_and_validates_its_jwt_access_tokens";
    if !tool_available("node", test) {
        return;
    }
    if !Path::new(INTEROP).join("node_modules/oauth4webapi").is_dir() {
        assert!(
            !in_ci(),
            "{test}: tests/interop/node_modules is missing under CI=true (.ci/run runs npm ci)"
        );
        eprintln!("SKIPPED {test}: run `npm ci --prefix tests/interop` first; nothing was checked");
        return;
    }
    let app = spawn_app(ConfigOverrides { https: true, ..ConfigOverrides::renewal_off() }).await;
    let opaque = app.register_client("interop-opaque").await;
    let jwt = app.cli(&["client", "register", "--name", "interop-jwt", "--access-token-type", "jwt"]).await;
    assert!(jwt.status.success(), "{}", jwt.stderr);
    let jwt: Value = serde_json::from_str(jwt.stdout.trim()).unwrap();
    let port = app.base_url.rsplit(':').next().unwrap();
    let issuer = format!("https://localhost:{port}/oauth2/token");

    let run = tokio::process::Command::new("node")
        .arg("drive.mjs")
        .current_dir(INTEROP)
        .env("NODE_EXTRA_CA_CERTS", app.data_dir().join("tls-cert.pem"))
        .env("ISSUER", &issuer)
        .env("CLIENT_ID", &opaque.id)
        .env("CLIENT_SECRET", &opaque.secret)
        .env("JWT_CLIENT_ID", jwt["client_id"].as_str().unwrap())
        .env("JWT_CLIENT_SECRET", jwt["client_secret"].as_str().unwrap())
        .env("LEDGER_USERNAME", ADMIN_USER)
        .env("LEDGER_PASSWORD", app.admin_password())
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(60), run).await.expect("node finished").expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "oauth4webapi failed:\n{stdout}\n{stderr}");
    let steps: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let names: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    assert_eq!(
        names,
        [
            "discovery",
            "client_credentials",
            "password",
            "refresh_token",
            "introspection",
            "revocation",
            "validateJwtAccessToken",
            "done"
        ]
    );
    assert_eq!(steps[0]["issuer"], issuer.as_str());
    assert!(steps[0]["url"]
        .as_str()
        .unwrap()
        .ends_with("/.well-known/oauth-authorization-server/oauth2/token"));
}
