//! Crash safety: under sustained mixed load (issues with renewal off and on, refreshes, some
//! narrowing the scope, replays of rotated refresh tokens, revocations) from several clients,
//! the server is SIGKILLed at random moments and restarted. After every kill nothing that a
//! client was told is lost: every token it received is known with the state its acknowledged
//! requests imply, nothing revoked is active again, no key has two active tokens, and the
//! audit CLI finds the log intact and the views equal to the log's fold.
//!
//! The kill moments and request mix come from a seed printed at the start; set `CRASH_SEED` to
//! replay a run.

mod worker;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use token_ledger::domain::types::Digest;
use tokio::process::Command;

use crate::helpers::{spawn_app, ConfigOverrides, SqlValue, TestApp};
use worker::{Expect, Worker};

/// Kills per server.
const KILLS: usize = 4;
/// Load runs this long (ms, chosen at random) before each kill.
const LOAD_MS: std::ops::Range<u64> = 1_000..3_500;
const WORKERS: usize = 3;

fn seed() -> u64 {
    let seed = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    println!("crash test seed: CRASH_SEED={seed}");
    seed
}

/// The audit CLI, built next to the server binary by `cargo test --workspace`.
fn ledger_replay() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_BIN_EXE_token-ledger")).with_file_name("ledger-replay");
    path.is_file().then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_tokens_survive_repeated_kill_9_under_mixed_load() {
    let seed = seed();
    if ledger_replay().is_none() {
        println!(
            "note: no ledger-replay binary next to token-ledger; its verify and rebuild --check are skipped"
        );
    }
    let base = ConfigOverrides {
        client_credentials_refresh_tokens: true,
        refresh_token_reuse_grace_period: "0s",
        ..ConfigOverrides::default()
    };
    let on = ConfigOverrides { renew_access_token_per_request: true, ..base.clone() };
    let (off, on) = tokio::join!(crash_repeatedly(base, seed), crash_repeatedly(on, seed ^ 0x5eed));

    for (label, acknowledged) in [("renewal off", off), ("renewal on", on)] {
        assert!(
            acknowledged >= 100,
            "{label}: only {acknowledged} requests were answered; the load is too light"
        );
    }
}

/// Runs load, kills, checks and restarts, `KILLS` times; returns how many requests were answered.
async fn crash_repeatedly(config: ConfigOverrides, seed: u64) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let renewal = config.renew_access_token_per_request;
    let mut app = spawn_app(config).await;
    let grants = ["password", "client_credentials", "refresh_token"];
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let client = app.register_client_dcr(&format!("crash-{w}"), &grants).await;
        workers.push(Worker::new(client, renewal, StdRng::seed_from_u64(rng.gen())));
    }
    for _ in 0..KILLS {
        let http = app.http.clone();
        let running = join_all(workers.into_iter().map(|w| w.run(http.clone(), app.base_url.clone())));
        let load = Duration::from_millis(rng.gen_range(LOAD_MS));
        let (stopped, ()) = tokio::join!(running, async {
            tokio::time::sleep(load).await;
            app.kill().await;
        });
        workers = stopped;
        for worker in &mut workers {
            worker.mark_lost_request();
        }
        check_offline(&app, &workers).await;
        app.restart().await;
        check_online(&app, &mut workers).await;
    }
    let pairs: Vec<&worker::Pair> = workers.iter().flat_map(|w| w.pairs.iter()).collect();
    let active = pairs.iter().filter(|p| p.expect == Expect::Active).count();
    let acknowledged = workers.iter().map(|w| w.acknowledged).sum();
    let mut answered = [0; 5];
    for worker in &workers {
        answered.iter_mut().zip(worker.answered).for_each(|(total, n)| *total += n);
    }
    let label = if renewal { "renewal on" } else { "renewal off" };
    println!(
        "{label}: {acknowledged} answered requests (issue, refresh, narrowing refresh, replay, revoke: {answered:?}), \
         {} token pairs received, {active} active at the end, {KILLS} kills",
        pairs.len()
    );
    assert!(
        answered.iter().all(|n| *n > 0),
        "{label}: some kind of request was never answered: {answered:?}"
    );
    acknowledged
}

/// With the server dead: the database alone holds every acknowledged state.
async fn check_offline(app: &TestApp, workers: &[Worker]) {
    let doubled =
        app.sql_rows("SELECT stream, COUNT(*) FROM active_tokens GROUP BY stream HAVING COUNT(*) > 1");
    assert!(doubled.is_empty(), "keys with two active tokens: {doubled:?}");
    let digests = |column: &str| -> HashSet<Vec<u8>> {
        let sql = format!("SELECT {column} FROM active_tokens WHERE {column} IS NOT NULL");
        app.sql_rows(&sql)
            .into_iter()
            .map(|row| match &row[0] {
                SqlValue::Bytes(b) => b.clone(),
                other => panic!("{column} is not a digest: {other:?}"),
            })
            .collect()
    };
    let (access, refresh) = (digests("access_digest"), digests("refresh_digest"));
    let view_ids: HashSet<String> =
        app.sql_rows("SELECT token_id FROM active_tokens").iter().map(|row| row[0].text()).collect();
    assert_eq!(view_ids, fold_active_ids(app), "the active-token view differs from the fold of the log");

    for worker in workers {
        for pair in &worker.pairs {
            let a = Digest::of(pair.access.as_bytes()).0.to_vec();
            let r = Digest::of(pair.refresh.as_bytes()).0.to_vec();
            match pair.expect {
                Expect::Active => {
                    assert!(access.contains(&a) && refresh.contains(&r), "lost on disk: {pair:?}")
                }
                Expect::Inactive => {
                    assert!(!access.contains(&a) && !refresh.contains(&r), "revived on disk: {pair:?}")
                }
                Expect::Either => {}
            }
        }
    }
    audit(app.db_arg()).await;
}

/// The log folded by hand: TokenIssued makes a token active on its stream, TokenRevoked ends
/// it. Asserts that no stream ever has two, and returns the ids active at the end.
fn fold_active_ids(app: &TestApp) -> HashSet<String> {
    let mut by_stream: HashMap<String, String> = HashMap::new();
    let mut stream_of: HashMap<String, String> = HashMap::new();
    for event in app.events() {
        let id = event.payload["token_id"].as_str().unwrap_or_default().to_string();
        match event.event_type.as_str() {
            "TokenIssued" => {
                let previous = by_stream.insert(event.stream.clone(), id.clone());
                assert!(
                    previous.is_none(),
                    "position {}: a second active token on {}",
                    event.position,
                    event.stream
                );
                stream_of.insert(id, event.stream);
            }
            "TokenRevoked" => {
                let stream = stream_of
                    .remove(&id)
                    .unwrap_or_else(|| panic!("position {}: revokes {id}, not active", event.position));
                by_stream.remove(&stream);
            }
            _ => {}
        }
    }
    by_stream.into_values().collect()
}

/// `ledger-replay verify` and `rebuild --check` on the stopped server's database: exit 0.
async fn audit(database: String) {
    let Some(cli) = ledger_replay() else { return };
    for args in [&["verify"][..], &["rebuild", "--check"][..]] {
        let run = Command::new(&cli).args(args).arg("--db").arg(&database).kill_on_drop(true).output();
        let output = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .unwrap_or_else(|_| panic!("ledger-replay {args:?} did not finish"))
            .expect("run ledger-replay");
        assert!(
            output.status.success(),
            "ledger-replay {args:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// After the restart: introspection agrees with every acknowledged state, and settles the
/// uncertain ones.
async fn check_online(app: &TestApp, workers: &mut [Worker]) {
    for worker in workers.iter_mut() {
        let states: Vec<(bool, bool)> = stream::iter(worker.pairs.iter())
            .map(
                |pair| async move { (app.is_active(&pair.access).await, app.is_active(&pair.refresh).await) },
            )
            .buffered(16)
            .collect()
            .await;
        for (index, (access, refresh)) in states.into_iter().enumerate() {
            let pair = &worker.pairs[index];
            assert_eq!(access, refresh, "the two halves of a pair disagree: {pair:?}");
            match pair.expect {
                Expect::Active => assert!(access, "an acknowledged token was lost in the crash: {pair:?}"),
                Expect::Inactive => assert!(!access, "a revoked or replaced token is active again: {pair:?}"),
                Expect::Either => worker.settle(index, access),
            }
        }
    }
}
