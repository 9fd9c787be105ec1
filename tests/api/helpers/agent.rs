//! A person's browser without the browser: keeps cookies, follows no redirect by itself, reads
//! forms (hidden fields and all) from the pages, and submits them as a browser would.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use scraper::{Html, Selector};

use super::app::TestApp;
use super::oauth::Client;

/// The PKCE pair of RFC 7636 appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// A loopback callback nobody listens on: the tests read the redirect's `Location`.
pub const CALLBACK: &str = "http://127.0.0.1:9/cb";
/// The user every code-flow test signs in as.
pub const ALICE: (&str, &str) = ("alice", "alice-password-1");

/// A form read from a page.
#[derive(Debug, Clone)]
pub struct PageForm {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl PageForm {
    pub fn set(&mut self, name: &str, value: &str) {
        self.fields.retain(|(n, _)| n != name);
        self.fields.push((name.to_owned(), value.to_owned()));
    }

    pub fn without(mut self, name: &str) -> Self {
        self.fields.retain(|(n, _)| n != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A cookie-keeping client that never follows redirects.
pub struct Agent {
    pub http: reqwest::Client,
    /// The last URL requested: relative links resolve against it, as in a browser.
    last: std::sync::Mutex<String>,
}

impl Agent {
    pub fn new(app: &TestApp) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("build the agent");
        Self { http, last: std::sync::Mutex::new(format!("{}/", app.base_url)) }
    }

    /// Resolves `url` against the last URL and remembers the result.
    fn absolute(&self, url: &str) -> String {
        let mut last = self.last.lock().unwrap();
        let base = url::Url::parse(&last).expect("the last URL");
        let resolved = base.join(url).unwrap_or_else(|e| panic!("{url:?} does not resolve: {e}")).to_string();
        *last = resolved.clone();
        resolved
    }

    pub async fn get(&self, url: &str) -> Response {
        let url = self.absolute(url);
        self.http.get(url).send().await.expect("GET")
    }

    /// Submits a form (url-encoded POST to its action).
    pub async fn submit(&self, form: &PageForm) -> Response {
        let url = self.absolute(&form.action);
        self.http.post(url).form(&form.fields).send().await.expect("POST a form")
    }

    /// GETs a page that must answer 200 and returns its form `form_id`.
    pub async fn form_of(&self, url: &str, form_id: &str) -> PageForm {
        let response = self.get(url).await;
        page_form(response, form_id).await
    }
}

/// A 200 page's form `form_id`, its inputs and buttons' default values.
pub async fn page_form(response: Response, form_id: &str) -> PageForm {
    let status = response.status();
    let html = response.text().await.expect("read the page");
    assert_eq!(status, StatusCode::OK, "expected a page with #{form_id}: {html}");
    parse_form(&html, form_id).unwrap_or_else(|| panic!("no form #{form_id} in {html}"))
}

pub fn parse_form(html: &str, form_id: &str) -> Option<PageForm> {
    let doc = Html::parse_document(html);
    let form_sel = Selector::parse(&format!("form#{form_id}")).expect("selector");
    let input_sel = Selector::parse("input").expect("selector");
    let form = doc.select(&form_sel).next()?;
    let action = form.value().attr("action").unwrap_or_default().to_owned();
    let fields = form
        .select(&input_sel)
        .filter_map(|i| {
            let name = i.value().attr("name")?;
            Some((name.to_owned(), i.value().attr("value").unwrap_or_default().to_owned()))
        })
        .collect();
    Some(PageForm { action, fields })
}

/// The `Location` of a 303, which must be there.
pub fn see_other(response: &Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "expected 303 See Other");
    super::header(response.headers(), "location")
}

/// The query parameters of a URL.
pub fn query_of(url: &str) -> Vec<(String, String)> {
    let parsed = url::Url::parse(url).unwrap_or_else(|e| panic!("{url:?} is not a URL: {e}"));
    parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// An authorization URL for a client with the usual parameters; `extra` overrides or adds
/// (an empty value leaves a parameter out, as the server treats empty as absent).
pub fn authorize_url(client: &Client, extra: &[(&str, &str)]) -> String {
    let defaults = [
        ("response_type", "code"),
        ("client_id", client.id.as_str()),
        ("redirect_uri", CALLBACK),
        ("scope", "openid"),
        ("state", "state-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in defaults {
        let value = extra.iter().find(|(e, _)| *e == k).map_or(v, |(_, e)| *e);
        if !value.is_empty() {
            query.append_pair(k, value);
        }
    }
    for (k, v) in extra.iter().filter(|(k, _)| !defaults.iter().any(|(d, _)| d == k)) {
        query.append_pair(k, v);
    }
    format!("/oauth2/authorize?{}", query.finish())
}

impl Agent {
    /// Signs in on the login page of `url` and returns where the 303 leads.
    pub async fn sign_in(&self, url: &str, user: (&str, &str)) -> String {
        let mut login = self.form_of(url, "loginForm").await;
        login.set("username", user.0);
        login.set("password", user.1);
        see_other(&self.submit(&login).await)
    }

    /// Answers the consent page at `url` with `answer` and returns the redirect to the client.
    pub async fn consent(&self, url: &str, answer: &str) -> String {
        let mut consent = self.form_of(url, "consentForm").await;
        consent.set("consent", answer);
        see_other(&self.submit(&consent).await)
    }

    /// The whole flow: sign in when the login page shows, approve; returns the callback's
    /// parameters.
    pub async fn code_for(&self, url: &str, user: (&str, &str)) -> Vec<(String, String)> {
        let response = self.get(url).await;
        let status = response.status();
        let html = response.text().await.expect("read the page");
        assert_eq!(status, StatusCode::OK, "{html}");
        let consent_url = match parse_form(&html, "loginForm") {
            Some(mut login) => {
                login.set("username", user.0);
                login.set("password", user.1);
                see_other(&self.submit(&login).await)
            }
            None => url.to_owned(),
        };
        query_of(&self.consent(&consent_url, "approve").await)
    }
}

impl TestApp {
    /// Registers a code-flow client through the CLI; `extra` adds flags (`--public`, ...).
    pub async fn register_code_client(&self, name: &str, extra: &[&str]) -> Client {
        let mut args = vec!["client", "register", "--name", name, "--grant-types"];
        args.push("authorization_code,refresh_token");
        args.extend(["--redirect-uris", CALLBACK]);
        args.extend(extra);
        let output = self.cli(&args).await;
        assert!(output.status.success(), "client register failed: {}", output.stderr);
        let mut json: serde_json::Value = serde_json::from_str(output.stdout.trim()).expect("client JSON");
        if json.get("client_secret").is_none() {
            json["client_secret"] = "".into();
        }
        Client::from_json(&json)
    }

    /// A token request with `grant_type=authorization_code` (Basic for confidential clients).
    pub async fn exchange(&self, client: &Client, code: &str, verifier: Option<&str>) -> Response {
        let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CALLBACK)];
        if let Some(v) = verifier {
            form.push(("code_verifier", v));
        }
        if client.secret.is_empty() {
            form.push(("client_id", &client.id));
            self.token_request().form(&form).send().await.expect("POST /oauth2/token")
        } else {
            self.post_token(client, &form).await
        }
    }
}
