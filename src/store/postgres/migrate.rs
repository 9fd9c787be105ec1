//! Numbered migrations from `schema/postgres/`, embedded in the binary, tracked in the
//! one-row `ledger_schema` table. Nodes starting together serialise on that row.

use std::time::Duration;

use postgres::error::SqlState;
use postgres::Client;

use crate::store::records::BackendError;

const MIGRATIONS: &[&str] = &[
    include_str!("../../../schema/postgres/0001_event_log.sql"),
    include_str!("../../../schema/postgres/0002_authorization_code.sql"),
    include_str!("../../../schema/postgres/0003_node_heartbeats.sql"),
    include_str!("../../../schema/postgres/0004_archive.sql"),
    include_str!("../../../schema/postgres/0005_archive_snapshots.sql"),
    include_str!("../../../schema/postgres/0006_expiry_indexes.sql"),
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// How often the bootstrap of an empty database is retried after losing a race to create it.
const BOOTSTRAP_ATTEMPTS: u32 = 10;

/// Applies the migrations the database lacks, in one transaction. A database newer than this
/// binary is refused rather than misread.
///
/// Nodes started at the same instant on an empty database race on `CREATE TABLE IF NOT EXISTS`:
/// PostgreSQL checks "not exists" before it inserts into its catalog, so the loser fails with
/// 23505 (a duplicate `pg_type` row) or 42P07. That statement is idempotent, so the loser
/// retries it; the migrations themselves then run under the `ledger_schema` row lock, one
/// node after the other (the next finds the version current and applies nothing).
pub fn migrate(client: &mut Client) -> Result<(), BackendError> {
    bootstrap(client)?;
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

/// Creates the version table and its row when missing, retrying a lost creation race.
fn bootstrap(client: &mut Client) -> Result<(), BackendError> {
    let mut attempt = 0;
    loop {
        let created = client.batch_execute(
            "CREATE TABLE IF NOT EXISTS ledger_schema (
                id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL);
             INSERT INTO ledger_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
        );
        match created {
            Ok(()) => return Ok(()),
            Err(e) if attempt + 1 < BOOTSTRAP_ATTEMPTS && lost_creation_race(&e) => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 * u64::from(attempt)));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The SQLSTATEs of two sessions creating one table at once (and of a serialisation failure,
/// which CockroachDB reports for the same race).
fn lost_creation_race(e: &postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::DUPLICATE_TABLE
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

/// The schema version of the database (0 when it has none): `configtest`'s check.
pub fn version(client: &mut Client) -> Result<i64, BackendError> {
    let exists: bool = client.query_one("SELECT to_regclass('ledger_schema') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client.query_one("SELECT version FROM ledger_schema WHERE id = 1", &[])?.get(0))
}
