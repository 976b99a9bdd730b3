//! The Rust API: services written in Rust for stock Python rpyc clients,
//! a server builder to host them, and a Rust client for any rpyc server.
//!
//! - A type becomes reachable by reference when it implements [`Object`]:
//!   its [`Class`] names the methods (`proxy.add(1, 2)`, also as
//!   `proxy.exposed_add`) and attributes a client may use. A [`Service`] is
//!   the object a client gets as `conn.root`.
//! - Values travel as [`Obj`]: brine values by value, tuples, and references
//!   to either side's objects ([`RemoteObject`] for the peer's, such as a
//!   callback; [`Obj::object`] to send one of ours).
//! - A method's [`Error`] is raised in the client as the Python class it
//!   names (`Error::value_error("...")` is a `ValueError`).
//! - [`Server`] serves a service in any of the daemons' modes; [`connect`]
//!   returns a [`Client`] for rpyc servers, Python's or ours.
//!
//! A counter service, and a client using it:
//!
//! ```
//! use std::sync::atomic::{AtomicI64, Ordering};
//! use rpycd::api::{Class, Error, Object, Service};
//!
//! #[derive(Default)]
//! struct CounterService {
//!     total: AtomicI64,
//! }
//!
//! impl Object for CounterService {
//!     fn describe(class: &mut Class<Self>) {
//!         class
//!             .method("add", |this, call| {
//!                 let (a, b): (i64, i64) = call.params(&["a", "b"])?;
//!                 this.total.fetch_add(1, Ordering::Relaxed);
//!                 Ok(a + b)
//!             })
//!             .method("div", |_, call| {
//!                 let (a, b): (f64, f64) = call.params(&["a", "b"])?;
//!                 if b == 0.0 {
//!                     return Err(Error::zero_division_error("division by zero"));
//!                 }
//!                 Ok(a / b)
//!             })
//!             .attribute("calls", |this| Ok(this.total.load(Ordering::Relaxed)));
//!     }
//! }
//!
//! impl Service for CounterService {}
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let running = rpycd::Server::new(CounterService::default())
//!     .tcp("127.0.0.1:0")
//!     .bind()?
//!     .spawn()?;
//! let addr = running.local_addr().expect("a TCP listener");
//!
//! let root = rpycd::connect(addr)?.root()?;
//! let sum: i64 = root.callattr("add", (1, 2))?;
//! assert_eq!(sum, 3);
//! let error = root.callattr::<f64>("div", (1.0, 0.0)).unwrap_err();
//! assert!(error.is_builtin("ZeroDivisionError"));
//! running.stop()?;
//! # Ok(()) }
//! ```

mod builder;
mod client;
mod registration;

pub use crate::service::rust::class::{Call, Class, Object, EXPOSED_PREFIX};
pub use crate::service::rust::error::{Error, Exception};
pub use crate::service::rust::remote::{Peer, RemoteObject};
pub use crate::service::rust::root::{Service, ServiceFactory, VoidService};
pub use crate::service::rust::values::{
    Args, Bytes, FromObj, FromParams, IntoArgs, IntoObj, Local, Obj, ITERATION_LIMIT,
};
pub use crate::service::PeerInfo;
pub use builder::{Bound, Running, ServeError, Server, Stopper};
pub use client::{connect, connect_unix, connect_with, Client, CONNECT_TIMEOUT};
