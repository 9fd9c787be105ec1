//! The SQL of `ledger-replay rebuild` on PostgreSQL. The rebuild folds the log into an
//! in-memory image of the views (`store::image`) through the server's `fold::ops`; this file
//! reads the log and the live views, and writes the image over them (`UNNEST` of one array per
//! column, thousands of rows per statement) in the rebuild's transaction.
//!
//! A check runs in one REPEATABLE READ snapshot beside serving nodes: the log, its head and the
//! views it compares are one moment's. A rebuild first takes `log_head` in EXCLUSIVE mode, which
//! waits for the batch in flight and holds every appender off until the swap commits, so the
//! fold is of the whole log and nothing needs catching up.

use postgres::types::ToSql;

use super::rows::{self, Conn};
use super::{archive, heartbeat, PgOptions};
use crate::store::image::{Cell, Image, Kind, Table, TABLES};
use crate::store::records::{BResult, BackendError, StoredEvent};
use crate::store::steps::{ArchiveStep, SnapshotRecord};

pub use super::heartbeat::LiveNode;

/// A rebuild's transaction on the live database; dropped without [`Rebuild::write_image_and_commit`], it rolls
/// back and the live database is as it was.
pub struct Rebuild {
    conn: Conn,
}

impl Rebuild {
    /// Opens the transaction: a snapshot for a check, the appenders' lock for a rebuild.
    pub fn begin(options: &PgOptions, check_only: bool) -> BResult<Self> {
        let mut conn = Conn::new(options.connect()?);
        if check_only {
            conn.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")?;
        } else {
            conn.client.batch_execute(
                "BEGIN ISOLATION LEVEL READ COMMITTED; LOCK TABLE log_head IN EXCLUSIVE MODE",
            )?;
        }
        Ok(Self { conn })
    }

    /// The serving nodes (fresh heartbeats); outside any transaction, so no lock is waited for.
    pub fn live_nodes(options: &PgOptions) -> BResult<Vec<LiveNode>> {
        heartbeat::live_nodes(&mut options.connect()?)
    }

    /// The archiving steps, oldest first, as of the transaction's snapshot.
    pub fn steps(&mut self) -> BResult<Vec<ArchiveStep>> {
        archive::steps(&mut self.conn)
    }

    /// The last boundary snapshot the archiver recorded.
    pub fn last_snapshot(&mut self) -> BResult<Option<SnapshotRecord>> {
        archive::last_snapshot(&mut self.conn)
    }

    /// Every row of a live view, in the image's column order.
    pub fn live_rows(&mut self, table: &Table) -> BResult<Vec<Vec<Cell>>> {
        checked_name(table.name)?;
        let sql = format!("SELECT {} FROM public.{}", table.column_list(), table.name);
        let found = self.conn.client.query(&sql, &[])?;
        let mut rows = Vec::with_capacity(found.len());
        for r in &found {
            let mut row = Vec::with_capacity(table.columns.len());
            for (i, (_, kind)) in table.columns.iter().enumerate() {
                row.push(match kind {
                    Kind::Int => r.try_get::<_, Option<i64>>(i)?.map_or(Cell::Null, Cell::Int),
                    Kind::Text => r.try_get::<_, Option<String>>(i)?.map_or(Cell::Null, Cell::Text),
                    Kind::Blob => r.try_get::<_, Option<Vec<u8>>>(i)?.map_or(Cell::Null, Cell::Blob),
                });
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// Replaces every live view with the image's rows and restores the derived rows: the
    /// checkpoint and the head at the image's position and hash, the chain anchor (only when it
    /// is gone) at `anchor`. Then commits.
    pub fn write_image_and_commit(mut self, image: &Image, anchor: (i64, &[u8])) -> BResult<()> {
        for (index, table) in TABLES.iter().enumerate() {
            checked_name(table.name)?;
            self.conn.client.batch_execute(&format!("DELETE FROM public.{}", table.name))?;
            let casts: Vec<String> = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (_, kind))| {
                    let ty = match kind {
                        Kind::Int => "int8",
                        Kind::Text => "text",
                        Kind::Blob => "bytea",
                    };
                    format!("${}::{ty}[]", i + 1)
                })
                .collect();
            let sql = format!(
                "INSERT INTO public.{} ({}) SELECT * FROM UNNEST({})",
                table.name,
                table.column_list(),
                casts.join(", ")
            );
            let rows: Vec<&Vec<Cell>> = image.rows(index).values().collect();
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let columns: Vec<Box<dyn ToSql + Sync + '_>> =
                    table.columns.iter().enumerate().map(|(i, (_, kind))| column(chunk, i, *kind)).collect();
                let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(|c| c.as_ref()).collect();
                self.conn.client.execute(&sql, &params)?;
            }
        }
        self.restore_derived(image.position, &image.hash, anchor)?;
        self.conn.client.batch_execute("COMMIT")?;
        Ok(())
    }

    fn restore_derived(&mut self, position: i64, hash: &[u8], anchor: (i64, &[u8])) -> BResult<()> {
        self.conn.client.execute(
            "INSERT INTO public.checkpoints (projection, position) VALUES ('views', $1)
             ON CONFLICT (projection) DO UPDATE SET position = EXCLUDED.position",
            &[&position],
        )?;
        self.conn.client.execute(
            "INSERT INTO public.log_head (id, position, hash) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position, hash = EXCLUDED.hash",
            &[&position, &hash],
        )?;
        self.conn.client.execute(
            "INSERT INTO public.chain_anchor (id, position, hash) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
            &[&anchor.0, &anchor.1],
        )?;
        Ok(())
    }

    /// The log after `after`, as the server reads it.
    pub fn read_after(&mut self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
        rows::read_after(&mut self.conn, after, limit)
    }

    /// The views' checkpoint, `None` when its row is gone.
    pub fn checkpoint(&mut self) -> BResult<Option<i64>> {
        self.one("SELECT position FROM public.checkpoints WHERE projection = 'views'", &[])
    }

    /// Whether the chain anchor's row exists.
    pub fn anchor_present(&mut self) -> BResult<bool> {
        Ok(self.one::<i32>("SELECT id FROM public.chain_anchor WHERE id = 1", &[])?.is_some())
    }

    /// The log head's row (position and hash), `None` when it is gone.
    pub fn head(&mut self) -> BResult<Option<(i64, Vec<u8>)>> {
        let row =
            self.conn.client.query_opt("SELECT position, hash FROM public.log_head WHERE id = 1", &[])?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    fn one<T: for<'a> postgres::types::FromSql<'a>>(
        &mut self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> BResult<Option<T>> {
        Ok(self.conn.client.query_opt(sql, args)?.map(|r| r.get(0)))
    }
}

impl Drop for Rebuild {
    fn drop(&mut self) {
        // After a commit this is a harmless warning; otherwise it ends the snapshot or undoes
        // a half-done swap.
        let _ = self.conn.client.batch_execute("ROLLBACK");
    }
}

/// Rows per INSERT: one array per column, so the statement has as many parameters as columns.
const ROWS_PER_INSERT: usize = 5000;

/// Column `i` of `rows` as one typed array parameter.
fn column<'a>(rows: &[&'a Vec<Cell>], i: usize, kind: Kind) -> Box<dyn ToSql + Sync + 'a> {
    match kind {
        Kind::Int => Box::new(
            rows.iter().map(|r| if let Cell::Int(n) = r[i] { Some(n) } else { None }).collect::<Vec<_>>(),
        ),
        Kind::Text => Box::new(
            rows.iter()
                .map(|r| if let Cell::Text(t) = &r[i] { Some(t.as_str()) } else { None })
                .collect::<Vec<_>>(),
        ),
        Kind::Blob => Box::new(
            rows.iter()
                .map(|r| if let Cell::Blob(b) = &r[i] { Some(b.as_slice()) } else { None })
                .collect::<Vec<_>>(),
        ),
    }
}

/// Table names are spliced into SQL: only the fixed lowercase names of the views pass.
fn checked_name(table: &str) -> BResult<()> {
    if !table.is_empty() && table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        Ok(())
    } else {
        Err(BackendError::Corrupt(format!("{table:?} is not a view table")))
    }
}
