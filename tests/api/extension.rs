//! The token-generator extension point, from a crate that builds on the library: a generator
//! registered by name replaces the default, and its renewal choice beats the config flag in
//! both directions (code beats config, as in WSO2). The server runs in-process here, because
//! the generator is code, not configuration.

use std::sync::Arc;

use serde_json::{json, Value};
use token_ledger::app::Application;
use token_ledger::config::Settings;
use token_ledger::tokens::{AccessTokenClaims, GeneratorError, TokenGenerator};

use crate::helpers::{inactive, ConfigOverrides};

/// Token values that say who made them, with a fixed renewal choice.
struct Labelled {
    renew: Option<bool>,
}

impl TokenGenerator for Labelled {
    fn access_token(&self, claims: &AccessTokenClaims<'_>) -> Result<String, GeneratorError> {
        Ok(format!("labelled-{}-{}", claims.jti.simple(), token_ledger::crypto::new_secret()))
    }

    fn renew_per_request(&self) -> Option<bool> {
        self.renew
    }
}

struct InProcess {
    _dir: tempfile::TempDir,
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(config_flag: bool, renew: Option<bool>) -> InProcess {
    let dir = tempfile::tempdir().unwrap();
    let overrides =
        ConfigOverrides { renew_access_token_per_request: config_flag, ..ConfigOverrides::default() };
    let toml =
        overrides.to_toml().replace("access_token_type = \"opaque\"", "access_token_type = \"labelled\"");
    let path = dir.path().join("deployment.toml");
    std::fs::write(&path, toml).unwrap();
    let settings = Settings::load(&path).unwrap();
    let app = Application::build(settings, |generators| {
        generators.register("labelled", Arc::new(Labelled { renew }));
    })
    .await
    .expect("the application builds with a custom generator");
    let base = app.url();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    InProcess { _dir: dir, base, http: reqwest::Client::new(), stop: Some(stop) }
}

impl InProcess {
    async fn client(&self) -> (String, String) {
        let body: Value = self
            .http
            .post(format!("{}/api/identity/oauth2/dcr/v1.1/register", self.base))
            .basic_auth("admin", Some("admin"))
            .json(&json!({"client_name": "ext"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (body["client_id"].as_str().unwrap().into(), body["client_secret"].as_str().unwrap().into())
    }

    async fn token(&self, client: &(String, String)) -> String {
        let response = self
            .http
            .post(format!("{}/oauth2/token", self.base))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("grant_type", "password"), ("username", "admin"), ("password", "admin")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn introspect(&self, token: &str) -> Value {
        self.http
            .post(format!("{}/oauth2/introspect", self.base))
            .basic_auth("admin", Some("admin"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_generator_that_forbids_renewal_beats_the_flag_turned_on() {
    let server = start(true, Some(false)).await;
    let client = server.client().await;
    let first = server.token(&client).await;
    assert!(first.starts_with("labelled-"), "the registered generator made it: {first}");
    assert_eq!(server.token(&client).await, first);
    assert_eq!(server.introspect(&first).await["active"], true);
}

#[tokio::test]
async fn a_generator_that_forces_renewal_beats_the_flag_turned_off() {
    let server = start(false, Some(true)).await;
    let client = server.client().await;
    let first = server.token(&client).await;
    let second = server.token(&client).await;
    assert_ne!(second, first);
    assert_eq!(server.introspect(&first).await, inactive());
    assert_eq!(server.introspect(&second).await["active"], true);
}

#[tokio::test]
async fn a_generator_without_an_opinion_leaves_renewal_to_the_flag() {
    let server = start(true, None).await;
    let client = server.client().await;
    let first = server.token(&client).await;
    assert_ne!(server.token(&client).await, first);
}
