//! The harness: the real server on a temporary folder, the real `ledger-replay`, the scripted
//! history every read-only test shares, and an attacker's tools.

pub mod binaries;
pub mod deployment;
pub mod history;
pub mod server;
pub mod tamper;

pub use binaries::{ledger_replay, Run};
pub use deployment::{Archiving, Config, Deployment};
pub use history::{history, History};
pub use server::Server;
