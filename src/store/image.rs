//! The views as one in-memory image: one ordered map per view table, rows as plain cells keyed by
//! their primary key, plus the position and hash of the last event folded. Events reach it
//! through the same `fold::ops` as the live views (no second copy of the rules); this file only
//! does what each backend's SQL does with a `ViewOp`, on maps.
//!
//! `ledger-replay rebuild` folds into an image at memory speed and writes it in bulk; the
//! archiver (issue 9) keeps an image of the state at each archiving step's boundary, written as
//! a snapshot file ([`Image::write_to`]), so the views can be rebuilt after the prefix is gone.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};

use super::fold;
use super::records::{StoredEvent, TokenRow, ViewOp, GENESIS};
use super::StoreError;

/// One value of a view row, as the databases store it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
}

impl Cell {
    /// The value as text, as a difference report shows it: blobs (digests) in hex.
    pub fn shown(&self) -> String {
        match self {
            Cell::Null => "null".into(),
            Cell::Int(i) => i.to_string(),
            Cell::Text(t) => t.clone(),
            Cell::Blob(b) => hex::encode(b),
        }
    }

    fn text(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }

    fn opt_text(s: Option<&str>) -> Self {
        s.map_or(Cell::Null, Cell::text)
    }
}

/// The type of a view column (every view column is one of these on both backends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Blob,
}

/// A view table: its name and columns, primary-key columns first.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// How many leading columns form the primary key.
    pub key: usize,
}

impl Table {
    /// The column names, comma-separated, in the image's order.
    pub fn column_list(&self) -> String {
        self.columns.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }
}

use Kind::{Blob as B, Int as I, Text as T};

/// Every table the projection writes, in the order `rebuild` reports them.
pub const TABLES: [Table; 7] = [
    Table {
        name: "clients",
        columns: &[
            ("client_id", T),
            ("client_name", T),
            ("secret_digest", B),
            ("grant_types", T),
            ("access_token_type", T),
            ("oauth", T),
        ],
        key: 1,
    },
    Table { name: "users", columns: &[("username_key", T), ("username", T), ("password_hash", T)], key: 1 },
    Table {
        name: "active_tokens",
        columns: &[
            ("token_id", T),
            ("family_id", T),
            ("stream", T),
            ("client_id", T),
            ("username", T),
            ("scopes", T),
            ("grant_type", T),
            ("access_digest", B),
            ("issued_at", I),
            ("expires_at", I),
            ("sealed_access", T),
            ("refresh_digest", B),
            ("refresh_issued_at", I),
            ("refresh_expires_at", I),
            ("sealed_refresh", T),
        ],
        key: 1,
    },
    Table {
        name: "rotated_refresh_tokens",
        columns: &[
            ("refresh_digest", B),
            ("family_id", T),
            ("client_id", T),
            ("stream", T),
            ("rotated_at", I),
        ],
        key: 1,
    },
    Table {
        name: "authorization_codes",
        columns: &[
            ("code_digest", B),
            ("client_id", T),
            ("issued", T),
            ("status", T),
            ("family_id", T),
            ("expires_at", I),
        ],
        key: 1,
    },
    Table {
        name: "login_sessions",
        columns: &[("session_digest", B), ("username", T), ("auth_time", I), ("expires_at", I)],
        key: 1,
    },
    Table { name: "consents", columns: &[("username_key", T), ("client_id", T), ("scopes", T)], key: 2 },
];

const CLIENTS: usize = 0;
const USERS: usize = 1;
const TOKENS: usize = 2;
const ROTATED: usize = 3;
const CODES: usize = 4;
const SESSIONS: usize = 5;
const CONSENTS: usize = 6;

/// Columns of `active_tokens` the fold looks at.
const T_FAMILY: usize = 1;
const T_STREAM: usize = 2;
const T_CLIENT: usize = 3;
const T_ACCESS: usize = 7;
const T_REFRESH: usize = 11;
const T_EXPIRES: usize = 9;
const T_REFRESH_EXPIRES: usize = 13;
/// The expiry (or rotation) column of the rotated, codes and sessions tables.
const ROTATED_AT: usize = 4;
const CODE_EXPIRES: usize = 5;
const SESSION_EXPIRES: usize = 3;
/// `client_id` of rotated refresh tokens, codes and consents.
const CLIENT_OF: [(usize, usize); 3] = [(ROTATED, 2), (CODES, 1), (CONSENTS, 1)];

/// A row's primary key.
pub type Key = Vec<Cell>;
/// One table of the image: rows by key, each row every column in [`Table::columns`] order.
pub type Rows = BTreeMap<Key, Vec<Cell>>;

/// The views folded to `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The last event folded (0: none).
    pub position: i64,
    /// Its hash (the genesis hash for none): where the log continues.
    pub hash: Vec<u8>,
    tables: [Rows; 7],
    /// The UNIQUE columns of `active_tokens` besides its key: stream, access and refresh digest.
    unique: [HashSet<Cell>; 3],
}

impl Default for Image {
    fn default() -> Self {
        Self::new()
    }
}

/// A view operation the databases would refuse (a UNIQUE constraint), as they would.
fn conflict(what: String) -> StoreError {
    StoreError::Conflict(what.into())
}

impl Image {
    /// The views of the empty log.
    pub fn new() -> Self {
        Self { position: 0, hash: GENESIS.to_vec(), tables: Default::default(), unique: Default::default() }
    }

    /// The rows of table `index` of [`TABLES`].
    pub fn rows(&self, index: usize) -> &Rows {
        &self.tables[index]
    }

    /// How many rows the image holds in all.
    pub fn row_count(&self) -> usize {
        self.tables.iter().map(BTreeMap::len).sum()
    }

    /// Folds one event: decodes it (upcasting older versions) and applies its view operations.
    pub fn fold(&mut self, stored: &StoredEvent) -> Result<(), StoreError> {
        let event = stored.decode()?;
        for op in fold::ops(stored, &event) {
            self.apply(&op)?;
        }
        self.position = stored.position;
        self.hash.clone_from(&stored.hash);
        Ok(())
    }

    /// Applies one view operation as both backends' SQL does (`sqlite::projection::apply`,
    /// `postgres::rows::project`).
    pub fn apply(&mut self, op: &ViewOp) -> Result<(), StoreError> {
        match op {
            ViewOp::PutClient(c) => {
                let row = vec![
                    Cell::text(&c.client_id),
                    Cell::text(&c.client_name),
                    Cell::Blob(c.secret_digest.to_vec()),
                    Cell::text(&c.grant_types),
                    Cell::opt_text(c.access_token_type.as_deref()),
                    Cell::text(&c.oauth),
                ];
                self.put(CLIENTS, row);
            }
            ViewOp::DeleteClient { client_id } => {
                let id = Cell::text(client_id);
                self.tables[CLIENTS].remove(std::slice::from_ref(&id));
                for (table, column) in CLIENT_OF {
                    self.tables[table].retain(|_, row| row[column] != id);
                }
            }
            ViewOp::PutUser { key, user } => {
                let row = vec![Cell::text(key), Cell::text(&user.username), Cell::text(&user.password_hash)];
                self.put(USERS, row);
            }
            ViewOp::SetPassword { key, password_hash } => {
                if let Some(row) = self.tables[USERS].get_mut(&vec![Cell::text(key)]) {
                    row[2] = Cell::text(password_hash);
                }
            }
            ViewOp::InsertToken(t) => self.insert_token(t)?,
            ViewOp::RotateRefresh { token_id, rotated_at } => {
                let key = vec![Cell::Text(token_id.to_string())];
                if let Some(t) = self.tables[TOKENS].get(&key) {
                    if t[T_REFRESH] != Cell::Null {
                        let row = vec![
                            t[T_REFRESH].clone(),
                            t[T_FAMILY].clone(),
                            t[T_CLIENT].clone(),
                            t[T_STREAM].clone(),
                            Cell::Int(*rotated_at),
                        ];
                        self.put(ROTATED, row);
                    }
                }
            }
            ViewOp::DeleteToken { token_id } => self.delete_token(&vec![Cell::Text(token_id.to_string())]),
            ViewOp::PruneExpired { expired_before, rotated_before } => {
                let before = |cell: &Cell, cutoff: i64| matches!(cell, Cell::Int(t) if *t < cutoff);
                // As SQL's `expires_at < ?1 AND COALESCE(refresh_expires_at, 0) < ?1`.
                let gone: Vec<Vec<Cell>> = self.tables[TOKENS]
                    .iter()
                    .filter(|(_, r)| {
                        before(&r[T_EXPIRES], *expired_before)
                            && (r[T_REFRESH_EXPIRES] == Cell::Null
                                || before(&r[T_REFRESH_EXPIRES], *expired_before))
                    })
                    .map(|(key, _)| key.clone())
                    .collect();
                gone.iter().for_each(|key| self.delete_token(key));
                self.tables[ROTATED].retain(|_, r| !before(&r[ROTATED_AT], *rotated_before));
                self.tables[CODES].retain(|_, r| !before(&r[CODE_EXPIRES], *expired_before));
                self.tables[SESSIONS].retain(|_, r| !before(&r[SESSION_EXPIRES], *expired_before));
            }
            ViewOp::PutCode(c) => {
                let row = vec![
                    Cell::Blob(c.code_digest.to_vec()),
                    Cell::text(&c.client_id),
                    Cell::text(&c.issued),
                    Cell::text(&c.status),
                    c.family_id.map_or(Cell::Null, |f| Cell::Text(f.to_string())),
                    Cell::Int(c.expires_at),
                ];
                self.put(CODES, row);
            }
            ViewOp::RedeemCode { code_digest, family_id } => {
                if let Some(row) = self.tables[CODES].get_mut(&vec![Cell::Blob(code_digest.to_vec())]) {
                    row[3] = Cell::text("redeemed");
                    row[4] = Cell::Text(family_id.to_string());
                }
            }
            ViewOp::BurnCode { code_digest } => {
                if let Some(row) = self.tables[CODES].get_mut(&vec![Cell::Blob(code_digest.to_vec())]) {
                    row[3] = Cell::text("burned");
                }
            }
            ViewOp::PutSession(s) => {
                let row = vec![
                    Cell::Blob(s.session_digest.to_vec()),
                    Cell::text(&s.username),
                    Cell::Int(s.auth_time),
                    Cell::Int(s.expires_at),
                ];
                self.put(SESSIONS, row);
            }
            ViewOp::DeleteSession { session_digest } => {
                self.tables[SESSIONS].remove(&vec![Cell::Blob(session_digest.to_vec())]);
            }
            ViewOp::PutConsent(c) => {
                let row = vec![Cell::text(&c.username_key), Cell::text(&c.client_id), Cell::text(&c.scopes)];
                self.put(CONSENTS, row);
            }
            ViewOp::DeleteConsent { username_key, client_id } => {
                self.tables[CONSENTS].remove(&vec![Cell::text(username_key), Cell::text(client_id)]);
            }
        }
        Ok(())
    }

    /// Inserts or replaces a row by its key.
    fn put(&mut self, table: usize, row: Vec<Cell>) {
        let key = row[..TABLES[table].key].to_vec();
        self.tables[table].insert(key, row);
    }

    /// A plain INSERT: every UNIQUE column of `active_tokens` refuses a second row.
    /// Removes a token row and frees its UNIQUE values.
    fn delete_token(&mut self, key: &Vec<Cell>) {
        if let Some(row) = self.tables[TOKENS].remove(key) {
            for (set, column) in [(0, T_STREAM), (1, T_ACCESS), (2, T_REFRESH)] {
                self.unique[set].remove(&row[column]);
            }
        }
    }

    fn insert_token(&mut self, t: &TokenRow) -> Result<(), StoreError> {
        let r = t.refresh.as_ref();
        let row = vec![
            Cell::Text(t.token_id.to_string()),
            Cell::Text(t.family_id.to_string()),
            Cell::text(&t.stream),
            Cell::text(&t.client_id),
            Cell::opt_text(t.username.as_deref()),
            Cell::text(&t.scopes),
            Cell::text(&t.grant_type),
            Cell::Blob(t.access_digest.to_vec()),
            Cell::Int(t.issued_at),
            Cell::Int(t.expires_at),
            Cell::opt_text(t.sealed_access.as_deref()),
            r.map_or(Cell::Null, |r| Cell::Blob(r.digest.to_vec())),
            r.map_or(Cell::Null, |r| Cell::Int(r.issued_at)),
            r.map_or(Cell::Null, |r| Cell::Int(r.expires_at)),
            r.map_or(Cell::Null, |r| Cell::text(&r.sealed)),
        ];
        let key = vec![row[0].clone()];
        if self.tables[TOKENS].contains_key(&key) {
            return Err(conflict(format!("active_tokens already holds token {}", t.token_id)));
        }
        for (set, column, name) in
            [(0, T_STREAM, "stream"), (1, T_ACCESS, "access_digest"), (2, T_REFRESH, "refresh_digest")]
        {
            if row[column] != Cell::Null && self.unique[set].contains(&row[column]) {
                return Err(conflict(format!("active_tokens already holds {name} {}", row[column].shown())));
            }
        }
        for (set, column) in [(0, T_STREAM), (1, T_ACCESS), (2, T_REFRESH)] {
            if row[column] != Cell::Null {
                self.unique[set].insert(row[column].clone());
            }
        }
        if r.is_some() {
            // A refresh token carried over to the new token is live again, not rotated.
            self.tables[ROTATED].remove(std::slice::from_ref(&row[T_REFRESH]));
        }
        self.tables[TOKENS].insert(key, row);
        Ok(())
    }

    /// An image of rows read back (a snapshot, or live views for a test), each checked against
    /// its table's columns.
    pub fn from_tables(position: i64, hash: Vec<u8>, tables: [Vec<Vec<Cell>>; 7]) -> Result<Self, String> {
        let mut image = Self { position, hash, ..Self::new() };
        for (index, rows) in tables.into_iter().enumerate() {
            let table = &TABLES[index];
            for row in rows {
                if row.len() != table.columns.len() {
                    return Err(format!(
                        "a row of {} has {} columns, not {}",
                        table.name,
                        row.len(),
                        table.columns.len()
                    ));
                }
                for (cell, (name, kind)) in row.iter().zip(table.columns) {
                    let fits = matches!(
                        (cell, kind),
                        (Cell::Null, _) | (Cell::Int(_), I) | (Cell::Text(_), T) | (Cell::Blob(_), B)
                    );
                    if !fits {
                        return Err(format!("{}.{name} holds {cell:?}, not {kind:?}", table.name));
                    }
                }
                if index == TOKENS {
                    for (set, column) in [(0, T_STREAM), (1, T_ACCESS), (2, T_REFRESH)] {
                        if row[column] != Cell::Null {
                            image.unique[set].insert(row[column].clone());
                        }
                    }
                }
                image.put(index, row);
            }
        }
        Ok(image)
    }

    /// Writes the image in the snapshot format: a format line, the position and hash, then each
    /// table's name, row count and rows, every cell tagged (0 null, 1 integer, 2 text, 3 blob)
    /// with lengths as 4-byte and integers as 8-byte big-endian numbers.
    pub fn write_to(&self, out: &mut dyn Write) -> std::io::Result<()> {
        out.write_all(SNAPSHOT_FORMAT.as_bytes())?;
        out.write_all(&self.position.to_be_bytes())?;
        write_bytes(out, &self.hash)?;
        for (table, rows) in TABLES.iter().zip(&self.tables) {
            write_bytes(out, table.name.as_bytes())?;
            out.write_all(&(rows.len() as u64).to_be_bytes())?;
            for row in rows.values() {
                for cell in row {
                    match cell {
                        Cell::Null => out.write_all(&[0])?,
                        Cell::Int(i) => {
                            out.write_all(&[1])?;
                            out.write_all(&i.to_be_bytes())?;
                        }
                        Cell::Text(t) => {
                            out.write_all(&[2])?;
                            write_bytes(out, t.as_bytes())?;
                        }
                        Cell::Blob(b) => {
                            out.write_all(&[3])?;
                            write_bytes(out, b)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads an image written by [`Image::write_to`]; a reason when it is not one.
    pub fn read_from(input: &mut dyn Read) -> Result<Self, String> {
        let io = |e: std::io::Error| format!("not a whole image: {e}");
        let mut format = vec![0; SNAPSHOT_FORMAT.len()];
        input.read_exact(&mut format).map_err(io)?;
        if format != SNAPSHOT_FORMAT.as_bytes() {
            return Err(format!("not a {}", SNAPSHOT_FORMAT.trim_end()));
        }
        let position = i64::from_be_bytes(read_array(input).map_err(io)?);
        let hash = read_bytes(input).map_err(io)?;
        let mut tables: [Vec<Vec<Cell>>; 7] = Default::default();
        for (table, rows) in TABLES.iter().zip(tables.iter_mut()) {
            let name = read_bytes(input).map_err(io)?;
            if name != table.name.as_bytes() {
                return Err(format!(
                    "expected table {}, found {:?}",
                    table.name,
                    String::from_utf8_lossy(&name)
                ));
            }
            let count = u64::from_be_bytes(read_array(input).map_err(io)?);
            for _ in 0..count {
                let mut row = Vec::with_capacity(table.columns.len());
                for _ in table.columns {
                    let [tag] = read_array(input).map_err(io)?;
                    row.push(match tag {
                        0 => Cell::Null,
                        1 => Cell::Int(i64::from_be_bytes(read_array(input).map_err(io)?)),
                        2 => Cell::Text(
                            String::from_utf8(read_bytes(input).map_err(io)?)
                                .map_err(|_| format!("a text of {} is not UTF-8", table.name))?,
                        ),
                        3 => Cell::Blob(read_bytes(input).map_err(io)?),
                        other => return Err(format!("unknown cell tag {other} in {}", table.name)),
                    });
                }
                rows.push(row);
            }
        }
        let mut rest = [0u8; 1];
        if input.read(&mut rest).map_err(io)? != 0 {
            return Err("trailing bytes after the last table".into());
        }
        Self::from_tables(position, hash, tables)
    }
}

/// The first line of a snapshot.
pub const SNAPSHOT_FORMAT: &str = "token-ledger-views-image/1\n";

fn write_bytes(out: &mut dyn Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a value longer than 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

fn read_array<const N: usize>(input: &mut dyn Read) -> std::io::Result<[u8; N]> {
    let mut buf = [0; N];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

fn read_bytes(input: &mut dyn Read) -> std::io::Result<Vec<u8>> {
    let len = u32::from_be_bytes(read_array(input)?) as usize;
    let mut buf = Vec::new();
    input.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rusqlite::types::ValueRef;
    use rusqlite::Connection;
    use uuid::Uuid;

    use super::*;
    use crate::store::records::{ClientRow, CodeRow, ConsentRow, RefreshRow, SessionRow, UserRow};

    fn pick<'a>(rng: &mut StdRng, names: &'a [&'a str]) -> &'a str {
        names[rng.gen_range(0..names.len())]
    }

    fn digest(rng: &mut StdRng, pool: u8) -> [u8; 32] {
        [rng.gen_range(0..pool); 32]
    }

    fn uuid(rng: &mut StdRng, pool: u128) -> Uuid {
        Uuid::from_u128(rng.gen_range(1..=pool))
    }

    /// A random view operation over small pools of keys, so that rows collide, get replaced,
    /// rotated, carried over and deleted, and inserts meet every UNIQUE constraint.
    fn random_op(rng: &mut StdRng, serial: u64) -> ViewOp {
        const CLIENTS: &[&str] = &["c0", "c1", "c2"];
        const USERS: &[&str] = &["alice", "bob", "carol"];
        const STREAMS: &[&str] = &["s0", "s1", "s2", "s3", "s4"];
        let client_id = pick(rng, CLIENTS).to_owned();
        match rng.gen_range(0..17) {
            0 => ViewOp::PutClient(ClientRow {
                client_id,
                client_name: format!("name {serial}"),
                secret_digest: digest(rng, 4),
                grant_types: "client_credentials".into(),
                access_token_type: rng.gen_bool(0.5).then(|| "jwt".to_owned()),
                oauth: "{}".into(),
            }),
            1 => ViewOp::DeleteClient { client_id },
            2 => ViewOp::PutUser {
                key: pick(rng, USERS).into(),
                user: UserRow { username: format!("User{serial}"), password_hash: format!("h{serial}") },
            },
            3 => ViewOp::SetPassword { key: pick(rng, USERS).into(), password_hash: format!("p{serial}") },
            4..=6 => ViewOp::InsertToken(TokenRow {
                token_id: uuid(rng, 12),
                family_id: uuid(rng, 4),
                stream: pick(rng, STREAMS).into(),
                client_id,
                username: rng.gen_bool(0.5).then(|| pick(rng, USERS).to_owned()),
                scopes: "a b".into(),
                grant_type: "password".into(),
                access_digest: digest(rng, 40),
                issued_at: serial as i64,
                expires_at: serial as i64 + 100,
                sealed_access: rng.gen_bool(0.5).then(|| format!("sealed {serial}")),
                refresh: rng.gen_bool(0.6).then(|| RefreshRow {
                    digest: digest(rng, 8),
                    issued_at: serial as i64,
                    expires_at: serial as i64 + 1000,
                    sealed: format!("r{serial}"),
                }),
            }),
            7 | 8 => ViewOp::RotateRefresh { token_id: uuid(rng, 12), rotated_at: serial as i64 },
            9 | 10 => ViewOp::DeleteToken { token_id: uuid(rng, 12) },
            11 => ViewOp::PutCode(CodeRow {
                code_digest: digest(rng, 5),
                client_id,
                issued: format!("{{\"n\":{serial}}}"),
                status: "active".into(),
                family_id: rng.gen_bool(0.3).then(|| uuid(rng, 4)),
                expires_at: serial as i64,
            }),
            12 => {
                if rng.gen_bool(0.5) {
                    ViewOp::RedeemCode { code_digest: digest(rng, 5), family_id: uuid(rng, 4) }
                } else {
                    ViewOp::BurnCode { code_digest: digest(rng, 5) }
                }
            }
            13 => ViewOp::PutSession(SessionRow {
                session_digest: digest(rng, 4),
                username: pick(rng, USERS).into(),
                auth_time: serial as i64,
                expires_at: serial as i64 + 5,
            }),
            14 => ViewOp::DeleteSession { session_digest: digest(rng, 4) },
            16 => ViewOp::PruneExpired {
                expired_before: serial as i64 - rng.gen_range(0..300),
                rotated_before: serial as i64 - rng.gen_range(0..300),
            },
            _ => {
                if rng.gen_bool(0.6) {
                    ViewOp::PutConsent(ConsentRow {
                        username_key: pick(rng, USERS).into(),
                        client_id,
                        scopes: format!("s{serial}"),
                    })
                } else {
                    ViewOp::DeleteConsent { username_key: pick(rng, USERS).into(), client_id }
                }
            }
        }
    }

    fn sql_tables(conn: &Connection) -> [Vec<Vec<Cell>>; 7] {
        let mut tables: [Vec<Vec<Cell>>; 7] = Default::default();
        for (table, rows) in TABLES.iter().zip(tables.iter_mut()) {
            let mut stmt =
                conn.prepare(&format!("SELECT {} FROM {}", table.column_list(), table.name)).unwrap();
            let mut found = stmt.query([]).unwrap();
            while let Some(r) = found.next().unwrap() {
                let row = (0..table.columns.len())
                    .map(|i| match r.get_ref(i).unwrap() {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(n) => Cell::Int(n),
                        ValueRef::Text(t) => Cell::Text(String::from_utf8(t.to_vec()).unwrap()),
                        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
                        ValueRef::Real(f) => panic!("a real {f} in {}", table.name),
                    })
                    .collect();
                rows.push(row);
            }
        }
        tables
    }

    #[test]
    fn the_image_applies_every_view_operation_exactly_as_the_sqlite_projection_does() {
        let mut rows_left = 0;
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            let conn = Connection::open_in_memory().unwrap();
            crate::store::sqlite::migrate::migrate(&conn).unwrap();
            let mut image = Image::new();
            for serial in 0..400 {
                let op = random_op(&mut rng, serial);
                let by_sql = crate::store::sqlite::projection::apply(&conn, &op);
                let by_image = image.apply(&op);
                assert_eq!(
                    by_sql.is_ok(),
                    by_image.is_ok(),
                    "seed {seed}, op {serial}: {op:?}: {by_image:?}"
                );
            }
            let from_sql = Image::from_tables(image.position, image.hash.clone(), sql_tables(&conn)).unwrap();
            assert_eq!(image, from_sql, "seed {seed}");
            rows_left += image.row_count();
        }
        assert!(rows_left > 100, "the pools leave rows behind to compare: {rows_left}");
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_image_and_a_damaged_one_is_refused() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut image = Image::new();
        for serial in 0..300 {
            let _ = image.apply(&random_op(&mut rng, serial));
        }
        image.position = 300;
        image.hash = vec![7; 32];
        let mut bytes = Vec::new();
        image.write_to(&mut bytes).unwrap();
        assert_eq!(Image::read_from(&mut bytes.as_slice()).unwrap(), image);
        let cut = &bytes[..bytes.len() - 3];
        assert!(Image::read_from(&mut &cut[..]).unwrap_err().contains("not a whole image"));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Image::read_from(&mut longer.as_slice()).unwrap_err().contains("trailing"));
    }
}
