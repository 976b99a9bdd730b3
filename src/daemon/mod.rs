//! What makes a server a system daemon: logging (and, as issues land,
//! sd-notify and signals).

pub mod log;
