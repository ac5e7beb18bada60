//! Where tensors live: the native cpu backend or a wgpu device.

use crate::error::{EngineError, Result};
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

/// What the user asked for with `--device`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A real GPU adapter if there is one, else the cpu backend.
    Auto,
    /// A real GPU adapter; an error if there is none.
    Gpu,
    /// The native cpu backend.
    Cpu,
    /// wgpu on a CPU adapter (llvmpipe): the WGSL kernels without a GPU.
    WgpuCpu,
}

impl std::str::FromStr for DeviceChoice {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            "wgpu-cpu" => Ok(DeviceChoice::WgpuCpu),
            other => Err(EngineError::Invalid(format!(
                "--device: unknown device '{other}' (expected auto, gpu, cpu or wgpu-cpu)"
            ))),
        }
    }
}

impl Device {
    /// Opens the device the user chose.
    pub fn open(choice: DeviceChoice) -> Result<Device> {
        match choice {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Gpu => Ok(Device::Wgpu(GpuContext::new(DeviceKind::Gpu)?)),
            DeviceChoice::WgpuCpu => Ok(Device::Wgpu(GpuContext::new(DeviceKind::Cpu)?)),
            DeviceChoice::Auto => Ok(match GpuContext::new(DeviceKind::Gpu) {
                Ok(ctx) => Device::Wgpu(ctx),
                Err(_) => Device::Cpu,
            }),
        }
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
