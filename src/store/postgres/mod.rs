//! The PostgreSQL backend: several nodes on one database. Appenders serialise on the one-row
//! `log_head` table (`SELECT … FOR UPDATE` at the start of each group-commit transaction, held
//! through COMMIT), so positions are gap-free, the hash chain is one chain, and a reader never
//! passes a late commit. No advisory locks and no LISTEN/NOTIFY: a lock row and polling work on
//! CockroachDB and YugabyteDB too. Its SQL lives in this folder and `schema/postgres/`.
//!
//! The client is the synchronous `postgres` crate: the writer is a dedicated thread and the
//! readers run on blocking threads, so an async pool would add a runtime hop and nothing else.

pub mod archive;
pub mod authz;
pub mod heartbeat;
pub mod migrate;
pub mod readers;
pub mod rebuild;
pub mod rows;
pub mod stats;
pub mod store;

use std::fmt;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

pub use readers::PgReads;
pub use store::PgStore;

use crate::store::records::BackendError;

/// Where and how to connect. The password never appears in `Debug`.
#[derive(Clone)]
pub struct PgOptions {
    config: Config,
    /// Most reader connections kept open.
    pub pool_size: usize,
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgOptions")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("user", &self.config.get_user())
            .field("dbname", &self.config.get_dbname())
            .field("password", &self.config.get_password().map(|_| "<hidden>"))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// A connection string that does not parse; the message never repeats the string (it may hold
/// a password).
#[derive(Debug, thiserror::Error)]
#[error("the PostgreSQL connection string is not valid: {0}")]
pub struct BadUrl(String);

impl PgOptions {
    /// Parses a `postgres://` URL or a `key=value` string (a `host` starting with `/` is a Unix
    /// socket folder). `password`, when given, wins over one in the string.
    pub fn parse(url: &str, password: Option<&str>, pool_size: usize) -> Result<Self, BadUrl> {
        let mut config: Config = url.parse().map_err(|e: postgres::Error| BadUrl(e.to_string()))?;
        if let Some(p) = password {
            config.password(p);
        } else if config.get_password().is_none() {
            if let Ok(p) = std::env::var("PGPASSWORD") {
                config.password(p);
            }
        }
        if config.get_user().is_none() {
            let user =
                std::env::var("PGUSER").or_else(|_| std::env::var("USER")).unwrap_or("postgres".into());
            config.user(&user);
        }
        config.connect_timeout(Duration::from_secs(5));
        config.application_name("token-ledger");
        Ok(Self { config, pool_size: pool_size.max(1) })
    }

    /// Opens one connection.
    pub fn connect(&self) -> Result<Client, BackendError> {
        self.config.connect(NoTls).map_err(BackendError::from)
    }
}

impl From<postgres::Error> for BackendError {
    /// One mapper, by SQLSTATE, never by message text.
    fn from(e: postgres::Error) -> Self {
        let Some(code) = e.code().cloned() else {
            // No SQLSTATE: the connection itself failed (refused, closed, timed out).
            use std::error::Error as _;
            let io = e.source().is_none_or(|s| s.is::<std::io::Error>());
            return if e.is_closed() || io {
                Self::Unavailable(Box::new(e))
            } else {
                Self::Other(Box::new(e))
            };
        };
        if code == SqlState::T_R_SERIALIZATION_FAILURE || code == SqlState::T_R_DEADLOCK_DETECTED {
            return Self::Retry(Box::new(e));
        }
        if code == SqlState::UNIQUE_VIOLATION {
            return Self::Conflict(Box::new(e));
        }
        let class = &code.code()[..2];
        // 08 connection exception, 53 insufficient resources, 57 operator intervention
        // (shutdown, crash recovery), 25P03 idle-in-transaction timeout.
        if matches!(class, "08" | "53" | "57") || code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT {
            return Self::Unavailable(Box::new(e));
        }
        Self::Other(Box::new(e))
    }
}
