//! Always-on counters of the wgpu runtime's host-side work: relaxed atomic adds (a few
//! nanoseconds each), process-wide over every context, so `rbd profile` and the
//! benchmarks can show what a training step costs besides its kernels.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the runtime counters (see [`counters`]); subtract two snapshots with
/// [`Counters::since`] to get the work of a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Kernel dispatches recorded.
    pub dispatches: u64,
    /// Command buffers submitted to the queue.
    pub submits: u64,
    /// Blocking device-to-host reads (each waits for the GPU).
    pub readbacks: u64,
    /// Device buffers created (pool misses, staging, uniform and upload rings).
    pub buffer_creations: u64,
    /// Bind groups created (cache misses).
    pub bind_group_creations: u64,
    /// Compute passes begun.
    pub compute_passes: u64,
    /// Bytes of kernel parameters (`Info` structs) written for dispatches.
    pub uniform_bytes: u64,
    /// Bytes uploaded from the host.
    pub upload_bytes: u64,
    /// Host nanoseconds spent inside `dispatch` (pipeline and bind-group lookup,
    /// uniform staging, pass recording).
    pub record_ns: u64,
}

impl Counters {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            dispatches: self.dispatches.saturating_sub(earlier.dispatches),
            submits: self.submits.saturating_sub(earlier.submits),
            readbacks: self.readbacks.saturating_sub(earlier.readbacks),
            buffer_creations: self
                .buffer_creations
                .saturating_sub(earlier.buffer_creations),
            bind_group_creations: self
                .bind_group_creations
                .saturating_sub(earlier.bind_group_creations),
            compute_passes: self.compute_passes.saturating_sub(earlier.compute_passes),
            uniform_bytes: self.uniform_bytes.saturating_sub(earlier.uniform_bytes),
            upload_bytes: self.upload_bytes.saturating_sub(earlier.upload_bytes),
            record_ns: self.record_ns.saturating_sub(earlier.record_ns),
        }
    }

    /// Mean host microseconds per dispatch (0 without dispatches).
    pub fn host_us_per_dispatch(&self) -> f64 {
        if self.dispatches == 0 {
            0.0
        } else {
            self.record_ns as f64 / 1e3 / self.dispatches as f64
        }
    }
}

pub(crate) struct Atomics {
    pub dispatches: AtomicU64,
    pub submits: AtomicU64,
    pub readbacks: AtomicU64,
    pub buffer_creations: AtomicU64,
    pub bind_group_creations: AtomicU64,
    pub compute_passes: AtomicU64,
    pub uniform_bytes: AtomicU64,
    pub upload_bytes: AtomicU64,
    pub record_ns: AtomicU64,
}

pub(crate) static COUNTERS: Atomics = Atomics {
    dispatches: AtomicU64::new(0),
    submits: AtomicU64::new(0),
    readbacks: AtomicU64::new(0),
    buffer_creations: AtomicU64::new(0),
    bind_group_creations: AtomicU64::new(0),
    compute_passes: AtomicU64::new(0),
    uniform_bytes: AtomicU64::new(0),
    upload_bytes: AtomicU64::new(0),
    record_ns: AtomicU64::new(0),
};

/// Adds `n` to a counter.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// The counters now (process-wide, every context together).
pub fn counters() -> Counters {
    let c = &COUNTERS;
    Counters {
        dispatches: c.dispatches.load(Ordering::Relaxed),
        submits: c.submits.load(Ordering::Relaxed),
        readbacks: c.readbacks.load(Ordering::Relaxed),
        buffer_creations: c.buffer_creations.load(Ordering::Relaxed),
        bind_group_creations: c.bind_group_creations.load(Ordering::Relaxed),
        compute_passes: c.compute_passes.load(Ordering::Relaxed),
        uniform_bytes: c.uniform_bytes.load(Ordering::Relaxed),
        upload_bytes: c.upload_bytes.load(Ordering::Relaxed),
        record_ns: c.record_ns.load(Ordering::Relaxed),
    }
}

/// Sets every counter to zero. Prefer [`Counters::since`] where several users may
/// measure at once (tests run in parallel threads).
pub fn reset_counters() {
    let c = &COUNTERS;
    for a in [
        &c.dispatches,
        &c.submits,
        &c.readbacks,
        &c.buffer_creations,
        &c.bind_group_creations,
        &c.compute_passes,
        &c.uniform_bytes,
        &c.upload_bytes,
        &c.record_ns,
    ] {
        a.store(0, Ordering::Relaxed);
    }
}
