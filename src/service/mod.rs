//! Services: what answers a connection's requests.
//!
//! [`classic`] is rpyc's classic (`SlaveService`) service on an embedded
//! CPython; the connection hands it requests through
//! [`crate::connection::Session`].

pub mod classic;
mod convert;
mod link;
