//! A global allocator that counts: the bytes allocated at once, and the
//! most of them at any moment since a mark, so that a test can measure
//! what a piece of code took at its peak. Shared by the fuzz target and
//! the corpus test that replays its inputs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct PeakAlloc {
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl PeakAlloc {
    pub const fn new() -> PeakAlloc {
        PeakAlloc {
            current: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Runs `work` and returns the most bytes allocated at once while it
    /// ran, beyond those allocated when it began. (Other threads'
    /// allocations count too: measure where nothing else runs.)
    pub fn peak_during(&self, work: &mut dyn FnMut()) -> usize {
        let base = self.current.load(Ordering::SeqCst);
        self.peak.store(base, Ordering::SeqCst);
        work();
        self.peak.load(Ordering::SeqCst).saturating_sub(base)
    }

    fn grew(&self, by: usize) {
        let now = self.current.fetch_add(by, Ordering::SeqCst) + by;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn shrank(&self, by: usize) {
        self.current.fetch_sub(by, Ordering::SeqCst);
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; only
// the counts are added
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // old and new may both be held while the data moves
        self.grew(new_size);
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if new.is_null() {
            self.shrank(new_size);
        } else {
            self.shrank(layout.size());
        }
        new
    }
}
