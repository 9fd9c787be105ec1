//! The SQL of `ledger-replay rebuild` on PostgreSQL. The shadow views are temporary tables
//! named like the live ones (`CREATE TEMP TABLE … (LIKE public.…)`): PostgreSQL looks names up
//! in the session's temporary schema first, so the server's own projection (`rows::project`)
//! writes into the shadow unchanged, while `events` (which has no shadow) is the live log.
//!
//! A check runs in one REPEATABLE READ snapshot beside serving nodes: the log, its head and the
//! views it compares are one moment's. A rebuild first takes `log_head` in EXCLUSIVE mode, which
//! waits for the batch in flight and holds every appender off until the swap commits, so the
//! fold is of the whole log and nothing needs catching up.

use postgres::types::ToSql;

use super::rows::{self, Conn};
use super::{heartbeat, PgOptions};
use crate::store::records::{BResult, BackendError, StoredEvent, ViewOp};

pub use super::heartbeat::LiveNode;

/// One table's rows that only one side has, each value as text (bytea in hex, NULL as `null`).
#[derive(Debug, Default)]
pub struct TableRows {
    /// Every column of the live table, in order.
    pub names: Vec<String>,
    /// The positions in `names` of the primary key's columns.
    pub key: Vec<usize>,
    /// Rows of the live view that the fold does not have as they are.
    pub live_only: Vec<Vec<String>>,
    /// Rows of the fold that the live view does not have as they are.
    pub rebuilt_only: Vec<Vec<String>>,
}

/// A rebuild's transaction on the live database; dropped without [`Rebuild::commit`], it rolls
/// back and the live database is as it was.
pub struct Rebuild {
    conn: Conn,
}

impl Rebuild {
    /// Opens the transaction: a snapshot for a check, the appenders' lock for a rebuild. Then
    /// makes an empty shadow of each of `tables`.
    pub fn begin(options: &PgOptions, check_only: bool, tables: &[&str]) -> BResult<Self> {
        let mut conn = Conn::new(options.connect()?);
        if check_only {
            conn.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")?;
        } else {
            conn.client.batch_execute(
                "BEGIN ISOLATION LEVEL READ COMMITTED; LOCK TABLE log_head IN EXCLUSIVE MODE",
            )?;
        }
        let mut shadow = String::new();
        for table in tables {
            checked_name(table)?;
            shadow.push_str(&format!(
                "CREATE TEMP TABLE {table} (LIKE public.{table} INCLUDING ALL) ON COMMIT DROP;"
            ));
        }
        conn.client.batch_execute(&shadow)?;
        Ok(Self { conn })
    }

    /// The serving nodes (fresh heartbeats); outside any transaction, so no lock is waited for.
    pub fn live_nodes(options: &PgOptions) -> BResult<Vec<LiveNode>> {
        heartbeat::live_nodes(&mut options.connect()?)
    }

    /// The log after `after`, as the server reads it.
    pub fn read_after(&mut self, after: i64, limit: usize) -> BResult<Vec<StoredEvent>> {
        rows::read_after(&mut self.conn, after, limit)
    }

    /// Applies one view operation to the shadow, through the server's projection.
    pub fn project(&mut self, op: &ViewOp) -> BResult<()> {
        rows::project(&mut self.conn, op)
    }

    /// The rows of `table` that differ between the live view and the shadow.
    pub fn differing_rows(&mut self, table: &str) -> BResult<TableRows> {
        checked_name(table)?;
        let columns = self.conn.client.query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )?;
        let key_names: Vec<String> = self
            .conn
            .client
            .query(
                "SELECT a.attname::text FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
                 WHERE i.indrelid = ('public.' || $1)::regclass AND i.indisprimary ORDER BY a.attnum",
                &[&table],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let names: Vec<String> = columns.iter().map(|r| r.get(0)).collect();
        let shown: Vec<String> = columns
            .iter()
            .map(|r| {
                let (name, ty): (String, String) = (r.get(0), r.get(1));
                if ty == "bytea" {
                    format!("encode({name}, 'hex')")
                } else {
                    format!("{name}::text")
                }
            })
            .collect();
        let list = shown.join(", ");
        let mut only_in = |a: &str, b: &str| -> BResult<Vec<Vec<String>>> {
            let sql = format!("SELECT {list} FROM {a}.{table} EXCEPT SELECT {list} FROM {b}.{table}");
            let found = self.conn.client.query(&sql, &[])?;
            Ok(found
                .iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<_, Option<String>>(i).unwrap_or_else(|| "null".into()))
                        .collect()
                })
                .collect())
        };
        let live_only = only_in("public", "pg_temp")?;
        let rebuilt_only = only_in("pg_temp", "public")?;
        let key = names.iter().enumerate().filter(|(_, n)| key_names.contains(n)).map(|(i, _)| i).collect();
        Ok(TableRows { names, key, live_only, rebuilt_only })
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

    /// Replaces every live view of `tables` with its shadow and restores the derived rows: the
    /// checkpoint and the head at the folded `position` and `hash`, the chain anchor (only when
    /// it is gone) at the start of the log. Then commits.
    pub fn swap_and_commit(mut self, tables: &[&str], position: i64, hash: &[u8]) -> BResult<()> {
        let mut sql = String::new();
        for table in tables {
            checked_name(table)?;
            sql.push_str(&format!(
                "DELETE FROM public.{table}; INSERT INTO public.{table} SELECT * FROM pg_temp.{table};"
            ));
        }
        self.conn.client.batch_execute(&sql)?;
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
        self.conn.client.batch_execute(
            "INSERT INTO public.chain_anchor (id, position, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'))
             ON CONFLICT (id) DO NOTHING; COMMIT",
        )?;
        Ok(())
    }
}

impl Drop for Rebuild {
    fn drop(&mut self) {
        // After a commit this is a harmless warning; otherwise it ends the snapshot or undoes
        // a half-done swap.
        let _ = self.conn.client.batch_execute("ROLLBACK");
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
