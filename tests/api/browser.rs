//! One end-to-end run in a real headless chromium (Debian's `chromium` and `chromium-driver`)
//! driven over WebDriver: open the authorization URL, sign in, approve, and land on a local
//! callback with a code. A screenshot of each page is kept in `target/screenshots/`. Without
//! chromium the test says it skipped and why, and passes, except under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use tokio::process::Command;

use crate::helpers::{param, query_of, spawn_app, ConfigOverrides, Tokens, ALICE, CHALLENGE, VERIFIER};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Where the screenshots go: `<target dir>/screenshots`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("create target/screenshots");
    dir
}

/// A loopback callback that answers every request with a small page (the client's side).
async fn callback_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the callback");
    let port = listener.local_addr().unwrap().port();
    let page =
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Callback</title></head>\
                <body><h1 id=\"callback\">Callback received</h1></body></html>";
    let app = axum::Router::new().fallback(move || async move { axum::response::Html(page) });
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    port
}

/// Starts chromedriver on a free port and waits until it answers.
async fn chromedriver() -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for _ in 0..100 {
        if http.get(format!("{url}/status")).send().await.is_ok_and(|r| r.status().is_success()) {
            return (child, url);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start on {url}");
}

fn capabilities(profile: &Path) -> serde_json::Map<String, serde_json::Value> {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        // A phone-sized window: the pages must read well there.
        "--window-size=412,915",
    ];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = serde_json::json!({
        "browserName": "chrome",
        "acceptInsecureCerts": true,
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    });
    caps.as_object().cloned().unwrap()
}

/// Whether the browser is there; outside CI its absence skips the test.
fn browser_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        let why =
            format!("{CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and {why}");
        println!("skipped: the headless browser test needs chromium: {why}");
    }
    present
}

#[tokio::test]
async fn a_person_signs_in_and_approves_in_headless_chromium_and_the_client_gets_a_code() {
    if !browser_available() {
        return;
    }
    let app = spawn_app(ConfigOverrides { https: true, ..ConfigOverrides::renewal_off() }).await;
    app.add_user(ALICE.0, ALICE.1).await;
    // A native-style public client: a loopback redirect URI whose port may vary (RFC 8252).
    let output = app
        .cli(&[
            "client",
            "register",
            "--name",
            "Photo Printer",
            "--grant-types",
            "authorization_code,refresh_token",
            "--redirect-uris",
            "http://127.0.0.1/callback",
            "--public",
        ])
        .await;
    assert!(output.status.success(), "{}", output.stderr);
    let client: serde_json::Value = serde_json::from_str(output.stdout.trim()).unwrap();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    let callback = format!("http://127.0.0.1:{}/callback", callback_server().await);
    let mut url = url::Url::parse(&format!("{}/oauth2/authorize", app.base_url)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &callback)
        .append_pair("scope", "openid profile")
        .append_pair("state", "browser-state")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");

    let (_driver, driver_url) = chromedriver().await;
    let profile = tempfile::tempdir().unwrap();
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities(profile.path()))
        .connect(&driver_url)
        .await
        .expect("a WebDriver session in chromium");
    let shots = screenshot_dir();
    let shoot = |name: &'static str| {
        let browser = browser.clone();
        let path = shots.join(name);
        async move {
            let png = browser.screenshot().await.expect("a screenshot");
            std::fs::write(&path, png).expect("save the screenshot");
        }
    };

    browser.goto(url.as_str()).await.expect("open the authorization URL");
    browser.wait().for_element(Locator::Id("loginForm")).await.expect("the login page");
    shoot("01-login.png").await;
    browser.find(Locator::Id("username")).await.unwrap().send_keys(ALICE.0).await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys(ALICE.1).await.unwrap();
    browser.find(Locator::Id("sign-in")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("consentForm")).await.expect("the consent page");
    shoot("02-consent.png").await;
    browser.find(Locator::Id("approve")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("callback")).await.expect("the client's callback page");
    shoot("03-callback.png").await;
    let landed = browser.current_url().await.unwrap().to_string();
    browser.close().await.ok();

    assert!(landed.starts_with(&callback), "{landed}");
    let q = query_of(&landed);
    assert_eq!(param(&q, "state").as_deref(), Some("browser-state"));
    let code = param(&q, "code").expect("a code at the callback");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", VERIFIER),
        ("client_id", client_id.as_str()),
    ];
    let tokens = Tokens::from_response(app.token_request().form(&form).send().await.unwrap()).await;
    assert!(tokens.body["id_token"].is_string());
    for name in ["01-login.png", "02-consent.png", "03-callback.png"] {
        assert!(std::fs::metadata(shots.join(name)).unwrap().len() > 1000, "{name} is empty");
    }
}
