//! What start-up needs before serving, shared with the CLI: the data folder, the server lock,
//! the ledger with its views caught up, and the super admin.

use std::sync::Arc;

use crate::config::{DatabaseKind, Settings};
use crate::crypto::{self, Sealer};
use crate::domain::types::Username;
use crate::store::backend::{ReadStore, WriteStore};
use crate::store::ledger::{Command, Envelope, Ledger};
use crate::store::log::RequestMeta;
use crate::store::postgres::{PgOptions, PgReads, PgStore};
use crate::store::sqlite::{SqliteReads, SqliteStore};
use crate::store::steps::ArchiveStore;
use crate::store::{fold, log, lookup, StoreError};
use crate::tls::TlsError;
use crate::tokens::keys::KeyError;
use crate::tokens::Generators;

/// Why the service or a CLI command could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error("{source}; the server refuses to start on a damaged log: diagnose it with `ledger-replay verify --db {db}`")]
    DamagedLog { source: crate::store::log::BrokenChain, db: String },
    #[error("cannot open the ledger {db}: {source}; if the file is damaged, diagnose it with `ledger-replay verify --db {db}`")]
    Open { db: String, source: StoreError },
    #[error("another server is already serving {0} (its lock file is held)")]
    AlreadyServing(String),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("[oauth.token_generation] access_token_type: {0}")]
    Generator(String),
    #[error("[super_admin] username is not a valid username")]
    AdminName,
    #[error("[database] {0}")]
    Database(String),
}

/// Where the log is, as shown to operators: the SQLite path, or the PostgreSQL URL without its
/// password.
pub fn database_name(settings: &Settings) -> String {
    match (&settings.database.kind, &settings.database.url) {
        (DatabaseKind::Postgres, Some(url)) => crate::config::redact_url(url),
        _ => settings.database.path.display().to_string(),
    }
}

/// The PostgreSQL connection options of the config.
pub fn pg_options(settings: &Settings) -> Result<PgOptions, StartError> {
    let db = &settings.database;
    let url = db.url.as_deref().ok_or_else(|| StartError::Database("url is required".into()))?;
    PgOptions::parse(url, db.password.as_deref(), db.pool_size)
        .map_err(|e| StartError::Database(e.to_string()))
}

/// Opens the configured backend's write side (migrating it). `serving`: the server's writer,
/// which on SQLite hands WAL checkpoints to a thread of their own.
pub fn open_store(settings: &Settings, serving: bool) -> Result<Box<dyn WriteStore>, StoreError> {
    match settings.database.kind {
        DatabaseKind::Sqlite => {
            let store = SqliteStore::open(&settings.database.path)?;
            if serving {
                store.serve(&settings.database.path)?;
            }
            Ok(Box::new(store))
        }
        DatabaseKind::Postgres => {
            let options = pg_options(settings).map_err(|e| StoreError::Database(e.to_string().into()))?;
            let mut store = PgStore::open(options)?;
            if serving {
                store.serve();
            }
            Ok(Box::new(store))
        }
    }
}

/// Opens a second write side for the archiver (its own connection, so a round never runs on
/// the request writer's thread).
pub fn open_archive_store(settings: &Settings) -> Result<Box<dyn ArchiveStore>, StoreError> {
    match settings.database.kind {
        DatabaseKind::Sqlite => Ok(Box::new(SqliteStore::open(&settings.database.path)?)),
        DatabaseKind::Postgres => {
            let options = pg_options(settings).map_err(|e| StoreError::Database(e.to_string().into()))?;
            Ok(Box::new(PgStore::open(options)?))
        }
    }
}

/// Starts the background archiver when `[oauth.token_cleanup] enable` is on.
pub fn start_archiver(settings: &Settings) -> Result<(), StartError> {
    let cleanup = &settings.oauth.token_cleanup;
    if !cleanup.enable {
        return Ok(());
    }
    let archive = &settings.ledger.archive;
    let policy = crate::archive::ArchivePolicy::new(
        settings.archive_dir(),
        archive.keep_in_database.millis(),
        cleanup.retain_access_tokens_for_auditing,
    );
    let interval = std::time::Duration::from_secs(archive.interval.0);
    let store = open_archive_store(settings)?;
    crate::archive::spawn(store, policy, interval, crate::store::clock::wall_clock())
        .map_err(StartError::Serve)
}

/// `configtest`'s database check: on PostgreSQL, that the database is reachable and its schema
/// is the one this build writes. Returns a line describing what was checked.
pub fn check_database(settings: &Settings) -> Result<String, StartError> {
    if settings.database.kind == DatabaseKind::Sqlite {
        return Ok(format!("SQLite database {}", settings.database.path.display()));
    }
    let shown = database_name(settings);
    let unreachable = |e: StoreError| StartError::Database(format!("{shown} is not reachable: {e}"));
    let mut client = pg_options(settings)?.connect().map_err(|e| unreachable(e.into()))?;
    let found = crate::store::postgres::migrate::version(&mut client).map_err(|e| unreachable(e.into()))?;
    let latest = crate::store::postgres::migrate::LATEST;
    match found {
        f if f == latest => Ok(format!("PostgreSQL {shown} is reachable, schema version {f} is current")),
        0 => Err(StartError::Database(format!(
            "{shown} has no token-ledger schema yet: start a node to create it"
        ))),
        f if f < latest => Err(StartError::Database(format!(
            "{shown} has schema version {f}, older than this build's {latest}: start a node to migrate it"
        ))),
        f => Err(StoreError::SchemaTooNew { found: f, supported: latest }.into()),
    }
}

/// Opens the configured backend's read side (the database must exist: open the ledger first).
pub fn open_readers(settings: &Settings) -> Result<Arc<dyn ReadStore>, StartError> {
    Ok(match settings.database.kind {
        DatabaseKind::Sqlite => Arc::new(SqliteReads::new(settings.database.path.clone())),
        DatabaseKind::Postgres => Arc::new(PgReads::new(pg_options(settings)?)),
    })
}

/// Opens the database (migrating it), loads the sealing key, and catches the views up with the
/// log from their checkpoint.
pub fn open_ledger(settings: &Settings, generators: Generators) -> Result<Ledger, StartError> {
    open_ledger_for(settings, generators, false)
}

/// `open_ledger` for the server or a CLI command (`serving`: see `open_store`).
pub fn open_ledger_for(
    settings: &Settings,
    generators: Generators,
    serving: bool,
) -> Result<Ledger, StartError> {
    let dir = settings.data_dir();
    create_private_dir(&dir)
        .map_err(|source| StartError::DataDir { path: dir.display().to_string(), source })?;
    let sealer = Sealer::load_or_create(&dir.join("token.key"))?;
    let db = database_name(settings);
    let opened = |source| StartError::Open { db: db.clone(), source };
    let mut store = open_store(settings, serving).map_err(opened)?;
    // Nothing is appended to, or folded from, a log whose chain does not hold.
    let checked = log::verify_since_anchor(store.as_mut())
        .map_err(opened)?
        .map_err(|source| StartError::DamagedLog { source, db: db.clone() })?;
    tracing::debug!(events = checked, "hash chain verified since the last start");
    let applied = fold::catch_up(store.as_mut()).map_err(opened)?;
    if applied > 0 {
        tracing::info!(events = applied, "the views caught up with the log");
    }
    Ok(Ledger::new(store, sealer, settings.policy(), generators))
}

/// An exclusive advisory lock on `<database>.lock`, held while a server runs. Offline tools
/// (the audit CLI's `rebuild`) try the same lock to know no server is writing; the CLI's short
/// writes (`client register`, `user add`) do not need it.
pub struct ServerLock {
    /// Dropping the file releases the lock.
    _file: std::fs::File,
}

impl ServerLock {
    /// The lock file of a database.
    pub fn path(database: &std::path::Path) -> std::path::PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".lock");
        name.into()
    }

    /// Takes the lock, or fails at once if a server holds it.
    pub fn acquire(database: &std::path::Path) -> Result<Self, StartError> {
        if let Some(dir) = database.parent() {
            create_private_dir(dir)
                .map_err(|source| StartError::DataDir { path: dir.display().to_string(), source })?;
        }
        let path = Self::path(database);
        let shown = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StartError::DataDir { path: shown.clone(), source })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StartError::AlreadyServing(database.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(source)) => Err(StartError::DataDir { path: shown, source }),
        }
    }
}

/// Creates the data folder readable by its owner only: it holds the sealing key, the TLS key,
/// and a database of digests and password hashes.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Makes the super admin a user of the password grant, with the configured password. Appends
/// an event only when the user is missing or its password changed in the config.
pub fn ensure_super_admin(ledger: &mut Ledger, settings: &Settings) -> Result<(), StartError> {
    let admin = &settings.super_admin;
    let username = Username::parse(&admin.username).map_err(|_| StartError::AdminName)?;
    let existing = lookup::user(ledger.store(), &username)?;
    if existing.is_some_and(|u| crypto::verify_password(&admin.password, &u.password_hash)) {
        return Ok(());
    }
    let password_hash = crypto::hash_password(&admin.password)?;
    let command = Command::SetUserPassword { username, password_hash };
    ledger.execute(Envelope { command, meta: RequestMeta::default() })?.ok();
    Ok(())
}
