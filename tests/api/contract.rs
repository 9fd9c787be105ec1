//! The OpenAPI contract, fuzzed against the running server by schemathesis (PyPI; `.ci/run`
//! installs it): no 5xx, every status, content type and body as the document declares, and so
//! every error in the RFC 6749 section 5.2 shape (the `OAuthError` schema requires `error` and
//! `error_description`). Bounded to about two minutes.

use std::time::Duration;

use crate::helpers::{spawn_app, tool_available, ConfigOverrides};

#[tokio::test]
async fn schemathesis_finds_no_5xx_and_no_answer_outside_the_contract() {
    let test = "contract::schemathesis_finds_no_5xx_and_no_answer_outside_the_contract";
    if !tool_available("schemathesis", test) {
        return;
    }
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("fuzzed").await;
    let report = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args(["--url", &app.base_url])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--auth", &format!("{}:{}", client.id, client.secret)])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "40", "--max-time", "120", "--seed", "12", "--workers", "2"])
        .args(["--request-timeout", "20", "--warnings", "off", "--no-color"])
        .arg("--report-dir")
        .arg(report.path())
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its cache of crashes goes to the temporary folder, not the repository.
        .current_dir(report.path())
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(Duration::from_secs(240), run).await.expect("schemathesis finished").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stdout}");
    assert!(output.status.success(), "schemathesis found problems:\n{stdout}\n{stderr}");
    assert!(stdout.contains("No issues found"), "schemathesis did not report a clean run:\n{stdout}");
    assert!(!stdout.contains(" 0 generated"), "schemathesis generated no test case:\n{stdout}");
}
