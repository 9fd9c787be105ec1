//! A running server and one method per request the specifications make.

use std::process::ExitStatus;
use std::time::Duration;

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;
use tokio::process::Child;

use super::config::{ConfigOverrides, ADMIN_USER};
use super::deployment::Deployment;
use super::oauth::{Client, Tokens};
use super::{expect_json, inactive};

/// A running server plus its folder. Dropping it kills the process.
pub struct TestApp {
    pub deployment: Deployment,
    child: Child,
    pub base_url: String,
    pub http: reqwest::Client,
}

/// Starts a server on a fresh folder.
pub async fn spawn_app(config: ConfigOverrides) -> TestApp {
    Deployment::new(&config).start().await
}

impl Deployment {
    /// Starts `token-ledger serve` on this folder.
    pub async fn start(self) -> TestApp {
        let (child, base_url) = self.start_server().await;
        TestApp { deployment: self, child, base_url, http: http_client() }
    }
}

/// Set to `1` to run the suite's requests over HTTP/2 (h2c prior knowledge on plain HTTP, ALPN
/// `h2` over TLS); otherwise HTTP/1.1. CI runs the suite both ways.
const HTTP2_ENV: &str = "TOKEN_LEDGER_TEST_HTTP2";

/// Whether this run speaks HTTP/2 to the server.
fn http2_run() -> bool {
    std::env::var(HTTP2_ENV).is_ok_and(|v| v == "1")
}

fn http_client() -> reqwest::Client {
    let builder = reqwest::Client::builder();
    let builder = if http2_run() { builder.http2_prior_knowledge() } else { builder.http1_only() };
    builder
        .no_proxy()
        .timeout(Duration::from_secs(30))
        // The server closes connections idle for 10 s (its header read timeout); a pooled
        // connection must be dropped before that, or a request may go out on a closing one.
        .pool_idle_timeout(Duration::from_secs(5))
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .expect("build the HTTP client")
}

impl std::ops::Deref for TestApp {
    type Target = Deployment;

    fn deref(&self) -> &Deployment {
        &self.deployment
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// SIGKILL (a crash), then a fresh process on the same folder.
    pub async fn kill_and_restart(&mut self) {
        self.kill().await;
        self.restart().await;
    }

    /// SIGKILL (a crash), returning once the process is gone; `restart` brings it back.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("SIGKILL the server");
    }

    /// The server process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Starts a fresh process on the same folder; the previous one must have exited.
    pub async fn restart(&mut self) {
        let (child, base_url) = self.deployment.start_server().await;
        self.child = child;
        self.base_url = base_url;
    }

    /// Sends SIGTERM and waits for the process to exit (at most 15 s).
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().expect("the server is running").to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the server exits within 15 s of SIGTERM")
            .expect("wait for the server")
    }

    /// A POST to `/oauth2/token` without client authentication yet.
    pub fn token_request(&self) -> RequestBuilder {
        self.http.post(self.url("/oauth2/token"))
    }

    /// A token request authenticated with `client_secret_basic`.
    pub async fn post_token(&self, client: &Client, form: &[(&str, &str)]) -> Response {
        self.token_request()
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .expect("POST /oauth2/token")
    }

    pub async fn password_grant(
        &self,
        client: &Client,
        username: &str,
        password: &str,
        scope: &str,
    ) -> Response {
        let mut form = vec![("grant_type", "password"), ("username", username), ("password", password)];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        self.post_token(client, &form).await
    }

    /// A password grant that must succeed.
    pub async fn token_password(
        &self,
        client: &Client,
        username: &str,
        password: &str,
        scope: &str,
    ) -> Tokens {
        Tokens::from_response(self.password_grant(client, username, password, scope).await).await
    }

    /// A password grant as the super admin that must succeed.
    pub async fn token_admin(&self, client: &Client, scope: &str) -> Tokens {
        self.token_password(client, ADMIN_USER, self.admin_password(), scope).await
    }

    pub async fn client_credentials_grant(&self, client: &Client, scope: &str) -> Response {
        let mut form = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        self.post_token(client, &form).await
    }

    /// A client_credentials grant that must succeed.
    pub async fn token_client_credentials(&self, client: &Client, scope: &str) -> Tokens {
        Tokens::from_response(self.client_credentials_grant(client, scope).await).await
    }

    pub async fn refresh_grant(&self, client: &Client, refresh_token: &str, scope: Option<&str>) -> Response {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.post_token(client, &form).await
    }

    /// A refresh grant that must succeed.
    pub async fn token_refresh(&self, client: &Client, refresh_token: &str, scope: Option<&str>) -> Tokens {
        Tokens::from_response(self.refresh_grant(client, refresh_token, scope).await).await
    }

    /// POST `/oauth2/introspect` with the given Basic credentials (if any) and form.
    pub async fn introspect_with(
        &self,
        credentials: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Response {
        let mut request = self.http.post(self.url("/oauth2/introspect")).form(form);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        request.send().await.expect("POST /oauth2/introspect")
    }

    /// Introspection as the super admin; must answer 200.
    pub async fn introspect(&self, token: &str) -> Value {
        let response =
            self.introspect_with(Some((ADMIN_USER, self.admin_password())), &[("token", token)]).await;
        expect_json(response, StatusCode::OK).await
    }

    /// Introspection as a registered client; must answer 200.
    pub async fn introspect_as_client(&self, client: &Client, token: &str) -> Value {
        let response = self.introspect_with(Some((&client.id, &client.secret)), &[("token", token)]).await;
        expect_json(response, StatusCode::OK).await
    }

    /// Whether the super admin's introspection says active; an inactive answer must be exactly
    /// `{"active":false}`.
    pub async fn is_active(&self, token: &str) -> bool {
        let body = self.introspect(token).await;
        match body.get("active") {
            Some(Value::Bool(true)) => true,
            Some(Value::Bool(false)) => {
                assert_eq!(body, inactive(), "an inactive token must say only that");
                false
            }
            _ => panic!("introspection without a boolean `active`: {body}"),
        }
    }

    /// POST `/oauth2/revoke` with `client_secret_basic`.
    pub async fn revoke(&self, client: &Client, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/oauth2/revoke"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(form)
            .send()
            .await
            .expect("POST /oauth2/revoke")
    }

    /// Revokes a token; must answer 200 with an empty body.
    pub async fn revoke_token(&self, client: &Client, token: &str) {
        let response = self.revoke(client, &[("token", token)]).await;
        assert_revoke_ok(response).await;
    }

    /// The DCR collection URL, or one client's URL.
    pub fn dcr_url(&self, client_id: Option<&str>) -> String {
        match client_id {
            Some(id) => self.url(&format!("/api/identity/oauth2/dcr/v1.1/register/{id}")),
            None => self.url("/api/identity/oauth2/dcr/v1.1/register"),
        }
    }

    /// Registers a client through DCR as the super admin; must answer 201.
    pub async fn register_client_dcr(&self, name: &str, grant_types: &[&str]) -> Client {
        let response = self
            .http
            .post(self.dcr_url(None))
            .basic_auth(ADMIN_USER, Some(self.admin_password()))
            .json(&serde_json::json!({"client_name": name, "grant_types": grant_types}))
            .send()
            .await
            .expect("POST the DCR endpoint");
        Client::from_json(&expect_json(response, StatusCode::CREATED).await)
    }

    /// A client with the default grant types, registered through the CLI while the server runs.
    pub async fn register_client(&self, name: &str) -> Client {
        self.register_client_with_grants(name, &[]).await
    }
}

/// RFC 7009 §2.2: 200 with an empty body.
pub async fn assert_revoke_ok(response: Response) {
    let status = response.status();
    let body = response.text().await.expect("read the revoke body");
    assert_eq!(status, StatusCode::OK, "revoke answered {status}: {body}");
    assert!(body.is_empty(), "revoke must answer an empty body, got {body:?}");
}
