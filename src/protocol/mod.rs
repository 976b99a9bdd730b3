//! The RPyC wire protocol (rpyc 6.0.2), sans IO: bytes in, values out.
//!
//! Layers, outermost first: [`frame`] cuts a byte stream into payloads,
//! [`message`] turns a payload into a request, reply or exception, and
//! [`brine`] is the value serializer both of them use.

pub mod brine;
pub mod frame;
pub mod message;
