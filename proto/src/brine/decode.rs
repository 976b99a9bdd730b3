//! Bytes to values, under a depth and a memory budget, without recursion.

use super::*;

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
        let len = match shape(tag) {
            Shape::Bytes(len) => len,
            Shape::SizedBytes(len_bytes) => self.length(len_bytes)?,
            _ => return Ok(None),
        };
        self.take(len).map(Some)
    }

    /// A length field of `len_bytes` bytes (1 or 4), big-endian.
    fn length(&mut self, len_bytes: usize) -> Result<usize, DecodeError> {
        if len_bytes == 1 {
            Ok(usize::from(self.byte()?))
        } else {
            self.length_u32()
        }
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
        Ok(Some(match shape(tag) {
            Shape::Tuple(len) => len,
            Shape::SizedTuple(len_bytes) => self.length(len_bytes)?,
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
        Ok(match shape(tag) {
            Shape::Atom => match tag {
                TAG_NONE => Value::None,
                TAG_TRUE => Value::Bool(true),
                TAG_FALSE => Value::Bool(false),
                TAG_NOT_IMPLEMENTED => Value::NotImplemented,
                TAG_ELLIPSIS => Value::Ellipsis,
                _ => Value::Int(i64::from(tag) - IMM_INT_OFFSET),
            },
            Shape::Text => {
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
            Shape::SizedInt(len_bytes) => {
                let len = self.length(len_bytes)?;
                let digits = self.take(len)?;
                self.charge(digits.len(), offset)?;
                Value::int_from_decimal(digits).ok_or(DecodeError::InvalidInt { offset })?
            }
            Shape::Doubles(8) => Value::Float(self.f64()?),
            Shape::Doubles(_) => {
                let re = self.f64()?;
                Value::Complex(re, self.f64()?)
            }
            Shape::Bytes(_)
            | Shape::SizedBytes(_)
            | Shape::Tuple(_)
            | Shape::SizedTuple(_)
            | Shape::Wrapped
            | Shape::Unknown => return Err(DecodeError::UnknownTag { tag, offset }),
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
