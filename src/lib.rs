//! rpycd: the RPyC classic server and registry server as system daemons.
//!
//! The wire protocol lives in [`protocol`] and never touches a socket, a
//! thread or Python; everything that does IO builds on it.

pub mod api;
pub mod cli;
pub mod connection;
pub mod daemon;
pub mod protocol;
pub mod registry;
pub mod server;
pub mod service;
mod sync;

pub use api::{connect, Server, Service};

/// The rpyc release whose protocol rpycd speaks; reported to clients as
/// the server's version in exceptions, as rpyc reports its own.
pub const RPYC_VERSION: &str = "6.0.2";

/// What rpycd reports to a client speaking rpyc 5's protocol (the newest
/// 5.x release, whose wire format it speaks).
pub const RPYC5_VERSION: &str = "5.3.1";

// README.md's Rust code is compiled as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
