//! The specification of `ledger-replay`, through the real binary, on databases the real
//! `token-ledger` server wrote (one scripted history shared by the read-only tests, copied by
//! the tests that damage it), and on the recorded logs under `replay/fixtures/`.

mod archive;
mod audit;
mod cleanup;
mod errors;
mod export;
mod fixtures;
mod helpers;
mod postgres;
mod rebuild;
mod rebuild_archived;
mod record;
mod replay_at;
mod stats;
mod verify;
