//! Where a bulk byte string's data starts, judged from the first bytes of
//! an encoding, before the rest has arrived.

use super::*;

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
            match token_len(prefix, pos + 1) {
                Token::Len(len) if is_bytes_tag(inner) => 1 + len,
                Token::Len(_) | Token::Unknown => return Located::Nowhere,
                Token::Cut => return Located::NeedMore,
            }
        } else {
            match token_len(prefix, pos) {
                Token::Len(len) => len,
                Token::Unknown => return Located::Nowhere,
                Token::Cut => return Located::NeedMore,
            }
        };
        pos += step;
    }
    Located::NeedMore
}

/// How long a token is, judged from a prefix of the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// The whole token (tag, length header, body) is this long; a
    /// container's token is its tag and count, its items follow.
    Len(usize),
    /// The token's length header is not all in the prefix.
    Cut,
    Unknown,
}

fn is_bytes_tag(tag: u8) -> bool {
    matches!(shape(tag), Shape::Bytes(_) | Shape::SizedBytes(_))
}

/// The length of the token whose tag is at `prefix[at]` (see [`Token`]),
/// by the grammar's [`shape`] of it.
pub fn token_len(prefix: &[u8], at: usize) -> Token {
    let Some(&tag) = prefix.get(at) else {
        return Token::Cut;
    };
    let with_length = |len_bytes: usize| match be_len(prefix, at + 1, len_bytes) {
        Some(len) => Token::Len(1 + len_bytes + len),
        None => Token::Cut,
    };
    match shape(tag) {
        Shape::Atom | Shape::Tuple(_) | Shape::Text | Shape::Wrapped => Token::Len(1),
        Shape::Bytes(len) | Shape::Doubles(len) => Token::Len(1 + len),
        Shape::SizedBytes(len_bytes) | Shape::SizedInt(len_bytes) => with_length(len_bytes),
        Shape::SizedTuple(len_bytes) => Token::Len(1 + len_bytes),
        Shape::Unknown => Token::Unknown,
    }
}

/// The big-endian number of `len_bytes` bytes at `prefix[at..]`.
fn be_len(prefix: &[u8], at: usize, len_bytes: usize) -> Option<usize> {
    let bytes = prefix.get(at..at.checked_add(len_bytes)?)?;
    Some(bytes.iter().fold(0, |len, &b| (len << 8) | usize::from(b)))
}
