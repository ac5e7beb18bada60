//! Scratch memory of the cpu kernels, kept per thread and reused between calls.

use crate::real::Real;
use std::cell::RefCell;

// Scratch memory of the cpu path, kept per thread: allocating (and faulting in)
// several MB per call costs about as much as the arithmetic of a small layer. A few
// buffers are kept so that nested uses (partial sums around im2col) reuse theirs too.
thread_local! {
    static SCRATCH: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// Scratch retained between calls at most (bytes per buffer); larger requests are
/// freed after use.
const SCRATCH_KEEP_BYTES: usize = 256 << 20;
/// Buffers retained per thread.
const SCRATCH_KEEP_BUFFERS: usize = 4;

/// Runs `f` on an uninitialised-but-valid scratch slice of `len` values of `T`
/// (contents are left over from earlier calls: `f` must write before reading).
pub(crate) fn with_scratch<T: Real, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let words = (len * std::mem::size_of::<T>()).div_ceil(8);
    // Taken out of the pool (not borrowed) so that nested calls get their own: the
    // smallest buffer that fits, else the largest (grown).
    let mut buf = SCRATCH.with(|s| {
        let mut pool = s.borrow_mut();
        let pick = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= words)
            .min_by_key(|(_, b)| b.len())
            .or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.len()))
            .map(|(i, _)| i);
        pick.map(|i| pool.swap_remove(i)).unwrap_or_default()
    });
    if buf.len() < words {
        buf.resize(words, 0.0);
    }
    let r = f(&mut bytemuck::cast_slice_mut::<f64, T>(&mut buf[..words])[..len]);
    if buf.len() * 8 <= SCRATCH_KEEP_BYTES {
        SCRATCH.with(|s| {
            let mut pool = s.borrow_mut();
            pool.push(buf);
            if pool.len() > SCRATCH_KEEP_BUFFERS {
                // Drop the smallest.
                let i = (0..pool.len()).min_by_key(|&i| pool[i].len()).unwrap_or(0);
                pool.swap_remove(i);
            }
        });
    }
    r
}
