//! What the protocol asks of the process it runs in: memory for payloads
//! and threads to compress large ones on. The protocol itself stays safe
//! code without IO; the portable defaults here are enough for it to work
//! anywhere (tests, fuzzers, other programs). A daemon that wants more —
//! huge pages and fresh zero pages for bulk payloads, deflate on several
//! cores — [`install`]s its own [`Host`] once at start-up.

use std::sync::OnceLock;

/// Buffers this large are worth the host's special care (huge pages in
/// rpycd); also where the frame decoder stops growing a buffer by
/// doubling and sizes it to the frame instead.
pub const LARGE: usize = 32 << 20;

/// A piece of work [`Host::run_all`] runs.
pub type Job<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Memory and threads, as the process that runs the protocol provides them.
pub trait Host: Sync {
    /// An empty buffer with room for `capacity` bytes.
    fn with_capacity(&self, capacity: usize) -> Vec<u8> {
        Vec::with_capacity(capacity)
    }

    /// `len` zero bytes, or `None` where the memory cannot be had: the
    /// lengths asked for are ones a peer announced, and a failure must
    /// cost that peer's connection, not abort the process.
    fn zeroed(&self, len: usize) -> Option<Vec<u8>> {
        let mut buffer = Vec::new();
        buffer.try_reserve_exact(len).ok()?;
        buffer.resize(len, 0);
        Some(buffer)
    }

    /// How many jobs [`Host::run_all`] may usefully run at once.
    fn parallelism(&self) -> usize {
        1
    }

    /// Runs the jobs, at once or one by one, and returns when they are
    /// done. A job the host cannot start (no thread to be had) may be
    /// dropped unrun: callers check for their results and do what is
    /// missing themselves.
    fn run_all(&self, jobs: Vec<Job<'_>>) {
        for job in jobs {
            job();
        }
    }
}

/// The defaults of [`Host`]: one thread, the global allocator as it is.
struct Portable;

impl Host for Portable {}

static HOST: OnceLock<&'static dyn Host> = OnceLock::new();

/// Makes `host` the one the protocol uses from now on; `false` if one was
/// already installed (the first stays).
pub fn install(host: &'static dyn Host) -> bool {
    HOST.set(host).is_ok()
}

pub(crate) fn host() -> &'static dyn Host {
    HOST.get().copied().unwrap_or(&Portable)
}

pub(crate) fn with_capacity(capacity: usize) -> Vec<u8> {
    host().with_capacity(capacity)
}

pub(crate) fn zeroed(len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    host().zeroed(len)
}

pub(crate) fn copy_of(bytes: &[u8]) -> Vec<u8> {
    let mut buffer = with_capacity(bytes.len());
    buffer.extend_from_slice(bytes);
    buffer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_portable_host_gives_what_is_asked() {
        assert_eq!(Portable.zeroed(5), Some(vec![0; 5]));
        assert_eq!(Portable.zeroed(usize::MAX), None);
        assert!(Portable.with_capacity(100).capacity() >= 100);
        let small: Vec<u8> = (0..=255).collect();
        assert_eq!(copy_of(&small), small);
        let mut ran = [false; 3];
        let jobs: Vec<Job<'_>> = ran
            .iter_mut()
            .map(|slot| Box::new(move || *slot = true) as Job<'_>)
            .collect();
        Portable.run_all(jobs);
        assert_eq!(ran, [true; 3]);
    }
}
