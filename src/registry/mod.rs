//! The registry: a bonjour-like agent where servers register their service
//! names and port and clients ask where a service is (rpyc 6.0.2
//! `rpyc/utils/registry.py`). Its wire format is [`crate::protocol::registry`],
//! shared by the registry server and the registrar that `rpyc-classic
//! --register` runs.

pub mod budget;
pub mod registrar;
pub mod server;
pub mod service;
pub mod sockets;
pub mod source;
pub mod table;
pub mod tcp;
pub mod throttle;
