//! The RPyC wire protocol (rpyc 6.0.2), sans IO: bytes in, values out.
//!
//! Layers, outermost first: [`frame`] cuts a byte stream into payloads,
//! [`message`] turns a payload into a request, reply or exception, and
//! [`brine`] is the value serializer both of them use.

pub mod brine;
pub mod bulk;
mod bytebuf;
mod deflate;
pub mod frame;
pub mod message;

pub use brine::Value;
pub use frame::{Decoder as FrameDecoder, FrameError, Limits};
pub use message::{Boxed, Handler, IdPack, Message, MessageError, RemoteException};

#[doc(hidden)]
pub mod fuzz_checks;
