//! Memory for bulk payloads (tens of megabytes and more), and the threads
//! to compress them on: what the daemons give the protocol as its
//! [`Host`] (the protocol crate itself has no unsafe code and no threads).
//!
//! A fresh 100 MB buffer costs 25 600 page faults with 4 KiB pages, each
//! with its memory-cgroup charge; on the reference VM those faults, not
//! the copies, were most of a bulk transfer's time. Asking for transparent
//! huge pages (Debian's default THP mode is `madvise`) makes that 50
//! faults. Only buffers that glibc's malloc certainly maps on their own
//! are advised: the advice then ends with the buffer, instead of marking
//! part of the heap that later holds small allocations.

use std::ffi::c_void;
use std::ptr::NonNull;

use std::sync::OnceLock;

use nix::sys::mman::{madvise, MmapAdvise};
use rpycd_proto::host::{Host, Job};

/// glibc serves requests this large with their own mmap whatever its
/// dynamic threshold has grown to (`DEFAULT_MMAP_THRESHOLD_MAX` on 64-bit).
pub use rpycd_proto::host::LARGE;

/// Makes [`Daemon`] the protocol's host, once; every connection asks.
pub fn install_host() {
    rpycd_proto::host::install(&Daemon);
}

/// Bulk buffers backed by huge pages and fresh zero pages, and deflate
/// pieces on threads of their own.
pub struct Daemon;

impl Host for Daemon {
    fn with_capacity(&self, capacity: usize) -> Vec<u8> {
        with_capacity(capacity)
    }

    fn zeroed(&self, len: usize) -> Option<Vec<u8>> {
        zeroed(len)
    }

    fn parallelism(&self) -> usize {
        // asked once: std reads the cgroup's CPU quota files on every call,
        // milliseconds that a bulk frame would pay each time
        static CORES: OnceLock<usize> = OnceLock::new();
        *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn run_all(&self, mut jobs: Vec<Job<'_>>) {
        let Some(own) = jobs.pop() else {
            return;
        };
        std::thread::scope(|scope| {
            for job in jobs {
                // no thread to be had: the job is dropped, and its caller
                // does its piece itself
                let _ = std::thread::Builder::new()
                    .name("deflate".into())
                    .spawn_scoped(scope, job);
            }
            own();
        });
    }
}

const HUGE_PAGE: usize = 2 << 20;

/// Makes glibc's malloc map every allocation of a bulk size
/// ([`rpycd_proto::brine::BULK_MIN`]) or more on its own and unmap it when freed, for a long-running server.
///
/// By default the threshold grows with each large block freed (up to 32
/// MiB), after which 1-32 MiB payloads are carved out of per-thread
/// arenas, which then stay resident at their high-water mark: a threaded
/// server moving a few MiB per connection sat at five or six arenas of
/// ~24 MiB each, the sixth appearing at a moment that depended on thread
/// timing (the soak test saw its RSS jump by 28 MiB mid-run). A fixed
/// threshold also keeps the trim threshold at its 128 KiB default, so
/// arenas give freed memory back. Costs the page faults of fresh memory
/// for each such payload, which payloads of 32 MiB and more paid anyway.
pub fn map_bulk_allocations() {
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // the server's threads start
    unsafe {
        libc::mallopt(
            libc::M_MMAP_THRESHOLD,
            rpycd_proto::brine::BULK_MIN as libc::c_int,
        );
    }
}

/// An empty buffer with room for `capacity` bytes, backed by huge pages
/// where the kernel has them when it is [`LARGE`].
pub fn with_capacity(capacity: usize) -> Vec<u8> {
    let buffer = Vec::with_capacity(capacity);
    if capacity >= LARGE {
        advise_huge(buffer.as_ptr(), capacity);
    }
    buffer
}

/// `len` zero bytes, backed by huge pages where the kernel has them when
/// [`LARGE`]. Costs no pass over the memory: the allocator asks the kernel
/// for fresh (zero) pages and does not clear them again. `None` where the
/// memory cannot be had: the lengths asked for here are ones a peer
/// announced, and a failure must cost its connection, not abort the
/// process as an infallible allocation would.
pub fn zeroed(len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    // SAFETY: a non-zero size; the global allocator's memory, handed to a
    // Vec of the same layout and length, which frees it the same way
    let buffer = unsafe {
        let start = std::alloc::alloc_zeroed(layout);
        if start.is_null() {
            return None;
        }
        Vec::from_raw_parts(start, len, len)
    };
    advise_huge(buffer.as_ptr(), len);
    Some(buffer)
}

/// Asks for huge pages for the whole 2 MiB pages inside `start..start +
/// len`, memory this process owns and has not touched yet. Only advice:
/// a kernel without THP, or one that refuses, leaves small pages.
pub fn advise_huge(start: *const u8, len: usize) {
    let Some((first, end)) = huge_pages_within(start as usize, len) else {
        return;
    };
    let Some(addr) = NonNull::new(first as *mut c_void) else {
        return;
    };
    // SAFETY: the range lies inside an allocation the caller owns, and
    // MADV_HUGEPAGE changes how its pages are backed, never their contents
    let _ = unsafe { madvise(addr, end - first, MmapAdvise::MADV_HUGEPAGE) };
}

/// Every page size Linux uses divides this: ranges aligned to it are
/// whole pages wherever we run.
const PAGE_ALIGN: usize = 64 * 1024;

/// Makes the `len` bytes at `start` zero without a pass over most of them:
/// the whole pages inside are handed back to the kernel (`MADV_DONTNEED`),
/// which maps fresh zero pages there on their next touch, as it does for
/// memory never touched, so memory about to be read into costs no extra
/// clearing; only the ends, which may share pages with other allocations,
/// are written.
///
/// # Safety
///
/// `start..start + len` must be private anonymous memory (what malloc
/// hands out) that the caller owns and nothing else reads or writes.
pub unsafe fn zero(start: *mut u8, len: usize) {
    let dropped = aligned_within(start as usize, len, PAGE_ALIGN).and_then(|(first, end)| {
        let addr = NonNull::new(first as *mut c_void)?;
        // SAFETY: whole pages of memory the caller owns alone; on private
        // anonymous memory the kernel refills them with zeroes
        unsafe { madvise(addr, end - first, MmapAdvise::MADV_DONTNEED) }
            .ok()
            .map(|()| (first - start as usize, end - start as usize))
    });
    // SAFETY: within the caller's range
    unsafe {
        match dropped {
            Some((from, to)) => {
                std::ptr::write_bytes(start, 0, from);
                std::ptr::write_bytes(start.add(to), 0, len - to);
            }
            None => std::ptr::write_bytes(start, 0, len),
        }
    }
}

/// The whole huge pages inside `start..start + len`, for a [`LARGE`] range.
fn huge_pages_within(start: usize, len: usize) -> Option<(usize, usize)> {
    if len < LARGE {
        return None;
    }
    aligned_within(start, len, HUGE_PAGE)
}

/// The widest `first..end` inside `start..start + len` whose ends are
/// multiples of `align`, if it is not empty.
fn aligned_within(start: usize, len: usize, align: usize) -> Option<(usize, usize)> {
    let first = start.checked_next_multiple_of(align)?;
    let end = start.checked_add(len)? / align * align;
    (first < end).then_some((first, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The advice is visible in /proc/self/smaps as the `hg` flag of the
    /// buffer's mapping (when the kernel has THP at all).
    #[test]
    fn a_large_buffer_asks_for_huge_pages() {
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let buffer = with_capacity(LARGE + 5);
        let inside = buffer.as_ptr() as usize + LARGE / 2;
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        let mut in_mapping = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((lo, hi)) = range.split_once('-') {
                    if let (Ok(lo), Ok(hi)) =
                        (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                    {
                        in_mapping = lo <= inside && inside < hi;
                        continue;
                    }
                }
            }
            if in_mapping {
                if let Some(vm) = line.strip_prefix("VmFlags:") {
                    flags = Some(vm.to_string());
                }
            }
        }
        let flags = flags.expect("the buffer's mapping is in smaps");
        if thp.contains("[never]") || thp.is_empty() {
            return;
        }
        assert!(
            flags.split_whitespace().any(|flag| flag == "hg"),
            "no hg flag: {flags}"
        );
    }

    #[test]
    fn only_whole_huge_pages_inside_a_large_range_are_advised() {
        let mib = 1 << 20;
        assert_eq!(huge_pages_within(16, LARGE - 1), None);
        assert_eq!(
            huge_pages_within(16, LARGE + 4 * mib),
            Some((2 * mib, LARGE + 4 * mib))
        );
        assert_eq!(
            huge_pages_within(2 * mib, LARGE),
            Some((2 * mib, LARGE + 2 * mib))
        );
        assert_eq!(huge_pages_within(usize::MAX - mib, LARGE), None);
    }

    #[test]
    fn memory_is_zeroed_whole_pages_and_ends_alike() {
        for (len, offset) in [(10, 3), (PAGE_ALIGN * 3 + 17, 5), (LARGE + 1, 1)] {
            let mut buffer = vec![0xa5_u8; len + offset + 9];
            let range = offset..offset + len;
            // SAFETY: a range of our own heap buffer, used by nothing else
            unsafe { zero(buffer[range.clone()].as_mut_ptr(), len) };
            assert!(buffer[range.clone()].iter().all(|&b| b == 0), "{len}");
            assert!(buffer[..offset].iter().all(|&b| b == 0xa5));
            assert!(buffer[range.end..].iter().all(|&b| b == 0xa5));
        }
    }

    #[test]
    fn jobs_all_run_on_threads_of_their_own_but_the_last() {
        let caller = std::thread::current().id();
        let mut ran = vec![None; 4];
        let jobs: Vec<Job<'_>> = ran
            .iter_mut()
            .map(|slot| Box::new(move || *slot = Some(std::thread::current().id())) as Job<'_>)
            .collect();
        Daemon.run_all(jobs);
        let ran: Vec<_> = ran.into_iter().map(|id| id.expect("ran")).collect();
        assert_eq!(ran[3], caller);
        assert!(ran[..3].iter().all(|id| *id != caller));
    }

    #[test]
    fn zeroed_buffers_are_zero_and_sized() {
        for len in [1, 4096, LARGE + 3] {
            let buffer = zeroed(len).expect("memory");
            assert_eq!(buffer.len(), len);
            assert!(buffer.iter().all(|&b| b == 0));
        }
        assert!(zeroed(usize::MAX / 2).is_none());
    }
}
