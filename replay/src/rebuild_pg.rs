//! `rebuild` on PostgreSQL: the same fold through the server's projection, into temporary
//! shadow tables of the live database (`token_ledger::store::postgres::rebuild`), the same
//! comparison and report as on SQLite, and a swap in the same transaction.
//!
//! Nodes serving the database are known by their heartbeat rows (schema/postgres/0003): a
//! rebuild refuses while one beat in the last few seconds, unless forced; a check never does.

use token_ledger::store::fold;
use token_ledger::store::postgres::rebuild::{Rebuild, TableRows};
use token_ledger::store::postgres::PgOptions;
use token_ledger::store::StoreError;

use crate::progress::Progress;
use crate::rebuild::{Options, Report};
use crate::views_diff::{self, Difference, Kind, Rows, VIEW_TABLES};
use crate::ReplayError;

/// Events read per query while folding.
const PAGE: usize = 1000;

/// Runs a rebuild (or a check) of the views of the PostgreSQL database at `url`; `shown` is the
/// URL without its password.
pub fn rebuild(
    url: &str,
    shown: &str,
    options: Options,
    progress: &mut Progress,
) -> Result<Report, ReplayError> {
    let password = std::env::var("PGPASSWORD").ok();
    let pg =
        PgOptions::parse(url, password.as_deref(), 1).map_err(|e| ReplayError::Postgres(e.to_string()))?;
    if !options.check_only {
        let nodes = Rebuild::live_nodes(&pg).map_err(StoreError::from)?;
        if !nodes.is_empty() && !options.force_while_serving {
            let named: Vec<String> =
                nodes.iter().map(|n| format!("{} (pid {} on {})", n.node_id, n.pid, n.host)).collect();
            return Err(ReplayError::NodesServing { database: shown.to_owned(), nodes: named.join(", ") });
        }
    }
    let mut tx = Rebuild::begin(&pg, options.check_only, &VIEW_TABLES).map_err(StoreError::from)?;
    let (position, hash) = fold(&mut tx, progress)?;
    let differences = compare(&mut tx, position, &hash)?;
    let drift = !differences.is_empty();
    let swapped = drift && !options.check_only;
    if swapped {
        tx.swap_and_commit(&VIEW_TABLES, position, &hash).map_err(StoreError::from)?;
    }
    Ok(Report {
        database: shown.into(),
        position,
        drift,
        differences,
        swapped,
        caught_up: 0,
        check_only: options.check_only,
    })
}

/// Folds the whole log into the shadow; returns the last position and its hash.
fn fold(tx: &mut Rebuild, progress: &mut Progress) -> Result<(i64, Vec<u8>), ReplayError> {
    let (mut position, mut hash) = (0, token_ledger::store::log::GENESIS.to_vec());
    loop {
        let page = tx.read_after(position, PAGE).map_err(StoreError::from)?;
        if page.is_empty() {
            progress.finish();
            return Ok((position, hash));
        }
        for stored in page {
            let fold_error = |source| ReplayError::Fold { position: stored.position, source };
            let event = stored.decode().map_err(fold_error)?;
            for op in fold::ops(&stored, &event) {
                tx.project(&op).map_err(|e| fold_error(e.into()))?;
            }
            progress.inc();
            (position, hash) = (stored.position, stored.hash);
        }
    }
}

/// Every difference between the live views and the shadow, then the derived rows.
fn compare(tx: &mut Rebuild, position: i64, hash: &[u8]) -> Result<Vec<Difference>, ReplayError> {
    let mut found = Vec::new();
    for table in VIEW_TABLES {
        let rows = tx.differing_rows(table).map_err(StoreError::from)?;
        let (live, rebuilt) = (keyed(&rows, &rows.live_only), keyed(&rows, &rows.rebuilt_only));
        found.extend(views_diff::diff_rows(table, &rows.names, live, rebuilt));
    }
    found.extend(views_diff::checkpoint_difference(tx.checkpoint().map_err(StoreError::from)?, position));
    found.extend(views_diff::anchor_difference(tx.anchor_present().map_err(StoreError::from)?));
    found.extend(head_difference(tx.head().map_err(StoreError::from)?, position, hash));
    Ok(found)
}

fn keyed(rows: &TableRows, only: &[Vec<String>]) -> Rows {
    only.iter()
        .map(|row| {
            let key: Vec<&str> = rows.key.iter().map(|&i| row[i].as_str()).collect();
            (key.join("/"), row.clone())
        })
        .collect()
}

/// The head row names the last event and its hash; appenders chain from it.
fn head_difference(live: Option<(i64, Vec<u8>)>, position: i64, hash: &[u8]) -> Option<Difference> {
    let difference = |kind, columns| Difference { view: "log_head".into(), key: "1".into(), kind, columns };
    let Some((live_position, live_hash)) = live else {
        return Some(difference(Kind::Missing, Vec::new()));
    };
    let mut columns = Vec::new();
    if live_position != position {
        columns.push(views_diff::ColumnDifference {
            column: "position".into(),
            live: live_position.to_string(),
            rebuilt: position.to_string(),
        });
    }
    if live_hash != hash {
        columns.push(views_diff::ColumnDifference {
            column: "hash".into(),
            live: hex::encode(&live_hash),
            rebuilt: hex::encode(hash),
        });
    }
    (!columns.is_empty()).then(|| difference(Kind::Differs, columns))
}
