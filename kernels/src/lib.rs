//! The kernel layer of `rbd`: hand-written WGSL compute shaders with their Rust
//! launchers, the wgpu runtime they run on, and native cpu implementations of the
//! same operations (the cpu backend, and the oracle the WGSL is tested against).
//!
//! Each op family lives in one module (`matmul`, `conv`, ...) holding its launcher
//! (`*_gpu`) and cpu function side by side; the WGSL source is `wgsl/<family>.wgsl`.

pub mod error;
pub mod gpu;

pub use error::GpuError;
pub use gpu::{GpuBuffer, GpuContext, Kernel};
pub mod elementwise;
pub mod launch;
pub mod real;

pub use real::Real;
