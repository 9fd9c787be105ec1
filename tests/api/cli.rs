//! The command line: `client register`, `user add` and `configtest`, also while the server runs.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{assert_oauth_error, spawn_app, ConfigOverrides, Deployment};

#[tokio::test]
async fn client_register_prints_the_new_client_as_json() {
    let deployment = Deployment::new(&ConfigOverrides::renewal_off());

    let output = deployment.cli(&["client", "register", "--name", "web-app"]).await;

    assert!(output.status.success(), "{}", output.stderr);
    let json: Value = serde_json::from_str(output.stdout.trim()).expect("stdout is JSON");
    assert_eq!(json["client_name"], "web-app");
    assert!(json["client_id"].as_str().is_some_and(|id| !id.is_empty()), "{json}");
    assert!(json["client_secret"].as_str().is_some_and(|s| !s.is_empty()), "{json}");
    let mut grants: Vec<&str> =
        json["grant_types"].as_array().expect("grant_types").iter().filter_map(Value::as_str).collect();
    grants.sort();
    assert_eq!(grants, ["client_credentials", "password", "refresh_token"]);
}

#[tokio::test]
async fn client_register_keeps_only_the_grant_types_asked_for() {
    let deployment = Deployment::new(&ConfigOverrides::renewal_off());

    let client = deployment.register_client_with_grants("machine", &["client_credentials"]).await;
    let other = deployment.register_client_with_grants("other", &[]).await;

    assert_eq!(client.grant_types, ["client_credentials"]);
    assert_ne!(other.id, client.id);
    assert_ne!(other.secret, client.secret);
}

#[tokio::test]
async fn a_client_registered_while_the_server_runs_is_honoured_at_once() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let before = app.token_client_credentials(&app.register_client("first").await, "a").await;

    let client = app.register_client("late").await;
    let tokens = app.token_client_credentials(&client, "a").await;

    assert_ne!(tokens.access_token, before.access_token);
    assert_eq!(app.introspect(&tokens.access_token).await["client_id"], client.id.as_str());
}

#[tokio::test]
async fn a_user_added_while_the_server_runs_can_get_a_token_at_once() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("web-app").await;
    let refused = app.password_grant(&client, "bob", "bob-password-1", "openid").await;
    assert_oauth_error(refused, StatusCode::BAD_REQUEST, "invalid_grant").await;

    app.add_user("bob", "bob-password-1").await;
    let tokens = app.token_password(&client, "bob", "bob-password-1", "openid").await;

    assert_eq!(app.introspect(&tokens.access_token).await["username"], "bob");
}

#[tokio::test]
async fn user_add_reads_the_password_from_stdin() {
    let app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("web-app").await;

    let output = app
        .cli_with_stdin(
            &["user", "add", "--username", "carol", "--password-stdin"],
            Some("carol-password-1\n"),
        )
        .await;

    assert!(output.status.success(), "{}", output.stderr);
    app.token_password(&client, "carol", "carol-password-1", "openid").await;
}

#[tokio::test]
async fn configtest_accepts_a_valid_config() {
    let deployment = Deployment::new(&ConfigOverrides::renewal_on());
    if deployment.on_postgres() {
        // configtest also checks that the schema is current, which a first node creates
        // (postgres::configtest_checks_… covers the empty database's refusal).
        let mut app = deployment.start().await;
        let output = app.cli(&["configtest"]).await;
        assert!(output.status.success(), "{}", output.stderr);
        app.terminate().await;
        return;
    }

    let output = deployment.cli(&["configtest"]).await;

    assert!(output.status.success(), "{}", output.stderr);
}

#[tokio::test]
async fn configtest_rejects_an_unknown_key_and_names_it() {
    let deployment = Deployment::new(&ConfigOverrides::renewal_off());
    deployment.edit_config(|toml| {
        toml.replace("[oauth.token_renewal]\n", "[oauth.token_renewal]\nrenew_everything_always = true\n")
    });

    let output = deployment.cli(&["configtest"]).await;

    assert!(!output.status.success(), "an unknown key was accepted");
    assert!(output.stderr.contains("renew_everything_always"), "{}", output.stderr);
}

#[tokio::test]
async fn configtest_rejects_a_bad_duration_and_names_the_key() {
    let deployment = Deployment::new(&ConfigOverrides::renewal_off());
    deployment.edit_config(|toml| {
        toml.replace("refresh_token_validity = \"1d\"", "refresh_token_validity = \"one day\"")
    });

    let output = deployment.cli(&["configtest"]).await;

    assert!(!output.status.success(), "a bad duration was accepted");
    assert!(output.stderr.contains("refresh_token_validity"), "{}", output.stderr);
}

#[tokio::test]
async fn serve_refuses_an_unknown_key_and_names_it() {
    let deployment = Deployment::new(&ConfigOverrides::renewal_off());
    deployment.edit_config(|toml| toml.replace("[server]\n", "[server]\nlisten_everywhere = true\n"));

    let output = deployment.cli(&["serve"]).await;

    assert!(!output.status.success(), "serve started with an unknown key");
    assert!(output.stderr.contains("listen_everywhere"), "{}", output.stderr);
    assert!(!output.stdout.contains("listening on"), "{}", output.stdout);
}
