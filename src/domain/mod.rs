//! The domain: newtypes, events and the pure rules that turn commands into events.

pub mod authorize;
pub mod authz_events;
pub mod client;
pub mod code;
pub mod events;
pub mod grant;
pub mod pkce;
pub mod types;
