//! The device context: bring-up of a wgpu device on the chosen adapter, what it offers
//! (limits, features), and the errors wgpu reports outside a call.

use super::adapter::{self, AdapterReport, DeviceKind};
use super::buffer_pool::{BufferPool, PoolStats};
use super::counters::{bump, COUNTERS};
use super::pipelines::Pipelines;
use super::profiler::Profiling;
use super::queue::{Pending, MAX_INFO_BYTES, UNIFORM_RING_BYTES};
use crate::GpuError;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A device with its queue, pool and caches. Cheap to share through `Arc`.
pub struct GpuContext {
    /// The wgpu device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What we run on.
    pub adapter: AdapterReport,
    /// Limits granted to the device (the adapter's own).
    pub limits: wgpu::Limits,
    /// Features enabled on the device.
    pub features: wgpu::Features,
    /// Longest wait for one readback before giving up with an error.
    pub readback_timeout: Duration,
    pub(super) pool: BufferPool,
    pub(super) staging: BufferPool,
    pub(super) pipelines: Pipelines,
    pub(super) uniform_ring: wgpu::Buffer,
    pub(super) uniform_align: usize,
    pub(super) pending: Mutex<Pending>,
    pub(super) profiling: Profiling,
    error: Arc<Mutex<Option<String>>>,
}

impl GpuContext {
    /// Opens the best adapter of `kind` (see the rule in `adapter`), honouring `WGPU_BACKEND`.
    pub fn new(kind: DeviceKind) -> Result<Arc<Self>, GpuError> {
        let (adapter, report) = adapter::choose(kind)?;
        Self::open(adapter, report)
    }

    /// Opens adapter number `index` in [`super::list_adapters`]' order.
    pub fn with_adapter(index: usize) -> Result<Arc<Self>, GpuError> {
        let (adapter, report) = adapter::by_index(index)?;
        Self::open(adapter, report)
    }

    fn open(adapter: wgpu::Adapter, report: AdapterReport) -> Result<Arc<Self>, GpuError> {
        let mut features = wgpu::Features::empty();
        for f in [
            wgpu::Features::TIMESTAMP_QUERY,
            wgpu::Features::SHADER_F16,
            wgpu::Features::SUBGROUP,
            wgpu::Features::SHADER_INT64,
        ] {
            if adapter.features().contains(f) {
                features |= f;
            }
        }
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("rbd"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device(format!("{}: {e}", report.name)))?;
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap();
            if slot.is_none() {
                *slot = Some(e.to_string());
            }
        }));
        let uniform_ring = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uniform ring"),
            size: UNIFORM_RING_BYTES + MAX_INFO_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        bump(&COUNTERS.buffer_creations, 1);
        Ok(Arc::new(GpuContext {
            device,
            queue,
            adapter: report,
            uniform_align: limits.min_uniform_buffer_offset_alignment.max(16) as usize,
            limits,
            features,
            readback_timeout: Duration::from_secs(300),
            pool: BufferPool::new(),
            staging: BufferPool::new(),
            pipelines: Pipelines::new(std::env::var("RBD_SHADER_CHECKS").is_ok_and(|v| v == "1")),
            uniform_ring,
            pending: Mutex::new(Pending::new()),
            profiling: Profiling::default(),
            error,
        }))
    }

    /// One line naming the adapter and backend, printed by every command.
    pub fn describe(&self) -> String {
        self.adapter.one_line()
    }

    /// Whether the device can store f16 in shaders.
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Whether shaders may use 64-bit integers (`SHADER_INT64`).
    pub fn has_int64(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_INT64)
    }

    /// Whether kernels can be timed on the device (`TIMESTAMP_QUERY`).
    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Largest storage binding in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Accounting of the storage-buffer pool.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// The storage-buffer pool.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Frees idle pooled buffers and the cached bind groups that keep buffers alive.
    pub fn trim(&self) {
        self.pipelines.clear_bind_groups();
        self.pool.trim();
        self.staging.trim();
    }

    /// Returns a recorded device error, if any, as `Err`.
    pub fn check(&self) -> Result<(), GpuError> {
        match self.error.lock().unwrap().take() {
            Some(e) => Err(GpuError::Validation(e)),
            None => Ok(()),
        }
    }
}
