//! A buffer pool that reuses device allocations by size class.
//!
//! A [`GpuBuffer`] returns its allocation to the pool when dropped, so a buffer is
//! only ever handed out again once no tensor holds it. Commands already recorded
//! against it keep their order on the queue, which makes reuse safe; the one hazard,
//! `queue.write_buffer` running before not-yet-submitted commands, is handled by
//! [`super::GpuContext::upload`], which submits pending work first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Rounds a request up to its size class: powers of two and 1.5 × powers of two
/// (at most 33% waste), with a 256-byte floor.
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let p = bytes.next_power_of_two();
    let three_quarters = p / 4 * 3;
    if bytes <= three_quarters {
        three_quarters
    } else {
        p
    }
}

/// Live and peak byte counts of a pool, by size class (what was allocated, not asked for).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Bytes held by live buffers.
    pub live_bytes: u64,
    /// Largest `live_bytes` seen since creation or the last [`BufferPool::reset_peak`].
    pub peak_bytes: u64,
    /// Bytes sitting idle in the pool, ready for reuse.
    pub cached_bytes: u64,
    /// Number of device allocations made (misses).
    pub allocations: u64,
    /// Number of requests served from the pool (hits).
    pub reuses: u64,
}

/// Idle buffers by (size class, usage bits), each with its allocation id.
type FreeLists = HashMap<(u64, u32), Vec<(u64, wgpu::Buffer)>>;

pub(crate) struct PoolShared {
    free: Mutex<FreeLists>,
    live: AtomicU64,
    peak: AtomicU64,
    cached: AtomicU64,
    allocations: AtomicU64,
    reuses: AtomicU64,
    next_id: AtomicU64,
}

/// The pool itself; shared by every buffer it hands out.
#[derive(Clone)]
pub struct BufferPool {
    pub(crate) shared: Arc<PoolShared>,
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new()
    }
}

impl BufferPool {
    /// An empty pool.
    pub fn new() -> Self {
        BufferPool {
            shared: Arc::new(PoolShared {
                free: Mutex::new(HashMap::new()),
                live: AtomicU64::new(0),
                peak: AtomicU64::new(0),
                cached: AtomicU64::new(0),
                allocations: AtomicU64::new(0),
                reuses: AtomicU64::new(0),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Current accounting.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            live_bytes: s.live.load(Ordering::Relaxed),
            peak_bytes: s.peak.load(Ordering::Relaxed),
            cached_bytes: s.cached.load(Ordering::Relaxed),
            allocations: s.allocations.load(Ordering::Relaxed),
            reuses: s.reuses.load(Ordering::Relaxed),
        }
    }

    /// Sets the peak to the current live size, to measure the peak of one phase.
    pub fn reset_peak(&self) {
        let live = self.shared.live.load(Ordering::Relaxed);
        self.shared.peak.store(live, Ordering::Relaxed);
    }

    /// Frees every idle allocation.
    pub fn trim(&self) {
        let mut free = self.shared.free.lock().unwrap();
        free.clear();
        self.shared.cached.store(0, Ordering::Relaxed);
    }

    /// Takes a buffer of at least `bytes` with `usage` from the pool, or creates one
    /// with `create(class_bytes)`.
    pub(crate) fn take(
        &self,
        bytes: u64,
        usage: wgpu::BufferUsages,
        create: impl FnOnce(u64) -> Result<wgpu::Buffer, crate::GpuError>,
    ) -> Result<GpuBuffer, crate::GpuError> {
        let class = size_class(bytes);
        let key = (class, usage.bits());
        let s = &self.shared;
        // The idle buffer with the lowest id, not the last one returned: which buffer an
        // allocation gets then depends on what is idle, not on the order tensors were
        // dropped in (hash-map order in autodiff), so a training step's allocations get
        // the same buffers every step and its bind groups stay cached.
        let reused = s.free.lock().unwrap().get_mut(&key).and_then(|v| {
            let lowest = (0..v.len()).min_by_key(|&i| v[i].0)?;
            Some(v.swap_remove(lowest))
        });
        let (id, buffer) = match reused {
            Some(b) => {
                s.cached.fetch_sub(class, Ordering::Relaxed);
                s.reuses.fetch_add(1, Ordering::Relaxed);
                b
            }
            None => {
                let buffer = create(class)?;
                s.allocations.fetch_add(1, Ordering::Relaxed);
                (s.next_id.fetch_add(1, Ordering::Relaxed), buffer)
            }
        };
        let live = s.live.fetch_add(class, Ordering::Relaxed) + class;
        s.peak.fetch_max(live, Ordering::Relaxed);
        Ok(GpuBuffer {
            buffer: Some(buffer),
            id,
            class,
            bytes,
            usage,
            pool: self.shared.clone(),
        })
    }
}

/// A device buffer on loan from a [`BufferPool`]; returned to it on drop.
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    id: u64,
    class: u64,
    bytes: u64,
    usage: wgpu::BufferUsages,
    pool: Arc<PoolShared>,
}

impl GpuBuffer {
    /// The wgpu buffer (its size is the size class, at least [`GpuBuffer::bytes`]).
    pub fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
    /// Bytes requested (the usable length).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// The pool's identity for the underlying allocation; two live buffers never share one.
    pub fn allocation_id(&self) -> u64 {
        self.id
    }
    /// A binding covering the requested bytes, rounded up to 16 (inside the size
    /// class, which is a multiple of 64) so that kernels may also address the buffer as
    /// `array<vec4<f32>>` with a ragged length, guarding the last vector's values.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.raw(),
            offset: 0,
            size: wgpu::BufferSize::new(
                (self.bytes.max(4).div_ceil(16) * 16).min(self.raw().size()),
            ),
        })
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer(#{}, {} bytes)", self.id, self.bytes)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            let s = &self.pool;
            s.live.fetch_sub(self.class, Ordering::Relaxed);
            s.cached.fetch_add(self.class, Ordering::Relaxed);
            s.free
                .lock()
                .unwrap()
                .entry((self.class, self.usage.bits()))
                .or_default()
                .push((self.id, buffer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_with_bounded_waste() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            383,
            384,
            385,
            1000,
            4096,
            4097,
            1 << 30,
        ] {
            let c = size_class(bytes);
            assert!(c >= bytes, "{bytes} -> {c}");
            assert!(c <= (bytes.max(256) * 3).div_ceil(2) + 1, "{bytes} -> {c}");
        }
        assert_eq!(size_class(384), 384);
        assert_eq!(size_class(385), 512);
    }
}
