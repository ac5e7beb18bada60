//! A counting global allocator: per thread, the largest single allocation and the peak
//! of live bytes since the last [`reset`], so a fuzz case can be held to a memory bound
//! proportional to its input while other threads (other tests) allocate freely.
//!
//! Install it in the final binary or test crate:
//! `#[global_allocator] static A: rbd_fuzz::alloc::Counting = rbd_fuzz::alloc::Counting;`

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// The system allocator, counting.
pub struct Counting;

/// Live bytes of the whole process, for the watchdog's memory cap.
static TOTAL_LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(size: usize, delta: isize) {
    TOTAL_LIVE.fetch_add(delta, Ordering::Relaxed);
    // `try_with`: a thread being torn down has no counters left; nothing to count.
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrank(size: usize) {
    TOTAL_LIVE.fetch_sub(size as isize, Ordering::Relaxed);
    let _ = LIVE.try_with(|live| live.set(live.get() - size as isize));
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are plain
// thread-local cells without destructors, touched only through `try_with`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size(), layout.size() as isize);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size(), layout.size() as isize);
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size, new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

/// What this thread allocated since the last [`reset`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The largest single allocation (or reallocation), bytes.
    pub largest: usize,
    /// The most bytes live at once, counted from the reset.
    pub peak: usize,
}

/// Starts counting afresh on this thread.
pub fn reset() {
    LARGEST.with(|l| l.set(0));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
}

/// This thread's usage since the last [`reset`].
pub fn usage() -> Usage {
    Usage {
        largest: LARGEST.with(Cell::get),
        peak: PEAK.with(|p| p.get().max(0) as usize),
    }
}

/// Bytes live in the whole process now.
pub fn total_live() -> usize {
    TOTAL_LIVE.load(Ordering::Relaxed).max(0) as usize
}

/// Whether [`Counting`] is the global allocator of this process (else [`usage`] is
/// always zero and a memory bound would pass untested).
pub fn installed() -> bool {
    reset();
    let probe = std::hint::black_box(vec![0u8; 4096]);
    let seen = usage().largest >= 4096;
    drop(probe);
    seen
}
