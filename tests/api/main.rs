//! Integration tests: each test starts the real `token-ledger` binary on its own temporary folder
//! and speaks HTTP to it. The tests are the specification of the service's observable behaviour.

mod abuse;
mod browser;
mod cli;
mod code_clients;
mod code_errors;
mod code_flow;
mod concurrency;
mod contract;
mod crash;
mod curl;
mod damaged;
mod dcr;
mod disk;
mod events;
mod expiry;
mod extension;
mod helpers;
mod http2;
mod interop;
mod introspect;
mod jwt;
mod lockout;
mod metadata;
mod multinode;
mod ops;
mod postgres;
mod refresh;
mod replay_cli;
mod restart;
mod revoke;
mod secrets;
mod seed;
mod tls;
mod token;
mod token_errors;
