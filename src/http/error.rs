//! The one error type of the HTTP layer. Only it chooses a status and an RFC 6749 section 5.2
//! error code; internal causes are logged, never sent.

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::domain::grant::DomainError;
use crate::store::ledger::Refusal;
use crate::store::StoreError;

type Text = Cow<'static, str>;

#[derive(Debug)]
pub enum ApiError {
    InvalidRequest(Text),
    /// 401 with `WWW-Authenticate` (RFC 6749 section 5.2).
    InvalidClient(Text),
    InvalidGrant(Text),
    UnauthorizedClient(Text),
    /// A client acting on another client's token (RFC 7009 section 2.1): refused with 401, as WSO2.
    TokenOfAnotherClient,
    UnsupportedGrantType,
    InvalidScope(Text),
    InvalidClientMetadata(Text),
    /// RFC 7591 section 3.2.2: a redirect URI that cannot be registered.
    InvalidRedirectUri(Text),
    PayloadTooLarge,
    /// The body did not arrive within the body timeout: 408, and the connection is closed.
    RequestTimeout,
    /// Too many failed client authentications from this address: 401 with `Retry-After`.
    ClientLockedOut {
        retry_after_secs: u64,
    },
    /// Too many failed passwords for this user, client and address: 400 with `Retry-After`.
    PasswordLockedOut {
        retry_after_secs: u64,
    },
    NotFound,
    /// The ledger cannot be written right now (disk full, read-only, locked): 503, retry later.
    Unavailable,
    Internal,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ApiError {
    pub fn invalid_request(text: impl Into<Text>) -> Self {
        Self::InvalidRequest(text.into())
    }

    fn parts(&self) -> (StatusCode, &str, &str) {
        use StatusCode as S;
        match self {
            Self::InvalidRequest(d) => (S::BAD_REQUEST, "invalid_request", d),
            Self::InvalidClient(d) => (S::UNAUTHORIZED, "invalid_client", d),
            Self::InvalidGrant(d) => (S::BAD_REQUEST, "invalid_grant", d),
            Self::UnauthorizedClient(d) => (S::BAD_REQUEST, "unauthorized_client", d),
            Self::TokenOfAnotherClient => {
                (S::UNAUTHORIZED, "unauthorized_client", "the token was not issued to this client")
            }
            Self::UnsupportedGrantType => {
                (S::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant_type value")
            }
            Self::InvalidScope(d) => (S::BAD_REQUEST, "invalid_scope", d),
            Self::InvalidClientMetadata(d) => (S::BAD_REQUEST, "invalid_client_metadata", d),
            Self::InvalidRedirectUri(d) => (S::BAD_REQUEST, "invalid_redirect_uri", d),
            Self::PayloadTooLarge => {
                (S::PAYLOAD_TOO_LARGE, "invalid_request", "the request body is too large")
            }
            Self::RequestTimeout => {
                (S::REQUEST_TIMEOUT, "invalid_request", "the request body did not arrive in time")
            }
            Self::ClientLockedOut { .. } => (
                S::UNAUTHORIZED,
                "invalid_client",
                "too many failed attempts; retry after the Retry-After delay",
            ),
            Self::PasswordLockedOut { .. } => (
                S::BAD_REQUEST,
                "invalid_grant",
                "too many failed attempts; retry after the Retry-After delay",
            ),
            Self::NotFound => (S::NOT_FOUND, "not_found", "no such resource"),
            Self::Unavailable => (
                S::SERVICE_UNAVAILABLE,
                "server_error",
                "the token ledger cannot be written right now; try again",
            ),
            Self::Internal => (S::INTERNAL_SERVER_ERROR, "server_error", "Internal Server Error."),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, description) = self.parts();
        let mut response =
            (status, Json(ErrorBody { error, error_description: description })).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if status == StatusCode::UNAUTHORIZED {
            headers
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"token-ledger\""));
        }
        let retry_after = match self {
            Self::Unavailable => Some(1),
            Self::ClientLockedOut { retry_after_secs } | Self::PasswordLockedOut { retry_after_secs } => {
                Some(retry_after_secs)
            }
            _ => None,
        };
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still trickle in: do not keep reading this connection.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(_)
            | StoreError::BatchFailed(_)
            | StoreError::Conflict(_)
            | StoreError::Retry(_) => {
                tracing::warn!(error = %e, "ledger unavailable");
                Self::Unavailable
            }
            other => {
                tracing::error!(error = %other, "internal error");
                Self::Internal
            }
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Domain(DomainError::InvalidGrant(d)) => Self::InvalidGrant(d.into()),
            Refusal::Domain(DomainError::InvalidScope) => {
                Self::InvalidScope("the requested scope exceeds the scope originally granted".into())
            }
            Refusal::Domain(DomainError::TokenOfAnotherClient) => Self::TokenOfAnotherClient,
            Refusal::UnknownClient => Self::InvalidClient("Client credentials are invalid.".into()),
            Refusal::UserExists => Self::invalid_request("the user already exists"),
        }
    }
}
