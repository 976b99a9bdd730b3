//! rpycd: the RPyC classic server and registry server as system daemons.
//!
//! The wire protocol lives in [`protocol`] and never touches a socket, a
//! thread or Python; everything that does IO builds on it.

pub mod cli;
pub mod protocol;
