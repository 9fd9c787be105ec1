//! `rebuild` on PostgreSQL: the same fold into an in-memory image through the server's
//! `fold::ops`, from the same start (the log's start, the boundary snapshot, or with `--full`
//! the archive segments), the same comparison and report as on SQLite, and the image written
//! over the live views in the rebuild's transaction (`token_ledger::store::postgres::rebuild`).
//!
//! Nodes serving the database are known by their heartbeat rows (schema/postgres/0003): a
//! rebuild refuses while one beat in the last few seconds, unless forced; a check never does.

use token_ledger::store::image::Image;
use token_ledger::store::postgres::rebuild::Rebuild;
use token_ledger::store::postgres::PgOptions;
use token_ledger::store::StoreError;

use crate::progress::Progress;
use crate::rebuild::{anchor_of, fold, starting_image, Options, Report};
use crate::views_diff::{self, Difference, Kind};
use crate::ReplayError;

/// Events read per query while folding.
const PAGE: usize = 10_000;

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
    let mut tx = Rebuild::begin(&pg, options.check_only).map_err(StoreError::from)?;
    let steps = tx.steps()?;
    let anchor = anchor_of(&steps);
    let last_snapshot = tx.last_snapshot()?;
    let mut image = starting_image(steps, last_snapshot, &options, progress)?;
    // With --full the fold started at position 1, through the segments.
    let started_from = if options.full { 0 } else { image.position };
    fold_live(&mut tx, &mut image, progress)?;
    let differences = compare(&mut tx, &image)?;
    let drift = !differences.is_empty();
    let swapped = drift && !options.check_only;
    if swapped {
        tx.write_image_and_commit(&image, (anchor.0, &anchor.1)).map_err(StoreError::from)?;
    }
    Ok(Report {
        database: shown.into(),
        position: image.position,
        started_from,
        drift,
        differences,
        swapped,
        caught_up: 0,
        check_only: options.check_only,
    })
}

/// Folds the live log after the image's position into it.
fn fold_live(tx: &mut Rebuild, image: &mut Image, progress: &mut Progress) -> Result<(), ReplayError> {
    loop {
        let page = tx.read_after(image.position, PAGE).map_err(StoreError::from)?;
        if page.is_empty() {
            progress.finish();
            return Ok(());
        }
        for stored in page {
            fold(image, &stored)?;
            progress.inc();
        }
    }
}

/// Every difference between the live views and the image, then the derived rows.
fn compare(tx: &mut Rebuild, image: &Image) -> Result<Vec<Difference>, ReplayError> {
    let mut found = views_diff::compare_image(image, |table| Ok(tx.live_rows(table)?))?;
    found.extend(views_diff::checkpoint_difference(
        tx.checkpoint().map_err(StoreError::from)?,
        image.position,
    ));
    found.extend(views_diff::anchor_difference(tx.anchor_present().map_err(StoreError::from)?));
    found.extend(head_difference(tx.head().map_err(StoreError::from)?, image.position, &image.hash));
    Ok(found)
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
