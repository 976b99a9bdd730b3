//! The storage of a brine bytes value: owned, or shared with whatever
//! already holds the bytes.
//!
//! A bulk value is sent straight from where it lives (the classic service
//! shares a Python bytes object's buffer instead of copying 100 MB out of
//! it; the frame writer then writes it from there), and one received is
//! read into memory its receiver chose (see [`BulkMemory`]): for the
//! classic service, the Python bytes object it becomes.

use std::any::Any;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// Bytes that something else owns and keeps unchanged for as long as this
/// handle lives (a Python bytes object, say).
pub trait Shared: AsRef<[u8]> + Any + Send + Sync {
    /// The owner as `Any`, to be downcast: by hand, since the coercion
    /// `&dyn Shared` to `&dyn Any` needs Rust 1.86 and Debian 13 has 1.85.
    fn as_any(&self) -> &dyn Any;
}

impl<T: AsRef<[u8]> + Any + Send + Sync> Shared for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

pub type SharedBytes = Arc<dyn Shared>;

/// Memory a bulk byte string is read into, straight from the stream, and
/// which then holds the value.
pub trait BulkMemory: Send {
    fn as_mut_slice(&mut self) -> &mut [u8];
    fn into_bytes(self: Box<Self>) -> ByteBuf;
}

impl BulkMemory for Vec<u8> {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        self
    }

    fn into_bytes(self: Box<Self>) -> ByteBuf {
        ByteBuf::from(*self)
    }
}

#[derive(Clone)]
pub struct ByteBuf(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Vec<u8>),
    Shared(SharedBytes),
}

impl ByteBuf {
    pub fn shared(bytes: SharedBytes) -> ByteBuf {
        ByteBuf(Repr::Shared(bytes))
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Owned(bytes) => bytes,
            Repr::Shared(bytes) => (**bytes).as_ref(),
        }
    }

    /// The owner of shared bytes, if it is a `T`.
    pub fn shared_as<T: Any>(&self) -> Option<&T> {
        match &self.0 {
            Repr::Shared(bytes) => (**bytes).as_any().downcast_ref(),
            Repr::Owned(_) => None,
        }
    }

    /// The bytes as a vector: without a copy when they are owned.
    pub fn into_vec(self) -> Vec<u8> {
        match self.0 {
            Repr::Owned(bytes) => bytes,
            Repr::Shared(bytes) => crate::host::copy_of((*bytes).as_ref()),
        }
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
        ByteBuf(Repr::Owned(crate::host::copy_of(bytes)))
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
    fn the_owner_of_shared_bytes_is_found_by_its_type() {
        let shared = ByteBuf::shared(Arc::new(b"abc".to_vec()));
        assert_eq!(shared.shared_as::<Vec<u8>>(), Some(&b"abc".to_vec()));
        assert_eq!(shared.shared_as::<String>(), None);
        assert_eq!(ByteBuf::from(b"abc".to_vec()).shared_as::<Vec<u8>>(), None);
    }

    #[test]
    fn a_vector_read_into_becomes_owned_bytes() {
        let mut memory: Box<dyn BulkMemory> = Box::new(vec![0; 3]);
        memory.as_mut_slice().copy_from_slice(b"xyz");
        let bytes = memory.into_bytes();
        assert_eq!(bytes, b"xyz".to_vec());
        assert_eq!(bytes.shared_as::<Vec<u8>>(), None);
    }
}
