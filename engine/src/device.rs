//! Where tensors live: the native cpu backend or a wgpu device.

use crate::error::Result;
use rbd_kernels::gpu::{DeviceKind, GpuContext};
use std::sync::Arc;

/// A backend and, for wgpu, the device context.
#[derive(Clone)]
pub enum Device {
    /// Native Rust on the host (f32 or f64).
    Cpu,
    /// WGSL kernels on a wgpu adapter (f32; f16 storage for matmul).
    Wgpu(Arc<GpuContext>),
}

rbd_kernels::named_enum!(
    /// Where a run's tensors live, as the user asks for it with `--device`.
    pub DeviceChoice, "device" {
        /// A real GPU adapter if there is one, else the cpu backend.
        Auto = "auto",
        /// A real GPU adapter; an error if there is none.
        Gpu = "gpu",
        /// The native cpu backend.
        Cpu = "cpu",
        /// wgpu on a CPU adapter (llvmpipe): the WGSL kernels without a GPU.
        WgpuCpu = "wgpu-cpu",
    }
);

impl Device {
    /// Opens the device the user chose (see [`Device::open_explained`] for why `auto`
    /// fell back to the cpu).
    pub fn open(choice: DeviceChoice) -> Result<Device> {
        Device::open_explained(choice).map(|(device, _)| device)
    }

    /// Opens the device the user chose; with `auto` on a machine without a usable GPU
    /// adapter, also says why it fell back to the cpu backend (the adapter error, e.g.
    /// "no GPU adapter found ...; adapters seen: [...]"), for the CLI to print.
    pub fn open_explained(choice: DeviceChoice) -> Result<(Device, Option<String>)> {
        Ok(match choice {
            DeviceChoice::Cpu => (Device::Cpu, None),
            DeviceChoice::Gpu => (Device::Wgpu(GpuContext::new(DeviceKind::Gpu)?), None),
            DeviceChoice::WgpuCpu => (Device::Wgpu(GpuContext::new(DeviceKind::Cpu)?), None),
            DeviceChoice::Auto => match GpuContext::new(DeviceKind::Gpu) {
                Ok(ctx) => (Device::Wgpu(ctx), None),
                Err(e) => (
                    Device::Cpu,
                    Some(format!(
                        "device auto: using the native cpu backend because no GPU could be opened: {e}"
                    )),
                ),
            },
        })
    }

    /// Submits the device work recorded so far without waiting (no-op on the cpu); a
    /// trainer calls it once per step so the GPU starts while the host records the next.
    pub fn flush(&self) -> Result<()> {
        if let Device::Wgpu(ctx) = self {
            ctx.flush()?;
        }
        Ok(())
    }

    /// One line saying what runs the work.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!(
                "cpu: native Rust ({} threads, matrixmultiply GEMM)",
                rayon::current_num_threads()
            ),
            Device::Wgpu(ctx) => ctx.describe(),
        }
    }

    /// The wgpu context, if this is a wgpu device.
    pub fn gpu(&self) -> Option<&Arc<GpuContext>> {
        match self {
            Device::Wgpu(ctx) => Some(ctx),
            Device::Cpu => None,
        }
    }

    /// Waits for all submitted device work (no-op on the cpu).
    pub fn synchronize(&self) -> Result<()> {
        if let Device::Wgpu(ctx) = self {
            ctx.synchronize()?;
        }
        Ok(())
    }

    /// Whether two devices are the same backend instance.
    pub fn same(&self, other: &Device) -> bool {
        match (self, other) {
            (Device::Cpu, Device::Cpu) => true,
            (Device::Wgpu(a), Device::Wgpu(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}
