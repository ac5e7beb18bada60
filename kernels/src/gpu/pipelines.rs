//! Kernels and what the device builds from them: shader modules (with wgpu's bounds
//! checks, or without for kernels whose definition says they are trusted), explicit
//! bind-group layouts (see `reflect`), compute pipelines by entry point and override
//! values, and bind groups by the pool identity of their buffers.
//!
//! Binding convention of every kernel: `@group(0) @binding(0)` is a uniform `Info`
//! struct with the shapes (written from a `#[repr(C)]` Pod struct, at most 256 bytes),
//! bound as a dynamic-offset window into one uniform ring; bindings `1..=n` are the
//! storage buffers in the order the launcher passes them, read-only where the entry
//! point declares them `read` (or does not use them).

use super::buffer_pool::GpuBuffer;
use super::counters::{bump, COUNTERS};
use super::queue::MAX_INFO_BYTES;
use super::reflect::{self, EntryInfo};
use crate::GpuError;
use std::collections::HashMap;
use std::sync::Mutex;

/// A WGSL kernel: a source file, one of its entry points, and whether the module may be
/// compiled without wgpu's injected bounds checks.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// Unique name of the source (the `.wgsl` file's stem); keys the module cache.
    pub module: &'static str,
    /// WGSL source, normally `include_str!`.
    pub source: &'static str,
    /// Entry point.
    pub entry: &'static str,
    /// Compile the module without wgpu's bounds checks (faster in tight loops). Only for
    /// modules whose every index is bounded by the kernel's own checks against `Info`
    /// (which the launchers validate against the buffer sizes) and whose WGSL-vs-cpu
    /// suite exercises ragged shapes. `RBD_SHADER_CHECKS=1` restores the checks.
    pub trusted: bool,
}

/// Storage buffers per dispatch at the most (bindings 1..=8).
pub(crate) const MAX_BUFFERS: usize = 8;

/// Bind groups kept before the cache is emptied (they hold their buffers alive).
const MAX_BIND_GROUPS: usize = 16_384;

/// A compute pipeline with the index of its bind-group layout and its threads per
/// workgroup.
#[derive(Clone)]
pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: usize,
    pub threads: u32,
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
    /// Entry points of each module as naga sees them.
    reflected: HashMap<&'static str, HashMap<String, EntryInfo>>,
    /// Distinct bind-group layouts, by their storage bindings.
    by_bindings: HashMap<reflect::Bindings, usize>,
    layouts: Vec<(wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
}

/// The caches of one device.
pub(crate) struct Pipelines {
    modules: Mutex<HashMap<(&'static str, bool), wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str), Variants>>,
    layouts: Mutex<Layouts>,
    bind_groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
    /// Keep wgpu's injected bounds checks on every module (`RBD_SHADER_CHECKS=1`).
    checked_shaders: bool,
}

impl Pipelines {
    pub fn new(checked_shaders: bool) -> Self {
        Pipelines {
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            layouts: Mutex::new(Layouts::default()),
            bind_groups: Mutex::new(HashMap::new()),
            checked_shaders,
        }
    }

    pub fn clear_bind_groups(&self) {
        self.bind_groups.lock().unwrap().clear();
    }

    fn module(&self, device: &wgpu::Device, kernel: &Kernel) -> wgpu::ShaderModule {
        let trusted = kernel.trusted && !self.checked_shaders;
        let mut modules = self.modules.lock().unwrap();
        modules
            .entry((kernel.module, trusted))
            .or_insert_with(|| {
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.module),
                    source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
                };
                if trusted {
                    // SAFETY: the kernel's definition vouches that every index is bounded
                    // by its own checks against `Info`, which its launcher validates
                    // against the buffer sizes (see `Kernel::trusted`).
                    unsafe {
                        device.create_shader_module_trusted(
                            desc,
                            wgpu::ShaderRuntimeChecks::unchecked(),
                        )
                    }
                } else {
                    device.create_shader_module(desc)
                }
            })
            .clone()
    }

    /// The entry point's reflection (parsed once per module).
    fn entry(&self, kernel: &Kernel) -> Result<EntryInfo, GpuError> {
        let mut l = self.layouts.lock().unwrap();
        if !l.reflected.contains_key(kernel.module) {
            let r = reflect::entry_points(kernel.module, kernel.source)?;
            l.reflected.insert(kernel.module, r);
        }
        l.reflected[kernel.module]
            .get(kernel.entry)
            .cloned()
            .ok_or_else(|| {
                GpuError::Shader(format!(
                    "{}: no entry point {}",
                    kernel.module, kernel.entry
                ))
            })
    }

    /// The bind-group layout index for `kernel` with `buffers` storage bindings.
    fn layout(
        &self,
        device: &wgpu::Device,
        kernel: &Kernel,
        entry: &EntryInfo,
        buffers: usize,
    ) -> Result<usize, GpuError> {
        // Bindings 1..=buffers; one the entry point does not use is bound read-only.
        let mut bindings: reflect::Bindings = (1..=buffers as u32).map(|b| (b, true)).collect();
        for &(b, read_only) in &entry.bindings {
            if b == 0 || b as usize > buffers {
                return Err(GpuError::Invalid(format!(
                    "{}::{} uses storage binding {b} but was given {buffers} buffers",
                    kernel.module, kernel.entry
                )));
            }
            bindings[b as usize - 1].1 = read_only;
        }
        let mut l = self.layouts.lock().unwrap();
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
        let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: None,
            entries: &entries,
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: None,
            bind_group_layouts: &[Some(&bgl)],
            immediate_size: 0,
        });
        l.layouts.push((bgl, pl));
        let i = l.layouts.len() - 1;
        l.by_bindings.insert(bindings, i);
        Ok(i)
    }

    /// The pipeline of `kernel` specialised by `constants`, built on first use.
    pub fn pipeline(
        &self,
        device: &wgpu::Device,
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
        let entry = self.entry(kernel)?;
        let layout = self.layout(device, kernel, &entry, buffers)?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.module(device, kernel);
        let pipeline = {
            let layouts = self.layouts.lock().unwrap();
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
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
            self.modules
                .lock()
                .unwrap()
                .retain(|(m, _), _| *m != kernel.module);
            return Err(GpuError::Shader(format!(
                "{}::{}: {e}",
                kernel.module, kernel.entry
            )));
        }
        let p = Pipeline {
            pipeline,
            layout,
            threads: entry.threads(constants),
        };
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

    /// The cached bind group of `layout` over `buffers` (the uniform ring at binding 0).
    pub fn bind_group(
        &self,
        device: &wgpu::Device,
        uniform_ring: &wgpu::Buffer,
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
                buffer: uniform_ring,
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
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layouts.layouts[layout].0,
                entries: &entries,
            })
        };
        bump(&COUNTERS.bind_group_creations, 1);
        cache.insert(key, group.clone());
        Ok(group)
    }
}
