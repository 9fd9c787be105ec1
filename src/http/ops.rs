//! Operations endpoints: `/health/ready` (readiness), `/metrics` (Prometheus) and
//! `/openapi.json` (the API contract). `/health`, the liveness check, stays in `http/mod.rs`.

use std::path::Path;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::require_super_admin;
use super::error::ApiError;
use super::AppState;
use crate::store::StoreError;

/// Why the service is not ready to take writes.
#[derive(Debug)]
enum NotReady {
    LastWriteFailed,
    NotWritable(std::io::Error),
    ViewsBehind { views: i64, log: i64 },
    Store(StoreError),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LastWriteFailed => {
                write!(f, "the last write to the database failed (disk full or read-only?)")
            }
            Self::NotWritable(e) => write!(f, "the data folder cannot be written: {e}"),
            Self::ViewsBehind { views, log } => {
                write!(f, "the views are at position {views}, behind the log at {log}")
            }
            Self::Store(e) => write!(f, "the database cannot be read: {e}"),
        }
    }
}

#[utoipa::path(
    get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = super::openapi::Health),
        (status = 503, description = "Not ready, with the reason", body = super::openapi::Health),
    )
)]
/// `GET /health/ready`: 200 when the database can be written and the views have caught up
/// with the log; 503 with the reason otherwise (the Kubernetes readiness convention).
pub async fn ready(State(app): State<AppState>) -> Response {
    match readiness(&app).await {
        Ok(position) => Json(json!({"status": "ready", "position": position})).into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            let body = json!({"status": "unavailable", "reason": reason.to_string()});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn readiness(app: &AppState) -> Result<i64, NotReady> {
    if app.metrics.last_batch_failed() {
        return Err(NotReady::LastWriteFailed);
    }
    // The local disk matters only where the log lives on it; PostgreSQL's writability shows
    // in the writer's last batch (above) and its reachability in the reads below.
    if app.settings.database.kind == crate::config::DatabaseKind::Sqlite {
        let db = app.settings.database.path.clone();
        tokio::task::spawn_blocking(move || probe_write(&db))
            .await
            .map_err(|e| NotReady::NotWritable(std::io::Error::other(e)))?
            .map_err(NotReady::NotWritable)?;
    }
    let (views, log) = app
        .readers
        .with(|reads| {
            let views = reads.checkpoint()?;
            let log = reads.head()?;
            Ok((views, log))
        })
        .await
        .map_err(NotReady::Store)?;
    if views < log {
        return Err(NotReady::ViewsBehind { views, log });
    }
    Ok(log)
}

/// Opens the database file for writing and writes, syncs and removes a small file beside it:
/// a full or read-only filesystem fails here before a token request would.
fn probe_write(db: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new().write(true).open(db)?;
    let probe = db.with_extension("ready-probe");
    let result = (|| {
        let mut file = std::fs::File::create(&probe)?;
        file.write_all(&[0u8; 4096])?;
        file.sync_all()
    })();
    let _ = std::fs::remove_file(&probe);
    result
}

/// The metrics as Prometheus scrapes them; the log is read off the async threads.
pub async fn render_metrics(app: &AppState) -> Result<String, ApiError> {
    let (metrics, memory, lockouts) = (app.metrics.clone(), app.memory.clone(), app.lockouts.clone());
    let text = app
        .readers
        .with(move |conn| {
            metrics.count_new_events(conn)?;
            let now = crate::store::ledger::system_clock();
            // While the memory view loads at start-up, the SQL view counts.
            let active = match memory.is_ready() {
                true => memory.token_count(),
                false => usize::try_from(conn.active_token_count()?).unwrap_or(usize::MAX),
            };
            Ok(metrics.render(active, lockouts.locked_count(now)))
        })
        .await?;
    Ok(text)
}

fn metrics_response(text: String) -> Response {
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::metrics::CONTENT_TYPE));
    response
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    description = "Prometheus metrics (OpenMetrics text) for the super admin, when `[monitoring]` has no \
                   `port` of its own; with one, they are served there without authentication and this \
                   path answers 404.",
    security(("basic" = [])),
    responses(
        (status = 200, description = "The metrics", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "Not the super admin", body = super::openapi::OAuthError),
        (status = 404, description = "Metrics are served on the monitoring listener", body = super::openapi::OAuthError),
    )
)]
/// `GET /metrics` on the main port: the super admin only.
pub async fn metrics_as_admin(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_super_admin(&app, &headers)?;
    Ok(metrics_response(render_metrics(&app).await?))
}

/// `GET /metrics` on the separate monitoring listener (`[monitoring] port`): no authentication.
pub async fn metrics_open(State(app): State<AppState>) -> Result<Response, ApiError> {
    Ok(metrics_response(render_metrics(&app).await?))
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = Object))
)]
/// `GET /openapi.json`: the OpenAPI 3.1 document generated from the handlers.
pub async fn openapi() -> Response {
    let mut response = super::openapi::json().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
