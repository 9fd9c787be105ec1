//! Row-by-row comparison of the live views (schema `main`) with a rebuilt shadow attached as
//! `shadow`, over every column the live table has, keyed by its primary key.

use std::collections::BTreeMap;

use rusqlite::types::Value;
use rusqlite::Connection;
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
/// checkpoint.
pub fn compare(conn: &Connection) -> Result<Vec<Difference>, ReplayError> {
    let mut found = Vec::new();
    for table in VIEW_TABLES {
        found.extend(compare_table(conn, table)?);
    }
    let checkpoint = |schema: &str| -> Result<i64, ReplayError> {
        Ok(conn.query_row(
            &format!("SELECT position FROM {schema}.checkpoints WHERE projection = 'views'"),
            [],
            |r| r.get(0),
        )?)
    };
    let (live, rebuilt) = (checkpoint("main")?, checkpoint("shadow")?);
    if live != rebuilt {
        found.push(Difference {
            view: "checkpoints".into(),
            key: "views".into(),
            kind: Kind::Differs,
            columns: vec![ColumnDifference {
                column: "position".into(),
                live: live.to_string(),
                rebuilt: rebuilt.to_string(),
            }],
        });
    }
    Ok(found)
}

type Rows = BTreeMap<String, Vec<Value>>;

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
            by_key.insert(show(&row[key]), row);
        }
        Ok(by_key)
    };
    let live = only_in("main", "shadow")?;
    let mut rebuilt = only_in("shadow", "main")?;
    let mut found = Vec::new();
    for (key, live_row) in live {
        let difference = match rebuilt.remove(&key) {
            Some(rebuilt_row) => Difference {
                view: table.into(),
                kind: Kind::Differs,
                columns: column_differences(&names, &live_row, &rebuilt_row),
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
    Ok(found)
}

fn column_differences(names: &[String], live: &[Value], rebuilt: &[Value]) -> Vec<ColumnDifference> {
    names
        .iter()
        .zip(live.iter().zip(rebuilt))
        .filter(|(_, (l, r))| l != r)
        .map(|(name, (l, r))| {
            let secret = REDACTED.contains(&name.as_str());
            let shown = |v: &Value| if secret { "<redacted>".into() } else { show(v) };
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
