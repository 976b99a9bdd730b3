//! Values to bytes, as rpyc's `brine.dump` writes them; bulk byte strings
//! may be left out, to be written from where they are.

use super::*;

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
