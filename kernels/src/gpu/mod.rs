//! The wgpu runtime: adapter choice, device bring-up, the buffer pool, the pipeline
//! cache, batched command submission, bounded readback and per-kernel GPU timing.
//!
//! Kernels follow one binding convention: `@group(0) @binding(0)` is a uniform `Info`
//! struct with the shapes (written from a `#[repr(C)]` Pod struct, at most 256 bytes),
//! and bindings `1..=n` are the storage buffers in the order the launcher passes them.
//! The layout is explicit (see `reflect`): binding 0 is a dynamic-offset window into
//! one uniform ring, a storage binding is read-only where the entry point declares it
//! `read` (or does not use it).
//!
//! Host cost per dispatch is kept to lookups: `Info` goes to the host copy of the
//! uniform ring (written with one `queue.write_buffer` per submit), bind groups are
//! cached by the pool identity of their buffers, pipelines by entry point and override
//! values without allocating, and dispatches share one compute pass until a copy,
//! clear or timestamp query ends it. Uploads go through an upload ring and a recorded
//! copy, so they do not force a submit. [`counters`] counts all of it.

mod adapter;
mod buffer_pool;
mod counters;
mod profiler;
mod reflect;

pub use adapter::{list_adapters, AdapterReport, DeviceKind};
pub use buffer_pool::{size_class, BufferPool, GpuBuffer, PoolStats};
use counters::{bump, COUNTERS};
pub use counters::{counters, reset_counters, Counters};
pub use profiler::KernelTiming;
pub use wgpu::Features;

use crate::GpuError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Submit the open command buffer after this many dispatches (the step's own flush
/// normally comes first; this bounds the work queued behind a long recording).
const DISPATCHES_PER_SUBMIT: usize = 256;

/// Bytes of the uniform ring: each dispatch's `Info` lands at the next aligned offset;
/// a full ring submits. Written once per submit (`queue.write_buffer`), which the
/// queue orders after earlier submissions and before this one's commands.
const UNIFORM_RING_BYTES: u64 = 64 * 1024;

/// Largest `Info` struct (the binding size of the ring's dynamic-offset binding).
const MAX_INFO_BYTES: u64 = 256;

/// Smallest upload ring; it grows to the largest upload of a submission.
const MIN_UPLOAD_RING_BYTES: u64 = 4 << 20;

/// Storage buffers per dispatch at the most (bindings 1..=8).
const MAX_BUFFERS: usize = 8;

/// Bind groups kept before the cache is emptied (they hold their buffers alive).
const MAX_BIND_GROUPS: usize = 16_384;

struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    /// The open compute pass (one per submit unless a copy, clear or timestamp
    /// query ends it).
    pass: Option<wgpu::ComputePass<'static>>,
    dispatches: usize,
    /// `Info` structs of this submission at their ring offsets.
    uniforms: Vec<u8>,
    /// Uploads of this submission, copied from the upload ring by recorded copies.
    uploads: Vec<u8>,
    /// The upload ring the recorded copies read (grown between submissions).
    upload_ring: Option<wgpu::Buffer>,
}

impl Pending {
    /// Ends the open pass, so that copies and clears can be recorded.
    fn end_pass(&mut self) {
        self.pass = None;
    }
}

/// A compute pipeline with the index of its bind-group layout.
#[derive(Clone)]
struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: usize,
}

/// Pipelines of one entry point, by override constants (name, f64 bits).
type Variants = Vec<(Vec<(String, u64)>, Pipeline)>;

/// A bind group's identity: layout, then each buffer's pool id and bound length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct BindKey {
    layout: usize,
    buffers: [(u64, u64); MAX_BUFFERS],
}

#[derive(Default)]
struct Layouts {
    /// Storage bindings of each entry point, by module.
    reflected: HashMap<&'static str, HashMap<String, reflect::Bindings>>,
    /// Distinct bind-group layouts, by their storage bindings.
    by_bindings: HashMap<reflect::Bindings, usize>,
    layouts: Vec<(wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
}

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
    pipelines: Mutex<HashMap<(&'static str, &'static str), Variants>>,
    layouts: Mutex<Layouts>,
    bind_groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
    uniform_ring: wgpu::Buffer,
    uniform_align: usize,
    /// Whether shader modules keep wgpu's injected bounds checks (`RBD_SHADER_CHECKS=1`).
    checked_shaders: bool,
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
            pool: BufferPool::new(),
            staging: BufferPool::new(),
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            layouts: Mutex::new(Layouts::default()),
            bind_groups: Mutex::new(HashMap::new()),
            uniform_ring,
            checked_shaders: std::env::var("RBD_SHADER_CHECKS").is_ok_and(|v| v == "1"),
            pending: Mutex::new(Pending {
                encoder: None,
                pass: None,
                dispatches: 0,
                uniforms: Vec::with_capacity(UNIFORM_RING_BYTES as usize),
                uploads: Vec::new(),
                upload_ring: None,
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

    /// Frees idle pooled buffers and the cached bind groups that keep buffers alive.
    pub fn trim(&self) {
        self.bind_groups.lock().unwrap().clear();
        self.pool.trim();
        self.staging.trim();
    }

    /// Whether the device can store f16 in shaders.
    pub fn has_f16(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F16)
    }

    /// Whether shaders may use 64-bit integers (`SHADER_INT64`).
    pub fn has_int64(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_INT64)
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

    /// Copies `data` into a new storage buffer, without a submit: the bytes go to the
    /// host side of the upload ring and a recorded copy moves them into the buffer, in
    /// command order (so a recycled buffer is never overwritten under a pending reader).
    pub fn upload(&self, data: &[u8]) -> Result<GpuBuffer, GpuError> {
        let buf = self.alloc(data.len() as u64)?;
        if data.is_empty() {
            return Ok(buf);
        }
        bump(&COUNTERS.upload_bytes, data.len() as u64);
        let padded = data.len().div_ceil(4) as u64 * 4;
        let capacity = |p: &Pending| p.upload_ring.as_ref().map_or(0, |r| r.size());
        let mut p = self.pending.lock().unwrap();
        if p.uploads.len() as u64 + padded > capacity(&p) && !p.uploads.is_empty() {
            drop(p);
            self.flush()?;
            p = self.pending.lock().unwrap();
        }
        if padded > capacity(&p) {
            let size = padded
                .next_power_of_two()
                .max(MIN_UPLOAD_RING_BYTES)
                .min(self.limits.max_buffer_size / 4 * 4)
                .max(padded);
            if size > self.limits.max_buffer_size {
                return Err(GpuError::TooLarge {
                    what: "upload".into(),
                    bytes: padded,
                    limit: self.limits.max_buffer_size,
                });
            }
            bump(&COUNTERS.buffer_creations, 1);
            p.upload_ring = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("upload ring"),
                size,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let offset = p.uploads.len() as u64;
        p.uploads.extend_from_slice(data);
        p.uploads.resize((offset + padded) as usize, 0);
        let ring = p.upload_ring.clone().expect("upload ring");
        p.end_pass();
        let enc = self.encoder(&mut p);
        enc.copy_buffer_to_buffer(&ring, offset, buf.raw(), 0, padded);
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

    fn encoder<'p>(&self, p: &'p mut Pending) -> &'p mut wgpu::CommandEncoder {
        p.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        })
    }

    /// Runs `f` on the open encoder after ending the open compute pass.
    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut p = self.pending.lock().unwrap();
        p.end_pass();
        f(self.encoder(&mut p))
    }

    fn module(&self, kernel: &Kernel) -> wgpu::ShaderModule {
        let mut modules = self.modules.lock().unwrap();
        modules
            .entry(kernel.module)
            .or_insert_with(|| {
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.module),
                    source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
                };
                if self.checked_shaders || !trusted(kernel.module) {
                    self.device.create_shader_module(desc)
                } else {
                    // SAFETY: every index of these kernels is bounded by the kernel's own
                    // checks against `Info`, which the launchers validate against the
                    // buffer sizes; the WGSL-vs-cpu suites exercise ragged shapes.
                    // `RBD_SHADER_CHECKS=1` restores wgpu's checks for debugging.
                    unsafe {
                        self.device.create_shader_module_trusted(
                            desc,
                            wgpu::ShaderRuntimeChecks::unchecked(),
                        )
                    }
                }
            })
            .clone()
    }

    /// The bind-group layout index for `kernel` with `buffers` storage bindings.
    fn layout(&self, kernel: &Kernel, buffers: usize) -> Result<usize, GpuError> {
        let mut l = self.layouts.lock().unwrap();
        if !l.reflected.contains_key(kernel.module) {
            let r = reflect::entry_bindings(kernel.module, kernel.source)?;
            l.reflected.insert(kernel.module, r);
        }
        let used = l.reflected[kernel.module]
            .get(kernel.entry)
            .ok_or_else(|| {
                GpuError::Shader(format!(
                    "{}: no entry point {}",
                    kernel.module, kernel.entry
                ))
            })?
            .clone();
        // Bindings 1..=buffers; one the entry point does not use is bound read-only.
        let mut bindings: reflect::Bindings = (1..=buffers as u32).map(|b| (b, true)).collect();
        for &(b, read_only) in &used {
            if b == 0 || b as usize > buffers {
                return Err(GpuError::Invalid(format!(
                    "{}::{} uses storage binding {b} but was given {buffers} buffers",
                    kernel.module, kernel.entry
                )));
            }
            bindings[b as usize - 1].1 = read_only;
        }
        if let Some(&i) = l.by_bindings.get(&bindings) {
            return Ok(i);
        }
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: wgpu::BufferSize::new(MAX_INFO_BYTES),
            },
            count: None,
        }];
        for &(binding, read_only) in &bindings {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let bgl = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
        l.layouts.push((bgl, pl));
        let i = l.layouts.len() - 1;
        l.by_bindings.insert(bindings, i);
        Ok(i)
    }

    fn pipeline(
        &self,
        kernel: &Kernel,
        constants: &[(&str, f64)],
        buffers: usize,
    ) -> Result<Pipeline, GpuError> {
        let same = |c: &[(String, u64)]| {
            c.len() == constants.len()
                && c.iter()
                    .zip(constants)
                    .all(|((a, x), (b, y))| a == b && *x == y.to_bits())
        };
        if let Some(variants) = self
            .pipelines
            .lock()
            .unwrap()
            .get(&(kernel.module, kernel.entry))
        {
            if let Some((_, p)) = variants.iter().find(|(c, _)| same(c)) {
                return Ok(p.clone());
            }
        }
        let layout = self.layout(kernel, buffers)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.module(kernel);
        let pipeline = {
            let layouts = self.layouts.lock().unwrap();
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.entry),
                    layout: Some(&layouts.layouts[layout].1),
                    module: &module,
                    entry_point: Some(kernel.entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        // Every kernel writes its workgroup memory before reading it.
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                })
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            self.modules.lock().unwrap().remove(kernel.module);
            return Err(GpuError::Shader(format!(
                "{}::{}: {e}",
                kernel.module, kernel.entry
            )));
        }
        let p = Pipeline { pipeline, layout };
        let key: Vec<(String, u64)> = constants
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_bits()))
            .collect();
        self.pipelines
            .lock()
            .unwrap()
            .entry((kernel.module, kernel.entry))
            .or_default()
            .push((key, p.clone()));
        Ok(p)
    }

    /// The cached bind group of `layout` over `buffers` (uniform ring at binding 0).
    fn bind_group(
        &self,
        layout: usize,
        buffers: &[&GpuBuffer],
    ) -> Result<wgpu::BindGroup, GpuError> {
        let mut key = BindKey {
            layout,
            buffers: [(0, 0); MAX_BUFFERS],
        };
        for (slot, b) in key.buffers.iter_mut().zip(buffers) {
            *slot = (b.allocation_id(), b.bytes());
        }
        let mut cache = self.bind_groups.lock().unwrap();
        if let Some(g) = cache.get(&key) {
            return Ok(g.clone());
        }
        if cache.len() >= MAX_BIND_GROUPS {
            cache.clear();
        }
        let mut entries = Vec::with_capacity(buffers.len() + 1);
        entries.push(wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.uniform_ring,
                offset: 0,
                size: wgpu::BufferSize::new(MAX_INFO_BYTES),
            }),
        });
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.binding(),
            });
        }
        let group = {
            let layouts = self.layouts.lock().unwrap();
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layouts.layouts[layout].0,
                entries: &entries,
            })
        };
        bump(&COUNTERS.bind_group_creations, 1);
        cache.insert(key, group.clone());
        Ok(group)
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
    ///
    /// Host cost per dispatch: a pipeline lookup (no allocation), a bind-group lookup
    /// by buffer identity (created once per distinct set of buffers), `info` appended
    /// to the uniform ring's host copy, and three commands in the open compute pass.
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
        if info.len() as u64 > MAX_INFO_BYTES || buffers.len() > MAX_BUFFERS {
            return Err(GpuError::Invalid(format!(
                "{}::{}: {} info bytes and {} buffers (at most {MAX_INFO_BYTES} and {MAX_BUFFERS})",
                kernel.module,
                kernel.entry,
                info.len(),
                buffers.len()
            )));
        }
        let started = std::time::Instant::now();
        let pipeline = self.pipeline(kernel, constants, buffers.len())?;
        let bind_group = self.bind_group(pipeline.layout, buffers)?;
        let mut profiler = self.profiler.lock().unwrap();
        let mut p = self.pending.lock().unwrap();
        let mut offset = p.uniforms.len().div_ceil(self.uniform_align) * self.uniform_align;
        if offset as u64 >= UNIFORM_RING_BYTES {
            drop(p);
            drop(profiler);
            self.flush()?;
            profiler = self.profiler.lock().unwrap();
            p = self.pending.lock().unwrap();
            offset = 0;
        }
        p.uniforms.resize(offset, 0);
        p.uniforms.extend_from_slice(info);
        bump(&COUNTERS.uniform_bytes, info.len() as u64);
        // Per-kernel timing needs a pass per dispatch (timestamps sit at pass bounds).
        let timed = profiler
            .as_mut()
            .and_then(|prof| prof.next_pass(kernel.entry));
        if timed.is_some() {
            p.end_pass();
        }
        if p.pass.is_none() {
            let enc = self.encoder(&mut p);
            let pass = enc
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: timed,
                })
                .forget_lifetime();
            p.pass = Some(pass);
            bump(&COUNTERS.compute_passes, 1);
        }
        let pass = p.pass.as_mut().expect("open pass");
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset as u32]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        if profiler.is_some() {
            p.end_pass();
        }
        p.dispatches += 1;
        bump(&COUNTERS.dispatches, 1);
        let full = p.dispatches >= DISPATCHES_PER_SUBMIT
            || profiler.as_ref().is_some_and(|prof| prof.is_full());
        drop(p);
        drop(profiler);
        bump(&COUNTERS.record_ns, started.elapsed().as_nanos() as u64);
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
        p.end_pass();
        let Some(mut enc) = p.encoder.take() else {
            return Ok(None);
        };
        let readout = profiler
            .as_mut()
            .and_then(|prof| prof.resolve(self, &mut enc));
        // Queue writes land before this submission's commands and after earlier ones.
        if !p.uniforms.is_empty() {
            self.queue.write_buffer(&self.uniform_ring, 0, &p.uniforms);
        }
        if !p.uploads.is_empty() {
            let ring = p.upload_ring.as_ref().expect("upload ring");
            self.queue.write_buffer(ring, 0, &p.uploads);
        }
        let index = self.queue.submit([enc.finish()]);
        bump(&COUNTERS.submits, 1);
        p.dispatches = 0;
        p.uniforms.clear();
        p.uploads.clear();
        drop(p);
        if let (Some(prof), Some(readout)) = (profiler.as_mut(), readout) {
            prof.collect(readout);
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
        match prof {
            Some(p) => p.finish(self),
            None => Ok(Vec::new()),
        }
    }
}

/// Modules compiled without wgpu's injected bounds checks (see [`GpuContext::module`]):
/// each guards its own indices against `Info` and passes the WGSL-vs-cpu suites on
/// ragged shapes.
const TRUSTED_MODULES: &[&str] = &[
    "matmul",
    "matmul_f16",
    "conv",
    "elementwise",
    "reduce",
    "loss",
    "pool",
    "batchnorm",
    "random_bases",
    "random_bases_i64",
];

fn trusted(module: &str) -> bool {
    TRUSTED_MODULES.contains(&module)
}
