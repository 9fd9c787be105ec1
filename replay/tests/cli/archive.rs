//! The log's lifecycle through the real binaries (issue 9): a server with short retention
//! settings archives a scripted history while it serves; afterwards introspection, refresh and
//! revocation answer as before, `verify`, `export`, `audit`, `replay --at` and `stats` read the
//! archive and the live log as one log, a restart works, a tampered or missing segment is named,
//! and `kill -9` while archiving loses nothing acknowledged.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::helpers::{ledger_replay, Archiving, Config, Deployment, Server};

fn archiving(retain: bool) -> Config {
    let archive = Archiving { keep_in_database: "1s", interval: "1s", retain };
    Config { archive: Some(archive), ..Config::default() }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() as i64
}

/// `ledger-replay stats --json` of the deployment (SQLite or PostgreSQL, through its config).
fn stats(d: &Deployment) -> Value {
    let config = d.config_path().display().to_string();
    ledger_replay(&["stats", "--config", &config, "--json"]).expect(0).json()
}

/// Waits until the archiver has moved at least `events` events out of the live database and
/// the live database holds no more than `live` events.
fn wait_for_archived(d: &Deployment, field: &str, events: u64, live: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stats(d);
        if s["archive"][field].as_u64().unwrap_or(0) >= events && s["events"].as_u64() <= Some(live) {
            return s;
        }
        assert!(Instant::now() < deadline, "nothing was archived within 20 s: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the archive folder")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".jsonl.zst"))
        .collect();
    found.sort();
    found
}

#[test]
fn a_served_history_is_archived_and_every_answer_and_audit_stays_the_same_across_the_boundary() {
    let d = Deployment::new(&archiving(true));
    let server = Server::start(&d);
    let client = server.register("archived");
    let first = server.password(&client, "openid");
    let second = server.refresh(&client, first.refresh());
    let app = server.client_credentials(&client, "read");
    let gone = server.client_credentials(&client, "gone");
    server.revoke(&client, &gone.access_token);
    let between = now_ms();
    std::thread::sleep(Duration::from_millis(20));
    // Every one of these events is older than `keep_in_database` once the archiver has run.
    // The super admin, the client, four issues, a refresh and a revocation: 8 events, all of
    // them older than `keep_in_database` once the archiver has run again.
    let archived = wait_for_archived(&d, "archived_events", 8, 0);
    assert_eq!(archived["archive"]["archived_events"], 8, "{archived}");

    // The service answers from its views exactly as before.
    assert_eq!(server.introspect(&first.access_token)["active"], false);
    assert_eq!(server.introspect(&second.access_token)["active"], true);
    assert_eq!(server.introspect(&app.access_token)["active"], true);
    assert_eq!(server.introspect(&gone.access_token)["active"], false);
    server.refresh_refused(&client, first.refresh());
    let third = server.refresh(&client, second.refresh());
    assert_eq!(server.password(&client, "openid").access_token, third.access_token, "handed back");
    server.revoke(&client, &app.access_token);
    assert_eq!(server.introspect(&app.access_token)["active"], false);
    server.stop();

    // The audit CLI reads the segments and the live log as one log.
    let config = d.config_path().display().to_string();
    let verdict = ledger_replay(&["verify", "--config", &config, "--json"]).expect(0).json();
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!((verdict["first_position"].clone(), verdict["partial"].clone()), (1.into(), false.into()));
    let head = verdict["head_position"].as_i64().expect("a head");
    let export = ledger_replay(&["export", "--config", &config]).expect(0);
    let positions: Vec<i64> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a line")["position"].as_i64().expect("a position"))
        .collect();
    assert_eq!(positions, (1..=head).collect::<Vec<_>>(), "the whole log, archived part first");
    let audit = ledger_replay(&["audit", "--config", &config, "--token", &first.access_token]).expect(0);
    assert!(audit.stdout.contains("TokenIssued") && audit.stdout.contains("refreshed"), "{}", audit.stdout);
    let at = chrono_text(between);
    let then = ledger_replay(&["replay", "--config", &config, "--at", &at, "--json"]).expect(0).json();
    assert_eq!(then["active"], 2, "the refreshed token and the application token were active then: {then}");

    // A restart loads the same views.
    let server = Server::start(&d);
    assert_eq!(server.introspect(&third.access_token)["active"], true);
    assert_eq!(server.introspect(&second.access_token)["active"], false);
    server.stop();
}

fn chrono_text(ms: i64) -> String {
    token_ledger::store::log::format_time(ms)
}

#[test]
fn a_tampered_or_missing_segment_is_named_by_verify() {
    let d = Deployment::new(&archiving(true));
    let server = Server::start(&d);
    let client = server.register("tampered");
    server.client_credentials(&client, "a");
    wait_for_archived(&d, "archived_events", 3, 0);
    server.stop();
    let segment = segments(&d.archive_dir()).remove(0);
    let name = segment.file_name().expect("a name").to_string_lossy().into_owned();

    let altered = d.copy();
    let file = altered.archive_dir().join(&name);
    let mut bytes = std::fs::read(&file).expect("read the segment");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).expect("alter the segment");
    let verdict = ledger_replay(&["verify", "--db", &altered.db_arg(), "--json"]).expect(1).json();
    assert_eq!(verdict["problem"]["check"], "archive", "{verdict}");
    assert_eq!(verdict["problem"]["position"], 1);
    let detail = verdict["problem"]["detail"].as_str().expect("a detail");
    assert!(detail.contains(&name) && detail.contains("SHA-256"), "{detail}");

    let missing = d.copy();
    std::fs::remove_file(missing.archive_dir().join(&name)).expect("remove the segment");
    let run = ledger_replay(&["verify", "--db", &missing.db_arg()]).expect(1);
    assert!(
        run.stdout.starts_with("BROKEN at position 1 (Archive check): archive segment "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&name), "{}", run.stdout);
}

#[test]
fn dropping_verifies_then_drops_and_the_live_log_still_verifies_from_the_recorded_step() {
    let d = Deployment::new(&archiving(false));
    let server = Server::start(&d);
    let client = server.register("dropped");
    let token = server.client_credentials(&client, "a");
    let s = wait_for_archived(&d, "dropped_events", 3, 0);
    assert_eq!(s["archive"]["segments"], 0, "{s}");
    assert!(!d.archive_dir().exists() || segments(&d.archive_dir()).is_empty(), "no segment is written");
    assert_eq!(server.introspect(&token.access_token)["active"], true);
    let again = server.client_credentials(&client, "a");
    assert_eq!(again.access_token, token.access_token);
    server.stop();
    // On a loaded machine a later round may drop the hand-back too: the live log starts right
    // after whatever the recorded steps dropped, and still verifies from there.
    let dropped = stats(&d)["archive"]["dropped_events"].as_i64().expect("a count");
    assert!(dropped >= 3, "{dropped}");
    let verdict = ledger_replay(&["verify", "--db", &d.db_arg(), "--json"]).expect(0).json();
    assert_eq!(verdict["intact"], true, "{verdict}");
    if dropped == 3 {
        assert_eq!(verdict["first_position"], 4, "after the dropped step, the hand-back: {verdict}");
    } else {
        assert_eq!(verdict["events"], 0, "everything was dropped: {verdict}");
    }
    // The dropped state lives on in the step's boundary snapshot: a rebuild starts there.
    let check = ledger_replay(&["rebuild", "--db", &d.db_arg(), "--check", "--json"]).expect(0).json();
    assert_eq!(
        (check["drift"].clone(), check["started_from"].clone()),
        (false.into(), dropped.into()),
        "{check}"
    );
}

#[test]
fn kill_9_while_archiving_loses_no_acknowledged_event() {
    let d = Deployment::new(&archiving(true));
    let mut acknowledged = Vec::new();
    let mut client = None;
    for round in 0..3 {
        let server = Server::start(&d);
        let c = client.get_or_insert_with(|| server.register("killed")).clone();
        let until = Instant::now() + Duration::from_millis(2500);
        let mut n = 0;
        while Instant::now() < until {
            acknowledged.push(server.client_credentials(&c, &format!("r{round}-{n}")).request_id);
            n += 1;
        }
        drop(server); // SIGKILL, whatever the archiver was doing
    }
    let run = ledger_replay(&["verify", "--db", &d.db_arg(), "--json"]).expect(0);
    assert_eq!(run.json()["intact"], true, "{}", run.stdout);
    let export = ledger_replay(&["export", "--db", &d.db_arg()]).expect(0);
    let logged: std::collections::HashSet<String> = export
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["request_id"].as_str().map(str::to_owned))
        .collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged requests lost: {lost:?}", lost.len());
    assert!(stats(&d)["archive"]["archived_events"].as_u64().unwrap_or(0) > 0, "something was archived");
}

#[test]
fn on_postgres_history_is_archived_while_serving_and_verifies_as_one_chain() {
    let Some(cluster) = crate::postgres::pg_cluster::cluster() else { return };
    let config = Config { postgres_url: Some(cluster.create_database()), ..archiving(true) };
    let d = Deployment::new(&config);
    let server = Server::start(&d);
    let client = server.register("pg");
    let first = server.password(&client, "openid");
    let second = server.refresh(&client, first.refresh());
    // The super admin, the client, an issue, a refresh (revocation and issue): 5 events, all
    // archived: `stats` counts them as archived and not as live (issue 9).
    let archived = wait_for_archived(&d, "archived_events", 5, 0);
    assert_eq!(archived["events"], 0, "{archived}");
    assert!(archived["size"]["file_bytes"].as_u64() > Some(0), "the live database's size: {archived}");
    assert!(archived["archive"]["segment_bytes"].as_u64() > Some(0), "{archived}");
    assert_eq!(server.introspect(&first.access_token)["active"], false);
    assert_eq!(server.introspect(&second.access_token)["active"], true);
    server.refresh_refused(&client, first.refresh());
    let third = server.refresh(&client, second.refresh());
    server.stop();
    let server = Server::start(&d);
    assert_eq!(server.introspect(&third.access_token)["active"], true);
    server.stop();
    let config = d.config_path().display().to_string();
    let verdict = ledger_replay(&["verify", "--config", &config, "--json"]).expect(0).json();
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert_eq!(verdict["first_position"], 1, "{verdict}");
    let export = ledger_replay(&["export", "--config", &config]).expect(0);
    let head = verdict["head_position"].as_i64().expect("a head");
    assert_eq!(export.stdout.lines().count() as i64, head, "the whole log, archived part first");
}
