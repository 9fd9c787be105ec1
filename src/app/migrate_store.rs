//! `token-ledger migrate-store --to postgres://…`: how a single-node deployment grows into
//! several nodes. Copies the SQLite log, event by event and unchanged, into an empty PostgreSQL
//! database, folds the views there through the same projection, and verifies the chain there.
//! The keys stay files: the nodes name the SQLite data folder (or a copy) as `key_dir`.

use super::setup::StartError;
use crate::config::{DatabaseKind, Settings};
use crate::store::backend::WriteStore;
use crate::store::log::{self, Tail};
use crate::store::postgres::{PgOptions, PgStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{fold, StoreError};

/// Events copied per read.
const PAGE: usize = 1000;

/// What a migration did.
#[derive(Debug)]
pub struct Migrated {
    pub events: u64,
    pub head: i64,
}

/// Copies the configured SQLite log into the empty PostgreSQL database `to`.
pub fn migrate_store(settings: &Settings, to: &str) -> Result<Migrated, StartError> {
    if settings.database.kind != DatabaseKind::Sqlite {
        return Err(StartError::Database(
            "migrate-store copies a SQLite deployment: type must be \"sqlite\"".into(),
        ));
    }
    let db = settings.database.path.display().to_string();
    let mut from = SqliteStore::open(&settings.database.path).map_err(StoreError::from)?;
    log::verify_since_anchor(&mut from)?
        .map_err(|source| StartError::DamagedLog { source, db: db.clone() })?;
    let options = PgOptions::parse(to, settings.database.password.as_deref(), 2)
        .map_err(|e| StartError::Database(e.to_string()))?;
    let mut target = PgStore::open(options).map_err(StoreError::from)?;
    let start = target.begin().map_err(StoreError::from)?;
    let copied = copy_into(&mut from, &mut target, start);
    let tail = match copied {
        Ok(tail) => tail,
        Err(e) => {
            target.rollback();
            return Err(e);
        }
    };
    target.commit(Some(&tail)).map_err(StoreError::from)?;
    let checked = log::verify_since_anchor(&mut target)?
        .map_err(|source| StartError::DamagedLog { source, db: crate::config::redact_url(to) })?;
    if checked as i64 != tail.position {
        return Err(StartError::Database(format!(
            "the copy verified {checked} events of {}: it is incomplete",
            tail.position
        )));
    }
    Ok(Migrated { events: checked, head: tail.position })
}

/// Appends every source event after the empty target's genesis, folding each into the views.
fn copy_into(from: &mut SqliteStore, target: &mut PgStore, start: Tail) -> Result<Tail, StartError> {
    if start.position != 0 {
        return Err(StartError::Database(format!(
            "the target already holds a log (head at position {}): migrate-store needs an empty database",
            start.position
        )));
    }
    let mut tail = start;
    loop {
        let page = from.read_after(tail.position, PAGE).map_err(StoreError::from)?;
        if page.is_empty() {
            return Ok(tail);
        }
        for e in page {
            target.insert_event(&e).map_err(StoreError::from)?;
            fold::apply(target, &e, &e.decode()?)?;
            tail = Tail { position: e.position, hash: e.hash };
        }
    }
}
