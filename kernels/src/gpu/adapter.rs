//! Adapter discovery and choice: discrete GPU, then integrated, then virtual, then CPU.

use crate::GpuError;

/// Which kind of wgpu adapter to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// The best adapter there is, CPU adapters included.
    Best,
    /// A real GPU (discrete, integrated or virtual); refuses CPU adapters.
    Gpu,
    /// A CPU adapter such as Mesa's llvmpipe (lavapipe on Vulkan, or GL).
    Cpu,
}

/// What `rbd devices` prints about an adapter.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Vulkan, Metal, Dx12 or Gl.
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu or Other.
    pub device_type: String,
    /// Whether this is a CPU adapter.
    pub is_cpu: bool,
    /// Driver name and version.
    pub driver: String,
    /// `max_storage_buffer_binding_size` in bytes.
    pub max_storage_binding_bytes: u64,
    /// `max_buffer_size` in bytes.
    pub max_buffer_bytes: u64,
    /// `max_compute_workgroup_size_x`.
    pub max_workgroup_size_x: u32,
    /// `max_compute_invocations_per_workgroup`.
    pub max_invocations_per_workgroup: u32,
    /// `max_compute_workgroup_storage_size` (shared memory) in bytes.
    pub max_shared_memory_bytes: u32,
    /// `max_compute_workgroups_per_dimension`.
    pub max_workgroups_per_dimension: u32,
    /// SHADER_F16 available.
    pub f16: bool,
    /// TIMESTAMP_QUERY available.
    pub timestamps: bool,
    /// SUBGROUP available.
    pub subgroups: bool,
}

impl AdapterReport {
    fn new(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let features = adapter.features();
        AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            is_cpu: info.device_type == wgpu::DeviceType::Cpu,
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            max_storage_binding_bytes: limits.max_storage_buffer_binding_size,
            max_buffer_bytes: limits.max_buffer_size,
            max_workgroup_size_x: limits.max_compute_workgroup_size_x,
            max_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_shared_memory_bytes: limits.max_compute_workgroup_storage_size,
            max_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            f16: features.contains(wgpu::Features::SHADER_F16),
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
        }
    }

    /// `name (backend, type)`.
    pub fn one_line(&self) -> String {
        format!(
            "wgpu: {} ({}, {}, driver {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }

    fn rank(&self) -> u8 {
        match self.device_type.as_str() {
            "DiscreteGpu" => 0,
            "IntegratedGpu" => 1,
            "VirtualGpu" => 2,
            "Cpu" => 3,
            _ => 4,
        }
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn sorted_adapters(instance: &wgpu::Instance) -> Vec<(wgpu::Adapter, AdapterReport)> {
    let mut all: Vec<_> = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .map(|a| {
            let r = AdapterReport::new(&a);
            (a, r)
        })
        .collect();
    // Stable sort: within a rank the enumeration order (Vulkan before GL) is kept.
    all.sort_by_key(|(_, r)| r.rank());
    all
}

/// Every adapter wgpu can see (honouring `WGPU_BACKEND`), best first.
pub fn list_adapters() -> Vec<AdapterReport> {
    sorted_adapters(&instance())
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

const NO_ADAPTER_HELP: &str = "no wgpu adapter found. Without a GPU, install Mesa's CPU \
Vulkan driver (`apt-get install -y mesa-vulkan-drivers`) or select OpenGL via EGL \
(`WGPU_BACKEND=gl`); or use the native cpu backend";

/// Opens adapter number `index` of [`list_adapters`]' order.
pub(crate) fn by_index(index: usize) -> Result<(wgpu::Adapter, AdapterReport), GpuError> {
    let mut all = sorted_adapters(&instance());
    if index >= all.len() {
        return Err(GpuError::NoAdapter(format!(
            "adapter #{index} does not exist ({} found)",
            all.len()
        )));
    }
    Ok(all.swap_remove(index))
}

/// Picks the best adapter of `kind`.
pub(crate) fn choose(kind: DeviceKind) -> Result<(wgpu::Adapter, AdapterReport), GpuError> {
    let all = sorted_adapters(&instance());
    if all.is_empty() {
        return Err(GpuError::NoAdapter(NO_ADAPTER_HELP.into()));
    }
    let seen: Vec<String> = all.iter().map(|(_, r)| r.one_line()).collect();
    all.into_iter()
        .find(|(_, r)| match kind {
            DeviceKind::Best => true,
            DeviceKind::Gpu => !r.is_cpu && r.rank() <= 2,
            DeviceKind::Cpu => r.is_cpu,
        })
        .ok_or_else(|| {
            let want = match kind {
                DeviceKind::Gpu => "no GPU adapter found (the native cpu backend, or wgpu on a CPU adapter such as llvmpipe, run without one)",
                DeviceKind::Cpu => "no CPU wgpu adapter found (install it with `apt-get install -y mesa-vulkan-drivers`, or try WGPU_BACKEND=gl)",
                DeviceKind::Best => NO_ADAPTER_HELP,
            };
            GpuError::NoAdapter(format!("{want}; adapters seen: [{}]", seen.join("; ")))
        })
}
