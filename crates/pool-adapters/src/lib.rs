//! Adapters: the ports of `pool-core`, implemented once per technology.
//!
//! - [`sql`]: the store of record on SQLite (default, zero setup) or PostgreSQL (clusters), chosen
//!   at run time from the URL, never by a compile-time feature.
//! - [`upstream`]: the HTTP client that talks to providers, owner of every upstream timeout.
//! - [`clock`]: the system clock behind the domain's `Clock` port.
//! - [`cipher`]: upstream keys encrypted at rest, a decorator around any store.
//! - [`guard`]: a deadline on every store call, and the store's health as calls find it.

pub mod cipher;
pub mod clock;
pub mod guard;
pub mod sql;
pub mod upstream;
