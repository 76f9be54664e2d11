//! The operator commands that talk to a running gateway: `keys import|list|check|enable|disable`
//! and `tokens create|list|revoke`.
//!
//! A decision a newcomer would question: these commands hold no business logic. They call the
//! admin API, so the server stays the one place where keys are parsed, deduplicated, probed and
//! counted, and a running gateway sees every change at once. The one exception is `keys import`
//! with no server listening: it writes to the database through the same store and the same
//! parser ([`pool_core::import`]) the server uses, because a first import often comes before the
//! first start.

pub mod client;
mod events;
pub mod import;
mod import_offline;
mod import_summary;
pub mod keys;
mod output;
pub mod tokens;
