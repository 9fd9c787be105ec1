//! The deployment's database, whichever backend it is: its SQLite file or its PostgreSQL
//! database on the shared throwaway cluster. Tests read the log through the library's own
//! `ReadStore` (the reader the server uses), and the few tests that damage or inspect a table on
//! purpose run plain SQL, written once when both dialects accept it.
//!
//! `TOKEN_LEDGER_TEST_DATABASE=postgres` runs every [`Deployment`] of the suite on a fresh
//! PostgreSQL database (CI's second pass); unset, or `sqlite`, keeps the SQLite file.

use std::path::PathBuf;

use token_ledger::store::backend::ReadStore;
use token_ledger::store::postgres::{PgOptions, PgReads};
use token_ledger::store::records::StoredEvent;
use token_ledger::store::sqlite::SqliteReads;

use super::config::ConfigOverrides;
use super::deployment::Deployment;
use super::postgres::on_postgres;

/// The switch that moves the whole suite onto PostgreSQL.
const DATABASE_ENV: &str = "TOKEN_LEDGER_TEST_DATABASE";

/// Whether this run puts every deployment on PostgreSQL.
pub fn postgres_run() -> bool {
    std::env::var(DATABASE_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("postgres"))
}

/// `config` as this run wants it: unchanged on SQLite runs and when a test chose its database
/// itself; on a fresh PostgreSQL database under the switch. When PostgreSQL is missing outside
/// CI the cluster helper says so, and the test runs on SQLite instead (under `CI=true` it fails).
pub fn for_this_run(config: &ConfigOverrides) -> ConfigOverrides {
    if !postgres_run() || config.postgres_url.is_some() || config.sqlite_only {
        return config.clone();
    }
    on_postgres(config.clone()).unwrap_or_else(|| {
        eprintln!("note: {DATABASE_ENV}=postgres, but PostgreSQL is missing here: this test ran on SQLite");
        config.clone()
    })
}

/// Where a deployment's log lives.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    /// A key=value connection string.
    Postgres(String),
}

/// One value of a row read with [`Deployment::sql_rows`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlValue {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl SqlValue {
    pub fn int(&self) -> i64 {
        match self {
            Self::Int(i) => *i,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            other => panic!("not text: {other:?}"),
        }
    }
}

impl Deployment {
    /// This deployment's database.
    pub fn database(&self) -> Database {
        let text = std::fs::read_to_string(self.config_path()).expect("read deployment.toml");
        if text.lines().any(|l| l.trim() == "type = \"postgres\"") {
            Database::Postgres(self.config_url())
        } else {
            Database::Sqlite(self.database_path())
        }
    }

    /// Whether this deployment runs on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        matches!(self.database(), Database::Postgres(_))
    }

    /// What `ledger-replay --db` takes for this deployment: the file or the connection string.
    pub fn db_arg(&self) -> String {
        match self.database() {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => url,
        }
    }

    /// The event log in position order, through the library's reader of the backend.
    pub fn stored_events(&self) -> Vec<StoredEvent> {
        let database = self.database();
        off_the_runtime(move || {
            let reads: Box<dyn ReadStore> = match database {
                Database::Sqlite(path) => Box::new(SqliteReads::new(path)),
                Database::Postgres(url) => {
                    Box::new(PgReads::new(PgOptions::parse(&url, None, 1).expect("a connection string")))
                }
            };
            let (mut events, mut after) = (Vec::new(), 0);
            loop {
                let page = reads.read_after(after, 1000).expect("read the log");
                let Some(last) = page.last() else { return events };
                after = last.position;
                events.extend(page);
            }
        })
    }

    /// Runs statements (no rows back); the database's refusal comes back as its message.
    pub fn sql_execute(&self, sql: &str) -> Result<(), String> {
        let sql = sql.to_owned();
        match self.database() {
            Database::Sqlite(path) => {
                let conn = sqlite(&path);
                conn.execute_batch(&sql).map_err(|e| e.to_string())
            }
            Database::Postgres(url) => off_the_runtime(move || {
                let mut client = postgres_client(&url);
                client.batch_execute(&sql).map_err(|e| format!("{e}: {:?}", e.as_db_error()))
            }),
        }
    }

    /// The rows of a query, each value as an [`SqlValue`].
    pub fn sql_rows(&self, sql: &str) -> Vec<Vec<SqlValue>> {
        let sql = sql.to_owned();
        match self.database() {
            Database::Sqlite(path) => sqlite_rows(&sqlite(&path), &sql),
            Database::Postgres(url) => off_the_runtime(move || postgres_rows(&url, &sql)),
        }
    }

    /// One integer, from a query that returns one row with one column.
    pub fn sql_i64(&self, sql: &str) -> i64 {
        let rows = self.sql_rows(sql);
        assert_eq!(rows.len(), 1, "{sql} returned {} rows", rows.len());
        rows[0][0].int()
    }

    /// Everything the database holds at rest, for the plaintext scans: the SQLite file's bytes,
    /// or on PostgreSQL the text of every row of every table (bytea shown in hex).
    pub fn stored_bytes(&self) -> Vec<u8> {
        match self.database() {
            Database::Sqlite(path) => std::fs::read(path).expect("read the database file"),
            Database::Postgres(url) => off_the_runtime(move || {
                let mut client = postgres_client(&url);
                let tables: Vec<String> = client
                    .query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'", &[])
                    .expect("list the tables")
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                assert!(tables.iter().any(|t| t == "events"), "the scan must cover the event log");
                let mut bytes = Vec::new();
                for table in tables {
                    for row in client.query(&format!("SELECT t::text FROM {table} t"), &[]).expect("rows") {
                        bytes.extend_from_slice(row.get::<_, String>(0).as_bytes());
                        bytes.push(b'\n');
                    }
                }
                bytes
            }),
        }
    }
}

/// The blocking PostgreSQL client runs a runtime of its own, which may not start on an async
/// test's threads: every PostgreSQL call of the harness runs on a thread of its own.
fn off_the_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(f).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn sqlite(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open the ledger");
    conn.busy_timeout(std::time::Duration::from_secs(5)).expect("set a busy timeout");
    conn
}

fn sqlite_rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<SqlValue>> {
    use rusqlite::types::ValueRef;
    let mut statement = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let width = statement.column_count();
    let rows = statement.query_map([], |row| {
        (0..width)
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    ValueRef::Null => SqlValue::Null,
                    ValueRef::Integer(n) => SqlValue::Int(n),
                    ValueRef::Real(f) => SqlValue::Text(f.to_string()),
                    ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => SqlValue::Bytes(b.to_vec()),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    });
    rows.expect("run the query").collect::<Result<_, _>>().expect("read the rows")
}

fn postgres_client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach the test database: {e}"))
}

fn postgres_rows(url: &str, sql: &str) -> Vec<Vec<SqlValue>> {
    use postgres::types::Type;
    let mut client = postgres_client(url);
    let rows = client.query(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    let ty = row.columns()[i].type_().clone();
                    let value = if ty == Type::INT8 {
                        row.get::<_, Option<i64>>(i).map(SqlValue::Int)
                    } else if ty == Type::INT4 {
                        row.get::<_, Option<i32>>(i).map(|n| SqlValue::Int(n.into()))
                    } else if ty == Type::BOOL {
                        row.get::<_, Option<bool>>(i).map(|b| SqlValue::Int(b.into()))
                    } else if ty == Type::BYTEA {
                        row.get::<_, Option<Vec<u8>>>(i).map(SqlValue::Bytes)
                    } else {
                        row.get::<_, Option<String>>(i).map(SqlValue::Text)
                    };
                    value.unwrap_or(SqlValue::Null)
                })
                .collect()
        })
        .collect()
}
