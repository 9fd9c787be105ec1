//! The README's and the seed page's curl commands, run verbatim by a shell against the server
//! over TLS, in both renewal modes. curl offers `h2` in the TLS handshake, as browsers do: the
//! server must then really speak HTTP/2 (issue 12: it used to accept `h2` and answer HTTP/1.1).
//! Only the port (the tests listen on a free one), the placeholders for values the reader
//! pastes in, and one missing space in the seed page are changed.

use base64::Engine as _;
use serde_json::Value;

use crate::helpers::{inactive, spawn_app, tool_available, ConfigOverrides, TestApp};

/// The seed page's token request ("Sample Request"), verbatim.
const SEED_TOKEN: &str = r#"curl -v -X POST -H "Authorization: Basic <base64encoded clientId:clientSecrect>" -k -d "grant_type=password&username=admin&password=admin&scope=openid" -H "Content-Type:application/x-www-form-urlencoded" https://localhost:9443/oauth2/token"#;
/// The seed page's introspection request, verbatim: its quote runs into the URL, which leaves
/// curl without a URL; the test puts the one missing space back.
const SEED_INTROSPECT: &str = r#"curl -k -u admin:admin -H 'Content-Type: application/x-www-form-urlencoded' -X POST --data 'token=<access token from 1st token API call>'https://localhost:9443/oauth2/introspect"#;

/// The curl commands of the README's fenced `sh` blocks, continuation lines joined, keyed by
/// the endpoint path they call.
fn readme_commands() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut current = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        let line = line.trim();
        if !in_sh || line.starts_with('#') || (current.is_empty() && !line.starts_with("curl ")) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

fn readme_command(path: &str) -> String {
    let all = readme_commands();
    let found: Vec<&String> = all.iter().filter(|c| c.trim_end().ends_with(path)).collect();
    assert_eq!(found.len(), 1, "exactly one README curl command calls {path}: {all:#?}");
    found[0].clone()
}

/// What one shell run of a curl command left.
struct Run {
    body: Value,
    verbose: String,
}

/// Runs `command` with bash, the port rewritten to the test server's, `vars` in the environment.
fn run(app: &TestApp, command: &str, vars: &[(&str, &str)]) -> Run {
    let port = app.base_url.rsplit(':').next().expect("a port");
    let command = command.replace("https://localhost:9443", &format!("https://localhost:{port}"));
    let output = std::process::Command::new("bash")
        .args(["-c", &command])
        .envs(vars.iter().copied())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let verbose = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "{command}\nexit {:?}\nstdout {stdout}\nstderr {verbose}",
        output.status
    );
    let body =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{command}: not JSON ({e}): {stdout:?}"));
    Run { body, verbose }
}

fn assert_http2(run: &Run) {
    assert!(run.verbose.contains("< HTTP/2 200"), "curl did not get an HTTP/2 200:\n{}", run.verbose);
}

/// The README walkthrough: register by DCR, ask twice, introspect the first token.
async fn readme_walkthrough(renew: bool) -> (TestApp, Value, Value, Value) {
    let config = if renew { ConfigOverrides::renewal_on() } else { ConfigOverrides::renewal_off() };
    let app = spawn_app(ConfigOverrides { https: true, ..config }).await;
    let dcr = run(&app, &readme_command("/api/identity/oauth2/dcr/v1.1/register"), &[]);
    let (id, secret) = (dcr.body["client_id"].as_str().unwrap(), dcr.body["client_secret"].as_str().unwrap());
    let vars = [("CLIENT_ID", id), ("CLIENT_SECRET", secret)];
    let token = readme_command("/oauth2/token");
    let first = run(&app, &token, &vars);
    assert_http2(&first);
    let second = run(&app, &token, &vars);
    let introspect =
        readme_command("/oauth2/introspect").replace("<access token from the 1st call>", "$FIRST");
    let access = first.body["access_token"].as_str().expect("an access token").to_owned();
    let answer = run(&app, &introspect, &[("FIRST", access.as_str())]);
    (app, first.body, second.body, answer.body)
}

#[tokio::test]
async fn the_readme_curl_commands_work_over_http2_with_renewal_off() {
    if !tool_available("curl", "curl::the_readme_curl_commands_work_over_http2_with_renewal_off") {
        return;
    }
    let (_app, first, second, introspection) = readme_walkthrough(false).await;
    assert_eq!(second["access_token"], first["access_token"]);
    assert_eq!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(introspection["username"], "admin");
}

#[tokio::test]
async fn the_readme_curl_commands_work_over_http2_with_renewal_on() {
    if !tool_available("curl", "curl::the_readme_curl_commands_work_over_http2_with_renewal_on") {
        return;
    }
    let (_app, first, second, introspection) = readme_walkthrough(true).await;
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(introspection, inactive());
}

/// The seed page's commands: a Basic header the reader base64-encodes, twice, then introspection.
async fn seed_scenario(renew: bool) -> (Value, Value, Value) {
    let config = if renew { ConfigOverrides::renewal_on() } else { ConfigOverrides::renewal_off() };
    let app = spawn_app(ConfigOverrides { https: true, ..config }).await;
    let client = app.register_client("seed-app").await;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", client.id, client.secret));
    let token = SEED_TOKEN.replace("<base64encoded clientId:clientSecrect>", &basic);
    let first = run(&app, &token, &[]);
    assert_http2(&first);
    let second = run(&app, &token, &[]);
    let access = first.body["access_token"].as_str().expect("an access token");
    let introspect = SEED_INTROSPECT
        .replace("<access token from 1st token API call>", access)
        .replace("'https://", "' https://");
    let answer = run(&app, &introspect, &[]);
    (first.body, second.body, answer.body)
}

#[tokio::test]
async fn the_seed_pages_curl_commands_work_over_http2_with_renewal_off() {
    if !tool_available("curl", "curl::the_seed_pages_curl_commands_work_over_http2_with_renewal_off") {
        return;
    }
    let (first, second, introspection) = seed_scenario(false).await;
    assert_eq!(second["access_token"], first["access_token"]);
    assert_eq!(introspection["active"], true, "{introspection}");
}

#[tokio::test]
async fn the_seed_pages_curl_commands_work_over_http2_with_renewal_on() {
    if !tool_available("curl", "curl::the_seed_pages_curl_commands_work_over_http2_with_renewal_on") {
        return;
    }
    let (first, second, introspection) = seed_scenario(true).await;
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(introspection, inactive(), "the seed page: the old token is inactive");
}
