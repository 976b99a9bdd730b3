//! Services on an embedded CPython: the object space every Python-side
//! service shares (the `rpycd` package, embedded by `embedded`), the
//! classic service on it, and any Python rpyc `Service` class hosted on it.
//!
//! [`classic`] is rpyc's classic `SlaveService`; [`hosted`] serves a
//! user's `Service` class (`rpyc-serve`); `convert` turns brine values
//! into Python objects and back; `link` is how the package's Python code
//! calls back into its connection; `thread_state` keeps a thread's
//! Python state between requests.

pub mod authenticator;
pub mod classic;
mod convert;
mod embedded;
pub mod hosted;
mod link;
mod thread_state;
