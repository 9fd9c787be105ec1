//! The domain: newtypes, events and the pure rules that turn commands into events.

pub mod events;
pub mod grant;
pub mod types;
