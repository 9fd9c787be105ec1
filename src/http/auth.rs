//! Client authentication (`client_secret_basic`, `client_secret_post`) and the introspection
//! caller (super admin or a client), over HTTP Basic per RFC 6749 section 2.3.1.

use std::sync::{Arc, OnceLock, RwLock};

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use percent_encoding::percent_decode_str;
use subtle::ConstantTimeEq as _;

use super::error::ApiError;
use super::form::OAuthForm;
use super::{AppState, RequestContext};
use crate::crypto;
use crate::domain::events::{AuthMethod, AuthenticationFailed};
use crate::domain::types::{ClientId, Digest};
use crate::lockout::{Failure, LockKey};
use crate::store::ledger::{system_clock, Command, Envelope};
use crate::store::log::RequestMeta;
use crate::store::lookup::{self, ClientRecord};

const BAD_CREDENTIALS: &str = "Client credentials are invalid.";

/// Credentials as presented, before they are checked.
#[derive(Debug)]
pub struct Presented {
    pub id: String,
    pub secret: String,
}

/// Parses an `Authorization: Basic` header. `Ok(None)` when there is no Authorization header.
pub fn basic(headers: &HeaderMap) -> Result<Option<Presented>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || ApiError::InvalidClient("the Authorization header is not valid HTTP Basic".into());
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(ApiError::InvalidClient("only HTTP Basic client authentication is supported".into()));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    // RFC 6749 section 2.3.1: both parts are form-urlencoded before base64.
    let unescape = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8().map(|c| c.into_owned());
    let id = unescape(id).map_err(|_| malformed())?;
    let secret = unescape(secret).map_err(|_| malformed())?;
    if id.is_empty() {
        return Err(ApiError::InvalidClient("Client ID not found in the request.".into()));
    }
    Ok(Some(Presented { id, secret }))
}

/// The client's credentials from the header or the body; using both is refused.
pub fn client_credentials(headers: &HeaderMap, form: &OAuthForm) -> Result<Presented, ApiError> {
    match (basic(headers)?, form.get("client_id"), form.get("client_secret")) {
        (Some(_), _, Some(_)) => Err(ApiError::invalid_request(
            "The client MUST NOT use more than one authentication method in each request",
        )),
        (Some(p), Some(body_id), None) if body_id != p.id => {
            Err(ApiError::invalid_request("client_id in the body differs from the Authorization header"))
        }
        (Some(p), _, None) => Ok(p),
        (None, Some(id), Some(secret)) => Ok(Presented { id: id.to_owned(), secret: secret.to_owned() }),
        (None, _, _) => Err(ApiError::InvalidClient("client authentication is required".into())),
    }
}

/// Checks a client's secret against the digest in the client view. An unknown client costs the
/// same comparison as a wrong secret.
pub async fn authenticate(
    app: &AppState,
    ctx: &RequestContext,
    presented: Presented,
) -> Result<Arc<ClientRecord>, ApiError> {
    let id = ClientId::parse(&presented.id).map_err(|_| ApiError::InvalidClient(BAD_CREDENTIALS.into()))?;
    let key = LockKey::ClientSecret { client: id.to_string(), peer: ctx.peer_ip };
    let now = system_clock();
    if let Some(left) = app.lockouts.locked(&key, now) {
        return Err(ApiError::ClientLockedOut { retry_after_secs: retry_after(left) });
    }
    let record = match app.memory.client(&id) {
        Some(record) => Some(record),
        None => {
            // A client the CLI registered while the server runs is read from the database once.
            let generation = app.memory.client_generation();
            let wanted = id.clone();
            let read = app.readers.with(move |r| lookup::read_client(r, &wanted)).await?.map(Arc::new);
            if let Some(r) = &read {
                app.memory.cache_client(r.clone(), generation);
            }
            read
        }
    };
    let stored = record.as_ref().map(|r| r.secret_digest).unwrap_or(Digest([0; 32]));
    let matches = crypto::secret_matches(&presented.secret, &stored);
    match record {
        Some(r) if matches => {
            app.lockouts.succeed(&key);
            Ok(r)
        }
        known => {
            let failure = app.lockouts.fail(key, now);
            // Only failures against a registered client are evidence worth an event; random
            // client ids would let anyone flood the log.
            if known.is_some() {
                record_failure(app, ctx, AuthMethod::ClientSecret, id, None, failure).await?;
            }
            Err(ApiError::InvalidClient(BAD_CREDENTIALS.into()))
        }
    }
}

/// Whole seconds to wait, at least one.
pub fn retry_after(left_ms: i64) -> u64 {
    (left_ms.max(0) as u64).div_ceil(1000).max(1)
}

/// Appends an `AuthenticationFailed` event and waits for it to be durable.
pub async fn record_failure(
    app: &AppState,
    ctx: &RequestContext,
    method: AuthMethod,
    client_id: ClientId,
    username: Option<String>,
    failure: Failure,
) -> Result<(), ApiError> {
    let meta = RequestMeta {
        request_id: Some(ctx.request_id.clone()),
        client_id: Some(client_id.to_string()),
        username: username.clone(),
        grant_type: None,
        peer: Some(ctx.peer.clone()),
    };
    let event = AuthenticationFailed {
        method,
        client_id,
        username,
        consecutive_failures: failure.consecutive,
        locked_until: failure.locked_until,
    };
    app.writer.execute(Envelope { command: Command::RecordAuthFailure(event), meta }).await??;
    Ok(())
}

/// Who is introspecting.
#[derive(Debug)]
pub enum Caller {
    SuperAdmin,
    Client(ClientId),
}

/// The introspection caller: the super admin's credentials, or a registered client's.
pub async fn introspection_caller(
    app: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    match app.admin.check(app, headers)? {
        None => Ok(Caller::SuperAdmin),
        Some(presented) => Ok(Caller::Client(authenticate(app, ctx, presented).await?.client_id.clone())),
    }
}

/// Only the super admin may manage clients.
pub fn require_super_admin(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented =
        basic(headers)?.ok_or_else(|| ApiError::InvalidClient("authentication is required".into()))?;
    if is_super_admin(app, &presented) {
        Ok(())
    } else {
        Err(ApiError::InvalidClient("the super admin's credentials are required".into()))
    }
}

/// The super admin's check, done once: the digests of the configured username and password,
/// and the digest of the last `Authorization` header that proved to be the super admin's. Only
/// digests are kept, never a plaintext. The credentials come from `deployment.toml` and change
/// only with a restart, which builds a new `AppState` and so a new, empty cache.
#[derive(Default)]
pub struct AdminCheck {
    configured: OnceLock<(Digest, Digest)>,
    accepted: RwLock<Option<Digest>>,
}

impl AdminCheck {
    /// `None` when the request carries the super admin's credentials, else the credentials
    /// presented: one digest of the header for a header seen before, else the full check (both
    /// parts always compared, in constant time).
    fn check(&self, app: &AppState, headers: &HeaderMap) -> Result<Option<Presented>, ApiError> {
        let header = headers.get(header::AUTHORIZATION).map(|v| Digest::of(v.as_bytes()));
        if let (Some(seen), Some(known)) = (header, *self.accepted.read().unwrap_or_else(|p| p.into_inner()))
        {
            if bool::from(seen.0.ct_eq(&known.0)) {
                return Ok(None);
            }
        }
        let presented =
            basic(headers)?.ok_or_else(|| ApiError::InvalidClient("authentication is required".into()))?;
        let is_admin = self.matches(app, &presented);
        if !is_admin {
            return Ok(Some(presented));
        }
        if let Some(seen) = header {
            *self.accepted.write().unwrap_or_else(|p| p.into_inner()) = Some(seen);
        }
        Ok(None)
    }

    fn matches(&self, app: &AppState, presented: &Presented) -> bool {
        let (username, password) = self.configured.get_or_init(|| {
            let admin = &app.settings.super_admin;
            (Digest::of(admin.username.as_bytes()), Digest::of(admin.password.as_bytes()))
        });
        let id = Digest::of(presented.id.as_bytes()).0.ct_eq(&username.0);
        let secret = Digest::of(presented.secret.as_bytes()).0.ct_eq(&password.0);
        (id & secret).into()
    }
}

/// Both parts compared in constant time, and both always compared.
fn is_super_admin(app: &AppState, presented: &Presented) -> bool {
    app.admin.matches(app, presented)
}
