//! Start-up: open the ledger, catch the views up, start the writer, bind, serve, shut down.

mod setup;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use setup::{ensure_super_admin, open_ledger, ServerLock, StartError};

use crate::config::Settings;
use crate::http::{router, AppState};
use crate::store::memory::MemoryView;
use crate::store::readers::Readers;
use crate::store::writer::{Writer, WriterThread};
use crate::store::{spawn_checkpointer, StoreError};
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
    _lock: ServerLock,
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
        let lock = ServerLock::acquire(&settings.database.path)?;
        let server = &settings.server;
        let addr = SocketAddr::new(server.bind_address, server.port);
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| StartError::Bind { addr: addr.to_string(), source })?;
        let local = listener.local_addr().map_err(StartError::Serve)?;
        let https = settings.transport.https.enabled;
        let scheme = if https { "https" } else { "http" };
        let base_url: Arc<str> = format!("{scheme}://{}:{}", server.hostname, local.port()).into();

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
        let mut generators = Generators::opaque();
        generators
            .register(JWT, Arc::new(JwtGenerator::new(keys.clone(), format!("{base_url}/oauth2/token"))));
        customize(&mut generators);
        generators.set_default(&generation.access_token_type).map_err(|e| StartError::Generator(e.0))?;

        let mut ledger = open_ledger(&settings, generators.clone())?;
        ensure_super_admin(&mut ledger, &settings)?;
        let memory = Arc::new(MemoryView::load(ledger.connection())?);
        tracing::info!(active_tokens = memory.token_count(), "loaded the active-token view");
        let ledger = ledger.with_memory(memory.clone());
        ledger.connection().pragma_update(None, "wal_autocheckpoint", 0).map_err(StoreError::from)?;
        spawn_checkpointer(&settings.database.path, Duration::from_millis(250)).map_err(StartError::Serve)?;
        if settings.super_admin.is_default() {
            tracing::warn!(
                "the super admin has the default password: change [super_admin] in deployment.toml"
            );
        }
        let tls = if https { Some(tls::rustls_config(&settings).await?) } else { None };
        let (writer, writer_thread) = Writer::spawn(ledger).map_err(StartError::Serve)?;
        let state = AppState {
            writer,
            readers: Readers::new(settings.database.path.clone()),
            base_url,
            settings,
            generators: Arc::new(generators),
            keys,
            memory,
            lockouts: Arc::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(password_check_limit())),
            authz: Arc::new(crate::http::oidc::AuthzState { csrf: Default::default(), id_keys }),
        };
        Ok(Self { listener, local, tls, state, writer_thread, _lock: lock })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
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
        let Self { listener, tls, state, writer_thread, _lock, .. } = self;
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let handle = axum_server::Handle::<SocketAddr>::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            stopper.graceful_shutdown(Some(Duration::from_secs(10)));
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

/// One argon2id verification per core at a time: more only queue for the same cores while
/// holding 19 MiB each.
fn password_check_limit() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How long a client may take to send a request's headers (slow-header attacks); also how long
/// an idle kept-alive connection stays open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/1.1 only, with a header read timeout so that clients trickling bytes are cut off.
fn with_limits<A: axum_server::Address, Acc>(
    mut server: axum_server::Server<A, Acc>,
) -> axum_server::Server<A, Acc> {
    server
        .http_builder()
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    server.http1_only()
}

/// Runs the service until SIGINT or SIGTERM. Prints `listening on URL` on stdout once ready.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    let app = Application::build(settings, |_| {}).await?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {}", app.url());
    let _ = out.flush();
    drop(out);
    app.run_until_stopped(signal()).await
}

/// SIGINT or SIGTERM.
pub async fn signal() {
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
}
