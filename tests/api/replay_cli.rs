//! `ledger-replay rebuild` on the suite's backend (SQLite, or PostgreSQL under
//! `TOKEN_LEDGER_TEST_DATABASE=postgres`): every derived table comes back from the log, and a
//! swap waits for the nodes to stop unless forced.

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::{spawn_app, ConfigOverrides, SqlValue, TestApp};

/// The views, their checkpoint: what a rebuild must put back exactly.
const DERIVED: [&str; 8] = [
    "clients",
    "users",
    "active_tokens",
    "rotated_refresh_tokens",
    "authorization_codes",
    "login_sessions",
    "consents",
    "checkpoints",
];

/// The audit CLI, built next to the server binary by `cargo test --workspace`.
fn ledger_replay() -> Option<std::path::PathBuf> {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_token-ledger")).with_file_name("ledger-replay");
    if path.is_file() {
        return Some(path);
    }
    assert!(!crate::helpers::in_ci(), "no ledger-replay binary next to token-ledger under CI=true");
    println!("skipped: no ledger-replay binary next to token-ledger (cargo test --workspace builds it)");
    None
}

/// Runs `ledger-replay ARGS --db <the app's database>`, asserting its exit status.
async fn replay(app: &TestApp, args: &[&str], code: i32) -> Output {
    let cli = ledger_replay().expect("checked by the caller");
    let run = Command::new(cli).args(args).arg("--db").arg(app.db_arg()).kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap_or_else(|_| panic!("ledger-replay {args:?} did not finish"))
        .expect("run ledger-replay");
    assert_eq!(
        output.status.code(),
        Some(code),
        "ledger-replay {args:?}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).expect("ledger-replay --json prints JSON")
}

fn derived_rows(app: &TestApp) -> Vec<Vec<Vec<SqlValue>>> {
    DERIVED.iter().map(|table| app.sql_rows(&format!("SELECT * FROM {table} ORDER BY 1"))).collect()
}

fn has(report: &Value, view: &str, kind: &str) -> bool {
    let differences = report["differences"].as_array().expect("differences");
    differences.iter().any(|d| d["view"] == view && d["kind"] == kind)
}

#[tokio::test]
async fn rebuild_check_reports_emptied_derived_tables_and_rebuild_restores_every_one() {
    if ledger_replay().is_none() {
        return;
    }
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("derived").await;
    let first = app.token_admin(&client, "openid").await;
    let refreshed = app.token_refresh(&client, first.refresh(), None).await;
    assert!(app.terminate().await.success());
    let before = derived_rows(&app);
    let mut damage = DERIVED.map(|t| format!("DELETE FROM {t};")).join(" ") + " DELETE FROM chain_anchor;";
    if app.on_postgres() {
        damage.push_str(" DELETE FROM log_head;");
    }
    app.sql_execute(&damage).expect("empty the derived tables");

    let check = json(&replay(&app, &["rebuild", "--check", "--json"], 1).await);
    for (view, kind) in [
        ("clients", "missing"),
        ("users", "missing"),
        ("active_tokens", "missing"),
        ("rotated_refresh_tokens", "missing"),
        ("checkpoints", "missing"),
        ("chain_anchor", "missing"),
    ] {
        assert!(has(&check, view, kind), "no {kind} {view} in {check}");
    }
    assert_eq!(has(&check, "log_head", "missing"), app.on_postgres(), "{check}");
    let rebuilt = json(&replay(&app, &["rebuild", "--json"], 0).await);
    assert_eq!(rebuilt["swapped"], true, "{rebuilt}");

    assert_eq!(derived_rows(&app), before, "the rebuilt tables differ from the ones the server wrote");
    assert_eq!(app.sql_i64("SELECT position FROM chain_anchor"), 0, "the anchor restarts at the log's start");
    assert_eq!(json(&replay(&app, &["rebuild", "--check", "--json"], 0).await)["drift"], false);
    replay(&app, &["verify"], 0).await;
    app.restart().await;
    assert!(app.is_active(&refreshed.access_token).await);
    assert!(!app.is_active(&first.access_token).await);
    let next = app.token_admin(&client, "after-rebuild").await;
    assert!(app.is_active(&next.access_token).await, "the log takes appends after the rebuild");
    assert!(app.terminate().await.success());
    replay(&app, &["verify"], 0).await;
}

#[tokio::test]
async fn rebuild_refuses_to_swap_while_a_node_serves_unless_forced() {
    if ledger_replay().is_none() {
        return;
    }
    let mut app = spawn_app(ConfigOverrides::renewal_off()).await;
    let client = app.register_client("serving").await;
    let tokens = app.token_admin(&client, "openid").await;
    app.sql_execute("DELETE FROM active_tokens").expect("damage a view");

    let refused = replay(&app, &["rebuild"], 2).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("serving") && stderr.contains("--force-while-serving"), "{stderr}");
    assert!(has(
        &json(&replay(&app, &["rebuild", "--check", "--json"], 1).await),
        "active_tokens",
        "missing"
    ));
    assert_eq!(
        json(&replay(&app, &["rebuild", "--force-while-serving", "--json"], 0).await)["swapped"],
        true
    );
    assert_eq!(json(&replay(&app, &["rebuild", "--check", "--json"], 0).await)["drift"], false);
    assert!(app.is_active(&tokens.access_token).await);

    assert!(app.terminate().await.success());
    // A node that stopped cleanly no longer counts as serving.
    assert_eq!(json(&replay(&app, &["rebuild", "--json"], 0).await)["drift"], false);
}
