//! Row-by-row comparison of the live views with the image folded from the log, over every
//! column of the view, keyed by its primary key. Each backend's rebuild reads its live rows;
//! the comparison itself happens in memory.

use std::collections::BTreeMap;

use serde::Serialize;
use token_ledger::store::image::{Cell, Image, Table, TABLES};

use crate::ReplayError;

/// Columns whose values are secrets at rest or ciphertext: a difference is reported, not shown.
const REDACTED: [&str; 3] = ["sealed_access", "sealed_refresh", "password_hash"];

/// How a row of the live view differs from the rebuilt one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The log says the row should be there; the live view lacks it.
    Missing,
    /// The live view has a row the log does not explain.
    Unexpected,
    /// Both have the row, with different values.
    Differs,
}

/// One difference: a view, a row key, and what differs.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub view: String,
    pub key: String,
    pub kind: Kind,
    /// For `differs`: each differing column with the live and the rebuilt value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnDifference>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ColumnDifference {
    pub column: String,
    pub live: String,
    pub rebuilt: String,
}

/// Every difference between the live views (their rows by table, read by `live_rows` in the
/// image's column order) and the image folded from the log, views in order, rows by key.
pub fn compare_image(
    image: &Image,
    mut live_rows: impl FnMut(&Table) -> Result<Vec<Vec<Cell>>, ReplayError>,
) -> Result<Vec<Difference>, ReplayError> {
    let mut found = Vec::new();
    for (index, table) in TABLES.iter().enumerate() {
        let rebuilt = image.rows(index);
        let live: BTreeMap<Vec<Cell>, Vec<Cell>> =
            live_rows(table)?.into_iter().map(|row| (row[..table.key].to_vec(), row)).collect();
        let mut live_only = Rows::new();
        for (key, row) in &live {
            if rebuilt.get(key) != Some(row) {
                live_only.insert(key_text(key), shown(row));
            }
        }
        let mut rebuilt_only = Rows::new();
        for (key, row) in rebuilt {
            if live.get(key) != Some(row) {
                rebuilt_only.insert(key_text(key), shown(row));
            }
        }
        let names: Vec<String> = table.columns.iter().map(|(n, _)| (*n).to_owned()).collect();
        found.extend(diff_rows(table.name, &names, live_only, rebuilt_only));
    }
    Ok(found)
}

fn key_text(key: &[Cell]) -> String {
    key.iter().map(Cell::shown).collect::<Vec<_>>().join("/")
}

fn shown(row: &[Cell]) -> Vec<String> {
    row.iter().map(Cell::shown).collect()
}

/// The views' checkpoint row: missing, or at another position than the fold's.
pub fn checkpoint_difference(live: Option<i64>, rebuilt: i64) -> Option<Difference> {
    let difference =
        |kind, columns| Difference { view: "checkpoints".into(), key: "views".into(), kind, columns };
    match live {
        None => Some(difference(Kind::Missing, Vec::new())),
        Some(live) if live != rebuilt => Some(difference(
            Kind::Differs,
            vec![ColumnDifference {
                column: "position".into(),
                live: live.to_string(),
                rebuilt: rebuilt.to_string(),
            }],
        )),
        Some(_) => None,
    }
}

/// The chain anchor's row, when it is gone. A rebuild puts it back at the start of the log, so
/// the next start verifies the whole chain again; an anchor that exists is never moved here,
/// since a mismatch with the log is the tamper evidence the server's start-up check reports.
pub fn anchor_difference(present: bool) -> Option<Difference> {
    (!present).then(|| Difference {
        view: "chain_anchor".into(),
        key: "1".into(),
        kind: Kind::Missing,
        columns: Vec::new(),
    })
}

/// Rows of one table by key, each value shown as text.
pub type Rows = BTreeMap<String, Vec<String>>;

/// The differences of one table, from the rows only the live view has and the rows only the
/// rebuilt one has, sorted by key.
pub fn diff_rows(table: &str, names: &[String], live: Rows, mut rebuilt: Rows) -> Vec<Difference> {
    let mut found = Vec::new();
    for (key, live_row) in live {
        let difference = match rebuilt.remove(&key) {
            Some(rebuilt_row) => Difference {
                view: table.into(),
                kind: Kind::Differs,
                columns: column_differences(names, &live_row, &rebuilt_row),
                key,
            },
            None => Difference { view: table.into(), key, kind: Kind::Unexpected, columns: Vec::new() },
        };
        found.push(difference);
    }
    found.extend(rebuilt.into_keys().map(|key| Difference {
        view: table.into(),
        key,
        kind: Kind::Missing,
        columns: Vec::new(),
    }));
    found.sort_by(|a, b| a.key.cmp(&b.key));
    found
}

fn column_differences(names: &[String], live: &[String], rebuilt: &[String]) -> Vec<ColumnDifference> {
    names
        .iter()
        .zip(live.iter().zip(rebuilt))
        .filter(|(_, (l, r))| l != r)
        .map(|(name, (l, r))| {
            let secret = REDACTED.contains(&name.as_str());
            let shown = |v: &String| if secret { "<redacted>".into() } else { v.clone() };
            ColumnDifference { column: name.clone(), live: shown(l), rebuilt: shown(r) }
        })
        .collect()
}
