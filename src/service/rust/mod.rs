//! Services written in Rust: what the public API's `Service`, `Class` and
//! `Obj` are. [`root`] is the service a client gets as `conn.root`,
//! [`class`] how a Rust type shows its methods and attributes, [`values`]
//! what travels and its conversions, [`remote`] the peer's objects,
//! `session` a connection's object table and dispatch, [`error`] what
//! goes wrong, as the peer and the caller see it.
//!
//! `crate::api` re-exports what users name; the client and the server
//! builder there are built on these.

pub mod class;
pub mod error;
pub mod remote;
pub mod root;
mod session;
pub mod values;
