//! Channel framing (rpyc 6.0.2 `rpyc/core/channel.py`): a 4-byte big-endian
//! length, a one-byte "compressed" flag, the payload, and a `\n` that makes
//! line-buffered transports flush. rpyc compresses payloads over 3000 bytes
//! with zlib at level 1; so do we, except payloads that do not shrink
//! (random or already compressed data), which go plain: the flag is per
//! frame and rpyc's reader takes either (`Channel.recv` inflates only
//! frames flagged 1), so this changes nothing a peer can see but the time.
//!
//! The decoder takes bytes as they arrive and yields whole payloads. It checks
//! a header against the limits before buffering the body it announces, and it
//! inflates compressed bodies with a cap, so neither a lying length nor a zlib
//! bomb can make it allocate past what the limits allow. Given a locator, it
//! reads a large plain frame's first bulk byte string into memory of its own
//! (the value's final home) instead of into the frame buffer.

use std::borrow::Cow;
use std::io::{self, IoSlice, Write};

use flate2::{Decompress, FlushDecompress, Status};
use thiserror::Error;

use super::brine::{Bulk, Detached, Located};
use super::bytebuf::BulkMemory;

pub const HEADER_LEN: usize = 5;
pub const FLUSHER: u8 = b'\n';
/// rpyc compresses payloads strictly longer than this.
pub const COMPRESSION_THRESHOLD: usize = 3000;
pub const COMPRESSION_LEVEL: u32 = 1;
/// Limits' default: large enough for real bulk transfers.
pub const DEFAULT_MAX_SIZE: usize = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest length field accepted (the body as sent, compressed or not).
    pub max_frame_size: usize,
    /// Largest payload accepted after decompression.
    pub max_payload_size: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_frame_size: DEFAULT_MAX_SIZE,
            max_payload_size: DEFAULT_MAX_SIZE,
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge { len: usize, limit: usize },
    #[error("payload inflates past the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("frame has compression flag {flag}, expected 0 or 1")]
    BadFlag { flag: u8 },
    #[error("frame ends with byte {byte:#04x} instead of a newline")]
    BadTrailer { byte: u8 },
    #[error("compressed payload is not a valid zlib stream: {reason}")]
    BadCompression { reason: String },
    #[error("no memory for a payload of {len} bytes")]
    OutOfMemory { len: usize },
    #[error("payload of {len} bytes does not fit a frame's 4-byte length")]
    Unencodable { len: usize },
}

mod decode;
mod encode;
#[cfg(test)]
pub(crate) mod tests;

pub use decode::*;
pub use encode::*;
