//! What makes a server a system daemon: logging, sd-notify and signals.

pub mod accept;
pub mod dnssd;
pub mod listener;
pub mod log;
pub mod notify;
pub mod signals;
