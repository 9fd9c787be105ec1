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

/// `ledger-replay verify`'s check, through the server's own backend and chain hash, on the final
/// database of a multi-node test: positions 1..=head without a gap, each event chained from its
/// predecessor, and the views' checkpoint at the head. Returns the head.
pub async fn assert_final_log_verifies(url: &str) -> i64 {
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
