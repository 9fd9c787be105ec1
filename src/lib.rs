//! token-ledger: an OAuth2 token service whose source of truth is an append-only event log.
#![forbid(unsafe_code)]

pub mod domain;
