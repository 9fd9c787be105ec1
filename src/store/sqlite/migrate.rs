//! Numbered migrations from `schema/`, embedded in the binary, tracked in `PRAGMA user_version`.

use rusqlite::Connection;

use crate::store::records::BackendError as StoreError;

/// The migrations in order; the database's `user_version` is how many have been applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../schema/sqlite/0001_event_log.sql"),
    include_str!("../../../schema/sqlite/0002_token_generators.sql"),
    include_str!("../../../schema/sqlite/0003_chain_anchor.sql"),
    include_str!("../../../schema/sqlite/0004_authorization_code.sql"),
    include_str!("../../../schema/sqlite/0005_archive.sql"),
    include_str!("../../../schema/sqlite/0006_archive_snapshots.sql"),
    include_str!("../../../schema/sqlite/0007_expiry_indexes.sql"),
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies the migrations the database lacks, each in its own transaction. A database newer
/// than this binary is refused rather than misread.
pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > LATEST {
        return Err(StoreError::SchemaTooNew { found, supported: LATEST });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        conn.execute_batch(&format!("BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"))
            .inspect_err(|_| {
                let _ = conn.execute_batch("ROLLBACK");
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_a_newer_database_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1).unwrap();
        assert!(matches!(migrate(&conn), Err(StoreError::SchemaTooNew { .. })));
    }

    #[test]
    fn the_log_refuses_update_and_delete() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn.execute(
            "INSERT INTO events (position, event_id, stream, version, event_type, schema_version,
             payload, recorded_at, prev_hash, hash) VALUES (1, 'e', 's', 1, 't', 1, '{}', 'now', x'00', x'00')",
            [],
        )
        .unwrap();
        assert!(conn.execute("UPDATE events SET payload = '{}'", []).is_err());
        assert!(conn.execute("DELETE FROM events", []).is_err());
    }
}
