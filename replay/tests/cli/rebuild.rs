//! `rebuild`: deleted or corrupted views come back exactly as the log says, a running server is
//! not disturbed, and a rebuild killed at any moment leaves the live views whole.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::Connection;

use crate::helpers::binaries::{ledger_replay_with, LEDGER_REPLAY};
use crate::helpers::history::now_ms;
use crate::helpers::{history, ledger_replay, Server};

const VIEWS: [&str; 5] = ["clients", "users", "active_tokens", "rotated_refresh_tokens", "checkpoints"];

/// Every row of every view, in a stable order.
fn views(db: &Path) -> BTreeMap<&'static str, Vec<Vec<Value>>> {
    let conn = Connection::open(db).expect("open the database");
    VIEWS
        .iter()
        .map(|table| {
            let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY 1")).expect("select a view");
            let width = stmt.column_count();
            let rows = stmt
                .query_map([], |r| (0..width).map(|i| r.get(i)).collect())
                .expect("read a view")
                .collect::<Result<Vec<Vec<Value>>, _>>()
                .expect("rows");
            (*table, rows)
        })
        .collect()
}

fn damage(db: &Path, sql: &str) {
    Connection::open(db).expect("open the database").execute_batch(sql).expect("damage the views");
}

#[test]
fn rebuild_restores_deleted_views_exactly_and_introspection_answers_as_before() {
    let h = history();
    let copy = h.deployment.copy();
    let db = copy.db_arg();
    let pristine = views(&copy.database());
    damage(
        &copy.database(),
        "DELETE FROM active_tokens; DELETE FROM rotated_refresh_tokens; DELETE FROM clients;",
    );

    let server = Server::start(&copy);
    let refused = ledger_replay(&["rebuild", "--db", &db]).expect(2);
    assert!(refused.stderr.contains("a server is serving"), "{}", refused.stderr);
    let beside = ledger_replay(&["rebuild", "--check", "--db", &db]).expect(1);
    assert!(beside.stdout.contains("missing from the live view"), "{}", beside.stdout);
    server.stop();

    ledger_replay(&["rebuild", "--db", &db]).expect(0);
    assert_eq!(views(&copy.database()), pristine);
    let check = ledger_replay(&["rebuild", "--check", "--db", &db, "--json"]).expect(0);
    assert_eq!(check.json()["drift"], false);

    let server = Server::start(&copy);
    for (token, before) in &h.introspections {
        // A 3 s token live when recorded may have expired since; every other answer is fixed.
        let expiring = before["active"] == true
            && before["exp"].as_i64().is_some_and(|exp| exp * 1000 - now_ms() < 60_000);
        if !expiring {
            assert_eq!(&server.introspect(token), before);
        }
    }
    server.stop();
}

#[test]
fn rebuild_check_names_every_corrupted_row_and_rebuild_repairs_them() {
    let copy = history().deployment.copy();
    let db = copy.db_arg();
    let pristine = views(&copy.database());
    let conn = Connection::open(copy.database()).expect("open the database");
    let token: String = conn
        .query_row("SELECT token_id FROM active_tokens LIMIT 1", [], |r| r.get(0))
        .expect("an active token");
    let client: String =
        conn.query_row("SELECT client_id FROM clients LIMIT 1", [], |r| r.get(0)).expect("a client");
    drop(conn);
    damage(
        &copy.database(),
        &format!(
            "UPDATE active_tokens SET expires_at = expires_at + 3600000 WHERE token_id = '{token}';
             INSERT INTO rotated_refresh_tokens VALUES (x'00', 'f', 'c', 's', 1);
             DELETE FROM clients WHERE client_id = '{client}';
             UPDATE users SET password_hash = 'forged';"
        ),
    );

    let report = ledger_replay(&["rebuild", "--check", "--db", &db, "--json"]).expect(1).json();
    let differences = report["differences"].as_array().expect("differences");
    let find = |view: &str, kind: &str| {
        differences
            .iter()
            .find(|d| d["view"] == view && d["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} row of {view} in {report}"))
    };
    let changed = find("active_tokens", "differs");
    assert_eq!(changed["key"], token.as_str());
    assert_eq!(changed["columns"][0]["column"], "expires_at");
    assert_eq!(find("rotated_refresh_tokens", "unexpected")["key"], "00");
    assert_eq!(find("clients", "missing")["key"], client.as_str());
    let password = &find("users", "differs")["columns"][0];
    assert_eq!(password["live"], "<redacted>", "a password hash is never shown");
    assert_eq!(differences.len(), 4, "{report}");
    assert_eq!(views(&copy.database())["active_tokens"].len(), pristine["active_tokens"].len());

    ledger_replay(&["rebuild", "--db", &db]).expect(0);
    assert_eq!(views(&copy.database()), pristine);
}

#[test]
fn a_rebuild_killed_at_any_moment_leaves_the_live_views_untouched_or_complete() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a folder");
    let db = dir.path().join("ledger.db");
    let db_arg = db.display().to_string();
    let generator = Path::new(LEDGER_REPLAY).with_file_name("ledger-gen");
    let made = Command::new(generator)
        .args(["--events", "12000", "--users", "200", "--db", &db_arg])
        .stdout(Stdio::null())
        .status()
        .expect("run ledger-gen");
    assert!(made.success());
    let complete = views(&db);
    damage(&db, "DELETE FROM active_tokens; UPDATE checkpoints SET position = 0;");
    let damaged = views(&db);

    for delay in [0, 40, 80, 120, 160, 200, 250, 300, 400] {
        let mut child = Command::new(LEDGER_REPLAY)
            .args(["rebuild", "--db", &db_arg])
            .env("TMPDIR", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a rebuild");
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
        let now = views(&db);
        assert!(now == damaged || now == complete, "after a kill at {delay} ms: half-built views");
        if now == complete {
            damage(&db, "DELETE FROM active_tokens; UPDATE checkpoints SET position = 0;");
        }
    }
    ledger_replay(&["verify", "--db", &db_arg]).expect(0);
    ledger_replay_with(&["rebuild", "--db", &db_arg], None, &[("TMPDIR", dir.path())]).expect(0);
    assert_eq!(views(&db), complete);
}
