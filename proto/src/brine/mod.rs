//! Brine, rpyc's serializer for immutable values (rpyc 6.0.2 `rpyc/core/brine.py`).
//!
//! Every value is a one-byte tag followed by its body. Encoding reproduces
//! Python's output byte for byte; decoding is stricter than Python's (which
//! reads short strings silently past the end of its input and ignores trailing
//! bytes) because a daemon must reject what a well-behaved peer never sends.

use std::fmt;

use thiserror::Error;

pub use super::bytebuf::{BulkMemory, ByteBuf};

pub const TAG_NONE: u8 = 0x00;
pub const TAG_EMPTY_STR: u8 = 0x01;
pub const TAG_EMPTY_TUPLE: u8 = 0x02;
pub const TAG_TRUE: u8 = 0x03;
pub const TAG_FALSE: u8 = 0x04;
pub const TAG_NOT_IMPLEMENTED: u8 = 0x05;
pub const TAG_ELLIPSIS: u8 = 0x06;
pub const TAG_UNICODE: u8 = 0x08;
pub const TAG_STR1: u8 = 0x0a;
pub const TAG_STR2: u8 = 0x0b;
pub const TAG_STR3: u8 = 0x0c;
pub const TAG_STR4: u8 = 0x0d;
pub const TAG_STR_L1: u8 = 0x0e;
pub const TAG_STR_L4: u8 = 0x0f;
pub const TAG_TUP1: u8 = 0x10;
pub const TAG_TUP2: u8 = 0x11;
pub const TAG_TUP3: u8 = 0x12;
pub const TAG_TUP4: u8 = 0x13;
pub const TAG_TUP_L1: u8 = 0x14;
pub const TAG_TUP_L4: u8 = 0x15;
pub const TAG_INT_L1: u8 = 0x16;
pub const TAG_INT_L4: u8 = 0x17;
pub const TAG_FLOAT: u8 = 0x18;
pub const TAG_SLICE: u8 = 0x19;
pub const TAG_FSET: u8 = 0x1a;
pub const TAG_COMPLEX: u8 = 0x1b;

/// Ints in this range travel as the single byte `value + IMM_INT_OFFSET`.
pub const IMM_INT_MIN: i64 = -0x30;
pub const IMM_INT_MAX: i64 = 0x9f;
pub const IMM_INT_OFFSET: i64 = 0x50;

/// How deeply tuples, slices and frozensets may nest, by default. Python's
/// own brine gives up (RecursionError) a little below 500 levels, so no real
/// peer sends more; the bound keeps our recursion and drops shallow.
pub const DEFAULT_MAX_DEPTH: usize = 512;

/// A value brine can carry.
///
/// Equality is structural identity, not Python equality: floats compare by
/// bit pattern (so a NaN equals itself and `0.0 != -0.0`) and frozensets by
/// element order, which is what byte-exact round trips need.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    NotImplemented,
    Ellipsis,
    Int(i64),
    /// An int outside the i64 range.
    BigInt(BigInt),
    Float(f64),
    Complex(f64, f64),
    Str(String),
    Bytes(ByteBuf),
    Slice(Box<[Value; 3]>),
    Tuple(Vec<Value>),
    /// Elements in the order the sender's hash seed put them.
    FrozenSet(Vec<Value>),
}

/// An int too large for i64, kept as its canonical decimal digits (the form
/// brine itself carries, so neither direction needs arithmetic).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BigInt {
    /// `-` for negatives, then digits without leading zeros.
    decimal: Box<str>,
}

impl BigInt {
    pub fn as_decimal(&self) -> &str {
        &self.decimal
    }

    pub fn is_negative(&self) -> bool {
        self.decimal.starts_with('-')
    }
}

impl fmt::Display for BigInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.decimal)
    }
}

impl Value {
    /// Parses an int the way Python's `int(bytes)` does (surrounding ASCII
    /// whitespace, a sign, `_` between digits), giving `Int` when it fits in
    /// i64 and `BigInt` otherwise. `None` if the text is not an int.
    pub fn int_from_decimal(text: &[u8]) -> Option<Value> {
        let text = text.trim_ascii();
        let (negative, digits) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            Some((b'+', rest)) => (false, rest),
            _ => (false, text),
        };
        if digits.first()?.is_ascii_digit() && digits.last()?.is_ascii_digit() {
            // fall through: both ends are digits, so underscores are inner
        } else {
            return None;
        }
        let mut canonical = String::with_capacity(digits.len() + 1);
        let mut previous_underscore = false;
        for &byte in digits {
            match byte {
                b'0'..=b'9' => {
                    previous_underscore = false;
                    if !(canonical.is_empty() && byte == b'0') {
                        canonical.push(byte as char);
                    }
                }
                b'_' if !previous_underscore => previous_underscore = true,
                _ => return None,
            }
        }
        if canonical.is_empty() {
            return Some(Value::Int(0));
        }
        if negative {
            canonical.insert(0, '-');
        }
        Some(match canonical.parse::<i64>() {
            Ok(small) => Value::Int(small),
            Err(_) => Value::BigInt(BigInt {
                decimal: canonical.into_boxed_str(),
            }),
        })
    }

    /// An unsigned int (object ids are addresses, and may pass i64::MAX).
    pub fn from_u64(value: u64) -> Value {
        match i64::try_from(value) {
            Ok(small) => Value::Int(small),
            Err(_) => Value::BigInt(BigInt {
                decimal: value.to_string().into_boxed_str(),
            }),
        }
    }

    /// The value as a u64, if it is an int in that range.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(small) => u64::try_from(*small).ok(),
            Value::BigInt(big) => big.as_decimal().parse().ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(small) => Some(*small),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_tuple(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    pub fn into_tuple(self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(items) => Some(items),
            _ => None,
        }
    }

    pub fn str(text: impl Into<String>) -> Value {
        Value::Str(text.into())
    }

    /// About how many bytes the value encodes to: exact for the long parts
    /// (bytes, strings), a few bytes each for the rest. Lets an encoder
    /// reserve once instead of growing (and copying) a large buffer.
    pub fn size_hint(&self) -> usize {
        match self {
            Value::Str(text) => text.len() + 5,
            Value::Bytes(bytes) => bytes.len() + 5,
            Value::BigInt(big) => big.as_decimal().len() + 5,
            Value::Tuple(items) | Value::FrozenSet(items) => {
                5 + items.iter().map(Value::size_hint).sum::<usize>()
            }
            Value::Slice(parts) => 1 + parts.iter().map(Value::size_hint).sum::<usize>(),
            _ => 9,
        }
    }

    /// Encodes with the default depth limit.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Appends the brine form of the value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_value(self, out, DEFAULT_MAX_DEPTH)
    }

    /// Appends the brine form of the value to `sink`.
    pub fn encode_to<'v>(&'v self, sink: &mut Sink<'_, 'v>) -> Result<(), EncodeError> {
        encode_value_to(self, sink, DEFAULT_MAX_DEPTH)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (None, None) | (NotImplemented, NotImplemented) | (Ellipsis, Ellipsis) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (BigInt(a), BigInt(b)) => a == b,
            (Float(a), Float(b)) => a.to_bits() == b.to_bits(),
            (Complex(ar, ai), Complex(br, bi)) => {
                ar.to_bits() == br.to_bits() && ai.to_bits() == bi.to_bits()
            }
            (Str(a), Str(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Slice(a), Slice(b)) => a == b,
            (Tuple(a), Tuple(b)) | (FrozenSet(a), FrozenSet(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::Int(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Str(value.to_owned())
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Bool(value)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("a {what} of {len} items or bytes exceeds brine's 4 GiB length field")]
    TooLong { what: &'static str, len: usize },
    #[error("value nests too deeply for brine")]
    TooDeep,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("brine data ends early at offset {offset}")]
    Truncated { offset: usize },
    #[error("unknown brine tag {tag:#04x} at offset {offset}")]
    UnknownTag { tag: u8, offset: usize },
    #[error("brine value nests deeper than {limit} levels at offset {offset}")]
    TooDeep { limit: usize, offset: usize },
    #[error("brine string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: usize },
    #[error("brine int at offset {offset} is not a decimal number")]
    InvalidInt { offset: usize },
    #[error("brine {what} at offset {offset} has a malformed body")]
    Malformed { what: &'static str, offset: usize },
    #[error("{count} bytes follow the brine value at offset {offset}")]
    TrailingBytes { count: usize, offset: usize },
    #[error("brine value at offset {offset} takes more memory than the {limit} bytes allowed")]
    TooMuchMemory { limit: usize, offset: usize },
}

/// What decoding one value may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// How deeply tuples, slices and frozensets may nest.
    pub max_depth: usize,
    /// Bytes the decoded value may occupy in memory: its nodes, the room
    /// reserved for a tuple's items, and the text and bytes it copies out
    /// of the input. A count in the input is a claim, not a fact: a tuple
    /// of a billion items costs only as it is filled, and is charged here
    /// before its room is reserved, so no input reserves past this.
    pub max_memory: usize,
}

impl DecodeLimits {
    /// The default depth, and memory for any value whose input is small
    /// enough to be worth decoding (a value takes at most
    /// [`MEMORY_PER_INPUT_BYTE`] times its input).
    pub fn for_input(len: usize) -> DecodeLimits {
        DecodeLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_memory: len.saturating_mul(MEMORY_PER_INPUT_BYTE),
        }
    }

    /// For messages of at most `max_message` bytes: what one of them may
    /// take decoded is a small multiple of that, whatever its counts claim
    /// and whatever it inflated from.
    pub fn for_messages(max_message: usize, max_depth: usize) -> DecodeLimits {
        DecodeLimits {
            max_depth,
            max_memory: max_message
                .saturating_mul(DECODED_PER_MESSAGE_BYTE)
                .max(MIN_DECODED_MEMORY),
        }
    }
}

/// The most memory one byte of a valid input makes the decoder take: a
/// one-byte item is a node in its tuple's room (never reserved past the
/// count, which the items must fill), a slice's parts are a second time in
/// their box, and text and bytes are copied out.
pub const MEMORY_PER_INPUT_BYTE: usize = 2 * std::mem::size_of::<Value>() + 1;

/// A decoded message may take this many times the largest message
/// allowed: room for real payloads (a bytes value is one copy of its
/// bytes; a tuple of ints several bytes each takes ~4x), while a payload
/// of one-byte items claiming everything cannot turn a 32 MiB limit into
/// a gigabyte (each such item is a 32-byte node).
pub const DECODED_PER_MESSAGE_BYTE: usize = 2;
/// ...and never less than this, so a small limit leaves room for the
/// handshake's nested tuples.
pub const MIN_DECODED_MEMORY: usize = 1 << 20;

/// Room reserved for a tuple's items before any is read; more is reserved
/// as items arrive, by doubling, each step charged to the memory budget.
const FIRST_ROOM: usize = 16;

/// What follows a tag: brine's grammar in one table, which the decoder
/// and the bulk-string locator both read, so that they cannot disagree on
/// where a token ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Nothing: the tag is the whole value (None, booleans, small ints).
    Atom,
    /// A byte string of this many bytes (0 to 4, in the tag itself).
    Bytes(usize),
    /// A byte string whose length is in the next 1 or 4 bytes.
    SizedBytes(usize),
    /// An int's decimal digits, their count in the next 1 or 4 bytes.
    SizedInt(usize),
    /// This many bytes of IEEE doubles: a float (8) or a complex (16).
    Doubles(usize),
    /// A tuple of this many items (0 to 4, in the tag itself).
    Tuple(usize),
    /// A tuple whose item count is in the next 1 or 4 bytes.
    SizedTuple(usize),
    /// A str: the byte string that follows is its UTF-8.
    Text,
    /// A slice or a frozenset: the tuple that follows holds its parts.
    Wrapped,
    Unknown,
}

/// The shape of what `tag` starts.
pub fn shape(tag: u8) -> Shape {
    match tag {
        TAG_NONE | TAG_TRUE | TAG_FALSE | TAG_NOT_IMPLEMENTED | TAG_ELLIPSIS => Shape::Atom,
        0x20..=0xef => Shape::Atom,
        TAG_EMPTY_STR => Shape::Bytes(0),
        TAG_STR1..=TAG_STR4 => Shape::Bytes(usize::from(tag - TAG_STR1) + 1),
        TAG_STR_L1 => Shape::SizedBytes(1),
        TAG_STR_L4 => Shape::SizedBytes(4),
        TAG_INT_L1 => Shape::SizedInt(1),
        TAG_INT_L4 => Shape::SizedInt(4),
        TAG_FLOAT => Shape::Doubles(8),
        TAG_COMPLEX => Shape::Doubles(16),
        TAG_EMPTY_TUPLE => Shape::Tuple(0),
        TAG_TUP1..=TAG_TUP4 => Shape::Tuple(usize::from(tag - TAG_TUP1) + 1),
        TAG_TUP_L1 => Shape::SizedTuple(1),
        TAG_TUP_L4 => Shape::SizedTuple(4),
        TAG_UNICODE => Shape::Text,
        TAG_SLICE | TAG_FSET => Shape::Wrapped,
        _ => Shape::Unknown,
    }
}

mod decode;
mod encode;
mod locate;
#[cfg(test)]
mod tests;

pub use decode::*;
pub use encode::*;
pub use locate::*;
