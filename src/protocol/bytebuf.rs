//! The storage of a brine bytes value: owned, or shared with whatever
//! already holds the bytes.
//!
//! A bulk value is sent straight from where it lives (the classic service
//! shares a Python bytes object's buffer instead of copying 100 MB out of
//! it; the frame writer then writes it from there), and one received in a
//! large frame keeps the frame's own buffer.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, Range};
use std::sync::Arc;

/// Bytes that something else owns and keeps unchanged for as long as this
/// handle lives (a Python bytes object, say).
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

#[derive(Clone)]
pub struct ByteBuf(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Vec<u8>),
    /// Bytes inside a larger buffer they kept (the frame they came in),
    /// which they are not moved to the front of until someone wants a Vec.
    Part(Vec<u8>, Range<usize>),
    Shared(SharedBytes),
    /// Stands in, during a decode, for bytes that are moved in from the
    /// frame buffer once the decode no longer borrows it; never seen
    /// outside this module's crate.
    Pending,
}

impl ByteBuf {
    pub fn shared(bytes: SharedBytes) -> ByteBuf {
        ByteBuf(Repr::Shared(bytes))
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(bytes) => bytes,
            Repr::Part(buffer, range) => buffer.get(range.clone()).unwrap_or_default(),
            Repr::Shared(bytes) => (**bytes).as_ref(),
            Repr::Pending => &[],
        }
    }

    /// The bytes as a vector: without a copy when they are owned.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Owned(bytes) => bytes,
            Repr::Part(mut buffer, range) => {
                if range.end > buffer.len() {
                    return Vec::new();
                }
                buffer.copy_within(range.clone(), 0);
                buffer.truncate(range.len());
                buffer
            }
            Repr::Shared(bytes) => super::bulk::copy_of((*bytes).as_ref()),
            Repr::Pending => Vec::new(),
        }
    }

    pub(crate) fn pending() -> ByteBuf {
        ByteBuf(Repr::Pending)
    }

    pub(crate) fn is_pending(&self) -> bool {
        matches!(self.0, Repr::Pending)
    }

    /// Makes a pending value `buffer[range]`.
    pub(crate) fn fill(&mut self, buffer: Vec<u8>, range: Range<usize>) {
        self.0 = Repr::Part(buffer, range);
    }
}

impl Default for ByteBuf {
    fn default() -> ByteBuf {
        ByteBuf(Repr::Owned(Vec::new()))
    }
}

impl Deref for ByteBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for ByteBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for ByteBuf {
    fn from(bytes: Vec<u8>) -> ByteBuf {
        ByteBuf(Repr::Owned(bytes))
    }
}

impl From<&[u8]> for ByteBuf {
    fn from(bytes: &[u8]) -> ByteBuf {
        ByteBuf(Repr::Owned(super::bulk::copy_of(bytes)))
    }
}

impl From<ByteBuf> for Vec<u8> {
    fn from(bytes: ByteBuf) -> Vec<u8> {
        bytes.into_vec()
    }
}

impl PartialEq for ByteBuf {
    fn eq(&self, other: &ByteBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for ByteBuf {}

impl PartialEq<[u8]> for ByteBuf {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<Vec<u8>> for ByteBuf {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Hash for ByteBuf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

/// As a `Vec<u8>` prints, whoever owns the bytes.
impl fmt::Debug for ByteBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_and_owned_bytes_are_the_same_value() {
        let owned = ByteBuf::from(b"abc".to_vec());
        let shared = ByteBuf::shared(Arc::new(b"abc".to_vec()));
        assert_eq!(owned, shared);
        assert_eq!(&*shared, b"abc");
        assert_eq!(format!("{shared:?}"), format!("{:?}", b"abc".to_vec()));
        assert_eq!(shared.into_vec(), b"abc".to_vec());
        assert_ne!(owned, ByteBuf::from(b"abd".to_vec()));
    }

    #[test]
    fn a_pending_buffer_is_filled_in_place() {
        let mut buf = ByteBuf::pending();
        assert!(buf.is_pending());
        assert!(buf.is_empty());
        buf.fill(vec![9, 1, 2, 3, 9], 1..4);
        assert!(!buf.is_pending());
        assert_eq!(buf, vec![1, 2, 3]);
        assert_eq!(buf.into_vec(), vec![1, 2, 3]);
    }
}
