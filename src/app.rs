//! Start-up: open the ledger, catch the views up, start the writer, bind, serve, shut down.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Settings;
use crate::crypto::{self, Sealer};
use crate::domain::types::Username;
use crate::http::{router, AppState};
use crate::store::ledger::{Command, Envelope, Ledger};
use crate::store::log::RequestMeta;
use crate::store::readers::Readers;
use crate::store::writer::Writer;
use crate::store::{open_writer, projection, views, StoreError};
use crate::tls::{self, TlsError};

/// Why the service or a CLI command could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error("another server is already serving {0} (its lock file is held)")]
    AlreadyServing(String),
    #[error("[super_admin] username is not a valid username")]
    AdminName,
}

/// Opens the database (migrating it), loads the sealing key, and catches the views up with the
/// log from their checkpoint.
pub fn open_ledger(settings: &Settings) -> Result<Ledger, StartError> {
    let dir = settings.data_dir();
    create_private_dir(&dir).map_err(|source| StartError::DataDir {
        path: dir.display().to_string(),
        source,
    })?;
    let sealer = Sealer::load_or_create(&dir.join("token.key"))?;
    let mut conn = open_writer(&settings.database.path)?;
    let applied = projection::catch_up(&mut conn)?;
    if applied > 0 {
        tracing::info!(events = applied, "the views caught up with the log");
    }
    Ok(Ledger::new(conn, sealer, settings.policy()))
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
            create_private_dir(dir).map_err(|source| StartError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let path = Self::path(database);
        let shown = path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StartError::DataDir {
                path: shown.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StartError::AlreadyServing(database.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(source)) => Err(StartError::DataDir {
                path: shown,
                source,
            }),
        }
    }
}

/// Creates the data folder readable by its owner only: it holds the sealing key, the TLS key,
/// and a database of digests and password hashes.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
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
    let existing = views::user(ledger.connection(), &username)?;
    if existing.is_some_and(|u| crypto::verify_password(&admin.password, &u.password_hash)) {
        return Ok(());
    }
    let password_hash = crypto::hash_password(&admin.password)?;
    let command = Command::SetUserPassword {
        username,
        password_hash,
    };
    ledger
        .execute(Envelope {
            command,
            meta: RequestMeta::default(),
        })?
        .ok();
    Ok(())
}

/// Runs the service until SIGINT or SIGTERM. Prints `listening on URL` on stdout once ready.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    // Several rustls providers may be compiled in; this service uses ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Arc::new(settings);
    let _serving = ServerLock::acquire(&settings.database.path)?;
    let mut ledger = open_ledger(&settings)?;
    ensure_super_admin(&mut ledger, &settings)?;
    if settings.super_admin.is_default() {
        tracing::warn!(
            "the super admin has the default password: change [super_admin] in deployment.toml"
        );
    }
    let (writer, writer_thread) = Writer::spawn(ledger).map_err(StartError::Serve)?;
    let server = &settings.server;
    let addr = SocketAddr::new(server.bind_address, server.port);
    let listener = std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let local = listener.local_addr().map_err(StartError::Serve)?;
    let https = settings.transport.https.enabled;
    let scheme = if https { "https" } else { "http" };
    let state = AppState {
        writer,
        readers: Readers::new(settings.database.path.clone()),
        base_url: format!("{scheme}://{}:{}", server.hostname, local.port()).into(),
        settings: settings.clone(),
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::<SocketAddr>::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    let served = if https {
        let config = tls::rustls_config(&settings).await?;
        announce(scheme, local);
        axum_server::from_tcp_rustls(listener, config)
            .map_err(StartError::Serve)?
            .handle(handle)
            .serve(app)
            .await
    } else {
        announce(scheme, local);
        axum_server::from_tcp(listener)
            .map_err(StartError::Serve)?
            .handle(handle)
            .serve(app)
            .await
    };
    served.map_err(StartError::Serve)?;
    // Every acknowledged command is committed already; wait briefly for the writer to finish
    // what is queued so the database closes cleanly.
    let joined = tokio::task::spawn_blocking(move || writer_thread.join());
    if tokio::time::timeout(Duration::from_secs(5), joined)
        .await
        .is_err()
    {
        tracing::warn!("the writer did not stop within 5 s");
    }
    tracing::info!("stopped");
    Ok(())
}

fn announce(scheme: &str, addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {scheme}://{addr}");
    let _ = out.flush();
}

/// On SIGINT or SIGTERM: stop accepting, let in-flight requests finish (10 s at most).
async fn shutdown_on_signal(handle: axum_server::Handle<SocketAddr>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
}
