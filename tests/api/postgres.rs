//! PostgreSQL on every run: one node through the flows every deployment uses (CLI and DCR
//! registration, each grant, introspection, revocation, refresh rotation, a restart),
//! `configtest`'s database check, `migrate-store`, and three nodes racing to create the schema.
//! The whole suite runs on PostgreSQL too under `TOKEN_LEDGER_TEST_DATABASE=postgres`.

use reqwest::StatusCode;

use crate::helpers::postgres::on_postgres;
use crate::helpers::{expect_json, inactive, ConfigOverrides, Deployment, Tokens};

#[tokio::test]
async fn every_grant_introspection_revocation_and_a_restart_work_on_postgres() {
    let Some(config) = on_postgres(ConfigOverrides::renewal_off()) else { return };
    let mut app = Deployment::new(&config).start().await;
    let client = app.register_client("pg-cli").await;
    let dcr = app.register_client_dcr("pg-dcr", &["client_credentials", "refresh_token"]).await;

    let password = app.token_password(&client, "admin", "admin", "openid").await;
    let again = app.token_password(&client, "admin", "admin", "openid").await;
    assert_eq!(password.access_token, again.access_token, "renewal off hands the active token back");
    let app_token = app.token_client_credentials(&dcr, "read").await;
    assert_eq!(app.introspect(&app_token.access_token).await["active"], true);

    let refreshed = app.token_refresh(&client, password.refresh(), None).await;
    assert_ne!(refreshed.access_token, password.access_token);
    assert_eq!(app.introspect(&password.access_token).await, inactive(), "the refresh revoked the old token");
    let replay = app.refresh_grant(&client, password.refresh(), None).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "a rotated refresh token is refused");

    app.revoke_token(&dcr, &app_token.access_token).await;
    assert_eq!(app.introspect(&app_token.access_token).await, inactive());

    app.kill_and_restart().await;
    assert_eq!(app.introspect(&app_token.access_token).await, inactive());
    let after = app.introspect(&refreshed.access_token).await;
    assert_eq!(after["active"], true, "the restarted node loaded the view from PostgreSQL: {after}");
    assert_eq!(after["client_id"], client.id.as_str());
}

#[tokio::test]
async fn configtest_checks_that_postgres_is_reachable_and_its_schema_current() {
    let Some(config) = on_postgres(ConfigOverrides::default()) else { return };
    let deployment = Deployment::new(&config);
    let fresh = deployment.cli(&["configtest"]).await;
    assert!(!fresh.status.success(), "an empty database is not ready: {}", fresh.stdout);
    assert!(fresh.stderr.contains("no token-ledger schema"), "{}", fresh.stderr);

    let mut app = deployment.start().await;
    let ready = app.cli(&["configtest"]).await;
    assert!(ready.status.success(), "{}", ready.stderr);
    assert!(ready.stdout.contains("reachable"), "{}", ready.stdout);
    app.terminate().await;

    let gone = ConfigOverrides {
        postgres_url: Some("host=/nonexistent-socket-folder port=1 user=x password=hunter2 dbname=x".into()),
        ..ConfigOverrides::default()
    };
    let unreachable = Deployment::new(&gone).cli(&["configtest"]).await;
    assert!(!unreachable.status.success());
    assert!(unreachable.stderr.contains("not reachable"), "{}", unreachable.stderr);
    assert!(!unreachable.stderr.contains("hunter2"), "the password leaked: {}", unreachable.stderr);
    assert_eq!(unreachable.stderr.trim().lines().count(), 1, "one line: {}", unreachable.stderr);
}

#[tokio::test]
async fn a_token_answer_on_postgres_has_the_same_shape_as_on_sqlite() {
    let Some(config) = on_postgres(ConfigOverrides::default()) else { return };
    let app = Deployment::new(&config).start().await;
    let client = app.register_client("shape").await;
    let tokens = Tokens::from_response(app.client_credentials_grant(&client, "read write").await).await;
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.scope.as_deref(), Some("read write"));
    assert!(tokens.expires_in > 3500, "{}", tokens.body);
    let missing = app.client_credentials_grant(&client.with_secret("wrong"), "read").await;
    let error = expect_json(missing, StatusCode::UNAUTHORIZED).await;
    assert_eq!(error["error"], "invalid_client");
}

/// A single-node SQLite deployment grows into several nodes: `migrate-store` copies its log into
/// an empty PostgreSQL database, and a node there answers every token exactly as before.
#[tokio::test]
async fn migrate_store_copies_a_sqlite_log_into_postgres_and_nodes_answer_as_before() {
    let Some(pg) = on_postgres(ConfigOverrides::renewal_off()) else { return };
    let sqlite = ConfigOverrides { sqlite_only: true, ..ConfigOverrides::renewal_off() };
    let mut single = crate::helpers::spawn_app(sqlite).await;
    let client = single.register_client("grows").await;
    let kept = single.token_client_credentials(&client, "kept").await;
    let revoked = single.token_client_credentials(&client, "gone").await;
    single.revoke_token(&client, &revoked.access_token).await;
    single.terminate().await;

    let url = pg.postgres_url.clone().expect("a PostgreSQL url");
    let migrated = single.cli(&["migrate-store", "--to", &url]).await;
    assert!(migrated.status.success(), "{}", migrated.stderr);
    assert!(migrated.stdout.contains("chain verified"), "{}", migrated.stdout);
    let again = single.cli(&["migrate-store", "--to", &url]).await;
    assert!(!again.status.success(), "a non-empty target must be refused");
    assert!(again.stderr.contains("empty database"), "{}", again.stderr);

    let keys = single.data_dir().display().to_string();
    let node = Deployment::new(&ConfigOverrides { key_dir: Some(keys), ..pg }).start().await;
    assert_eq!(node.introspect(&revoked.access_token).await, inactive());
    assert_eq!(node.introspect(&kept.access_token).await["active"], true);
    let handed_back = node.token_client_credentials(&client, "kept").await;
    assert_eq!(handed_back.access_token, kept.access_token, "the sealing key came along: the same token");
}

/// Three nodes started at the same instant on an empty database race to create the schema
/// (`CREATE TABLE IF NOT EXISTS` is not atomic in PostgreSQL): each must start, the schema is
/// created once, and the log is one verified chain. Repeated on fresh databases, since a race
/// is lost only sometimes. The nodes share one empty key folder, as a deployment's nodes do, so
/// they race to create the keys too (each must start, and all must use the winner's).
#[tokio::test]
async fn three_nodes_started_at_the_same_instant_on_an_empty_database_create_the_schema_once() {
    for round in 0..3 {
        let Some(config) = on_postgres(ConfigOverrides::renewal_off()) else { return };
        let keys = tempfile::tempdir().unwrap();
        let config = ConfigOverrides { key_dir: Some(keys.path().display().to_string()), ..config };
        let deployments: Vec<Deployment> = (0..3).map(|_| Deployment::new(&config)).collect();
        let nodes = futures::future::join_all(deployments.into_iter().map(Deployment::start)).await;
        let client = nodes[0].register_client("race").await;
        for (i, node) in nodes.iter().enumerate() {
            let tokens = node.token_client_credentials(&client, &format!("n{i}")).await;
            assert!(nodes[(i + 1) % 3].is_active(&tokens.access_token).await, "round {round}, node {i}");
        }
        let latest = token_ledger::store::postgres::migrate::LATEST;
        assert_eq!(
            nodes[0].sql_i64("SELECT version FROM ledger_schema"),
            latest,
            "every migration once, round {round}"
        );
        assert_eq!(nodes[0].sql_i64("SELECT COUNT(*) FROM users"), 1, "one super admin, round {round}");
        crate::helpers::postgres::assert_final_log_verifies(&nodes[0].config_url()).await;
    }
}
