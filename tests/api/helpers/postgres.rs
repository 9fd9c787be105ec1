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
