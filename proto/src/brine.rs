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
const IMM_INT_OFFSET: i64 = 0x50;

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

// ----------------------------------------------------------------------------
// encoding

/// Writes the header of a tuple of `len` items; the caller then encodes the
/// items. Lets other layers emit tuples without building a `Value` first.
pub fn encode_tuple_header(len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match len {
        0 => out.push(TAG_EMPTY_TUPLE),
        1..=4 => out.push(TAG_TUP1 + (len as u8 - 1)),
        5..=255 => out.extend_from_slice(&[TAG_TUP_L1, len as u8]),
        _ => {
            out.push(TAG_TUP_L4);
            out.extend_from_slice(&length_u32("tuple", len)?.to_be_bytes());
        }
    }
    Ok(())
}

/// Writes a bytes value.
pub fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
    encode_bytes_header(bytes.len(), out)?;
    out.extend_from_slice(bytes);
    Ok(())
}

/// Writes the tag and length of a bytes value of `len` bytes, whose data
/// follows.
fn encode_bytes_header(len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match len {
        0 => out.push(TAG_EMPTY_STR),
        1..=4 => out.push(TAG_STR1 + (len as u8 - 1)),
        5..=255 => out.extend_from_slice(&[TAG_STR_L1, len as u8]),
        _ => {
            out.push(TAG_STR_L4);
            out.extend_from_slice(&length_u32("bytes", len)?.to_be_bytes());
        }
    }
    Ok(())
}

/// Writes a str value.
pub fn encode_str(text: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    out.push(TAG_UNICODE);
    encode_bytes(text.as_bytes(), out)
}

/// Writes an int value.
pub fn encode_int(value: i64, out: &mut Vec<u8>) {
    if (IMM_INT_MIN..=IMM_INT_MAX).contains(&value) {
        out.push((value + IMM_INT_OFFSET) as u8);
    } else {
        // i64 has at most 20 digits: always the one-byte length form
        let digits = value.to_string();
        out.extend_from_slice(&[TAG_INT_L1, digits.len() as u8]);
        out.extend_from_slice(digits.as_bytes());
    }
}

fn encode_decimal(digits: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if digits.len() < 256 {
        out.extend_from_slice(&[TAG_INT_L1, digits.len() as u8]);
    } else {
        out.push(TAG_INT_L4);
        out.extend_from_slice(&length_u32("int", digits.len())?.to_be_bytes());
    }
    out.extend_from_slice(digits.as_bytes());
    Ok(())
}

fn length_u32(what: &'static str, len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::TooLong { what, len })
}

/// Byte strings at least this long are bulk: an encoding may leave them
/// out, to be written from where they are (see [`Detached`]), and a reader
/// reads one into memory of its own (see [`find_bulk`]).
pub const BULK_MIN: usize = 1 << 20;

/// A byte string left out of an encoding: its data belongs at `at` in the
/// encoded buffer, right after its length header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detached<'v> {
    pub at: usize,
    pub bytes: &'v [u8],
}

/// Where an encoding goes: a buffer, and, when bulk byte strings are to be
/// left out of it, the list of where they belong.
pub struct Sink<'o, 'v> {
    pub buf: &'o mut Vec<u8>,
    detached: Option<&'o mut Vec<Detached<'v>>>,
}

impl<'o, 'v> Sink<'o, 'v> {
    /// Everything into `buf`.
    pub fn plain(buf: &'o mut Vec<u8>) -> Sink<'o, 'v> {
        Sink {
            buf,
            detached: None,
        }
    }

    /// Byte strings of [`BULK_MIN`] bytes or more into `detached`, the
    /// rest into `buf`.
    pub fn detaching(buf: &'o mut Vec<u8>, detached: &'o mut Vec<Detached<'v>>) -> Sink<'o, 'v> {
        Sink {
            buf,
            detached: Some(detached),
        }
    }

    fn bytes(&mut self, bytes: &'v [u8]) -> Result<(), EncodeError> {
        match &mut self.detached {
            Some(detached) if bytes.len() >= BULK_MIN => {
                encode_bytes_header(bytes.len(), self.buf)?;
                detached.push(Detached {
                    at: self.buf.len(),
                    bytes,
                });
                Ok(())
            }
            _ => encode_bytes(bytes, self.buf),
        }
    }
}

/// Appends `value` to `out`, refusing to nest deeper than `depth` levels.
pub fn encode_value(value: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), EncodeError> {
    encode_value_to(value, &mut Sink::plain(out), depth)
}

/// Appends `value` to `sink`, refusing to nest deeper than `depth` levels.
pub fn encode_value_to<'v>(
    value: &'v Value,
    sink: &mut Sink<'_, 'v>,
    depth: usize,
) -> Result<(), EncodeError> {
    match value {
        Value::None => sink.buf.push(TAG_NONE),
        Value::Bool(true) => sink.buf.push(TAG_TRUE),
        Value::Bool(false) => sink.buf.push(TAG_FALSE),
        Value::NotImplemented => sink.buf.push(TAG_NOT_IMPLEMENTED),
        Value::Ellipsis => sink.buf.push(TAG_ELLIPSIS),
        Value::Int(small) => encode_int(*small, sink.buf),
        Value::BigInt(big) => encode_decimal(big.as_decimal(), sink.buf)?,
        Value::Float(x) => {
            sink.buf.push(TAG_FLOAT);
            sink.buf.extend_from_slice(&x.to_be_bytes());
        }
        Value::Complex(re, im) => {
            sink.buf.push(TAG_COMPLEX);
            sink.buf.extend_from_slice(&re.to_be_bytes());
            sink.buf.extend_from_slice(&im.to_be_bytes());
        }
        Value::Str(text) => encode_str(text, sink.buf)?,
        Value::Bytes(bytes) => sink.bytes(bytes)?,
        Value::Slice(parts) => {
            sink.buf.push(TAG_SLICE);
            encode_items(parts.as_slice(), sink, depth)?;
        }
        Value::Tuple(items) => encode_items(items, sink, depth)?,
        Value::FrozenSet(items) => {
            sink.buf.push(TAG_FSET);
            encode_items(items, sink, depth)?;
        }
    }
    Ok(())
}

fn encode_items<'v>(
    items: &'v [Value],
    sink: &mut Sink<'_, 'v>,
    depth: usize,
) -> Result<(), EncodeError> {
    let inner = depth.checked_sub(1).ok_or(EncodeError::TooDeep)?;
    encode_tuple_header(items.len(), sink.buf)?;
    for item in items {
        encode_value_to(item, sink, inner)?;
    }
    Ok(())
}

// ----------------------------------------------------------------------------
// decoding

/// Decodes exactly one value that must fill `data`, with the default depth limit.
pub fn decode(data: &[u8]) -> Result<Value, DecodeError> {
    decode_with_bulk(data, DecodeLimits::for_input(data.len()), None)
}

/// Decodes exactly one value that must fill `data`.
pub fn decode_with_depth(data: &[u8], max_depth: usize) -> Result<Value, DecodeError> {
    let limits = DecodeLimits {
        max_depth,
        ..DecodeLimits::for_input(data.len())
    };
    decode_with_bulk(data, limits, None)
}

/// A bulk byte string that was read apart from the rest of its payload
/// (see [`find_bulk`]): its data belongs at `at` in the payload, right
/// after its length header, and is not there.
#[derive(Debug)]
pub struct Bulk {
    pub at: usize,
    pub bytes: ByteBuf,
}

/// Decodes exactly one value that must fill `data` with `bulk`'s data put
/// back where it belongs, as [`decode_with_depth`], without copying it.
pub fn decode_with_bulk(
    data: &[u8],
    limits: DecodeLimits,
    bulk: Option<Bulk>,
) -> Result<Value, DecodeError> {
    let mut reader = Reader {
        data,
        pos: 0,
        max_depth: limits.max_depth,
        memory_left: limits.max_memory,
        max_memory: limits.max_memory,
        bulk,
    };
    let value = reader.value()?;
    if reader.pos != data.len() {
        return Err(DecodeError::TrailingBytes {
            count: data.len() - reader.pos,
            offset: reader.pos,
        });
    }
    if let Some(bulk) = reader.bulk {
        return Err(DecodeError::Malformed {
            what: "bulk bytes",
            offset: bulk.at,
        });
    }
    Ok(value)
}

/// Where the first bulk byte string of an encoded value is, judged from
/// the value's first bytes: what a reader needs to read that string's data
/// into memory of its own instead of the frame buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// The string's data starts at `data` and is `len` bytes long.
    At { data: usize, len: usize },
    /// `prefix` ends before any bulk string starts.
    NeedMore,
    /// `prefix` is not a brine encoding.
    Nowhere,
}

/// Walks the tags of the encoding that `prefix` begins, in the order the
/// decoder reads them, to the first byte string of at least `min` bytes.
/// Only a plain bytes value counts: the bytes inside a str are decoded as
/// text, which needs them in one piece with the rest.
pub fn find_bulk(prefix: &[u8], min: usize) -> Located {
    let mut pos = 0;
    while let Some(&tag) = prefix.get(pos) {
        if tag == TAG_STR_L4 {
            if let Some(len) = be_len(prefix, pos + 1, 4).filter(|&len| len >= min) {
                return Located::At { data: pos + 5, len };
            }
        }
        let step = if tag == TAG_UNICODE {
            // the text's bytes tag and body go with it
            let Some(&inner) = prefix.get(pos + 1) else {
                return Located::NeedMore;
            };
            match token_len(prefix, pos + 1, inner) {
                Token::Len(len) if is_bytes_tag(inner) => 1 + len,
                Token::Len(_) | Token::Unknown => return Located::Nowhere,
                Token::Cut => return Located::NeedMore,
            }
        } else {
            match token_len(prefix, pos, tag) {
                Token::Len(len) => len,
                Token::Unknown => return Located::Nowhere,
                Token::Cut => return Located::NeedMore,
            }
        };
        pos += step;
    }
    Located::NeedMore
}

enum Token {
    /// The whole token (tag, length header, body) is this long; a
    /// container's token is its tag and count, its items follow.
    Len(usize),
    /// The token's length header is not all in the prefix.
    Cut,
    Unknown,
}

fn is_bytes_tag(tag: u8) -> bool {
    matches!(
        tag,
        TAG_EMPTY_STR | TAG_STR1..=TAG_STR4 | TAG_STR_L1 | TAG_STR_L4
    )
}

/// The length of the token whose tag `tag` is at `prefix[at]`.
fn token_len(prefix: &[u8], at: usize, tag: u8) -> Token {
    let with_length = |len_bytes: usize| match be_len(prefix, at + 1, len_bytes) {
        Some(len) => Token::Len(1 + len_bytes + len),
        None => Token::Cut,
    };
    match tag {
        TAG_NONE | TAG_TRUE | TAG_FALSE | TAG_NOT_IMPLEMENTED | TAG_ELLIPSIS => Token::Len(1),
        TAG_EMPTY_STR | TAG_EMPTY_TUPLE | TAG_TUP1..=TAG_TUP4 | TAG_SLICE | TAG_FSET => {
            Token::Len(1)
        }
        TAG_STR1..=TAG_STR4 => Token::Len(1 + usize::from(tag - TAG_STR1) + 1),
        TAG_STR_L1 | TAG_INT_L1 => with_length(1),
        TAG_STR_L4 | TAG_INT_L4 => with_length(4),
        TAG_TUP_L1 => Token::Len(2),
        TAG_TUP_L4 => Token::Len(5),
        TAG_FLOAT => Token::Len(9),
        TAG_COMPLEX => Token::Len(17),
        0x20..=0xef => Token::Len(1),
        _ => Token::Unknown,
    }
}

/// The big-endian number of `len_bytes` bytes at `prefix[at..]`.
fn be_len(prefix: &[u8], at: usize, len_bytes: usize) -> Option<usize> {
    let bytes = prefix.get(at..at.checked_add(len_bytes)?)?;
    Some(bytes.iter().fold(0, |len, &b| (len << 8) | usize::from(b)))
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    max_depth: usize,
    /// What [`DecodeLimits::max_memory`] has left.
    memory_left: usize,
    max_memory: usize,
    /// A bulk byte string whose data is not in `data` (see [`Bulk`]).
    bulk: Option<Bulk>,
}

/// A container whose items are still being read. The decoder keeps these on
/// a heap stack rather than recursing, so no input can exhaust a thread's
/// stack whatever depth limit is configured.
enum Open {
    Tuple {
        items: Vec<Value>,
        len: usize,
    },
    /// A slice or frozenset: one tuple follows the tag.
    Wrapper {
        tag: u8,
        offset: usize,
    },
}

impl<'a> Reader<'a> {
    /// Takes `bytes` from the memory budget, before they are allocated.
    fn charge(&mut self, bytes: usize, offset: usize) -> Result<(), DecodeError> {
        self.memory_left =
            self.memory_left
                .checked_sub(bytes)
                .ok_or(DecodeError::TooMuchMemory {
                    limit: self.max_memory,
                    offset,
                })?;
        Ok(())
    }

    /// Charges `items` nodes' worth of room.
    fn charge_nodes(&mut self, items: usize, offset: usize) -> Result<(), DecodeError> {
        self.charge(items.saturating_mul(std::mem::size_of::<Value>()), offset)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.data.len())
            .ok_or(DecodeError::Truncated {
                offset: self.data.len(),
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn length_u32(&mut self) -> Result<usize, DecodeError> {
        let bytes = self.take(4)?;
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(len as usize)
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        let bytes = self.take(8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        Ok(f64::from_be_bytes(raw))
    }

    /// The body of a bytes value whose tag was just read, or `None` if the
    /// tag is not one of the bytes tags.
    fn bytes_body(&mut self, tag: u8) -> Result<Option<&'a [u8]>, DecodeError> {
        let len = match tag {
            TAG_EMPTY_STR => 0,
            TAG_STR1..=TAG_STR4 => usize::from(tag - TAG_STR1) + 1,
            TAG_STR_L1 => usize::from(self.byte()?),
            TAG_STR_L4 => self.length_u32()?,
            _ => return Ok(None),
        };
        self.take(len).map(Some)
    }

    /// The bulk string read apart, if its data belongs right after the
    /// length header at `pos`: the header is read, and must announce as
    /// many bytes as were read.
    fn bulk_at_length(&mut self) -> Result<Option<ByteBuf>, DecodeError> {
        if self.bulk.as_ref().map(|bulk| bulk.at) != Some(self.pos + 4) {
            return Ok(None);
        }
        let offset = self.pos;
        let len = self.length_u32()?;
        match self.bulk.take() {
            Some(bulk) if bulk.bytes.len() == len => Ok(Some(bulk.bytes)),
            _ => Err(DecodeError::Malformed {
                what: "bulk bytes",
                offset,
            }),
        }
    }

    /// The item count of a tuple whose tag was just read, or `None` if the
    /// tag is not one of the tuple tags.
    fn tuple_len(&mut self, tag: u8) -> Result<Option<usize>, DecodeError> {
        Ok(Some(match tag {
            TAG_EMPTY_TUPLE => 0,
            TAG_TUP1..=TAG_TUP4 => usize::from(tag - TAG_TUP1) + 1,
            TAG_TUP_L1 => usize::from(self.byte()?),
            TAG_TUP_L4 => self.length_u32()?,
            _ => return Ok(None),
        }))
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        let mut open: Vec<Open> = Vec::new();
        loop {
            let offset = self.pos;
            let tag = self.byte()?;
            let is_container = matches!(tag, TAG_SLICE | TAG_FSET)
                || matches!(tag, TAG_TUP1..=TAG_TUP4 | TAG_TUP_L1 | TAG_TUP_L4);
            if is_container && open.len() >= self.max_depth {
                return Err(DecodeError::TooDeep {
                    limit: self.max_depth,
                    offset,
                });
            }
            let mut value = if let Some(len) = self.tuple_len(tag)? {
                if len == 0 {
                    Value::Tuple(Vec::new())
                } else {
                    // Every item takes at least one byte: a count beyond what
                    // is left is a lie, and must not reserve memory for it.
                    if len > self.data.len() - self.pos {
                        return Err(DecodeError::Truncated {
                            offset: self.data.len(),
                        });
                    }
                    let room = len.min(FIRST_ROOM);
                    self.charge_nodes(room, offset)?;
                    open.push(Open::Tuple {
                        items: Vec::with_capacity(room),
                        len,
                    });
                    continue;
                }
            } else if matches!(tag, TAG_SLICE | TAG_FSET) {
                open.push(Open::Wrapper { tag, offset });
                continue;
            } else {
                self.scalar(tag, offset)?
            };
            // The value is whole: hand it to the containers it completes.
            loop {
                match open.last_mut() {
                    None => return Ok(value),
                    Some(Open::Tuple { items, len }) => {
                        if items.len() == items.capacity() {
                            // double the room, never past the count claimed
                            let more = items.len().min(*len - items.len());
                            self.charge_nodes(more, self.pos)?;
                            items.reserve_exact(more);
                        }
                        items.push(value);
                        if items.len() < *len {
                            break;
                        }
                        value = Value::Tuple(std::mem::take(items));
                    }
                    Some(Open::Wrapper { tag, offset }) => {
                        if *tag == TAG_SLICE {
                            // the three parts move to a box of their own
                            self.charge_nodes(3, *offset)?;
                        }
                        value = wrap(*tag, *offset, value)?;
                    }
                }
                open.pop();
            }
        }
    }

    fn scalar(&mut self, tag: u8, offset: usize) -> Result<Value, DecodeError> {
        if tag == TAG_STR_L4 {
            if let Some(bytes) = self.bulk_at_length()? {
                return Ok(Value::Bytes(bytes));
            }
        }
        if let Some(bytes) = self.bytes_body(tag)? {
            self.charge(bytes.len(), offset)?;
            return Ok(Value::Bytes(bytes.into()));
        }
        Ok(match tag {
            TAG_NONE => Value::None,
            TAG_TRUE => Value::Bool(true),
            TAG_FALSE => Value::Bool(false),
            TAG_NOT_IMPLEMENTED => Value::NotImplemented,
            TAG_ELLIPSIS => Value::Ellipsis,
            TAG_UNICODE => {
                // Python decodes whatever value follows; only bytes can succeed.
                let body = self.pos;
                let inner = self.byte()?;
                let bytes = self.bytes_body(inner)?.ok_or(DecodeError::Malformed {
                    what: "str",
                    offset,
                })?;
                self.charge(bytes.len(), offset)?;
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| DecodeError::InvalidUtf8 { offset: body })?;
                Value::Str(text.to_owned())
            }
            TAG_INT_L1 | TAG_INT_L4 => {
                let len = if tag == TAG_INT_L1 {
                    usize::from(self.byte()?)
                } else {
                    self.length_u32()?
                };
                let digits = self.take(len)?;
                self.charge(digits.len(), offset)?;
                Value::int_from_decimal(digits).ok_or(DecodeError::InvalidInt { offset })?
            }
            TAG_FLOAT => Value::Float(self.f64()?),
            TAG_COMPLEX => {
                let re = self.f64()?;
                Value::Complex(re, self.f64()?)
            }
            0x20..=0xef => Value::Int(i64::from(tag) - IMM_INT_OFFSET),
            _ => return Err(DecodeError::UnknownTag { tag, offset }),
        })
    }
}

/// Builds the slice or frozenset whose tag `tag` preceded `body`.
fn wrap(tag: u8, offset: usize, body: Value) -> Result<Value, DecodeError> {
    let what = if tag == TAG_SLICE {
        "slice"
    } else {
        "frozenset"
    };
    let malformed = DecodeError::Malformed { what, offset };
    let Value::Tuple(items) = body else {
        return Err(malformed);
    };
    if tag == TAG_FSET {
        return Ok(Value::FrozenSet(items));
    }
    let parts: [Value; 3] = items.try_into().map_err(|_| malformed)?;
    Ok(Value::Slice(Box::new(parts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: Value) -> Vec<u8> {
        let bytes = value.to_bytes().expect("encodes");
        assert_eq!(decode(&bytes).expect("decodes"), value);
        bytes
    }

    #[test]
    fn immediate_ints_are_one_byte() {
        assert_eq!(round_trip(Value::Int(-48)), [0x20]);
        assert_eq!(round_trip(Value::Int(0)), [0x50]);
        assert_eq!(round_trip(Value::Int(159)), [0xef]);
        assert_eq!(round_trip(Value::Int(160)), b"\x16\x03160");
        assert_eq!(round_trip(Value::Int(-49)), b"\x16\x03-49");
    }

    #[test]
    fn ints_outside_i64_are_big() {
        let big = Value::int_from_decimal(b"9223372036854775808").expect("parses");
        assert!(matches!(big, Value::BigInt(_)));
        assert_eq!(round_trip(big), b"\x16\x139223372036854775808");
        assert_eq!(
            Value::int_from_decimal(b"-9223372036854775808"),
            Some(Value::Int(i64::MIN))
        );
        assert_eq!(Value::from_u64(u64::MAX).as_u64(), Some(u64::MAX));
    }

    #[test]
    fn int_text_follows_python_int() {
        assert_eq!(
            Value::int_from_decimal(b" +1_000 \n"),
            Some(Value::Int(1000))
        );
        assert_eq!(Value::int_from_decimal(b"-000"), Some(Value::Int(0)));
        assert_eq!(Value::int_from_decimal(b"007"), Some(Value::Int(7)));
        for bad in [
            &b""[..],
            b"-",
            b"1__0",
            b"_1",
            b"1_",
            b"0x10",
            b"1.0",
            b"- 1",
        ] {
            assert_eq!(Value::int_from_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn length_forms_switch_at_python_boundaries() {
        assert_eq!(round_trip(Value::Bytes(vec![].into())), [TAG_EMPTY_STR]);
        assert_eq!(round_trip(Value::Bytes(vec![7; 4].into()))[0], TAG_STR4);
        assert_eq!(
            round_trip(Value::Bytes(vec![7; 255].into()))[..2],
            [TAG_STR_L1, 255]
        );
        assert_eq!(
            round_trip(Value::Bytes(vec![7; 256].into()))[..5],
            [TAG_STR_L4, 0, 0, 1, 0]
        );
        assert_eq!(round_trip(Value::Tuple(vec![])), [TAG_EMPTY_TUPLE]);
        assert_eq!(round_trip(Value::Tuple(vec![Value::None; 4]))[0], TAG_TUP4);
        let long = round_trip(Value::Tuple(vec![Value::None; 256]));
        assert_eq!(long[..5], [TAG_TUP_L4, 0, 0, 1, 0]);
    }

    #[test]
    fn floats_compare_by_bits() {
        round_trip(Value::Float(f64::NAN));
        round_trip(Value::Complex(-0.0, f64::INFINITY));
        assert_ne!(Value::Float(0.0), Value::Float(-0.0));
    }

    #[test]
    fn truncation_is_an_error_everywhere() {
        let value = Value::Tuple(vec![
            Value::str("héllo wörld"),
            Value::Float(1.5),
            Value::Int(123456),
            Value::FrozenSet(vec![Value::Int(1)]),
            Value::Slice(Box::new([Value::None, Value::Int(5), Value::None])),
        ]);
        let bytes = value.to_bytes().expect("encodes");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert_eq!(
            decode(&[TAG_NONE, TAG_NONE]),
            Err(DecodeError::TrailingBytes {
                count: 1,
                offset: 1
            })
        );
    }

    #[test]
    fn unknown_tags_are_refused() {
        for tag in [0x07u8, 0x09, 0x1c, 0x1f, 0xf0, 0xff] {
            assert_eq!(
                decode(&[tag]),
                Err(DecodeError::UnknownTag { tag, offset: 0 })
            );
        }
    }

    #[test]
    fn lengths_past_the_end_allocate_nothing() {
        assert!(matches!(
            decode(&[TAG_TUP_L4, 0xff, 0xff, 0xff, 0xff, TAG_NONE]),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode(&[TAG_STR_L4, 0xff, 0xff, 0xff, 0xff, b'x']),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn counts_that_lie_reserve_nothing_past_the_memory_budget() {
        // 64 tuples, each claiming about as many items as bytes remain,
        // then a megabyte of Nones: the old decoder reserved 64 times
        // 32 MiB before reading an item
        let mut data = Vec::new();
        for level in 0..64_u32 {
            data.push(TAG_TUP_L4);
            data.extend_from_slice(&((1 << 20) - 5 * level).to_be_bytes());
        }
        data.resize(data.len() + (1 << 20), TAG_NONE);
        let limits = DecodeLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_memory: 4 << 20,
        };
        match decode_with_bulk(&data, limits, None) {
            Err(DecodeError::TooMuchMemory { limit, .. }) => assert_eq!(limit, 4 << 20),
            other => panic!("{other:?}"),
        }
        // a value that fits its budget decodes, however its room grew
        let items = 100_000;
        let mut data = vec![TAG_TUP_L4];
        data.extend_from_slice(&(items as u32).to_be_bytes());
        data.resize(5 + items, TAG_NONE);
        let fits = DecodeLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_memory: items * std::mem::size_of::<Value>(),
        };
        assert_eq!(
            decode_with_bulk(&data, fits, None)
                .ok()
                .and_then(|v| v.as_tuple().map(<[Value]>::len)),
            Some(items)
        );
        let short = DecodeLimits {
            max_memory: fits.max_memory - 1,
            ..fits
        };
        assert!(matches!(
            decode_with_bulk(&data, short, None),
            Err(DecodeError::TooMuchMemory { .. })
        ));
    }

    #[test]
    fn copied_text_and_bytes_are_charged() {
        let data = Value::Tuple(vec![
            Value::str("é".repeat(600)),
            Value::Bytes(vec![7; 900].into()),
        ])
        .to_bytes()
        .expect("encodes");
        let limits = |max_memory| DecodeLimits {
            max_depth: DEFAULT_MAX_DEPTH,
            max_memory,
        };
        let nodes = 2 * std::mem::size_of::<Value>();
        assert!(decode_with_bulk(&data, limits(nodes + 2100), None).is_ok());
        assert!(decode_with_bulk(&data, limits(nodes + 2099), None).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = vec![TAG_TUP1; 100_000];
        deep.push(TAG_NONE);
        assert!(matches!(
            decode(&deep),
            Err(DecodeError::TooDeep {
                limit: DEFAULT_MAX_DEPTH,
                ..
            })
        ));
        let mut ok = vec![TAG_TUP1; DEFAULT_MAX_DEPTH];
        ok.push(TAG_NONE);
        assert!(decode(&ok).is_ok());
        let mut value = Value::None;
        for _ in 0..DEFAULT_MAX_DEPTH + 1 {
            value = Value::Tuple(vec![value]);
        }
        assert!(matches!(value.to_bytes(), Err(EncodeError::TooDeep)));
    }

    #[test]
    fn a_run_of_unicode_tags_does_not_recurse() {
        let run = vec![TAG_UNICODE; 1_000_000];
        assert!(matches!(
            decode(&run),
            Err(DecodeError::Malformed { what: "str", .. })
        ));
    }

    #[test]
    fn str_must_wrap_valid_utf8_bytes() {
        assert!(matches!(
            decode(&[TAG_UNICODE, TAG_STR1, 0xff]),
            Err(DecodeError::InvalidUtf8 { .. })
        ));
        assert!(matches!(
            decode(&[TAG_UNICODE, 0x51]),
            Err(DecodeError::Malformed { what: "str", .. })
        ));
    }

    #[test]
    fn slices_need_three_parts() {
        assert!(matches!(
            decode(&[TAG_SLICE, TAG_TUP2, 0x50, 0x51]),
            Err(DecodeError::Malformed { what: "slice", .. })
        ));
        assert!(matches!(
            decode(&[TAG_FSET, 0x50]),
            Err(DecodeError::Malformed {
                what: "frozenset",
                ..
            })
        ));
    }

    /// Every kind of token before the bulk string, then the string, then
    /// more: found where its data is, and decoded whole again from the
    /// encoding without it.
    #[test]
    fn a_bulk_string_is_found_past_every_kind_of_token_and_put_back() {
        let bulk = vec![0x5a; 2 << 20];
        let value = Value::Tuple(vec![
            Value::None,
            Value::Bool(true),
            Value::Ellipsis,
            Value::Int(7),
            Value::Int(1 << 40),
            Value::int_from_decimal(b"123456789012345678901234567890").expect("an int"),
            Value::Float(1.5),
            Value::Complex(1.0, -2.0),
            Value::str("text"),
            Value::str("t".repeat(300)),
            Value::Bytes(vec![1; 300].into()),
            Value::Bytes(vec![2; 3].into()),
            Value::Bytes(Vec::new().into()),
            Value::Tuple(Vec::new()),
            Value::Tuple((0..300).map(Value::Int).collect()),
            Value::FrozenSet(vec![Value::Int(1)]),
            Value::Slice(Box::new([Value::None, Value::Int(3), Value::None])),
            Value::Bytes(bulk.clone().into()),
            Value::Bytes(vec![3; 1 << 20].into()),
        ]);
        let encoded = value.to_bytes().expect("encodes");
        let Located::At { data, len } = find_bulk(&encoded, BULK_MIN) else {
            panic!("not found");
        };
        assert_eq!(len, bulk.len());
        assert_eq!(&encoded[data..data + len], &bulk[..]);
        // every shorter prefix that cuts the way there asks for more
        for cut in [0, 1, 5, data / 2, data - 1] {
            assert_eq!(
                find_bulk(&encoded[..cut], BULK_MIN),
                Located::NeedMore,
                "{cut}"
            );
        }
        let mut without = encoded[..data].to_vec();
        without.extend_from_slice(&encoded[data + len..]);
        let bulk = Bulk {
            at: data,
            bytes: bulk.into(),
        };
        let decoded = decode_with_bulk(&without, DecodeLimits::for_input(1 << 20), Some(bulk))
            .expect("decodes");
        assert_eq!(decoded, value);
    }

    #[test]
    fn a_long_str_is_not_a_bulk_string() {
        let text = Value::str("x".repeat(BULK_MIN));
        let encoded = Value::Tuple(vec![text, Value::Int(1)])
            .to_bytes()
            .expect("encodes");
        assert_eq!(find_bulk(&encoded, BULK_MIN), Located::NeedMore);
        assert_eq!(find_bulk(&[TAG_TUP1, 0xff], BULK_MIN), Located::Nowhere);
        assert_eq!(
            find_bulk(&[TAG_UNICODE, TAG_NONE], BULK_MIN),
            Located::Nowhere
        );
    }

    #[test]
    fn a_bulk_string_out_of_place_is_refused() {
        // (1, b"\x09" * 8) with a 4-byte length, as bulk strings have, and
        // the string's data, which belongs at 7, left out
        let without = &[TAG_TUP2, 0x51, TAG_STR_L4, 0, 0, 0, 8][..];
        let wrong_len = Bulk {
            at: 7,
            bytes: vec![9; 7].into(),
        };
        assert!(
            decode_with_bulk(without, DecodeLimits::for_input(1 << 20), Some(wrong_len)).is_err()
        );
        let nowhere = Bulk {
            at: 3,
            bytes: vec![9; 8].into(),
        };
        assert!(
            decode_with_bulk(without, DecodeLimits::for_input(1 << 20), Some(nowhere)).is_err()
        );
        let right = Bulk {
            at: 7,
            bytes: vec![9; 8].into(),
        };
        assert!(decode_with_bulk(without, DecodeLimits::for_input(1 << 20), Some(right)).is_ok());
    }
}
