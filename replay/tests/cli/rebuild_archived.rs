//! `rebuild` after archiving (issues 9 and 11), through the real binaries on SQLite and
//! PostgreSQL: a server with a 1 s retention archives (or drops) a served history; then the
//! derived tables are emptied, `rebuild --check` names the drift, `rebuild` restores them from
//! the boundary snapshot plus the live tail, `--full` from the archive segments gives the same
//! views, and the server answers as before. Also after `kill -9` during archiving.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{ledger_replay, Archiving, Config, Deployment, Server};

/// The derived tables a rebuild owns (the views and their checkpoint).
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

fn archiving(retain: bool, postgres_url: Option<String>) -> Config {
    let archive = Archiving { keep_in_database: "1s", interval: "1s", retain };
    Config { archive: Some(archive), postgres_url, ..Config::default() }
}

/// Where the deployment's database is, and how to read and damage it directly.
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Db {
    fn of(d: &Deployment, config: &Config) -> Self {
        match &config.postgres_url {
            Some(url) => Db::Postgres(url.clone()),
            None => Db::Sqlite(d.database()),
        }
    }

    /// Every row of every derived table, as text, in a stable order.
    fn derived(&self) -> BTreeMap<&'static str, Vec<String>> {
        DERIVED.iter().map(|table| (*table, self.rows(table))).collect()
    }

    fn rows(&self, table: &str) -> Vec<String> {
        let mut rows: Vec<String> = match self {
            Db::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).expect("open the database");
                let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).expect("select");
                let width = stmt.column_count();
                stmt.query_map([], |r| {
                    let cells: Vec<rusqlite::types::Value> =
                        (0..width).map(|i| r.get(i)).collect::<Result<_, _>>()?;
                    Ok(format!("{cells:?}"))
                })
                .expect("read a table")
                .collect::<Result<_, _>>()
                .expect("rows")
            }
            Db::Postgres(url) => {
                let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                let sql = format!("SELECT t::text FROM {table} t");
                client.query(&sql, &[]).expect("read a table").iter().map(|r| r.get(0)).collect()
            }
        };
        rows.sort();
        rows
    }

    fn execute(&self, sql: &str) {
        match self {
            Db::Sqlite(path) => {
                rusqlite::Connection::open(path).expect("open").execute_batch(sql).expect("run SQL");
            }
            Db::Postgres(url) => {
                let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                client.batch_execute(sql).expect("run SQL");
            }
        }
    }

    /// Empties every derived table, the chain anchor and (PostgreSQL) the log head.
    fn empty_derived(&self) {
        let mut sql = DERIVED.map(|t| format!("DELETE FROM {t};")).join(" ") + " DELETE FROM chain_anchor;";
        if matches!(self, Db::Postgres(_)) {
            sql.push_str(" DELETE FROM log_head;");
        }
        self.execute(&sql);
    }

    fn anchor(&self) -> Vec<String> {
        self.rows("chain_anchor")
    }

    /// The last position the archiving steps account for.
    fn archived_through(&self) -> i64 {
        let sql = "SELECT COALESCE(MAX(last_position), 0) FROM archive_steps";
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .expect("open")
                .query_row(sql, [], |r| r.get(0))
                .expect("read archive_steps"),
            Db::Postgres(url) => {
                let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
                client.query_one(sql, &[]).expect("read archive_steps").get(0)
            }
        }
    }
}

/// `ledger-replay stats --json` of the deployment.
fn stats(d: &Deployment) -> Value {
    let config = d.config_path().display().to_string();
    ledger_replay(&["stats", "--config", &config, "--json"]).expect(0).json()
}

/// Waits until the archiver's recorded steps account for at least `events` events (archived or
/// dropped), read from `archive_steps` itself.
fn wait_for_archived(db: &Db, events: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let through = db.archived_through();
        if through >= events {
            return;
        }
        assert!(Instant::now() < deadline, "only {through} events were archived within 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `ledger-replay rebuild ARGS --config <the deployment> --json`, with its exit status.
fn rebuild(d: &Deployment, args: &[&str], code: i32) -> Value {
    let config = d.config_path().display().to_string();
    let mut all = vec!["rebuild"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", &config, "--json"]);
    ledger_replay(&all).expect(code).json()
}

fn has(report: &Value, view: &str, kind: &str) -> bool {
    let differences = report["differences"].as_array().expect("differences");
    differences.iter().any(|d| d["view"] == view && d["kind"] == kind)
}

/// Serves a history that the archiver moves out (segments with `retain`, dropped without), plus
/// a live tail after it; empties the derived tables; checks that `rebuild --check` names the
/// drift, `rebuild` restores every table exactly, `--full` does the same or is refused after
/// dropping, and the server answers as before.
fn rebuild_after_archiving(config: Config) {
    let retain = config.archive.as_ref().is_some_and(|a| a.retain);
    let d = Deployment::new(&config);
    let db = Db::of(&d, &config);
    let server = Server::start(&d);
    let client = server.register("rebuilt");
    let first = server.password(&client, "openid");
    let second = server.refresh(&client, first.refresh());
    let app = server.client_credentials(&client, "read");
    let gone = server.client_credentials(&client, "gone");
    server.revoke(&client, &gone.access_token);
    // The super admin, the client, four issues, a refresh and a revocation.
    wait_for_archived(&db, 8);
    // The live tail after the boundary: a token issued once the prefix is gone.
    let tail = server.client_credentials(&client, "tail");
    server.stop();
    // `stats` counts the live log and the archive apart, on either backend, in either mode.
    let counted = stats(&d);
    let field = if retain { "archived_events" } else { "dropped_events" };
    let (left, live) =
        (counted["archive"][field].as_u64().unwrap_or(0), counted["events"].as_u64().unwrap_or(0));
    assert!(left >= 8, "{counted}");
    assert_eq!(Some(left + live), counted["checkpoint"].as_u64(), "every position counted once: {counted}");

    let before = db.derived();
    let anchor = db.anchor();
    let clean = rebuild(&d, &["--check"], 0);
    assert_eq!(clean["drift"], false, "{clean}");
    assert!(clean["started_from"].as_i64() >= Some(8), "it starts at the boundary snapshot: {clean}");

    db.empty_derived();
    let check = rebuild(&d, &["--check"], 1);
    for view in ["clients", "users", "active_tokens", "rotated_refresh_tokens", "checkpoints", "chain_anchor"]
    {
        assert!(has(&check, view, "missing"), "no missing {view} in {check}");
    }
    let rebuilt = rebuild(&d, &[], 0);
    assert_eq!(rebuilt["swapped"], true, "{rebuilt}");
    assert_eq!(db.derived(), before, "the rebuilt tables differ from the ones the server wrote");
    assert_eq!(db.anchor(), anchor, "the anchor comes back at the last archiving step's end");
    assert_eq!(rebuild(&d, &["--check"], 0)["drift"], false);

    // From the archive segments instead of the snapshot: the same views, or a clear refusal.
    db.execute("DELETE FROM active_tokens; DELETE FROM rotated_refresh_tokens;");
    if retain {
        let full = rebuild(&d, &["--full"], 0);
        assert_eq!(
            (full["swapped"].clone(), full["started_from"].clone()),
            (true.into(), 0.into()),
            "{full}"
        );
        assert_eq!(db.derived(), before, "--full folds to the same views");
    } else {
        let config = d.config_path().display().to_string();
        let refused = ledger_replay(&["rebuild", "--full", "--config", &config]).expect(2);
        assert!(refused.stderr.contains("were dropped"), "{}", refused.stderr);
        assert_eq!(refused.stderr.lines().count(), 1, "one line: {}", refused.stderr);
        rebuild(&d, &[], 0);
        assert_eq!(db.derived(), before);
    }

    let server = Server::start(&d);
    assert_eq!(server.introspect(&first.access_token)["active"], false);
    assert_eq!(server.introspect(&second.access_token)["active"], true);
    assert_eq!(server.introspect(&app.access_token)["active"], true);
    assert_eq!(server.introspect(&gone.access_token)["active"], false);
    assert_eq!(server.introspect(&tail.access_token)["active"], true);
    server.refresh_refused(&client, first.refresh());
    let third = server.refresh(&client, second.refresh());
    assert_eq!(server.introspect(&third.access_token)["active"], true);
    server.stop();
    let config = d.config_path().display().to_string();
    let verdict = ledger_replay(&["verify", "--config", &config, "--json"]).expect(0).json();
    assert_eq!(verdict["intact"], true, "{verdict}");
}

#[test]
fn after_archiving_rebuild_restores_emptied_views_from_the_boundary_snapshot_and_full_from_segments() {
    rebuild_after_archiving(archiving(true, None));
}

#[test]
fn after_dropping_rebuild_restores_from_the_boundary_snapshot_and_full_is_refused_in_one_line() {
    rebuild_after_archiving(archiving(false, None));
}

#[test]
fn on_postgres_rebuild_after_archiving_and_after_dropping_restores_every_derived_table() {
    let Some(cluster) = crate::postgres::pg_cluster::cluster() else { return };
    rebuild_after_archiving(archiving(true, Some(cluster.create_database())));
    rebuild_after_archiving(archiving(false, Some(cluster.create_database())));
}

#[test]
fn kill_9_during_archiving_leaves_a_boundary_snapshot_that_rebuilds_the_same_views() {
    let config = archiving(true, None);
    let d = Deployment::new(&config);
    let db = Db::of(&d, &config);
    let mut client = None;
    for round in 0..3 {
        let server = Server::start(&d);
        let c = client.get_or_insert_with(|| server.register("killed")).clone();
        let until = Instant::now() + Duration::from_millis(2500);
        let mut n = 0;
        while Instant::now() < until {
            server.client_credentials(&c, &format!("r{round}-{n}"));
            n += 1;
        }
        drop(server); // SIGKILL, whatever the archiver was doing
    }
    assert!(stats(&d)["archive"]["archived_events"].as_u64().unwrap_or(0) > 0, "something was archived");
    // The server finishes an interrupted removal when it starts; a rebuild works either way.
    let clean = rebuild(&d, &["--check"], 0);
    assert_eq!(clean["drift"], false, "{clean}");
    let before = db.derived();
    db.empty_derived();
    rebuild(&d, &["--check"], 1);
    rebuild(&d, &[], 0);
    assert_eq!(db.derived(), before);
    db.empty_derived();
    rebuild(&d, &["--full"], 0);
    assert_eq!(db.derived(), before, "--full agrees with the snapshot");
}
