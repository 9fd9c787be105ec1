//! token-ledger: an OAuth2 token service whose source of truth is an append-only event log.
//!
//! Layers: `domain` (pure rules and events), `store` (SQLite log, projections, the single
//! writer), `http` (axum handlers and the one error type), `app` (start-up), `config`.
#![forbid(unsafe_code)]

pub mod app;
pub mod archive;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod lockout;
pub mod logging;
pub mod metrics;
pub mod store;
pub mod tls;
pub mod tokens;
