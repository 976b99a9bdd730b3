//! The RPyC wire protocol (rpyc 6.0.2), sans IO: bytes in, values out.
//!
//! Layers, outermost first: [`frame`] cuts a byte stream into payloads
//! (and [`compress`] makes their zlib bodies), [`message`] turns a payload
//! into a request, reply or exception, and [`brine`] is the value
//! serializer both of them use. [`registry`] is the registry's wire format,
//! also brine. [`x509`] reads certificates strictly, for what rustls leaves
//! to its user. Everything here reads bytes a peer or a file chose, so it
//! is safe code that never panics on them, and it is fuzzed
//! (`fuzz/`, through [`fuzz_checks`]). [`host`] is all it asks of the
//! process it runs in.

#![forbid(unsafe_code)]

pub mod brine;
mod bytebuf;
pub mod compress;
pub mod frame;
pub mod host;
pub mod message;
pub mod proxy;
pub mod registry;
pub mod x509;

pub use brine::Value;
pub use frame::{Decoder as FrameDecoder, FrameError, Limits};
pub use message::{Boxed, Handler, IdPack, Message, MessageError, RemoteException};

#[doc(hidden)]
pub mod fuzz_checks;

/// The rpyc release whose protocol rpycd speaks; reported to clients as
/// the server's version in exceptions, as rpyc reports its own.
pub const RPYC_VERSION: &str = "6.0.2";

/// What rpycd reports to a client speaking rpyc 5's protocol (the newest
/// 5.x release, whose wire format it speaks).
pub const RPYC5_VERSION: &str = "5.3.1";
