//! rpycd: the RPyC classic server and registry server as system daemons.
//!
//! The wire protocol lives in [`protocol`] and never touches a socket, a
//! thread or Python; everything that does IO builds on it.

pub mod api;
pub mod app;
pub mod cli;
pub mod connection;
pub mod daemon;
pub mod memory;
pub mod registry;
pub mod server;
pub mod service;
mod sync;
pub mod transport;

/// The wire protocol, from the `rpycd-proto` crate.
pub use rpycd_proto as protocol;

pub use api::{connect, Server, Service};

pub use rpycd_proto::{RPYC5_VERSION, RPYC_VERSION};

// README.md's Rust code is compiled as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
