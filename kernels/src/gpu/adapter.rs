//! Adapter discovery and the one rule for "a GPU", used by `--device gpu`, `rbd bench
//! --backends gpu`, `rbd profile` and `rbd devices` alike:
//!
//! - an adapter is a GPU unless wgpu reports it as a CPU (llvmpipe, SwiftShader): a
//!   GPU seen only through OpenGL, which wgpu labels `Other` when the renderer string
//!   names no known kind (an NVIDIA card through EGL, say), is a GPU too;
//! - the same physical device seen through several backends (Vulkan and GL) is one
//!   adapter, the Vulkan one: the others are listed under it, never opened twice;
//! - the order is discrete, integrated, virtual, GPU of unknown kind, CPU, and Vulkan
//!   first within each kind.

use crate::GpuError;

/// Which kind of wgpu adapter to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// The best adapter there is, CPU adapters included.
    Best,
    /// The best GPU (see the module's rule); refuses CPU adapters.
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
    /// PCI vendor id (0 where the backend does not say).
    pub vendor: u32,
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
    /// Other backends through which the same physical device was seen (not opened).
    pub also_via: Vec<String>,
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
            vendor: info.vendor,
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
            also_via: Vec::new(),
        }
    }

    /// `wgpu: name (backend, type, driver)`.
    pub fn one_line(&self) -> String {
        format!(
            "wgpu: {} ({}, {}, driver {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }

    /// Whether this adapter counts as a GPU (everything wgpu does not call a CPU).
    pub fn is_gpu(&self) -> bool {
        !self.is_cpu
    }

    /// Whether this is a discrete GPU driven through Vulkan: what `scripts/gpu-check.sh`
    /// requires before it measures anything.
    pub fn is_vulkan_discrete(&self) -> bool {
        self.backend == "Vulkan" && self.device_type == "DiscreteGpu"
    }

    fn rank(&self) -> (u8, u8) {
        let kind = match self.device_type.as_str() {
            "DiscreteGpu" => 0,
            "IntegratedGpu" => 1,
            "VirtualGpu" => 2,
            "Cpu" => 4,
            // GL's "Other": a GPU whose kind the renderer string does not tell.
            _ => 3,
        };
        (kind, u8::from(self.backend != "Vulkan"))
    }

    /// The physical device as two backends name it: the vendor and the renderer name
    /// up to its first '/' (GL appends "/PCIe/SSE2" to NVIDIA's), lower case.
    fn identity(&self) -> (u32, String) {
        let name = self.name.split('/').next().unwrap_or("").trim();
        (self.vendor & 0xffff, name.to_lowercase())
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Applies the module's rule to what wgpu enumerated: best first, one entry per
/// physical device (its first, i.e. preferred, backend), the others in `also_via`.
fn rule<T>(mut all: Vec<(T, AdapterReport)>) -> Vec<(T, AdapterReport)> {
    // Stable: equal ranks keep wgpu's enumeration order.
    all.sort_by_key(|(_, r)| r.rank());
    let mut kept: Vec<(T, AdapterReport)> = Vec::with_capacity(all.len());
    for (a, r) in all {
        let same = kept.iter_mut().find(|(_, k)| {
            k.backend != r.backend && k.is_cpu == r.is_cpu && k.identity() == r.identity()
        });
        match same {
            Some((_, k)) => k.also_via.push(r.backend.clone()),
            None => kept.push((a, r)),
        }
    }
    kept
}

fn adapters(instance: &wgpu::Instance) -> Vec<(wgpu::Adapter, AdapterReport)> {
    let all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .map(|a| {
            let r = AdapterReport::new(&a);
            (a, r)
        })
        .collect();
    rule(all)
}

/// Every adapter wgpu can see (honouring `WGPU_BACKEND`), best first, one per physical
/// device (see the module's rule).
pub fn list_adapters() -> Vec<AdapterReport> {
    adapters(&instance()).into_iter().map(|(_, r)| r).collect()
}

const NO_ADAPTER_HELP: &str = "no wgpu adapter found. Without a GPU, install Mesa's CPU \
Vulkan driver (`apt-get install -y mesa-vulkan-drivers`) or select OpenGL via EGL \
(`WGPU_BACKEND=gl`); or use the native cpu backend";

/// Opens adapter number `index` of [`list_adapters`]' order.
pub(crate) fn by_index(index: usize) -> Result<(wgpu::Adapter, AdapterReport), GpuError> {
    let mut all = adapters(&instance());
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
    let all = adapters(&instance());
    if all.is_empty() {
        return Err(GpuError::NoAdapter(NO_ADAPTER_HELP.into()));
    }
    let seen: Vec<String> = all.iter().map(|(_, r)| r.one_line()).collect();
    all.into_iter()
        .find(|(_, r)| match kind {
            DeviceKind::Best => true,
            DeviceKind::Gpu => r.is_gpu(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, backend: &str, device_type: &str, vendor: u32) -> AdapterReport {
        AdapterReport {
            name: name.into(),
            backend: backend.into(),
            device_type: device_type.into(),
            is_cpu: device_type == "Cpu",
            vendor,
            driver: String::new(),
            max_storage_binding_bytes: 0,
            max_buffer_bytes: 0,
            max_workgroup_size_x: 0,
            max_invocations_per_workgroup: 0,
            max_shared_memory_bytes: 0,
            max_workgroups_per_dimension: 0,
            f16: false,
            timestamps: false,
            subgroups: false,
            also_via: Vec::new(),
        }
    }

    fn names(v: &[((), AdapterReport)]) -> Vec<String> {
        v.iter()
            .map(|(_, r)| format!("{} {}", r.name, r.backend))
            .collect()
    }

    #[test]
    fn one_physical_device_through_gl_and_vulkan_counts_once_as_vulkan() {
        // As wgpu enumerates an NVIDIA machine with both loaders: GL's renderer string
        // carries "/PCIe/SSE2" and is typed Other.
        let seen = vec![
            (
                (),
                report("NVIDIA H100 80GB HBM3/PCIe/SSE2", "Gl", "Other", 0x10de),
            ),
            (
                (),
                report("llvmpipe (LLVM 15.0.6, 256 bits)", "Gl", "Cpu", 0x10005),
            ),
            (
                (),
                report("NVIDIA H100 80GB HBM3", "Vulkan", "DiscreteGpu", 0x10de),
            ),
            (
                (),
                report("llvmpipe (LLVM 15.0.6, 256 bits)", "Vulkan", "Cpu", 0x10005),
            ),
        ];
        let kept = rule(seen);
        assert_eq!(
            names(&kept),
            [
                "NVIDIA H100 80GB HBM3 Vulkan",
                "llvmpipe (LLVM 15.0.6, 256 bits) Vulkan"
            ]
        );
        assert_eq!(kept[0].1.also_via, ["Gl"]);
        assert_eq!(kept[1].1.also_via, ["Gl"]);
        assert!(kept[0].1.is_vulkan_discrete() && kept[0].1.is_gpu());
    }

    #[test]
    fn a_gpu_seen_only_through_gl_is_a_gpu_ranked_above_cpu_adapters() {
        let kept = rule(vec![
            (
                (),
                report("llvmpipe (LLVM 15.0.6, 256 bits)", "Gl", "Cpu", 0x10005),
            ),
            (
                (),
                report("NVIDIA H100 80GB HBM3/PCIe/SSE2", "Gl", "Other", 0x10de),
            ),
        ]);
        assert_eq!(kept[0].1.name, "NVIDIA H100 80GB HBM3/PCIe/SSE2");
        assert!(kept[0].1.is_gpu() && !kept[0].1.is_vulkan_discrete());
        assert!(!kept[1].1.is_gpu());
    }

    #[test]
    fn two_cards_of_one_model_on_one_backend_stay_two() {
        let kept = rule(vec![
            (
                (),
                report("NVIDIA H100 80GB HBM3", "Vulkan", "DiscreteGpu", 0x10de),
            ),
            (
                (),
                report("NVIDIA H100 80GB HBM3", "Vulkan", "DiscreteGpu", 0x10de),
            ),
            ((), report("AMD Radeon", "Vulkan", "IntegratedGpu", 0x1002)),
        ]);
        assert_eq!(kept.len(), 3);
        assert_eq!(kept[2].1.device_type, "IntegratedGpu");
    }
}
