//! The baseline: a bare axum handler served the way `token-ledger serve` serves (a default
//! multi-thread tokio runtime, `axum_server::from_tcp`, connect info), run as its own process
//! by the hidden `bare-axum` subcommand. It reads the body and answers `{"active":false}`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;

use crate::child::Running;
use crate::BenchError;

async fn handler(_body: Bytes) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], r#"{"active":false}"#)
}

/// Serves until killed; prints `listening on http://ADDR` once bound.
pub fn serve() -> Result<(), BenchError> {
    let runtime =
        tokio::runtime::Runtime::new().map_err(|source| BenchError::io("cannot start a runtime", source))?;
    runtime.block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|source| BenchError::io("cannot bind", source))?;
        let addr = listener.local_addr().map_err(|source| BenchError::io("no local address", source))?;
        let app = Router::new()
            .route("/oauth2/introspect", post(handler))
            .into_make_service_with_connect_info::<SocketAddr>();
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{addr}");
            let _ = out.flush();
        }
        axum_server::from_tcp(listener)
            .map_err(|source| BenchError::io("cannot serve", source))?
            .serve(app)
            .await
            .map_err(|source| BenchError::io("the bare server failed", source))
    })
}

/// Starts this binary's `bare-axum` subcommand as a child process.
pub fn start() -> Result<Running, BenchError> {
    let exe =
        std::env::current_exe().map_err(|source| BenchError::io("cannot locate ledger-bench", source))?;
    let mut command = Command::new(exe);
    command.arg("bare-axum");
    Running::start("bare axum", command, Duration::from_secs(10))
}
