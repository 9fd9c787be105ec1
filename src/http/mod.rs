//! The HTTP layer: routes, shared state and the request context.

pub mod auth;
pub mod authorize;
pub mod consent;
pub mod dcr;
pub mod error;
pub mod form;
pub mod introspect;
pub mod login;
pub mod oidc;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod request_id;
pub mod revoke;
pub mod token;
pub mod token_code;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::config::Settings;
use crate::lockout::Lockouts;
use crate::store::follow::ReadBarrier;
use crate::store::memory::MemoryView;
use crate::store::reads::Readers;
use crate::store::writer::Writer;
use crate::tokens::keys::KeyStore;
use crate::tokens::Generators;
use error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub writer: Writer,
    pub readers: Readers,
    /// On a shared log, what introspection passes before it may answer `active`; `None` when
    /// this process is the log's only writer (its view is updated before any reply).
    pub barrier: Option<Arc<ReadBarrier>>,
    pub settings: Arc<Settings>,
    /// `scheme://hostname:port`, the issuer of RFC 8414.
    pub base_url: Arc<str>,
    pub generators: Arc<Generators>,
    /// JWT signing keys: the JWKS and the verification of presented JWTs.
    pub keys: Arc<KeyStore>,
    /// The active-token view introspection reads, and the client cache.
    pub memory: Arc<MemoryView>,
    pub lockouts: Arc<Lockouts>,
    /// Bounds concurrent argon2id verifications (19 MiB each): without it, a burst of password
    /// requests costs gigabytes of memory.
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Prometheus metrics; also the writer's readiness flag.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The code flow's CSRF key and ID-token keys.
    pub authz: Arc<oidc::AuthzState>,
    /// The super admin's credentials, checked once per distinct header (digests only).
    pub admin: Arc<auth::AdminCheck>,
}

impl AppState {
    /// The service's one issuer identifier (`config::issuer`): the token endpoint URL.
    pub fn issuer(&self) -> String {
        crate::config::issuer(&self.base_url)
    }

    /// The `iss` of JWT access tokens: the issuer.
    pub fn jwt_issuer(&self) -> String {
        self.issuer()
    }
}

/// Per-request facts for the event envelope.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub peer: String,
    /// The peer's address, for the brute-force back-off (unspecified when unknown).
    pub peer_ip: std::net::IpAddr,
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    let dcr = "/api/identity/oauth2/dcr/v1.1/register";
    // The pages a person sees; their security headers are set once, by this layer.
    let pages = Router::new()
        .route("/oauth2/authorize", get(authorize::authorize_get).post(authorize::authorize_post))
        .route("/commonauth", post(login::login))
        .route("/oidc/logout", get(login::logout_page).post(login::logout))
        .route("/oauth2/assets/style.css", get(pages::stylesheet))
        .layer(middleware::from_fn(pages::page_headers));
    let discovery = "/.well-known/openid-configuration";
    Router::new()
        .merge(pages)
        .route("/oauth2/userinfo", get(oidc::userinfo_get).post(oidc::userinfo_post))
        .route(&format!("/oauth2/token{discovery}"), get(oidc::discovery))
        .route(&format!("/oauth2/oidcdiscovery{discovery}"), get(oidc::discovery))
        .route(discovery, get(oidc::discovery))
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/introspect", post(introspect::introspect))
        .route("/oauth2/revoke", post(revoke::revoke))
        .route(dcr, post(dcr::register))
        .route(&format!("{dcr}/{{client_id}}"), get(dcr::read).delete(dcr::delete))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        // RFC 8414 section 3.1: the issuer's path inserted after the well-known prefix.
        .route("/.well-known/oauth-authorization-server/oauth2/token", get(metadata_path_inserted))
        .route("/oauth2/jwks", get(jwks))
        .route("/health", get(health))
        .merge(operations(&state))
        .fallback(|| async { ApiError::NotFound })
        .layer(middleware::from_fn_with_state(state.clone(), context))
        .with_state(state)
}

/// Readiness, the API contract, and `/metrics` when it is served on the main port.
fn operations(state: &AppState) -> Router<AppState> {
    let routes =
        Router::new().route("/health/ready", get(ops::ready)).route("/openapi.json", get(ops::openapi));
    let monitoring = &state.settings.monitoring;
    if monitoring.enabled && monitoring.port.is_none() {
        routes.route("/metrics", get(ops::metrics_as_admin))
    } else {
        routes
    }
}

/// The separate monitoring listener's routes (`[monitoring] port`): `/metrics` only.
pub fn monitoring_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics_open))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}

/// Gives each request an id (the caller's sane `X-Request-ID`, or a new one; echoed as
/// `X-Request-Id`) and its peer, counts it in the metrics under its route template, and logs
/// one line per request (request id, method, route, status, duration) at debug level, or warn
/// for server errors. Never headers, bodies or raw paths: they carry secrets.
async fn context(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id::of(req.headers().get("x-request-id").map(|v| v.as_bytes()));
    let addr = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let peer = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let peer_ip = addr.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip());
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    req.extensions_mut().insert(RequestContext { request_id: request_id.clone(), peer, peer_ip });
    let mut response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics.observe_request(&route, method, status, elapsed);
    let duration_us = elapsed.as_micros() as u64;
    // One line per request costs about as much as an introspection itself: server errors are
    // always logged, the rest at debug level (RUST_LOG=token_ledger=debug for an access log).
    if response.status().is_server_error() {
        tracing::warn!(request_id = %request_id, method, route = %route, status, duration_us, "request");
    } else {
        tracing::debug!(request_id = %request_id, method, route = %route, status, duration_us, "request");
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A method as a metric label: the standard ones, or `other` (never free text).
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "PUT" => "PUT",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// RFC 8414 authorization server metadata (also at the RFC 8414 section 3.1 location).
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server", tag = "oauth2",
    responses((status = 200, description = "The metadata", body = openapi::ServerMetadata))
)]
async fn metadata(State(app): State<AppState>) -> Json<serde_json::Value> {
    let base = &app.base_url;
    Json(json!({
        "issuer": app.issuer(),
        "token_endpoint": format!("{base}/oauth2/token"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "registration_endpoint": format!("{base}/api/identity/oauth2/dcr/v1.1/register"),
        "jwks_uri": format!("{base}/oauth2/jwks"),
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "userinfo_endpoint": format!("{base}/oauth2/userinfo"),
        "end_session_endpoint": format!("{base}/oidc/logout"),
        "grant_types_supported": ["password", "client_credentials", "refresh_token", "authorization_code"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256", "plain"],
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
}

/// RFC 8414 metadata where clients derive it from the issuer (section 3.1 path insertion).
#[utoipa::path(
    get, path = "/.well-known/oauth-authorization-server/oauth2/token", tag = "oauth2",
    responses((status = 200, description = "The metadata", body = openapi::ServerMetadata))
)]
async fn metadata_path_inserted(state: State<AppState>) -> Json<serde_json::Value> {
    metadata(state).await
}

/// The public keys of JWT access tokens (RFC 7517), retired ones until their tokens expire.
#[utoipa::path(
    get, path = "/oauth2/jwks", tag = "oauth2",
    responses((status = 200, description = "The key set", body = openapi::Jwks))
)]
async fn jwks(State(app): State<AppState>) -> Json<serde_json::Value> {
    let now = crate::store::ledger::system_clock();
    Json(oidc::jwks(&app, now))
}

/// Liveness and the views' checkpoint.
#[utoipa::path(
    get, path = "/health", tag = "operations",
    responses(
        (status = 200, description = "Alive", body = openapi::Health),
        (status = 503, description = "The database cannot be read", body = openapi::Health),
    )
)]
async fn health(State(app): State<AppState>) -> Response {
    match app.readers.with(|r| Ok(r.checkpoint()?)).await {
        Ok(position) => Json(json!({"status": "ok", "position": position})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"}))).into_response()
        }
    }
}
