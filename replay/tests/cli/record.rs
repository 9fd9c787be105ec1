//! The recorder of `replay/fixtures/`: drives the real server through each scenario, exports
//! its log with `ledger-replay export`, and writes the view the server itself left in its
//! database as the expectation. Run it on purpose when the fixtures must be recorded again:
//!
//! ```sh
//! cargo test -p ledger-replay --test cli record -- --ignored
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{json, Value};
use token_ledger::store::log::format_time;

use crate::helpers::{ledger_replay, Config, Deployment, Server};

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

#[test]
#[ignore = "rewrites replay/fixtures from a live server; run on purpose"]
fn record_the_fixtures_from_the_real_server() {
    record(
        "seed-renewal-off",
        "the seed scenario, renewal off: the same token comes back",
        Config::default(),
        |s| {
            let app = s.register("seed-app");
            let first = s.password(&app, "openid");
            assert_eq!(s.password(&app, "openid").access_token, first.access_token);
            assert_eq!(s.introspect(&first.access_token)["active"], true);
        },
    );
    record(
        "seed-renewal-on",
        "the seed scenario, renewal on: the second request revokes the first token",
        Config::renewal_on(),
        |s| {
            let app = s.register("seed-app");
            let first = s.password(&app, "openid");
            assert_ne!(s.password(&app, "openid").access_token, first.access_token);
            assert_eq!(s.introspect(&first.access_token), json!({"active": false}));
        },
    );
    let timeline =
        Config { user_access_token_validity: "4s", refresh_token_validity: "10s", ..Config::default() };
    record("identity-6777", "WSO2 IDENTITY-6777 scaled to AT 4 s / RT 10 s: the refresh token is carried over only while it outlives a new access token", timeline, |s| {
        let app = s.register("identity-6777");
        let start = Instant::now();
        let at = |seconds: f64| {
            let due = start + Duration::from_secs_f64(seconds);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        };
        let t0 = s.password(&app, "RO");
        at(1.0);
        assert_eq!(s.password(&app, "RO").access_token, t0.access_token);
        at(4.5);
        let t4 = s.password(&app, "RO");
        assert_eq!(t4.refresh_token, t0.refresh_token, "RT0 carried over");
        at(9.0);
        let t9 = s.password(&app, "RO");
        assert_ne!(t9.refresh_token, t0.refresh_token, "a new RT");
        at(10.0);
        assert_eq!(s.password(&app, "RO").access_token, t9.access_token);
    });
    let reuse = Config { refresh_token_reuse_grace_period: "0s", ..Config::default() };
    record(
        "refresh-reuse",
        "refresh rotation, then the first refresh token replayed: the family is revoked (RFC 9700)",
        reuse,
        |s| {
            let app = s.register("refresher");
            let original = s.password(&app, "openid");
            let second = s.refresh(&app, original.refresh());
            let third = s.refresh(&app, second.refresh());
            std::thread::sleep(Duration::from_millis(20));
            s.refresh_refused(&app, original.refresh());
            assert_eq!(s.introspect(&third.access_token), json!({"active": false}));
        },
    );
    record(
        "client-deletion",
        "a client with a user token and an application token is deleted: both are revoked first",
        Config::default(),
        |s| {
            let kept = s.register("kept");
            let doomed = s.register("doomed");
            s.password(&kept, "openid");
            let user = s.password(&doomed, "openid");
            s.client_credentials(&doomed, "cc");
            s.delete_client(&doomed);
            assert_eq!(s.introspect(&user.access_token), json!({"active": false}));
        },
    );
}

fn record(name: &str, description: &str, config: Config, scenario: impl FnOnce(&Server)) {
    let deployment = Deployment::new(&config);
    let server = Server::start(&deployment);
    scenario(&server);
    server.stop();
    let dir = fixtures_dir();
    let log = dir.join(format!("{name}.jsonl"));
    let db = deployment.db_arg();
    ledger_replay(&["export", "--db", &db, "--out", &log.display().to_string()]).expect(0);
    let expected = json!({
        "scenario": name,
        "description": description,
        "recorded_with": "token-ledger serve, then ledger-replay export; tokens are the server's own active_tokens view",
        "position": checkpoint(&deployment.database()),
        "tokens": server_view(&deployment.database()),
    });
    let text = serde_json::to_string_pretty(&expected).expect("JSON") + "\n";
    std::fs::write(dir.join(format!("{name}.expected.json")), text).expect("write the expectation");
}

fn checkpoint(db: &Path) -> i64 {
    Connection::open(db)
        .expect("open the database")
        .query_row("SELECT position FROM checkpoints WHERE projection = 'views'", [], |r| r.get(0))
        .expect("the checkpoint")
}

/// The active-token view exactly as the server wrote it, in the form `replay --json` shows.
pub fn server_view(db: &Path) -> Vec<Value> {
    let conn = Connection::open(db).expect("open the database");
    let mut stmt = conn
        .prepare(
            "SELECT access_digest, client_id, username, scopes, grant_type, issued_at, expires_at,
                refresh_digest, refresh_expires_at
             FROM active_tokens ORDER BY access_digest",
        )
        .expect("select the view");
    stmt.query_map([], |r| {
        Ok(json!({
            "access_digest": hex::encode(r.get::<_, Vec<u8>>(0)?),
            "client_id": r.get::<_, String>(1)?,
            "username": r.get::<_, Option<String>>(2)?,
            "scopes": r.get::<_, String>(3)?,
            "grant_type": r.get::<_, String>(4)?,
            "issued_at": format_time(r.get(5)?),
            "expires_at": format_time(r.get(6)?),
            "refresh_digest": r.get::<_, Option<Vec<u8>>>(7)?.map(hex::encode),
            "refresh_expires_at": r.get::<_, Option<i64>>(8)?.map(format_time),
        }))
    })
    .expect("read the view")
    .collect::<Result<_, _>>()
    .expect("rows")
}
