//! Numbered migrations from `schema/postgres/`, embedded in the binary, tracked in the
//! one-row `ledger_schema` table. Nodes starting together serialise on that row.

use postgres::Client;

use crate::store::records::BackendError;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../schema/postgres/0001_event_log.sql"),
    include_str!("../../../schema/postgres/0002_authorization_code.sql"),
    // 0003 (issue 13) goes here when the branches merge.
    include_str!("../../../schema/postgres/0004_archive.sql"),
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Applies the migrations the database lacks, in one transaction. A database newer than this
/// binary is refused rather than misread.
pub fn migrate(client: &mut Client) -> Result<(), BackendError> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS ledger_schema (
            id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
         INSERT INTO ledger_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
    )?;
    let mut tx = client.transaction()?;
    let found: i64 = tx.query_one("SELECT version FROM ledger_schema WHERE id = 1 FOR UPDATE", &[])?.get(0);
    if found > LATEST {
        return Err(BackendError::SchemaTooNew { found, supported: LATEST });
    }
    for sql in MIGRATIONS.iter().skip(found as usize) {
        tx.batch_execute(sql)?;
    }
    tx.execute("UPDATE ledger_schema SET version = $1 WHERE id = 1", &[&LATEST])?;
    tx.commit()?;
    Ok(())
}

/// The schema version of the database (0 when it has none): `configtest`'s check.
pub fn version(client: &mut Client) -> Result<i64, BackendError> {
    let exists: bool = client.query_one("SELECT to_regclass('ledger_schema') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client.query_one("SELECT version FROM ledger_schema WHERE id = 1", &[])?.get(0))
}
