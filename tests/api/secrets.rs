//! Secrets at rest: the data folder and the logs never hold a token, a client secret or a password
//! in plain bytes (tokens are stored as digests, re-returnable values encrypted, passwords hashed).

use std::path::Path;

use crate::helpers::{
    contains_bytes, files_under, spawn_app, unique_secret, ConfigOverrides, TestApp, ADMIN_USER,
};

/// The key file and TLS key material are the only files allowed to hold key bytes; they hold no
/// token, but they are random bytes a search should not be run against.
fn is_key_material(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name == "token.key" || name.ends_with(".pem") || name.ends_with(".key") || name.ends_with(".crt")
}

/// Panics naming every (file, secret) pair where a secret appears in plain bytes.
fn assert_nowhere(app: &TestApp, secrets: &[(String, String)]) {
    let mut sources: Vec<(String, Vec<u8>)> = files_under(&app.data_dir())
        .into_iter()
        .filter(|path| !is_key_material(path))
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap_or_default()))
        .collect();
    if app.on_postgres() {
        sources.push(("every row of the PostgreSQL database".to_string(), app.stored_bytes()));
    } else {
        assert!(
            sources.iter().any(|(name, _)| name.ends_with("ledger.db")),
            "the scan must cover the database file"
        );
    }
    sources.push(("stderr logs".to_string(), app.logs()));
    let leaks: Vec<String> = sources
        .iter()
        .flat_map(|(source, bytes)| {
            secrets
                .iter()
                .filter(|(_, secret)| contains_bytes(bytes, secret.as_bytes()))
                .map(move |(kind, secret)| format!("{kind} {secret:?} in {source}"))
        })
        .collect();
    assert!(leaks.is_empty(), "plaintext secrets found:\n{}", leaks.join("\n"));
}

#[tokio::test]
async fn no_token_secret_or_password_is_stored_or_logged_in_plaintext() {
    secrets_stay_out_of_the_data_folder_and_the_logs("text").await;
}

#[tokio::test]
async fn no_token_secret_or_password_is_logged_in_plaintext_in_json_logs() {
    secrets_stay_out_of_the_data_folder_and_the_logs("json").await;
}

/// The whole scenario with every request logged (debug level) in the given format.
async fn secrets_stay_out_of_the_data_folder_and_the_logs(log_format: &'static str) {
    let admin_password = unique_secret("admin-password");
    let mut app = spawn_app(ConfigOverrides {
        admin_password: admin_password.clone(),
        log_format,
        rust_log: Some("info,token_ledger=debug"),
        ..ConfigOverrides::renewal_off()
    })
    .await;
    let user_password = unique_secret("user-password");
    let stdin_password = unique_secret("stdin-password");
    let mut secrets = vec![
        ("admin password".to_string(), admin_password.clone()),
        ("user password".to_string(), user_password.clone()),
        ("stdin user password".to_string(), stdin_password.clone()),
    ];
    app.add_user("erin", &user_password).await;
    let added = app
        .cli_with_stdin(
            &["user", "add", "--username", "frank", "--password-stdin"],
            Some(&format!("{stdin_password}\n")),
        )
        .await;
    assert!(added.status.success(), "{}", added.stderr);
    let cli_client = app.register_client("cli-client").await;
    let dcr_client = app.register_client_dcr("dcr-client", &["password", "refresh_token"]).await;
    for client in [&cli_client, &dcr_client] {
        secrets.push(("client secret".to_string(), client.secret.clone()));
    }

    let mut issued = vec![
        app.token_password(&cli_client, ADMIN_USER, &admin_password, "openid").await,
        app.token_password(&cli_client, "erin", &user_password, "read").await,
        app.token_password(&cli_client, "erin", &user_password, "read").await,
        app.token_password(&dcr_client, "frank", &stdin_password, "write").await,
        app.token_client_credentials(&cli_client, "machine").await,
    ];
    let refreshed = app.token_refresh(&dcr_client, issued[3].refresh(), None).await;
    issued.push(refreshed.clone());
    app.revoke_token(&cli_client, &issued[0].access_token).await;
    // A failed login must not log the password it was given.
    let wrong = unique_secret("wrong-password");
    app.password_grant(&cli_client, "erin", &wrong, "read").await;
    secrets.push(("rejected password".to_string(), wrong));
    for tokens in &issued {
        secrets.push(("access token".to_string(), tokens.access_token.clone()));
        if let Some(refresh) = &tokens.refresh_token {
            secrets.push(("refresh token".to_string(), refresh.clone()));
        }
    }

    assert_nowhere(&app, &secrets);
    let logs = String::from_utf8_lossy(&app.logs()).into_owned();
    assert!(logs.contains("request"), "the request lines were logged, so the scan covered them");
    if log_format == "json" {
        let server_lines = logs.lines().filter(|l| l.starts_with('{'));
        for line in server_lines {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    }
    let status = app.terminate().await;
    assert!(status.success(), "{status}");
    assert_nowhere(&app, &secrets);
}
