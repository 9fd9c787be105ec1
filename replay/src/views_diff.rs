//! Row-by-row comparison of the live views with a rebuilt shadow, over every column the live
//! table has, keyed by its primary key. On SQLite the live schema is `main` and the shadow is
//! attached as `shadow`; PostgreSQL (`rebuild_pg`) brings its own rows to [`diff_rows`].

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _};
use serde::Serialize;

use crate::ReplayError;

/// The tables the projection (`fold::ops` through the SQLite backend) writes. Listed, not discovered: a table the projection does not
/// own (a key store, say) must never be wiped by a rebuild.
pub const VIEW_TABLES: [&str; 7] = [
    "clients",
    "users",
    "active_tokens",
    "rotated_refresh_tokens",
    // The code flow's views (schema/sqlite/0004_authorization_code.sql).
    "authorization_codes",
    "login_sessions",
    "consents",
];

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

/// The columns of a live view table, in order, and the index of its primary key.
pub fn columns(conn: &Connection, table: &str) -> Result<(Vec<String>, usize), ReplayError> {
    let mut stmt = conn.prepare(&format!("PRAGMA main.table_info({table})"))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?;
    let mut names = Vec::new();
    let mut key = 0;
    for (index, row) in rows.enumerate() {
        let (name, pk) = row?;
        if pk == 1 {
            key = index;
        }
        names.push(name);
    }
    Ok((names, key))
}

/// Every difference between `main` and `shadow`, views in order, rows by key; then the
/// checkpoint and the chain anchor, whose rows may be missing altogether.
pub fn compare(conn: &Connection) -> Result<Vec<Difference>, ReplayError> {
    let mut found = Vec::new();
    for table in VIEW_TABLES {
        found.extend(compare_table(conn, table)?);
    }
    let checkpoint = |schema: &str| -> Result<Option<i64>, ReplayError> {
        let sql = format!("SELECT position FROM {schema}.checkpoints WHERE projection = 'views'");
        Ok(conn.query_row(&sql, [], |r| r.get(0)).optional()?)
    };
    found.extend(checkpoint_difference(checkpoint("main")?, checkpoint("shadow")?.unwrap_or(0)));
    let anchored: bool =
        conn.query_row("SELECT EXISTS(SELECT 1 FROM main.chain_anchor WHERE id = 1)", [], |r| r.get(0))?;
    found.extend(anchor_difference(anchored));
    Ok(found)
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

fn compare_table(conn: &Connection, table: &str) -> Result<Vec<Difference>, ReplayError> {
    let (names, key) = columns(conn, table)?;
    let list = names.join(", ");
    let only_in = |a: &str, b: &str| -> Result<Rows, ReplayError> {
        let sql = format!("SELECT {list} FROM {a}.{table} EXCEPT SELECT {list} FROM {b}.{table}");
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], |r| {
            (0..names.len()).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>()
        })?;
        let mut by_key = Rows::new();
        for row in rows {
            let row = row?;
            by_key.insert(show(&row[key]), row.iter().map(show).collect());
        }
        Ok(by_key)
    };
    Ok(diff_rows(table, &names, only_in("main", "shadow")?, only_in("shadow", "main")?))
}

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

/// A value as text: blobs (digests) in hex.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t.clone(),
        Value::Blob(b) => hex::encode(b),
    }
}
