//! `ledger_replay`: answers an auditor's and an operator's questions from the token-ledger event
//! log alone. Every view it shows is folded through the server's own projection code
//! (`token_ledger::store::projection::apply`), never through a second copy of the rules.
//!
//! The commands of the `ledger-replay` binary each live in one module: [`verify`], [`export`],
//! [`audit`], [`replay`], [`rebuild`] and [`stats`]. [`source`] reads a database or an exported
//! JSON Lines log in position order; [`shadow`] is the fold into a scratch views database.
#![forbid(unsafe_code)]

pub mod archive;
pub mod audit;
pub mod error;
pub mod export;
pub mod progress;
pub mod rebuild;
pub mod rebuild_pg;
pub mod replay;
pub mod shadow;
pub mod source;
pub mod stats;
pub mod text;
pub mod time;
pub mod token_view;
pub mod verify;
mod views_diff;

pub use error::ReplayError;
