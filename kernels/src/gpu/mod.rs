//! The wgpu runtime: adapter choice, device bring-up, the buffer pool, the pipeline
//! cache, batched command submission, bounded readback and per-kernel GPU timing.
//!
//! Kernels follow one binding convention: `@group(0) @binding(0)` is a uniform `Info`
//! struct with the shapes (written from a `#[repr(C)]` Pod struct, padded to 16 bytes),
//! and bindings `1..=n` are the storage buffers in the order the launcher passes them.
//! Every entry point must use all the bindings it declares (wgpu derives the layout
//! from what the entry point uses).

mod adapter;
mod counters;
mod pool;
mod profiler;

pub use adapter::{list_adapters, AdapterReport, DeviceKind};
use counters::{bump, COUNTERS};
pub use counters::{counters, reset_counters, Counters};
pub use pool::{size_class, BufferPool, GpuBuffer, PoolStats};
pub use profiler::KernelTiming;
pub use wgpu::Features;

use crate::GpuError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wgpu::util::DeviceExt;

/// A WGSL kernel: a source file and one of its entry points.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// Unique name of the source (the `.wgsl` file's stem); keys the module cache.
    pub module: &'static str,
    /// WGSL source, normally `include_str!`.
    pub source: &'static str,
    /// Entry point.
    pub entry: &'static str,
}

/// Submit the open command buffer after this many dispatches.
const DISPATCHES_PER_SUBMIT: usize = 64;

struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
    /// Uniform buffers must outlive the submission that reads them.
    uniforms: Vec<wgpu::Buffer>,
}

type PipelineKey = (&'static str, &'static str, Vec<(String, u64)>);

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
    pool: BufferPool,
    staging: BufferPool,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    pending: Mutex<Pending>,
    error: Arc<Mutex<Option<String>>>,
    profiler: Mutex<Option<profiler::Profiler>>,
    /// Longest wait for one readback before giving up with an error.
    pub readback_timeout: Duration,
}

impl GpuContext {
    /// Opens the best adapter of `kind` (see [`adapter::choose`]), honouring `WGPU_BACKEND`.
    pub fn new(kind: DeviceKind) -> Result<Arc<Self>, GpuError> {
        let (adapter, report) = adapter::choose(kind)?;
        Self::open(adapter, report)
    }

    /// Opens adapter number `index` in [`list_adapters`]' order (benchmarks use every one).
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
        Ok(Arc::new(GpuContext {
            device,
            queue,
            adapter: report,
            limits,
            features,
            pool: BufferPool::new(),
            staging: BufferPool::new(),
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            pending: Mutex::new(Pending {
                encoder: None,
                dispatches: 0,
                uniforms: Vec::new(),
            }),
            error,
            profiler: Mutex::new(None),
            readback_timeout: Duration::from_secs(300),
        }))
    }

    /// One line naming the adapter and backend, printed by every command.
    pub fn describe(&self) -> String {
        self.adapter.one_line()
    }

    /// Accounting of the storage-buffer pool.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// The storage-buffer pool.
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// Whether the device can store f16 in shaders.
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Largest storage binding in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Returns a recorded device error, if any, as `Err`.
    pub fn check(&self) -> Result<(), GpuError> {
        match self.error.lock().unwrap().take() {
            Some(e) => Err(GpuError::Validation(e)),
            None => Ok(()),
        }
    }

    /// A storage buffer of at least `bytes` (contents undefined), refused past the
    /// binding limit.
    pub fn alloc(&self, bytes: u64) -> Result<GpuBuffer, GpuError> {
        let max = self.max_binding_bytes();
        if bytes > max {
            return Err(GpuError::TooLarge {
                what: "storage buffer".into(),
                bytes,
                limit: max,
            });
        }
        let usage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        self.pool.take(bytes, usage, |class| {
            bump(&COUNTERS.buffer_creations, 1);
            let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: class.min(max.div_ceil(4) * 4),
                usage,
                mapped_at_creation: false,
            });
            match pollster::block_on(scope.pop()) {
                Some(e) => Err(GpuError::OutOfMemory(format!("{bytes} bytes: {e}"))),
                None => Ok(buffer),
            }
        })
    }

    /// A zero-filled storage buffer.
    pub fn zeros(&self, bytes: u64) -> Result<GpuBuffer, GpuError> {
        let buf = self.alloc(bytes)?;
        self.with_encoder(|enc| enc.clear_buffer(buf.raw(), 0, None));
        Ok(buf)
    }

    /// Copies `data` into a new storage buffer.
    pub fn upload(&self, data: &[u8]) -> Result<GpuBuffer, GpuError> {
        let buf = self.alloc(data.len() as u64)?;
        // write_buffer lands before commands not yet submitted: submit them first, or a
        // recycled buffer could be overwritten under a pending reader.
        self.flush()?;
        let padded = data.len().div_ceil(4) * 4;
        bump(&COUNTERS.upload_bytes, data.len() as u64);
        if padded == data.len() {
            if !data.is_empty() {
                self.queue.write_buffer(buf.raw(), 0, data);
            }
        } else {
            let mut v = data.to_vec();
            v.resize(padded, 0);
            self.queue.write_buffer(buf.raw(), 0, &v);
        }
        Ok(buf)
    }

    /// Records a buffer-to-buffer copy (offsets and length in bytes, multiples of 4).
    pub fn copy(
        &self,
        src: &GpuBuffer,
        src_offset: u64,
        dst: &GpuBuffer,
        dst_offset: u64,
        bytes: u64,
    ) -> Result<(), GpuError> {
        if src_offset + bytes > src.raw().size() || dst_offset + bytes > dst.raw().size() {
            return Err(GpuError::Invalid(format!(
                "copy of {bytes} bytes out of range (src {src_offset}/{}, dst {dst_offset}/{})",
                src.bytes(),
                dst.bytes()
            )));
        }
        if bytes == 0 {
            return Ok(());
        }
        self.with_encoder(|enc| {
            enc.copy_buffer_to_buffer(src.raw(), src_offset, dst.raw(), dst_offset, bytes)
        });
        Ok(())
    }

    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut p = self.pending.lock().unwrap();
        let enc = p.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        f(enc)
    }

    fn pipeline(
        &self,
        kernel: &Kernel,
        constants: &[(&str, f64)],
    ) -> Result<wgpu::ComputePipeline, GpuError> {
        let key: PipelineKey = (
            kernel.module,
            kernel.entry,
            constants
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_bits()))
                .collect(),
        );
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut modules = self.modules.lock().unwrap();
            modules
                .entry(kernel.module)
                .or_insert_with(|| {
                    self.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(kernel.module),
                            source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
                        })
                })
                .clone()
        };
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: None,
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope.pop()) {
            self.modules.lock().unwrap().remove(kernel.module);
            return Err(GpuError::Shader(format!(
                "{}::{}: {e}",
                kernel.module, kernel.entry
            )));
        }
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        Ok(pipeline)
    }

    /// Splits `groups` workgroups over x and y so neither exceeds the per-dimension
    /// limit; shaders recover the linear index as `wid.x + wid.y * nwg.x` and skip
    /// indices past the end.
    pub fn grid(&self, groups: u64) -> Result<[u32; 3], GpuError> {
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= max {
            return Ok([groups.max(1) as u32, 1, 1]);
        }
        let y = groups.div_ceil(max);
        if y > max {
            return Err(GpuError::TooLarge {
                what: "dispatch (workgroups)".into(),
                bytes: groups,
                limit: max * max,
            });
        }
        Ok([max as u32, y as u32, 1])
    }

    /// Records one dispatch of `kernel` specialised by `constants` (WGSL `override`s),
    /// with `info` at binding 0 and `buffers` at bindings 1..=n.
    pub fn dispatch(
        &self,
        kernel: &Kernel,
        constants: &[(&str, f64)],
        info: &[u8],
        buffers: &[&GpuBuffer],
        workgroups: [u32; 3],
    ) -> Result<(), GpuError> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(GpuError::TooLarge {
                what: format!(
                    "{}::{} workgroups {workgroups:?}",
                    kernel.module, kernel.entry
                ),
                bytes: *workgroups.iter().max().unwrap() as u64,
                limit: max as u64,
            });
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let pipeline = self.pipeline(kernel, constants)?;
        let mut padded = info.to_vec();
        padded.resize(info.len().div_ceil(16).max(1) * 16, 0);
        let uniform = self
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: &padded,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.binding(),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let mut profiler = self.profiler.lock().unwrap();
        let mut p = self.pending.lock().unwrap();
        let enc = p.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        let timestamp_writes = profiler
            .as_mut()
            .and_then(|prof| prof.next_pass(kernel.entry));
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        }
        p.uniforms.push(uniform);
        p.dispatches += 1;
        bump(&COUNTERS.dispatches, 1);
        bump(&COUNTERS.buffer_creations, 1);
        bump(&COUNTERS.bind_group_creations, 1);
        bump(&COUNTERS.compute_passes, 1);
        bump(&COUNTERS.uniform_bytes, padded.len() as u64);
        bump(&COUNTERS.record_ns, started.elapsed().as_nanos() as u64);
        let full = p.dispatches >= DISPATCHES_PER_SUBMIT
            || profiler.as_ref().is_some_and(|prof| prof.is_full());
        drop(p);
        drop(profiler);
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Submits everything recorded so far (does not wait).
    pub fn flush(&self) -> Result<(), GpuError> {
        self.submit().map(|_| ())
    }

    fn submit(&self) -> Result<Option<wgpu::SubmissionIndex>, GpuError> {
        let mut profiler = self.profiler.lock().unwrap();
        let mut p = self.pending.lock().unwrap();
        let Some(mut enc) = p.encoder.take() else {
            return Ok(None);
        };
        let readout = profiler
            .as_mut()
            .and_then(|prof| prof.resolve(self, &mut enc));
        let index = self.queue.submit([enc.finish()]);
        bump(&COUNTERS.submits, 1);
        p.dispatches = 0;
        p.uniforms.clear();
        drop(p);
        if let (Some(prof), Some(readout)) = (profiler.as_mut(), readout) {
            prof.collect(self, readout, index.clone())?;
        }
        drop(profiler);
        self.check()?;
        Ok(Some(index))
    }

    /// Waits (bounded by `readback_timeout`) until `index` or all work has finished.
    pub fn wait(&self, index: Option<wgpu::SubmissionIndex>) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: index,
                timeout: Some(self.readback_timeout),
            })
            .map_err(|e| GpuError::Timeout(format!("waiting for the GPU: {e}")))?;
        self.check()
    }

    /// Submits pending work and waits for it to finish.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        let index = self.submit()?;
        self.wait(index)
    }

    /// Reads the first `bytes` bytes of `buf` back to the host through a pooled
    /// staging buffer.
    pub fn read_bytes(&self, buf: &GpuBuffer, bytes: u64) -> Result<Vec<u8>, GpuError> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let padded = bytes.div_ceil(4) * 4;
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging = self.staging.take(padded, usage, |class| {
            bump(&COUNTERS.buffer_creations, 1);
            Ok(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size: class,
                usage,
                mapped_at_creation: false,
            }))
        })?;
        self.with_encoder(|enc| enc.copy_buffer_to_buffer(buf.raw(), 0, staging.raw(), 0, padded));
        let index = self.submit()?;
        bump(&COUNTERS.readbacks, 1);
        let slice = staging.raw().slice(0..padded);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(index)?;
        match rx.recv_timeout(self.readback_timeout) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(GpuError::Readback(e.to_string())),
            Err(_) => return Err(GpuError::Timeout("mapping a staging buffer".into())),
        }
        let out = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            view[..bytes as usize].to_vec()
        };
        staging.raw().unmap();
        Ok(out)
    }

    /// Reads `len` values of `T` from the start of `buf`.
    pub fn read<T: bytemuck::Pod>(&self, buf: &GpuBuffer, len: usize) -> Result<Vec<T>, GpuError> {
        let bytes = self.read_bytes(buf, (len * std::mem::size_of::<T>()) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Starts per-kernel GPU timing with timestamp queries (no-op without the feature);
    /// returns whether timing is active.
    pub fn start_profiling(&self) -> bool {
        if !self.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return false;
        }
        let _ = self.flush();
        *self.profiler.lock().unwrap() = Some(profiler::Profiler::new(self));
        true
    }

    /// Stops timing and returns the total GPU time per entry point, in first-seen order.
    pub fn stop_profiling(&self) -> Result<Vec<KernelTiming>, GpuError> {
        self.synchronize()?;
        let prof = self.profiler.lock().unwrap().take();
        Ok(prof.map(|p| p.finish()).unwrap_or_default())
    }
}
