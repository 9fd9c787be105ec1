//! Start-up: open the ledger, catch the views up, start the writer, bind, serve, shut down.

mod cleanup;
mod limits;
mod migrate_store;
mod setup;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use limits::{with_limits, HEADER_READ_TIMEOUT};
pub use migrate_store::{migrate_store, Migrated};
pub use setup::{
    check_database, database_name, ensure_super_admin, open_ledger, open_readers, pg_options, ServerLock,
    StartError,
};

use crate::config::{DatabaseKind, Settings};
use crate::http::{router, AppState};
use crate::store::follow::{Follower, ReadBarrier};
use crate::store::ledger::Ledger;
use crate::store::loader::{LoadHook, LoadStep, ViewLoader};
use crate::store::memory::MemoryView;
use crate::store::reads::Readers;
use crate::store::writer::{Writer, WriterThread};
use crate::store::StoreError;
use crate::tls;
use crate::tokens::jwt::JwtGenerator;
use crate::tokens::keys::KeyStore;
use crate::tokens::{Generators, JWT};

/// A built service, bound to its port, not yet serving.
pub struct Application {
    listener: std::net::TcpListener,
    local: SocketAddr,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    state: AppState,
    writer_thread: WriterThread,
    /// The separate `/metrics` listener, when `[monitoring] port` is set.
    monitoring: Option<std::net::TcpListener>,
    _lock: Option<ServerLock>,
}

impl Application {
    /// Opens everything and binds the port (port 0 picks a free one). `customize` may register
    /// more token generators before the configured default is chosen: the extension point for
    /// crates that build on this one.
    pub async fn build(
        settings: Settings,
        customize: impl FnOnce(&mut Generators),
    ) -> Result<Self, StartError> {
        // Several rustls providers may be compiled in; this service uses ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let settings = Arc::new(settings);
        // One server per SQLite file; on PostgreSQL several nodes share the database.
        let lock = match settings.database.kind {
            DatabaseKind::Sqlite => Some(ServerLock::acquire(&settings.database.path)?),
            DatabaseKind::Postgres => None,
        };
        let server = &settings.server;
        let addr = SocketAddr::new(server.bind_address, server.port);
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| StartError::Bind { addr: addr.to_string(), source })?;
        let local = listener.local_addr().map_err(StartError::Serve)?;
        let https = settings.transport.https.enabled;
        let base_url: Arc<str> = settings.base_url(local.port()).into();
        let monitoring = bind_monitoring(&settings)?;

        let generation = &settings.oauth.token_generation;
        let now = crate::store::ledger::system_clock();
        let keys = Arc::new(KeyStore::open(
            &settings.data_dir().join("jwt-keys"),
            generation.jwt_signing_algorithm,
            now,
        )?);
        // ID tokens are RS256 (OIDC Discovery section 3 makes RS256 mandatory to support).
        let id_keys = Arc::new(KeyStore::open(
            &settings.data_dir().join("id-token-keys"),
            crate::tokens::keys::SigningAlgorithm::RS256,
            now,
        )?);
        // Shared by every node that shares the key folder, so a form verifies on any of them.
        let csrf = crate::http::pages::Csrf::load_or_create(&settings.data_dir().join("csrf.key"))?;
        let mut generators = Generators::opaque();
        generators.register(JWT, Arc::new(JwtGenerator::new(keys.clone(), crate::config::issuer(&base_url))));
        customize(&mut generators);
        generators.set_default(&generation.access_token_type).map_err(|e| StartError::Generator(e.0))?;

        // Blocking database work (the PostgreSQL client runs a runtime of its own) on a plain
        // thread, whatever runtime this is called from.
        let opened =
            std::thread::scope(|s| s.spawn(|| open_store_side(&settings, generators.clone())).join());
        let (ledger, reads, memory, barrier) =
            opened.map_err(|_| StartError::Serve(std::io::Error::other("start-up panicked")))??;
        if settings.super_admin.is_default() {
            tracing::warn!(
                "the super admin has the default password: change [super_admin] in deployment.toml"
            );
        }
        let tls = if https { Some(tls::rustls_config(&settings).await?) } else { None };
        let metrics = Arc::new(crate::metrics::Metrics::new(memory.applied()));
        let (writer, writer_thread) =
            Writer::spawn_observed(ledger, metrics.clone()).map_err(StartError::Serve)?;
        let state = AppState {
            writer,
            readers: reads,
            barrier,
            base_url,
            settings,
            generators: Arc::new(generators),
            keys,
            memory,
            lockouts: Arc::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(password_check_limit())),
            metrics,
            authz: Arc::new(crate::http::oidc::AuthzState { csrf, id_keys }),
            admin: Arc::default(),
        };
        if state.settings.oauth.token_cleanup.enable {
            let archive = &state.settings.ledger.archive;
            cleanup::Cleanup {
                writer: state.writer.clone(),
                readers: state.readers.clone(),
                policy: state.settings.policy(),
                keep: archive.keep_in_database.millis(),
                interval: Duration::from_secs(archive.interval.0),
            }
            .spawn();
        }
        Ok(Self { listener, local, tls, state, writer_thread, monitoring, _lock: lock })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// `http://127.0.0.1:PORT/metrics` when metrics have a listener of their own.
    pub fn metrics_url(&self) -> Option<String> {
        let addr = self.monitoring.as_ref()?.local_addr().ok()?;
        Some(format!("http://{addr}/metrics"))
    }

    /// `http://127.0.0.1:PORT` or `https://…`: where it listens.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local)
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (10 s at most)
    /// and waits for the writer to commit what is queued.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let Self { listener, tls, state, writer_thread, monitoring, _lock, .. } = self;
        let handle = axum_server::Handle::<SocketAddr>::new();
        let monitor = axum_server::Handle::<SocketAddr>::new();
        if let Some(listener) = monitoring {
            serve_monitoring(listener, state.clone(), monitor.clone())?;
        }
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            stopper.graceful_shutdown(Some(Duration::from_secs(10)));
            monitor.shutdown();
        });
        let served = match tls {
            Some(config) => {
                let server = axum_server::from_tcp_rustls(listener, config).map_err(StartError::Serve)?;
                with_limits(server).handle(handle).serve(app).await
            }
            None => {
                let server = axum_server::from_tcp(listener).map_err(StartError::Serve)?;
                with_limits(server).handle(handle).serve(app).await
            }
        };
        served.map_err(StartError::Serve)?;
        // Every acknowledged command is committed already; this only lets the database close
        // cleanly.
        let joined = tokio::task::spawn_blocking(move || writer_thread.join());
        if tokio::time::timeout(Duration::from_secs(5), joined).await.is_err() {
            tracing::warn!("the writer did not stop within 5 s");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Binds the separate metrics listener when `[monitoring] port` asks for one.
fn bind_monitoring(settings: &Settings) -> Result<Option<std::net::TcpListener>, StartError> {
    let monitoring = &settings.monitoring;
    let Some(port) = monitoring.port.filter(|_| monitoring.enabled) else {
        return Ok(None);
    };
    let addr = SocketAddr::new(monitoring.bind_address, port);
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|source| StartError::Bind { addr: addr.to_string(), source })?;
    Ok(Some(listener))
}

/// Serves `/metrics` on its own listener (plain HTTP, same limits) until the server stops.
fn serve_monitoring(
    listener: std::net::TcpListener,
    state: AppState,
    handle: axum_server::Handle<SocketAddr>,
) -> Result<(), StartError> {
    let server = axum_server::from_tcp(listener).map_err(StartError::Serve)?;
    let service = crate::http::monitoring_router(state).into_make_service();
    tokio::spawn(async move {
        if let Err(e) = with_limits(server).handle(handle).serve(service).await {
            tracing::error!(error = %e, "the metrics listener failed");
        }
    });
    Ok(())
}

/// What `open_store_side` opens.
type StoreSide = (Ledger, Readers, Arc<MemoryView>, Option<Arc<ReadBarrier>>);

/// The ledger (views caught up, super admin ensured), the readers, the memory view loading from
/// them in the background, and on a shared log the follower and introspection's read barrier.
fn open_store_side(settings: &Settings, generators: Generators) -> Result<StoreSide, StartError> {
    let mut ledger = setup::open_ledger_for(settings, generators, true)?;
    ensure_super_admin(&mut ledger, settings)?;
    setup::start_archiver(settings)?;
    let reads = open_readers(settings)?;
    // Read before the loader's snapshot, so that snapshot is never older than what the writer
    // and the follower hand the view from here on (`store::loader`).
    let position = reads.checkpoint().map_err(StoreError::from)?;
    let memory = Arc::new(MemoryView::loading(position));
    let mut ledger = ledger.with_memory(memory.clone());
    let barrier = match settings.database.kind {
        DatabaseKind::Sqlite => None,
        DatabaseKind::Postgres => {
            // Other nodes append too: follow the log, and prove freshness before `active`.
            let follower = Arc::new(Follower::new(memory.clone(), reads.clone()));
            follower.spawn_poller(FOLLOW_EVERY).map_err(StartError::Serve)?;
            ledger = ledger.with_follower(follower.clone());
            Some(Arc::new(ReadBarrier::new(follower)))
        }
    };
    let mut loader = ViewLoader::new(memory.clone(), reads.clone());
    if let Some(gate) = test_gate() {
        loader = loader.with_hook(gate);
    }
    loader.spawn().map_err(StartError::Serve)?;
    Ok((ledger, Readers::new(reads), memory, barrier))
}

/// A test hook, not a setting: with `TOKEN_LEDGER_TEST_VIEW_GATE=PATH` in its environment the
/// server's view loader, once it has read its snapshot, waits until PATH exists (two minutes at
/// most) before installing it, so that the API tests can write while the view is loading.
fn test_gate() -> Option<LoadHook> {
    let path = std::path::PathBuf::from(std::env::var_os("TOKEN_LEDGER_TEST_VIEW_GATE")?);
    Some(Arc::new(move |step| {
        if step != LoadStep::Install {
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !path.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }))
}

/// How often a node on a shared log polls it for other nodes' events.
const FOLLOW_EVERY: Duration = Duration::from_millis(5);

/// One argon2id verification per core at a time: more only queue for the same cores while
/// holding 19 MiB each.
fn password_check_limit() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs the service until SIGINT or SIGTERM. Prints `listening on URL` on stdout once ready.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    let app = Application::build(settings, |_| {}).await?;
    let stop = signal();
    let mut out = std::io::stdout().lock();
    if let Some(url) = app.metrics_url() {
        let _ = writeln!(out, "metrics on {url}");
    }
    let _ = writeln!(out, "listening on {}", app.url());
    let _ = out.flush();
    drop(out);
    app.run_until_stopped(stop).await
}

/// SIGINT or SIGTERM. The handlers are registered when this is called, not when the future is
/// first polled, so a signal that arrives just after `listening on` is printed is not lost (it
/// would otherwise kill the process with the default action).
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        let (term, int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
        async fn received(s: Option<Signal>) {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        async move {
            tokio::select! {
                _ = received(term) => {},
                _ = received(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
