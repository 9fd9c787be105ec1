//! The HTTP suite on PostgreSQL: a database per test on the shared throwaway cluster, and
//! several `token-ledger serve` nodes on one database sharing one key folder.

use super::app::TestApp;
use super::config::ConfigOverrides;
use super::deployment::Deployment;

#[path = "../../support/pg_cluster.rs"]
pub mod pg_cluster;

/// `base` pointed at a new, empty PostgreSQL database; `None` when PostgreSQL is missing here
/// (the harness said why; never under `CI=true`).
pub fn on_postgres(base: ConfigOverrides) -> Option<ConfigOverrides> {
    let url = pg_cluster::cluster()?.create_database();
    Some(ConfigOverrides { postgres_url: Some(url), ..base })
}

/// `count` nodes on one new PostgreSQL database, started one after the other (the first creates
/// the schema and the keys, in its data folder, which every node names as its `key_dir`).
pub async fn spawn_nodes(count: usize, base: ConfigOverrides) -> Option<Vec<TestApp>> {
    let config = on_postgres(base)?;
    Some(spawn_nodes_on(count, config).await)
}

/// `count` nodes on the database `config` names.
pub async fn spawn_nodes_on(count: usize, config: ConfigOverrides) -> Vec<TestApp> {
    let first = Deployment::new(&config);
    let keys = first.data_dir().display().to_string();
    let config = ConfigOverrides { key_dir: Some(keys), ..config };
    first.write_config_overrides(&config);
    let mut nodes = vec![first.start().await];
    for _ in 1..count {
        nodes.push(Deployment::new(&config).start().await);
    }
    nodes
}

/// The real `ledger-replay verify --db URL` and `rebuild --check --db URL` on the final database
/// of a multi-node test: the log intact (positions 1..=head without a gap, one hash chain) and
/// the views equal to the log's fold. Returns the head. Without the binary (a lone
/// `cargo test --test api`; never under CI) the library's reader checks the chain instead.
pub async fn assert_final_log_verifies(url: &str) -> i64 {
    let cli = std::path::Path::new(env!("CARGO_BIN_EXE_token-ledger")).with_file_name("ledger-replay");
    if !cli.is_file() {
        assert!(!super::in_ci(), "no ledger-replay binary next to token-ledger under CI=true");
        println!("note: no ledger-replay binary (cargo test --workspace builds it): the chain is checked through the library");
        return verify_through_the_library(url).await;
    }
    let run = |args: &'static [&'static str]| {
        let output =
            tokio::process::Command::new(&cli).args(args).arg("--db").arg(url).kill_on_drop(true).output();
        async move {
            let output = tokio::time::timeout(std::time::Duration::from_secs(60), output)
                .await
                .unwrap_or_else(|_| panic!("ledger-replay {args:?} did not finish"))
                .expect("run ledger-replay");
            let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
            assert!(
                output.status.success(),
                "ledger-replay {args:?} on the final database ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
            serde_json::from_str::<serde_json::Value>(&stdout).expect("ledger-replay --json prints JSON")
        }
    };
    let verdict = run(&["verify", "--json"]).await;
    assert_eq!(verdict["intact"], true, "{verdict}");
    let check = run(&["rebuild", "--check", "--json"]).await;
    assert_eq!(check["drift"], false, "{check}");
    let head = verdict["head_position"].as_i64().expect("verify names the head");
    assert_eq!(check["position"], head, "rebuild folded the whole log");
    head
}

/// `ledger-replay verify`'s check through the server's own backend and chain hash: positions
/// 1..=head without a gap, each event chained from its predecessor, the views' checkpoint at
/// the head.
async fn verify_through_the_library(url: &str) -> i64 {
    use token_ledger::store::backend::ReadStore as _;
    use token_ledger::store::log::{chain_hash, GENESIS};
    use token_ledger::store::postgres::{PgOptions, PgReads};
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let reads = PgReads::new(PgOptions::parse(&url, None, 1).expect("a connection string"));
        let (mut position, mut prev) = (0, GENESIS.to_vec());
        loop {
            let page = reads.read_after(position, 1000).expect("read the log");
            if page.is_empty() {
                break;
            }
            for e in page {
                assert_eq!(e.position, position + 1, "a gap before position {}", e.position);
                assert_eq!(e.prev_hash, prev, "position {} does not chain", e.position);
                assert_eq!(e.hash, chain_hash(&prev, &e).to_vec(), "position {} was altered", e.position);
                (position, prev) = (e.position, e.hash);
            }
        }
        assert_eq!(reads.head().expect("the head"), position, "the head row names the last event");
        assert_eq!(reads.checkpoint().expect("the checkpoint"), position, "the views are at the head");
        position
    })
    .await
    .expect("the verification thread")
}
