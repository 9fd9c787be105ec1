//! Where events come from: the database (read-only, through the library's `read_after`) or a JSON
//! Lines export. Both yield the same `StoredEvent`s in position order, so every command treats
//! an exported log exactly like the database it came from.

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use token_ledger::config::redact_url;
use token_ledger::store::backend::ReadStore as _;
use token_ledger::store::log::StoredEvent;
use token_ledger::store::postgres::{PgOptions, PgReads};
use token_ledger::store::sqlite::archive;
use token_ledger::store::sqlite::log::for_each_after;
use token_ledger::store::sqlite::open_reader;
use token_ledger::store::steps::ArchiveStep;
use token_ledger::store::StoreError;

use crate::archive::{walk_segments, Plan};
use crate::export::ExportedEvent;
use crate::ReplayError;

/// Where a command reads the log from.
#[derive(Debug, Clone)]
pub enum Location {
    Database(PathBuf),
    Log(PathBuf),
    /// A PostgreSQL connection string (`postgres://…` or `host=… dbname=…`).
    Postgres(String),
}

impl Location {
    /// `--db`: a PostgreSQL connection string when it looks like one, else a SQLite file.
    pub fn of_db(db: PathBuf) -> Self {
        let text = db.to_string_lossy();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") || text.contains("dbname=") {
            Self::Postgres(text.into_owned())
        } else {
            Self::Database(db)
        }
    }
}

/// An opened source of events.
pub enum Source {
    Database {
        path: PathBuf,
        conn: Connection,
        /// The archive folder whose segments come before the live events.
        archive: Option<PathBuf>,
    },
    Log {
        path: PathBuf,
    },
    /// Read through the server's PostgreSQL backend; `shown` is the URL without its password.
    Postgres {
        shown: PathBuf,
        reads: Box<PgReads>,
        /// For the queries that `PgReads` does not offer (`stats`).
        options: PgOptions,
        archive: Option<PathBuf>,
    },
}

/// Events read per PostgreSQL query.
const PAGE: usize = 1000;

/// Whether to go on reading after an event.
pub type Flow = ControlFlow<()>;

impl Source {
    /// Opens a database read-only (it must exist: nothing is created) or checks that a log file
    /// can be read.
    pub fn open(location: &Location) -> Result<Self, ReplayError> {
        match location {
            Location::Database(path) => {
                Ok(Self::Database { conn: open_existing(path)?, path: path.clone(), archive: None })
            }
            Location::Log(path) => {
                File::open(path).map_err(|source| ReplayError::Read { path: path.clone(), source })?;
                Ok(Self::Log { path: path.clone() })
            }
            Location::Postgres(url) => {
                let password = std::env::var("PGPASSWORD").ok();
                let options = PgOptions::parse(url, password.as_deref(), 1)
                    .map_err(|e| ReplayError::Postgres(e.to_string()))?;
                let reads = Box::new(PgReads::new(options.clone()));
                // Fails here, once, when the database cannot be reached.
                reads.head().map_err(StoreError::from)?;
                Ok(Self::Postgres { shown: PathBuf::from(redact_url(url)), reads, options, archive: None })
            }
        }
    }

    /// Opens a database whose archive segments (in `archive`) are read as the start of the log.
    pub fn open_with_archive(location: &Location, archive: Option<PathBuf>) -> Result<Self, ReplayError> {
        let mut source = Self::open(location)?;
        match &mut source {
            Self::Database { archive: dir, .. } | Self::Postgres { archive: dir, .. } => *dir = archive,
            Self::Log { .. } => {}
        }
        Ok(source)
    }

    /// The archive folder, when the source is a database with one.
    pub fn archive_dir(&self) -> Option<&Path> {
        match self {
            Self::Database { archive, .. } | Self::Postgres { archive, .. } => archive.as_deref(),
            Self::Log { .. } => None,
        }
    }

    /// What of the log lives in the archive.
    pub fn archive_plan(&self) -> Result<Plan, ReplayError> {
        Ok(Plan::of(self.archive_steps()?))
    }

    /// The PostgreSQL connection options, when the source is PostgreSQL.
    pub fn postgres(&self) -> Option<&PgOptions> {
        match self {
            Self::Postgres { options, .. } => Some(options),
            Self::Database { .. } | Self::Log { .. } => None,
        }
    }

    /// The database connection, when the source is one.
    pub fn database(&self) -> Option<&Connection> {
        match self {
            Self::Database { conn, .. } => Some(conn),
            Self::Log { .. } | Self::Postgres { .. } => None,
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Database { path, .. } | Self::Log { path } => path,
            Self::Postgres { shown, .. } => shown,
        }
    }

    /// Calls `each` for every event, in the order the source holds them (position order for a
    /// database, line order for a log), until it says stop. Nothing is skipped: a log line with
    /// a position out of place reaches `each`, which is how `verify` finds it.
    pub fn walk(
        &self,
        each: impl FnMut(StoredEvent) -> Result<Flow, ReplayError>,
    ) -> Result<(), ReplayError> {
        self.walk_after(None, each)
    }

    /// Like [`Source::walk`], only the events after position `after` when it is given.
    pub fn walk_after(
        &self,
        after: Option<i64>,
        mut each: impl FnMut(StoredEvent) -> Result<Flow, ReplayError>,
    ) -> Result<(), ReplayError> {
        self.scan_after(after, |event| each(event.clone()))
    }

    /// Like [`Source::walk_after`], but lends each event instead of giving it away: a database's
    /// rows are read into one reused event, so a full scan allocates nothing per row (the
    /// `verify` and `replay` hot path).
    pub fn scan_after(
        &self,
        after: Option<i64>,
        mut each: impl FnMut(&StoredEvent) -> Result<Flow, ReplayError>,
    ) -> Result<(), ReplayError> {
        // A database's archived prefix comes first; the live walk resumes after it (events a
        // removal in progress left behind are read from the segment, not twice).
        let after = match self {
            Self::Log { .. } => after,
            _ => {
                let plan = self.archive_plan()?;
                let from = after.unwrap_or(i64::MIN);
                if walk_segments(self.archive_dir(), &plan, from, &mut each)?.is_break() {
                    return Ok(());
                }
                match plan.segments.last() {
                    Some(last) if last.last_position > from => Some(last.last_position),
                    _ => after,
                }
            }
        };
        match self {
            // `position > i64::MIN` is every row but one at i64::MIN itself, which
            // `has_position_min` lets `verify` report.
            Self::Database { conn, .. } => scan_database(conn, after.unwrap_or(i64::MIN), each),
            Self::Postgres { reads, .. } => {
                let mut position = after.unwrap_or(i64::MIN);
                loop {
                    let page = reads.read_after(position, PAGE).map_err(StoreError::from)?;
                    let Some(last) = page.last().map(|e| e.position) else {
                        return Ok(());
                    };
                    for event in &page {
                        if each(event)?.is_break() {
                            return Ok(());
                        }
                    }
                    position = last;
                }
            }
            Self::Log { path } => {
                let file =
                    File::open(path).map_err(|source| ReplayError::Read { path: path.clone(), source })?;
                for (index, line) in BufReader::new(file).lines().enumerate() {
                    let line = line.map_err(|source| ReplayError::Read { path: path.clone(), source })?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let event = parse_line(path, index as u64 + 1, &line)?;
                    if after.is_none_or(|after| event.position > after) && each(&event)?.is_break() {
                        break;
                    }
                }
                Ok(())
            }
        }
    }

    /// The archiving steps the database recorded (none for an exported log): what accounts for
    /// a live log that does not start at position 1.
    pub fn archive_steps(&self) -> Result<Vec<ArchiveStep>, ReplayError> {
        match self {
            Self::Database { conn, .. } => Ok(archive::steps(conn)?),
            Self::Postgres { reads, .. } => Ok(reads.archive_steps()?),
            Self::Log { .. } => Ok(Vec::new()),
        }
    }

    /// Whether the source is a database (where a missing prefix must be accounted for).
    pub fn is_database(&self) -> bool {
        !matches!(self, Self::Log { .. })
    }

    /// Whether a database holds a row at position i64::MIN, the one row no `position > N`
    /// query returns.
    pub fn has_position_min(&self) -> Result<bool, ReplayError> {
        let Some(conn) = self.database() else {
            return Ok(false);
        };
        let found =
            conn.query_row("SELECT EXISTS(SELECT 1 FROM events WHERE position = ?1)", [i64::MIN], |r| {
                r.get(0)
            })?;
        Ok(found)
    }
}

/// Opens an existing database read-only.
pub fn open_existing(path: &Path) -> Result<Connection, ReplayError> {
    if !path.is_file() {
        return Err(ReplayError::NoDatabase(path.to_owned()));
    }
    Ok(open_reader(path)?)
}

fn parse_line(path: &Path, line: u64, text: &str) -> Result<StoredEvent, ReplayError> {
    let bad = |reason: String| ReplayError::BadLine { path: path.to_owned(), line, reason };
    let exported: ExportedEvent = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    exported.into_stored().map_err(bad)
}

/// Calls `each` for the events of a database after `after`, in position order, through the
/// library's `read_after`. That stops only on an error, so a caller's stop or failure travels as
/// one and is told apart from a real storage failure afterwards.
pub fn walk_database(
    conn: &Connection,
    after: i64,
    mut each: impl FnMut(StoredEvent) -> Result<Flow, ReplayError>,
) -> Result<(), ReplayError> {
    let mut outcome: Result<Flow, ReplayError> = Ok(Flow::Continue(()));
    let read = for_each_after(conn, after, |event| {
        outcome = each(event);
        match &outcome {
            Ok(Flow::Continue(())) => Ok(()),
            _ => Err("stopped by the reader".into()),
        }
    });
    match (read, outcome) {
        (_, Err(e)) => Err(e),
        (Err(_), Ok(Flow::Break(()))) | (Ok(()), Ok(_)) => Ok(()),
        (Err(e), Ok(Flow::Continue(()))) => Err(StoreError::Database(e).into()),
    }
}

/// The columns `scan_database` reads, in `StoredEvent`'s order (the library's `read_after`).
const EVENT_COLUMNS: &str = "SELECT position, event_id, stream, version, event_type, schema_version, payload,
    recorded_at, request_id, actor_client, actor_user, grant_type, peer, prev_hash, hash
 FROM events WHERE position > ?1 ORDER BY position";

/// Calls `each` for the events of a database after `after`, in position order, lending one
/// event whose strings and byte vectors are refilled row after row (their capacity kept), so
/// the scan does not allocate per row. Reads the same columns as the library's `read_after`.
pub fn scan_database(
    conn: &Connection,
    after: i64,
    mut each: impl FnMut(&StoredEvent) -> Result<Flow, ReplayError>,
) -> Result<(), ReplayError> {
    let mut stmt = conn.prepare(EVENT_COLUMNS)?;
    let mut rows = stmt.query([after])?;
    let mut event = empty_event();
    while let Some(row) = rows.next()? {
        refill(row, &mut event)?;
        if each(&event)?.is_break() {
            break;
        }
    }
    Ok(())
}

fn empty_event() -> StoredEvent {
    StoredEvent {
        position: 0,
        event_id: String::new(),
        stream: String::new(),
        version: 0,
        event_type: String::new(),
        schema_version: 0,
        payload: String::new(),
        recorded_at: String::new(),
        meta: Default::default(),
        prev_hash: Vec::new(),
        hash: Vec::new(),
    }
}

/// Reads a row into `e`, reusing its buffers.
fn refill(r: &Row<'_>, e: &mut StoredEvent) -> rusqlite::Result<()> {
    e.position = r.get(0)?;
    text(r, 1, &mut e.event_id)?;
    text(r, 2, &mut e.stream)?;
    e.version = r.get(3)?;
    text(r, 4, &mut e.event_type)?;
    e.schema_version = r.get(5)?;
    text(r, 6, &mut e.payload)?;
    text(r, 7, &mut e.recorded_at)?;
    let m = &mut e.meta;
    for (index, field) in
        [&mut m.request_id, &mut m.client_id, &mut m.username, &mut m.grant_type, &mut m.peer]
            .into_iter()
            .enumerate()
    {
        optional_text(r, 8 + index, field)?;
    }
    blob(r, 13, &mut e.prev_hash)?;
    blob(r, 14, &mut e.hash)
}

/// A column's value as the type `get::<String>` would insist on, with its error.
fn wrong_type(index: usize, value: ValueRef<'_>) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(index, format!("column {index}"), value.data_type())
}

fn text(r: &Row<'_>, index: usize, into: &mut String) -> rusqlite::Result<()> {
    match r.get_ref(index)? {
        ValueRef::Text(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(rusqlite::Error::Utf8Error)?;
            into.clear();
            into.push_str(text);
            Ok(())
        }
        other => Err(wrong_type(index, other)),
    }
}

fn optional_text(r: &Row<'_>, index: usize, into: &mut Option<String>) -> rusqlite::Result<()> {
    if let ValueRef::Null = r.get_ref(index)? {
        *into = None;
        return Ok(());
    }
    text(r, index, into.get_or_insert_with(String::new))
}

fn blob(r: &Row<'_>, index: usize, into: &mut Vec<u8>) -> rusqlite::Result<()> {
    match r.get_ref(index)? {
        ValueRef::Blob(bytes) => {
            into.clear();
            into.extend_from_slice(bytes);
            Ok(())
        }
        other => Err(wrong_type(index, other)),
    }
}

/// Events handed from the reading thread to the checking thread at a time.
const BATCH: usize = 512;

/// Batches in flight between the two threads: enough to ride out a stall on either side.
const IN_FLIGHT: usize = 4;

/// One batch: the events (their buffers reused from batch to batch) and what `prepare` made of
/// each.
type Batch<T> = (Vec<StoredEvent>, Vec<T>);

impl Source {
    /// Like [`Source::scan_after`], on two threads: this one reads the events and runs `prepare`
    /// on each (work that needs the event alone, such as decoding its payload), while a second
    /// thread runs `each` on them in order, with what `prepare` made. On a machine with two free
    /// cores that overlaps reading with checking. `each` saying stop, or failing, stops the
    /// reading too; its error wins over a reading error that followed it.
    pub fn scan_pipelined<T: Send>(
        &self,
        after: Option<i64>,
        prepare: impl Fn(&StoredEvent) -> T,
        each: impl FnMut(&StoredEvent, T) -> Result<Flow, ReplayError> + Send,
    ) -> Result<(), ReplayError> {
        let (full, full_rx) = mpsc::sync_channel::<Batch<T>>(IN_FLIGHT);
        let (empty, empty_rx) = mpsc::channel::<Batch<T>>();
        std::thread::scope(|scope| {
            let checker = scope.spawn(move || check_batches(full_rx, empty, each));
            let mut batch: Batch<T> = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
            let mut filled = 0;
            let read = self.scan_after(after, |event| {
                match batch.0.get_mut(filled) {
                    Some(slot) => copy_event(event, slot),
                    None => batch.0.push(event.clone()),
                }
                batch.1.push(prepare(event));
                filled += 1;
                if filled == BATCH {
                    let next = empty_rx.try_recv().unwrap_or_else(|_| (Vec::new(), Vec::new()));
                    if full.send(std::mem::replace(&mut batch, next)).is_err() {
                        // The checker stopped: its answer is final.
                        return Ok(Flow::Break(()));
                    }
                    filled = 0;
                }
                Ok(Flow::Continue(()))
            });
            batch.0.truncate(filled);
            if filled > 0 {
                let _ = full.send(batch);
            }
            drop(full);
            let checked = checker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            checked.and(read)
        })
    }
}

/// The second thread of [`Source::scan_pipelined`]: runs `each` over the batches in order and
/// sends the emptied batches back for reuse. Returning drops the receiver, which stops the reader.
fn check_batches<T>(
    full: mpsc::Receiver<Batch<T>>,
    empty: mpsc::Sender<Batch<T>>,
    mut each: impl FnMut(&StoredEvent, T) -> Result<Flow, ReplayError>,
) -> Result<(), ReplayError> {
    for (events, mut prepared) in full {
        for (event, made) in events.iter().zip(prepared.drain(..)) {
            if each(event, made)?.is_break() {
                return Ok(());
            }
        }
        let _ = empty.send((events, prepared));
    }
    Ok(())
}

/// Copies `from` into `to`, reusing `to`'s buffers.
fn copy_event(from: &StoredEvent, to: &mut StoredEvent) {
    to.position = from.position;
    to.event_id.clone_from(&from.event_id);
    to.stream.clone_from(&from.stream);
    to.version = from.version;
    to.event_type.clone_from(&from.event_type);
    to.schema_version = from.schema_version;
    to.payload.clone_from(&from.payload);
    to.recorded_at.clone_from(&from.recorded_at);
    let (m, n) = (&mut to.meta, &from.meta);
    m.request_id.clone_from(&n.request_id);
    m.client_id.clone_from(&n.client_id);
    m.username.clone_from(&n.username);
    m.grant_type.clone_from(&n.grant_type);
    m.peer.clone_from(&n.peer);
    to.prev_hash.clone_from(&from.prev_hash);
    to.hash.clone_from(&from.hash);
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A log file of `n` events at positions 1..=n (contents that need not verify).
    fn log_of(n: i64) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        for position in 1..=n {
            let e = StoredEvent {
                position,
                event_id: format!("e{position}"),
                stream: format!("s{}", position % 7),
                payload: "x".repeat(position as usize % 50),
                meta: token_ledger::store::log::RequestMeta {
                    peer: (position % 3 == 0).then(|| format!("peer {position}")),
                    ..Default::default()
                },
                hash: vec![position as u8; 32],
                ..empty_event()
            };
            let line = serde_json::to_string(&ExportedEvent::from(&e)).expect("serialises");
            writeln!(file, "{line}").expect("write the log");
        }
        file
    }

    fn open(file: &tempfile::NamedTempFile) -> Source {
        Source::open(&Location::Log(file.path().to_owned())).expect("open the log")
    }

    #[test]
    fn the_pipelined_scan_lends_every_event_in_order_with_what_prepare_made_of_it() {
        let file = log_of(1_300);
        let source = open(&file);
        let mut plain = Vec::new();
        source
            .scan_after(None, |e| {
                plain.push(e.clone());
                Ok(Flow::Continue(()))
            })
            .unwrap();
        let mut piped = Vec::new();
        source
            .scan_pipelined(
                None,
                |e| e.position * 2,
                |e, made| {
                    assert_eq!(made, e.position * 2);
                    piped.push(e.clone());
                    Ok(Flow::Continue(()))
                },
            )
            .unwrap();
        assert_eq!(piped.len(), 1_300);
        assert_eq!(piped, plain, "the reused buffers never leak one event's fields into another");
    }

    #[test]
    fn the_pipelined_scan_stops_where_each_says_stop_and_returns_its_error() {
        let file = log_of(3_000);
        let source = open(&file);
        let mut seen = 0;
        source
            .scan_pipelined(
                Some(100),
                |_| (),
                |e, ()| {
                    seen = e.position;
                    Ok(if e.position == 1_700 { Flow::Break(()) } else { Flow::Continue(()) })
                },
            )
            .unwrap();
        assert_eq!(seen, 1_700);
        let failed = source.scan_pipelined(
            None,
            |_| (),
            |e, ()| {
                if e.position == 600 {
                    return Err(ReplayError::PartialLog(e.position));
                }
                Ok(Flow::Continue(()))
            },
        );
        assert!(matches!(failed, Err(ReplayError::PartialLog(600))), "{failed:?}");
    }
}
