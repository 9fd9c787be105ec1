//! The real `token-ledger serve` on a deployment, and the requests the scenarios make.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::StatusCode;
use serde_json::Value;

use super::binaries::token_ledger;
use super::deployment::Deployment;

const STARTUP: Duration = Duration::from_secs(30);

/// A registered OAuth client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
}

/// A successful token response, with the id the server gave the request.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub request_id: String,
}

impl Grant {
    pub fn refresh(&self) -> &str {
        self.refresh_token.as_deref().expect("a refresh token")
    }
}

/// A running server; killed when dropped, stopped cleanly by [`Server::stop`].
pub struct Server {
    child: Child,
    base_url: String,
    http: Http,
}

impl Server {
    /// Starts the server and waits for its `listening on URL` line.
    pub fn start(deployment: &Deployment) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(deployment.root().join("server.log"))
            .expect("open the server log");
        let mut child = Command::new(token_ledger())
            .arg("serve")
            .arg("--config")
            .arg(deployment.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn token-ledger serve");
        let stdout = child.stdout.take().expect("stdout pipe");
        let (ready, announced) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining stdout after the announcement so the server never blocks on it.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("listening on ") {
                    let _ = ready.send(url.trim_end_matches('/').to_owned());
                }
            }
        });
        let base_url = announced.recv_timeout(STARTUP).unwrap_or_else(|_| {
            let _ = child.kill();
            let log = std::fs::read_to_string(deployment.root().join("server.log"));
            panic!("the server did not start: {}", log.unwrap_or_default())
        });
        let http =
            Http::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        Server { child, base_url, http }
    }

    /// SIGTERM, then waits for the process: the database is closed cleanly.
    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        for _ in 0..300 {
            if self.child.try_wait().expect("wait for the server").is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not stop within 15 s of SIGTERM");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn dcr(&self, suffix: &str) -> String {
        self.url(&format!("/api/identity/oauth2/dcr/v1.1/register{suffix}"))
    }

    /// Registers a client with every grant type through DCR, as the super admin.
    pub fn register(&self, name: &str) -> Client {
        let response = self
            .http
            .post(self.dcr(""))
            .basic_auth("admin", Some("admin"))
            .json(&serde_json::json!({
                "client_name": name,
                "grant_types": ["password", "client_credentials", "refresh_token"],
            }))
            .send()
            .expect("POST the DCR endpoint");
        let body = expect(response, StatusCode::CREATED).1;
        Client {
            id: body["client_id"].as_str().expect("client_id").to_owned(),
            secret: body["client_secret"].as_str().expect("client_secret").to_owned(),
        }
    }

    /// Deletes a client through DCR; returns the request id.
    pub fn delete_client(&self, client: &Client) -> String {
        let response = self
            .http
            .delete(self.dcr(&format!("/{}", client.id)))
            .basic_auth("admin", Some("admin"))
            .send()
            .expect("DELETE the client");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        request_id(&response)
    }

    fn token(&self, client: &Client, form: &[(&str, &str)]) -> RequestBuilder {
        self.http.post(self.url("/oauth2/token")).basic_auth(&client.id, Some(&client.secret)).form(form)
    }

    /// A password grant as the super admin.
    pub fn password(&self, client: &Client, scope: &str) -> Grant {
        let form =
            [("grant_type", "password"), ("username", "admin"), ("password", "admin"), ("scope", scope)];
        grant(self.token(client, &form).send().expect("POST /oauth2/token"))
    }

    pub fn client_credentials(&self, client: &Client, scope: &str) -> Grant {
        let form = [("grant_type", "client_credentials"), ("scope", scope)];
        grant(self.token(client, &form).send().expect("POST /oauth2/token"))
    }

    pub fn refresh(&self, client: &Client, refresh_token: &str) -> Grant {
        grant(self.refresh_response(client, refresh_token))
    }

    /// A refresh that must be refused with `invalid_grant`; returns the request id.
    pub fn refresh_refused(&self, client: &Client, refresh_token: &str) -> String {
        let response = self.refresh_response(client, refresh_token);
        let id = request_id(&response);
        let (_, body) = expect(response, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "invalid_grant", "{body}");
        id
    }

    fn refresh_response(&self, client: &Client, refresh_token: &str) -> Response {
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        self.token(client, &form).send().expect("POST /oauth2/token")
    }

    /// RFC 7009 revocation; returns the request id.
    pub fn revoke(&self, client: &Client, token: &str) -> String {
        let response = self
            .http
            .post(self.url("/oauth2/revoke"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("token", token)])
            .send()
            .expect("POST /oauth2/revoke");
        assert_eq!(response.status(), StatusCode::OK);
        request_id(&response)
    }

    /// Introspection as the super admin.
    pub fn introspect(&self, token: &str) -> Value {
        let response = self
            .http
            .post(self.url("/oauth2/introspect"))
            .basic_auth("admin", Some("admin"))
            .form(&[("token", token)])
            .send()
            .expect("POST /oauth2/introspect");
        expect(response, StatusCode::OK).1
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request_id(response: &Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("an X-Request-Id header")
        .to_owned()
}

fn expect(response: Response, status: StatusCode) -> (String, Value) {
    let id = request_id(&response);
    let actual = response.status();
    let text = response.text().expect("a response body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (id, body)
}

fn grant(response: Response) -> Grant {
    let (request_id, body) = expect(response, StatusCode::OK);
    Grant {
        access_token: body["access_token"].as_str().expect("access_token").to_owned(),
        refresh_token: body["refresh_token"].as_str().map(str::to_owned),
        request_id,
    }
}
